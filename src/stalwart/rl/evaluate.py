"""Meta-test: greedy exploration then exploitation on the held-out problems, and references.

A learner is scored by its **exploitation return** on problems it never trained on: for
every held-out problem and every goal that problem may be given, its exploration policy
plays the exploration episode greedily, then its exploitation policy plays the exploitation
episode greedily, never told μ (DREAM: z = g(τᵉ)). A problem's score is the mean return over
its goals; the learner's, the mean over problems. Two references bracket it, played on the
same (problem, goal) pairs:

- ``oracle``: the env's ``oracle_action``, which knows μ: the best any learner can do;
- ``random``: uniformly random actions in both episodes.

Everything is played in lockstep, one env per (problem, goal) pair (``rollout.rollout``).
Greedy policies draw no random numbers, so evaluating does not change what training does next.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from stalwart.rl.envs.meta import EXPLOIT, EXPLORE, MetaEnv
from stalwart.rl.learner import MetaLearner
from stalwart.rl.replay import Episode
from stalwart.rl.rollout import MetaPolicy, rollout


@dataclass(frozen=True)
class Evaluation:
    """Exploitation returns on the held-out problems.

    Attributes:
        returns: each problem's mean exploitation return over its goals, by problem id.
        mean: the mean of ``returns`` over problems.
    """

    returns: dict[int, float]
    mean: float


class HeldOut:
    """Every (problem, goal) pair of the test split, with one env for each.

    Args:
        make_env: builds an env of the benchmark (any split: problems are set explicitly).
        problems: the problems to evaluate on (default: the env's ``test_problems``).
    """

    def __init__(self, make_env: Callable[[], MetaEnv], problems: Sequence[int] | None = None):
        first = make_env()
        ids = first.test_problems if problems is None else np.asarray(problems, np.int64)
        pairs = [(int(p), int(g)) for p in ids for g in first.goals_of(int(p))]
        self.problems = np.array([p for p, _ in pairs], np.int64)
        self.goals = np.array([g for _, g in pairs], np.int64)
        self.envs = [first, *(make_env() for _ in range(len(pairs) - 1))]

    def __len__(self) -> int:
        return len(self.problems)

    def play(
        self,
        policy: MetaPolicy,
        *,
        epsilon: float = 0.0,
        seed: int = 0,
        reveal_problems: bool = False,
    ) -> Evaluation:
        """Play every pair once with ``policy``; ε > 0 draws from a generator seeded ``seed``."""
        played = rollout(
            self.envs,
            policy,
            epsilon=epsilon,
            rng=np.random.default_rng(seed),
            problems=self.problems,
            goals=self.goals,
            reveal_problems=reveal_problems,
        )
        by_problem: dict[int, list[float]] = {}
        for one in played:
            by_problem.setdefault(one.problem, []).append(one.exploitation_return)
        returns = {p: float(np.mean(r)) for p, r in sorted(by_problem.items())}
        return Evaluation(returns, float(np.mean(list(returns.values()))))


def evaluate(learner: MetaLearner, held_out: HeldOut) -> Evaluation:
    """The learner's greedy exploitation return on ``held_out`` (μ never shown)."""
    return held_out.play(learner.policy(training=False))


class OraclePolicy:
    """Knows μ: the env's ``oracle_action`` while exploiting; stands still while exploring."""

    def __init__(self, env: MetaEnv) -> None:
        self.env = env
        self.n_actions = int(env.action_space.n)
        self.phase = EXPLORE
        self.problems: np.ndarray | None = None

    def start(self, n: int, problems: np.ndarray | None) -> None:
        """See ``MetaPolicy.start``."""
        if problems is None:
            raise ValueError("the oracle needs the problem ids (reveal_problems=True)")
        self.problems, self.phase = problems, EXPLORE

    def q_values(self, obs: Tensor, previous_actions: Tensor, previous_rewards: Tensor) -> Tensor:
        """See ``MetaPolicy.q_values``."""
        q = torch.zeros(len(obs), self.n_actions)
        if self.phase == EXPLOIT:
            for i, row in enumerate(obs.numpy()):
                q[i, self.env.oracle_action(row, int(self.problems[i]))] = 1.0
        return q

    def begin_exploitation(self, exploration: Sequence[Episode]) -> None:
        """See ``MetaPolicy.begin_exploitation``."""
        self.phase = EXPLOIT


class RandomPolicy:
    """Q-values all zero: with ε = 1 every action is uniformly random."""

    def __init__(self, n_actions: int) -> None:
        self.n_actions = n_actions

    def start(self, n: int, problems: np.ndarray | None) -> None:
        """See ``MetaPolicy.start``."""
        pass

    def q_values(self, obs: Tensor, previous_actions: Tensor, previous_rewards: Tensor) -> Tensor:
        """See ``MetaPolicy.q_values``."""
        return torch.zeros(len(obs), self.n_actions)

    def begin_exploitation(self, exploration: Sequence[Episode]) -> None:
        """See ``MetaPolicy.begin_exploitation``."""
        pass


def reference_returns(held_out: HeldOut, seed: int = 0) -> dict[str, Evaluation]:
    """The oracle's and a uniformly random policy's returns on ``held_out``."""
    env = held_out.envs[0]
    return {
        "oracle": held_out.play(OraclePolicy(env), reveal_problems=True),
        "random": held_out.play(RandomPolicy(int(env.action_space.n)), epsilon=1.0, seed=seed),
    }
