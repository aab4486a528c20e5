"""Metrics: per-group and worst-group accuracy, the weighted average, ranking and thresholds."""

from stalwart.metrics.group import (
    SELECTABLE,
    GroupMetrics,
    accuracy,
    group_accuracy,
    group_metrics,
    weighted_accuracy,
    worst_group_accuracy,
)
from stalwart.metrics.ranking import (
    auprc,
    auroc,
    f1_at_threshold,
    recall_at_fpr,
    threshold_at_contamination,
    threshold_at_fpr,
)

__all__ = [
    "SELECTABLE",
    "GroupMetrics",
    "accuracy",
    "auprc",
    "auroc",
    "f1_at_threshold",
    "group_accuracy",
    "group_metrics",
    "recall_at_fpr",
    "threshold_at_contamination",
    "threshold_at_fpr",
    "weighted_accuracy",
    "worst_group_accuracy",
]
