"""The engine: ``fit`` trains with any method, ``evaluate`` measures per group."""

from stalwart.engine.device import resolve_device
from stalwart.engine.evaluate import evaluate, predict_logits
from stalwart.engine.evaluators import Evaluator, GroupClassification, Ranking
from stalwart.engine.fit import FitResult, TrainingDiverged, fit
from stalwart.engine.method import Method

__all__ = [
    "Evaluator",
    "FitResult",
    "GroupClassification",
    "Method",
    "Ranking",
    "TrainingDiverged",
    "evaluate",
    "fit",
    "predict_logits",
    "resolve_device",
]
