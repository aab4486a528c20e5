"""Ranking metrics for scores: AUROC, AUPRC, and recall, precision and F1 at a threshold.

A score ranks examples, higher meaning "more likely positive" (more anomalous, for a
detector). Ties are handled exactly as scikit-learn does: AUROC counts a tied positive–negative
pair as one half (the Mann–Whitney U statistic), and average precision steps once per distinct
score, ``AP = Σ_n (R_n − R_{n−1}) · P_n`` over thresholds from the highest score down, with no
interpolation. Computed here in float64 with torch so that ``stalwart.metrics`` stays light.

The thresholded metrics predict "positive" for a score strictly above the threshold, as PyOD's
``labels_`` do. ``threshold_at_fpr`` picks the threshold on the negatives' scores (the low-FPR
operating point of DROCC-LF, arXiv 2002.12718) and ``threshold_at_contamination`` on reference
scores (PyOD's ``contamination``).
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor

from stalwart.errors import ConfigError


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


def _fraction(value: float, name: str, *, closed_at_one: bool, hint: str) -> float:
    """``value`` as a float in [0, 1] (or [0, 1)), else a ConfigError that says what to pass."""
    upper = "1]" if closed_at_one else "1)"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{name} must be a number in [0, {upper}; got {value!r} ({hint})")
    value = float(value)
    if not (0.0 <= value <= 1.0) or (value == 1.0 and not closed_at_one):
        percent = f"; for {value:g}% pass {value / 100:g}" if 1 < value <= 100 else ""
        raise ConfigError(f"{name} must lie in [0, {upper}; got {value!r} ({hint}{percent})")
    return value


def _real_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise ConfigError(f"threshold must be a number; got {threshold!r}")
    if math.isnan(threshold):
        raise ConfigError("threshold is NaN; every comparison with it is false, so pass a number")
    return float(threshold)


def threshold_at_fpr(scores: Tensor, positive: Tensor, fpr: float) -> float:
    """The lowest threshold that at most a fraction ``fpr`` of the negatives' scores exceed.

    With ``n`` negatives, ``k`` is the largest whole number with ``k / n ≤ fpr``, and the
    threshold is the (k+1)-th highest negative score: at most ``k`` negatives score strictly
    above it, ties included (a tie at the threshold counts as "not above", so tied negatives
    never push the false-positive rate past ``fpr``), and any lower threshold lets more than
    ``k`` through. It is therefore the operating point of highest recall whose FPR is at most
    ``fpr``, the rule "predict positive when score > threshold" being used throughout.

    Args:
        scores: one score per example, higher meaning more likely positive.
        positive: which examples are positive (bool, or 0/1); only the negatives' scores set
            the threshold.
        fpr: the largest false-positive rate allowed, in [0, 1); 0 gives the highest negative
            score.

    Returns:
        The threshold, one of the negatives' scores.

    Raises:
        ConfigError: ``fpr`` is not a number in [0, 1).
        ValueError: there is no negative example, or the scores are malformed.
    """
    fpr = _fraction(fpr, "fpr", closed_at_one=False, hint="a fraction of negatives, 0.03 for 3%")
    scores, positive = _checked(scores, positive)
    negatives = scores[~positive]
    n_neg = len(negatives)
    if n_neg == 0:
        raise ValueError(
            "threshold_at_fpr needs at least one negative example (positive == 0): the "
            "false-positive rate is measured on the negatives"
        )
    # The largest k with k / n_neg <= fpr, decided in floating point as the caller would check
    # it: 0.29 · 100 is 28.999999999999996, yet 29 / 100 == 0.29, so 29 negatives are allowed.
    allowed = min(math.floor(fpr * n_neg), n_neg - 1)
    while allowed + 1 < n_neg and (allowed + 1) / n_neg <= fpr:
        allowed += 1
    while allowed > 0 and allowed / n_neg > fpr:
        allowed -= 1
    return float(torch.sort(negatives, descending=True).values[allowed])


def recall_at_fpr(scores: Tensor, positive: Tensor, fpr: float) -> float:
    """Recall of the positives at the threshold of :func:`threshold_at_fpr`.

    The fraction of positives scoring strictly above the threshold, which is the highest recall
    whose false-positive rate is at most ``fpr`` (scikit-learn's ``roc_curve``: the largest
    ``tpr`` with ``fpr_curve <= fpr``).

    DROCC-LF (Goyal et al., "DROCC: Deep Robust One-Class Classification", ICML 2020,
    arXiv 2002.12718, Section 5.3) reports "recall at 3% (5%) FPR" with the **normal** class as
    the positive one: in microsoft/EdgeML (``drocclf_trainer.py``, ``cal_precision_recall``)
    the threshold is the ``(1 − fpr)`` quantile of all negatives' scores, far and close
    negatives pooled, and recall is the fraction of normal points scoring above it. So pass
    normality scores (higher = more normal, e.g. DROCC's logit, or minus an anomaly score)
    with ``positive`` marking the normal points. EdgeML takes the negative at index
    ``int((1 − fpr)·n)`` of the ascending sort; that is this threshold except when ``fpr·n`` is
    a whole number, where EdgeML's sits one negative higher (it lets ``fpr·n − 1`` negatives
    through, and fails at ``fpr = 0``), so its recall can be slightly lower.

    Args:
        scores: one score per example, higher meaning more likely positive.
        positive: which examples are positive (bool, or 0/1).
        fpr: the largest false-positive rate allowed, in [0, 1).

    Returns:
        Recall in [0, 1]; NaN when there is no positive example.

    Raises:
        ConfigError: ``fpr`` is not a number in [0, 1).
        ValueError: there is no negative example, or the scores are malformed.
    """
    threshold = threshold_at_fpr(scores, positive, fpr)
    scores, positive = _checked(scores, positive)
    n_pos = int(positive.sum())
    if n_pos == 0:
        return math.nan
    return int((scores[positive] > threshold).sum()) / n_pos


def f1_at_threshold(scores: Tensor, positive: Tensor, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of the positive class, predicting positive for score > threshold.

    As scikit-learn's ``precision_recall_fscore_support(..., average="binary",
    zero_division=0)``: a ratio whose denominator is zero (no predicted positive, or no
    positive example) is 0.0, and ``F1 = 2·TP / (2·TP + FP + FN)``.

    For an anomaly detector pass anomaly scores with ``positive`` marking the anomalies to get
    the anomaly-class F1. DROCC's tabular "F1" (arXiv 2002.12718; microsoft/EdgeML
    ``main_tabular.py``) is another number: the **normal** class's F1, thresholded at the 20th
    percentile of the scores, on a test set of all anomalies plus as many normals; it is not
    comparable with an anomaly-class F1.

    Args:
        scores: one score per example, higher meaning more likely positive.
        positive: which examples are positive (bool, or 0/1).
        threshold: examples scoring strictly above it are predicted positive.

    Returns:
        ``{"precision": ..., "recall": ..., "f1": ...}``, each in [0, 1].

    Raises:
        ConfigError: ``threshold`` is NaN or not a number.
        ValueError: the scores are malformed.
    """
    threshold = _real_threshold(threshold)
    scores, positive = _checked(scores, positive)
    predicted = scores > threshold
    true_pos = int((predicted & positive).sum())
    false_pos = int((predicted & ~positive).sum())
    false_neg = int((~predicted & positive).sum())

    def ratio(numerator: int, denominator: int) -> float:
        return numerator / denominator if denominator else 0.0

    return {
        "precision": ratio(true_pos, true_pos + false_pos),
        "recall": ratio(true_pos, true_pos + false_neg),
        "f1": ratio(2 * true_pos, 2 * true_pos + false_pos + false_neg),
    }


