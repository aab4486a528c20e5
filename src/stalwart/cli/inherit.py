"""`stalwart inherit`: which failures adapted models share, and how much beyond chance.

Reads every ``failures.npz`` under the given folders (``stalwart.shift.inherit``) and prints
each model's failure rate per perturbation, the overlap matrix of each perturbation (Jaccard
index and rate beyond chance) and the contrast behind homogenization (arXiv 2108.07258): pairs
of models adapted from the same encoder against pairs with a model trained from scratch.
Tables are for reading (rates in percent); CSV (one row per pair of models, every statistic)
and JSON (everything) are for programs.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from stalwart.cli import app, console, friendly_errors
from stalwart.errors import ConfigError, closest

if TYPE_CHECKING:
    from stalwart.report import ResultTable
    from stalwart.shift.inherit import (
        FailureSet,
        GroupedMatrix,
        Overlap,
        OverlapMatrix,
        PairGroup,
    )

FORMATS = ("table", "markdown", "csv", "json")
BY = ("adaptation", "model")
"""How tables are laid out: one row per task and adaptation (seeds averaged) or per model."""
TABLE_WIDTH = 200
"""The width a table written with --out is laid out for (no terminal to measure)."""


def _choose(sets: list[FailureSet], field: str, wanted: list[str]) -> list[FailureSet]:
    """The sets whose ``field`` is one of ``wanted`` (all for none), or an error listing them."""
    found = sorted({getattr(s, field) for s in sets})
    for name in wanted:
        if name not in found:
            what = "under perturbation" if field == "perturbation" else f"of {field}"
            raise ConfigError(
                f"no failures {what} {name!r}{closest(name, found)}; the files hold {found}"
            )
    return [s for s in sets if not wanted or getattr(s, field) in wanted]


def _by_group(sets: list[FailureSet]) -> dict[tuple[str, str], list[FailureSet]]:
    """The sets per (perturbation, kind), each group's models by task, adaptation and name."""
    groups: dict[tuple[str, str], list[FailureSet]] = {}
    for s in sorted(sets, key=lambda s: (s.perturbation, s.kind, s.task, s.adaptation, s.model)):
        groups.setdefault((s.perturbation, s.kind), []).append(s)
    return groups


def _source(s: FailureSet) -> str:
    return s.encoder if s.encoder is not None else "scratch"


def _adaptation_label(s: FailureSet) -> str:
    """The group of a model in ``--by adaptation`` tables: its task and adaptation."""
    return f"{s.task} · {s.adaptation}"


def _number(value: float, digits: int = 2, sign: bool = False) -> str:
    if math.isnan(value):
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def _rates_table(groups: dict[tuple[str, str], list[FailureSet]]) -> ResultTable:
    from stalwart.report import ResultTable

    models: dict[str, FailureSet] = {}
    for found in groups.values():
        for s in found:
            models.setdefault(s.model, s)
    columns = [f"{p} {k} %" for p, k in groups]
    table = ResultTable(
        ["model", "task", "adaptation", "encoder", *columns],
        title="failure rate of each model per perturbation (% of its probes; flip: the "
        "prediction changed, error: it is wrong)",
        fold={"task", "adaptation", "encoder"},
    )
    rates = {(s.model, s.perturbation, s.kind): s.rate for f in groups.values() for s in f}
    for name in sorted(models):
        s = models[name]
        cells = [rates.get((name, p, k)) for p, k in groups]
        table.add(
            name, s.task, s.adaptation, _source(s),
            *("-" if r is None else f"{100 * r:.1f}" for r in cells),
        )  # fmt: skip
    return table


