"""Per-group accuracy tables for the terminal (rich)."""

from __future__ import annotations

from collections.abc import Mapping

from rich.table import Table

from stalwart.metrics.group import GroupMetrics
from stalwart.report.stats import percent


def group_table(metrics: Mapping[str, GroupMetrics], title: str = "") -> Table:
    """One row per group and one column per evaluated split: count and accuracy (%)."""
    table = Table(title=title or None, title_justify="left")
    table.add_column("group")
    for split in metrics:
        table.add_column(f"{split} n", justify="right")
        table.add_column(f"{split} acc %", justify="right")
    first = next(iter(metrics.values()))
    for position, name in enumerate(first.group_names):
        cells = []
        for m in metrics.values():
            cells += [str(m.group_counts[position]), percent(m.group_accuracy[position])]
        table.add_row(name, *cells)
    table.add_section()
    rows = {
        "average": lambda m: m.accuracy,
        "weighted average": lambda m: m.weighted_accuracy,
        "worst group": lambda m: m.worst_group_accuracy,
    }
    for label, get in rows.items():
        cells = []
        for m in metrics.values():
            cells += ["", percent(get(m))]
        table.add_row(label, *cells, style="bold" if label == "worst group" else None)
    return table
