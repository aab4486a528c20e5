"""Per-group accuracy tables: rich for the terminal, a ResultTable for Markdown and HTML."""

from __future__ import annotations

from collections.abc import Mapping

from rich.table import Table

from stalwart.metrics.group import GroupMetrics
from stalwart.report.stats import percent
from stalwart.report.tables import ResultTable


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


def group_result_table(metrics: Mapping[str, GroupMetrics], title: str = "") -> ResultTable:
    """The rows of :func:`group_table` as a ``ResultTable`` (for Markdown and HTML reports)."""
    columns = ["group"]
    for split in metrics:
        columns += [f"{split} n", f"{split} acc %"]
    table = ResultTable(columns, title=title)
    first = next(iter(metrics.values()))
    for position, name in enumerate(first.group_names):
        cells = []
        for m in metrics.values():
            cells += [str(m.group_counts[position]), percent(m.group_accuracy[position])]
        table.add(name, *cells)
    rows = {
        "average": lambda m: m.accuracy,
        "weighted average": lambda m: m.weighted_accuracy,
        "worst group": lambda m: m.worst_group_accuracy,
    }
    for label, get in rows.items():
        cells = []
        for m in metrics.values():
            cells += ["", percent(get(m))]
        table.add(label, *cells, bold=label == "worst group")
    return table
