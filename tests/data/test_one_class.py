"""One-class splits and sources: disjoint, covering, normal-only training, seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
from sklearn.datasets import load_breast_cancer, load_wine

from stalwart.data import one_class
from stalwart.data.one_class import (
    OneClassData,
    breast_cancer,
    limited_negatives_mnist,
    mask_pixels,
    odds,
    one_class_split,
    one_vs_rest,
    wine,
)
from stalwart.errors import ConfigError, DataError

ODDS_FOLDER = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "odds"
needs_odds = pytest.mark.skipif(
    not ODDS_FOLDER.is_dir(), reason=f"the shared ODDS files are not at {ODDS_FOLDER}"
)


def identified(n_normal=100, n_anomalous=20, d=3):
    """Data whose first feature is the row number, so rows can be traced through a split."""
    n = n_normal + n_anomalous
    X = np.random.default_rng(0).normal(size=(n, d))
    X[:, 0] = np.arange(n)
    y = np.zeros(n, dtype=np.int64)
    y[np.random.default_rng(1).choice(n, n_anomalous, replace=False)] = 1
    return X, y


def rows(x):
    return x[:, 0].astype(int).tolist()


def row_keys(x):
    return [row.tobytes() for row in np.ascontiguousarray(x).reshape(len(x), -1)]


def test_split_is_disjoint_covers_the_data_and_trains_on_normals():
    X, y = identified()
    data = one_class_split("toy", X, y, seed=0)
    train, val, test = rows(data.train_x), rows(data.val_x), rows(data.test_x)
    assert sorted(train + val + test) == list(range(len(y)))
    assert not (y[train] == 1).any()
    assert data.train_y is None
    assert data.val_y.tolist() == y[val].tolist() and data.test_y.tolist() == y[test].tolist()
    assert (len(train), int((y[val] == 0).sum()), int((y[test] == 0).sum())) == (60, 15, 25)
    assert (int(data.val_y.sum()), int(data.test_y.sum())) == (5, 15)
    assert data.train_x.dtype == np.float32 and data.val_y.dtype == np.int64


def test_split_fractions_are_used():
    X, y = identified(n_normal=200, n_anomalous=40)
    data = one_class_split("toy", X, y, seed=0, train=0.5, val=0.2, val_anomalies=0.5)
    assert len(data.train_x) == 100
    assert int((data.val_y == 0).sum()) == 40 and int(data.val_y.sum()) == 20
    assert int((data.test_y == 0).sum()) == 60 and int(data.test_y.sum()) == 20


def test_split_is_seeded():
    X, y = identified()
    first, again = one_class_split("toy", X, y, seed=3), one_class_split("toy", X, y, seed=3)
    other = one_class_split("toy", X, y, seed=4)
    for split in ("train_x", "val_x", "test_x"):
        assert np.array_equal(getattr(first, split), getattr(again, split))
    assert rows(first.train_x) != rows(other.train_x)
    assert rows(first.val_x) != rows(other.val_x)


def test_small_data_still_gives_validation_both_classes():
    X, y = identified(n_normal=6, n_anomalous=2)
    data = one_class_split("tiny", X, y, seed=0)
    assert set(data.val_y.tolist()) == {0, 1} and set(data.test_y.tolist()) == {0, 1}


@pytest.mark.parametrize(
    "fractions, match",
    [
        ({"train": 0.0}, "train must lie strictly between 0 and 1"),
        ({"train": 1.0}, "train must lie strictly between 0 and 1"),
        ({"val": -0.1}, "val must lie strictly between 0 and 1"),
        ({"val_anomalies": 1.5}, "val_anomalies must lie strictly between 0 and 1"),
        ({"train": 0.7, "val": 0.3}, r"train \(0.7\) \+ val \(0.3\) must be below 1"),
    ],
)
def test_fractions_are_checked(fractions, match):
    X, y = identified()
    with pytest.raises(ConfigError, match=match):
        one_class_split("toy", X, y, seed=0, **fractions)


def test_too_few_normals_or_anomalies():
    X, y = identified(n_normal=3, n_anomalous=5)
    with pytest.raises(DataError, match="3 normals give 2 for training, 1 for validation and 0"):
        one_class_split("toy", X, y, seed=0)
    X, y = identified(n_normal=20, n_anomalous=5)
    with pytest.raises(DataError, match="20 normals give 1 for training"):
        one_class_split("toy", X, y, seed=0, train=0.05)
    X, y = identified(n_normal=20, n_anomalous=1)
    with pytest.raises(DataError, match="1 anomalies cannot fill both validation and test"):
        one_class_split("toy", X, y, seed=0)


def test_bad_inputs_are_refused():
    X, y = identified()
    with pytest.raises(DataError, match="X has 120 rows but y has 119 labels"):
        one_class_split("toy", X, y[:-1], seed=0)
    with pytest.raises(DataError, match="only 0 .* and 1"):
        one_class_split("toy", X, np.where(y == 1, 2, 0), seed=0)
    X[[4, 9], 1], X[7, 2] = np.nan, np.inf
    with pytest.raises(DataError, match="NaN or infinite values in 3 of 120 rows"):
        one_class_split("toy", X, y, seed=0)


def test_container_checks_its_arrays():
    x = np.zeros((4, 2), dtype=np.float32)
    y = np.array([0, 1, 0, 1], dtype=np.int64)
    OneClassData("ok", x, x, y, x, y, val_close=np.array([False, True, False, False]))
    with pytest.raises(DataError, match="val has 4 inputs but 3 labels"):
        OneClassData("bad", x, x, y[:3], x, y)
    with pytest.raises(DataError, match="test labels must be 0"):
        OneClassData("bad", x, x, y, x, y * 2)
    with pytest.raises(DataError, match="train_x must be float32"):
        OneClassData("bad", x.astype(np.float64), x, y, x, y)
    with pytest.raises(DataError, match="val_y must be a 1-D int64"):
        OneClassData("bad", x, x, y.astype(np.int32), x, y)
    with pytest.raises(DataError, match="differ in shape"):
        OneClassData("bad", x, x, y, np.zeros((4, 3), dtype=np.float32), y)
    with pytest.raises(DataError, match="test_close marks a normal"):
        OneClassData("bad", x, x, y, x, y, test_close=np.array([True, False, False, False]))
    with pytest.raises(DataError, match="val_close must be a bool mask"):
        OneClassData("bad", x, x, y, x, y, val_close=np.array([0, 1, 0, 0]))


def test_describe_and_feature_count():
    X, y = identified()
    data = one_class_split("toy", X, y, seed=0)
    assert data.n_features == 3 and data.input_shape == (3,)
    assert data.describe() == (
        "toy: train 60 normal; val 15 normal + 5 anomalies; test 25 normal + 15 anomalies; "
        "3 features"
    )


def test_standardized_uses_training_statistics_and_spares_constant_features():
    X, y = identified()
    X[:, 2] = 7.0
    X[y == 1, 2] = 8.0  # constant among normals, so in training; differs among anomalies
    data = one_class_split("toy", X, y, seed=0).standardized()
    assert np.allclose(data.train_x[:, :2].mean(axis=0), 0, atol=1e-5)
    assert np.allclose(data.train_x[:, :2].std(axis=0), 1, atol=1e-5)
    assert (data.train_x[:, 2] == 0).all()
    assert set(data.test_x[:, 2].tolist()) == {0.0, 1.0}
    assert data.test_x.dtype == np.float32


def test_breast_cancer_benign_is_normal():
    data = breast_cancer(seed=0)
    bunch = load_breast_cancer()
    benign = {row.tobytes() for row in bunch.data[bunch.target == 1].astype(np.float32)}
    assert all(key in benign for key in row_keys(data.train_x))
    assert len(data.train_x) + int((data.val_y == 0).sum() + (data.test_y == 0).sum()) == 357
    assert int(data.val_y.sum() + data.test_y.sum()) == 212
    val_benign = [key in benign for key in row_keys(data.val_x)]
    assert val_benign == (data.val_y == 0).tolist()


def test_wine_anomalies_are_ten_fixed_wines_of_class_0():
    first, other = wine(seed=0), wine(seed=1)
    bunch = load_wine()
    class_0 = {row.tobytes() for row in bunch.data[bunch.target == 0].astype(np.float32)}

    def anomalies(data):
        x = np.concatenate([data.val_x[data.val_y == 1], data.test_x[data.test_y == 1]])
        return set(row_keys(x))

    assert len(anomalies(first)) == 10 and anomalies(first) <= class_0
    assert anomalies(first) == anomalies(other)
    assert not set(row_keys(first.train_x)) & class_0
    n_normal = len(first.train_x) + int((first.val_y == 0).sum() + (first.test_y == 0).sum())
    assert n_normal == 119


@needs_odds
def test_odds_arrhythmia_split():
    data = odds("arrhythmia", seed=0, folder=ODDS_FOLDER)
    raw = scipy.io.loadmat(ODDS_FOLDER / "arrhythmia.mat")
    labels = {
        key: int(label)
        for key, label in zip(row_keys(raw["X"].astype(np.float32)), raw["y"].ravel(), strict=True)
    }
    assert len(labels) == 452  # no duplicate rows, so rows identify examples
    train, val, test = row_keys(data.train_x), row_keys(data.val_x), row_keys(data.test_x)
    assert sorted(train + val + test) == sorted(labels)
    assert all(labels[key] == 0 for key in train)
    assert [labels[key] for key in test] == data.test_y.tolist()
    assert int(data.val_y.sum() + data.test_y.sum()) == 66
    assert data.name == "arrhythmia"
    by_path = odds(ODDS_FOLDER / "arrhythmia.mat", seed=0)
    assert np.array_equal(by_path.test_x, data.test_x)
    assert not np.array_equal(odds("arrhythmia", seed=1, folder=ODDS_FOLDER).test_y, data.test_y)


def test_module_imports_without_image_packages():
    # Image sources are imported only inside the functions that need them.
    assert "fashion_mnist_images" not in vars(one_class)
    assert "mnist_images" not in vars(one_class)


def test_one_vs_rest_arguments_are_checked():
    with pytest.raises(ConfigError, match="normal_class must be a class index 0-9"):
        one_vs_rest("mnist", 10, seed=0)
    with pytest.raises(ConfigError, match="images must be one of"):
        one_vs_rest("cifar10", 0, seed=0)
    with pytest.raises(ConfigError, match="mask_fraction must lie strictly between 0 and 1"):
        limited_negatives_mnist(seed=0, mask_fraction=1.0)


@pytest.mark.data("fashion_mnist")
def test_one_vs_rest_fashion_mnist_labels():
    from stalwart.data.sources.images import fashion_mnist_images

    pool = fashion_mnist_images()
    data = one_vs_rest("fashion_mnist", 3, seed=0, n_val=400)
    label_of = {
        image.tobytes(): int(label) for image, label in zip(pool.train_x, pool.train_y, strict=True)
    }

    def pool_keys(x):
        return [np.round(image[0] * 255).astype(np.uint8).tobytes() for image in x]

    train, val = pool_keys(data.train_x), pool_keys(data.val_x)
    assert all(label_of[key] == 3 for key in train)
    assert len(train) + sum(label_of[key] == 3 for key in val) == int((pool.train_y == 3).sum())
    assert not set(train) & set(val)
    assert data.val_y.tolist() == [int(label_of[key] != 3) for key in val]
    assert len(val) == 400 and 0 < int((data.val_y == 0).sum()) < 400
    assert data.test_y.tolist() == (pool.test_y != 3).astype(int).tolist()
    assert data.train_x.shape[1:] == (1, 28, 28) and data.train_x.dtype == np.float32
    assert data.test_x.min() >= 0 and data.test_x.max() <= 1 and data.n_features == 784


@pytest.mark.data("fashion_mnist")
def test_one_vs_rest_subsamples_training_by_seed():
    first = one_vs_rest("fashion_mnist", 7, seed=0, n_train=50, n_val=100)
    again = one_vs_rest("fashion_mnist", 7, seed=0, n_train=50, n_val=100)
    other = one_vs_rest("fashion_mnist", 7, seed=1, n_train=50, n_val=100)
    assert len(first.train_x) == 50
    assert np.array_equal(first.train_x, again.train_x)
    assert np.array_equal(first.val_x, again.val_x)
    assert not np.array_equal(first.train_x, other.train_x)
    with pytest.raises(ConfigError, match="n_train must be at least 2"):
        one_vs_rest("fashion_mnist", 7, seed=0, n_train=1)
    everything = one_vs_rest("fashion_mnist", 7, seed=0, n_train=10**6)  # at most: all of them
    assert np.array_equal(everything.train_x, one_vs_rest("fashion_mnist", 7, seed=0).train_x)
    with pytest.raises(ConfigError, match="n_val must lie between 2 and"):
        one_vs_rest("fashion_mnist", 7, seed=0, n_val=1)


@pytest.mark.parametrize("fraction", [0.1, 0.4, 0.75])
def test_mask_pixels_zeroes_exactly_the_fraction(fraction):
    images = np.ones((50, 1, 28, 28), dtype=np.float32)
    masked = mask_pixels(images, fraction, np.random.default_rng(0))
    zeroed = (masked == 0).reshape(50, -1).sum(axis=1)
    assert (zeroed == round(fraction * 784)).all()
    assert set(np.unique(masked).tolist()) == {0.0, 1.0}
    assert (images == 1).all()  # the originals are untouched
    # Each image loses its own random pixels.
    assert not np.array_equal(masked[0], masked[1])


def close_negatives_match_masked_zeros(x, y, close, fraction):
    zeros, masked = x[(y == 0)], x[close]
    assert len(zeros) == len(masked) > 0
    changed = masked != zeros
    assert (masked[changed] == 0).all()
    k = round(fraction * 784)
    assert (changed.reshape(len(zeros), -1).sum(axis=1) <= k).all()
    # Masked pixels are drawn uniformly, so the share of inked pixels lost is the fraction.
    inked = zeros > 0
    lost = (changed & inked).reshape(len(zeros), -1).sum(axis=1) / inked.reshape(
        len(zeros), -1
    ).sum(axis=1)
    assert abs(lost.mean() - fraction) < 0.02


@pytest.mark.data("mnist")
@pytest.mark.parametrize("fraction", [0.4, 0.15])
def test_limited_negatives_mnist(fraction):
    from stalwart.data.sources.images import mnist_images

    pool = mnist_images()
    data = limited_negatives_mnist(seed=0, mask_fraction=fraction, n_val=300)
    label_of = {
        image.tobytes(): int(label) for image, label in zip(pool.train_x, pool.train_y, strict=True)
    }

    def digits(x):
        return [label_of.get(np.round(i[0] * 255).astype(np.uint8).tobytes()) for i in x]

    train_digits = digits(data.train_x)
    assert set(train_digits) == {0, 1}
    assert data.train_y.tolist() == train_digits
    n_pool = int(np.isin(pool.train_y, (0, 1)).sum())
    plain_val = data.val_x[~data.val_close]
    assert len(plain_val) == 300 and len(data.train_x) == n_pool - 300
    assert digits(plain_val) == data.val_y[~data.val_close].tolist()
    assert not set(row_keys(data.train_x)) & set(row_keys(plain_val))
    test_zeros = pool.test_x[pool.test_y == 0]
    assert np.array_equal(data.test_x[data.test_y == 0], test_zeros[:, None] / np.float32(255))
    assert int((data.test_y == 1).sum()) == int((pool.test_y == 1).sum()) + len(test_zeros)
    for x, y, close in ((data.val_x, data.val_y, data.val_close),
                        (data.test_x, data.test_y, data.test_close)):  # fmt: skip
        assert (y[close] == 1).all()
        close_negatives_match_masked_zeros(x, y, close, fraction)
    again = limited_negatives_mnist(seed=0, mask_fraction=fraction, n_val=300)
    assert np.array_equal(again.test_x, data.test_x) and np.array_equal(again.val_x, data.val_x)
