"""The interface ``fit`` trains through: a training objective that returns a loss.

A method never calls ``backward`` or steps an optimiser: the engine owns those, together with
mixed precision and devices, so every method runs unchanged wherever the engine runs. State a
method keeps between steps (group DRO's group weights, say) lives in registered buffers, so it
is saved in checkpoints and moved between devices with the method.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Literal

from torch import Tensor, nn

from stalwart.data.core import Batch
from stalwart.data.samplers import Sampler


class Method(nn.Module, ABC):
    """A training objective: ``loss(model, batch)`` returns a scalar to minimise.

    The engine defines this interface and ``stalwart.methods`` implements it, so the engine
    never imports a method. What a method needs from its registry entry (whether it reads
    group labels, say) is recorded there (``stalwart.methods.METHODS.info``), not here.
    """

    data_parallel: ClassVar[Literal["mean", "share"] | None] = None
    """How ``loss`` trains data-parallel (``stalwart.engine.distributed``), if it can:

    - ``"mean"``: the loss is a mean over the batch's examples; the engine weights each rank's
      mean by its share of the batch, and the weighted means add up to the batch's loss;
    - ``"share"``: the method sums the statistics it needs across ranks itself
      (``distributed.sum_across``) and returns this rank's share of the batch's loss; it is
      called on every rank at every step, so each rank's share must hold an example;
    - None: the loss couples examples in a way not reduced across ranks: refused."""

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
