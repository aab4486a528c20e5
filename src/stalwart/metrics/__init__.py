"""Metrics: per-group and worst-group accuracy, and the group-size-weighted average."""

from stalwart.metrics.group import (
    SELECTABLE,
    GroupMetrics,
    accuracy,
    group_accuracy,
    group_metrics,
    weighted_accuracy,
    worst_group_accuracy,
)

__all__ = [
    "SELECTABLE",
    "GroupMetrics",
    "accuracy",
    "group_accuracy",
    "group_metrics",
    "weighted_accuracy",
    "worst_group_accuracy",
]
