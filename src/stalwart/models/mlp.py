"""Multilayer perceptron on the flattened input."""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor, nn

from stalwart.models.catalog import MODELS, check


class MLP(nn.Module):
    """Fully connected ReLU network; its features are the last hidden layer.

    Args:
        input_shape: shape of one input, without the batch dimension.
        n_classes: number of output logits.
        hidden: widths of the hidden layers; empty gives a linear model.
        dropout: dropout probability after each hidden activation, in ``[0, 1)``.

    Raises:
        ConfigError: if a hidden width is not positive or ``dropout`` is outside ``[0, 1)``.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        *,
        hidden: Sequence[int] = (256, 256),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = list(hidden)
        check(all(h > 0 for h in hidden), "mlp", "hidden", "must be positive widths", hidden)
        check(0.0 <= dropout < 1.0, "mlp", "dropout", "must lie in [0, 1)", dropout)
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_classes)

    def features(self, x: Tensor) -> Tensor:
        """The last hidden layer's activations, shape ``(batch, hidden[-1])``."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape ``(batch, n_classes)``."""
        return self.head(self.features(x))


@MODELS.register("mlp")
def mlp(
    input_shape: tuple[int, ...],
    n_classes: int,
    *,
    hidden: Sequence[int] = (256, 256),
    dropout: float = 0.0,
) -> MLP:
    """Build an :class:`MLP` with the given hidden widths and dropout."""
    return MLP(input_shape, n_classes, hidden=hidden, dropout=dropout)
