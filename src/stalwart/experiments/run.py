"""One run: a config in, a run directory out.

The directory holds the resolved config (``config.yaml``), ``metrics.jsonl`` (one line per
epoch), ``summary.json`` (validation and test metrics of the selected epoch) and checkpoints.
Running the same config into the same directory resumes an interrupted run or, if it
finished, returns its summary; a different config there is refused and nothing is touched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from stalwart import data, models
from stalwart.config import RunConfig
from stalwart.engine import evaluate, fit
from stalwart.engine.fit import COSMETIC, metrics_from_record
from stalwart.errors import CheckpointError
from stalwart.experiments.configs import parse_config
from stalwart.io import (
    atomic_write_text,
    load_checkpoint,
    load_state,
    write_json,
)
from stalwart.methods import METHODS, build, method_info
from stalwart.metrics.group import GroupMetrics
from stalwart.recipes import StageContext


@dataclass(frozen=True)
class RunSummary:
    """Where a run lives and how its selected model scored."""

    run_dir: Path
    best_epoch: int
    metrics: dict[str, GroupMetrics]  # "val", "test" and any extra evaluation sets
    seconds: float
    group_labels: str = "no"  # whether training read group ids: "no", "yes", "validation set"
    resumed_from: int = 0  # epochs already done when this call started
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
        CheckpointError: the run directory holds a different config or damaged files.
        ConfigError, DataMissingError: as raised by the data, model and method registries.
    """
    run_dir = config.run_dir()
    previous_epochs = _check_run_dir(run_dir, config)
    summary_file = run_dir / "summary.json"
    if summary_file.exists():
        return _reuse(summary_file)

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
    fresh = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "config.yaml"
    if not config_file.exists():
        atomic_write_text(config_file, yaml.safe_dump(resolved(config), sort_keys=False))
    try:
        if method is None:  # a staged method composes its own fit() calls
            context = StageContext(
                splits, build_model, config.train, run_dir=run_dir, shared_dir=shared_dir,
                identity={"data": config.data_params(), "data_name": config.data.name,
                          "model": config.model.model_dump()},
                reuse=reuse or {}, on_epoch_end=on_epoch_end,
            )  # fmt: skip
            result = METHODS.build(config.method.name, context, **config.method.params)
        else:
            result = fit(
                model, method, splits, config.train, run_dir=run_dir, resume=True,
                on_epoch_end=on_epoch_end,
            )  # fmt: skip
    except BaseException:
        if fresh and not any(p.name != "config.yaml" for p in run_dir.iterdir()):
            # Failed before it trained anything: leave no directory that would refuse a fix.
            config_file.unlink()
            run_dir.rmdir()
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
        group_labels=info.group_labels, resumed_from=previous_epochs,
    )  # fmt: skip
    write_json(summary_file, summary.as_dict(config))
    return summary


def _check_run_dir(run_dir: Path, config: RunConfig) -> int:
    """Refuse a directory holding another config; return how many epochs it has done."""
    config_file = run_dir / "config.yaml"
    if not config_file.exists():
        if (run_dir / "checkpoints").exists():
            raise CheckpointError(
                f"{run_dir} holds checkpoints but no config.yaml; use another --out"
            )
        return 0
    try:
        stored = yaml.safe_load(config_file.read_text())
    except yaml.YAMLError as error:
        raise CheckpointError(
            f"{config_file} is not valid YAML ({error}); use another --out"
        ) from None
    differences = _differences(stored, resolved(config))
    if differences:
        raise CheckpointError(
            f"{run_dir} already holds a run with a different config "
            f"({'; '.join(differences[:5])}). Nothing was changed. "
            "Choose another output directory (--out) or the same config."
        )
    metrics = run_dir / "metrics.jsonl"
    return len(metrics.read_text().splitlines()) if metrics.exists() else 0


def _differences(stored: Any, current: Any, prefix: str = "") -> list[str]:
    if isinstance(stored, dict) and isinstance(current, dict):
        found = []
        for key in sorted(set(stored) | set(current)):
            if prefix == "train." and key in COSMETIC:
                continue
            found += _differences(stored.get(key), current.get(key), f"{prefix}{key}.")
        return found
    return [] if stored == current else [f"{prefix.rstrip('.')}: {stored!r} there, {current!r} now"]


def _reuse(summary_file: Path) -> RunSummary:
    try:
        stored = json.loads(summary_file.read_text())
        metrics = {split: metrics_from_record(m) for split, m in stored["metrics"].items()}
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise CheckpointError(
            f"{summary_file} is damaged ({error}); delete it to re-evaluate"
        ) from None
    return RunSummary(
        summary_file.parent, stored["best_epoch"], metrics, stored["seconds"],
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
    except yaml.YAMLError as error:
        raise CheckpointError(f"{config_file} is not valid YAML ({error})") from None
    best = run_dir / "checkpoints" / "best.pt"
    if not best.exists():
        raise CheckpointError(f"{run_dir} holds no saved model ({best} is missing); train it first")
    splits = data.load(config.data.name, **config.data_params())
    model = models.build(config.model.name, splits.train, **config.model.params)
    load_state(model, load_checkpoint(best)["model"], "model", best)
    return config, splits, model.eval()
