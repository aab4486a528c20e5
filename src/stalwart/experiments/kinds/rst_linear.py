"""RST in noiseless linear regression: augmentation can hurt, robust self-training does not.

Raghunathan, Xie, Yang, Duchi and Liang, ICML 2020 (arXiv 2002.10716), Sections 3–4. Labels
are noiseless, ``y = xᵀθ*``, and perturbations are consistent: ``x + U a`` keeps the label
(``Uᵀθ* = 0``), so θ* has zero standard and zero robust error. Three estimators:

- **standard**: the minimum-norm interpolant of the labelled data, ``X⁺y``;
- **augmented**: the minimum-norm interpolant of the labelled data plus one perturbed copy of
  each labelled point (adversarial training's data, for a linear model);
- **RST**: ``argmin_θ (θ − θ_std)ᵀΣ(θ − θ_std)`` subject to interpolating the augmented data
  and being invariant on the perturbations (``Uᵀθ = 0``), i.e. fitting the standard
  estimator's pseudo-labels on unlimited unlabelled data (``Σ`` is the population covariance).

Standard error is ``(θ − θ*)ᵀΣ(θ − θ*)``; robust error is the expected worst case over the
perturbation set ``{x + U a : ‖a‖_∞ ≤ 1}``, ``E(|xᵀe| + ‖Uᵀe‖₁)²`` with ``e = θ − θ*``, in
closed form for Gaussian ``x``. RST is the Σ-projection of θ_std onto an affine set containing
θ*, so its standard error can never exceed the standard estimator's (Pythagoras in the
Σ-norm); augmentation has no such guarantee.

The paper's setting for augmentation to hurt: the population covariance puts large variance
on directions θ* ignores, and the perturbations move inputs along them. The min-norm
interpolant of the augmented data then fills those high-variance directions with weight.
``worked_example`` is the smallest such case (3 dimensions), ``run_rst_linear`` draws many.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field
from rich.text import Text

from stalwart.config import NamedConfig
from stalwart.experiments.executors import Executor
from stalwart.experiments.kinds import Reporter, register_kind
from stalwart.io import write_json


class RstLinearConfig(NamedConfig):
    """Random draws of the linear-regression setting (defaults: where augmentation hurts)."""

    kind: Literal["rst_linear"] = "rst_linear"
    name: str = "rst_linear"
    dim: int = Field(30, ge=3, description="input dimension d")
    high_variance_dims: int = Field(10, ge=1, description="directions θ* ignores")
    high_variance: float = Field(100.0, gt=0, description="their variance (the rest: 1)")
    labelled: int = Field(5, ge=1, description="labelled examples n")
    perturbation_dims: int = Field(5, ge=1, description="consistent perturbation directions")
    draws: int = Field(200, ge=1)
    seed: int = 0
    out: str | None = None


def min_norm_interpolant(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``X⁺y``: the interpolant of smallest Euclidean norm."""
    return np.linalg.pinv(X) @ y


