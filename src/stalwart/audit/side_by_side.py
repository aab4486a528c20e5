"""Several runs side by side: for each check, one table of its figures with a column per run.

The best value of each row is marked when the figure says which way is better (accuracies:
higher; gaps: lower) and at least two runs have a number for it; ties are all marked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from stalwart.report.html import STATUS_TEXT, Section
from stalwart.report.tables import ResultTable


def side_by_side(runs: Mapping[str, Sequence[Section]]) -> list[Section]:
    """One section per check found in ``runs`` (label → sections), each with one table."""
    by_key: dict[str, dict[str, Section]] = {}
    for label, sections in runs.items():
        for section in sections:
            by_key.setdefault(section.key, {})[label] = section
    return [_compare(found) for found in by_key.values()]


def _compare(found: Mapping[str, Section]) -> Section:
    first = next(iter(found.values()))
    labels = list(found)
    names: dict[str, None] = {}
    for section in found.values():
        if section.status in ("ok", "partial"):
            names.update(dict.fromkeys(section.figures))
    table = ResultTable(["", *labels], title=first.title)
    for name in names:
        row = []
        for section in found.values():
            figure = section.figures.get(name)
            row.append(figure.text() if figure is not None else "-")
        table.add(name, *row)
        _mark_best(table, len(table.rows) - 1, [found[label].figures.get(name) for label in labels])
    table.add("status", *(STATUS_TEXT[found[label].status] for label in labels))
    out = Section(first.key, first.title, tables=[table])
    if names:
        out.notes.append("▲ marks the best run of a row (ties are all marked).")
    missing = [
        f"{label}: {s.reason}" for label, s in found.items() if s.status != "ok" and s.reason
    ]
    out.notes += missing
    return out


def _mark_best(table: ResultTable, row: int, figures: Sequence) -> None:
    numbers = [
        (column, figure.number(), figure.better)
        for column, figure in enumerate(figures, start=1)
        if figure is not None and figure.better is not None and figure.number() is not None
    ]
    if len(numbers) < 2:
        return
    pick = max if numbers[0][2] == "higher" else min
    best = pick(value for _, value, _ in numbers)
    table.marked |= {(row, column) for column, value, _ in numbers if value == best}
