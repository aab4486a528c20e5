"""Device names (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``), checked before any work.

A leaf, so that the verifier's command line resolves ``--device`` without loading the engine.
"""

from __future__ import annotations

import torch

from stalwart.errors import ConfigError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → the first CUDA device if there is one, else the CPU.

    Raises:
        ConfigError: a device that is not available here, or a name PyTorch does not know.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available; use 'cpu'")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' was asked for but is not available; use 'cpu'")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(
            f"unknown device {name!r} ({error}); use auto, cpu, cuda, cuda:N or mps"
        ) from None
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    if device.type == "cuda" and device.index is not None and device.index >= count:
        raise ConfigError(
            f"device {name!r} was asked for but there are {count} CUDA devices "
            f"(cuda:0 to cuda:{count - 1})"
        )
    return device
