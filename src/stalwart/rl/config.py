"""The strict config of a meta-RL training run (``stalwart.rl.loop.train``).

Every key is checked: an unknown one is refused with the closest valid key, a value of the
wrong type or range names the key, the rule and the value. The ``env`` section names a
benchmark of ``stalwart.rl.envs`` and its size keywords, checked against the benchmark's
signature; ``dream`` holds the settings only DREAM reads, refused (when changed) for E-RL².

Defaults: the settings measured on ``distracting_bus_tight`` (docs/rl.md), where DREAM learns
in a few CPU minutes; the reference's own values (ezliu/dream ``configs/default.json``) are in
the fields' descriptions where they differ.
"""

from __future__ import annotations

from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, model_validator

from stalwart.config import MAX_SEED, StrictModel, describe
from stalwart.errors import ConfigError, shorten
from stalwart.rl.envs.catalog import ENVS

MAX_ENV_STEPS = 2**40

RESERVED_ENV_KEYS = ("split", "render_mode")
"""Env keywords the training loop sets itself (train split for learning, test for evaluation)."""


class EnvConfig(BaseModel):
    """A benchmark by ``name`` (``stalwart.rl.envs.ENVS``); the other keys are its sizes."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @property
    def params(self) -> dict[str, Any]:
        """The benchmark's keywords (every key but ``name``)."""
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _the_benchmark_takes_these_keys(self) -> EnvConfig:
        ENVS.get(self.name)  # a wrong name lists the choices
        for key in RESERVED_ENV_KEYS:
            if key in self.params:
                raise ValueError(
                    f"env key {key!r} is set by the training loop (it trains on the train "
                    "split and evaluates on the held-out one); remove it"
                )
        ENVS.check_params(self.name, self.params)
        ENVS.build(self.name, **self.params)  # sizes that do not fit fail here, not mid-run
        return self


class DreamConfig(StrictModel):
    """DREAM's own settings (arXiv 2008.02790; the reference code's values by default)."""

    context_dim: int = Field(32, ge=1, le=4096, description="width of z (reference: 64)")
    noise: float = Field(
        0.1, ge=0, description="ρ: z = f(μ) + ρ·ε while the exploitation policy trains on μ"
    )
    bottleneck_threshold: float = Field(
        10.0, ge=0, description="the penalty is mean(max(‖f(μ)‖², threshold)): it acts above"
    )
    bottleneck_weight: float = Field(1.0, ge=0, description="λ, the penalty's weight")
    exploration_penalty: float = Field(
        0.1, ge=0, description="c, subtracted from each step's exploration reward"
    )


class RLConfig(StrictModel):
    """One meta-RL training run: benchmark, learner, budget, DQN settings, evaluation, seed."""

    env: EnvConfig
    learner: Literal["dream", "erl2"] = "dream"
    total_steps: int = Field(
        30_000, ge=1, le=MAX_ENV_STEPS, description="environment steps, both phases counted"
    )
    seed: int = Field(0, ge=0, le=MAX_SEED)
    lr: float = Field(1e-3, gt=0, description="Adam's learning rate (reference: 1e-4)")
    batch_size: int = Field(32, ge=1, le=4096, description="episodes per update")
    replay_size: int = Field(
        4000, ge=1, le=10_000_000, description="problems the replay keeps (reference: 16000)"
    )
    learning_starts: int = Field(
        1000, ge=0, le=MAX_ENV_STEPS, description="environment steps before the first update"
    )
    epsilon_start: float = Field(1.0, ge=0, le=1)
    epsilon_end: float = Field(0.05, ge=0, le=1, description="reference: 0.01")
    epsilon_steps: int = Field(
        10_000, ge=1, le=MAX_ENV_STEPS, description="steps of linear decay (reference: 250000)"
    )
    update_every: int = Field(4, ge=1, le=1_000_000, description="environment steps per update")
    target_sync: int = Field(
        100, ge=1, le=10_000_000, description="updates between target syncs (reference: 5000)"
    )
    gamma: float = Field(0.99, ge=0, le=1)
    max_grad_norm: float = Field(10.0, gt=0)
    hidden: int = Field(
        32, ge=1, le=4096, description="LSTM and embedding width (reference: 64 to 128)"
    )
    field_dim: int = Field(
        8, ge=1, le=4096, description="width of each observation table (reference: 32)"
    )
    problems_per_round: int = Field(
        4, ge=1, le=4096, description="problems played in lockstep between updates"
    )
    eval_every: int = Field(
        3000, ge=1, le=MAX_ENV_STEPS, description="environment steps between evaluations"
    )
    checkpoint_every: int | None = Field(
        None, ge=1, le=MAX_ENV_STEPS, description="steps between checkpoints (None: each eval)"
    )
    dream: DreamConfig = DreamConfig()

    @model_validator(mode="after")
    def _dream_settings_only_for_dream(self) -> RLConfig:
        if self.learner != "dream" and self.dream != DreamConfig():
            raise ValueError(
                f"the dream section applies to learner 'dream' only; the learner is "
                f"{self.learner!r}: remove it or set learner: dream"
            )
        if self.epsilon_end > self.epsilon_start:
            raise ValueError(
                f"epsilon_end ({self.epsilon_end}) must not exceed epsilon_start "
                f"({self.epsilon_start})"
            )
        return self


def validate_rl_config(raw: Any, source: str = "config") -> RLConfig:
    """A mapping as an ``RLConfig``, or a ``ConfigError`` with one line per problem."""
    if isinstance(raw, RLConfig):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of keys to values; got {shorten(raw)}")
    try:
        return RLConfig.model_validate(raw)
    except pydantic.ValidationError as error:
        raise ConfigError(describe(error, source, root=RLConfig)) from None
