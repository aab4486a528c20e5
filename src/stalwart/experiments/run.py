"""One run: a config in, a run directory out.

The directory holds the resolved config (``config.yaml``), ``metrics.jsonl`` (one line per
epoch), ``summary.json`` (validation and test metrics of the selected epoch) and checkpoints.
Running the same config into the same directory resumes an interrupted run or, if it
finished, returns its summary; a different config there is refused and nothing is touched,
unless the directory holds no progress (no finished epoch): a run that failed or was killed
before its first epoch ended never blocks the corrected config. One process at a time holds a
run directory; a second is refused with the holder's PID.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from stalwart import data, models
from stalwart.config import RunConfig, check_plain_name
from stalwart.engine import evaluate
from stalwart.engine.distributed import world
from stalwart.engine.fit import COSMETIC, check_run_directory, metrics_from_record
from stalwart.errors import CheckpointError
from stalwart.experiments.configs import parse_config
from stalwart.io import (
    LOCK_FILE,
    atomic_write_text,
    hold_run_directory,
    load_checkpoint,
    load_state,
    read_jsonl,
    write_json,
)
from stalwart.methods import build, method_info
from stalwart.metrics.group import GroupMetrics
from stalwart.recipes import StageContext, fit, run_method


@dataclass(frozen=True)
class RunSummary:
    """Where a run lives and how its selected model scored."""

    run_dir: Path
    best_epoch: int
    metrics: dict[str, GroupMetrics]  # "val", "test" and any extra evaluation sets
    seconds: float
    group_labels: str = "no"  # whether training read group ids: "no", "yes", "validation set"
    resumed_from: int = 0  # the epoch restored from the run's checkpoint (0: trained from scratch)
    reused: bool = False  # the run had finished before; nothing was trained

    def as_dict(self, config: RunConfig) -> dict[str, Any]:
        """The JSON form written to ``summary.json``."""
        return {
            "name": config.name,
            "best_epoch": self.best_epoch,
            "seconds": self.seconds,
            "group_labels": self.group_labels,
            "metrics": {split: m.as_dict() for split, m in self.metrics.items()},
        }


def resolved(config: RunConfig) -> dict[str, Any]:
    """The config with every default filled in, as written to ``config.yaml``."""
    return config.model_dump(mode="json")


def run_directory(config: RunConfig) -> Path:
    """Where ``config`` runs: its ``out``, else ``runs/<name>`` (so the name must be plain).

    Raises:
        ConfigError: no ``out`` and a ``name`` that is not a plain folder name.
    """
    if not config.out:
        check_plain_name(config.name)
    return config.run_dir()


def run(
    config: RunConfig,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    *,
    shared_dir: Path | None = None,
    reuse: dict[str, Path] | None = None,
) -> RunSummary:
    """Train and evaluate ``config`` in its run directory (resuming or reusing if there).

    Args:
        config: the run.
        on_epoch_end: called with each epoch's record (of every stage).
        shared_dir: where multi-stage methods keep stages that other runs may reuse.
        reuse: finished runs a multi-stage method may build on, by method name.

    Raises:
        CheckpointError: the run directory holds a different config or damaged files, cannot
            be written, or is in use by another process.
        ConfigError, DataMissingError: as raised by the data, model and method registries.
    """
    run_dir = run_directory(config)
    _check_run_dir(run_dir, config)
    place = world()
    summary_file = run_dir / "summary.json"
    if summary_file.exists():
        return _reuse(run_dir)
    # Before the data loads: an unwritable --out is named now, not after minutes of work.
    check_run_directory(run_dir)

    started = time.perf_counter()
    splits = data.load(config.data.name, **config.data_params())

    def build_model() -> torch.nn.Module:
        torch.manual_seed(config.train.seed)  # the model's initial weights
        return models.build(config.model.name, splits.train, **config.model.params)

    # Built before anything is written, so a bad model parameter leaves no run directory;
    # a staged method builds its own fresh copies with the same seed.
    model = build_model()
    info = method_info(config.method.name)
    params = config.method.params
    method = None if info.staged else build(config.method.name, splits.train, **params)
    # Only now, with everything built and checked, does the run directory receive anything.
    created = not run_dir.exists()
    # Under torchrun every rank trains; rank 0 holds the directory and writes its files.
    with hold_run_directory(run_dir) if place.main else contextlib.nullcontext():
        # While the data loaded, another process may have finished this run or left another.
        stale_config = _check_run_dir(run_dir, config)
        if summary_file.exists():
            return _reuse(run_dir)
        config_file = run_dir / "config.yaml"
        try:
            if place.main and (stale_config or not config_file.exists()):
                atomic_write_text(config_file, yaml.safe_dump(resolved(config), sort_keys=False))
            if method is None:  # a staged method composes its own fit() calls
                context = StageContext(
                    splits, build_model, config.train, run_dir=run_dir, shared_dir=shared_dir,
                    identity={"data": config.data_params(), "data_name": config.data.name,
                              "model": config.model.model_dump()},
                    reuse=reuse or {}, on_epoch_end=on_epoch_end,
                )  # fmt: skip
                result = run_method(config.method.name, config.method.params, context)
            else:
                result = fit(
                    model, method, splits, config.train, run_dir=run_dir, resume=True,
                    on_epoch_end=on_epoch_end,
                )  # fmt: skip
        except BaseException:
            if place.main and not _has_progress(run_dir):
                # Failed before it finished an epoch: leave nothing that would refuse a fix.
                with contextlib.suppress(OSError):  # the run's own error is the one to show
                    _remove_run_files(run_dir, created)
            raise
        # Evaluated afresh: a staged method (DFR) may have changed the model after selection.
        evaluated = {}
        for name, dataset in splits.evaluation_sets().items():
            evaluated[name] = evaluate(
                result.model, dataset, weights_from=splits.train,
                batch_size=config.train.eval_batch_size, precision=config.train.precision,
            )  # fmt: skip
        summary = RunSummary(
            run_dir, result.best_epoch, evaluated, round(time.perf_counter() - started, 2),
            group_labels=info.group_labels, resumed_from=getattr(result, "resumed_from", 0),
        )  # fmt: skip
        if place.main:
            write_json(summary_file, summary.as_dict(config))
    return summary


def _has_progress(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds work worth keeping: a finished epoch or a finished run."""
    return (
        (run_dir / "summary.json").exists()
        or (run_dir / "checkpoints" / "last.pt").exists()
        or any((run_dir / "stages").glob("*/checkpoints/last.pt"))
    )


