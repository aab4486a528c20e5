"""The Gaussian data model behind accuracy on the line (Miller et al., arXiv 2107.04649).

Binary labels y ∈ {−1, +1} (stored as classes 0 and 1, one group per class) with
``x | y ~ N(y·μ, Σ)`` in distribution and ``x | y ~ N(y·μ', Σ')`` out of distribution. The
shift scales the mean and the covariance: ``μ' = mean_scale·μ`` and
``Σ' = covariance_scale²·Σ``. For a linear classifier through the origin, ``sign(θᵀx)``,

    acc(θ; μ, Σ) = Φ(θᵀμ / √(θᵀΣθ)),

so Φ⁻¹(acc_OOD) = (mean_scale / covariance_scale) · Φ⁻¹(acc_ID) for every θ: all linear
classifiers lie exactly on a probit line with slope ``mean_scale / covariance_scale`` and bias
0. This is the paper's candidate theory: a covariance change makes OOD accuracy a linear
function of ID accuracy in probit space.

The bias is 0 necessarily, not by our choice: if Φ⁻¹(acc_OOD) = a·Φ⁻¹(acc_ID) + b held for
every θ, then flipping θ to −θ negates both probits, giving −t' = −a·t + b as well as
t' = a·t + b, so b = 0. A nonzero bias, as measured on real shifts, cannot come from this model
with classifiers through the origin. Shifts that are not scalings of (μ, Σ) (e.g. a different
shape of Σ') give a band of points around a line rather than a line; this source implements
only the exact case.

μ and Σ are fixed by the parameters (never by ``seed``, which only draws the samples), so every
model of a testbed sees the same two distributions: ``μ = separation·1/√dim`` and
``Σ = diag(λ)`` with ``λ_i ∝ (i + 1)^−spectrum_decay`` normalised to mean 1. A decaying spectrum
makes directions differ in how well they separate the classes, so different classifiers reach
different accuracies. Bayes-optimal ID accuracy is ``Φ(√(μᵀΣ⁻¹μ))``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.stats import norm

from stalwart.data.catalog import SOURCES, register_source
from stalwart.data.core import GroupedDataset, Splits
from stalwart.errors import ConfigError, closest

SOURCE = "gaussian_shift"
CLASS_NAMES = ["y=-1", "y=+1"]


def distributions(
    *,
    dim: int = 20,
    separation: float = 1.0,
    spectrum_decay: float = 1.0,
    mean_scale: float = 0.8,
    covariance_scale: float = 1.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(μ, Σ, μ', Σ')`` of the ID and OOD distributions (see the module docstring)."""
    if dim < 1:
        raise ConfigError(f"dim must be at least 1; got {dim}")
    if separation <= 0 or mean_scale <= 0 or covariance_scale <= 0 or spectrum_decay < 0:
        raise ConfigError(
            "separation, mean_scale and covariance_scale must be positive and spectrum_decay "
            f">= 0; got {separation}, {mean_scale}, {covariance_scale}, {spectrum_decay}"
        )
    mu = np.full(dim, separation / np.sqrt(dim))
    spectrum = (np.arange(dim) + 1.0) ** -spectrum_decay
    sigma = np.diag(spectrum / spectrum.mean())
    return mu, sigma, mean_scale * mu, covariance_scale**2 * sigma


def closed_form_line(**params: Any) -> tuple[float, float]:
    """``(slope, bias)`` of Φ⁻¹(acc_OOD) = slope·Φ⁻¹(acc_ID) + bias for the source's parameters.

    Takes the ``gaussian_shift`` source's parameters (unknown ones are refused); slope is
    ``mean_scale / covariance_scale`` and bias is exactly 0 (see the module docstring).
    """
    allowed = SOURCES.parameters(SOURCE)
    for key in params:
        if key not in allowed:
            raise ConfigError(
                f"dataset {SOURCE!r} has no parameter {key!r}{closest(key, allowed)}; "
                f"its parameters are {sorted(allowed)}"
            )
    mean_scale = params.get("mean_scale", allowed["mean_scale"].default)
    covariance_scale = params.get("covariance_scale", allowed["covariance_scale"].default)
    if mean_scale <= 0 or covariance_scale <= 0:
        raise ConfigError("mean_scale and covariance_scale must be positive")
    return float(mean_scale / covariance_scale), 0.0


def linear_accuracy(theta: np.ndarray, mu: np.ndarray, sigma: np.ndarray) -> np.ndarray | float:
    """Accuracy of ``sign(θᵀx)`` when ``x | y ~ N(y·μ, Σ)``: Φ(θᵀμ / √(θᵀΣθ)).

    ``theta`` is one classifier ``(d,)`` (returns a float) or a stack ``(k, d)`` (returns
    ``(k,)``). Exact for either class prior: both classes have this accuracy by symmetry.
    """
    theta = np.asarray(theta, dtype=np.float64)
    margin = theta @ mu
    spread = np.sqrt(np.einsum("...i,ij,...j->...", theta, sigma, theta))
    accuracy = norm.cdf(margin / spread)
    return float(accuracy) if np.ndim(accuracy) == 0 else accuracy


def _sample(
    n: int, mu: np.ndarray, sigma: np.ndarray, rng: np.random.Generator, name: str
) -> GroupedDataset:
    # Exactly balanced classes in random order: sample accuracy is then an average of two
    # binomials with the same success probability, the analytic accuracy.
    label = rng.permutation(np.arange(n) % 2)
    sign = 2.0 * label - 1.0
    # Σ is diagonal: scale standard normals per coordinate.
    noise = rng.standard_normal((n, len(mu))) * np.sqrt(np.diag(sigma))
    x = sign[:, None] * mu[None, :] + noise
    y = torch.from_numpy(label.astype(np.int64))
    return GroupedDataset(
        torch.from_numpy(x.astype(np.float32)), y, y, n_classes=2, group_names=CLASS_NAMES,
        class_names=CLASS_NAMES, name=f"{SOURCE}/{name}",
    )  # fmt: skip


@register_source(SOURCE)
def gaussian_shift(
    *,
    dim: int = 20,
    separation: float = 1.0,
    spectrum_decay: float = 1.0,
    mean_scale: float = 0.8,
    covariance_scale: float = 1.5,
    n: int = 2000,
    n_val: int = 1000,
    n_test: int = 5000,
    n_ood: int = 5000,
    seed: int = 0,
) -> Splits:
    """Gaussian classes with a scaled mean and covariance out of distribution (arXiv 2107.04649).

    train/val/test come from ``N(y·μ, Σ)``; ``Splits.extra["ood"]`` from
    ``N(y·mean_scale·μ, covariance_scale²·Σ)``. See :func:`closed_form_line`.
    """
    for key, value in {"n": n, "n_val": n_val, "n_test": n_test, "n_ood": n_ood}.items():
        if value < 2:
            raise ConfigError(f"{key} must be at least 2 (one example per class); got {value}")
    mu, sigma, mu_ood, sigma_ood = distributions(
        dim=dim, separation=separation, spectrum_decay=spectrum_decay,
        mean_scale=mean_scale, covariance_scale=covariance_scale,
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    return Splits(
        train=_sample(n, mu, sigma, rng, "train"),
        val=_sample(n_val, mu, sigma, rng, "val"),
        test=_sample(n_test, mu, sigma, rng, "test"),
        extra={"ood": _sample(n_ood, mu_ood, sigma_ood, rng, "ood")},
    )
