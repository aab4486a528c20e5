"""Classifiers, built by name from an input shape and a number of classes.

Every model maps inputs of shape ``(batch, *input_shape)`` to logits ``(batch, n_classes)``
and splits into ``features(x)`` (the penultimate representation) and a linear ``head``, so
that ``model(x) == model.head(model.features(x))``; last-layer methods such as DFR retrain
only the head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from torch import nn

from stalwart.models.catalog import MODELS, check
from stalwart.models.cnn import CNN
from stalwart.models.linear import Linear
from stalwart.models.mlp import MLP
from stalwart.models.pretrained import MiniLM
from stalwart.models.random_features import RandomFeatures
from stalwart.models.resnet import ResNet
from stalwart.models.text import BagOfTokens, TextCNN, TextGRU

if TYPE_CHECKING:
    from stalwart.data.core import GroupedDataset

__all__ = [
    "CNN",
    "MLP",
    "MODELS",
    "BagOfTokens",
    "Linear",
    "MiniLM",
    "RandomFeatures",
    "ResNet",
    "TextCNN",
    "TextGRU",
    "build",
]


def build(
    name: str, data: GroupedDataset | tuple[tuple[int, ...], int], **params: Any
) -> nn.Module:
    """Build the model registered as ``name`` for ``data``.

    Args:
        name: a name in ``MODELS.names()``.
        data: a dataset with ``input_shape`` and ``n_classes``, or a tuple
            ``(input_shape, n_classes)``.
        **params: the model's keyword hyperparameters.

    Returns:
        The model, in training mode.

    Raises:
        ConfigError: on an unknown name or parameter, a value of the wrong type, or an invalid
            value; the message says which and what is allowed.
    """
    if isinstance(data, tuple):
        input_shape, n_classes = data
    else:
        input_shape, n_classes = data.input_shape, data.n_classes
    input_shape = tuple(input_shape)
    check(
        len(input_shape) > 0 and all(int(n) > 0 for n in input_shape),
        name,
        "input_shape",
        "must be a non-empty tuple of positive sizes",
        input_shape,
    )
    check(int(n_classes) > 0, name, "n_classes", "must be a positive integer", n_classes)
    return MODELS.build(name, input_shape, n_classes, **params)
