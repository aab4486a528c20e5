"""Samplers: each returns the positions one epoch visits, from a seeded generator.

A sampler is a callable ``(dataset, generator) -> LongTensor of positions``. Taking the
generator as an argument, instead of keeping one inside, makes every epoch's order a pure
function of (seed, epoch), which is what makes resumed runs identical to uninterrupted ones.
Anything drawn once for a whole run (a fixed subsample) is drawn from a seed given when the
sampler is built, for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
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


def inverse_frequency_weights(labels: Tensor) -> Tensor:
    """Per-example weight 1/n_label, so every label value carries the same total weight."""
    counts = torch.bincount(labels)
    return 1.0 / counts[labels].double()


def balanced(labels: Tensor) -> Sampler:
    """Sample with probability ∝ 1/n_label, with replacement (RWG over groups, RWY over classes).

    As in Idrissi et al. 2022 (arXiv 2110.14503), reweighting is done by sampling, one epoch
    being as many draws as there are training examples.
    """
    return weighted(inverse_frequency_weights(labels))


def fixed_subset(positions: Tensor) -> Sampler:
    """Visit only ``positions``, each once per epoch, in random order."""

    def sample(dataset: GroupedDataset, generator: torch.Generator) -> Tensor:
        return positions[torch.randperm(len(positions), generator=generator)]

    return sample


def balanced_subsample(labels: Tensor, choose: Callable[[Tensor, int], Tensor]) -> Tensor:
    """Positions of a subset with every present label value cut to the rarest one's count.

    The one implementation of group- (or class-) balanced subsampling: SUBG/SUBY's fixed
    subsample, DFR's balanced validation subsets and the overparameterization study's
    majority subsampling all call it. Label values with no examples are ignored.

    Args:
        labels: one label (or group id) per example.
        choose: ``choose(members, k)`` returns ``k`` of the positions ``members`` of one label
            value, at random; label values are visited in increasing order, so a seeded
            ``choose`` gives the same subset on every machine.

    Returns:
        The chosen positions, sorted.
    """
    labels = torch.as_tensor(labels)
    counts = torch.bincount(labels)
    smallest = int(counts[counts > 0].min())
    keep = [
        torch.as_tensor(choose(torch.nonzero(labels == value).flatten(), smallest))
        for value in torch.nonzero(counts).flatten().tolist()
    ]
    return torch.sort(torch.cat(keep)).values


def numpy_choice(rng: np.random.Generator) -> Callable[[Tensor, int], Tensor]:
    """A ``choose`` for :func:`balanced_subsample` drawing without replacement from ``rng``."""
    return lambda members, k: torch.from_numpy(rng.choice(members.numpy(), k, replace=False))


def subsample_to_smallest(labels: Tensor, seed: int) -> Tensor:
    """SUBG (over groups) and SUBY (over classes) of Idrissi et al. 2022: a balanced subsample.

    Drawn once, before training, from ``seed`` (see :func:`balanced_subsample`).
    """
    generator = torch.Generator().manual_seed(seed)
    return balanced_subsample(
        labels, lambda members, k: members[torch.randperm(len(members), generator=generator)[:k]]
    )


def repeat_positions(positions: Tensor, times: int, size: int) -> Sampler:
    """Every example once plus ``positions`` ``times − 1`` more times, shuffled (JTT's upsampling).

    An example listed in ``positions`` therefore appears ``times`` times per epoch in total.
    """
    extra = positions.repeat(max(times - 1, 0))

    def sample(dataset: GroupedDataset, generator: torch.Generator) -> Tensor:
        if len(dataset) != size:
            raise ValueError(f"this sampler was built for {size} examples, not {len(dataset)}")
        order = torch.cat([torch.arange(size), extra])
        return order[torch.randperm(len(order), generator=generator)]

    return sample
