"""Cooking (DREAM, arXiv 2008.02790): drawers, recipes, the ±0.25 shaping and the oracle."""

from __future__ import annotations

import pytest

from stalwart.errors import ConfigError
from stalwart.rl import envs
from stalwart.rl.envs.cooking import BOWL, DOWN, DRAWERS, DROP, LEFT, PICKUP, RIGHT, UP


def steps_of(env, actions):
    out = []
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        out.append((obs.tolist(), reward, terminated, truncated))
    return out


def test_problems_and_the_reference_split():
    env = envs.make("cooking")
    assert env.n_problems == 64
    assert env.test_problems.tolist() == [10]
    assert env.train_problems.tolist() == [p for p in range(64) if p != 10]
    assert env.drawer_contents(36) == (0, 1, 2)  # 36 = 0 + 1·4 + 2·16
    assert env.goals_of(36) == [0, 1, 2, 4, 5, 6, 8, 9, 10]
    assert env.recipe(6) == (1, 2)


def test_drawers_look_the_same_until_one_is_opened():
    env = envs.make("cooking")
    walk = [RIGHT, UP, DOWN, DOWN, LEFT, LEFT, UP, DROP]
    traces = set()
    opened = set()
    for problem in range(env.n_problems):
        env.reset(options={"problem": problem})
        traces.add(repr(steps_of(env, walk)))
        env.reset(options={"problem": problem})
        opened.add(tuple(steps_of(env, [RIGHT, PICKUP])[-1][0]))
    assert len(traces) == 1 and len(opened) == 4  # the middle drawer holds one of 4


def test_shaping_pays_each_stage_and_charges_each_slip():
    env = envs.make("cooking")
    # Drawers (2, 0), (2, 1), (2, 2) hold 0, 1, 2; the recipe is (1, 2).
    env.reset(options={"problem": 36, "phase": "exploit", "goal": 6})
    actions = [PICKUP, RIGHT, DOWN, PICKUP, UP, PICKUP, DROP, PICKUP, LEFT, DROP]
    actions += [RIGHT, UP, PICKUP, LEFT, DOWN, DROP]
    trace = steps_of(env, actions)
    assert [round(reward, 2) for _, reward, _, _ in trace] == [
        -0.35,  # pickup off a drawer: no ingredient
        -0.1, -0.1,
        -0.35,  # the wrong ingredient (0)
        -0.1,
        0.25,  # holding the first ingredient (1)
        -0.35,  # ... thrown away at the drawer
        0.25,  # picked again
        -0.1,
        0.25,  # into the bowl
        -0.1, -0.1,
        0.25,  # holding the second (2)
        -0.1, -0.1,
        0.25,  # both in the bowl: done
    ]  # fmt: skip
    assert [terminated for *_, terminated, _ in trace] == [False] * 15 + [True]
    assert trace[-1][0][5:] == [0, 2, 3]  # empty hands, bowl (1, 2)


def trip(contents, ingredient):
    """Steps from the bowl to the nearest drawer holding ``ingredient``, a pickup, back, a drop."""
    return min(
        2 * (abs(x - BOWL[0]) + abs(y - BOWL[1])) + 2
        for (x, y), held in zip(DRAWERS, contents, strict=True)
        if held == ingredient
    )


def test_the_oracle_cooks_every_recipe_in_the_fewest_steps():
    env = envs.make("cooking")
    for problem, goal in ((p, g) for p in range(env.n_problems) for g in env.goals_of(p)):
        obs, info = env.reset(options={"problem": problem, "phase": "exploit", "goal": goal})
        total, steps, terminated, truncated = 0.0, 0, False, False
        while not (terminated or truncated):
            obs, reward, terminated, truncated, info = env.step(env.oracle_action(obs, problem))
            total, steps = total + reward, steps + 1
        first, second = env.recipe(goal)
        contents = env.drawer_contents(problem)
        assert terminated and steps == trip(contents, first) + trip(contents, second)
        assert total == pytest.approx(4 * 0.25 - 0.1 * (steps - 4))


def test_the_oracle_refuses_a_spoiled_recipe():
    env = envs.make("cooking")
    obs, _ = env.reset(options={"problem": 36, "phase": "exploit", "goal": 6})
    for action in (RIGHT, DOWN, PICKUP, LEFT, UP, DROP):  # ingredient 0 into the bowl
        obs, *_ = env.step(action)
    with pytest.raises(ValueError, match="spoils recipe"):
        env.oracle_action(obs, 36)


@pytest.mark.parametrize(
    ("params", "options", "message"),
    [
        ({"held_out": ()}, None, "held_out must name between 1 and 63"),
        ({"held_out": (64,)}, None, "held_out ids must be between 0 and 63"),
        ({"n_ingredients": 1}, None, "n_ingredients must be between 2 and 10"),
        ({}, {"problem": 0, "phase": "exploit", "goal": 5}, "not a goal of problem 0"),
    ],
)
def test_cooking_config_errors(params, options, message):
    with pytest.raises(ConfigError, match=message):
        envs.make("cooking", **params).reset(options=options)
