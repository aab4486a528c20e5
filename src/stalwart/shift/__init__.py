"""Predicting accuracy under distribution shift: accuracy and agreement on the line.

Accuracy on the line is arXiv 2107.04649 (Miller et al.); agreement on the line is arXiv
2206.13089 (Baek et al.).

>>> from stalwart.shift import fit_line, predict
>>> line = fit_line(id_acc, ood_acc, scale="probit")   # slope, bias, r2, bootstrap band
>>> line.predict(0.91)                                  # OOD accuracy with an interval
>>> predict(Testbed("runs/testbed_mnist").pool("val", "digits"), "aline-d")  # no OOD labels

- ``scaling``: probit / logit / linear axes.
- ``outputs``: what a model leaves on an evaluation set for the label-free predictors.
- ``line``: the accuracy line, its bootstrap band, prediction interval, effective robustness.
- ``predictors``: the label-free predictors (naive, ATC, DoC, ALine-S, ALine-D) on a pool.
- ``table`` and ``fits``: accuracies from a CSV or a testbed folder, one line per shift.
- ``testbed_io``: a testbed folder read back; ``testbed`` trains one (needs torch and data);
  ``plot`` draws the lines (needs matplotlib).
"""

from stalwart.shift.fits import choose_ood_settings, fit_lines, read_accuracies
from stalwart.shift.line import Line, Prediction, cross_validated_predictions, fit_line
from stalwart.shift.outputs import Outputs
from stalwart.shift.predictors import (
    PREDICTORS,
    ModelPool,
    evaluate_predictors,
    predict,
    predictions_table,
)
from stalwart.shift.scaling import to_accuracy, to_scale
from stalwart.shift.table import AccuracyTable, read_accuracy_table


def __getattr__(name: str):
    # The testbed reader writes through stalwart.io, which loads torch (seconds): only on use.
    if name == "Testbed":
        from stalwart.shift.testbed_io import Testbed

        return Testbed
    raise AttributeError(f"module 'stalwart.shift' has no attribute {name!r}")


__all__ = [
    "PREDICTORS",
    "AccuracyTable",
    "Line",
    "ModelPool",
    "Outputs",
    "Prediction",
    "Testbed",
    "choose_ood_settings",
    "cross_validated_predictions",
    "evaluate_predictors",
    "fit_line",
    "fit_lines",
    "predict",
    "predictions_table",
    "read_accuracies",
    "read_accuracy_table",
    "to_accuracy",
    "to_scale",
]
