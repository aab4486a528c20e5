"""Threshold-free ranking metrics for scores: AUROC and AUPRC (average precision).

A score ranks examples, higher meaning "more likely positive" (more anomalous, for a
detector). Ties are handled exactly as scikit-learn does: AUROC counts a tied positive–negative
pair as one half (the Mann–Whitney U statistic), and average precision steps once per distinct
score, ``AP = Σ_n (R_n − R_{n−1}) · P_n`` over thresholds from the highest score down, with no
interpolation. Computed here in float64 with torch so that ``stalwart.metrics`` stays light.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _checked(scores: Tensor, positive: Tensor) -> tuple[Tensor, Tensor]:
    scores = torch.as_tensor(scores).detach().flatten().double().cpu()
    positive = torch.as_tensor(positive).detach().flatten().bool().cpu()
    if len(scores) != len(positive):
        raise ValueError(f"{len(scores)} scores for {len(positive)} labels")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN; a ranking metric needs a score for every example")
    return scores, positive


def auroc(scores: Tensor, positive: Tensor) -> float:
    """Area under the ROC curve: P(score of a random positive > score of a random negative).

    Args:
        scores: one score per example, higher meaning more likely positive.
        positive: which examples are positive (bool, or 0/1).

    Returns:
        AUROC in [0, 1]; NaN when either class is absent (the curve is undefined).
    """
    scores, positive = _checked(scores, positive)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    # Average ranks of tied scores (ranks from 1), then the Mann–Whitney U of the positives.
    _, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    first_rank = torch.cumsum(counts, 0) - counts + 1
    average_rank = first_rank.double() + (counts.double() - 1) / 2
    rank_sum = average_rank[inverse][positive].sum().item()
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def auprc(scores: Tensor, positive: Tensor) -> float:
    """Average precision, the area under the precision–recall curve (scikit-learn's definition).

    Args:
        scores: one score per example, higher meaning more likely positive.
        positive: which examples are positive (bool, or 0/1).

    Returns:
        Average precision in [0, 1]; NaN when there is no positive example.
    """
    scores, positive = _checked(scores, positive)
    n_pos = int(positive.sum())
    if n_pos == 0:
        return math.nan
    order = torch.argsort(scores, descending=True, stable=True)
    scores, hits = scores[order], positive[order].double()
    # One threshold per distinct score: the last position of each run of equal scores.
    last_of_run = torch.ones(len(scores), dtype=torch.bool)
    last_of_run[:-1] = scores[1:] != scores[:-1]
    true_positives = torch.cumsum(hits, 0)[last_of_run]
    predicted = (torch.nonzero(last_of_run).flatten() + 1).double()
    precision = true_positives / predicted
    recall = true_positives / n_pos
    recall_steps = torch.diff(recall, prepend=torch.zeros(1, dtype=torch.float64))
    return float((recall_steps * precision).sum())
