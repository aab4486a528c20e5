"""Which runs an audit covers: run directories as given, and the runs inside a folder of runs.

A folder written by a comparison (``runs/demo``: ``METHOD/seedK`` per method and seed) is
audited side by side, one seed per entry by default (the lowest), so that six methods × five
seeds cost six audits, not thirty; ``all_seeds`` audits every run.

A trained RobEn cell (``cell.json`` and ``classifier/``) is a run too, and the root of a
``kind: roben`` run (``ROOT/cells/DATASET-DEFENSE-MODEL-seedK``) a folder of them: its entries
are the dataset × defense × model combinations, one seed each by default. Likewise a
one-class cell (``cells/DATASET/DETECTOR/seedK.json``, the record of one fit) is a run, and the
root of a ``kind: anomaly`` run a folder of them, one entry per dataset × detector.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from stalwart.audit.target import is_one_class_cell, is_text_cell
from stalwart.errors import ConfigError

SEED_FOLDER = re.compile(r"seed(\d+)")
CELL_FOLDER = re.compile(r"(.+)-seed(\d+)")
"""A RobEn cell's folder: ``DATASET-DEFENSE-MODEL-seedK``."""
MARKERS = ("config.yaml", "cell.json")
"""The file that makes a folder a run: a classification run's config, a RobEn cell's record."""


def _is_run(path: Path) -> bool:
    return is_one_class_cell(path) or any((path / marker).is_file() for marker in MARKERS)


def _runs_below(root: Path) -> list[Path]:
    """Runs under ``root`` (folders holding a ``MARKERS`` file), not nested ones or shared stages.

    A folder inside another run (a stage a multi-stage method keeps there) or in a ``shared``
    folder (stages several runs reuse) is not a run of its own.
    """
    found = {p.parent for marker in MARKERS for p in root.rglob(marker) if p.parent != root}
    found = sorted(found | {p for p in root.rglob("seed*.json") if is_one_class_cell(p)})
    found = [p for p in found if "shared" not in p.relative_to(root).parts]
    return [p for p in found if not any(q != p and q in p.parents for q in found)]


def _label(run: Path, root: Path) -> str:
    """A run's label under ``root``: its relative path (a cell's without the ``cells/`` folder)."""
    relative = run.relative_to(root)
    cell = is_text_cell(run) or is_one_class_cell(run)
    if cell and relative.parts[0] == "cells" and len(relative.parts) > 1:
        relative = relative.relative_to("cells")
    return str(relative)


def _own_label(path: Path) -> str:
    """A run's label given alone: its folder's name (a one-class cell: ``wine/drocc/seed2``)."""
    if is_one_class_cell(path):
        return "/".join([*path.parts[-3:-1], path.stem])
    return path.name or str(path)


def _entry(run: Path, root: Path) -> tuple[str, int | None]:
    """A run's entry label under ``root`` and its seed (``ENTRY/seed3`` → ``("ENTRY", 3)``).

    A RobEn cell's entry is its folder name without the seed
    (``cells/tweets-agglomerative-bag-seed1`` → ``("tweets-agglomerative-bag", 1)``); a
    one-class cell's, its dataset and detector (``cells/wine/drocc/seed2.json`` →
    ``("wine/drocc", 2)``).
    """
    relative = Path(_label(run, root))
    if is_one_class_cell(run):
        relative = relative.with_suffix("")
    if is_text_cell(run):
        cell = CELL_FOLDER.fullmatch(relative.name)
        if cell is not None:
            return str(relative.parent / cell.group(1)), int(cell.group(2))
    match = SEED_FOLDER.fullmatch(relative.name)
    if match is None:
        return str(relative), None
    parent = relative.parent
    return (str(parent) if parent != Path(".") else root.name), int(match.group(1))


def runs_to_audit(
    paths: Sequence[str | Path], *, all_seeds: bool = False
) -> tuple[list[tuple[str, Path]], list[str]]:
    """The ``(label, run directory)`` pairs to audit, and notes on how they were chosen.

    A path holding ``config.yaml`` or ``cell.json``, or a one-class cell's record, is one run
    (even a broken one: its report says what is wrong). Any other folder is searched for runs
    (a ``kind: roben`` or ``kind: anomaly`` root: its cells); a folder without any is reported
    as one run that cannot be loaded, so the report says so.

    Raises:
        ConfigError: no path, or a path that does not exist.
    """
    if not paths:
        raise ConfigError("give at least one run directory or folder of runs")
    chosen: list[tuple[str, Path]] = []
    notes: list[str] = []
    for given in paths:
        path = Path(given)
        if not path.exists():
            raise ConfigError(f"{path} does not exist; give a run directory or a folder of runs")
        if not path.is_dir() and not is_one_class_cell(path):
            raise ConfigError(
                f"{path} is a file but not a one-class cell's record; give a run directory, a "
                "folder of runs, or a `kind: anomaly` cell (cells/DATASET/DETECTOR/seedK.json)"
            )
        below = [] if _is_run(path) else _runs_below(path)
        if not below:
            chosen.append((_own_label(path), path))
            continue
        entries: dict[str, list[tuple[int | None, Path]]] = {}
        for run in below:
            label, seed = _entry(run, path)
            entries.setdefault(label, []).append((seed, run))
        if all_seeds:
            chosen += [(_label(run, path), run) for run in below]
            continue
        for label, seeds in entries.items():
            seeds.sort(key=lambda item: (item[0] is None, item[0] or 0, str(item[1])))
            chosen.append((label, seeds[0][1]))
        if len(below) > len(entries):
            notes.append(_one_seed_note(path, below, len(entries)))
    # Labels name the columns side by side: two paths with the same name get their full path.
    labels = [label for label, _ in chosen]
    chosen = [(str(run) if labels.count(label) > 1 else label, run) for label, run in chosen]
    return chosen, notes


def _one_seed_note(path: Path, below: list[Path], entries: int) -> str:
    """What the page says when one seed per entry of ``path`` is audited."""
    if all(is_one_class_cell(run) for run in below):
        return (
            f"{path} holds {len(below)} one-class cells of {entries} dataset × detector "
            "entries; one cell per entry is audited (its lowest seed). Pass --all-seeds to "
            "audit every cell."
        )
    if all(is_text_cell(run) for run in below):
        return (
            f"{path} holds {len(below)} RobEn cells of {entries} dataset × defense × model "
            "entries; one cell per entry is audited (its lowest seed). Pass --all-seeds to "
            "audit every cell."
        )
    return (
        f"{path} holds {len(below)} runs of {entries} entries; one run per entry is audited "
        "(its lowest seed). Pass --all-seeds to audit every run."
    )
