"""Detectors × datasets × seeds: one cell fits a detector on one split and scores the test set.

A cell trains on the split's training data (normals, plus labelled negatives in the
limited-negatives setting), selects on its validation data (``eval_set``: the deep detectors
choose their epoch there; the others ignore it) and is measured on the test data only:

- AUROC and AUPRC of the anomaly score, anomalies positive;
- anomaly-class precision, recall and F1 at a stated threshold: the score exceeded by a
  fraction ``threshold_fpr`` of the *training normals* (so about that false-positive rate),
  the same rule for every detector, ours and PyOD's;
- where the split has close negatives: the recall of normal points at 3% and 5% FPR over all
  negatives (DROCC-LF's criterion), and the same over close negatives alone;
- seconds to fit and to score.

``summarize`` gives mean ± std over seeds and the average rank of each detector across
datasets (rank 1 = highest mean AUROC on a dataset; ties share the mean rank).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from stalwart.anomaly.catalog import build_detector
from stalwart.data.one_class import OneClassData
from stalwart.errors import ConfigError
from stalwart.metrics.ranking import auprc, auroc, f1_at_threshold, recall_at_fpr
from stalwart.report.stats import mean_std

FPRS = {"recall_at_3pct_fpr": 0.03, "recall_at_5pct_fpr": 0.05}


@dataclass(frozen=True)
class Cell:
    """One fit: a detector (with its parameters) on one dataset's split of one seed.

    ``detector`` is a registered name, or a label whose ``params`` name the registered
    detector under ``detector:`` (two settings of one detector side by side).
    """

    dataset: str
    detector: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict)
    threshold_fpr: float = 0.05


@dataclass
class Scored:
    """A cell's fitted detector and its anomaly scores (higher = more anomalous).

    Attributes:
        detector: the fitted detector.
        test_scores: the scores of the test split, in its order.
        train_scores: the scores of the training normals.
        fit_seconds: seconds ``fit`` took.
        score_seconds: seconds scoring the test split took.
        warnings: the first line of each distinct warning fitting and scoring raised.
    """

    detector: Any
    test_scores: np.ndarray
    train_scores: np.ndarray
    fit_seconds: float
    score_seconds: float
    warnings: list[str]


def fit_and_score(cell: Cell, data: OneClassData) -> Scored:
    """Fit ``cell.detector`` on ``data`` (seeded by ``cell.seed``) and score its test split."""
    import torch

    name, params = resolve(cell.detector, cell.params)
    detector = build_detector(
        name, seed=cell.seed, n_features=int(np.prod(data.train_x.shape[1:])), **params
    )
    flat = name.startswith("pyod_")  # PyOD takes 2-D arrays only
    shape = (lambda x: x.reshape(len(x), -1)) if flat else (lambda x: x)
    torch.manual_seed(cell.seed)  # PyOD's deep models draw from torch's global generator
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = time.perf_counter()
        if flat:
            detector.fit(shape(data.train_x[_normal(data)]))
        else:
            detector.fit(data.train_x, data.train_y, eval_set=(data.val_x, data.val_y))
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        test_scores = np.asarray(detector.decision_function(shape(data.test_x)), np.float64)
        score_seconds = time.perf_counter() - started
        train_scores = np.asarray(
            detector.decision_function(shape(data.train_x[_normal(data)])), np.float64
        )
    return Scored(detector, test_scores, train_scores, fit_seconds, score_seconds,
                  sorted({str(w.message).split(";")[0] for w in caught})[:3])  # fmt: skip


def evaluate_cell(cell: Cell, data: OneClassData) -> dict[str, Any]:
    """Fit ``cell.detector`` on ``data`` and measure it on ``data``'s test split."""
    return measure(cell, data, fit_and_score(cell, data))


