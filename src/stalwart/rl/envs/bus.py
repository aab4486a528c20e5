"""Distracting bus (DREAM): learn where the useful buses go; the distracting ones do not matter.

Liu, Raghunathan, Liang and Finn, "Decoupling Exploration and Exploitation for
Meta-Reinforcement Learning without Sacrifices", ICML 2021 (arXiv 2008.02790), Section 6.
The city (``city.py``): a 9×9 grid, the agent starts at the centre (4, 4); 4 useful bus stops
next to it lead to cells next to the 4 corners in the problem's order (4! = 24), 4 distracting
buses lead to the edges' middles in their own order (24): 576 problems, meta-training on every
11th id and holding out the rest. The exploitation instruction is one of the 4 corners; riding
the right useful bus reaches it in 3 steps, walking takes 8. Optimal exploration rides the
useful buses and ignores the distracting ones, which no instruction needs.

Actions: ``left``, ``right``, ``down``, ``up`` (a step into a wall stays put) and ``ride``
(at a stop or a destination: go to the other end of that bus; elsewhere: stay, so ``ride``
off a stop is the no-op). The reference's ``end_episode`` action is left out: the exploration
budget is fixed, and ending early never helps the exploitation return.

Observation (``observation_fields``): ``x``, ``y``, ``phase`` (0 explore, 1 exploit),
``instruction`` (0 while exploring, else 1 + goal, the goal being the corner ``city.goals[goal]``)
and ``stop`` (1 on a bus stop or destination). Stops and destinations are the same cells in
every problem, so nothing in an observation tells problems apart until a bus is ridden.

Rewards (``meta.py`` for the two-episode protocol): 0 while exploring; while exploiting −0.1
per step and +1 on the step that reaches the goal, which ends the episode. Each episode is
truncated after ``max_steps`` steps (the paper: 20).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stalwart.rl.envs.city import City, build_city, steps_to
from stalwart.rl.envs.meta import EXPLOIT, INSTRUCTION, MetaEnv, Split, split_problems
from stalwart.rl.envs.pictures import COLOURS, Grid

LEFT, RIGHT, DOWN, UP, RIDE = range(5)
ACTION_NAMES = ("left", "right", "down", "up", "ride")

STEP_REWARD = -0.1
GOAL_REWARD = 1.0
ORACLE_CACHE = 4096
"""The most (problem, goal) shortest-path tables an env keeps for its oracle."""


class CityEnv(MetaEnv):
    """The bus mechanics shared by the distracting-bus and map benchmarks, for any ``City``."""

    observation_fields: tuple[str, ...] = ("x", "y", "phase", "instruction", "stop")
    action_names = ACTION_NAMES

    def __init__(
        self,
        city: City,
        *,
        max_steps: int,
        train_every: int | None,
        split: Split,
        render_mode: str | None,
    ) -> None:
        self.city = city
        super().__init__(
            n_problems=city.n_problems,
            n_goals=len(city.goals),
            max_steps=max_steps,
            problems=split_problems(city.n_problems, train_every),
            split=split,
            render_mode=render_mode,
        )
        self.observation_space = self._observation_space(self._field_sizes())
        n = city.size
        # Flat tables indexed by cell, so that a step is two list look-ups.
        self._moves = city.move_table()
        self._xy = [(x, y) for x in range(n) for y in range(n)]
        stops = city.stops
        self._on_stop = [int(cell in stops) for cell in self._xy]
        self._goal_cells = [city.index(goal) for goal in city.goals]
        self._start_cell = city.index(city.start)
        self._pos = self._start_cell
        self._goal_cell = -1
        self._ride = list(range(n * n))
        self._ride_problem: int | None = None
        self._oracle_tables: dict[tuple[int, int], tuple[list[int], list[list[int]]]] = {}

    def _field_sizes(self) -> list[int]:
        n = self.city.size
        return [n, n, 2, self.n_goals + 1, 2]

    # ---- the world --------------------------------------------------------------------------

    def _start(self) -> None:
        self._pos = self._start_cell
        if self._ride_problem != self.problem:  # the exploitation episode keeps its table
            self._ride = self.city.ride_table(self.problem)
            self._ride_problem = self.problem
        self._goal_cell = -1 if self.goal is None else self._goal_cells[self.goal]

    def _act(self, action: int) -> None:
        if action == RIDE:
            self._pos = self._ride[self._pos]
        else:
            self._pos = self._moves[action][self._pos]

    def _observe(self) -> np.ndarray:
        x, y = self._xy[self._pos]
        instruction = 0 if self.goal is None else self.goal + 1
        return np.array((x, y, self.phase, instruction, self._on_stop[self._pos]), np.int64)

    def _task_reward(self, action: int) -> tuple[float, bool]:
        if self._pos == self._goal_cell:
            return GOAL_REWARD, True
        return STEP_REWARD, False

    @property
    def position(self) -> tuple[int, int]:
        """The agent's cell ``(x, y)``."""
        return self._xy[self._pos]

    # ---- the oracle -------------------------------------------------------------------------

    def oracle_action(self, observation: Any, problem: int) -> int:
        """An optimal exploitation action for ``problem``, knowing where every bus goes.

        Fewest steps to the instructed goal is optimal (−0.1 a step, +1 at the goal), so the
        action is the first of a shortest path, found by BFS over the grid with the bus edges
        of ``problem``. Ties go to the lowest action id.

        Args:
            observation: an exploitation-phase observation of this env.
            problem: the problem id μ the episode runs.

        Raises:
            ValueError: on an exploration-phase observation (it names no goal).
        """
        instruction = int(observation[INSTRUCTION])
        if instruction == 0:
            raise ValueError("oracle_action needs an exploitation observation (it has no goal)")
        distance, successors = self._oracle_table(int(problem), instruction - 1)
        cell = self.city.index((int(observation[0]), int(observation[1])))
        best, best_distance = 0, None
        for action, table in enumerate(successors):
            after = distance[table[cell]]
            if after >= 0 and (best_distance is None or after < best_distance):
                best, best_distance = action, after
        return best

    def oracle_steps(self, problem: int, goal: int) -> int:
        """Fewest steps from the start to ``goal`` in ``problem`` (what the oracle takes)."""
        distance, _ = self._oracle_table(problem, goal)
        return distance[self._start_cell]

    def _oracle_table(self, problem: int, goal: int) -> tuple[list[int], list[list[int]]]:
        key = (problem, goal)
        if key not in self._oracle_tables:
            if len(self._oracle_tables) >= ORACLE_CACHE:  # bounded, for cities of many problems
                self._oracle_tables.clear()
            successors = [*self._moves, self.city.ride_table(problem)]
            self._oracle_tables[key] = (steps_to(self._goal_cells[goal], successors), successors)
        return self._oracle_tables[key]

    # ---- rendering --------------------------------------------------------------------------

    def _render_text(self) -> str:
        city = self.city
        marks = {}
        for cell in city.useful_stops:
            marks[cell] = "u"
        for cell in city.distracting_stops:
            marks[cell] = "d"
        for cell in city.useful_destinations + city.distracting_destinations:
            marks[cell] = "o"
        if city.map_cell is not None:
            marks[city.map_cell] = "M"
        if self.phase == EXPLOIT:
            marks[city.goals[self.goal]] = "G"
        marks[self.position] = "A"
        rows = []
        for y in reversed(range(city.size)):  # up is up
            rows.append("".join(marks.get((x, y), ".") for x in range(city.size)))
        return "\n".join(rows)

    def _render_rgb(self) -> np.ndarray:
        city = self.city
        grid = Grid(city.size, city.size, self.phase)
        for cells, kind in (
            (city.useful_stops, "useful_stop"),
            (city.useful_destinations, "useful_destination"),
            (city.distracting_stops, "distracting_stop"),
            (city.distracting_destinations, "distracting_destination"),
        ):
            for cell in cells:
                grid.paint(cell, COLOURS[kind])
        if city.map_cell is not None:
            grid.paint(city.map_cell, COLOURS["map"])
        if self.phase == EXPLOIT:
            grid.paint(city.goals[self.goal], COLOURS["goal"])
        grid.agent(self.position)
        return grid.image


class DistractingBusEnv(CityEnv):
    """DREAM's distracting-bus benchmark; the defaults are the paper's.

    Args:
        size: side of the square grid (9).
        n_useful: useful buses (4: 4! orders).
        n_distracting: distracting buses (4: 4! orders).
        max_steps: step limit of each episode (20).
        train_every: meta-train on every ``train_every``-th problem id, hold out the rest
            (11); None trains and tests on every problem.
        split: which problems ``reset`` draws from, ``"train"`` or ``"test"`` (held out).
        render_mode: ``"ansi"`` for text, ``"rgb_array"`` for pictures, or None.
    """

    def __init__(
        self,
        *,
        size: int = 9,
        n_useful: int = 4,
        n_distracting: int = 4,
        max_steps: int = 20,
        train_every: int | None = 11,
        split: Split = "train",
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            build_city(size, n_useful, n_distracting),
            max_steps=max_steps,
            train_every=train_every,
            split=split,
            render_mode=render_mode,
        )
