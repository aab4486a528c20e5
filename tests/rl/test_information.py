"""What knowing μ is worth, exactly: the benchmark DREAM and E-RL² must be able to separate on."""

from __future__ import annotations

import itertools

import pytest

from stalwart.rl import envs
from stalwart.rl.envs.bus import RIDE
from stalwart.rl.evaluate import HeldOut, reference_returns
from stalwart.rl.information import information_value


def best_fixed_plan(env, problems) -> float:
    """The best open-loop action sequence for each goal, by brute force over all of them."""
    city, horizon = env.city, env.max_steps
    moves = city.move_table()
    rides = {p: city.ride_table(p) for p in problems}
    start = city.index(city.start)
    total = 0.0
    for goal in city.goals:
        target, best = city.index(goal), -float("inf")
        for plan in itertools.product(range(5), repeat=horizon):
            value = 0.0
            for p in problems:
                cell, ret = start, -0.1 * horizon
                for step, action in enumerate(plan, start=1):
                    cell = rides[p][cell] if action == RIDE else moves[action][cell]
                    if cell == target:
                        ret = 1.0 - 0.1 * (step - 1)
                        break
                value += ret / len(problems)
            best = max(best, value)
        total += best / len(city.goals)
    return total


def test_the_tight_bus_makes_exploring_worth_a_third_of_a_point():
    env = envs.make("distracting_bus_tight")
    assert (env.n_problems, len(env.train_problems), len(env.test_problems)) == (48, 16, 32)
    # Both useful orders are among the training problems (the held-out ones need only
    # ignoring distractors it has not seen with that order).
    assert {p % 2 for p in env.train_problems.tolist()} == {0, 1}
    value = information_value(env, explored=True)
    # By hand: a bus corner is 3 steps by the right bus (0.8); the other two corners are 6
    # steps away on foot, more than the 5 allowed (−0.5). Not knowing the buses, ride one:
    # right half the time, else too far to recover: 0.5·0.8 + 0.5·(−0.5) = 0.15.
    assert value.oracle == pytest.approx((0.8 + 0.8 - 0.5 - 0.5) / 4)
    assert value.uninformed == pytest.approx((0.15 + 0.15 - 0.5 - 0.5) / 4)
    assert value.walking == pytest.approx(-0.5)
    assert value.gap >= 0.3
    # One ride in the 5 exploring steps tells both buses: optimal exploration gets it all.
    assert value.explored == pytest.approx(value.oracle)


def test_the_shipped_small_bus_has_almost_no_value_of_information():
    value = information_value(envs.make("distracting_bus_small"))
    assert (value.oracle, value.uninformed) == pytest.approx((0.75, 0.70))
    assert value.gap < 0.1


def test_adaptive_uninformed_bounds_every_fixed_plan():
    # A 5x5 city with a 4-step budget: small enough to try all 5^4 plans.
    env = envs.make("distracting_bus", size=5, n_useful=2, n_distracting=1, max_steps=4)
    problems = env.test_problems.tolist()
    value = information_value(env, problems)
    plan = best_fixed_plan(env, problems)
    assert value.uninformed >= plan - 1e-9
    assert value.oracle >= value.uninformed
    # The tight bus: riding once and living with the outcome is already the best policy.
    tight = envs.make("distracting_bus_tight", n_distracting=1, train_every=None)
    assert information_value(tight).uninformed == pytest.approx(
        best_fixed_plan(tight, tight.test_problems.tolist())
    )


def test_the_oracle_reference_played_in_the_env_matches_the_exact_value():
    held_out = HeldOut(lambda: envs.make("distracting_bus_tight", split="test"))
    references = reference_returns(held_out)
    exact = information_value(held_out.envs[0])
    assert references["oracle"].mean == pytest.approx(exact.oracle)
    assert references["random"].mean < exact.uninformed
    assert len(held_out) == 32 * 4  # every held-out problem with every goal


def test_in_the_tight_map_only_the_map_closes_the_gap():
    env = envs.make("map_tight")
    assert (env.n_problems, len(env.train_problems)) == (24, 24)
    value = information_value(env, explored=True)
    # Every goal corner has its useful bus (3 steps: 0.8); blindly, a ride is right one time
    # in four: 0.25·0.8 + 0.75·(−0.5) = −0.175. Rides alone, in 5 exploring steps, learn one
    # bus: the best explored return without the map (which the expectimax does not model).
    assert (value.oracle, value.uninformed) == pytest.approx((0.8, -0.175))
    assert value.explored == pytest.approx(0.15)
    # The map, 3 steps from the start, shows each of the 24 problems its own value.
    seen = set()
    for problem in range(env.n_problems):
        env.reset(options={"problem": problem})
        for action in ("right", "right", "down"):
            obs, *_ = env.step(env.action_names.index(action))
        assert tuple(env.position) == env.city.map_cell
        seen.add(int(obs[env.observation_fields.index("map")]))
    assert len(seen) == 24 and 0 not in seen
