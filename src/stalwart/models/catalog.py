"""The model registry and the checks its factories share."""

from __future__ import annotations

from typing import Any

from torch import nn

from stalwart.errors import ConfigError
from stalwart.registry import Registry

MODELS: Registry[nn.Module] = Registry("model")


def check(ok: bool, model: str, param: str, rule: str, value: Any) -> None:
    """Raise ``ConfigError`` unless ``ok``, naming the model, the parameter, the rule and value.

    Args:
        ok: whether the value is valid.
        model: registry name of the model, e.g. ``"cnn"``.
        param: the parameter checked, e.g. ``"width"``.
        rule: what a valid value is, e.g. ``"must be a positive integer"``.
        value: the value received.

    Raises:
        ConfigError: if ``ok`` is false.
    """
    if not ok:
        raise ConfigError(f"model {model!r}: {param} {rule}; got {value!r}")


def image_shape(model: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Return ``input_shape`` as ``(channels, height, width)`` for a convolutional model.

    Args:
        model: registry name of the model, for the error message.
        input_shape: shape of one input, without the batch dimension.

    Raises:
        ConfigError: if ``input_shape`` does not have exactly three entries.
    """
    check(
        len(input_shape) == 3,
        model,
        "input_shape",
        "must be (channels, height, width) for an image model; use 'mlp' or 'linear' for "
        "flat inputs",
        tuple(input_shape),
    )
    channels, height, width = input_shape
    return channels, height, width