def measure(cell: Cell, data: OneClassData, scored: Scored) -> dict[str, Any]:
    """The cell's record: its settings and the test figures of its scores."""
    test_scores = scored.test_scores
    threshold = float(np.quantile(scored.train_scores, 1.0 - cell.threshold_fpr))
    anomalous = data.test_y == 1
    found: dict[str, Any] = {
        **asdict(cell),
        "auroc": auroc(_tensor(test_scores), _tensor(anomalous)),
        "auprc": auprc(_tensor(test_scores), _tensor(anomalous)),
        **f1_at_threshold(_tensor(test_scores), _tensor(anomalous), threshold),
        "threshold": threshold,
        "constant_scores": bool(np.ptp(test_scores) == 0),
        "fit_seconds": round(scored.fit_seconds, 3),
        "score_seconds": round(scored.score_seconds, 3),
        "warnings": scored.warnings,
        "best_epoch": getattr(scored.detector, "best_epoch_", None),
    }
    if data.test_close is not None:
        normal = _tensor(~anomalous)
        close = data.test_close | ~anomalous  # normals and close negatives only
        for key, fpr in FPRS.items():
            found[key] = recall_at_fpr(_tensor(-test_scores), normal, fpr)
            found[f"close_{key}"] = recall_at_fpr(
                _tensor(-test_scores[close]), _tensor(~anomalous[close]), fpr
            )
    return found


def resolve(label: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The registered detector behind a config entry, and its parameters."""
    params = dict(params)
    return params.pop("detector", label), params


def _normal(data: OneClassData) -> np.ndarray:
    return np.ones(len(data.train_x), bool) if data.train_y is None else data.train_y == 0


def _tensor(values: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(values))


# --- summaries ---

METRICS = ("auroc", "auprc", "f1", "fit_seconds", *FPRS, *(f"close_{k}" for k in FPRS))


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeds per (dataset, detector), and average ranks by mean AUROC.

    Returns:
        ``{"cells": {dataset: {detector: {metric: {mean, std, n}}}}, "ranks": {detector:
        average rank}, "datasets": [...], "detectors": [...]}``.
    """
    from scipy.stats import rankdata

    datasets = list(dict.fromkeys(r["dataset"] for r in records))
    detectors = list(dict.fromkeys(r["detector"] for r in records))
    cells: dict[str, dict[str, Any]] = {d: {} for d in datasets}
    for dataset in datasets:
        for detector in detectors:
            rows = [r for r in records if r["dataset"] == dataset and r["detector"] == detector]
            if rows:
                cells[dataset][detector] = {
                    metric: _mean_std([r[metric] for r in rows if metric in r])
                    for metric in METRICS if any(metric in r for r in rows)
                }  # fmt: skip
    ranks: dict[str, list[float]] = {d: [] for d in detectors}
    for dataset in datasets:
        present = [d for d in detectors if d in cells[dataset]]
        if len(present) != len(detectors):
            continue  # rank only datasets every detector finished
        means = [cells[dataset][d]["auroc"]["mean"] for d in present]
        if any(math.isnan(m) for m in means):
            continue
        for detector, rank in zip(present, rankdata([-m for m in means]), strict=True):
            ranks[detector].append(float(rank))
    return {
        "datasets": datasets,
        "detectors": detectors,
        "cells": cells,
        "ranks": {d: (float(np.mean(r)) if r else math.nan) for d, r in ranks.items()},
        "ranked_datasets": min((len(r) for r in ranks.values()), default=0),
    }


def _mean_std(values: list[float]) -> dict[str, float]:
    """Mean ± std of the defined values (an AUROC is undefined without both classes)."""
    clean = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not clean:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {**mean_std(clean), "n": len(clean)}


def check_detectors(detectors: dict[str, dict[str, Any]]) -> None:
    """Build every detector once (unfitted), so that a wrong name or parameter fails first."""
    for label, entry in detectors.items():
        name, params = resolve(label, entry)
        try:
            build_detector(name, seed=0, n_features=2, **params)
        except ConfigError as error:
            raise ConfigError(f"detectors.{label}: {error}") from None
