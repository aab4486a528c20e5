"""Episode replay: whole episodes in, padded batches of sequences with masks out.

Recurrent Q-learning (DREAM, arXiv 2008.02790; R2D2-style learners) trains on sequences, not
on single transitions. The meta-exploration episodes here are short (at most a few tens of
steps), so the buffer keeps each episode whole and a batch is a set of whole episodes, padded
to the longest one in the batch: every sequence starts at its episode's first step, where the
recurrent state is zero, so no burn-in or stored hidden state is needed.

One episode of ``T`` steps is stored as

- ``obs``: ``T + 1`` observations (the last is the one after the last action),
- ``actions``, ``rewards``, ``dones``: ``T`` each; ``dones[t]`` says that nothing follows
  step ``t`` for the learner's value (the end of the episode it learns on),
- ``phases``: the phase (0 explore, 1 exploit) of each of the ``T + 1`` observations,
- ``problem``: the problem id μ the episode ran.

The buffer is a ring of ``capacity`` episodes: the oldest is overwritten first. Its contents
and position are its state (``state_dict``), so a resumed run samples exactly what an
uninterrupted one would. Sampling takes a ``numpy.random.Generator`` the caller owns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from stalwart.errors import CheckpointError, ConfigError


@dataclass(frozen=True)
class Episode:
    """One episode as arrays (see the module docstring for the shapes)."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    dones: np.ndarray
    phases: np.ndarray
    problem: int

    def __len__(self) -> int:
        return len(self.actions)

    def __post_init__(self) -> None:
        steps = len(self.actions)
        if not (len(self.rewards) == len(self.dones) == steps):
            raise ValueError("actions, rewards and dones must have one entry per step")
        if len(self.obs) != steps + 1 or len(self.phases) != steps + 1:
            raise ValueError("obs and phases must have one entry more than the steps")


class EpisodeBatch:
    """A batch of episodes, padded to the longest, as tensors.

    Attributes:
        obs: ``[B, T + 1, F]`` int64 observations (padding repeats 0).
        actions: ``[B, T]`` int64; rewards: ``[B, T]`` float32; dones: ``[B, T]`` float32.
        phases: ``[B, T + 1]`` int64.
        mask: ``[B, T]`` float32, 1 on real steps, 0 on padding.
        lengths: ``[B]`` int64 steps of each episode; problems: ``[B]`` int64.
    """

    def __init__(
        self,
        obs: Tensor,
        actions: Tensor,
        rewards: Tensor,
        dones: Tensor,
        phases: Tensor,
        lengths: Tensor,
        problems: Tensor,
    ) -> None:
        self.obs, self.actions, self.rewards, self.dones = obs, actions, rewards, dones
        self.phases, self.lengths, self.problems = phases, lengths, problems
        steps = torch.arange(actions.shape[1])
        self.mask = (steps[None, :] < lengths[:, None]).float()

    @property
    def observation_mask(self) -> Tensor:
        """``[B, T + 1]``: 1 where an observation is real (one more than the steps)."""
        steps = torch.arange(self.obs.shape[1])
        return (steps[None, :] <= self.lengths[:, None]).float()

    @classmethod
    def from_episodes(cls, episodes: list[Episode]) -> EpisodeBatch:
        """Pad and stack ``episodes`` (used for the trajectories a policy has just played)."""
        if not episodes:
            raise ValueError("a batch needs at least one episode")
        longest = max(len(e) for e in episodes)
        n, fields = len(episodes), episodes[0].obs.shape[1]
        obs = np.zeros((n, longest + 1, fields), np.int64)
        phases = np.zeros((n, longest + 1), np.int64)
        actions = np.zeros((n, longest), np.int64)
        rewards = np.zeros((n, longest), np.float32)
        dones = np.zeros((n, longest), np.float32)
        for i, e in enumerate(episodes):
            steps = len(e)
            obs[i, : steps + 1], phases[i, : steps + 1] = e.obs, e.phases
            actions[i, :steps], rewards[i, :steps], dones[i, :steps] = e.actions, e.rewards, e.dones
        return cls(
            torch.from_numpy(obs),
            torch.from_numpy(actions),
            torch.from_numpy(rewards),
            torch.from_numpy(dones),
            torch.from_numpy(phases),
            torch.tensor([len(e) for e in episodes], dtype=torch.int64),
            torch.tensor([e.problem for e in episodes], dtype=torch.int64),
        )


_ARRAYS = ("obs", "actions", "rewards", "dones", "phases", "lengths", "problems")


