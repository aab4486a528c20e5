"""The two-episode protocol every meta-exploration environment shares.

DREAM (Liu, Raghunathan, Liang and Finn, ICML 2021, arXiv 2008.02790, Section 3) poses each
problem μ as two episodes in the same MDP: an **exploration episode**, with no task reward,
whose only use is to gather information, then an **exploitation episode**, in which an
instruction (a goal) is given and the task reward is paid. The problem id μ is known while
meta-training and must never be seen by a policy at meta-test time.

Design: one Gymnasium episode is one of the two episodes
--------------------------------------------------------
A ``MetaEnv`` is an ordinary ``gymnasium.Env`` whose episodes alternate by phase:

- ``reset(seed=s)`` (or ``reset()`` after an exploitation episode) draws a fresh μ from the
  env's split (``train_problems`` or ``test_problems``) and starts its **exploration**
  episode: ``phase`` is 0 in the observation and ``"explore"`` in ``info``, the instruction is
  0 (none), every reward is 0, and the episode is truncated after ``max_steps`` steps.
- The next ``reset()`` (no seed, no problem) starts the **exploitation** episode of the *same*
  μ: ``phase`` 1 / ``"exploit"``, the instruction names the goal, the reward is the task's,
  and the episode ends at the goal (terminated) or after ``max_steps`` steps (truncated).
- ``info["problem"]`` carries μ at every reset and step; the observation never does.
- ``reset(options=...)`` chooses explicitly: ``{"problem": k}`` the problem, ``{"phase":
  "exploit"}`` the phase (an exploitation episode with no exploration before it, as DREAM's
  exploitation learner trains on when conditioned on μ), ``{"goal": g}`` the instruction.
  μ is carried over only into an exploitation episode that follows an exploration episode
  and names neither a seed nor a problem; every other reset draws μ anew or takes the given.

Why this shape: each learner sees the stream it needs with nothing to untangle.

- **DREAM** keeps the exploration trajectory τᵉ apart from the exploitation one: they are
  different Gymnasium episodes, told apart by ``info["phase"]`` (or ``obs[PHASE]``), with μ
  in ``info["problem"]`` for the decoder's target f(μ) and the exploitation policy's
  μ-conditioned episodes. Per step it gets obs, action, reward, terminated/truncated and μ.
- **E-RL²** (one recurrent policy across both episodes) runs the same env and resets its
  hidden state only where a meta-episode ends: an episode end in the exploit phase. For
  off-the-shelf recurrent learners that reset at every episode end, ``wrappers.MetaEpisode``
  joins the two episodes of a problem into one Gymnasium episode.
- **Vector envs** work unchanged: ``SyncVectorEnv`` / ``AsyncVectorEnv`` auto-reset by calling
  ``reset()`` without arguments, which is exactly the explore → exploit → next-problem
  alternation; ``envs.reset(seed=s)`` starts every sub-env on a fresh problem.

The exploration episode ends by truncation, not termination: its horizon is a step budget,
not a state of the MDP, and E-RL²'s value must bootstrap across it into the exploitation
episode.

Observations are flat ``int64`` vectors (``MultiDiscrete``), one named field per entry
(``observation_fields``; the ``PHASE`` and ``INSTRUCTION`` indices are shared by every env),
so that a learner embeds each field with one table and a batch is one array.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from stalwart.errors import ConfigError, DataMissingError, closest, shorten

GYMNASIUM_INSTALL = 'pip install "stalwart[rl]"  (or: pip install gymnasium==1.3.0)'
try:
    import gymnasium
    from gymnasium import spaces
except ImportError:
    raise DataMissingError(
        f"stalwart.rl.envs needs Gymnasium; install it with {GYMNASIUM_INSTALL}"
    ) from None

EXPLORE, EXPLOIT = 0, 1
PHASES = ("explore", "exploit")
"""Phase names by their value in the observation's ``phase`` field."""

PHASE, INSTRUCTION = 2, 3
"""Indices of the ``phase`` and ``instruction`` fields in every env's observation."""

RESET_OPTIONS = ("problem", "phase", "goal")

Split = Literal["train", "test"]


