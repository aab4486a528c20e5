"""One table, three renderings: rich for the terminal, Markdown for docs, HTML for reports.

Every experiment kind builds its results table once, as a :class:`ResultTable` of strings, and
prints or writes it through here, so the terminal, the docs and the HTML report never disagree.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text


@dataclass
class ResultTable:
    """Columns, rows of cells (strings), a title and which rows to emphasise.

    Attributes:
        columns: the header; the first column is left-aligned (labels), the others right.
        rows: one list of cells per row.
        title: shown above the terminal table.
        bold: positions of rows to print in bold (a selected trial, the best method).
        fold: columns of long text (settings, paths): left-aligned like the first column.
        marked: ``(row, column)`` positions of single cells to emphasise (the best of a row
            in a side-by-side comparison).
    """

    columns: Sequence[str]
    rows: list[list[str]] = field(default_factory=list)
    title: str = ""
    bold: set[int] = field(default_factory=set)
    fold: set[str] = field(default_factory=set)
    marked: set[tuple[int, int]] = field(default_factory=set)

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
            # Text, not markup: a cell may hold "[...]" that rich would read as a style.
            cells = [
                Text(cell, style="bold") if (position, column) in self.marked else cell
                for column, cell in enumerate(row)
            ]
            out.add_row(*cells, style="bold" if position in self.bold else None)
        return out

    def markdown(self) -> str:
        """The table in Markdown (GitHub pipes), without the title."""
        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += [
            "| "
            + " | ".join(self._marked(r, c, cell, "**", "**") for c, cell in enumerate(row))
            + " |"
            for r, row in enumerate(self.rows)
        ]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        """The table as an HTML fragment, every cell escaped, inside a box that scrolls.

        The box (``<div class="table-scroll">``) lets a wide table scroll sideways on a
        narrow screen instead of widening the page; bold rows and marked cells are
        ``<strong>``, so they stay visible in print and without styles.
        """
        parts = ['<div class="table-scroll"><table>']
        if self.title:
            parts.append(f"<caption>{html.escape(self.title)}</caption>")
        parts.append("<thead><tr>")
        for position, column in enumerate(self.columns):
            parts.append(f'<th scope="col"{self._align(position, column)}>'
                         f"{html.escape(str(column))}</th>")  # fmt: skip
        parts.append("</tr></thead><tbody>")
        for r, row in enumerate(self.rows):
            parts.append('<tr class="bold">' if r in self.bold else "<tr>")
            for c, cell in enumerate(row):
                text = html.escape(cell)
                if r in self.bold or (r, c) in self.marked:
                    text = f"<strong>{text}</strong>"
                if (r, c) in self.marked:
                    text = f'<span class="best" title="best of this row">{text} ▲</span>'
                tag = "th" if c == 0 else "td"
                scope = ' scope="row"' if c == 0 else ""
                parts.append(f"<{tag}{scope}{self._align(c, self.columns[c])}>{text}</{tag}>")
            parts.append("</tr>")
        parts.append("</tbody></table></div>")
        return "".join(parts)

    def _align(self, position: int, column: str) -> str:
        return "" if position == 0 or column in self.fold else ' class="num"'

    def _marked(self, row: int, column: int, cell: str, before: str, after: str) -> str:
        return f"{before}{cell}{after}" if (row, column) in self.marked and cell else cell
