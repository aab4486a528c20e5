"""The engine: ``fit`` trains with any method, ``evaluate`` measures per group."""

from stalwart.engine.device import resolve_device
from stalwart.engine.evaluate import evaluate, predict_logits
from stalwart.engine.fit import FitResult, TrainingDiverged, fit

__all__ = ["FitResult", "TrainingDiverged", "evaluate", "fit", "predict_logits", "resolve_device"]
