"""Linear classifier on the flattened input (logistic regression when trained with CE)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from stalwart.models.catalog import MODELS


class Linear(nn.Module):
    """A linear head on the flattened input; its features are the input itself.

    Args:
        input_shape: shape of one input, without the batch dimension.
        n_classes: number of output logits.
    """

    def __init__(self, input_shape: tuple[int, ...], n_classes: int) -> None:
        super().__init__()
        self.head = nn.Linear(math.prod(input_shape), n_classes)

    def features(self, x: Tensor) -> Tensor:
        """The flattened input, shape ``(batch, prod(input_shape))``."""
        return x.flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape ``(batch, n_classes)``."""
        return self.head(self.features(x))


@MODELS.register("linear")
def linear(input_shape: tuple[int, ...], n_classes: int) -> Linear:
    """Build a :class:`Linear` model (no hyperparameters)."""
    return Linear(input_shape, n_classes)
