"""The slab data of arXiv 2006.07710: margins, slab membership, balance, rotation, blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stalwart import data
from stalwart.data.sources.slabs import (
    MARGIN,
    SLAB_PROBABILITIES,
    slab_classes,
    slab_edges,
    slab_of,
    slab_width,
)
from stalwart.errors import ConfigError

SMALL = {"n_train": 4000, "n_val": 400, "n_test": 2000, "dim": 10}


def latent(dataset):
    return dataset.blocks.to_latent(dataset.x.double()).numpy()


@pytest.mark.parametrize(("k", "width"), [(3, (2 - 0.4) / 3), (5, 0.24), (7, 0.8 / 7)])
def test_slabs_fill_the_unit_interval_with_gaps_of_twice_the_margin(k, width):
    edges = slab_edges(k)
    assert slab_width(k) == pytest.approx(width)
    assert edges[0, 0] == pytest.approx(-1) and edges[-1, 1] == pytest.approx(1)
    np.testing.assert_allclose(edges[1:, 0] - edges[:-1, 1], 2 * MARGIN)
    np.testing.assert_allclose(edges[:, 1] - edges[:, 0], width)
    classes = slab_classes(k)
    assert classes[k // 2] == 0 and (np.diff(classes) != 0).all()  # centre negative, alternating
    for label in (0, 1):
        probabilities = np.array(SLAB_PROBABILITIES[k][label])
        assert probabilities.sum() == pytest.approx(1)
        assert (probabilities[classes != label] == 0).all()  # a class only uses its own slabs
        np.testing.assert_allclose(probabilities, probabilities[::-1])  # both sides alike


def test_lms5_coordinates_sit_in_their_class_slabs_with_the_papers_odds():
    splits = data.load("lms", slabs=5, seed=1, **SMALL)
    for dataset in (splits.train, splits.test):
        z, y = latent(dataset), dataset.y.numpy()
        assert np.abs(z).max() <= 1 + 1e-6
        # The linear coordinate: U[m, 1] for y = 1, U[-1, -m] for y = 0.
        assert (np.sign(z[:, 0]) == 2 * y - 1).all() and np.abs(z[:, 0]).min() >= MARGIN - 1e-6
        slabs = slab_of(z[:, 1:], 5)
        assert (slabs >= 0).all()  # never in a gap
        assert (slab_classes(5)[slabs] == y[:, None]).all()  # always in a slab of its class
        assert (y == 0).sum() == (y == 1).sum()  # exactly balanced
    z, y = latent(splits.train), splits.train.y.numpy()
    negatives = slab_of(z[y == 0, 1:], 5).ravel()
    assert (negatives == 2).mean() == pytest.approx(0.75, abs=0.01)  # the centre, w.p. 3/4
    positives = slab_of(z[y == 1, 1:], 5).ravel()
    assert (positives == 3).mean() == pytest.approx(0.5, abs=0.01)  # either side, w.p. 1/2


def test_ms7_inner_slabs_hold_seven_eighths_of_the_positives():
    splits = data.load("ms", simple_slabs=7, slabs=7, seed=2, **SMALL)
    z, y = latent(splits.train), splits.train.y.numpy()
    slabs = slab_of(z[y == 1], 7).ravel()
    assert np.isin(slabs, [2, 4]).mean() == pytest.approx(7 / 8, abs=0.01)
    assert (slab_classes(7)[slab_of(z, 7)] == y[:, None]).all()


def test_corrupted_linear_coordinate_and_its_groups():
    splits = data.load("lms", slabs=7, corrupt_linear=0.1, seed=0, **SMALL)
    z, y, group = latent(splits.train), splits.train.y.numpy(), splits.train.group.numpy()
    corrupted = np.abs(z[:, 0]) < MARGIN
    assert corrupted.mean() == pytest.approx(0.1, abs=0.015)
    agrees = (z[:, 0] > 0) == (y == 1)
    np.testing.assert_array_equal(group, 2 * y + agrees)
    assert agrees[~corrupted].all()  # only a corrupted coordinate can disagree
    assert (~agrees).mean() == pytest.approx(0.05, abs=0.01)  # half the corrupted points
    clean = data.load("lms", slabs=5, seed=0, **SMALL)
    assert set(clean.train.group.tolist()) == {1, 3}  # the simple feature always agrees


def test_the_rotation_is_orthonormal_stored_and_reproducible():
    first = data.load("lms", seed=3, **SMALL)
    again = data.load("lms", seed=3, **SMALL)
    other = data.load("lms", seed=4, **SMALL)
    w = first.train.blocks.rotation.double()
    np.testing.assert_allclose(w.T @ w, np.eye(10), atol=1e-6)
    torch.testing.assert_close(first.train.x, again.train.x)
    assert not torch.equal(first.train.x, other.train.x)
    assert first.test.blocks is first.train.blocks  # one rotation for every split
    # The rotation mixes the coordinates: no input coordinate is the linear feature alone.
    assert not np.allclose(np.abs(w.numpy()), np.eye(10), atol=0.1)
    unrotated = data.load("lms", seed=3, rotate=False, **SMALL)
    assert unrotated.train.blocks.rotation is None
    assert (np.sign(unrotated.train.x[:, 0].numpy()) == 2 * unrotated.train.y.numpy() - 1).all()
    assert first.train.blocks.simple == "simple"
    assert first.train.blocks.mask("complex").sum() == 9


@pytest.mark.parametrize(
    ("source", "params", "message"),
    [
        ("lms", {"slabs": 4}, r"parameter .slabs.: Input should be 3, 5 or 7; got 4"),
        ("lms", {"slabs": 7, "margin": 0.2}, r"margin must lie in \(0, 0.1667\) for 7 slabs"),
        ("lms", {"corrupt_linear": 1.5}, r"corrupt_linear must be a fraction in \[0, 1\]"),
        ("ms", {"simple_slabs": 2}, r"parameter .simple_slabs.: Input should be 3, 5 or 7"),
        ("lms", {"dim": 1}, "dim must be at least 2"),
        ("ms", {"n_test": 2}, "n_test must be a whole number of at least 4"),
    ],
)
def test_bad_parameters_are_named(source, params, message):
    with pytest.raises(ConfigError, match=message):
        data.load(source, **{**SMALL, **params})


def test_the_named_datasets_have_the_papers_structure():
    from stalwart.data.sources.slabs import NAMED_DATASETS

    shapes = {}
    for name, (source, params) in NAMED_DATASETS.items():
        splits = data.load(source, **{**params, "n_train": 400, "n_val": 40, "n_test": 400})
        z = latent(splits.test)
        shapes[name] = (source, z.shape[1], params.get("corrupt_linear", 0.0))
        complex_slabs = params["slabs"]
        assert (slab_classes(complex_slabs)[slab_of(z[:, 1:], complex_slabs)] ==
                splits.test.y.numpy()[:, None]).all()  # fmt: skip
    assert shapes == {"LMS-5": ("lms", 50, 0.0), "MS-(5,7)": ("ms", 50, 0.0),
                      "L̂MS-7": ("lms", 50, 0.1), "MS-7": ("ms", 50, 0.0)}  # fmt: skip
