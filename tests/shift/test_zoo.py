"""The model zoo as data: expansion, seeded draws, stable ids, and bad configs named by key."""

import pytest

from stalwart.errors import ConfigError
from stalwart.shift.zoo import ModelSpec, expand_family, expand_zoo


def test_a_family_expands_to_the_product_of_its_lists_with_defaults_filled_in():
    specs = expand_family("mlp", {"hidden": [[64], [256, 256]], "train_size": [100, 200],
                                  "epochs": [1, 3], "augment": "flip"}, seed=7)  # fmt: skip
    assert len(specs) == 8
    points = {(tuple(s.settings["hidden"]), s.settings["train_size"], s.settings["epochs"])
              for s in specs}  # fmt: skip
    assert len(points) == 8
    first = specs[0].settings
    assert first["augment"] == "flip" and first["seed"] == 7 and first["lr"] == 1e-3
    # `hidden: [64]` is one value (a list of widths), not a list of values.
    assert len(expand_family("mlp", {"hidden": [64]})) == 1
    assert expand_family("mlp", {"hidden": [64]})[0].settings["hidden"] == [64]
    assert len(expand_family("knn", None)) == 1


def test_sample_draws_distinct_points_of_the_grid_reproducibly():
    grid = {"n_neighbors": [1, 3, 5, 7, 9], "train_size": [100, 200, 400], "sample": 6}
    drawn = expand_family("knn", grid, seed=0)
    assert len(drawn) == 6 and len({s.id for s in drawn}) == 6
    full = {s.id for s in expand_family("knn", {**grid, "sample": 100}, seed=0)}
    assert len(full) == 15 and {s.id for s in drawn} <= full
    assert [s.id for s in expand_family("knn", grid, seed=0)] == [s.id for s in drawn]
    assert [s.id for s in expand_family("knn", grid, seed=1)] != [s.id for s in drawn]


def test_ids_are_stable_short_and_change_with_any_setting():
    spec = expand_family("logistic", {"C": 0.1, "train_size": 500})[0]
    # A constant: ids must not change across runs, machines or Python versions.
    assert spec.id == "logistic-d8913a47f9"
    same = ModelSpec("logistic", dict(reversed(list(spec.settings.items()))))
    assert same.id == spec.id
    assert expand_family("logistic", {"C": 0.1, "train_size": 501})[0].id != spec.id
    assert expand_family("logistic", {"C": 0.1, "train_size": 500}, seed=1)[0].id != spec.id
    assert ModelSpec("knn", spec.settings).id.startswith("knn-")


def test_a_zoo_lists_every_family_in_order_and_seeds_can_be_varied():
    zoo = {"forest": {"n_estimators": [5, 10]}, "cnn": {"seed": [0, 1, 2]}, "knn": None}
    specs = expand_zoo(zoo, seed=4)
    assert [s.family for s in specs] == ["forest", "forest", "cnn", "cnn", "cnn", "knn"]
    assert [s.settings["seed"] for s in specs] == [4, 4, 0, 1, 2, 4]
    assert len({s.id for s in specs}) == 6


@pytest.mark.parametrize(
    ("zoo", "message"),
    [
        ({"mpl": {}}, r"unknown model family 'mpl'.*mlp"),
        ({"mlp": {"hiden": [[8]]}}, r"zoo\.mlp: unknown setting 'hiden'.*hidden"),
        ({"cnn": {"width": [0]}}, r"zoo\.cnn\.width: .*greater than or equal to 1"),
        ({"resnet": {"depth": [12]}}, r"zoo\.resnet\.depth"),
        ({"mlp": {"augment": ["none", "rotate"]}}, r"zoo\.mlp\.augment"),
        ({"knn": {"n_neighbors": []}}, r"zoo\.knn\.n_neighbors: an empty list"),
        ({"knn": {"n_neighbors": [1, 1]}}, r"zoo\.knn\.n_neighbors: values must not repeat"),
        ({"forest": {"sample": 0}}, r"zoo\.forest\.sample: must be a positive integer"),
        ({"logistic": {"C": ["big"]}}, r"zoo\.logistic\.C"),
        ({"logistic": [1, 2]}, r"zoo\.logistic: expected a mapping"),
        ({}, r"zoo: expected a mapping of model families"),
    ],
)
def test_bad_zoos_are_rejected_naming_the_key(zoo, message):
    with pytest.raises(ConfigError, match=message):
        expand_zoo(zoo)
