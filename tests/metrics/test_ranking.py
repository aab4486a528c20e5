"""AUROC and AUPRC against scikit-learn, ties included."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from stalwart.metrics import auprc, auroc


@pytest.mark.parametrize("ties", [False, True])
def test_auroc_and_auprc_match_scikit_learn(ties):
    rng = np.random.default_rng(0)
    for _ in range(100):
        n = int(rng.integers(2, 60))
        scores = rng.integers(0, 4, n).astype(float) if ties else rng.normal(size=n)
        labels = rng.integers(0, 2, n)
        if labels.min() == labels.max():
            continue
        assert auroc(torch.tensor(scores), torch.tensor(labels)) == pytest.approx(
            roc_auc_score(labels, scores), abs=1e-12
        )
        assert auprc(torch.tensor(scores), torch.tensor(labels)) == pytest.approx(
            average_precision_score(labels, scores), abs=1e-12
        )


def test_perfect_and_reversed_rankings():
    positive = torch.tensor([0, 0, 1, 1])
    assert auroc(torch.tensor([0.1, 0.2, 0.8, 0.9]), positive) == 1.0
    assert auroc(torch.tensor([0.9, 0.8, 0.2, 0.1]), positive) == 0.0
    assert auprc(torch.tensor([0.1, 0.2, 0.8, 0.9]), positive) == 1.0
    assert auroc(torch.ones(4), positive) == 0.5  # every pair tied


def test_undefined_cases_are_nan_and_nan_scores_are_refused():
    assert math.isnan(auroc(torch.tensor([0.1, 0.2]), torch.tensor([1, 1])))
    assert math.isnan(auprc(torch.tensor([0.1, 0.2]), torch.tensor([0, 0])))
    with pytest.raises(ValueError, match="NaN"):
        auroc(torch.tensor([0.1, float("nan")]), torch.tensor([0, 1]))
