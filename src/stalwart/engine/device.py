"""Device and precision: where the engine computes and whether it uses bf16 autocast."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch

from stalwart.devices import resolve_device

__all__ = ["autocast_for", "model_device", "resolve_device"]


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
