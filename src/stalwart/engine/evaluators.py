"""Evaluators: what ``fit`` measures on validation data each epoch, and selects the epoch by.

An evaluator maps ``(model, dataset)`` to a mapping of named metrics (JSON-ready values); it
declares which of them ``select`` may name and whether higher or lower is better. Per-group
classification accuracy is the default; a detector selects on AUROC, a regression on its error,
a text model on certified accuracy, each by passing its own evaluator to ``fit``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Literal

import torch
from torch import Tensor, nn

from stalwart.data.core import GroupedDataset
from stalwart.engine.evaluate import evaluate, predict_logits
from stalwart.errors import ConfigError, closest
from stalwart.metrics.ranking import auprc, auroc

Direction = Literal["max", "min"]
# Selecting "last" keeps the final epoch, whatever the evaluator measures.
LAST = "last"


class Evaluator(ABC):
    """Measures a model on a dataset; ``fit`` selects its epoch by one of the measured keys.

    Attributes:
        selectable: the keys ``select`` may name, each with the direction that is better.
    """

    selectable: Mapping[str, Direction] = {}

    @abstractmethod
    def __call__(
        self,
        model: nn.Module,
        dataset: GroupedDataset,
        *,
        reference: GroupedDataset | None = None,
        batch_size: int = 1024,
        device: torch.device | None = None,
        precision: str = "auto",
    ) -> dict[str, Any]:
        """The metrics of ``model`` on ``dataset`` (``reference``: the training set)."""

    def check_select(self, select: str) -> None:
        """Raise ``ConfigError`` unless ``select`` is one of this evaluator's keys or ``last``."""
        if select != LAST and select not in self.selectable:
            choices = [*self.selectable, LAST]
            raise ConfigError(
                f"select {select!r}{closest(select, choices)} is not measured by "
                f"{type(self).__name__}; choose from {choices}"
            )

    def score(self, metrics: Mapping[str, Any], select: str) -> float:
        """The selection score of one epoch's metrics: higher is better (``min`` keys negated)."""
        value = metrics[select]
        if value is None or value != value:
            return -float("inf")  # an undefined metric never wins the selection
        return float(value) if self.selectable[select] == "max" else -float(value)

    def status(self, metrics: Mapping[str, Any]) -> str:
        """A short text for the progress bar."""
        return "  ".join(
            f"val {key} {metrics[key]:.3f}" for key in self.selectable if _is_number(metrics[key])
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and value == value


class GroupClassification(Evaluator):
    """Average, per-group and worst-group accuracy and the cross-entropy (the default)."""

    selectable = {
        "worst_group_accuracy": "max",
        "accuracy": "max",
        "weighted_accuracy": "max",
        "loss": "min",
    }

    def __call__(self, model, dataset, *, reference=None, batch_size=1024, device=None,
                 precision="auto") -> dict[str, Any]:  # fmt: skip
        """``GroupMetrics`` of ``model`` on ``dataset``, as a dict."""
        return evaluate(
            model, dataset, weights_from=reference, batch_size=batch_size, device=device,
            precision=precision,
        ).as_dict()  # fmt: skip

    def status(self, metrics: Mapping[str, Any]) -> str:
        """Validation accuracy and worst-group accuracy."""
        return f"val acc {metrics['accuracy']:.3f}  worst {metrics['worst_group_accuracy']:.3f}"


def anomaly_score_from_logits(logits: Tensor) -> Tensor:
    """The anomaly score of a one-logit detector: minus its "normal" logit."""
    return -logits[:, 0] if logits.dim() == 2 else -logits


class Ranking(Evaluator):
    """AUROC and AUPRC of a score computed from the model's outputs.

    Args:
        positive_label: the label of positive examples (anomalies, for a detector).
        score: maps a batch of model outputs to one score per example, higher meaning more
            likely positive; default: the outputs' logit of class ``positive_label`` when there
            are several, else minus the single output (a detector's "normal" logit).
    """

    selectable = {"auroc": "max", "auprc": "max"}

    def __init__(
        self, positive_label: int = 1, score: Callable[[Tensor], Tensor] | None = None
    ) -> None:
        self.positive_label = positive_label
        self._score = score

    def __call__(self, model, dataset, *, reference=None, batch_size=1024, device=None,
                 precision="auto") -> dict[str, Any]:  # fmt: skip
        """AUROC and AUPRC of the score over ``dataset``, positives ``y == positive_label``."""
        outputs = predict_logits(
            model, dataset, batch_size=batch_size, device=device, precision=precision
        )
        scores = self.scores(outputs)
        positive = dataset.y.cpu() == self.positive_label
        return {"auroc": auroc(scores, positive), "auprc": auprc(scores, positive),
                "n": len(dataset), "positives": int(positive.sum())}  # fmt: skip

    def scores(self, outputs: Tensor) -> Tensor:
        """One score per example from the model's outputs."""
        if self._score is not None:
            return self._score(outputs)
        if outputs.dim() == 2 and outputs.shape[1] > 1:
            return outputs[:, self.positive_label]
        return anomaly_score_from_logits(outputs)
