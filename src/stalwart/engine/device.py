"""Device and precision: where the engine computes and whether it uses bf16 autocast."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

from stalwart.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → the first CUDA device if there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available; use 'cpu'")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' was asked for but is not available; use 'cpu'")
    return torch.device(name)


def model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model``'s parameters live (the CPU for a model without parameters)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def autocast_for(
    device: torch.device, precision: str = "auto"
) -> Callable[[], AbstractContextManager]:
    """A factory of the autocast context for ``device``: bf16 on CUDA under ``auto``.

    bf16 keeps fp32's exponent range, so it needs no loss scaling; on the CPU, ``auto`` keeps
    fp32, where bf16 is slower on most processors and would change results bit for bit.
    """
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
