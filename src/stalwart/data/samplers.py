"""Samplers: each returns the positions one epoch visits, from a seeded generator.

A sampler is a callable ``(dataset, generator) -> LongTensor of positions``. Taking the
generator as an argument, instead of keeping one inside, makes every epoch's order a pure
function of (seed, epoch), which is what makes resumed runs identical to uninterrupted ones.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from stalwart.data.core import GroupedDataset

Sampler = Callable[[GroupedDataset, torch.Generator], Tensor]


def shuffled(dataset: GroupedDataset, generator: torch.Generator) -> Tensor:
    """Every example once, in random order (plain ERM training)."""
    return torch.randperm(len(dataset), generator=generator)


def weighted(weights: Tensor, num_samples: int | None = None) -> Sampler:
    """Draw ``num_samples`` positions (default: the dataset size) with replacement ∝ ``weights``."""

    def sample(dataset: GroupedDataset, generator: torch.Generator) -> Tensor:
        if len(weights) != len(dataset):
            raise ValueError(
                f"weighted sampler has {len(weights)} weights for a dataset of {len(dataset)}"
            )
        count = len(dataset) if num_samples is None else num_samples
        return torch.multinomial(weights.double(), count, replacement=True, generator=generator)

    return sample
