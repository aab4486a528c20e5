"""What knowing the problem is worth in a bus city, computed exactly.

A meta-exploration benchmark separates learners that explore from those that do not only if
the information exploration can gather is worth much in the exploitation episode. For the
bus cities (``CityEnv``: distracting bus, map) this module computes, for a set of problems
(uniform) and every goal (uniform), the exploitation returns of

- ``oracle``: a policy that knows μ (the env's ``oracle_action``: fewest steps);
- ``walking``: walking the shortest way to the goal, never riding;
- ``uninformed``: the **best** policy that does not know μ, exactly. It knows the
  distribution of problems and sees its observations, so it may ride a bus, see where it
  lands and change its plan: the optimum over all such (adaptive) policies, found by
  expectimax over beliefs. The city is deterministic, so a belief is the set of problems
  consistent with what was seen; an action splits it by the cell each problem leads to.
  This bounds every fixed plan and every exploitation policy that ignores exploration;
- ``explored`` (on request): the best exploration episode followed by the best exploitation
  episode given what it saw (the same expectimax, over both episodes): what optimal
  exploration achieves within the step budget.

Returns follow the env: reaching the goal on step k pays ``1 − 0.1 (k − 1)``; not reaching it
within ``max_steps`` pays ``−0.1 · max_steps``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from stalwart.rl.envs.bus import GOAL_REWARD, RIDE, STEP_REWARD, CityEnv


@dataclass(frozen=True)
class InformationValue:
    """Mean exploitation returns over problems and goals (see the module docstring)."""

    oracle: float
    uninformed: float
    walking: float
    explored: float | None = None

    @property
    def gap(self) -> float:
        """How much more the oracle gets than the best uninformed policy."""
        return self.oracle - self.uninformed


def information_value(
    env: CityEnv, problems: Sequence[int] | None = None, *, explored: bool = False
) -> InformationValue:
    """Exact oracle, walking, best uninformed (and best explored) returns of ``env``.

    Args:
        env: a bus city (distracting bus or map; the map's extra observation is not modelled,
            so for the map ``uninformed`` ignores it and ``explored`` is a lower bound).
        problems: the problems, uniformly likely (default: the env's ``test_problems``).
        explored: also compute the best explore-then-exploit return (slower).
    """
    city, horizon = env.city, env.max_steps
    moves = city.move_table()
    ids = [int(p) for p in (env.test_problems if problems is None else problems)]
    rides = {p: city.ride_table(p) for p in ids}
    start = city.index(city.start)
    goal_cells = [city.index(g) for g in city.goals]
    n_goals = len(goal_cells)

    def split(belief: frozenset[int], cell: int, action: int) -> dict[int, list[int]]:
        parts: dict[int, list[int]] = {}
        for p in belief:
            after = rides[p][cell] if action == RIDE else moves[action][cell]
            parts.setdefault(after, []).append(p)
        return parts

    @functools.cache
    def exploit(cell: int, belief: frozenset[int], left: int, goal: int) -> float:
        if left == 0:
            return 0.0
        best = -float("inf")
        for action in range(len(env.action_names)):
            value = 0.0
            for after, part in split(belief, cell, action).items():
                if after == goal_cells[goal]:
                    future = GOAL_REWARD
                else:
                    future = STEP_REWARD + exploit(after, frozenset(part), left - 1, goal)
                value += len(part) / len(belief) * future
            best = max(best, value)
        return best

    @functools.cache
    def explore(cell: int, belief: frozenset[int], left: int) -> float:
        if left == 0:
            return sum(exploit(start, belief, horizon, g) for g in range(n_goals)) / n_goals
        return max(
            sum(
                len(part) / len(belief) * explore(after, frozenset(part), left - 1)
                for after, part in split(belief, cell, action).items()
            )
            for action in range(len(env.action_names))
        )

    everything = frozenset(ids)
    oracle = sum(
        exploit(start, frozenset([p]), horizon, g) for p in ids for g in range(n_goals)
    ) / (len(ids) * n_goals)
    uninformed = sum(exploit(start, everything, horizon, g) for g in range(n_goals)) / n_goals
    walking = 0.0
    for gx, gy in city.goals:
        steps = abs(city.start[0] - gx) + abs(city.start[1] - gy)
        walking += (
            GOAL_REWARD + STEP_REWARD * (steps - 1) if steps <= horizon else STEP_REWARD * horizon
        )
    walking /= n_goals
    return InformationValue(
        oracle=oracle,
        uninformed=uninformed,
        walking=walking,
        explored=explore(start, everything, horizon) if explored else None,
    )
