"""One table, two renderings: a rich table for the terminal and Markdown for docs/results.md.

Every experiment kind builds its results table once, as a :class:`ResultTable` of strings, and
prints or writes it through here, so the terminal and the docs never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.table import Table


@dataclass
class ResultTable:
    """Columns, rows of cells (strings), a title and which rows to emphasise.

    Attributes:
        columns: the header; the first column is left-aligned (labels), the others right.
        rows: one list of cells per row.
        title: shown above the terminal table.
        bold: positions of rows to print in bold (a selected trial, the best method).
        fold: columns of long text (settings, paths): left-aligned like the first column.
    """

    columns: Sequence[str]
    rows: list[list[str]] = field(default_factory=list)
    title: str = ""
    bold: set[int] = field(default_factory=set)
    fold: set[str] = field(default_factory=set)

    def add(self, *cells: str, bold: bool = False) -> None:
        """Append a row."""
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        if bold:
            self.bold.add(len(self.rows))
        self.rows.append([str(c) for c in cells])

    def rich(self) -> Table:
        """The table for a rich console."""
        out = Table(title=self.title or None, title_justify="left")
        for position, column in enumerate(self.columns):
            out.add_column(
                column,
                justify="left" if position == 0 or column in self.fold else "right",
                overflow="fold",  # a results table never cuts a figure short
                no_wrap=position == 0,  # row labels stay whole
            )
        for position, row in enumerate(self.rows):
            out.add_row(*row, style="bold" if position in self.bold else None)
        return out

    def markdown(self) -> str:
        """The table in Markdown (GitHub pipes), without the title."""
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"
