"""What `stalwart runs` prints: the run store's rows (or group means) as a table, CSV or JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from stalwart.cli import console
from stalwart.errors import ConfigError, closest

FORMATS = ("table", "markdown", "csv", "json")
# Shown when no --columns is given: who the run is, and how its selected model did.
DEFAULT_COLUMNS = (
    "run", "status", "method.name", "train.seed", "best_epoch",
    "val.worst_group_accuracy", "test.accuracy", "test.worst_group_accuracy", "seconds",
)  # fmt: skip


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def show_runs(
    path: Path, where: list[str], columns: str | None, group_by: str | None, format: str
) -> None:
    """Print the runs under ``path`` (filtered, maybe grouped) in ``format``."""
    from stalwart.cli import names
    from stalwart.experiments.store import aggregate, read_runs
    from stalwart.report import ResultTable

    if format not in FORMATS:
        raise ConfigError(
            f"unknown format {format!r}{closest(format, FORMATS)}; choose from {list(FORMATS)}"
        )
    frame = read_runs(path, where)
    if frame.empty:
        console.print(f"no runs under {path}" + (" match the filters" if where else ""))
        return
    if group_by:
        keys = names(group_by)
        metrics = names(columns) if columns else [
            c for c in ("val.worst_group_accuracy", "test.accuracy", "test.worst_group_accuracy")
            if c in frame.columns
        ]  # fmt: skip
        frame = aggregate(frame, keys, metrics)
    else:
        wanted = names(columns) if columns else [c for c in DEFAULT_COLUMNS if c in frame.columns]
        missing = [c for c in wanted if c not in frame.columns]
        if missing:
            choices = list(frame.columns)
            raise ConfigError(
                f"no column {missing[0]!r}{closest(missing[0], choices)}; columns: {choices}"
            )
        frame = frame[wanted]
    # Machine-readable formats go to stdout as they are: never wrapped at the terminal's width.
    if format == "csv":
        typer.echo(frame.to_csv(index=False), nl=False)
    elif format == "json":
        records = json.loads(frame.to_json(orient="records"))  # NaN → null, numpy → plain
        typer.echo(json.dumps(records, indent=2))
    else:
        table = ResultTable(
            list(frame.columns), title=f"{len(frame)} rows from {path}", fold=set(frame.columns)
        )
        for row in frame.itertuples(index=False):
            table.add(*(_cell(v) for v in row))
        if format == "markdown":
            typer.echo(table.markdown(), nl=False)
        else:
            console.print(table.rich())