def _grouped_rates_table(groups: dict[tuple[str, str], list[FailureSet]]) -> ResultTable:
    from stalwart.report import ResultTable, mean_std, percent_cell

    columns = [f"{p} {k} %" for p, k in groups]
    table = ResultTable(
        ["task", "adaptation", "encoder", "models", *columns],
        title="failure rate per task and adaptation (% of the probes, mean ± std over its "
        "models; flip: the prediction changed, error: it is wrong)",
        fold={"encoder"},
    )
    rates: dict[tuple[str, str], dict[tuple[str, str], list[float]]] = {}
    first: dict[tuple[str, str], FailureSet] = {}
    for column, found in groups.items():
        for s in found:
            key = (s.task, s.adaptation)
            first.setdefault(key, s)
            rates.setdefault(key, {}).setdefault(column, []).append(s.rate)
    for key in sorted(rates):
        s = first[key]
        models = max(len(r) for r in rates[key].values())
        cells = [rates[key].get(column) for column in groups]
        table.add(
            s.task, s.adaptation, _source(s), str(models),
            *("-" if r is None else percent_cell(mean_std(r)) for r in cells),
        )  # fmt: skip
    return table


def _grouped_matrix_table(perturbation: str, kind: str, grouped: GroupedMatrix) -> ResultTable:
    from stalwart.report import ResultTable

    n = len(grouped.labels)
    table = ResultTable(
        ["task · adaptation", *(f"#{j + 1}" for j in range(n))],
        title=f"{perturbation} ({kind}): mean Jaccard index of failures over the pairs of "
        "models of the two groups (on the diagonal, between a group's own models), and in "
        "brackets the joint failure rate beyond chance (points)",
    )

    def cell(i: int, j: int) -> str:
        if not grouped.pairs[i, j]:
            return "-"
        jaccard, beyond = grouped.jaccard[i, j], 100 * grouped.beyond_chance[i, j]
        return f"{_number(jaccard)} ({_number(beyond, 1, sign=True)})"

    for i, label in enumerate(grouped.labels):
        rows = f"#{i + 1} {label} ({grouped.sizes[i]})"
        table.add(rows, *(cell(i, j) for j in range(n)))
    return table


def _matrix_table(perturbation: str, kind: str, matrix: OverlapMatrix) -> ResultTable:
    from stalwart.report import ResultTable

    n = len(matrix.sets)
    probes = sorted({matrix[i, j].n for i in range(n) for j in range(n)})
    shared = f"{probes[0]}" if len(probes) == 1 else f"{probes[0]}-{probes[-1]}"
    table = ResultTable(
        ["model", *(f"#{j + 1}" for j in range(n))],
        title=f"{perturbation} ({kind}): Jaccard index of failures, and in brackets the joint "
        f"failure rate beyond chance (points); {shared} shared probes",
    )

    def cell(pair: Overlap) -> str:
        return f"{_number(pair.jaccard)} ({_number(100 * pair.beyond_chance, 1, sign=True)})"

    for i, s in enumerate(matrix.sets):
        table.add(f"#{i + 1} {s.model}", *("-" if i == j else cell(matrix[i, j]) for j in range(n)))
    return table


def _summary_table(summary: list[PairGroup]) -> ResultTable:
    from stalwart.report import ResultTable

    table = ResultTable(
        ["perturbation", "models", "tasks", "pairs", "mean Jaccard", "beyond chance (points)",
         "lift"],
        title="shared failures by where the models come from: adapted from the same encoder, "
        "or with a model trained from scratch (homogenization, arXiv 2108.07258)",
        fold={"models", "tasks"},
    )  # fmt: skip
    for group in summary:
        table.add(
            f"{group.perturbation} ({group.kind})",
            group.relation,
            "same task" if group.same_task else "across tasks",
            str(group.pairs),
            _number(group.mean_jaccard),
            _number(100 * group.mean_beyond_chance, 1, sign=True),
            _number(group.mean_lift),
        )
    return table


def _csv(pairs: list[Overlap]) -> str:
    import csv

    rows = [pair.to_dict() for pair in pairs]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buffer.getvalue()


def _json(
    files: list[Path],
    groups: dict[tuple[str, str], list[FailureSet]],
    pairs: list[Overlap],
    summary: list[PairGroup],
) -> str:
    out = {
        "files": [str(f) for f in files],
        "rates": [
            {**s.description(), "probes": len(s), "failures": s.failures, "rate": s.rate}
            for found in groups.values()
            for s in found
        ],
        "pairs": [pair.to_dict() for pair in pairs],
        "summary": [group.to_dict() for group in summary],
    }
    return json.dumps(out, indent=2, allow_nan=False) + "\n"


