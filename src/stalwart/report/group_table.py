"""Per-group accuracy tables: rich for the terminal, a ResultTable for Markdown and HTML."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from rich.table import Table

from stalwart.metrics.group import GroupMetrics
from stalwart.report.stats import percent
from stalwart.report.tables import ResultTable

SUMMARY_ROWS = {
    "average": lambda m: m.accuracy,
    "weighted average": lambda m: m.weighted_accuracy,
    "worst group": lambda m: m.worst_group_accuracy,
}
"""The rows under the groups: each split's accuracy averaged three ways."""


def _columns(metrics: Mapping[str, GroupMetrics]) -> list[str]:
    return ["group", *(f"{split} {what}" for split in metrics for what in ("n", "acc %"))]


def _group_rows(metrics: Mapping[str, GroupMetrics]) -> Iterator[tuple[str, list[str]]]:
    first = next(iter(metrics.values()))
    for position, name in enumerate(first.group_names):
        cells = []
        for m in metrics.values():
            cells += [str(m.group_counts[position]), percent(m.group_accuracy[position])]
        yield name, cells


def _summary_rows(metrics: Mapping[str, GroupMetrics]) -> Iterator[tuple[str, list[str]]]:
    for label, get in SUMMARY_ROWS.items():
        yield label, [cell for m in metrics.values() for cell in ("", percent(get(m)))]


def group_table(metrics: Mapping[str, GroupMetrics], title: str = "") -> Table:
    """One row per group and one column per evaluated split: count and accuracy (%)."""
    table = Table(title=title or None, title_justify="left")
    for position, column in enumerate(_columns(metrics)):
        table.add_column(column, justify="left" if position == 0 else "right")
    for name, cells in _group_rows(metrics):
        table.add_row(name, *cells)
    table.add_section()
    for label, cells in _summary_rows(metrics):
        table.add_row(label, *cells, style="bold" if label == "worst group" else None)
    return table


def group_result_table(metrics: Mapping[str, GroupMetrics], title: str = "") -> ResultTable:
    """The rows of :func:`group_table` as a ``ResultTable`` (for Markdown and HTML reports)."""
    table = ResultTable(_columns(metrics), title=title)
    for name, cells in _group_rows(metrics):
        table.add(name, *cells)
    for label, cells in _summary_rows(metrics):
        table.add(label, *cells, bold=label == "worst group")
    return table
