"""Writing a linear classifier fitted outside PyTorch (scikit-learn's) into a model's head.

Last-layer methods fit a logistic regression on a model's penultimate features (DFR on
validation features, the overparameterization study on random features) and must end with an
ordinary model: this module is the one place that turns such a fit into ``head`` weights.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from stalwart.errors import ConfigError


def write_linear_head(
    head: nn.Linear,
    coef: np.ndarray,
    intercept: np.ndarray | float,
    classes: np.ndarray,
    *,
    mean: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> None:
    """Set ``head`` to a (multinomial or binary) linear classifier, in raw feature units.

    Args:
        head: the model's last layer, ``nn.Linear(n_features, n_classes)``.
        coef: the classifier's weights, ``(n_rows, n_features)``: one row per class, or a
            single row for a binary classifier (scikit-learn's ``coef_``).
        intercept: its biases (``intercept_``), one per row, or 0.
        classes: the class of each row (``classes_``); a binary classifier's one score is the
            logit of ``classes[1]`` against a logit of 0 for ``classes[0]``, which gives the same
            predictions and probabilities.
        mean: if the classifier was fitted on standardised features ``(f − μ)/σ``, their μ ...
        scale: ... and σ: the head gets ``W/σ`` and ``b − W·μ/σ``, so it reads raw features.

    Raises:
        ConfigError: a non-zero intercept for a head without a bias.
    """
    coef = np.atleast_2d(np.asarray(coef, dtype=np.float64))
    intercept = np.broadcast_to(np.asarray(intercept, dtype=np.float64), (len(coef),))
    if scale is not None:
        coef = coef / scale
    if mean is not None:
        intercept = intercept - coef @ mean
    weight = torch.zeros_like(head.weight, dtype=torch.float64)
    offset = torch.zeros(head.out_features, dtype=torch.float64)
    rows = [int(classes[1])] if len(classes) == 2 else [int(c) for c in classes]
    if len(rows) != len(coef):
        raise ValueError(f"{len(coef)} coefficient rows for classes {list(classes)}")
    for row, w, b in zip(rows, coef, intercept, strict=True):
        weight[row], offset[row] = torch.from_numpy(np.ascontiguousarray(w)), float(b)
    with torch.no_grad():
        head.weight.copy_(weight.to(head.weight.dtype))
        if head.bias is not None:
            head.bias.copy_(offset.to(head.bias.dtype))
        elif bool(offset.any()):
            raise ConfigError("this classifier has an intercept but the model's head has no bias")
