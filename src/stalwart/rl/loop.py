"""The meta-RL training loop: rounds of problems, updates as steps accrue, held-out curves.

``train(cfg)`` counts in environment steps, not epochs. Each **round** plays
``problems_per_round`` training problems in lockstep (``rollout.rollout``: exploration, then
exploitation), stores them in the learner's replay, then makes the updates owed: one per
``update_every`` environment steps once ``learning_starts`` steps have been taken, syncing
the target networks every ``target_sync`` updates. Every ``eval_every`` steps (at the end
of the round that crosses the mark, and at step 0 and at the end) the learner is evaluated
greedily on every held-out (problem, goal) pair (``evaluate.py``); the learning curve is the
list of these evaluations: environment steps → mean held-out exploitation return.

**Exact resume.** Between rounds no episode is in flight, so a checkpoint there holds the
whole state: the learner's networks, target networks, optimisers and replays, its noise
generator, the loop's generator (ε-greedy draws and replay sampling), every training env's
generator, the step, round and update counters, the curve so far, and the global random
states of Python, NumPy and PyTorch. ``train(cfg, run_dir=d, resume=True)`` after a run was
killed continues from its last checkpoint and produces the learning curve an uninterrupted
run produces, number for number. Checkpoints are written atomically (``io.save_checkpoint``)
and load with ``weights_only=True``.

A run directory holds ``config.json``, ``metrics.jsonl`` (one line per evaluation),
``checkpoints/last.pt`` and, when done, ``summary.json``; ``load_trained`` reads it back.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

import stalwart.rl.dream  # noqa: F401  (registers the learner)
import stalwart.rl.erl2  # noqa: F401  (registers the learner)
from stalwart.errors import CheckpointError, ConfigError
from stalwart.io import (
    append_line,
    atomic_write_text,
    check_writable_directory,
    hold_run_directory,
    load_checkpoint,
    save_checkpoint,
    write_json,
)
from stalwart.rl.config import RLConfig, validate_rl_config
from stalwart.rl.dqn import LinearSchedule
from stalwart.rl.envs.catalog import ENVS
from stalwart.rl.envs.meta import MetaEnv
from stalwart.rl.evaluate import Evaluation, HeldOut, evaluate, reference_returns
from stalwart.rl.learner import LEARNERS, MetaLearner
from stalwart.rl.rollout import rollout

RL_CHECKPOINT_FORMAT = 1
"""The version of the dict an RL checkpoint holds."""

Progress = Callable[[dict[str, Any]], None]


@dataclass
class TrainResult:
    """What ``train`` returns.

    Attributes:
        curve: one record per evaluation: ``step`` (environment steps), ``return`` (mean
            held-out exploitation return), ``updates``, ``rounds``, ``epsilon`` and
            ``train_return`` (mean exploitation return of the training problems played since
            the previous evaluation, ε-greedy; None at step 0).
        learner: the trained learner.
        references: the oracle's and a random policy's held-out returns (same pairs).
        resumed_from: the step the run resumed from (0 for a fresh run).
        seconds: wall time of the whole run, its earlier (checkpointed) sessions included.
    """

    curve: list[dict[str, Any]]
    learner: MetaLearner
    references: dict[str, float]
    resumed_from: int = 0
    seconds: float = 0.0
    final: Evaluation | None = field(default=None, repr=False)


@dataclass
class TrainedRun:
    """A run directory read back (``load_trained``): its config, learner and curve so far."""

    root: Path
    config: RLConfig
    learner: MetaLearner
    curve: list[dict[str, Any]]

    @property
    def finished(self) -> bool:
        """Whether the checkpoint is the run's last (it reached ``total_steps``)."""
        return bool(self.curve) and self.curve[-1]["step"] >= self.config.total_steps


