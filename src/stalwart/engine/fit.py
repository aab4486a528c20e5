"""The training loop: methods return a loss, ``fit`` does everything else.

``fit`` owns the optimiser step (with gradient clipping and learning-rate warmup), the
learning-rate schedule, mixed precision, the adaptation strategy (which parameters train: see
``stalwart.engine.adaptation``), per-epoch validation with per-group metrics, model selection
by a named metric, checkpoints and resume, and data parallelism across torchrun's processes
(``stalwart.engine.distributed``: each rank takes a share of every batch, rank 0 writes).
Each epoch's data order and random state are a pure function of (seed, epoch), so a run resumed
from its last checkpoint ends with exactly the weights and metrics of an uninterrupted one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic
import torch
from torch import nn

from stalwart.config import TrainConfig, describe
from stalwart.data.core import GroupedDataset, Splits
from stalwart.data.samplers import Sampler, shuffled
from stalwart.engine.adaptation import adapted
from stalwart.engine.device import autocast_for, resolve_device
from stalwart.engine.distributed import (
    World,
    barrier,
    shard,
    share_buffers,
    sum_across,
    sum_gradients,
    world,
)
from stalwart.engine.evaluate import sharded_evaluation
from stalwart.engine.evaluators import LAST, Evaluator, GroupClassification
from stalwart.engine.loading import (
    Feeder,
    choose_loading,
    dataset_bytes,
    free_memory,
    wants_channels_last,
)
from stalwart.engine.method import Method
from stalwart.engine.optim import base_lr, build_optimizer, build_schedule, optimizer_step
from stalwart.engine.progress import TrainingProgress
from stalwart.errors import CheckpointError, ConfigError, StalwartError, closest
from stalwart.io import (
    CHECKPOINT_FORMAT,
    LOCK_FILE,
    append_line,
    atomic_write_text,
    check_writable_directory,
    hold_run_directory,
    load_checkpoint,
    load_state,
    read_jsonl,
    save_checkpoint,
)
from stalwart.metrics.group import GroupMetrics

# Settings that change how a run looks, not what it computes: a resumed run may differ in them.
COSMETIC = ("progress", "eval_batch_size", "loading", "channels_last", "compile")
"""Settings that change how the training computes, not what: a run resumes across them."""


class TrainingDiverged(StalwartError, FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass
class FitResult:
    """What ``fit`` returns: the selected model and the record of how it got there."""

    model: nn.Module
    method: Method
    best_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    run_dir: Path | None = None
    resumed_from: int = 0  # the epoch restored from run_dir's checkpoint; 0: trained from scratch

    @property
    def best_val_metrics(self) -> dict[str, Any]:
        """Validation metrics of the selected epoch, as the evaluator measured them."""
        return self.history[self.best_epoch - 1]["val"]

    @property
    def best_val(self) -> GroupMetrics:
        """Validation group metrics of the selected epoch (classification evaluators)."""
        return metrics_from_record(self.best_val_metrics)


def metrics_from_record(record: dict[str, Any]) -> GroupMetrics:
    """Rebuild ``GroupMetrics`` from its JSON form in ``metrics.jsonl``."""
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items()}
    return GroupMetrics(**fields)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's data order and random state."""
    return seed * 1_000_003 + epoch