def _remove_run_files(run_dir: Path, created: bool) -> None:
    """Remove what a run that finished no epoch wrote (``run_dir`` itself if it made it)."""
    stages = run_dir / "stages"
    for folder in [*(p for p in stages.glob("*") if p.is_dir()), run_dir]:
        checkpoints = folder / "checkpoints"
        # best.pt (saved just before the epoch's record) and temporary files a kill left.
        for path in [*checkpoints.glob("best.pt"), *checkpoints.glob(".*.pt.*")]:
            path.unlink(missing_ok=True)
        for name in ("metrics.jsonl", ".lock", LOCK_FILE):
            (folder / name).unlink(missing_ok=True)
        for empty in (checkpoints, folder):
            if empty != run_dir:
                _remove_if_empty(empty)
    (run_dir / "config.yaml").unlink(missing_ok=True)
    _remove_if_empty(stages)
    if created:
        _remove_if_empty(run_dir)


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # missing, or holds files that are not ours to remove
        folder.rmdir()


def _check_run_dir(run_dir: Path, config: RunConfig) -> bool:
    """Refuse a directory holding another run; return whether its config.yaml is stale.

    A stored config that differs is refused only where it has progress to lose; where it
    has none (a run killed before its first epoch ended), the new config replaces it.
    """
    config_file = run_dir / "config.yaml"
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(
            f"run directory {run_dir} is a file, not a directory; use another --out"
        )
    if not config_file.exists():
        if (run_dir / "checkpoints").exists():
            raise CheckpointError(
                f"{run_dir} holds checkpoints but no config.yaml; use another --out"
            )
        return False
    try:
        stored = yaml.safe_load(config_file.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        if not _has_progress(run_dir):
            return True
        raise CheckpointError(
            f"{config_file} is not valid YAML ({error}); use another --out"
        ) from None
    except OSError as error:
        raise CheckpointError(f"cannot read {config_file}: {error.strerror or error}") from None
    differences = _differences(stored, resolved(config))
    if differences and _has_progress(run_dir):
        raise CheckpointError(
            f"{run_dir} already holds a run with a different config "
            f"({'; '.join(differences[:5])}). Nothing was changed. "
            "Choose another output directory (--out) or the same config."
        )
    return bool(differences)


def _differences(stored: Any, current: Any, prefix: str = "") -> list[str]:
    if isinstance(stored, dict) and isinstance(current, dict):
        found = []
        for key in sorted(set(stored) | set(current)):
            if (prefix == "train." and key in COSMETIC) or (prefix == "" and key == "out"):
                continue  # `out` only says where the directory is, and differs by cwd
            found += _differences(stored.get(key), current.get(key), f"{prefix}{key}.")
        return found
    return [] if stored == current else [f"{prefix.rstrip('.')}: {stored!r} there, {current!r} now"]


def _reuse(run_dir: Path) -> RunSummary:
    """The summary of a finished run, after checking its records were not edited."""
    metrics_file = run_dir / "metrics.jsonl"
    if metrics_file.exists():
        read_jsonl(metrics_file)
    summary_file = run_dir / "summary.json"
    try:
        stored = json.loads(summary_file.read_bytes())
        metrics = {split: metrics_from_record(m) for split, m in stored["metrics"].items()}
        best_epoch, seconds = int(stored["best_epoch"]), float(stored["seconds"])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        # (ValueError covers JSON syntax and bytes that are not UTF-8.)
        raise CheckpointError(
            f"{summary_file} is damaged ({type(error).__name__}: {str(error)[:120]}); "
            "delete it to evaluate the run again"
        ) from None
    return RunSummary(
        run_dir, best_epoch, metrics, seconds,
        group_labels=stored.get("group_labels", "no"), reused=True,
    )  # fmt: skip


def load_run(run_dir: str | Path) -> tuple[RunConfig, data.Splits, torch.nn.Module]:
    """The config, data and selected model of a finished or interrupted run directory.

    Raises:
        CheckpointError: no ``config.yaml`` or no saved model there, or a model that does not
            match the config.
    """
    run_dir = Path(run_dir)
    config_file = run_dir / "config.yaml"
    if not config_file.exists():
        raise CheckpointError(f"{run_dir} is not a run directory: it has no config.yaml")
    try:
        config = parse_config(yaml.safe_load(config_file.read_text()), str(config_file))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{config_file} is not valid YAML ({error})") from None
    best = run_dir / "checkpoints" / "best.pt"
    summary = run_dir / "summary.json"
    # Deleting the bad file alone is not enough: a finished run is reused from summary.json
    # without training; without its checkpoints and summary the same config trains it again.
    again = (
        f"To train it again, delete {best.parent} and {summary}, then run "
        f"`stalwart run {config_file} --out {run_dir}`"
    )
    if not best.exists():
        if not summary.exists():
            raise CheckpointError(
                f"{run_dir} holds no saved model yet ({best} is missing); train it first "
                f"(`stalwart run {config_file} --out {run_dir}` resumes it)"
            )
        raise CheckpointError(f"{run_dir} holds no saved model ({best} is missing). {again}")
    try:
        state = load_checkpoint(best)
        if not isinstance(state.get("model"), dict):
            raise CheckpointError(f"checkpoint {best} holds no model weights")
    except CheckpointError as error:
        raise CheckpointError(f"{error}. {again}") from None
    splits = data.load(config.data.name, **config.data_params())
    model = models.build(config.model.name, splits.train, **config.model.params)
    load_state(model, state["model"], "model", best)
    return config, splits, model.eval()
