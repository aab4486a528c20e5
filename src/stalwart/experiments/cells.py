"""Cells: the independent units of a grid experiment, reused when finished, run in parallel.

Kinds such as ``roben``, ``adapt`` and ``anomaly`` expand their config into cells (one
dataset × method × seed each), each writing its record to its own folder. A rerun reuses
every cell whose record was written by the same settings and the same record format, and
trains only the others, ``workers`` at a time; an interrupted grid resumes cell by cell.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stalwart.experiments.executors import Executor, LocalExecutor

if TYPE_CHECKING:
    from stalwart.experiments.kinds import Reporter

RESULTS = "results.json"
"""The name of a cell's record in its folder."""


def finished_cell(
    folder: Path, schema: int, cell: dict[str, Any], *needs: str
) -> dict[str, Any] | None:
    """The record in ``folder/results.json`` if it was written for exactly ``cell``, else None.

    A record counts when it reads as JSON, carries ``schema`` and the same ``cell`` (its
    settings, JSON-normalised: tuples as lists), and every file in ``needs`` (such as
    ``failures.npz``) sits beside it. A damaged or out-of-date cell is run again, never trusted.
    """
    try:
        found = json.loads((folder / RESULTS).read_text())
    except (OSError, ValueError):
        return None
    cell = json.loads(json.dumps(cell))
    same = isinstance(found, dict) and found.get("schema") == schema and found.get("cell") == cell
    return found if same and all((folder / name).is_file() for name in needs) else None


def run_cells(
    tasks: Sequence[Any],
    kept: Sequence[dict[str, Any] | None],
    run: Callable[[Any], dict[str, Any]],
    reporter: Reporter,
    announce: Callable[[dict[str, Any]], str],
    *,
    workers: int = 1,
    executor: Executor | None = None,
    verb: str = "train",
) -> list[dict[str, Any]]:
    """Every cell's record: ``kept[i]`` where a finished one was found, else ``run(tasks[i])``.

    ``run`` is a module-level function (worker processes pickle it) that writes the cell's
    record and returns it; each new record is announced as it arrives (``announce(record)``),
    in completion order, and the records come back in the order of ``tasks``.
    """
    pending = [i for i, found in enumerate(kept) if found is None]
    reporter.note(f"{len(kept) - len(pending)} cells reused, {len(pending)} to {verb}")
    records = list(kept)
    for position, found in (executor or LocalExecutor(workers)).map(
        run, [tasks[i] for i in pending]
    ):
        records[pending[position]] = found
        reporter.note(announce(found))
    return [record for record in records if record is not None]
