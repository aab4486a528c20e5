"""Named shifts added to Splits.extra through the normal load path (data.load(..., shifts=))."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stalwart import data
from stalwart.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from stalwart.data.shifts import SHIFTS, available_shifts, check_shifts
from stalwart.errors import ConfigError

needs_mnist = pytest.mark.data("mnist")
needs_both = pytest.mark.data("mnist", "fashion_mnist")
CORRUPTION_SHIFTS = {f"{c}_{s}" for c in CORRUPTIONS.names() for s in SEVERITIES}


def test_every_corruption_and_severity_is_a_shift():
    assert CORRUPTION_SHIFTS | {"digits", "mnist", "minority"} == set(SHIFTS.names())


def test_available_shifts_per_source():
    assert set(available_shifts("mnist")) == CORRUPTION_SHIFTS | {"digits"}
    assert set(available_shifts("digits")) == CORRUPTION_SHIFTS | {"mnist"}
    assert set(available_shifts("fashion_mnist")) == CORRUPTION_SHIFTS
    assert set(available_shifts("colored_mnist")) == CORRUPTION_SHIFTS | {"minority"}
    assert available_shifts("toy_spurious") == ["minority"]
    assert available_shifts("adult") == []
    with pytest.raises(ConfigError, match="did you mean 'mnist'"):
        available_shifts("mnsit")


@pytest.mark.parametrize(
    "source, shift", [("fashion_mnist", "digits"), ("adult", "blur_1"), ("mnist", "minority")]
)
def test_a_shift_that_does_not_apply_lists_the_valid_ones(source, shift):
    with pytest.raises(ConfigError) as error:
        check_shifts(source, [shift])
    message = str(error.value)
    assert f"shift {shift!r} does not apply to dataset {source!r}" in message
    assert f"its shifts are {available_shifts(source)}" in message


def test_unknown_shift_suggests_the_closest_and_lists_all():
    with pytest.raises(ConfigError) as error:
        data.load("toy_spurious", n=40, shifts=["gausian_noise_3"])
    assert "did you mean 'gaussian_noise_3'" in str(error.value)
    assert "rotation_5" in str(error.value)


@pytest.mark.parametrize("bad", ["blur_1", [1], ["minority", "minority"]])
def test_malformed_shifts_are_refused(bad):
    with pytest.raises(ConfigError, match="shift"):
        check_shifts("toy_spurious", bad)


def test_shifts_is_a_parameter_of_every_source_checked_with_the_config():
    from stalwart.experiments.configs import parse_config

    for name in data.SOURCES.names():
        assert "shifts" in data.SOURCES.parameters(name)
    run = {"data": {"name": "digits", "shifts": ["blur_2"]}, "model": {"name": "mlp"}}
    assert parse_config(run).data.params["shifts"] == ["blur_2"]
    wrong = {"data": {"name": "digits", "shifts": ["digits"]}, "model": {"name": "mlp"}}
    with pytest.raises(ConfigError, match="does not apply"):
        parse_config(wrong)


def test_corruption_shift_is_the_corrupted_test_set_same_for_every_run_seed():
    first = data.load("digits", seed=0, shifts=["gaussian_noise_3", "rotation_5"])
    second = data.load("digits", seed=5, shifts=["gaussian_noise_3"])
    assert set(first.extra) == {"gaussian_noise_3", "rotation_5"}
    shifted, test = first.extra["gaussian_noise_3"], first.test
    assert torch.equal(shifted.y, test.y) and torch.equal(shifted.group, test.group)
    assert torch.equal(shifted.index, test.index) and shifted.group_names == test.group_names
    assert shifted.x.shape == test.x.shape and not torch.equal(shifted.x, test.x)
    assert shifted.x.min() >= 0 and shifted.x.max() <= 1
    # The digits test split is fixed, so a different run seed must give the same images.
    assert torch.equal(second.extra["gaussian_noise_3"].x, shifted.x)
    # Severities of one corruption share a noise stream: they differ in strength only.
    three, five = (data.load("digits", shifts=[f"gaussian_noise_{s}"]) for s in (3, 5))
    noise3 = three.extra["gaussian_noise_3"].x - test.x
    noise5 = five.extra["gaussian_noise_5"].x - test.x
    shifted5 = five.extra["gaussian_noise_5"].x
    inside = (shifted5 > 0) & (shifted5 < 1) & (test.x + noise3 > 0) & (test.x + noise3 < 1)
    inside &= noise3.abs() > 1e-3  # no clipping at either severity, and a ratio defined
    ratio = noise5[inside] / noise3[inside]
    assert torch.allclose(ratio, torch.full_like(ratio, 0.38 / 0.18), atol=1e-3)


def test_shifts_do_not_change_the_other_splits():
    plain, shifted = data.load("digits"), data.load("digits", shifts=["contrast_1"])
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(plain, split).x, getattr(shifted, split).x)
    assert plain.extra == {}


def test_minority_is_exactly_the_disagreeing_test_examples():
    splits = data.load("toy_spurious", n=200, n_test=400, core_dim=3, spurious_dim=3,
                       shifts=["minority"])  # fmt: skip
    test, minority = splits.test, splits.extra["minority"]
    disagree = (test.group % 2) != test.y
    assert torch.equal(minority.index, test.index[disagree])
    assert torch.equal(minority.x, test.x[disagree])
    assert set(minority.group.tolist()) == {1, 2}
    assert len(minority) == 200  # the test set is balanced over the four groups


@needs_mnist
def test_minority_on_colored_mnist():
    splits = data.load("colored_mnist", shifts=["minority", "blur_1"])
    test, minority = splits.test, splits.extra["minority"]
    colour = test.x.flatten(2).sum(2).argmax(1)  # the channel the digit is drawn in
    assert torch.equal(minority.index, test.index[colour != test.y])
    assert splits.extra["blur_1"].x.shape == test.x.shape == (len(test), 2, 28, 28)


def _centroids(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.stack([x[y == k].mean(axis=0) for k in range(10)])


def _nearest_centroid_accuracy(centroids: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    distance = ((x[:, None] - centroids[None]) ** 2).reshape(len(x), 10, -1).sum(axis=2)
    return float((distance.argmin(axis=1) == y).mean())


def _centre_of_mass(x: np.ndarray) -> np.ndarray:
    total = x.sum(axis=(1, 2))
    rows = (x.sum(axis=2) * np.arange(x.shape[1])).sum(axis=1) / total
    cols = (x.sum(axis=1) * np.arange(x.shape[2])).sum(axis=1) / total
    return np.stack([rows, cols], axis=1)


@needs_mnist
def test_digits_shift_looks_like_mnist_and_is_recognisable():
    splits = data.load("mnist", shifts=["digits"])
    shifted = splits.extra["digits"]
    assert len(shifted) == 1797 and shifted.input_shape == (1, 28, 28) == splits.test.input_shape
    assert shifted.group_names == splits.test.group_names
    mnist_x, digits_x = splits.test.x[:, 0].numpy(), shifted.x[:, 0].numpy()
    # Intensity scale: black background, bright strokes, mean near MNIST's ~0.13.
    assert 0.10 < digits_x.mean() < 0.18 and 0.10 < mnist_x.mean() < 0.16
    assert np.median(digits_x.max(axis=(1, 2))) > 0.9
    # MNIST's padding: the digit sits inside the field, little ink in the outer 3 pixels.
    border = np.ones((28, 28), bool)
    border[3:-3, 3:-3] = False
    for x in (digits_x, mnist_x):
        assert x[:, border].sum() / x.sum() < 0.02
    # Centring: the mean centre of mass matches MNIST's within a quarter pixel.
    offset = _centre_of_mass(digits_x).mean(0) - _centre_of_mass(mnist_x).mean(0)
    assert np.abs(offset).max() < 0.25, offset
    # A nearest-centroid classifier fitted on MNIST: far above chance (0.1) on the shift, and
    # below its MNIST accuracy (it is a shift).
    centroids = _centroids(splits.train.x[:, 0].numpy(), splits.train.y.numpy())
    on_digits = _nearest_centroid_accuracy(centroids, digits_x, shifted.y.numpy())
    on_mnist = _nearest_centroid_accuracy(centroids, mnist_x, splits.test.y.numpy())
    assert 0.3 < on_digits < on_mnist, (on_digits, on_mnist)


@needs_mnist
def test_mnist_shift_follows_the_digits_convention():
    splits = data.load("digits", shifts=["mnist"])
    shifted = splits.extra["mnist"]
    assert shifted.input_shape == (1, 8, 8) and shifted.group_names == splits.test.group_names
    x = shifted.x.numpy()
    assert np.array_equal(x * 16, np.round(x * 16)) and x.max() == 1.0  # counts 0..16 over 16
    assert abs(x.mean() - splits.test.x.mean().item()) < 0.08
    centroids = _centroids(splits.train.x[:, 0].numpy(), splits.train.y.numpy())
    accuracy = _nearest_centroid_accuracy(centroids, x[:, 0], shifted.y.numpy())
    assert 0.3 < accuracy < 0.9, accuracy


@needs_both
def test_fashion_mnist_corruption_through_load():
    splits = data.load("fashion_mnist", shifts=["jpeg_5"])
    expected = corrupt(splits.test.x[:5], "jpeg", 5)
    assert torch.equal(splits.extra["jpeg_5"].x[:5], expected)  # jpeg draws no randomness
