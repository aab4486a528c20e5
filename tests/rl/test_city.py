"""The city's layout, problem ids and configuration errors (DREAM's bus and map benchmarks)."""

from __future__ import annotations

import inspect
import itertools
import math

import pytest

from stalwart.errors import ConfigError
from stalwart.rl import envs
from stalwart.rl.envs.city import build_city, permutation


def test_permutation_ranks_in_itertools_order():
    for n in range(1, 6):
        assert [permutation(r, n) for r in range(math.factorial(n))] == list(
            itertools.permutations(range(n))
        )


def test_paper_layout_of_the_full_city():
    city = build_city(9, 4, 4, map_cell=(7, 3))
    assert city.start == (4, 4)
    assert set(city.goals) == {(0, 0), (0, 8), (8, 0), (8, 8)}
    # The reference's stops: the centre's orthogonal neighbours lead next to the corners,
    # its diagonal neighbours to the middles of the edges.
    assert set(city.useful_stops) == {(4, 5), (5, 4), (3, 4), (4, 3)}
    assert set(city.useful_destinations) == {(0, 1), (0, 7), (8, 1), (8, 7)}
    assert set(city.distracting_stops) == {(5, 5), (3, 3), (3, 5), (5, 3)}
    assert set(city.distracting_destinations) == {(0, 4), (4, 0), (8, 4), (4, 8)}
    assert city.map_cell == (7, 3)
    assert envs.make("map").city.map_cell == (7, 3)


def test_small_city_keeps_the_papers_roles():
    city = envs.make("distracting_bus_small").city
    assert city.start == (2, 2)

    def offsets(cells):
        return {(abs(x - 2), abs(y - 2)) for x, y in cells}

    # Useful stops are orthogonal neighbours of the start, distracting ones diagonal; useful
    # buses land next to two opposite corners, distracting ones in the middles of edges.
    assert offsets(city.useful_stops) == {(0, 1), (1, 0)}
    assert offsets(city.distracting_stops) == {(1, 1)}
    assert set(city.useful_destinations) == {(0, 1), (4, 3)}
    assert set(city.distracting_destinations) == {(0, 2), (2, 0)}


def test_every_problem_id_is_a_different_set_of_routes():
    city = build_city(9, 4, 4)
    routes = {frozenset(city.routes(problem)) for problem in range(city.n_problems)}
    assert city.n_problems == 576 == len(routes)
    # Every bus of every problem goes from its stop to a destination of its own kind.
    for problem in (0, 23, 24, 575):
        useful = dict(city.routes(problem)[:4])
        assert set(useful) == set(city.useful_stops)
        assert set(useful.values()) == set(city.useful_destinations)


def test_problem_id_splits_into_the_two_permutations():
    city = build_city(9, 4, 4)
    orders = list(itertools.permutations(range(4)))
    for problem in (0, 1, 25, 300, 575):
        useful, distracting = problem % 24, problem // 24
        expected = [
            (stop, city.useful_destinations[orders[useful][i]])
            for i, stop in enumerate(city.useful_stops)
        ] + [
            (stop, city.distracting_destinations[orders[distracting][i]])
            for i, stop in enumerate(city.distracting_stops)
        ]
        assert city.routes(problem) == expected


def test_a_wrong_benchmark_name_lists_the_choices():
    with pytest.raises(ConfigError, match=r"did you mean 'distracting_bus'\?.*choose from \["):
        envs.make("distracting_buss")
    with pytest.raises(ConfigError, match="did you mean 'n_useful'"):
        envs.make("distracting_bus", n_usefull=3)
    with pytest.raises(ConfigError, match="size"):
        envs.make("distracting_bus", size=True)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("distracting_bus", {"size": 2}, "size must be at least 3"),
        ("distracting_bus", {"n_useful": 0}, "n_useful must be between 1 and 5"),
        ("distracting_bus", {"n_useful": 6}, "n_useful must be between 1 and 5"),
        ("distracting_bus", {"n_distracting": -1}, "n_distracting must be between 0 and 5"),
        ("distracting_bus", {"size": 3}, r"at most 0, the inner cells of a 3x3 grid"),
        ("distracting_bus_small", {"size": 4}, r"at most 3, the inner cells of a 4x4 grid"),
        ("distracting_bus", {"max_steps": 0}, "max_steps must be at least 1"),
        ("distracting_bus", {"train_every": 1}, "train_every must be at least 2"),
        ("distracting_bus", {"n_useful": 1, "n_distracting": 1}, "no held-out problem among 1"),
        ("distracting_bus", {"split": "val"}, "split"),
        ("map", {"map_cell": (4, 4)}, "map_cell must be a cell of the 9x9 grid other than"),
        ("map", {"map_cell": (9, 0)}, "map_cell must be a cell of the 9x9 grid"),
        ("map", {"map_cell": (0, 0)}, "other than the start"),
    ],
)
def test_sizes_that_do_not_fit_are_config_errors(name, params, message):
    with pytest.raises(ConfigError, match=message):
        envs.make(name, **params)


def test_the_gymnasium_constructor_checks_sizes_too():
    with pytest.raises(ConfigError, match="size must be at least 3"):
        envs.DistractingBusEnv(size=1)


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("distracting_bus", envs.DistractingBusEnv),
        ("map", envs.MapEnv),
        ("cooking", envs.CookingEnv),
    ],
)
def test_registered_defaults_are_the_classes_defaults(name, cls):
    registered = {k: p.default for k, p in envs.ENVS.parameters(name).items()}
    own = {k: p.default for k, p in inspect.signature(cls).parameters.items()}
    assert registered == own
