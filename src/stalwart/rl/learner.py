"""What every meta-learner is to the training loop, and the registry of learners by name.

A ``MetaLearner`` owns its networks, optimisers and replay buffers. The loop (``loop.py``)
asks it for a ``policy`` to play a round of problems with, hands it what was played
(``store``), asks for ``update`` steps as environment steps accrue, and for ``sync_targets``
every so many updates. Everything it owns is in ``state_dict``, for exact resume.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from stalwart.errors import CheckpointError
from stalwart.registry import Registry
from stalwart.rl.config import RLConfig
from stalwart.rl.envs.meta import MetaEnv
from stalwart.rl.replay import EpisodeReplay
from stalwart.rl.rollout import MetaPolicy, ProblemRollout

LEARNERS: Registry[MetaLearner] = Registry("learner")


class MetaLearner(ABC):
    """A meta-RL learner (see the module docstring).

    Subclasses set, in ``__init__``: ``networks`` (an ``nn.ModuleDict``), ``optimizers`` and
    ``replays`` (dicts by name). ``generator`` draws the learner's own noise (DREAM's ε in
    ``z = f(μ) + ρε``); ``updates`` counts the updates made.

    Args:
        env: a training env of the benchmark (its spaces and sizes shape the networks).
        cfg: the run's config.
    """

    networks: nn.ModuleDict
    optimizers: dict[str, torch.optim.Optimizer]
    replays: dict[str, EpisodeReplay]

    def __init__(self, env: MetaEnv, cfg: RLConfig) -> None:
        self.cfg = cfg
        self.field_sizes = [int(n) for n in env.observation_space.nvec]
        self.n_actions = int(env.action_space.n)
        self.n_problems = env.n_problems
        self.max_steps = env.max_steps
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.updates = 0

    @abstractmethod
    def policy(self, *, training: bool, round_index: int = 0) -> MetaPolicy:
        """The policy that plays the next round (greedy use is the caller's ε = 0).

        Args:
            training: meta-training (the policy may be handed μ) or meta-test (never).
            round_index: which collection round this is (DREAM alternates how it conditions
                its exploitation policy from round to round).
        """

    @abstractmethod
    def store(self, rollouts: Sequence[ProblemRollout]) -> None:
        """Put the problems just played into the replay."""

    @abstractmethod
    def update(self, rng: np.random.Generator) -> dict[str, float]:
        """One gradient step of every part; returns the losses by name."""

    def sync_targets(self) -> None:
        """Copy every online Q-network into its target."""
        for module in self.networks.values():
            if hasattr(module, "sync"):
                module.sync()

    def ready(self) -> bool:
        """Whether the replay holds anything to learn from."""
        return all(len(replay) > 0 for replay in self.replays.values())

    # ---- checkpoints --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Networks (online and target), optimisers, replays, generator and update count."""
        return {
            "networks": self.networks.state_dict(),
            "optimizers": {name: o.state_dict() for name, o in self.optimizers.items()},
            "replays": {name: r.state_dict() for name, r in self.replays.items()},
            "generator": self.generator.get_state(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict``'s output.

        Raises:
            CheckpointError: the state belongs to another learner or other sizes.
        """
        try:
            self.networks.load_state_dict(state["networks"])
            for name, optimizer in self.optimizers.items():
                optimizer.load_state_dict(state["optimizers"][name])
            for name, replay in self.replays.items():
                replay.load_state_dict(state["replays"][name])
            self.generator.set_state(state["generator"])
            self.updates = int(state["updates"])
        except CheckpointError:
            raise
        except (KeyError, RuntimeError, ValueError, TypeError) as error:
            detail = " ".join(str(error).split())[:300]
            raise CheckpointError(
                f"the checkpoint does not match this {type(self).__name__} learner: {detail}. "
                "Was it written for another learner or config?"
            ) from None
