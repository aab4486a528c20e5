"""The method interface: a training objective that returns a loss.

A method never calls ``backward`` or steps an optimiser: the engine owns those, together with
mixed precision and devices, so every method runs unchanged wherever the engine runs. State a
method keeps between steps (group DRO's group weights, say) lives in registered buffers, so it
is saved in checkpoints and moved between devices with the method.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor, nn

from stalwart.data.core import Batch


class Method(nn.Module, ABC):
    """A training objective: ``loss(model, batch)`` returns a scalar to minimise."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """The scalar training loss of ``model`` on ``batch``."""