class EpisodeReplay:
    """A bounded ring of whole episodes of at most ``max_steps`` steps.

    Args:
        capacity: how many episodes it holds; the oldest is overwritten first.
        max_steps: the longest episode it accepts.
        obs_size: entries per observation.
    """

    def __init__(self, capacity: int, max_steps: int, obs_size: int) -> None:
        if capacity < 1 or max_steps < 1 or obs_size < 1:
            raise ConfigError(
                f"replay sizes must be positive; got capacity={capacity}, "
                f"max_steps={max_steps}, obs_size={obs_size}"
            )
        self.capacity, self.max_steps, self.obs_size = capacity, max_steps, obs_size
        self.obs = np.zeros((capacity, max_steps + 1, obs_size), np.int64)
        self.actions = np.zeros((capacity, max_steps), np.int64)
        self.rewards = np.zeros((capacity, max_steps), np.float32)
        self.dones = np.zeros((capacity, max_steps), np.float32)
        self.phases = np.zeros((capacity, max_steps + 1), np.int64)
        self.lengths = np.zeros(capacity, np.int64)
        self.problems = np.zeros(capacity, np.int64)
        self.position = 0  # the slot the next episode goes to
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, episode: Episode) -> int:
        """Store ``episode`` in the next slot (over the oldest once full); return the slot."""
        steps = len(episode)
        if not 1 <= steps <= self.max_steps:
            raise ValueError(f"an episode must have 1 to {self.max_steps} steps; got {steps}")
        if episode.obs.shape[1] != self.obs_size:
            raise ValueError(
                f"observations must have {self.obs_size} entries; got {episode.obs.shape[1]}"
            )
        slot = self.position
        self.obs[slot] = 0
        self.phases[slot] = 0
        self.actions[slot] = 0
        self.rewards[slot] = 0
        self.dones[slot] = 0
        self.obs[slot, : steps + 1] = episode.obs
        self.phases[slot, : steps + 1] = episode.phases
        self.actions[slot, :steps] = episode.actions
        self.rewards[slot, :steps] = episode.rewards
        self.dones[slot, :steps] = episode.dones
        self.lengths[slot] = steps
        self.problems[slot] = episode.problem
        self.position = (slot + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return slot

    def sample_indices(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` stored slots drawn uniformly with replacement."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay")
        return rng.integers(self.size, size=n)

    def batch(self, indices: np.ndarray) -> EpisodeBatch:
        """The episodes in slots ``indices``, padded to the longest of them."""
        indices = np.asarray(indices, np.int64)
        longest = int(self.lengths[indices].max())
        return EpisodeBatch(
            torch.from_numpy(self.obs[indices, : longest + 1]),
            torch.from_numpy(self.actions[indices, :longest]),
            torch.from_numpy(self.rewards[indices, :longest]),
            torch.from_numpy(self.dones[indices, :longest]),
            torch.from_numpy(self.phases[indices, : longest + 1]),
            torch.from_numpy(self.lengths[indices]),
            torch.from_numpy(self.problems[indices]),
        )

    def sample(self, n: int, rng: np.random.Generator) -> EpisodeBatch:
        """A batch of ``n`` episodes drawn uniformly with replacement."""
        return self.batch(self.sample_indices(n, rng))

    # ---- checkpoints --------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The stored episodes (only the filled slots) and the ring position, as tensors."""
        state: dict[str, Any] = {
            "capacity": self.capacity,
            "max_steps": self.max_steps,
            "obs_size": self.obs_size,
            "position": self.position,
            "size": self.size,
        }
        for name in _ARRAYS:
            state[name] = torch.from_numpy(getattr(self, name)[: self.size].copy())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved into a replay of the same sizes.

        Raises:
            CheckpointError: the state is of a replay of other sizes, or damaged.
        """
        try:
            sizes = (state["capacity"], state["max_steps"], state["obs_size"])
            if sizes != (self.capacity, self.max_steps, self.obs_size):
                raise CheckpointError(
                    f"the checkpoint's replay holds {sizes[0]} episodes of up to {sizes[1]} "
                    f"steps with {sizes[2]} observation entries; this run's holds "
                    f"{self.capacity}, {self.max_steps}, {self.obs_size}: was it written with "
                    "another config?"
                )
            size, position = int(state["size"]), int(state["position"])
            if not (0 <= size <= self.capacity and 0 <= position < self.capacity):
                raise CheckpointError("the checkpoint's replay position is out of range")
            for name in _ARRAYS:
                array = getattr(self, name)
                stored = state[name].numpy()
                if stored.shape != (size, *array.shape[1:]):
                    raise CheckpointError(f"the checkpoint's replay {name} has the wrong shape")
                array[:] = 0
                array[:size] = stored
        except (KeyError, TypeError, AttributeError) as error:
            raise CheckpointError(f"the checkpoint's replay state is damaged ({error})") from None
        self.size, self.position = size, position
