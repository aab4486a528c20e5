"""The axes accuracies are compared on: probit, logit or linear (arXiv 2107.04649, Section 2).

Miller et al. fit out-of-distribution against in-distribution accuracy after a probit
transform, Φ⁻¹(acc): on that scale the relation is close to linear for many natural shifts,
where on the raw scale it bends near 0 and 1. The public code (linearfits_app's
``utils.rescale``, imagenet-testbed's ``transform_acc``) applies ``scipy.stats.norm.ppf``;
both leave accuracies of exactly 0 or 1 at ∓∞ and drop them from fits. Here they are clipped
to [ε, 1 − ε] with ``EPS`` (documented, so a perfect model stays in the fit at a finite, very
confident position) and the transform is inverted exactly with ``to_accuracy``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.special import expit, logit
from scipy.stats import norm

from stalwart.errors import ConfigError, closest

Scale = Literal["probit", "logit", "linear"]
SCALES: tuple[Scale, ...] = ("probit", "logit", "linear")
# Accuracies are clipped to [EPS, 1 − EPS] before probit or logit: Φ⁻¹(1e-4) ≈ −3.72, i.e. one
# error in ten thousand, about the resolution of a 10,000-example test set.
EPS = 1e-4


def check_scale(scale: str) -> Scale:
    """``scale`` itself, or a ConfigError listing the choices."""
    if scale not in SCALES:
        raise ConfigError(
            f"unknown scale {scale!r}{closest(scale, SCALES)}; choose from {list(SCALES)}"
        )
    return scale  # type: ignore[return-value]


def to_scale(accuracy: np.ndarray | float, scale: Scale = "probit") -> np.ndarray:
    """Accuracies in [0, 1] mapped to ``scale`` (0 and 1 clipped by ``EPS`` first)."""
    check_scale(scale)
    acc = np.asarray(accuracy, dtype=np.float64)
    if scale == "linear":
        return acc
    clipped = np.clip(acc, EPS, 1 - EPS)
    return norm.ppf(clipped) if scale == "probit" else logit(clipped)


def to_accuracy(value: np.ndarray | float, scale: Scale = "probit") -> np.ndarray:
    """The inverse of ``to_scale``: scaled values back to accuracies."""
    check_scale(scale)
    z = np.asarray(value, dtype=np.float64)
    if scale == "linear":
        return z
    return norm.cdf(z) if scale == "probit" else expit(z)
