"""Cooking (DREAM): learn which drawer holds which ingredient, then cook the recipe.

Liu, Raghunathan, Liang and Finn, ICML 2021 (arXiv 2008.02790), Section 6, with the details
of the reference code (ezliu/dream, ``envs/cooking.py``). A 3×3 kitchen: three drawers down
its right side, (2, 0), (2, 1), (2, 2), and a bowl in the middle, (1, 1), where the agent
starts. A problem μ is what each drawer holds, one of ``n_ingredients`` each (4³ = 64
problems; drawer ``i`` holds ``(μ // n_ingredients**i) % n_ingredients``). The reference
holds out problem 10 and meta-trains on the other 63.

The instruction is a recipe: two ingredients (either may repeat) that the drawers hold, in
order; goal id ``g`` is the recipe ``(g // n_ingredients, g % n_ingredients)``. Cooking it
means picking the first ingredient from a drawer, dropping it into the bowl, then the same
with the second. Exploring pays by opening drawers: ``pickup`` shows a drawer's ingredient in
the inventory.

Actions: ``left``, ``right``, ``down``, ``up``, ``pickup`` (at a drawer: hold its ingredient,
replacing what was held; elsewhere nothing) and ``drop`` (onto the bowl with a free slot: into
the bowl; anywhere else: the held ingredient is thrown away). The bowl holds two ingredients
and never gives them back, so a wrong one in the first slot spoils the recipe.

Observation (``observation_fields``): ``x``, ``y``, ``phase``, ``instruction`` (0 while
exploring, else 1 + goal), ``status`` (0 floor, 1 drawer, 2 bowl), ``inventory`` (0 empty,
else 1 + ingredient), ``bowl_first`` and ``bowl_second`` (0 empty, else 1 + ingredient).

Exploitation reward, shaped by the recipe's four stages (hold the first ingredient, have it in
the bowl, hold the second, have both in the bowl), as the reference code pays it:

- each step costs −0.1;
- a step that completes the current stage pays +0.25 instead; completing the last one ends
  the episode (terminated);
- a ``pickup`` that leaves the agent without the ingredient it needs costs another −0.25,
  and so does losing the ingredient it was carrying to the bowl, which also sends it back a
  stage.

Cooking the recipe in ``n`` steps therefore returns ``4 · 0.25 − 0.1 · (n − 4)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stalwart.errors import ConfigError, shorten
from stalwart.rl.envs.meta import EXPLOIT, INSTRUCTION, MetaEnv, Split, check_int
from stalwart.rl.envs.pictures import COLOURS, INGREDIENTS, Grid

LEFT, RIGHT, DOWN, UP, PICKUP, DROP = range(6)
ACTION_NAMES = ("left", "right", "down", "up", "pickup", "drop")

SIZE = 3
DRAWERS = ((2, 0), (2, 1), (2, 2))
BOWL = (1, 1)
START = BOWL
EMPTY = -1

STEP_REWARD = -0.1
PROGRESS_REWARD = 0.25
SETBACK_PENALTY = -0.25
KITCHEN_CELL = 40
"""Side of a kitchen cell in pixels for ``rgb_array`` (3×3 cells would be small at 24)."""
MOVES = {LEFT: (-1, 0), RIGHT: (1, 0), DOWN: (0, -1), UP: (0, 1)}


class CookingEnv(MetaEnv):
    """DREAM's cooking benchmark; the defaults are the paper's.

    Args:
        n_ingredients: ingredients a drawer may hold, 2 to 10 (4: 4³ = 64 problems).
        max_steps: step limit of each episode (20).
        held_out: the problem ids held out of meta-training ((10,), as the reference).
        split: which problems ``reset`` draws from, ``"train"`` or ``"test"`` (held out).
        render_mode: ``"ansi"`` for text, ``"rgb_array"`` for pictures, or None.
    """

    observation_fields = (
        "x", "y", "phase", "instruction", "status", "inventory", "bowl_first", "bowl_second",
    )  # fmt: skip
    action_names = ACTION_NAMES

    def __init__(
        self,
        *,
        n_ingredients: int = 4,
        max_steps: int = 20,
        held_out: tuple[int, ...] = (10,),
        split: Split = "train",
        render_mode: str | None = None,
    ) -> None:
        self.n_ingredients = check_int("n_ingredients", n_ingredients, 2, 10)
        n_problems = n_ingredients ** len(DRAWERS)
        held = sorted({check_int("held_out ids", p, 0, n_problems - 1) for p in held_out})
        if not held or len(held) == n_problems:
            raise ConfigError(
                f"held_out must name between 1 and {n_problems - 1} of the {n_problems} "
                f"problems; got {shorten(tuple(held_out))}"
            )
        train = [p for p in range(n_problems) if p not in set(held)]
        super().__init__(
            n_problems=n_problems,
            n_goals=n_ingredients**2,
            max_steps=max_steps,
            problems=(np.array(train), np.array(held)),
            split=split,
            render_mode=render_mode,
        )
        slots = n_ingredients + 1
        self.observation_space = self._observation_space(
            [SIZE, SIZE, 2, self.n_goals + 1, 3, slots, slots, slots]
        )
        self._status = {cell: 1 for cell in DRAWERS} | {BOWL: 2}
        self._position = START
        self._inventory = EMPTY
        self._bowl = [EMPTY, EMPTY]
        self._drawers: tuple[int, ...] = ()
        self._recipe: tuple[int, int] = (EMPTY, EMPTY)
        self._stage = 0

    def drawer_contents(self, problem: int) -> tuple[int, ...]:
        """The ingredient each drawer holds in ``problem``."""
        n = self.n_ingredients
        return tuple((problem // n**i) % n for i in range(len(DRAWERS)))

    def recipe(self, goal: int) -> tuple[int, int]:
        """The two ingredients, in order, that goal id ``goal`` asks for."""
        return divmod(goal, self.n_ingredients)

    def goals_of(self, problem: int) -> list[int]:
        """The recipes problem ``problem`` can cook: both ingredients are in its drawers."""
        held = set(self.drawer_contents(problem))
        return [a * self.n_ingredients + b for a in sorted(held) for b in sorted(held)]

    # ---- the world --------------------------------------------------------------------------

    def _start(self) -> None:
        self._position = START
        self._inventory = EMPTY
        self._bowl = [EMPTY, EMPTY]
        self._drawers = self.drawer_contents(self.problem)
        self._recipe = (EMPTY, EMPTY) if self.goal is None else self.recipe(self.goal)
        self._stage = 0

    def _act(self, action: int) -> None:
        x, y = self._position
        if action in MOVES:
            dx, dy = MOVES[action]
            self._position = (min(max(x + dx, 0), SIZE - 1), min(max(y + dy, 0), SIZE - 1))
        elif action == PICKUP:
            if self._position in DRAWERS:
                self._inventory = self._drawers[DRAWERS.index(self._position)]
        elif self._inventory != EMPTY:  # drop
            if self._position == BOWL and EMPTY in self._bowl:
                self._bowl[self._bowl.index(EMPTY)] = self._inventory
            self._inventory = EMPTY

    def _task_reward(self, action: int) -> tuple[float, bool]:
        first, second = self._recipe
        # Stages: 0 hold `first`, 1 `first` in the bowl, 2 hold `second`, 3 both in the bowl.
        needed = first if self._stage < 2 else second
        if self._stage in (0, 2):
            if self._inventory == needed:
                self._stage += 1
                return PROGRESS_REWARD, False
            if action == PICKUP:
                return STEP_REWARD + SETBACK_PENALTY, False
            return STEP_REWARD, False
        done = self._bowl[0] == first and (self._stage == 1 or self._bowl[1] == second)
        if done:
            self._stage += 1
            return PROGRESS_REWARD, self._stage == 4
        if self._inventory != needed:  # the ingredient for the bowl was lost on the way
            self._stage -= 1
            return STEP_REWARD + SETBACK_PENALTY, False
        return STEP_REWARD, False

    def _observe(self) -> np.ndarray:
        x, y = self._position
        instruction = 0 if self.goal is None else self.goal + 1
        return np.array(
            (
                x, y, self.phase, instruction, self._status.get(self._position, 0),
                self._inventory + 1, self._bowl[0] + 1, self._bowl[1] + 1,
            ),
            np.int64,
        )  # fmt: skip

    @property
    def position(self) -> tuple[int, int]:
        """The agent's cell ``(x, y)``."""
        return self._position

    # ---- the oracle -------------------------------------------------------------------------

    def oracle_action(self, observation: Any, problem: int) -> int:
        """An optimal exploitation action for ``problem``, knowing what every drawer holds.

        Every ingredient costs at least the walk to a drawer holding it, a pickup, the walk
        back to the bowl and a drop; the oracle takes exactly that, from the nearest such
        drawer, one ingredient after the other. It never picks or drops a wrong ingredient,
        so it collects every +0.25 and no penalty: no policy returns more.

        Raises:
            ValueError: on an exploration-phase observation, or with the recipe spoiled (a
                wrong ingredient in the bowl), where no action completes it.
        """
        instruction = int(observation[INSTRUCTION])
        if instruction == 0:
            raise ValueError("oracle_action needs an exploitation observation (it has no goal)")
        recipe = self.recipe(instruction - 1)
        position = (int(observation[0]), int(observation[1]))
        holding = int(observation[5]) - 1
        bowl = [int(observation[6]) - 1, int(observation[7]) - 1]
        if bowl[0] not in (EMPTY, recipe[0]) or bowl[1] not in (EMPTY, recipe[1]):
            raise ValueError(f"the bowl holds {bowl}, which spoils recipe {recipe}")
        needed = recipe[0] if bowl[0] == EMPTY else recipe[1]
        if holding == needed:
            return DROP if position == BOWL else _toward(position, BOWL)
        contents = self.drawer_contents(int(problem))
        drawers = [cell for cell, held in zip(DRAWERS, contents, strict=True) if held == needed]
        if not drawers:
            raise ValueError(f"problem {problem}'s drawers hold no ingredient {needed}")
        nearest = min(drawers, key=lambda cell: _distance(position, cell) + _distance(cell, BOWL))
        return PICKUP if position == nearest else _toward(position, nearest)

    # ---- rendering --------------------------------------------------------------------------

    def _render_text(self) -> str:
        marks = {cell: str(held) for cell, held in zip(DRAWERS, self._drawers, strict=True)}
        marks[BOWL] = "B"
        marks[self._position] = "A"
        rows = ["".join(marks.get((x, y), ".") for x in range(SIZE)) for y in reversed(range(3))]
        recipe = "none" if self.phase != EXPLOIT else str(self._recipe)
        held = "nothing" if self._inventory == EMPTY else str(self._inventory)
        return "\n".join([*rows, f"recipe {recipe}, holding {held}, bowl {self._bowl}"])

    def _render_rgb(self) -> np.ndarray:
        # The band below the kitchen: what the agent holds, then (exploiting) the recipe.
        grid = Grid(SIZE, SIZE, self.phase, cell=KITCHEN_CELL, band=KITCHEN_CELL // 2)
        for cell, held in zip(DRAWERS, self._drawers, strict=True):
            grid.paint(cell, COLOURS["drawer"])
            grid.paint(cell, INGREDIENTS[held], inset=4)
        grid.paint(BOWL, COLOURS["bowl"])
        # The bowl's two slots lie along its bottom edge, where the agent does not cover them.
        for slot, held in enumerate(self._bowl):
            grid.paint(BOWL, _colour(held), inset=3, box=(slot / 2, 0.75, (slot + 1) / 2, 1.0))
        grid.agent(self._position)
        grid.band_slot(0, _colour(self._inventory))
        if self.phase == EXPLOIT:
            for slot, wanted in enumerate(self._recipe):
                grid.band_slot(2 + slot, INGREDIENTS[wanted])
        return grid.image


def _colour(ingredient: int) -> tuple[int, int, int]:
    return COLOURS["empty"] if ingredient == EMPTY else INGREDIENTS[ingredient]


def _distance(a: tuple[int, int], b: tuple[int, int]) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def _toward(position: tuple[int, int], target: tuple[int, int]) -> int:
    """A move one step closer to ``target`` (the kitchen has no walls inside)."""
    if position[0] != target[0]:
        return LEFT if target[0] < position[0] else RIGHT
    return DOWN if target[1] < position[1] else UP
