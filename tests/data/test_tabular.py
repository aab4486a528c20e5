"""Adult and COMPAS from the CSVs of the PyPI package fairness==0.1.8."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
import torch

from stalwart import data
from stalwart.data.sources.tabular import COMPAS_EXCLUDED, SPECS, feature_names

pytestmark = pytest.mark.data("fairness")

SPLITS = ("train", "val", "test")


@cache
def load(name: str, seed: int = 0, drop_attribute: bool = False):
    return data.load(name, seed=seed, drop_attribute=drop_attribute)


def raw(name: str) -> pd.DataFrame:
    return pd.read_csv(data.package("fairness").require() / SPECS[name].file)


@pytest.mark.parametrize("name", ["adult", "compas"])
def test_every_group_in_every_split(name):
    splits = load(name)
    for split in SPLITS:
        counts = getattr(splits, split).group_counts()
        assert len(counts) == 4 and (counts > 0).all(), (split, counts.tolist())
    total = sum(len(getattr(splits, s)) for s in SPLITS)
    assert total == {"adult": 32_561, "compas": 6_172}[name]  # COMPAS after ProPublica's filters


def test_groups_follow_label_and_attribute():
    adult = load("adult").train
    assert adult.group_names == ["≤50K, female", "≤50K, male", ">50K, female", ">50K, male"]
    assert adult.class_names == ["≤50K", ">50K"]
    frame = raw("adult").iloc[adult.index.numpy()]
    y = (frame["income-per-year"].str.strip() == ">50K").to_numpy()
    male = (frame["sex"].str.strip() == "Male").to_numpy()
    assert adult.y.tolist() == y.astype(int).tolist()
    assert adult.group.tolist() == (2 * y + male).tolist()
    compas = load("compas").test
    assert compas.group_names[1] == "no recidivism, African-American"
    names = feature_names("compas")
    black = compas.x[:, names.index("race=African-American")] == 1
    assert torch.equal(compas.group % 2 == 1, black)


@pytest.mark.parametrize("name", ["adult", "compas"])
def test_numeric_features_use_training_statistics_only(name):
    splits = load(name)
    n_numeric = len(SPECS[name].numeric)
    train = splits.train.x[:, :n_numeric].double()
    assert torch.allclose(train.mean(0), torch.zeros(n_numeric, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(
        train.std(0, unbiased=False), torch.ones(n_numeric, dtype=torch.float64), atol=1e-4
    )
    # Validation and test are scaled with the training statistics, so they are not centred.
    assert splits.test.x[:, :n_numeric].double().mean(0).abs().max() > 1e-3
    # Reference: the age column standardised by hand with the training rows' statistics.
    if name == "adult":
        age = raw("adult")["age"].to_numpy(np.float64)
        train_age = age[splits.train.index.numpy()]
        expected = (age[splits.test.index.numpy()] - train_age.mean()) / train_age.std()
        assert np.allclose(splits.test.x[:, 0].numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("name", ["adult", "compas"])
def test_test_split_is_fixed_across_seeds(name):
    first, second = load(name, seed=0), load(name, seed=1)
    assert torch.equal(first.test.index, second.test.index)
    assert not torch.equal(first.train.index, second.train.index)
    pool = set(first.train.index.tolist()) | set(first.val.index.tolist())
    assert pool == set(second.train.index.tolist()) | set(second.val.index.tolist())
    assert not pool & set(first.test.index.tolist())
    assert len(first.val) == round(0.2 * len(pool))


def test_adult_one_hot_blocks_and_missing_category():
    names = feature_names("adult")
    splits = load("adult")
    x = torch.cat([splits.train.x, splits.val.x, splits.test.x])
    assert x.shape[1] == len(names) and x.dtype == torch.float32
    for column in SPECS["adult"].categorical:
        block = [i for i, n in enumerate(names) if n.startswith(f"{column}=")]
        assert torch.equal(x[:, block].sum(1), torch.ones(len(x))), column
    assert {"workclass=missing", "occupation=missing", "native-country=missing"} <= set(names)
    assert "workclass=?" not in names and "fnlwgt" not in names
    missing = x[:, names.index("workclass=missing")].sum().item()
    assert missing == (raw("adult")["workclass"].str.strip() == "?").sum()


def test_compas_features_exclude_scores_and_outcomes():
    names = feature_names("compas")
    columns = {name.split("=")[0] for name in names}
    assert not columns & set(COMPAS_EXCLUDED)
    assert not [n for n in names if "score" in n or "decile" in n or "recid" in n]
    assert "priors_count" in names and "c_charge_degree=F" in names
    assert "c_charge_degree=O" not in names  # filtered out, so never a category
    assert load("compas").train.input_shape == (len(names),)


@pytest.mark.parametrize(("name", "column"), [("adult", "sex"), ("compas", "race")])
def test_drop_attribute_removes_its_columns(name, column):
    kept = feature_names(name, drop_attribute=True)
    assert not [n for n in kept if n.startswith(f"{column}=")]
    dropped = len(feature_names(name)) - len(kept)
    assert dropped >= 2
    assert load(name, drop_attribute=True).train.input_shape == (len(kept),)