def _text(tables: list[ResultTable], format: str) -> str:
    if format == "markdown":
        return "\n".join(
            (f"**{table.title}**\n\n" if table.title else "") + table.markdown() for table in tables
        )
    from rich.console import Console

    canvas = Console(file=io.StringIO(), width=TABLE_WIDTH, record=True, color_system=None)
    for table in tables:
        canvas.print(table.rich())
    return canvas.export_text()


@app.command()
@friendly_errors
def inherit(
    roots: Annotated[
        list[Path],
        typer.Argument(help="Folders to search for failures.npz (or such files themselves)."),
    ],
    perturbation: Annotated[
        list[str] | None,
        typer.Option(help="Only this perturbation (repeatable). Default: every one found."),
    ] = None,
    adaptation: Annotated[
        list[str] | None,
        typer.Option(help="Only models of this adaptation (repeatable). Default: every one."),
    ] = None,
    format: Annotated[
        str, typer.Option("--format", help="table, markdown, csv (one row per pair) or json.")
    ] = "table",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the output to this file, not stdout.")
    ] = None,
    by: Annotated[
        str,
        typer.Option(
            "--by",
            help="Tables per task and adaptation, seeds averaged (adaptation), or per model "
            "(model). CSV and JSON always hold every model and pair.",
        ),
    ] = "adaptation",
) -> None:
    """Which failures models adapted from one encoder share, against models from scratch.

    For each perturbation: every model's failure rate on the shared probes, the overlap of
    every pair of models (Jaccard index, joint failure rate beyond chance), and the mean
    overlap of pairs adapted from the same encoder against pairs with a model trained from
    scratch (homogenization, arXiv 2108.07258). CSV and JSON add the expected joint rate, the
    lift and the exact one-sided p-value of each pair.
    """
    from stalwart.shift.inherit import (
        find_failure_files,
        grouped_matrix,
        overlap_matrix,
        read_failures,
        summarize,
    )

    if format not in FORMATS:
        raise ConfigError(
            f"unknown format {format!r}{closest(format, FORMATS)}; choose from {list(FORMATS)}"
        )
    if by not in BY:
        raise ConfigError(f"unknown --by {by!r}{closest(by, BY)}; choose from {list(BY)}")
    files = find_failure_files(roots)
    sets = _choose(read_failures(files), "perturbation", perturbation or [])
    groups = _by_group(_choose(sets, "adaptation", adaptation or []))
    matrices = {key: overlap_matrix(found) for key, found in groups.items()}
    pairs = [pair for matrix in matrices.values() for pair in matrix.pairs()]
    summary = summarize(pairs)
    if format == "csv" and not pairs:
        raise ConfigError(
            "every perturbation has one model only: there is no pair to compare; pass the "
            "folders of more models"
        )
    if format == "csv":
        text = _csv(pairs)
    elif format == "json":
        text = _json(files, groups, pairs, summary)
    else:
        if by == "model":
            tables = [_rates_table(groups)]
            tables += [_matrix_table(*key, matrix) for key, matrix in matrices.items()]
        else:
            tables = [_grouped_rates_table(groups)]
            tables += [
                _grouped_matrix_table(*key, grouped_matrix(matrix, _adaptation_label))
                for key, matrix in matrices.items()
            ]
        if summary:
            tables.append(_summary_table(summary))
        if out is None and format == "table":
            for table in tables:
                console.print(table.rich())
            return
        text = _text(tables, format)
    if out is None:
        # For programs: plain stdout, never wrapped at the terminal's width.
        typer.echo(text, nl=False)
        return
    from stalwart.io import atomic_write_text

    atomic_write_text(out, text)
    console.print(f"wrote {out}", highlight=False, soft_wrap=True)
