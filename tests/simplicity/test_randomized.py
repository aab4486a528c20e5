"""Randomized AUC and accuracy, per-coordinate accuracy and the UAP, on hand-built models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from stalwart import data, simplicity
from stalwart.data.blocks import InputBlocks
from stalwart.data.core import GroupedDataset
from stalwart.errors import ConfigError, DataError

SMALL = {"n_train": 8, "n_val": 8, "n_test": 20_000, "dim": 6}


class ReadsOneLatentCoordinate(nn.Module):
    """Logits (−c·z_k, c·z_k) of one latent coordinate k: relies on it and nothing else."""

    def __init__(self, rotation: torch.Tensor | None, coordinate: int, scale: float = 5.0):
        super().__init__()
        d = rotation.shape[0] if rotation is not None else 6
        w = torch.zeros(d)
        w[coordinate] = scale
        # x = z @ W, so z_k = x @ W.T[:, k] = x · W[k]
        direction = rotation[coordinate] * scale if rotation is not None else w
        self.linear = nn.Linear(d, 2)
        with torch.no_grad():
            self.linear.weight.copy_(torch.stack([-direction, direction]))
            self.linear.bias.zero_()

    def forward(self, x):
        return self.linear(x)


class ReadsOneSlabCoordinate(nn.Module):
    """The exact 5-slab rule on latent coordinate k: class 1 where 0.24 < |z_k| < 0.64."""

    def __init__(self, rotation: torch.Tensor, coordinate: int):
        super().__init__()
        self.register_buffer("direction", rotation[coordinate].clone())

    def forward(self, x):
        score = 0.2 - ((x @ self.direction).abs() - 0.44).abs()
        return torch.stack([-score, score], 1)


def same(first, second):
    """Scores equal up to the float32 round trip through the rotation."""
    return first.auc == pytest.approx(second.auc, abs=1e-9) and first.accuracy == second.accuracy


@pytest.fixture(scope="module")
def lms():
    return data.load("lms", slabs=5, seed=0, **SMALL)


def test_a_model_reading_the_simple_coordinate_only(lms):
    test = lms.test
    model = ReadsOneLatentCoordinate(test.blocks.rotation, 0)
    report = simplicity.randomized_auc(model, test, repeats=3, seed=1)
    assert report.standard.auc == 1.0 and report.standard.accuracy == 1.0
    assert report.randomized["simple"].auc == pytest.approx(0.5, abs=0.01)  # S-randomized
    assert report.randomized["simple"].accuracy == pytest.approx(0.5, abs=0.01)
    # Everything else randomized: the simple coordinate is untouched, nothing changes.
    assert same(report.complement["simple"], report.standard)
    assert same(report.randomized["complex"], report.standard)
    assert report.examples == 20_000 and report.repeats == 3
    per_coordinate = simplicity.coordinate_accuracy(model, test)
    assert per_coordinate[0] == pytest.approx(0.5, abs=0.01)
    np.testing.assert_array_equal(per_coordinate[1:], 1.0)


def test_a_model_reading_one_complex_coordinate(lms):
    test = lms.test
    model = ReadsOneSlabCoordinate(test.blocks.rotation, 3)
    report = simplicity.randomized_auc(model, test, {"third": [3], "others": [0, 1, 2, 4, 5]})
    assert report.standard.accuracy == 1.0 and report.standard.auc == 1.0
    assert same(report.randomized["others"], report.standard)
    assert report.randomized["third"].auc == pytest.approx(0.5, abs=0.015)
    # The AUC is that of the logit difference, as computed by hand.
    shuffled = simplicity.randomized_auc(model, test, {"third": [3]}, seed=7).randomized["third"]
    permutation = torch.randperm(len(test), generator=torch.Generator().manual_seed(7))
    z = test.blocks.to_latent(test.x.double())
    z[:, 3] = z[permutation, 3]
    score = 0.2 - (z[:, 3].abs() - 0.44).abs()
    assert shuffled.auc == pytest.approx(roc_auc_score(test.y.numpy(), score.numpy()), abs=1e-6)


def test_the_permutations_are_seeded(lms):
    model = ReadsOneLatentCoordinate(lms.test.blocks.rotation, 0)
    first = simplicity.randomized_auc(model, lms.test, ["simple"], seed=4)
    again = simplicity.randomized_auc(model, lms.test, "simple", seed=4)
    other = simplicity.randomized_auc(model, lms.test, ["simple"], seed=5)
    assert first == again and first.randomized != other.randomized
    assert list(first.randomized) == ["simple"]


def test_image_blocks_of_dominoes_style_data():
    # Top half: a bright square for class 1; bottom half: noise. The model sums the top half.
    generator = torch.Generator().manual_seed(0)
    y = torch.arange(2000) % 2
    x = torch.rand(2000, 1, 4, 2, generator=generator) * 0.1
    x[:, :, :2] += y[:, None, None, None].float()
    top = torch.zeros(1, 4, 2, dtype=torch.bool)
    top[:, :2] = True
    test = GroupedDataset(x, y, y, n_classes=2, group_names=["a", "b"],
                          blocks=InputBlocks({"top": top, "bottom": ~top}))  # fmt: skip

    class TopHalf(nn.Module):
        def forward(self, images):
            score = images[:, :, :2].sum((1, 2, 3)) - 2
            return torch.stack([-score, score], 1)

    report = simplicity.randomized_auc(TopHalf(), test, seed=2)
    assert report.standard.accuracy == 1.0
    assert report.randomized["top"].auc == pytest.approx(0.5, abs=0.04)
    assert same(report.randomized["bottom"], report.standard)


def test_uap_budget_goes_to_the_relied_on_coordinate(lms):
    model = ReadsOneLatentCoordinate(lms.test.blocks.rotation, 0)
    test = lms.test.subset(torch.arange(2000))
    single = simplicity.universal_perturbation(model, test, eps=1.2, steps=20)
    assert single.share["simple"] == pytest.approx(1.0, abs=1e-6)
    assert single.share["simple"] + single.share["complex"] == pytest.approx(1.0)
    assert float(single.delta.norm()) == pytest.approx(1.2, rel=1e-4)  # on the sphere
    assert 0.45 < single.perturbed_accuracy <= 0.55  # one shared push flips one class only
    per_class = simplicity.universal_perturbation(model, test, eps=1.2, steps=20, per_class=True)
    assert per_class.delta.shape == (2, 6)
    assert per_class.perturbed_accuracy == 0.0 and per_class.accuracy == 1.0
    linf = simplicity.universal_perturbation(model, test, eps=0.3, norm="linf", steps=10)
    assert float(linf.delta.abs().max()) == pytest.approx(0.3)


def test_bad_arguments_are_explained(lms):
    model = ReadsOneLatentCoordinate(lms.test.blocks.rotation, 0)
    with pytest.raises(DataError, match=r"no input block 'simpel' \(did you mean 'simple'"):
        simplicity.randomized_auc(model, lms.test, ["simpel"])
    with pytest.raises(DataError, match=r"indices \[6\] lie outside the 6 coordinates"):
        simplicity.randomized_auc(model, lms.test, {"bad": [6]})
    plain = GroupedDataset(torch.zeros(4, 6), torch.tensor([0, 1, 0, 1]), torch.zeros(4),
                           n_classes=2, group_names=["g"])  # fmt: skip
    with pytest.raises(DataError, match="declares no input blocks; give them"):
        simplicity.randomized_auc(model, plain)
    with pytest.raises(ConfigError, match="repeats must be a whole number"):
        simplicity.randomized_auc(model, lms.test, repeats=0)
    with pytest.raises(ConfigError, match="norm must be 'l2' or 'linf'"):
        simplicity.universal_perturbation(model, lms.test, eps=1.0, norm="l1")
    images = GroupedDataset(torch.zeros(4, 1, 2, 2), torch.tensor([0, 1, 0, 1]), torch.zeros(4),
                            n_classes=2, group_names=["g"])  # fmt: skip
    with pytest.raises(DataError, match="needs flat inputs"):
        simplicity.coordinate_accuracy(model, images)


def test_reliance_on_a_spurious_block_shows_only_where_it_agrees_with_the_label():
    # Groups 2·y + d: a "digit" d on top that agrees with y in half the examples (groups 0, 3).
    generator = torch.Generator().manual_seed(1)
    y = torch.arange(4000) % 2
    d = torch.where(torch.rand(4000, generator=generator) < 0.5, y, 1 - y)
    x = torch.zeros(4000, 1, 4, 2)
    x[:, :, :2] = d[:, None, None, None].float()  # top: the digit
    x[:, :, 2:] = y[:, None, None, None].float()  # bottom: the label
    top = torch.zeros(1, 4, 2, dtype=torch.bool)
    top[:, :2] = True
    blocks = InputBlocks({"top": top, "bottom": ~top}, simple="top", agreeing_groups=(0, 3))
    test = GroupedDataset(x, y, 2 * y + d, n_classes=2, group_names=list("abcd"), blocks=blocks)

    class ReadsTheDigit(nn.Module):
        def forward(self, images):
            score = images[:, :, :2].mean((1, 2, 3)) - 0.5
            return torch.stack([-score, score], 1)

    everywhere = simplicity.randomized_auc(ReadsTheDigit(), test)
    assert everywhere.standard.auc == pytest.approx(0.5, abs=0.03)  # the digit says nothing here
    assert everywhere.randomized["top"].auc == pytest.approx(0.5, abs=0.03)  # so no drop shows
    agreeing = simplicity.agreeing_subset(test)
    assert set(agreeing.group.tolist()) == {0, 3} and len(agreeing) == int((d == y).sum())
    report = simplicity.randomized_auc(ReadsTheDigit(), agreeing)
    assert report.standard.auc == 1.0
    assert report.randomized["top"].auc == pytest.approx(0.5, abs=0.04)  # reliance shows
    assert same(report.randomized["bottom"], report.standard)
    with pytest.raises(DataError, match="has no example in the groups"):
        simplicity.agreeing_subset(test.subset(torch.nonzero(test.group == 1).flatten()))
