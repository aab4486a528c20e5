"""One-class detection: AUROC on held-out anomalies, fitted again from the cell's record.

Goyal et al., "DROCC: Deep Robust One-Class Classification" (ICML 2020, arXiv 2002.12718),
and the detectors beside it (``stalwart.anomaly``). A cell of a ``kind: anomaly`` run records
everything its fit depended on (dataset and seed, hence the split; the detector and its
parameters) and the figures it measured, not the fitted detector. The check fits the same
detector on the same split (``stalwart.anomaly.benchmark.fit_and_score``, the function the run
used), scores the test split (normals and anomalies the detector never saw) and reports:

- AUROC and AUPRC of the anomaly score (anomalies positive);
- precision, recall and F1 of the anomaly class at the run's threshold (the score a fraction
  ``threshold_fpr`` of the training normals exceed);
- with close negatives (DROCC-LF's setting), the recall of normals at 3% and 5% FPR;
- the ROC curve and the two score distributions;
- whether the figures match the record: a different AUROC means the fit is not reproducible
  here (another machine, library version or data).

A deep detector's fit takes the longest; one that outruns the budget gives a partial section
saying so (give the check more with ``--budget``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stalwart.audit.catalog import register_check
from stalwart.audit.context import CheckContext
from stalwart.audit.target import AuditedRun
from stalwart.report.html import Plot, Section
from stalwart.report.tables import ResultTable

TOLERANCE = 1e-6
"""Largest difference from the record read as the same figure."""
ROWS = {
    "auroc": "AUROC",
    "auprc": "AUPRC",
    "precision": "anomaly precision at the threshold",
    "recall": "anomaly recall at the threshold",
    "f1": "anomaly F1 at the threshold",
    "recall_at_3pct_fpr": "recall of normals at 3% FPR",
    "recall_at_5pct_fpr": "recall of normals at 5% FPR",
}
"""The figures compared with the record, as the table names them."""


@register_check(
    "one_class", "One-class detection (AUROC on held-out anomalies)", order=70,
    applies_to=("one_class",),
)  # fmt: skip
def one_class(run: AuditedRun, context: CheckContext) -> Section:
    """Fit the cell's detector again, and measure it on the held-out normals and anomalies."""
    from stalwart.anomaly.benchmark import fit_and_score, measure

    section = context.section
    cell, data, record = run.config, run.splits, run.record
    anomalous = data.test_y == 1
    section.figure("held-out anomalies", int(anomalous.sum()))
    section.figure("held-out normals", int((~anomalous).sum()))
    context.check_time(f"fitting {cell.detector} on {len(data.train_x)} training examples")
    scored = fit_and_score(cell, data)
    found = measure(cell, data, scored)
    section.figure("AUROC", round(found["auroc"], 4), better="higher")
    section.figure("AUPRC", round(found["auprc"], 4), better="higher")
    section.figure("anomaly F1", round(found["f1"], 4), better="higher")
    for key in ("recall_at_3pct_fpr", "recall_at_5pct_fpr"):
        if key in found:
            section.figure(ROWS[key], found[key], "%", "higher")
    section.figure("fit seconds", round(scored.fit_seconds, 2), better="lower")

    table = ResultTable(["", "this audit", "the run's record"],
                        title=f"{run.label}: {len(data.test_y)} test examples")  # fmt: skip
    for key, name in ROWS.items():
        if key in found:
            table.add(name, f"{found[key]:.4f}", _recorded(record, key), bold=key == "auroc")
    section.tables.append(table)
    context.check_time("drawing the ROC curve")
    section.plots.append(
        Plot(_roc_png(scored.test_scores, anomalous, found["threshold"], run.label),
             "ROC curve on the test split, and the anomaly scores of its normals and anomalies "
             "(dashed: the threshold).")
    )  # fmt: skip
    section.command = f"stalwart audit {run.quoted} --checks one_class"
    params = ", ".join(f"{k}={v}" for k, v in cell.params.items()) or "defaults"
    section.notes.append(
        f"{cell.detector} ({params}) on {cell.dataset}, seed {cell.seed}: fitted again from "
        f"the cell's record on its {len(data.train_x)} training examples; threshold: the score "
        f"{100 * cell.threshold_fpr:g}% of the training normals exceed."
    )
    section.notes += [f"Warning while fitting: {w}" for w in scored.warnings]
    section.notes.append(_against_record(record, found))
    return section


def _recorded(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    return "-" if value is None else f"{float(value):.4f}"


def _against_record(record: dict[str, Any], found: dict[str, Any]) -> str:
    """Whether the fit reproduced the figures the run recorded, and which ones it did not."""
    shared = [key for key in ROWS if key in found and record.get(key) is not None]
    if not shared:
        return "The cell's record holds no figures to compare with."
    differ = [key for key in shared if abs(float(record[key]) - found[key]) > TOLERANCE]
    if not differ:
        return "The figures match the cell's record: the fit is reproducible here."
    listed = "; ".join(
        f"{ROWS[key]} {float(record[key]):.4f} there, {found[key]:.4f} here" for key in differ
    )
    if "auroc" not in differ:
        return (
            f"The fit reproduces the record's AUROC, but the record differs in: {listed}. The "
            "same scores give other figures there: the record was written by another version "
            "of the metrics (run the experiment again to rewrite it)."
        )
    return (
        f"The record differs from this fit in: {listed}. The fit does not reproduce here "
        "(another machine, library version or data; a deep detector's training also depends "
        "on the CPU's floating-point order)."
    )


def _roc_png(scores: np.ndarray, anomalous: np.ndarray, threshold: float, label: str) -> bytes:
    """Two panels: the ROC curve, and histograms of the normals' and anomalies' scores."""
    from sklearn.metrics import roc_curve

    from stalwart.report.plots import figure_png, pyplot

    plt = pyplot()
    figure, (roc, spread) = plt.subplots(1, 2, figsize=(8.0, 3.2))
    if anomalous.any() and (~anomalous).any():
        false_positive, true_positive, _ = roc_curve(anomalous, scores)
        roc.plot(false_positive, true_positive, color="#2a7")
    roc.plot([0, 1], [0, 1], color="#bbb", linestyle=":")
    roc.set(xlabel="false-positive rate (normals flagged)",
            ylabel="true-positive rate (anomalies found)", title=f"{label}: ROC")  # fmt: skip
    bins = np.histogram_bin_edges(scores, bins=30)
    spread.hist(scores[~anomalous], bins=bins, alpha=0.6, color="#47a", label="normal")
    spread.hist(scores[anomalous], bins=bins, alpha=0.6, color="#c44", label="anomaly")
    spread.axvline(threshold, color="black", linestyle="--", linewidth=1)
    spread.set(xlabel="anomaly score", ylabel="test examples", title="scores")
    spread.legend(fontsize=8)
    for axis in (roc, spread):
        axis.title.set_fontsize(10)
    figure.tight_layout()
    return figure_png(figure)
