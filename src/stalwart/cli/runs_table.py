"""What `stalwart runs` prints: the run store's rows (or group means) as a table, CSV or JSON.

Tables are for reading: accuracies in percent, a group's mean and std in one ``m ± s`` cell,
short headers. CSV and JSON are for programs: every column, raw values, never wrapped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import typer

from stalwart.cli import console
from stalwart.errors import ConfigError, closest

FORMATS = ("table", "markdown", "csv", "json")
# Shown when no --columns is given: who the run is, and how its selected model did.
DEFAULT_COLUMNS = (
    "run", "status", "method.name", "train.seed", "best_epoch",
    "val.worst_group_accuracy", "test.accuracy", "test.worst_group_accuracy", "seconds",
)  # fmt: skip
DEFAULT_METRICS = ("val.worst_group_accuracy", "test.accuracy", "test.worst_group_accuracy")
# Long metric names and the short headers tables give them (the value then in percent).
SHORT = (("worst_group_accuracy", "worst %"), ("weighted_accuracy", "weighted %"),
         ("accuracy", "acc %"))  # fmt: skip


def _header(column: str) -> str:
    for long, short in SHORT:
        if column.endswith(long):  # "test.worst_group_accuracy" → "test worst %" (wraps at spaces)
            return column.removesuffix(long).replace(".", " ") + short
    return {
        "method.name": "method",
        "train.seed": "seed",
        "best_epoch": "epoch",
        "seconds": "s",
    }.get(column, column)


def _is_percent(column: str) -> bool:
    return any(column.endswith(long) for long, _ in SHORT)


def _cell(value: object, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if percent and isinstance(value, (int, float)):
        return f"{100 * value:.1f}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _mean_std(mean: float, std: float, percent: bool) -> str:
    if mean != mean:
        return "-"
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if percent else f"{mean:.4g} ± {std:.4g}"


def _readable(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """Headers and cells for a table: percent, and ``mean ± std`` merged for group means."""
    headers, getters = [], []
    for column in frame.columns:
        stem = column.rsplit(".", 1)[0]
        paired = {f"{stem}.mean", f"{stem}.std"} <= set(frame.columns)
        if paired and column.endswith(".std"):
            continue  # shown in its mean's cell
        if paired:
            headers.append(_header(stem))
            getters.append(
                lambda row, s=stem: _mean_std(row[f"{s}.mean"], row[f"{s}.std"], _is_percent(s))
            )
        else:
            headers.append(_header(column))
            getters.append(lambda row, c=column: _cell(row[c], _is_percent(c)))
    return headers, [[get(row) for get in getters] for _, row in frame.iterrows()]


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
    keys = names(group_by) if group_by else []
    if keys:
        metrics = names(columns) if columns else [c for c in DEFAULT_METRICS if c in frame]
        frame = aggregate(frame, keys, metrics)
    else:
        wanted = names(columns) if columns else [c for c in DEFAULT_COLUMNS if c in frame]
        readable = format in ("table", "markdown")
        if readable and not columns and (frame["status"] == "finished").all():
            wanted.remove("status")  # say it only where some run is not
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
        return
    if format == "json":
        records = json.loads(frame.to_json(orient="records"))  # NaN → null, numpy → plain
        typer.echo(json.dumps(records, indent=2))
        return
    headers, rows = _readable(frame)
    table = ResultTable(headers, title=f"{len(frame)} rows from {path}", fold={headers[0]})
    for row in rows:
        table.add(*row)
    if format == "markdown":
        typer.echo(table.markdown(), nl=False)
    else:
        console.print(table.rich())