def load_trained(run_dir: str | Path) -> TrainedRun:
    """The learner of a training run directory, from its last checkpoint.

    Raises:
        CheckpointError: ``run_dir`` holds no RL checkpoint, or a damaged one.
    """
    root = Path(run_dir)
    path = root / "checkpoints" / "last.pt"
    if not path.is_file():
        raise CheckpointError(
            f"{root} holds no meta-RL training run (no {path.relative_to(root)}); give the "
            "directory `stalwart rl train` wrote (runs/rl/<config name> by default)"
        )
    checkpoint = load_checkpoint(path)
    if checkpoint.get("format") != RL_CHECKPOINT_FORMAT or not all(
        key in checkpoint for key in ("config", "learner", "loop")
    ):
        raise CheckpointError(f"{path} is not a stalwart RL training checkpoint")
    try:
        cfg = validate_rl_config(checkpoint["config"], str(path))
    except ConfigError as error:
        raise CheckpointError(f"{path} holds a config this version cannot read: {error}") from None
    learner = LEARNERS.get(cfg.learner)(make_env(cfg, "train"), cfg)
    try:
        learner.load_state_dict(checkpoint["learner"])
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    return TrainedRun(root, cfg, learner, list(checkpoint["loop"].get("curve", [])))


def make_env(cfg: RLConfig, split: str) -> MetaEnv:
    """The config's benchmark on ``split`` (``"train"`` or ``"test"``)."""
    return ENVS.build(cfg.env.name, **cfg.env.params, split=split)


@dataclass
class _LoopState:
    steps: int = 0
    rounds: int = 0
    next_eval: int = 0
    next_checkpoint: int = 0
    curve: list[dict[str, Any]] = field(default_factory=list)
    train_returns: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train(
    cfg: RLConfig | dict[str, Any],
    *,
    run_dir: str | Path | None = None,
    resume: bool = False,
    on_progress: Progress | None = None,
    eval_problems: Sequence[int] | None = None,
) -> TrainResult:
    """Meta-train ``cfg.learner`` on ``cfg.env`` for ``cfg.total_steps`` environment steps.

    Args:
        cfg: the run's config (a mapping is validated first).
        run_dir: where to write metrics and checkpoints (None: nothing is written).
        resume: continue from ``run_dir``'s last checkpoint, if there is one.
        on_progress: called after every round with ``step``, ``total_steps``, ``rounds``,
            ``updates``, ``epsilon`` and the last update's ``losses``, and after each
            evaluation with ``step``, ``total_steps``, ``evaluation`` (the curve record),
            ``references`` (the oracle's and random's returns) and ``eval_seconds`` (what
            ``stalwart rl train`` draws its progress bar from).
        eval_problems: evaluate on these problem ids instead of the whole held-out split.

    Raises:
        ConfigError: an invalid config.
        CheckpointError: ``run_dir`` holds another run, a damaged checkpoint, or a checkpoint
            of another config; or it cannot be written.
    """
    cfg = validate_rl_config(cfg)
    if run_dir is None:
        return _Training(cfg, None, eval_problems, on_progress).run(resume=False)
    root = Path(run_dir)
    check_writable_directory(root, contents=("metrics.jsonl", "checkpoints", "config.json"))
    with hold_run_directory(root):
        return _Training(cfg, root, eval_problems, on_progress).run(resume)


