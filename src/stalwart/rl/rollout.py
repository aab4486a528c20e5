"""Play problems: an exploration episode, then the exploitation episode, for many in lockstep.

Every meta-learner acts through one interface, ``MetaPolicy``: ``start`` a batch of problems,
give Q-values for the current observations step by step, and ``begin_exploitation`` when the
exploration episodes end (DREAM reads the exploration trajectories there; E-RL² just carries
its recurrent state on). ``rollout`` runs ``n`` environments side by side, one problem each:

1. every env resets into a fresh exploration episode (or the problem asked for), and all are
   stepped until each has ended (exploration ends at the step budget, so together);
2. ``begin_exploitation`` gets the exploration episodes;
3. every env resets into the exploitation episode of the same problem (with the goal asked
   for, if any), stepped until each has reached its goal or its step limit.

The previous action and reward run on across the switch (the start token and 0 at a
problem's first step only), as they do for E-RL²'s joined episode; a policy that does not
read them ignores them. Why not Gymnasium's ``SyncVectorEnv``: its auto-reset moves every env
on by itself, while here all envs switch phase together and the policy must see the whole
exploration batch at the switch; after a rollout no episode is in flight, which is where the
training loop checkpoints, so its state is the envs' generators and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from stalwart.rl.dqn import epsilon_greedy
from stalwart.rl.envs.meta import EXPLOIT, EXPLORE, PHASES, MetaEnv
from stalwart.rl.replay import Episode


class MetaPolicy(Protocol):
    """How a learner acts on a batch of problems (see the module docstring)."""

    def start(self, n: int, problems: np.ndarray | None) -> None:
        """New problems: reset recurrent state. ``problems`` (μ) only while meta-training."""

    def q_values(self, obs: Tensor, previous_actions: Tensor, previous_rewards: Tensor) -> Tensor:
        """``[n, A]`` Q-values for ``[n, F]`` observations; advances the recurrent state."""

    def begin_exploitation(self, exploration: Sequence[Episode]) -> None:
        """The exploration episodes have ended; the exploitation episodes start next."""


@dataclass(frozen=True)
class ProblemRollout:
    """One problem played: its two episodes, its id and the exploitation goal."""

    exploration: Episode
    exploitation: Episode
    problem: int
    goal: int

    @property
    def exploitation_return(self) -> float:
        """The exploitation episode's total reward (exploration pays nothing)."""
        return float(self.exploitation.rewards.sum())

    @property
    def steps(self) -> int:
        """Environment steps of both episodes."""
        return len(self.exploration) + len(self.exploitation)

    def joined(self) -> Episode:
        """Both episodes as one, as E-RL² learns on them.

        The exploration's last observation is left out: the step that ends exploration leads
        to the exploitation's first observation (as ``envs.MetaEpisode`` joins them), and
        that step is not an end (``done`` 0), so the value bootstraps across the switch.
        """
        explore, exploit = self.exploration, self.exploitation
        dones = explore.dones.copy()
        dones[-1] = 0.0
        return Episode(
            obs=np.concatenate([explore.obs[:-1], exploit.obs]),
            actions=np.concatenate([explore.actions, exploit.actions]),
            rewards=np.concatenate([explore.rewards, exploit.rewards]),
            dones=np.concatenate([dones, exploit.dones]),
            phases=np.concatenate([explore.phases[:-1], exploit.phases]),
            problem=self.problem,
        )


class _Recorder:
    """The steps of one episode of one env, as lists until it ends."""

    def __init__(self, obs: np.ndarray, phase: int) -> None:
        self.obs, self.phases = [obs], [phase]
        self.actions: list[int] = []
        self.rewards: list[float] = []
        self.dones: list[float] = []

    def episode(self, problem: int) -> Episode:
        return Episode(
            obs=np.stack(self.obs),
            actions=np.asarray(self.actions, np.int64),
            rewards=np.asarray(self.rewards, np.float32),
            dones=np.asarray(self.dones, np.float32),
            phases=np.asarray(self.phases, np.int64),
            problem=problem,
        )


def _play_phase(
    envs: Sequence[MetaEnv],
    recorders: list[_Recorder],
    policy: MetaPolicy,
    epsilon: float,
    rng: np.random.Generator,
    previous: tuple[np.ndarray, np.ndarray],
) -> None:
    """Step every env until its episode ends, with ε-greedy actions of ``policy``."""
    previous_actions, previous_rewards = previous
    active = np.ones(len(envs), bool)
    while active.any():
        obs = torch.from_numpy(np.stack([r.obs[-1] for r in recorders]))
        with torch.no_grad():
            q = policy.q_values(
                obs, torch.from_numpy(previous_actions), torch.from_numpy(previous_rewards)
            )
        actions = epsilon_greedy(q, epsilon, rng)
        for i in np.flatnonzero(active):
            next_obs, reward, terminated, truncated, info = envs[i].step(int(actions[i]))
            recorder = recorders[i]
            recorder.obs.append(next_obs)
            recorder.phases.append(PHASES.index(info["phase"]))
            recorder.actions.append(int(actions[i]))
            recorder.rewards.append(float(reward))
            recorder.dones.append(float(terminated or truncated))
            previous_actions[i], previous_rewards[i] = actions[i], reward
            if terminated or truncated:
                active[i] = False


def rollout(
    envs: Sequence[MetaEnv],
    policy: MetaPolicy,
    *,
    epsilon: float,
    rng: np.random.Generator,
    problems: Sequence[int] | None = None,
    goals: Sequence[int] | None = None,
    reveal_problems: bool = False,
) -> list[ProblemRollout]:
    """Play one problem in each env, exploration then exploitation, in lockstep.

    Args:
        envs: the environments, one problem each (their own generators draw the problems
            and goals not given).
        policy: the learner's policy.
        epsilon: the chance of a random action at each step (0: greedy).
        rng: draws the ε-greedy actions.
        problems: the problem of each env (None: each env draws a fresh one from its split).
        goals: the exploitation goal of each env (None: each env draws one).
        reveal_problems: hand the problem ids to ``policy.start`` (meta-training only; a
            meta-test policy must never see μ).
    """
    n = len(envs)
    recorders, ids = [], []
    for i, env in enumerate(envs):
        options = {"phase": "explore"} if problems is None else {"problem": int(problems[i])}
        obs, info = env.reset(options=options)
        recorders.append(_Recorder(obs, EXPLORE))
        ids.append(int(info["problem"]))
    policy.start(n, np.asarray(ids, np.int64) if reveal_problems else None)
    n_actions = int(envs[0].action_space.n)
    previous = (np.full(n, n_actions, np.int64), np.zeros(n, np.float32))
    _play_phase(envs, recorders, policy, epsilon, rng, previous)
    exploration = [r.episode(ids[i]) for i, r in enumerate(recorders)]

    policy.begin_exploitation(exploration)
    recorders, chosen_goals = [], []
    for i, env in enumerate(envs):
        options = None if goals is None else {"goal": int(goals[i])}
        obs, info = env.reset(options=options)  # follows the exploration: the same problem
        if info["problem"] != ids[i] or env.phase != EXPLOIT:
            raise RuntimeError("the env did not continue the problem into its exploitation")
        recorders.append(_Recorder(obs, EXPLOIT))
        chosen_goals.append(int(env.goal))
    _play_phase(envs, recorders, policy, epsilon, rng, previous)
    return [
        ProblemRollout(exploration[i], r.episode(ids[i]), ids[i], chosen_goals[i])
        for i, r in enumerate(recorders)
    ]
