"""The run store: a tree of run directories read as one pandas DataFrame, one row per run.

Every run directory (a folder with ``config.yaml``) becomes a row: its config flattened to
dotted columns (``data.name``, ``method.step_size``, ``train.lr``), its status, the metrics of
its selected model per split and per group (``test.worst_group_accuracy``,
``test.group_accuracy.<group>``), and its timings (``seconds``, ``epochs``,
``train_seconds``). Filters (``--where train.lr=0.003``, ``test.accuracy>=0.8``) select rows;
``aggregate`` gives mean ± std over the runs of each group (seeds, usually).

This plays the part of DomainBed's ``collect_results`` and ``query``, with typed filters
that name the closest column on a typo, and it reads any tree: a comparison, a sweep, a
hand-made folder of runs. Experiment kinds summarise their runs through it.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from stalwart.config import read_yaml
from stalwart.errors import ConfigError, closest
from stalwart.report.stats import mean_std

# Longest first, so that ">=" is not read as ">" followed by "=...".
_OPERATORS = {
    ">=": operator.ge,
    "<=": operator.le,
    "!=": operator.ne,
    "=": operator.eq,
    ">": operator.gt,
    "<": operator.lt,
}
_FILTER = re.compile(r"^\s*([^<>=!\s]+)\s*(>=|<=|!=|=|>|<)\s*(.*?)\s*$")
FIRST_COLUMNS = ("run", "status", "name", "data.name", "model.name", "method.name", "train.seed")


def find_runs(root: str | Path) -> list[Path]:
    """Every run directory under ``root`` (``root`` itself included), in sorted order.

    A run directory holds ``config.yaml``; the stages that multi-stage methods share (which
    have none) are not runs of their own.
    """
    root = Path(root)
    if not root.exists():
        raise ConfigError(f"{root} does not exist; give a run directory or a folder of runs")
    if not root.is_dir():
        raise ConfigError(f"{root} is a file, not a folder of runs")
    return sorted(path.parent for path in root.rglob("config.yaml"))


def _flatten(value: Any, prefix: str, row: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(inner, f"{prefix}{key}.", row)
    elif isinstance(value, list):
        # Lists stay one cell, hashable and comparable: "[16, 16]".
        row[prefix.rstrip(".")] = json.dumps(value)
    else:
        row[prefix.rstrip(".")] = value


def _metric_columns(split: str, metrics: dict[str, Any], row: dict[str, Any]) -> None:
    names = metrics.get("group_names")
    for key, value in metrics.items():
        if key == "group_names":
            continue
        if isinstance(value, list) and names is not None and len(value) == len(names):
            stem = {"group_counts": "group_count"}.get(key, key)
            for name, item in zip(names, value, strict=True):
                row[f"{split}.{stem}.{name}"] = item
        elif not isinstance(value, (list, dict)):
            row[f"{split}.{key}"] = value


def read_run(path: str | Path) -> dict[str, Any]:
    """One run directory as a flat row (see the module docstring for its columns).

    Raises:
        ConfigError: ``path`` holds no readable ``config.yaml``.
    """
    path = Path(path)
    try:
        config = yaml.safe_load((path / "config.yaml").read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path} is not a readable run directory: {error}") from None
    row: dict[str, Any] = {"run": str(path)}
    _flatten(config if isinstance(config, dict) else {}, "", row)
    row.pop("kind", None)
    summary_file = path / "summary.json"
    row["status"] = "finished" if summary_file.exists() else "unfinished"
    if summary_file.exists():
        try:
            summary = json.loads(summary_file.read_text())
        except (OSError, ValueError) as error:
            raise ConfigError(f"{summary_file} cannot be read: {error}") from None
        for key in ("best_epoch", "seconds", "group_labels"):
            row[key] = summary.get(key)
        for split, metrics in summary.get("metrics", {}).items():
            _metric_columns(split, metrics, row)
    epochs, train_seconds = _timings(path / "metrics.jsonl")
    row["epochs"], row["train_seconds"] = epochs, train_seconds
    return row


def _timings(metrics_file: Path) -> tuple[int, float]:
    """Epochs recorded and their summed training seconds (a damaged line ends the count)."""
    epochs, seconds = 0, 0.0
    try:
        lines = metrics_file.read_bytes().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return 0, 0.0
    for line in lines:
        try:
            record = json.loads(line)
            seconds += float(record.get("train_seconds", 0.0))
        except (ValueError, AttributeError, TypeError):
            break
        epochs += 1
    return epochs, seconds


def read_runs(source: str | Path | Iterable[str | Path], where: Sequence[str] = ()) -> pd.DataFrame:
    """Read runs into a DataFrame (one row per run), then keep the rows ``where`` selects.

    Args:
        source: a folder searched for run directories, or the run directories themselves.
        where: filters ``KEY OP VALUE`` with OP one of ``= != > >= < <=``; the value is read
            as YAML (``0.003``, ``true``, ``erm``). All filters must hold.

    Returns:
        The runs, with the identifying columns first; an empty frame if there are none.
    """
    paths = find_runs(source) if isinstance(source, (str, Path)) else [Path(p) for p in source]
    rows = [read_run(path) for path in paths]
    frame = pd.DataFrame(rows)
    if rows:
        if isinstance(source, (str, Path)):
            frame["run"] = [str(Path(p).relative_to(source)) or "." for p in paths]
        first = [c for c in FIRST_COLUMNS if c in frame.columns]
        frame = frame[first + [c for c in frame.columns if c not in first]]
    return select(frame, where)


def parse_filter(text: str) -> tuple[str, str, Any]:
    """``"train.lr>=0.001"`` → ``("train.lr", ">=", 0.001)``."""
    match = _FILTER.match(text)
    if not match:
        raise ConfigError(
            f"a filter reads KEY=VALUE (or !=, >, >=, <, <=), like method.name=erm; got {text!r}"
        )
    key, op, raw = match.groups()
    try:
        value = read_yaml(raw) if raw else ""  # YAML 1.2 numbers: 3e-3 is a float
    except yaml.YAMLError:
        value = raw
    return key, op, value


def select(frame: pd.DataFrame, where: Sequence[str]) -> pd.DataFrame:
    """The rows of ``frame`` for which every filter in ``where`` holds."""
    for text in where:
        key, op, value = parse_filter(text)
        if key not in frame.columns:
            columns = list(frame.columns)
            raise ConfigError(
                f"no column {key!r}{closest(key, columns)} in these runs; columns: {columns}"
            )
        column = frame[key]
        if op in ("=", "!=") and isinstance(value, (int, float)) and not isinstance(value, bool):
            numbers = pd.to_numeric(column, errors="coerce")
            keep = numbers.sub(value).abs().le(1e-12 * max(1.0, abs(value)))
            keep = keep if op == "=" else ~keep
        elif op in ("=", "!="):
            keep = column.map(lambda cell, v=value: _same(cell, v))
            keep = keep if op == "=" else ~keep
        else:
            numbers = pd.to_numeric(column, errors="coerce")
            if not isinstance(value, (int, float)):
                raise ConfigError(f"filter {text!r}: {op} compares numbers; got {value!r}")
            keep = _OPERATORS[op](numbers, value).fillna(False)
        frame = frame[keep.astype(bool)]
    return frame


def _same(cell: Any, value: Any) -> bool:
    if isinstance(value, (list, dict)):
        value = json.dumps(value)
    if isinstance(cell, float) and math.isnan(cell):
        return False
    return cell == value or str(cell) == str(value)


def aggregate(frame: pd.DataFrame, by: Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean and standard deviation of ``metrics`` over the rows of each ``by`` group.

    Returns:
        One row per group (in order of first appearance) with ``runs`` and, for each metric,
        ``<metric>.mean`` and ``<metric>.std`` (sample std; 0 for a single run).
    """
    missing = [key for key in [*by, *metrics] if key not in frame.columns]
    if missing:
        columns = list(frame.columns)
        raise ConfigError(
            f"no column {missing[0]!r}{closest(missing[0], columns)} in these runs; "
            f"columns: {columns}"
        )
    rows = []
    for keys, group in frame.groupby(list(by), sort=False, dropna=False):
        keys = keys if isinstance(keys, tuple) else (keys,)
        row: dict[str, Any] = dict(zip(by, keys, strict=True))
        row["runs"] = len(group)
        for metric in metrics:
            values = [float(v) for v in group[metric] if v is not None and v == v]
            stat = mean_std(values) if values else {"mean": math.nan, "std": math.nan}
            row[f"{metric}.mean"], row[f"{metric}.std"] = stat["mean"], stat["std"]
        rows.append(row)
    return pd.DataFrame(rows)