class _Training:
    """One call of ``train``: the objects it builds and the state it keeps."""

    def __init__(
        self,
        cfg: RLConfig,
        root: Path | None,
        eval_problems: Sequence[int] | None,
        on_progress: Progress | None,
    ) -> None:
        self.cfg, self.root, self.on_progress = cfg, root, on_progress
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.envs = [make_env(cfg, "train") for _ in range(cfg.problems_per_round)]
        for i, env in enumerate(self.envs):
            env.np_random = np.random.Generator(np.random.PCG64([cfg.seed, i]))
        self.learner: MetaLearner = LEARNERS.get(cfg.learner)(self.envs[0], cfg)
        self.rng = np.random.Generator(np.random.PCG64([cfg.seed, 2**31]))
        self.epsilon = LinearSchedule(cfg.epsilon_start, cfg.epsilon_end, cfg.epsilon_steps)
        self.held_out = HeldOut(lambda: make_env(cfg, "test"), eval_problems)
        self.state = _LoopState()
        self.last_losses: dict[str, float] = {}
        self.references: dict[str, float] = {}

    # ---- the loop -----------------------------------------------------------------------------

    def run(self, resume: bool) -> TrainResult:
        cfg, state = self.cfg, self.state
        self._clock = time.perf_counter()
        references = {k: e.mean for k, e in reference_returns(self.held_out, cfg.seed).items()}
        self.references = references
        resumed_from = 0
        if self.root is not None:
            if self._checkpoint_path.exists():
                if not resume:
                    raise CheckpointError(
                        f"{self.root} already holds a training run; resume it (resume=True) "
                        "or choose another run directory"
                    )
                self._restore()
                state = self.state
                resumed_from = state.steps
            else:
                write_json(self.root / "config.json", cfg.model_dump())
                atomic_write_text(self._metrics_path, "")
        if not state.curve:
            self._evaluate()
            self._maybe_checkpoint(force=True)
        final = None
        while state.steps < cfg.total_steps:
            self._round()
            if state.steps >= state.next_eval or state.steps >= cfg.total_steps:
                final = self._evaluate()
            self._maybe_checkpoint(force=state.steps >= cfg.total_steps)
        self._tick()
        if self.root is not None:
            write_json(
                self.root / "summary.json",
                {"curve": state.curve, "references": references, "seconds": state.seconds,
                 "config": cfg.model_dump()},
            )  # fmt: skip
        return TrainResult(
            state.curve, self.learner, references, resumed_from, state.seconds, final
        )

    def _tick(self) -> None:
        """Add the wall time since the last tick to the run's (checkpointed) total."""
        now = time.perf_counter()
        self.state.seconds += now - self._clock
        self._clock = now

    def _round(self) -> None:
        cfg, state, learner = self.cfg, self.state, self.learner
        epsilon = self.epsilon(state.steps)
        played = rollout(
            self.envs,
            learner.policy(training=True, round_index=state.rounds),
            epsilon=epsilon,
            rng=self.rng,
            reveal_problems=True,
        )
        learner.store(played)
        before = state.steps
        state.steps += sum(p.steps for p in played)
        state.rounds += 1
        state.train_returns.extend(p.exploitation_return for p in played)
        for _ in range(self._updates_owed(before, state.steps)):
            self.last_losses = learner.update(self.rng)
            if learner.updates % cfg.target_sync == 0:
                learner.sync_targets()
        if self.on_progress is not None:
            self.on_progress(
                {
                    "step": state.steps,
                    "total_steps": cfg.total_steps,
                    "rounds": state.rounds,
                    "updates": learner.updates,
                    "epsilon": epsilon,
                    "losses": dict(self.last_losses),
                }
            )

    def _updates_owed(self, before: int, after: int) -> int:
        """Multiples of ``update_every`` in (before, after] that are ≥ ``learning_starts``."""
        cfg = self.cfg
        if after < cfg.learning_starts:
            return 0
        low = max(before, cfg.learning_starts - 1)
        return after // cfg.update_every - low // cfg.update_every

    def _evaluate(self) -> Evaluation:
        cfg, state = self.cfg, self.state
        started = time.perf_counter()
        result = evaluate(self.learner, self.held_out)
        record = {
            "step": state.steps,
            "return": result.mean,
            "train_return": float(np.mean(state.train_returns)) if state.train_returns else None,
            "updates": self.learner.updates,
            "rounds": state.rounds,
            "epsilon": self.epsilon(state.steps),
        }
        state.curve.append(record)
        state.train_returns = []
        state.next_eval = (state.steps // cfg.eval_every + 1) * cfg.eval_every
        if self.root is not None:
            append_line(self._metrics_path, json.dumps(record))
        if self.on_progress is not None:
            seconds = round(time.perf_counter() - started, 3)
            self.on_progress(
                {
                    "step": state.steps,
                    "total_steps": cfg.total_steps,
                    "evaluation": record,
                    "references": self.references,
                    "eval_seconds": seconds,
                }
            )
        return result

    # ---- checkpoints --------------------------------------------------------------------------

    @property
    def _checkpoint_path(self) -> Path:
        return self.root / "checkpoints" / "last.pt"

    @property
    def _metrics_path(self) -> Path:
        return self.root / "metrics.jsonl"

    def _maybe_checkpoint(self, force: bool = False) -> None:
        cfg, state = self.cfg, self.state
        if self.root is None:
            return
        every = cfg.checkpoint_every
        due = (
            state.steps >= state.next_checkpoint
            if every
            else state.curve[-1]["step"] == state.steps
        )
        if not (due or force):
            return
        if every:
            state.next_checkpoint = (state.steps // every + 1) * every
        self._tick()
        save_checkpoint(self._checkpoint_path, self._state_dict())

    def _state_dict(self) -> dict[str, Any]:
        state = self.state
        legacy = np.random.get_state()
        return {
            "format": RL_CHECKPOINT_FORMAT,
            "config": self.cfg.model_dump(mode="json"),
            "learner": self.learner.state_dict(),
            "loop": {
                "steps": state.steps,
                "rounds": state.rounds,
                "next_eval": state.next_eval,
                "next_checkpoint": state.next_checkpoint,
                "curve": state.curve,
                "train_returns": state.train_returns,
                "seconds": state.seconds,
            },
            "rng": {
                "loop": self.rng.bit_generator.state,
                "envs": [env.np_random.bit_generator.state for env in self.envs],
                "python": random.getstate(),
                "numpy": [legacy[0], legacy[1].tolist(), *legacy[2:]],
                "torch": torch.get_rng_state(),
            },
        }

    def _restore(self) -> None:
        path = self._checkpoint_path
        advice = f"Delete {path.parent} to train this run again from step 0"
        try:
            checkpoint = load_checkpoint(path)
        except CheckpointError as error:
            raise CheckpointError(f"{error}. {advice}") from None
        if checkpoint.get("format") != RL_CHECKPOINT_FORMAT or not all(
            key in checkpoint for key in ("config", "learner", "loop", "rng")
        ):
            raise CheckpointError(f"{path} is not a stalwart RL training checkpoint. {advice}")
        mine = self.cfg.model_dump(mode="json")
        if checkpoint["config"] != mine:
            changed = sorted(k for k in mine if checkpoint["config"].get(k) != mine[k])
            raise CheckpointError(
                f"{path} was written with other settings ({', '.join(changed)} differ); resume "
                "with the same config or start a new run directory"
            )
        try:
            self.learner.load_state_dict(checkpoint["learner"])
            loop, rng = checkpoint["loop"], checkpoint["rng"]
            self.state = _LoopState(
                steps=int(loop["steps"]),
                rounds=int(loop["rounds"]),
                next_eval=int(loop["next_eval"]),
                next_checkpoint=int(loop["next_checkpoint"]),
                curve=list(loop["curve"]),
                train_returns=list(loop["train_returns"]),
                seconds=float(loop.get("seconds", 0.0)),
            )
            self.rng.bit_generator.state = rng["loop"]
            if len(rng["envs"]) != len(self.envs):
                raise ValueError("one generator state per training env")
            for env, env_state in zip(self.envs, rng["envs"], strict=True):
                env.np_random.bit_generator.state = env_state
            random.setstate(rng["python"])
            name, keys, *rest = rng["numpy"]
            np.random.set_state((name, np.asarray(keys, np.uint32), *rest))
            torch.set_rng_state(rng["torch"])
        except CheckpointError as error:
            raise CheckpointError(f"{path}: {error} {advice}") from None
        except (KeyError, ValueError, TypeError, RuntimeError) as error:
            raise CheckpointError(f"{path} is damaged ({error}). {advice}") from None
        # The metrics file may hold a record written after this checkpoint: keep the curve's.
        atomic_write_text(
            self._metrics_path, "".join(json.dumps(r) + "\n" for r in self.state.curve)
        )
