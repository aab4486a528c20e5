"""Group metrics against scikit-learn reference values."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score

from stalwart.metrics import (
    SELECTABLE,
    GroupMetrics,
    accuracy,
    group_accuracy,
    group_metrics,
    weighted_accuracy,
    worst_group_accuracy,
)


def random_predictions(n=500, n_classes=4, seed=0, skill=0.6):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, n_classes, (n,), generator=g)
    guesses = torch.randint(0, n_classes, (n,), generator=g)
    keep = torch.rand(n, generator=g) < skill
    return torch.where(keep, labels, guesses), labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_matches_sklearn(seed):
    predictions, labels = random_predictions(seed=seed)
    assert accuracy(predictions, labels) == pytest.approx(
        accuracy_score(labels.numpy(), predictions.numpy()), abs=1e-7
    )


def test_accuracy_of_empty_set_is_nan():
    assert math.isnan(
        accuracy(torch.tensor([], dtype=torch.long), torch.tensor([], dtype=torch.long))
    )


@pytest.mark.parametrize("seed", [0, 3])
def test_per_class_groups_match_recall_and_balanced_accuracy(seed):
    predictions, labels = random_predictions(n_classes=5, seed=seed)
    per_group, counts = group_accuracy(predictions, labels, labels, 5)
    recall = recall_score(labels.numpy(), predictions.numpy(), average=None, labels=range(5))
    np.testing.assert_allclose(per_group.numpy(), recall, rtol=0, atol=1e-12)
    assert counts.tolist() == torch.bincount(labels, minlength=5).tolist()
    balanced = balanced_accuracy_score(labels.numpy(), predictions.numpy())
    assert per_group.mean().item() == pytest.approx(balanced, abs=1e-12)
    names = [f"class {k}" for k in range(5)]
    metrics = group_metrics(predictions, labels, labels, names)
    assert metrics.worst_group_accuracy == pytest.approx(recall.min(), abs=1e-12)
    assert metrics.worst_group == names[int(np.argmin(recall))]


def test_weighted_by_own_counts_equals_accuracy():
    predictions, labels = random_predictions(n=800, seed=4)
    groups = (labels + torch.arange(800) % 3) % 6
    names = [f"g{k}" for k in range(6)]
    own = torch.bincount(groups, minlength=6)
    metrics = group_metrics(predictions, labels, groups, names, reference_counts=own)
    # accuracy() averages in float32, group accuracies in float64: equal up to float32 rounding.
    assert metrics.weighted_accuracy == pytest.approx(metrics.accuracy, abs=1e-6)
    assert metrics.value("weighted_accuracy") == pytest.approx(
        accuracy_score(labels.numpy(), predictions.numpy()), abs=1e-12
    )


def test_weighted_accuracy_uses_reference_proportions():
    per_group = torch.tensor([1.0, 0.0, 0.5, float("nan")], dtype=torch.float64)
    reference = torch.tensor([3, 1, 0, 10])
    # Groups without reference examples or without evaluated examples get no weight.
    assert weighted_accuracy(per_group, reference) == pytest.approx(0.75)
    assert math.isnan(weighted_accuracy(per_group, torch.tensor([0, 0, 0, 5])))


def test_empty_group_is_nan_and_not_the_worst():
    predictions = torch.tensor([0, 1, 1, 0, 1, 1])
    labels = torch.tensor([0, 1, 0, 0, 1, 0])
    groups = torch.tensor([0, 1, 3, 0, 1, 3])
    names = ["a", "b (empty)", "c", "d"]
    per_group, counts = group_accuracy(predictions, labels, groups, 4)
    assert counts.tolist() == [2, 2, 0, 2]
    assert per_group[0] == 1.0 and per_group[1] == 1.0 and per_group[3] == 0.0
    assert math.isnan(per_group[2].item())
    metrics = group_metrics(predictions, labels, groups, names)
    assert metrics.worst_group_accuracy == 0.0
    assert metrics.worst_group == "d"
    assert math.isnan(metrics.group_accuracy[2])

    # With the only failing group empty, the worst group is the minimum over the rest.
    keep = groups != 3
    metrics = group_metrics(predictions[keep], labels[keep], groups[keep], names)
    assert metrics.worst_group_accuracy == 1.0
    assert metrics.worst_group in {"a", "b (empty)"}
    assert metrics.worst_group != "c" and metrics.worst_group != "d"


def test_worst_group_accuracy_all_empty_is_nan():
    assert math.isnan(worst_group_accuracy(torch.tensor([float("nan")] * 3)))
    assert worst_group_accuracy(torch.tensor([0.9, float("nan"), 0.4])) == pytest.approx(0.4)


def test_worst_group_names_the_right_group():
    # Group accuracies 3/4, 1/2, 1/1: the worst is "middle", which is neither first nor smallest.
    labels = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0, 1])
    predictions = torch.tensor([1, 1, 1, 0, 0, 0, 1, 1, 1])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2])
    metrics = group_metrics(predictions, labels, groups, ["first", "middle", "last"])
    assert metrics.group_accuracy == pytest.approx((0.75, 0.5, 1.0))
    assert metrics.group_counts == (4, 4, 1)
    assert metrics.worst_group == "middle"
    assert metrics.worst_group_accuracy == 0.5
    assert metrics.accuracy == pytest.approx(6 / 9)
    assert metrics.weighted_accuracy is None


def test_value_selects_and_rejects():
    predictions, labels = random_predictions(seed=5)
    groups = labels
    names = [str(k) for k in range(4)]
    metrics = group_metrics(predictions, labels, groups, names, loss=0.25)
    assert metrics.value("accuracy") == metrics.accuracy
    assert metrics.value("worst_group_accuracy") == metrics.worst_group_accuracy
    with pytest.raises(ValueError, match="reference group counts"):
        metrics.value("weighted_accuracy")
    with pytest.raises(ValueError, match=r"unknown metric 'loss'.*worst_group_accuracy"):
        metrics.value("loss")
    with pytest.raises(ValueError, match="unknown metric"):
        metrics.value("worst_group")
    assert set(SELECTABLE) == {"accuracy", "worst_group_accuracy", "weighted_accuracy"}
    as_dict = metrics.as_dict()
    assert as_dict["loss"] == 0.25 and list(as_dict["group_names"]) == names


def test_str_lists_groups_and_worst_group():
    predictions = torch.tensor([0, 1, 1, 0])
    labels = torch.tensor([0, 1, 0, 0])
    groups = torch.tensor([0, 1, 2, 0])
    names = ["landbird, land", "landbird, water", "waterbird, land", "waterbird, water"]
    metrics = group_metrics(
        predictions, labels, groups, names, reference_counts=torch.tensor([5, 1, 1, 5])
    )
    text = str(metrics)
    for name in names:
        assert name in text
    lines = text.splitlines()
    worst = [line for line in lines if line.startswith("worst group")]
    assert len(worst) == 1 and "0.00%" in worst[0]
    assert any(line.startswith("weighted average") for line in lines)
    assert any(line.startswith("average") and "75.00%" in line for line in lines)
    # The empty group is shown with a dash instead of a percentage.
    empty = next(line for line in lines if line.startswith("waterbird, water"))
    assert "%" not in empty and "-" in empty


def test_group_metrics_is_a_frozen_record():
    metrics = GroupMetrics(0.5, 0.25, (0.25, 0.75), (4, 4), ("x", "y"))
    assert metrics.worst_group == "x"
    with pytest.raises(AttributeError):
        metrics.accuracy = 1.0  # type: ignore[misc]
