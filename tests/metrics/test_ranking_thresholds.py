"""Thresholded metrics against scikit-learn and numpy: recall at FPR, F1, contamination quantile."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support, roc_curve

from stalwart.errors import ConfigError
from stalwart.metrics import (
    f1_at_threshold,
    recall_at_fpr,
    threshold_at_contamination,
    threshold_at_fpr,
)

FPRS = [0.0, 0.01, 0.03, 0.05, 0.1, 0.25, 0.29, 0.5, 0.9, 0.999]


def random_problem(rng, ties):
    n = int(rng.integers(2, 120))
    scores = rng.integers(0, 5, n).astype(float) if ties else rng.normal(size=n)
    labels = rng.integers(0, 2, n)
    return scores, labels


@pytest.mark.parametrize("ties", [False, True])
def test_recall_at_fpr_is_the_best_roc_point_within_the_fpr(ties):
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(100):
        scores, labels = random_problem(rng, ties)
        if labels.min() == labels.max():
            continue
        fpr_curve, tpr_curve, _ = roc_curve(labels, scores, drop_intermediate=False)
        for fpr in FPRS:
            expected = tpr_curve[fpr_curve <= fpr].max()
            got = recall_at_fpr(torch.tensor(scores), torch.tensor(labels), fpr)
            assert got == pytest.approx(expected, abs=1e-12), (scores, labels, fpr)
            checked += 1
    assert checked > 700


@pytest.mark.parametrize("ties", [False, True])
def test_threshold_at_fpr_never_exceeds_the_fpr_and_is_the_lowest_such(ties):
    rng = np.random.default_rng(2)
    for _ in range(150):
        scores, labels = random_problem(rng, ties)
        negatives = scores[labels == 0]
        if len(negatives) == 0:
            continue
        for fpr in FPRS:
            threshold = threshold_at_fpr(torch.tensor(scores), torch.tensor(labels), fpr)
            assert threshold in negatives
            assert (negatives > threshold).sum() / len(negatives) <= fpr
            lower = negatives[negatives < threshold]
            if len(lower):  # the next lower candidate lets too many negatives through
                assert (negatives > lower.max()).sum() / len(negatives) > fpr


@pytest.mark.parametrize("ties", [False, True])
def test_f1_at_threshold_matches_scikit_learn(ties):
    rng = np.random.default_rng(3)
    for _ in range(60):
        scores, labels = random_problem(rng, ties)
        candidates = [rng.choice(scores), scores.max(), scores.min() - 1, rng.normal()]
        for threshold in candidates:
            predicted = (scores > threshold).astype(int)
            precision, recall, f1, _ = precision_recall_fscore_support(
                labels, predicted, average="binary", zero_division=0
            )
            got = f1_at_threshold(torch.tensor(scores), torch.tensor(labels), float(threshold))
            assert got == pytest.approx(
                {"precision": precision, "recall": recall, "f1": f1}, abs=1e-12
            )


def test_f1_zero_over_zero_is_zero():
    no_prediction = f1_at_threshold(torch.tensor([0.1, 0.2]), torch.tensor([1, 0]), 5.0)
    assert no_prediction == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    no_positive = f1_at_threshold(torch.tensor([0.1, 0.2]), torch.tensor([0, 0]), 0.0)
    assert no_positive == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    perfect = f1_at_threshold(torch.tensor([0.1, 0.9]), torch.tensor([0, 1]), 0.5)
    assert perfect == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_threshold_at_contamination_is_numpys_percentile_exactly():
    rng = np.random.default_rng(4)
    for _ in range(200):
        n = int(rng.integers(1, 300))
        scores = rng.integers(0, 6, n).astype(float) if rng.random() < 0.3 else rng.normal(size=n)
        for contamination in [0.0, 0.01, 0.05, 0.1, 0.123, 0.3, 0.5, 0.77, 1.0]:
            expected = np.percentile(scores, 100 * (1 - contamination))
            assert threshold_at_contamination(torch.tensor(scores), contamination) == expected
    scores = torch.arange(100.0)
    threshold = threshold_at_contamination(scores, 0.1)
    assert int((scores > threshold).sum()) == 10


def test_fpr_edge_cases():
    positive = torch.tensor([0] * 100 + [1] * 4)
    negatives = torch.arange(100.0)  # 0 .. 99
    scores = torch.cat([negatives, torch.tensor([99.5, 96.5, 95.5, -1.0])])
    # fpr = 0: nothing may pass, so the threshold is the highest negative.
    assert threshold_at_fpr(scores, positive, 0.0) == 99.0
    assert recall_at_fpr(scores, positive, 0.0) == 0.25
    # 3% of 100 negatives: exactly 3 (97, 98, 99) may lie above, so the threshold is 96.
    # (EdgeML's int((1 - fpr) n) index would give 97, letting only 2 through.)
    assert threshold_at_fpr(scores, positive, 0.03) == 96.0
    assert recall_at_fpr(scores, positive, 0.03) == 0.5
    # 0.29 · 100 is 28.999999999999996 in floating point, but 29 / 100 == 0.29: 29 may pass.
    assert threshold_at_fpr(scores, positive, 0.29) == 70.0
    # Just under 1: every negative but the lowest may pass.
    assert threshold_at_fpr(scores, positive, 0.999) == 0.0
    assert recall_at_fpr(scores, positive, 0.999) == 0.75


def test_ties_at_the_threshold_are_conservative():
    # Four negatives tie at the top; 25% (one negative) may pass, but passing any of the tied
    # ones passes all four, so the threshold stays at the tie and no negative passes.
    scores = torch.tensor([5.0, 5.0, 5.0, 5.0, 1.0, 1.0, 1.0, 1.0, 6.0, 5.0, 3.0])
    positive = torch.tensor([0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1])
    assert threshold_at_fpr(scores, positive, 0.25) == 5.0
    assert recall_at_fpr(scores, positive, 0.25) == pytest.approx(1 / 3)
    # At 50%, the four tied negatives may pass: the threshold drops to the next score.
    assert threshold_at_fpr(scores, positive, 0.5) == 1.0
    assert recall_at_fpr(scores, positive, 0.5) == 1.0


def test_recall_without_positives_is_nan():
    assert math.isnan(recall_at_fpr(torch.tensor([0.1, 0.2]), torch.tensor([0, 0]), 0.1))


@pytest.mark.parametrize(
    ("fpr", "message"),
    [
        (1.0, r"fpr must lie in \[0, 1\)"),
        (-0.01, r"fpr must lie in \[0, 1\)"),
        (float("nan"), r"fpr must lie in \[0, 1\)"),
        (3, r"for 3% pass 0\.03"),
        ("0.03", "fpr must be a number"),
        (True, "fpr must be a number"),
        (None, "fpr must be a number"),
    ],
)
def test_bad_fpr_is_refused_clearly(fpr, message):
    scores, positive = torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0, 1, 0])
    with pytest.raises(ConfigError, match=message):
        threshold_at_fpr(scores, positive, fpr)
    with pytest.raises(ConfigError, match=message):
        recall_at_fpr(scores, positive, fpr)


def test_other_bad_inputs_are_refused_clearly():
    with pytest.raises(ValueError, match="at least one negative"):
        recall_at_fpr(torch.tensor([0.1, 0.2]), torch.tensor([1, 1]), 0.05)
    with pytest.raises(ValueError, match="3 scores for 2 labels"):
        recall_at_fpr(torch.tensor([0.1, 0.2, 0.3]), torch.tensor([1, 0]), 0.05)
    with pytest.raises(ValueError, match="NaN"):
        f1_at_threshold(torch.tensor([0.1, float("nan")]), torch.tensor([1, 0]), 0.0)
    with pytest.raises(ConfigError, match="threshold is NaN"):
        f1_at_threshold(torch.tensor([0.1, 0.2]), torch.tensor([1, 0]), float("nan"))
    with pytest.raises(ConfigError, match="threshold must be a number"):
        f1_at_threshold(torch.tensor([0.1, 0.2]), torch.tensor([1, 0]), "0.5")
    with pytest.raises(ConfigError, match=r"contamination must lie in \[0, 1\]"):
        threshold_at_contamination(torch.tensor([0.1, 0.2]), 1.5)
    with pytest.raises(ValueError, match="at least one score"):
        threshold_at_contamination(torch.tensor([]), 0.1)
    with pytest.raises(ValueError, match="NaN"):
        threshold_at_contamination(torch.tensor([0.1, float("nan")]), 0.1)
