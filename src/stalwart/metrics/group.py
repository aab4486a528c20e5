"""Accuracy per group, worst-group accuracy and the group-size-weighted average.

The worst group is the minimum over every group that has examples in the evaluated set (not
necessarily the smallest group). The weighted average re-weights per-group accuracies by group
proportions of a reference set, usually the training data; the weights always come from data,
never from hard-coded counts (the Waterbirds convention of WILDS, computed instead of typed in).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

SELECTABLE = ("accuracy", "worst_group_accuracy", "weighted_accuracy")


def accuracy(predictions: Tensor, labels: Tensor) -> float:
    """Fraction of predictions equal to the labels (NaN for an empty set)."""
    return (predictions == labels).float().mean().item() if len(labels) else math.nan


def group_accuracy(
    predictions: Tensor, labels: Tensor, groups: Tensor, n_groups: int
) -> tuple[Tensor, Tensor]:
    """Per-group accuracy (NaN where a group is empty) and per-group example counts."""
    correct = torch.bincount(groups, weights=(predictions == labels).double(), minlength=n_groups)
    counts = torch.bincount(groups, minlength=n_groups)
    return correct / counts.double(), counts  # 0/0 gives NaN for empty groups, as intended


def worst_group_accuracy(per_group: Tensor) -> float:
    """Minimum accuracy over groups that have examples."""
    present = per_group[~per_group.isnan()]
    return present.min().item() if len(present) else math.nan


def weighted_accuracy(per_group: Tensor, reference_counts: Tensor) -> float:
    """Per-group accuracy averaged with weights ∝ ``reference_counts`` (groups with data only)."""
    present = ~per_group.isnan() & (reference_counts > 0)
    weights = reference_counts[present].double()
    if weights.sum() == 0:
        return math.nan
    return float((per_group[present] * weights).sum() / weights.sum())


@dataclass(frozen=True)
class GroupMetrics:
    """Average, per-group and worst-group accuracy of one model on one dataset."""

    accuracy: float
    worst_group_accuracy: float
    group_accuracy: tuple[float, ...]
    group_counts: tuple[int, ...]
    group_names: tuple[str, ...]
    weighted_accuracy: float | None = None
    loss: float | None = None

    @property
    def worst_group(self) -> str:
        """Name of the group with the lowest accuracy."""
        present = [
            (a, n) for a, n in zip(self.group_accuracy, self.group_names, strict=True) if a == a
        ]
        return min(present)[1] if present else ""

    def value(self, name: str) -> float:
        """The metric ``name`` (one of ``SELECTABLE``), as used for model selection."""
        if name not in SELECTABLE:
            raise ValueError(f"unknown metric {name!r}; choose from {list(SELECTABLE)}")
        value = getattr(self, name)
        if value is None:
            raise ValueError(f"{name} needs reference group counts (pass weights_from=...)")
        return value

    def as_dict(self) -> dict:
        """A JSON-ready dict of every field (sequences as lists, as they read back from JSON)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def __str__(self) -> str:
        width = max(len(n) for n in self.group_names) if self.group_names else 5
        lines = [f"{'group':<{width}}  {'n':>6}  accuracy"]
        for name, count, acc in zip(
            self.group_names, self.group_counts, self.group_accuracy, strict=True
        ):
            lines.append(f"{name:<{width}}  {count:>6}  {_percent(acc)}")
        lines.append(
            f"{'average':<{width}}  {sum(self.group_counts):>6}  {_percent(self.accuracy)}"
        )
        if self.weighted_accuracy is not None:
            lines.append(
                f"{'weighted average':<{width}}  {'':>6}  {_percent(self.weighted_accuracy)}"
            )
        lines.append(f"{'worst group':<{width}}  {'':>6}  {_percent(self.worst_group_accuracy)}")
        return "\n".join(lines)


def _percent(value: float) -> str:
    return "     -" if value != value else f"{100 * value:6.2f}%"


def group_metrics(
    predictions: Tensor,
    labels: Tensor,
    groups: Tensor,
    group_names: Sequence[str],
    *,
    reference_counts: Tensor | None = None,
    loss: float | None = None,
) -> GroupMetrics:
    """All group metrics from predicted and true labels and group ids."""
    per_group, counts = group_accuracy(predictions, labels, groups, len(group_names))
    return GroupMetrics(
        accuracy=accuracy(predictions, labels),
        worst_group_accuracy=worst_group_accuracy(per_group),
        group_accuracy=tuple(per_group.tolist()),
        group_counts=tuple(counts.tolist()),
        group_names=tuple(group_names),
        weighted_accuracy=None
        if reference_counts is None
        else weighted_accuracy(per_group, reference_counts.cpu()),
        loss=loss,
    )
