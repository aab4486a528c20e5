"""The oracle exploitation policy: knowing μ, it reaches every goal of every problem optimally."""

from __future__ import annotations

import pytest

from stalwart.rl import envs

# Steps the oracle needs, worked by hand. Full city and map: a useful bus from next to the
# start lands next to every corner (step, ride, step). Small city: two corners have a useful
# destination next to them (3 steps); walking to the other two takes 4, and no bus is shorter.
EXPECTED_STEPS = {
    "distracting_bus": lambda goal: 3,
    "map": lambda goal: 3,
    "distracting_bus_small": lambda goal: 3 if goal in (0, 1) else 4,
}


@pytest.mark.parametrize("name", sorted(EXPECTED_STEPS))
def test_the_oracle_solves_every_problem_in_the_fewest_steps(name):
    env = envs.make(name)
    for problem in range(env.n_problems):
        for goal in range(env.n_goals):
            obs, info = env.reset(options={"problem": problem, "phase": "exploit", "goal": goal})
            total, steps, terminated, truncated = 0.0, 0, False, False
            while not (terminated or truncated):
                obs, reward, terminated, truncated, info = env.step(
                    env.oracle_action(obs, info["problem"])
                )
                total, steps = total + reward, steps + 1
            assert terminated, (problem, goal)
            assert steps == EXPECTED_STEPS[name](goal) == env.oracle_steps(problem, goal)
            assert total == pytest.approx(1.0 - 0.1 * (steps - 1))
            assert tuple(obs[:2]) == env.city.goals[goal]


def test_the_oracle_needs_the_problem():
    env = envs.make("distracting_bus")
    obs, _ = env.reset(options={"problem": 0, "phase": "exploit", "goal": 0})
    # Problem 6 swaps the first two useful buses: its oracle boards the wrong one here.
    for _ in range(3):
        obs, _, terminated, _, _ = env.step(env.oracle_action(obs, 6))
    assert not terminated and tuple(obs[:2]) != (0, 0)


def test_the_oracle_refuses_an_exploration_observation():
    env = envs.make("map")
    obs, info = env.reset(seed=0)
    with pytest.raises(ValueError, match="exploitation observation"):
        env.oracle_action(obs, info["problem"])


def test_the_oracle_cache_stays_bounded(monkeypatch):
    monkeypatch.setattr("stalwart.rl.envs.bus.ORACLE_CACHE", 2)
    env = envs.make("distracting_bus")
    for problem in range(5):
        assert env.oracle_steps(problem, 0) == 3
        assert len(env._oracle_tables) <= 2