def threshold_at_contamination(scores: Tensor, contamination: float) -> float:
    """The ``(1 − contamination)`` quantile of ``scores``: PyOD's ``threshold_``.

    PyOD sets ``threshold_ = numpy.percentile(decision_scores_, 100 · (1 − contamination))``
    on the training scores (``pyod/models/base.py``, ``_process_decision_scores``) and labels
    as outliers the scores strictly above it, so that about a fraction ``contamination`` of the
    reference scores lie above it. This computes the same number, with numpy's default linear
    interpolation between order statistics, so that ``scores > threshold`` reproduces PyOD's
    ``labels_``.

    Args:
        scores: reference scores (e.g. anomaly scores of training or validation data), higher
            meaning more anomalous.
        contamination: the expected fraction of anomalies, in [0, 1] (PyOD's detectors accept
            (0, 0.5]).

    Returns:
        The threshold.

    Raises:
        ConfigError: ``contamination`` is not a number in [0, 1].
        ValueError: there are no scores, or some are NaN.
    """
    contamination = _fraction(
        contamination, "contamination", closed_at_one=True, hint="the expected anomaly fraction"
    )
    scores = torch.as_tensor(scores).detach().flatten().double().cpu()
    if len(scores) == 0:
        raise ValueError("threshold_at_contamination needs at least one score")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN; a quantile needs a score for every example")
    ordered = torch.sort(scores).values
    # numpy.percentile's "linear" method, step by step, so that the result matches it exactly.
    quantile = 100 * (1 - contamination) / 100
    position = (len(ordered) - 1) * quantile
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    weight = position - below
    low, high = float(ordered[below]), float(ordered[above])
    if weight >= 0.5:
        return high - (high - low) * (1 - weight)
    return low + (high - low) * weight
