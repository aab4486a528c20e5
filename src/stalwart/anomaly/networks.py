"""The networks of the deep detectors; each outputs one normality score per example.

- ``drocc_network``: DROCC's classifier, a one-hidden-layer MLP (128 units in the reference)
  for vectors, the house CNN with a flatten head for images; its output is the logit of
  "normal".
- ``CenterDistance``: Deep SVDD (Ruff et al., ICML 2018): a bias-free encoder φ and a fixed
  centre c; outputs ``−‖φ(x) − c‖²``. Without biases (and with c away from zero) the
  trivial solution, a constant φ at c, is out of reach: the *hypersphere collapse*.
- ``Reconstruction``: an autoencoder; outputs minus the mean squared reconstruction error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from stalwart.models.cnn import CNN
from stalwart.models.mlp import MLP


def drocc_network(
    input_shape: tuple[int, ...], hidden: Sequence[int], *, width: int = 16, depth: int = 2
) -> nn.Module:
    """A one-logit classifier: an MLP for vectors, a CNN (flatten head) for images."""
    if len(input_shape) == 3:
        return CNN(input_shape, 1, width=width, depth=depth, head="flatten")
    return MLP(input_shape, 1, hidden=hidden)


def _layers(widths: Sequence[int], *, bias: bool, last_activation: bool) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(fan_in, fan_out, bias=bias))
        if last_activation or i < len(widths) - 2:
            layers.append(nn.LeakyReLU(0.1) if not bias else nn.ReLU())
    return layers


class CenterDistance(nn.Module):
    """Deep SVDD's score: ``−‖φ(x) − c‖²`` with a bias-free MLP φ and a fixed centre c.

    Args:
        input_shape: shape of one input (flattened first).
        hidden: widths of φ's layers; the last is the representation's dimension.
    """

    def __init__(self, input_shape: tuple[int, ...], hidden: Sequence[int]) -> None:
        super().__init__()
        widths = [math.prod(input_shape), *hidden]
        self.encoder = nn.Sequential(nn.Flatten(), *_layers(widths, bias=False,
                                                             last_activation=False))  # fmt: skip
        self.register_buffer("center", torch.zeros(hidden[-1]))

    @torch.no_grad()
    def set_center(self, x: Tensor, eps: float = 0.1) -> None:
        """C = the mean representation of ``x``; coordinates near zero are pushed to ±eps.

        Ruff et al.'s initialisation: a coordinate of c at zero could be matched by zero
        weights, a collapse the missing biases alone do not prevent.
        """
        center = self.encoder(x).mean(dim=0)
        small = center.abs() < eps
        center[small] = torch.where(center[small] < 0, -eps, eps)
        self.center.copy_(center)

    def embed(self, x: Tensor) -> Tensor:
        """The representation φ(x)."""
        return self.encoder(x)

    def forward(self, x: Tensor) -> Tensor:
        """Minus the squared distance of φ(x) to the centre, shape ``(n,)``."""
        return -((self.encoder(x) - self.center) ** 2).sum(dim=1)


class Reconstruction(nn.Module):
    """An MLP autoencoder whose output is minus each example's mean squared error.

    Args:
        input_shape: shape of one input (flattened, then reshaped back).
        hidden: widths of the encoder's layers; the decoder mirrors them.
    """

    def __init__(self, input_shape: tuple[int, ...], hidden: Sequence[int]) -> None:
        super().__init__()
        widths = [math.prod(input_shape), *hidden]
        self.encoder = nn.Sequential(nn.Flatten(), *_layers(widths, bias=True,
                                                             last_activation=True))  # fmt: skip
        self.decoder = nn.Sequential(*_layers(widths[::-1], bias=True, last_activation=False))

    def forward(self, x: Tensor) -> Tensor:
        """Minus the mean squared reconstruction error of each example, shape ``(n,)``."""
        flat = x.flatten(1)
        return -((self.decoder(self.encoder(x)) - flat) ** 2).mean(dim=1)