def check_int(name: str, value: Any, low: int, high: int | None = None, rule: str = "") -> int:
    """``value`` as an int within ``[low, high]``, or a ``ConfigError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ConfigError(f"{name} must be an integer; got {shorten(value)}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{name} must be {bound}{rule}; got {value}")
    return int(value)


def split_problems(n_problems: int, train_every: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out problem ids: every ``train_every``-th id trains (DREAM: 11).

    With ``train_every=None`` there is no held-out set: both splits are every problem, as
    the reference code does for the city and map benchmarks.
    """
    if train_every is not None:
        check_int("train_every", train_every, 2, rule=" (None trains on every problem)")
    ids = np.arange(n_problems, dtype=np.int64)
    if train_every is None:
        return ids, ids
    train, test = ids[ids % train_every == 0], ids[ids % train_every != 0]
    if len(test) == 0:
        raise ConfigError(
            f"train_every={train_every} leaves no held-out problem among {n_problems}; "
            "use train_every=None to train and test on every problem"
        )
    return train, test


class MetaEnv(gymnasium.Env[np.ndarray, np.int64], ABC):
    """A meta-exploration environment: problems μ, each an exploration then an exploitation.

    Subclasses describe one world: how it starts for a problem, how an action moves it, what
    the agent sees, and what the task pays in the exploitation phase.

    Attributes:
        n_problems: how many problem ids μ there are (``0 .. n_problems - 1``).
        train_problems: the ids meta-training draws from (read-only int64 array).
        test_problems: the held-out ids (the same as ``train_problems`` when the benchmark
            has no held-out set).
        n_goals: how many instructions there are; the observation's instruction is
            ``1 + goal`` in the exploitation phase and 0 in the exploration phase.
        max_steps: the step limit of each of the two episodes.
        observation_fields: the name of each entry of an observation.
        problem, phase, goal, steps: the current episode's state (phase 0 explore, 1 exploit;
            goal ``None`` while exploring).
    """

    # render_fps: the rate a video of the rgb_array frames plays at (text frames carry none,
    # but Gymnasium expects a rate with any render mode); 4 steps a second can be followed.
    metadata: dict[str, Any] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}
    observation_fields: tuple[str, ...]
    action_names: tuple[str, ...]

    def __init__(
        self,
        *,
        n_problems: int,
        n_goals: int,
        max_steps: int,
        problems: tuple[np.ndarray, np.ndarray],
        split: Split,
        render_mode: str | None,
    ) -> None:
        self.max_steps = check_int("max_steps", max_steps, 1)
        if split not in ("train", "test"):
            raise ConfigError(f"split must be 'train' or 'test'; got {shorten(split)}")
        if render_mode not in (None, *self.metadata["render_modes"]):
            raise ConfigError(
                f"render_mode must be one of {self.metadata['render_modes']} or None; "
                f"got {shorten(render_mode)}"
            )
        self.render_mode = render_mode
        self.n_problems = n_problems
        self.n_goals = n_goals
        # Read-only, so that a learner holding the split cannot change the env's draws.
        self.train_problems, self.test_problems = (np.array(ids, np.int64) for ids in problems)
        self.train_problems.flags.writeable = False
        self.test_problems.flags.writeable = False
        self.split = split
        self._pool = self.train_problems if split == "train" else self.test_problems
        self.action_space = spaces.Discrete(len(self.action_names))
        self.problem: int | None = None
        self.phase: int | None = None
        self.goal: int | None = None
        self.steps = 0
        self._ended = True

    # ---- what a world defines ---------------------------------------------------------------

    @abstractmethod
    def _start(self) -> None:
        """Put the world in its first state for ``self.problem`` (phase and goal are set)."""

    @abstractmethod
    def _act(self, action: int) -> None:
        """Apply ``action`` to the world."""

    @abstractmethod
    def _observe(self) -> np.ndarray:
        """The current observation (a new array: callers may keep it)."""

    @abstractmethod
    def _task_reward(self, action: int) -> tuple[float, bool]:
        """The exploitation reward of the step just taken, and whether the task is done."""

    @abstractmethod
    def _render_text(self) -> str:
        """The world as text, for ``render_mode="ansi"``."""

    @abstractmethod
    def _render_rgb(self) -> np.ndarray:
        """The world as a ``uint8`` picture ``[H, W, 3]``, for ``render_mode="rgb_array"``."""

    def goals_of(self, problem: int) -> Sequence[int]:
        """The instructions problem ``problem`` may be given (every one unless overridden)."""
        return range(self.n_goals)

    # ---- the protocol -----------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: Mapping[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start the next episode; see the module docstring for which one.

        Args:
            seed: seeds the env's generator, and starts a fresh problem.
            options: ``problem`` (an id, any split), ``phase`` (``"explore"`` or
                ``"exploit"``), ``goal`` (an instruction id, exploit phase only).

        Returns:
            The first observation and ``info`` with ``problem`` and ``phase``.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        for key in options:
            if key not in RESET_OPTIONS:
                raise ConfigError(
                    f"unknown reset option {shorten(key)}{closest(str(key), RESET_OPTIONS)}; "
                    f"choose from {list(RESET_OPTIONS)}"
                )
        follows_exploration = self.phase == EXPLORE and seed is None and "problem" not in options
        if "phase" in options:
            if options["phase"] not in PHASES:
                raise ConfigError(
                    f"reset option 'phase' must be one of {list(PHASES)}; "
                    f"got {shorten(options['phase'])}"
                )
            phase = PHASES.index(options["phase"])
        else:
            phase = EXPLOIT if follows_exploration else EXPLORE
        if "problem" in options:
            problem = check_int(
                "reset option 'problem'", options["problem"], 0, self.n_problems - 1
            )
        elif phase == EXPLOIT and follows_exploration:
            problem = self.problem
        else:
            problem = int(self._pool[self.np_random.integers(len(self._pool))])
        if "goal" in options:
            if phase == EXPLORE:
                raise ConfigError("reset option 'goal' is for the exploit phase only")
            goal = check_int("reset option 'goal'", options["goal"], 0, self.n_goals - 1)
            if goal not in self.goals_of(problem):
                raise ConfigError(
                    f"reset option 'goal' {goal} is not a goal of problem {problem}; "
                    f"its goals are {list(self.goals_of(problem))}"
                )
        elif phase == EXPLOIT:
            goals = self.goals_of(problem)
            goal = int(goals[self.np_random.integers(len(goals))])
        else:
            goal = None
        self.problem, self.phase, self.goal = problem, phase, goal
        self.steps = 0
        self._ended = False
        self._start()
        return self._observe(), self._info()

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One step; the reward is 0 while exploring and the task's while exploiting."""
        if self._ended:
            raise RuntimeError("the episode has ended (or never started): call reset() first")
        action = int(action)
        if not 0 <= action < len(self.action_names):
            raise ValueError(f"action must be in 0..{len(self.action_names) - 1}; got {action}")
        self.steps += 1
        self._act(action)
        if self.phase == EXPLOIT:
            reward, terminated = self._task_reward(action)
        else:
            reward, terminated = 0.0, False
        truncated = not terminated and self.steps >= self.max_steps
        self._ended = terminated or truncated
        return self._observe(), reward, terminated, truncated, self._info()

    def render(self) -> str | np.ndarray | None:
        """The current state: text for ``"ansi"``, a picture for ``"rgb_array"``.

        The picture is a ``uint8`` array ``[H, W, 3]`` (``envs.pictures``: a grid of cells in a
        frame coloured by phase). Nothing (None) without a render mode or before the first
        ``reset``.
        """
        if self.render_mode is None or self.problem is None:
            return None
        if self.render_mode == "rgb_array":
            return self._render_rgb()
        goal = "none" if self.goal is None else str(self.goal)
        header = (
            f"problem {self.problem}, {PHASES[self.phase]}, goal {goal}, "
            f"step {self.steps}/{self.max_steps}"
        )
        return f"{header}\n{self._render_text()}"

    def _info(self) -> dict[str, Any]:
        return {"problem": self.problem, "phase": PHASES[self.phase]}

    def _observation_space(self, sizes: Sequence[int]) -> spaces.MultiDiscrete:
        if len(sizes) != len(self.observation_fields):
            raise AssertionError("one size per observation field")
        return spaces.MultiDiscrete(np.asarray(sizes, dtype=np.int64), dtype=np.int64)
