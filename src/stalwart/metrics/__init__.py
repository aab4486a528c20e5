"""Metrics: per-group and worst-group accuracy, the weighted average, AUROC and AUPRC."""

from stalwart.metrics.group import (
    SELECTABLE,
    GroupMetrics,
    accuracy,
    group_accuracy,
    group_metrics,
    weighted_accuracy,
    worst_group_accuracy,
)
from stalwart.metrics.ranking import auprc, auroc

__all__ = [
    "SELECTABLE",
    "GroupMetrics",
    "accuracy",
    "auprc",
    "auroc",
    "group_accuracy",
    "group_metrics",
    "weighted_accuracy",
    "worst_group_accuracy",
]
