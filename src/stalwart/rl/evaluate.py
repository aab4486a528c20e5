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
from stalwart.rl.rollout import MetaPolicy, ProblemRollout, rollout


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
        limit: keep at most this many pairs, drawn without replacement by a generator seeded
            ``seed`` and kept in (problem, goal) order (None: every pair).
        seed: seeds that draw.
    """

    def __init__(
        self,
        make_env: Callable[[], MetaEnv],
        problems: Sequence[int] | None = None,
        *,
        limit: int | None = None,
        seed: int = 0,
    ):
        first = make_env()
        ids = first.test_problems if problems is None else np.asarray(problems, np.int64)
        pairs = [(int(p), int(g)) for p in ids for g in first.goals_of(int(p))]
        self.total_pairs = len(pairs)
        if limit is not None and limit < len(pairs):
            keep = np.sort(np.random.default_rng(seed).choice(len(pairs), limit, replace=False))
            pairs = [pairs[i] for i in keep]
        self.problems = np.array([p for p, _ in pairs], np.int64)
        self.goals = np.array([g for _, g in pairs], np.int64)
        self.envs = [first, *(make_env() for _ in range(len(pairs) - 1))]

    def __len__(self) -> int:
        return len(self.problems)

    def rollouts(
        self,
        policy: MetaPolicy,
        *,
        epsilon: float = 0.0,
        seed: int = 0,
        reveal_problems: bool = False,
    ) -> list[ProblemRollout]:
        """Play every pair once with ``policy``; ε > 0 draws from a generator seeded ``seed``."""
        return rollout(
            self.envs,
            policy,
            epsilon=epsilon,
            rng=np.random.default_rng(seed),
            problems=self.problems,
            goals=self.goals,
            reveal_problems=reveal_problems,
        )

    def play(
        self,
        policy: MetaPolicy,
        *,
        epsilon: float = 0.0,
        seed: int = 0,
        reveal_problems: bool = False,
    ) -> Evaluation:
        """``rollouts``, scored: each problem's mean return over its goals, then the mean."""
        played = self.rollouts(policy, epsilon=epsilon, seed=seed, reveal_problems=reveal_problems)
        return score(played)


def score(played: Sequence[ProblemRollout]) -> Evaluation:
    """Each problem's mean exploitation return over the goals played, and their mean."""
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


@dataclass(frozen=True)
class MetaTest:
    """A learner meta-tested episode by episode (``meta_test``; ``stalwart rl eval``).

    Attributes:
        episodes: one record per (problem, goal) pair played: ``problem``, ``goal``,
            ``return`` (the learner's exploitation return), ``oracle`` (the oracle's on the
            same pair), ``exploration`` and ``exploitation`` (the action names taken).
        mean, sem: the learner's mean exploitation return over the episodes (each pair counts
            once, unlike ``Evaluation.mean``, which averages goals within a problem first),
            and its standard error.
        oracle, random: the references' means over the same episodes.
        total_pairs: how many held-out pairs there are (``len(episodes)`` or more).
    """

    episodes: list[dict]
    mean: float
    sem: float
    oracle: float
    random: float
    total_pairs: int


def meta_test(
    learner: MetaLearner,
    make_env: Callable[[], MetaEnv],
    *,
    episodes: int | None = None,
    seed: int = 0,
) -> MetaTest:
    """Play ``episodes`` held-out (problem, goal) pairs greedily (None: all), with references.

    Greedy play in these deterministic worlds gives the same return every time a pair is
    played, so the pairs are drawn without replacement (seeded by ``seed``) and ``episodes``
    above the number of pairs plays each once.
    """
    held_out = HeldOut(make_env, limit=episodes, seed=seed)
    names = held_out.envs[0].action_names
    played = held_out.rollouts(learner.policy(training=False))
    oracle = held_out.rollouts(OraclePolicy(held_out.envs[0]), reveal_problems=True)
    random = held_out.rollouts(RandomPolicy(len(names)), epsilon=1.0, seed=seed)
    records = [
        {
            "problem": one.problem,
            "goal": one.goal,
            "return": one.exploitation_return,
            "oracle": best.exploitation_return,
            "exploration": [names[a] for a in one.exploration.actions],
            "exploitation": [names[a] for a in one.exploitation.actions],
        }
        for one, best in zip(played, oracle, strict=True)
    ]
    returns = np.array([r["return"] for r in records])
    sem = float(returns.std(ddof=1) / np.sqrt(len(returns))) if len(returns) > 1 else 0.0
    return MetaTest(
        episodes=records,
        mean=float(returns.mean()),
        sem=sem,
        oracle=float(np.mean([r["oracle"] for r in records])),
        random=float(np.mean([one.exploitation_return for one in random])),
        total_pairs=held_out.total_pairs,
    )
