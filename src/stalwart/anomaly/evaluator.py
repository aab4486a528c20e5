"""What a deep detector's training measures on validation data each epoch, and selects by.

AUROC and AUPRC of the anomaly score (anomalies positive), and DROCC-LF's criterion: the
recall of *normal* points at a 3% or 5% false-positive rate, where a false positive is an
anomaly (far or close negative) accepted as normal (microsoft/EdgeML ``drocclf_trainer.py``,
``cal_precision_recall``). Validation data, never the test set: the reference code selects its
epoch on the test set, which flatters every number it reports.
"""

from __future__ import annotations

from typing import Any

from stalwart.engine.evaluate import predict_logits
from stalwart.engine.evaluators import Evaluator
from stalwart.metrics.ranking import auprc, auroc, recall_at_fpr

RECALL_AT = {"recall_at_3pct_fpr": 0.03, "recall_at_5pct_fpr": 0.05}


class DetectorRanking(Evaluator):
    """AUROC, AUPRC and recall of normals at 3% and 5% FPR, from the network's normality."""

    selectable = {"auroc": "max", "auprc": "max", **dict.fromkeys(RECALL_AT, "max")}

    def __call__(self, model, dataset, *, reference=None, batch_size=1024, device=None,
                 precision="auto") -> dict[str, Any]:  # fmt: skip
        """The metrics over ``dataset`` (``y == 1``: anomaly)."""
        normality = predict_logits(
            model, dataset, batch_size=batch_size, device=device, precision=precision
        ).reshape(len(dataset))
        anomalous = dataset.y.cpu() == 1
        metrics: dict[str, Any] = {
            "auroc": auroc(-normality, anomalous),
            "auprc": auprc(-normality, anomalous),
        }
        both = 0 < int(anomalous.sum()) < len(anomalous)
        for key, fpr in RECALL_AT.items():
            metrics[key] = recall_at_fpr(normality, ~anomalous, fpr) if both else float("nan")
        metrics.update(n=len(dataset), anomalies=int(anomalous.sum()))
        return metrics

    def status(self, metrics: dict[str, Any]) -> str:
        """Validation AUROC."""
        return f"val auroc {metrics['auroc']:.3f}"