def fit(
    model: nn.Module,
    method: Method,
    data: Splits,
    cfg: TrainConfig | None = None,
    *,
    sampler: Sampler | None = None,
    evaluator: Evaluator | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> FitResult:
    """Train ``model`` with ``method`` on ``data.train``, selecting by validation metrics.

    Args:
        model: the network to train (modified in place; the selected weights are loaded
            into it at the end).
        method: the training objective, a ``Method`` object (``stalwart.fit`` one floor up
            also takes registered names such as ``"erm"`` and multi-stage recipes).
        data: train, val and test splits; val drives selection, test is never touched.
        cfg: training settings; keyword ``overrides`` (``epochs=10, lr=1e-3``) update it.
        sampler: the epoch's visiting order; default: the method's own (``method.sampler``),
            else every example once, shuffled.
        evaluator: what is measured on ``data.val`` each epoch; ``cfg.select`` names one of its
            keys (default: per-group classification accuracy).
        run_dir: if given, ``metrics.jsonl`` and checkpoints are written there, under the
            directory's lock (another process calling ``fit`` on it waits until this one ends).
        resume: continue from ``run_dir``'s last checkpoint, if there is one.
        on_epoch_end: called with each epoch's record after it is saved.
        **overrides: ``TrainConfig`` fields to change, e.g. ``epochs=10, lr=1e-3``.

    ``cfg.adaptation`` applies while this call trains: ``lp`` trains only ``model.head``,
    ``lora`` adds adapters to ``model`` (they stay after the call) and trains them with the
    head; ``lp-ft`` is two calls, made by ``stalwart.fit``.

    Returns:
        A ``FitResult`` whose ``model`` carries the weights of the selected epoch.

    Raises:
        ConfigError: an unknown or invalid setting, or an adaptation the model does not allow.
        CheckpointError: ``run_dir`` holds a run of another config, a damaged checkpoint or
            edited metrics, or cannot be written.
        TrainingDiverged: the training loss became NaN or infinite.
    """
    cfg = resolve_train_config(cfg, overrides)
    if not isinstance(method, Method):
        raise ConfigError(
            f"engine.fit takes a Method object, not {type(method).__name__} {method!r}; "
            "stalwart.fit (or stalwart.recipes.fit) also takes method names"
        )
    place = world()
    if place.parallel and method.data_parallel is None:
        raise ConfigError(
            f"{type(method).__name__} cannot train data-parallel: its loss couples the examples "
            "of a batch, so shares of a batch on several processes would not add up to it; run "
            "it in one process (without torchrun)"
        )
    evaluator = evaluator or GroupClassification()
    evaluator.check_select(cfg.select)
    device = resolve_device(cfg.device)
    with adapted(model, cfg.adaptation, seed=cfg.seed):
        model.to(device)
        method.to(device)
        optimizer = build_optimizer(model, cfg)
        schedule = build_schedule(optimizer, cfg)
        training = (model, method, data, cfg, sampler, evaluator, device, optimizer, schedule)
        if run_dir is None:
            return _train(*training, None, resume, on_epoch_end)
        if not place.main:  # reads the checkpoint it resumes from; rank 0 writes
            return _train(*training, _RunFiles(Path(run_dir), writer=False), resume, on_epoch_end)
        # Held for the whole training: two processes appending to one metrics.jsonl would
        # interleave two runs. Waiting, not refusing: recipes that start from a finished run
        # (DFR from ERM) may read it from parallel workers. `stalwart run` takes the lock first
        # and refuses at once.
        check_run_directory(Path(run_dir))
        with hold_run_directory(Path(run_dir), wait=True):
            return _train(*training, _RunFiles(Path(run_dir)), resume, on_epoch_end)


def _train(
    model: nn.Module,
    method: Method,
    data: Splits,
    cfg: TrainConfig,
    sampler: Sampler | None,
    evaluator: Evaluator,
    device: torch.device,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    run: _RunFiles | None,
    resume: bool,
    on_epoch_end: Callable[[dict[str, Any]], None] | None,
) -> FitResult:
    """``fit`` after its checks: restore or start the run files, then the epoch loop."""
    # Every rank reads the run directory only once rank 0 has finished writing it (a rank that
    # went on while rank 0 saved its last checkpoint would resume from the one before).
    barrier(world())
    history: list[dict[str, Any]] = []
    best_epoch, best_score, best_state = 0, -float("inf"), None
    steps = 0  # optimiser steps taken, which warmup counts
    if run is not None:
        if resume and run.last.exists():
            state = run.restore(cfg, model, optimizer, schedule, method)
            best_epoch, best_score = state["best_epoch"], state["best_score"]
            # Checkpoints from before warmup existed lack the count; only warmup reads it.
            steps = state.get("optimizer_steps", 0)
            history = run.read_history(upto=state["epoch"])
            best_state = run.load(run.best)["model"] if best_epoch else None
        elif run.last.exists():
            raise CheckpointError(
                f"{run.root} already holds a training run; resume it (resume=True; "
                "`stalwart run` resumes by itself) or choose another run directory"
            )
        else:
            run.start()

    sampler = sampler or method.sampler(cfg.seed) or shuffled
    autocast = autocast_for(device, cfg.precision)
    feeder, stepped = _speed_setup(model, data.train, cfg, device)
    first_epoch = len(history) + 1
    place = world()
    with TrainingProgress(cfg.epochs, cfg.progress and place.main) as progress:
        progress.advance(first_epoch - 1, "resumed", "")
        for epoch in range(first_epoch, cfg.epochs + 1):
            started = time.perf_counter()
            train_loss, steps = _train_one_epoch(
                stepped, method, data.train, feeder, optimizer, autocast, device, cfg, epoch,
                sampler, progress, steps, place,
            )  # fmt: skip
            share_buffers(model, place)  # every rank evaluates and selects the same model
            if device.type == "cuda":
                torch.cuda.synchronize()  # so train_seconds measures the work, not its queueing
            train_seconds = time.perf_counter() - started
            lr = base_lr(optimizer)
            schedule.step()
            with sharded_evaluation(place):  # every rank runs it: the work is shared
                val = evaluator(
                    model, data.val, reference=data.train, batch_size=cfg.eval_batch_size,
                    device=device, precision=cfg.precision,
                )  # fmt: skip
            record = {
                "epoch": epoch,
                "train_loss": train_loss,
                "lr": lr,
                "train_seconds": round(train_seconds, 3),
                "seconds": round(time.perf_counter() - started, 3),
                "val": val,
            }
            history.append(record)
            score = float(epoch) if cfg.select == LAST else evaluator.score(val, cfg.select)
            if score > best_score:
                best_epoch, best_score = epoch, score
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                if run is not None:
                    run.save(run.best, {"format": CHECKPOINT_FORMAT, "model": best_state})
            if run is not None:
                run.append(record)
                run.save(run.last, {
                    "format": CHECKPOINT_FORMAT,
                    "epoch": epoch,
                    "config": _fingerprint(cfg),
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "optimizer_steps": steps,
                    "method": method.state_dict(),
                    "best_epoch": best_epoch,
                    "best_score": best_score,
                })  # fmt: skip
            progress.advance(
                0, f"epoch {epoch}/{cfg.epochs}", f"loss {train_loss:.4f}  {evaluator.status(val)}"
            )
            if on_epoch_end is not None:
                on_epoch_end(record)

    if best_state is not None:
        model.load_state_dict(best_state)
    barrier(place)  # rank 0's last files are written before any rank goes on
    root = run.root if run else None
    return FitResult(model, method, best_epoch, history, root, resumed_from=first_epoch - 1)


def resolve_train_config(cfg: TrainConfig | None, overrides: dict[str, Any]) -> TrainConfig:
    """``cfg`` (default ``TrainConfig()``) with keyword ``overrides``, validated."""
    base = (cfg or TrainConfig()).model_dump()
    unknown = set(overrides) - set(TrainConfig.model_fields)
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(
            f"fit() got an unknown setting {key!r}{closest(key, TrainConfig.model_fields)}; "
            f"valid settings: {list(TrainConfig.model_fields)}"
        )
    try:
        return TrainConfig.model_validate({**base, **overrides})
    except pydantic.ValidationError as error:
        raise ConfigError(describe(error, "fit()", TrainConfig)) from None


def _speed_setup(
    model: nn.Module, train: GroupedDataset, cfg: TrainConfig, device: torch.device
) -> tuple[Feeder, nn.Module]:
    """The feeder of training batches, and the model the steps call (compiled or not).

    Channels-last format converts the model in place (its parameters keep their names and
    values, so checkpoints are unchanged); ``torch.compile`` wraps it, and checkpoints and
    evaluation keep using the model itself.
    """
    channels_last = wants_channels_last(cfg.channels_last, model, train.x[0], device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    mode = choose_loading(cfg.loading, device, dataset_bytes(train), free_memory(device))
    stepped = torch.compile(model) if cfg.compile else model
    return Feeder(train, device, mode, channels_last), stepped


def _train_one_epoch(
    model: nn.Module,
    method: Method,
    train: GroupedDataset,
    feeder: Feeder,
    optimizer: torch.optim.Optimizer,
    autocast: Callable,
    device: torch.device,
    cfg: TrainConfig,
    epoch: int,
    sampler: Sampler,
    progress: TrainingProgress,
    steps_before: int,
    place: World,
) -> tuple[float, int]:
    """One epoch of training; returns the mean loss and the optimiser steps taken so far.

    With several ranks, each computes its share of every batch (``distributed.shard``), its
    mean loss weighted by the share's part of the batch, and the gradients are summed: the
    gradient of the batch's mean loss (see ``stalwart.engine.distributed``).
    """
    seed = epoch_seed(cfg.seed, epoch)
    torch.manual_seed(seed)  # dropout and any randomness inside the method
    order = sampler(train, torch.Generator().manual_seed(seed))
    model.train()
    total = torch.zeros((), device=device)
    steps = 0
    # Reading the loss forces a device sync; do it only when a bar is there to show it.
    refresh = 25 if progress.enabled else 0
    n_steps = -(-len(order) // cfg.batch_size)
    positions = (
        _shares(cfg.batch_size, order, place, method.data_parallel == "share")
        if place.parallel
        else ((order[s : s + cfg.batch_size], None) for s in range(0, len(order), cfg.batch_size))
    )
    for batch, part in feeder.feed(positions):
        optimizer.zero_grad(set_to_none=True)
        if batch is not None:
            with autocast():
                loss = method.loss(model, batch)
            if part is not None:
                loss = loss * part
            loss.backward()
            total += loss.detach().float()
        sum_gradients(model.parameters(), place)
        steps += 1
        optimizer_step(optimizer, cfg, steps_before + steps)
        if refresh and steps % refresh == 0:
            status = f"loss {total.item() / steps:.4f}"
            progress.advance(refresh / n_steps, f"epoch {epoch}/{cfg.epochs}", status)
    progress.advance((steps % refresh if refresh else steps) / n_steps, f"epoch {epoch}", "")
    mean = sum_across(total, place).item() / max(steps, 1)
    if mean != mean or mean in (float("inf"), -float("inf")):
        raise TrainingDiverged(
            f"the training loss became {mean} in epoch {epoch}; lower the learning rate "
            f"(now {cfg.lr}) or check the data for extreme values"
        )
    return mean, steps_before + steps


def _shares(batch_size: int, order: torch.Tensor, place: World, own_share: bool) -> Any:
    """The positions of each global batch's share of this rank, and its mean loss's weight.

    The weight is the share's part of the batch, or None for a method that returns its own
    share (``Method.data_parallel == "share"``). A rank whose share is empty (a last batch
    smaller than the ranks) gets no batch: it still joins the gradient sum, with zeros; a
    method that reduces across ranks cannot skip a step, so that is refused.
    """
    for start in range(0, len(order), batch_size):
        positions = order[start : start + batch_size]
        mine = shard(positions, place)
        if own_share and len(positions) < place.size:
            raise ConfigError(
                f"a batch of {len(positions)} examples cannot give each of {place.size} "
                "processes one; choose a batch size and data size whose last batch holds at "
                "least one example per process"
            )
        part = None if own_share else len(mine) / len(positions)
        yield mine, part


def _fingerprint(cfg: TrainConfig) -> dict[str, Any]:
    return {k: v for k, v in cfg.model_dump().items() if k not in COSMETIC}


# What ``fit`` writes in a run directory that is changed in place (appended to, written into).
RUN_CONTENTS = ("metrics.jsonl", "checkpoints", LOCK_FILE)
_TRAINING_STATE = (
    "epoch",
    "config",
    "model",
    "optimizer",
    "schedule",
    "method",
    "best_epoch",
    "best_score",
)


def check_run_directory(root: Path) -> None:
    """Raise a one-line ``CheckpointError`` unless ``fit`` can write its files in ``root``."""
    check_writable_directory(root, contents=RUN_CONTENTS)


class _RunFiles:
    """The files ``fit`` keeps in a run directory."""

    def __init__(self, root: Path, writer: bool = True) -> None:
        self.root = root
        self.writer = writer  # False on ranks other than 0: they read, rank 0 writes
        self.metrics = root / "metrics.jsonl"
        self.last = root / "checkpoints" / "last.pt"
        self.best = root / "checkpoints" / "best.pt"

    def start(self) -> None:
        if self.writer:
            atomic_write_text(self.metrics, "")

    def append(self, record: dict[str, Any]) -> None:
        if self.writer:
            append_line(self.metrics, json.dumps(record))

    def save(self, path: Path, state: dict[str, Any]) -> None:
        if self.writer:
            save_checkpoint(path, state)

    def load(self, path: Path) -> dict[str, Any]:
        """A checkpoint of this run, with advice that works when it cannot be read.

        Deleting only the damaged file is not enough (without ``best.pt`` the run cannot
        finish; without ``last.pt`` it starts over but keeps a stale ``best.pt``); deleting the
        ``checkpoints`` folder makes the next resume train the run from epoch 1.
        """
        try:
            return load_checkpoint(path)
        except CheckpointError as error:
            raise CheckpointError(
                f"{error}. Delete {path.parent} to train this run again from epoch 1"
            ) from None

    def read_history(self, upto: int) -> list[dict[str, Any]]:
        """Records of epochs 1..upto; a record written after the checkpoint is dropped.

        ``fit`` appends an epoch's record, then saves its checkpoint: a crash between the two
        leaves one record more than the checkpoint has finished, and a crash during the append
        leaves a fragment without its newline (which ``read_jsonl`` drops). Anything else was
        not written by ``fit``.
        """
        records = read_jsonl(self.metrics) if self.metrics.exists() else []
        epochs = [record.get("epoch") for record in records]
        if epochs not in (list(range(1, upto + 1)), list(range(1, upto + 2))):
            shown = ", ".join(map(str, epochs[:8])) + (", ..." if len(epochs) > 8 else "")
            raise CheckpointError(
                f"{self.metrics} holds records of epochs [{shown}], not one for each of epochs "
                f"1..{upto} that its checkpoint has finished: the metrics were edited after "
                f"stalwart wrote them. Delete {self.root} to start the run over"
            )
        records = records[:upto]
        if self.writer:
            atomic_write_text(self.metrics, "".join(json.dumps(r) + "\n" for r in records))
        return records

    def restore(
        self,
        cfg: TrainConfig,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LRScheduler,
        method: Method,
    ) -> dict[str, Any]:
        """Load the last checkpoint into the training objects; return its bookkeeping."""
        state = self.load(self.last)
        if state.get("format") != CHECKPOINT_FORMAT or not all(k in state for k in _TRAINING_STATE):
            raise CheckpointError(
                f"{self.last} is not a stalwart training checkpoint. "
                f"Delete {self.last.parent} to train this run again from epoch 1"
            )
        if state["config"] != _fingerprint(cfg):
            changed = sorted(k for k, v in _fingerprint(cfg).items() if state["config"].get(k) != v)
            raise CheckpointError(
                f"{self.last} was written with other training settings ({', '.join(changed)} "
                "differ); resume with the same settings or start a new run directory"
            )
        load_state(model, state["model"], "model", self.last)
        load_state(method, state["method"], "method", self.last)
        try:
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
        except (ValueError, KeyError, RuntimeError) as error:
            raise CheckpointError(f"{self.last}: optimiser state does not match: {error}") from None
        return state
