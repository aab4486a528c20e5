"""The vocabulary of a report (sections, figures, plots) and its one-file HTML page.

A report is a list of :class:`Section` per run: each says whether it was measured (``ok``),
cut short (``partial``), broke (``failed``) or does not apply to the run
(``not_applicable``), why, its headline figures, its tables, its plots and the command that
reproduces it. :func:`render_page` turns runs of sections into one HTML5 page that works
offline and alone: styles inline, plots embedded as ``data:`` images, no script, font, link
or other file fetched from anywhere; readable on a phone (tables scroll inside their box)
and printable (``@media print``). Every string that reaches the page is escaped.

This module is a leaf of ``report``: it renders what it is given and computes nothing.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from stalwart.report.tables import ResultTable

Status = Literal["ok", "partial", "failed", "not_applicable"]
STATUSES: tuple[Status, ...] = ("ok", "partial", "failed", "not_applicable")
STATUS_TEXT = {"ok": "ok", "partial": "partial", "failed": "failed",
               "not_applicable": "not applicable"}  # fmt: skip


@dataclass(frozen=True)
class Figure:
    """One headline number (or word) of a section.

    Attributes:
        value: the number (a fraction when ``unit`` is ``"%"``) or a short text.
        unit: ``"%"`` shows a fraction in percent; any other unit is appended as it is.
        better: ``"higher"`` or ``"lower"`` when runs can be ranked by it (the best of a row
            is marked side by side); None for settings and counts.
    """

    value: float | int | str | None
    unit: str = ""
    better: Literal["higher", "lower"] | None = None

    def text(self) -> str:
        """The value as shown: ``"85.1 %"``, ``"0.05"``, ``"crown"``, ``"-"`` when missing."""
        value = self.value
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if isinstance(value, str):
            return value
        if self.unit == "%":
            return f"{100 * value:.1f} %"
        number = f"{value:g}" if isinstance(value, float) else str(value)
        return f"{number} {self.unit}".rstrip()

    def number(self) -> float | None:
        """The value as a float for ranking, or None (a text, a missing value)."""
        if isinstance(self.value, bool) or not isinstance(self.value, int | float):
            return None
        return None if math.isnan(self.value) else float(self.value)


@dataclass(frozen=True)
class Plot:
    """An image embedded in the page: PNG bytes or SVG text, and what it shows."""

    data: bytes | str
    caption: str = ""

    @property
    def mime(self) -> str:
        """``image/svg+xml`` for SVG text, ``image/png`` for bytes."""
        return "image/svg+xml" if isinstance(self.data, str) else "image/png"

    def data_uri(self) -> str:
        """The image as a ``data:`` URI: the page carries it, nothing is fetched."""
        raw = self.data.encode() if isinstance(self.data, str) else self.data
        return f"data:{self.mime};base64,{base64.b64encode(raw).decode('ascii')}"


@dataclass
class Section:
    """One check's result on one run.

    Attributes:
        key: the check's registered name (``groups``, ``robustness``...).
        title: the heading.
        status: ``ok``, ``partial`` (cut short: what finished is kept), ``failed`` or
            ``not_applicable``.
        reason: why it is not ``ok`` (or a note on how it was measured); empty when none.
        figures: headline figures by name, in order.
        tables: the tables behind them.
        plots: images.
        command: the command line that reproduces the figures.
        seconds: how long the check ran.
        budget: the seconds it was given (None: no limit).
        notes: further lines shown under the figures (settings, caveats).
    """

    key: str
    title: str
    status: Status = "ok"
    reason: str = ""
    figures: dict[str, Figure] = field(default_factory=dict)
    tables: list[ResultTable] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    command: str = ""
    seconds: float = 0.0
    budget: float | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown section status {self.status!r}; choose from {STATUSES}")

    def figure(
        self,
        name: str,
        value: float | int | str | None,
        unit: str = "",
        better: Literal["higher", "lower"] | None = None,
    ) -> None:
        """Record a headline figure (kept in the order recorded)."""
        self.figures[name] = Figure(value, unit, better)

    def to_dict(self) -> dict[str, Any]:
        """The section for ``report.json``: figures as plain values, tables as rows."""
        return {
            "key": self.key,
            "title": self.title,
            "status": self.status,
            "reason": self.reason,
            "figures": {name: f.value for name, f in self.figures.items()},
            "units": {name: f.unit for name, f in self.figures.items() if f.unit},
            "tables": [
                {"title": t.title, "columns": list(t.columns), "rows": t.rows} for t in self.tables
            ],
            "plots": [p.caption for p in self.plots],
            "command": self.command,
            "seconds": self.seconds,
            "budget": self.budget,
            "notes": self.notes,
        }


STYLE = """
:root { color-scheme: light; --ink: #1b1f24; --muted: #59636e; --line: #d0d7de;
  --ok: #1a7f37; --partial: #9a6700; --failed: #cf222e; --na: #6e7781; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff; line-height: 1.45;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
main { max-width: 60rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.5rem; margin: 0.5rem 0; }
h2 { font-size: 1.25rem; margin: 2rem 0 0.5rem; border-bottom: 1px solid var(--line); }
h3 { font-size: 1.05rem; margin: 0 0 0.4rem; }
p, li { overflow-wrap: anywhere; }
.muted { color: var(--muted); }
section.check { border: 1px solid var(--line); border-radius: 6px; padding: 0.75rem;
  margin: 0.75rem 0; }
.status { display: inline-block; padding: 0 0.5em; border-radius: 1em; font-size: 0.8rem;
  font-weight: 600; color: #fff; vertical-align: middle; }
.status-ok { background: var(--ok); } .status-partial { background: var(--partial); }
.status-failed { background: var(--failed); } .status-not_applicable { background: var(--na); }
dl.figures { display: grid; grid-template-columns: repeat(auto-fill, minmax(11rem, 1fr));
  gap: 0.5rem; margin: 0.5rem 0; }
dl.figures div { border-left: 3px solid var(--line); padding-left: 0.5rem; }
dt { font-size: 0.8rem; color: var(--muted); } dd { margin: 0; font-size: 1.1rem;
  font-weight: 600; font-variant-numeric: tabular-nums; }
.table-scroll { overflow-x: auto; max-width: 100%; margin: 0.5rem 0; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; font-size: 0.9rem; }
caption { text-align: left; color: var(--muted); padding-bottom: 0.25rem; caption-side: top; }
th, td { border-bottom: 1px solid var(--line); padding: 0.2rem 0.6rem; text-align: left;
  white-space: nowrap; }
td.num, th.num { text-align: right; }
tr.bold { background: #f6f8fa; }
.best { color: var(--ok); }
figure { margin: 0.5rem 0; } figure img { max-width: 100%; height: auto; display: block; }
figcaption { font-size: 0.85rem; color: var(--muted); }
pre { background: #f6f8fa; padding: 0.5rem; overflow-x: auto; white-space: pre-wrap;
  overflow-wrap: anywhere; font-size: 0.85rem; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.reason { border-left: 3px solid var(--partial); padding-left: 0.5rem; }
.reason-failed { border-left-color: var(--failed); }
.reason-not_applicable { border-left-color: var(--na); }
@media (max-width: 40rem) { main { padding: 0.5rem; } body { font-size: 14px; }
  section.check { padding: 0.5rem; } }
@media print { body { font-size: 11pt; } main { max-width: none; padding: 0; }
  section.check { break-inside: avoid; border-color: #999; }
  .table-scroll { overflow: visible; } th, td { white-space: normal; }
  .status { color: #000; border: 1px solid #000; background: none !important; }
  pre { white-space: pre-wrap; } h2 { break-after: avoid; } }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _anchor(*parts: str) -> str:
    """An id for links within the page: letters, digits and dashes only."""
    text = "-".join(parts)
    return "".join(c if c.isascii() and c.isalnum() else "-" for c in text).strip("-") or "x"


def render_section(section: Section, anchor: str = "", *, measured: bool = True) -> str:
    """One section as an HTML fragment (``<section class="check">``).

    ``measured=False`` (a side-by-side table, whose runs' statuses are in its last row) leaves
    out the status badge and the time.
    """
    parts = [f'<section class="check" id="{_e(anchor or _anchor(section.key))}">']
    heading = f"<h3>{_e(section.title)}"
    if measured:
        timing = f"{section.seconds:.1f} s"
        if section.budget is not None:
            timing += f" of {section.budget:g} s"
        heading += (
            f' <span class="status status-{section.status}">'
            f"{_e(STATUS_TEXT[section.status])}</span> "
            f'<span class="muted">{_e(timing)}</span>'
        )
    parts.append(heading + "</h3>")
    if section.reason:
        parts.append(f'<p class="reason reason-{section.status}">{_e(section.reason)}</p>')
    if section.figures:
        parts.append('<dl class="figures">')
        for name, value in section.figures.items():
            parts.append(f"<div><dt>{_e(name)}</dt><dd>{_e(value.text())}</dd></div>")
        parts.append("</dl>")
    for note in section.notes:
        parts.append(f'<p class="muted">{_e(note)}</p>')
    for table in section.tables:
        parts.append(table.html())
    for plot in section.plots:
        parts.append(
            f'<figure><img src="{plot.data_uri()}" alt="{_e(plot.caption or section.title)}">'
        )
        if plot.caption:
            parts.append(f"<figcaption>{_e(plot.caption)}</figcaption>")
        parts.append("</figure>")
    if section.command:
        parts.append(
            f'<p class="muted">Reproduce:</p><pre><code>{_e(section.command)}</code></pre>'
        )
    parts.append("</section>")
    return "\n".join(parts)


def status_table(runs: Mapping[str, Sequence[Section]]) -> ResultTable:
    """One row per run, one column per section: its status and seconds."""
    keys: dict[str, str] = {}
    for sections in runs.values():
        for section in sections:
            keys.setdefault(section.key, section.title)
    table = ResultTable(["run", *keys.values()], title="What was measured")
    for label, sections in runs.items():
        found = {s.key: s for s in sections}
        cells = [
            f"{STATUS_TEXT[found[k].status]} ({found[k].seconds:.1f} s)" if k in found else "-"
            for k in keys
        ]
        table.add(label, *cells)
    return table


def render_page(
    title: str,
    runs: Mapping[str, Sequence[Section]],
    sections: Sequence[Section] = (),
    *,
    notes: Sequence[str] = (),
    paths: Mapping[str, str] | None = None,
) -> str:
    """The whole report as one self-contained HTML5 page.

    Args:
        title: the page's heading and ``<title>``.
        runs: each run's label and its sections, in order.
        sections: sections about all runs together (side-by-side tables), shown first.
        notes: lines under the heading (how the runs were chosen, budgets).
        paths: each run's directory, by label, shown beside its heading.
    """
    body = [f"<h1>{_e(title)}</h1>"]
    body += [f'<p class="muted">{_e(note)}</p>' for note in notes]
    body.append(status_table(runs).html())
    if sections:
        body.append('<h2 id="side-by-side">Side by side</h2>')
        body += [render_section(s, _anchor("all", s.key), measured=False) for s in sections]
    for label, run_sections in runs.items():
        body.append(f'<h2 id="{_e(_anchor("run", label))}">{_e(label)}</h2>')
        if paths and label in paths:
            body.append(f'<p class="muted"><code>{_e(paths[label])}</code></p>')
        body += [render_section(s, _anchor(label, s.key)) for s in run_sections]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        "<body>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )
