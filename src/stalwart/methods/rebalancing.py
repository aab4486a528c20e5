"""Class and group balancing: SUBG, SUBY, RWG and RWY (Idrissi et al., arXiv 2110.14503).

Each is ERM on rebalanced data. SUB* subsamples every group (G) or class (Y) once, before
training, to the size of the smallest; RW* samples with probability ∝ 1/n_group or
1/n_class, with replacement, as many draws per epoch as there are training examples (as the
reference does with a weighted sampler rather than a weighted loss). The *Y variants need no
group labels; the *G variants do.
"""

from __future__ import annotations

from torch import Tensor

from stalwart.data.core import GroupedDataset
from stalwart.data.samplers import Sampler, balanced, fixed_subset, subsample_to_smallest
from stalwart.methods.catalog import register_method
from stalwart.methods.erm import ERM


class Rebalanced(ERM):
    """ERM over a rebalanced stream of the training data."""

    def __init__(self, labels: Tensor, *, subsample: bool) -> None:
        super().__init__()
        self._labels = labels
        self.subsample = subsample

    def sampler(self, seed: int) -> Sampler:
        """A fixed subsample drawn from ``seed``, or inverse-frequency sampling."""
        if self.subsample:
            return fixed_subset(subsample_to_smallest(self._labels, seed))
        return balanced(self._labels)


@register_method("subg", group_labels="yes")
def subg(train: GroupedDataset) -> Rebalanced:
    """Subsample every group to the smallest group's size."""
    return Rebalanced(train.group, subsample=True)


@register_method("suby", group_labels="no")
def suby(train: GroupedDataset) -> Rebalanced:
    """Subsample every class to the smallest class's size."""
    return Rebalanced(train.y, subsample=True)


@register_method("rwg", group_labels="yes")
def rwg(train: GroupedDataset) -> Rebalanced:
    """Sample groups with probability ∝ 1/n_group."""
    return Rebalanced(train.group, subsample=False)


@register_method("rwy", group_labels="no")
def rwy(train: GroupedDataset) -> Rebalanced:
    """Sample classes with probability ∝ 1/n_class."""
    return Rebalanced(train.y, subsample=False)
