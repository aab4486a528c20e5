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
from stalwart.data.samplers import Sampler


class Method(nn.Module, ABC):
    """A training objective: ``loss(model, batch)`` returns a scalar to minimise.

    Attributes:
        uses_group_labels: whether training reads group ids (every method may use validation
            groups for model selection; this flag is about the training data).
    """

    uses_group_labels: bool = False

    def sampler(self, seed: int) -> Sampler | None:
        """The order in which epochs visit the training data; None: shuffle every example.

        Args:
            seed: the run's seed, for samplers that draw something once (a fixed subsample)
                and must draw the same thing when a run resumes.
        """
        return None

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """The scalar training loss of ``model`` on ``batch``."""
