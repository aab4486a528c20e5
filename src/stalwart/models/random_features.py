"""The random-features model of Sagawa et al. 2020 (arXiv:2005.04345, Sec. 4).

Features are ``ReLU(x W)`` for a fixed random projection ``W`` whose columns lie uniformly on
the unit sphere; only the linear head is trained. Varying ``n_features`` varies the degree of
overparameterisation while keeping the feature map fixed.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from stalwart.models.catalog import MODELS, check


class RandomFeatures(nn.Module):
    """Fixed ReLU random features of the flattened input, then a trainable linear head.

    ``W`` is a buffer, not a parameter: it is saved in the ``state_dict`` and moves with the
    model, but no optimiser updates it. It is drawn from its own generator seeded with
    ``seed``, so it does not depend on (or disturb) the global random state.

    Args:
        input_shape: shape of one input, without the batch dimension.
        n_classes: number of output logits.
        n_features: number of random features ``N`` (columns of ``W``).
        seed: seed of the generator that draws ``W``.
        bias: whether the head has an intercept; the paper's logistic regression has none.

    Raises:
        ConfigError: if ``n_features`` is less than 1.
    """

    W: Tensor

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        *,
        n_features: int = 1000,
        seed: int = 0,
        bias: bool = False,
    ) -> None:
        super().__init__()
        check(
            n_features >= 1,
            "random_features",
            "n_features",
            "must be a positive integer",
            n_features,
        )
        generator = torch.Generator().manual_seed(seed)
        # A normalised Gaussian vector is uniform on the unit sphere.
        w = torch.randn(math.prod(input_shape), n_features, generator=generator)
        self.register_buffer("W", w / w.norm(dim=0, keepdim=True))
        self.head = nn.Linear(n_features, n_classes, bias=bias)

    def features(self, x: Tensor) -> Tensor:
        """The random features ``ReLU(x_flat @ W)``, shape ``(batch, n_features)``."""
        return torch.relu(x.flatten(1) @ self.W)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape ``(batch, n_classes)``."""
        return self.head(self.features(x))


@MODELS.register("random_features")
def random_features(
    input_shape: tuple[int, ...],
    n_classes: int,
    *,
    n_features: int = 1000,
    seed: int = 0,
    bias: bool = False,
) -> RandomFeatures:
    """Build a :class:`RandomFeatures` model with ``n_features`` fixed ReLU features."""
    return RandomFeatures(input_shape, n_classes, n_features=n_features, seed=seed, bias=bias)