def rst_estimator(
    sigma: np.ndarray, standard: np.ndarray, A: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """``argmin (θ − θ_std)ᵀΣ(θ − θ_std)`` subject to ``Aθ = b``, via its KKT system."""
    d, k = len(standard), len(A)
    kkt = np.block([[sigma, A.T], [A, np.zeros((k, k))]])
    rhs = np.concatenate([sigma @ standard, b])
    return np.linalg.lstsq(kkt, rhs, rcond=None)[0][:d]


def errors(
    theta: np.ndarray, truth: np.ndarray, sigma: np.ndarray, U: np.ndarray
) -> tuple[float, float]:
    """Standard and robust (worst case over ``x + Ua``, ``‖a‖_∞ ≤ 1``) squared error."""
    e = theta - truth
    variance = max(float(e @ sigma @ e), 0.0)
    shift = float(np.abs(U.T @ e).sum())
    s = math.sqrt(variance)
    return variance, variance + 2 * shift * s * math.sqrt(2 / math.pi) + shift**2


def estimators(
    X: np.ndarray, y: np.ndarray, augmented_X: np.ndarray, sigma: np.ndarray, U: np.ndarray
) -> dict[str, np.ndarray]:
    """The standard, augmented and RST estimators for one draw."""
    standard = min_norm_interpolant(X, y)
    augmented_y = np.concatenate([y, y])
    both = np.vstack([X, augmented_X])
    augmented = min_norm_interpolant(both, augmented_y)
    constraints = np.vstack([both, U.T])
    targets = np.concatenate([augmented_y, np.zeros(U.shape[1])])
    return {
        "standard": standard,
        "augmented": augmented,
        "rst": rst_estimator(sigma, standard, constraints, targets),
    }


def draw(cfg: RstLinearConfig, rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """One random instance: θ* on the low-variance directions, perturbations ⟂ θ*."""
    d, high = cfg.dim, cfg.high_variance_dims
    variances = np.ones(d)
    variances[:high] = cfg.high_variance
    sigma = np.diag(variances)
    truth = np.zeros(d)
    truth[high:] = rng.normal(size=d - high)
    U = rng.normal(size=(d, cfg.perturbation_dims))
    U -= np.outer(truth, truth @ U) / (truth @ truth)  # consistent: Uᵀθ* = 0
    U /= np.linalg.norm(U, axis=0)
    X = rng.normal(size=(cfg.labelled, d)) * np.sqrt(variances)
    y = X @ truth
    shifted = X + rng.uniform(-1, 1, size=(cfg.labelled, cfg.perturbation_dims)) @ U.T
    found = estimators(X, y, shifted, sigma, U)
    return {name: errors(theta, truth, sigma, U) for name, theta in found.items()}


def run_rst_linear(cfg: RstLinearConfig) -> dict[str, Any]:
    """Mean standard and robust error of each estimator over ``draws`` random instances."""
    rng = np.random.default_rng(cfg.seed)
    results = [draw(cfg, rng) for _ in range(cfg.draws)]
    table = {}
    for name in ("standard", "augmented", "rst"):
        std_errors = [r[name][0] for r in results]
        table[name] = {
            "standard_error": statistics.fmean(std_errors),
            "robust_error": statistics.fmean(r[name][1] for r in results),
            # Tolerance for the KKT solve's rounding.
            "draws_worse_than_standard": sum(
                r[name][0] > r["standard"][0] * (1 + 1e-9) + 1e-9 for r in results
            )
            / cfg.draws,
        }
    return {"draws": cfg.draws, "estimators": table}


def worked_example() -> dict[str, tuple[float, float]]:
    """The smallest case: d = 3, one labelled point e₁, θ* = (1, 0, 1), Σ = diag(1, 100, 1).

    The perturbation u = (1, 1, −1)/√3 keeps labels (uᵀθ* = 0). The standard interpolant
    misses θ*'s third coordinate (standard error 1); the augmented one spreads weight onto the
    high-variance second coordinate (25.25); RST stays below the standard one (≈ 0.0099).
    """
    sigma = np.diag([1.0, 100.0, 1.0])
    truth = np.array([1.0, 0.0, 1.0])
    U = np.array([[1.0], [1.0], [-1.0]]) / math.sqrt(3)
    X = np.array([[1.0, 0.0, 0.0]])
    found = estimators(X, X @ truth, X + U.T, sigma, U)
    return {name: errors(theta, truth, sigma, U) for name, theta in found.items()}


def format_table(result: dict[str, Any]) -> str:
    """Markdown: each estimator's mean standard and robust error."""
    lines = [
        "| estimator | standard error | robust error | draws with higher standard error |",
        "|---|---|---|---|",
    ]
    for name, row in result["estimators"].items():
        share = "-" if name == "standard" else f"{100 * row['draws_worse_than_standard']:.0f}%"
        lines.append(
            f"| {name} | {row['standard_error']:.3f} | {row['robust_error']:.3f} | {share} |"
        )
    return "\n".join(lines) + "\n"


def _run_kind(
    config: RstLinearConfig, reporter: Reporter, executor: Executor | None = None
) -> dict[str, Any]:
    result = run_rst_linear(config)
    if config.out:
        write_json(Path(config.out) / "rst_linear.json", result)
    return result


def _render(config: RstLinearConfig, result: dict[str, Any]) -> list[Any]:
    return [Text(format_table(result))]


def _describe(config: RstLinearConfig) -> str:
    return (
        f"[bold]{config.name}[/]: noiseless linear regression, {config.draws} draws, "
        f"n = {config.labelled}, d = {config.dim}; errors are means over draws"
    )


KIND = register_kind(
    "rst_linear", config=RstLinearConfig, run=_run_kind, render=_render, describe=_describe
)
