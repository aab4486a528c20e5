"""DROCC-LF's ellipsoidal annulus: ``r ≤ ‖h‖_Σ ≤ γ·r`` with a per-example diagonal metric.

Goyal et al., "DROCC: Deep Robust One-Class Classification", ICML 2020 (arXiv 2002.12718),
section 4 (OCLN, one-class classification with limited negatives). DROCC-LF measures the
offset ``h = x̃ − x`` of a searched negative in the metric ``‖h‖²_Σ = Σ_j σ_j h_j²`` whose
weights ``σ`` are the magnitudes of the loss's input gradient at ``x``: directions the model is
sensitive to count more, so the searched negatives stay close along the directions where the
close negatives of the task (a masked digit, a similar word) differ from the positives.

Projection (the paper's Proposition 1): the Euclidean-nearest point of the ellipsoidal annulus
is ``h' = h / (1 + λ·σ)`` for one scalar ``λ`` per example:

- inside (``‖h‖_Σ < r``): ``λ ∈ (−1/max σ, 0)`` with ``‖h'‖_Σ = r``;
- outside (``‖h‖_Σ > γr``): ``λ = 1/ν``, ``ν > 0`` with ``‖h'‖_Σ = γr``;
- in the annulus: ``h`` itself.

``‖h'‖_Σ`` is monotone in the scalar on each branch and the distance ``‖h' − h‖`` grows as the
scalar moves away from the no-move value, so the nearest feasible point lies on the boundary:
we find it by bisection to float precision. (The reference code, microsoft/EdgeML's
``drocclf_trainer.py``, draws 40 random values per example and keeps the best feasible one,
leaving the point unprojected when none is feasible; bisection always lands on the boundary.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stalwart.attacks.core import check_annulus, evaluation_mode
from stalwart.errors import ConfigError

BISECTION_STEPS = 60


def gradient_metric(model: nn.Module, x: Tensor) -> Tensor:
    """The diagonal metric σ of each example: ``|∇ₓ BCE(f(x), normal)|``, scaled to sum to d.

    The reference (``get_gradients`` and ``normalize_grads``) takes the input gradient of the
    positives' BCE and rescales each example's magnitudes to sum to the input dimension, so an
    isotropic gradient gives the Euclidean metric (σ ≡ 1).

    Args:
        model: a one-logit detector (the logit of "normal").
        x: the positives, ``(n, …)``.

    Returns:
        ``σ`` with the shape of ``x``, non-negative, each example summing to its dimension.
    """
    points = x.detach().requires_grad_(True)
    with torch.enable_grad(), evaluation_mode(model):
        logits = model(points).reshape(len(points))
        loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
        (gradient,) = torch.autograd.grad(loss, points)
    magnitude = gradient.abs().flatten(1)
    dimension = magnitude.shape[1]
    total = magnitude.sum(dim=1, keepdim=True)
    # A zero gradient has no preferred direction: fall back to the Euclidean metric.
    metric = torch.where(total > 0, magnitude * dimension / total.clamp(min=1e-30), 1.0)
    return metric.view_as(x)


def mahalanobis_norm(h: Tensor, metric: Tensor) -> Tensor:
    """``‖h‖_Σ = sqrt(Σ_j σ_j h_j²)`` per example, shape ``(n,)``."""
    return (metric.flatten(1) * h.flatten(1) ** 2).sum(dim=1).sqrt()


@dataclass(frozen=True, eq=False)
class MahalanobisAnnulus:
    """Project offsets onto ``r ≤ ‖h‖_Σ ≤ γ·r`` by Proposition 1 (a ``Projection``).

    Attributes:
        metric: the diagonal metric σ of each example (``gradient_metric``), shaped like the
            offsets it projects.
        radius: r > 0.
        gamma: γ ≥ 1.
    """

    metric: Tensor
    radius: float
    gamma: float

    def __post_init__(self) -> None:
        check_annulus(self.radius, self.gamma, norm="‖h‖_Σ")
        if (self.metric < 0).any() or not torch.isfinite(self.metric).all():
            raise ConfigError("the metric σ must be finite and non-negative")

    def __call__(self, delta: Tensor, origin: Tensor | None) -> Tensor:
        """The Euclidean-nearest offset in the ellipsoidal annulus, per example."""
        shape = delta.shape
        h = delta.flatten(1)
        sigma = self.metric.flatten(1).to(h)
        norm = mahalanobis_norm(h, sigma)
        inner, outer = self.radius, self.gamma * self.radius
        factor = torch.ones_like(h)
        inside, outside = norm < inner, norm > outer
        if inside.any():
            factor[inside] = _grow(h[inside], sigma[inside], inner)
        if outside.any():
            factor[outside] = _shrink(h[outside], sigma[outside], outer)
        return (h * factor).view(shape)


def _norm_after(h: Tensor, sigma: Tensor, factor: Tensor) -> Tensor:
    return (sigma * (h * factor) ** 2).sum(dim=1).sqrt()


def _grow(h: Tensor, sigma: Tensor, target: float) -> Tensor:
    """Factors ``1/(1 + λσ)``, ``λ = −t/max σ``, with ``‖h'‖_Σ = target`` (t by bisection)."""
    top = sigma.max(dim=1, keepdim=True).values.clamp(min=1e-30)

    def factor(t: Tensor) -> Tensor:
        return 1.0 / (1.0 - t * sigma / top)

    low = torch.zeros(len(h), 1, dtype=h.dtype, device=h.device)
    high = torch.full_like(low, 1.0 - 1e-7)
    reachable = _norm_after(h, sigma, factor(high)) >= target
    for _ in range(BISECTION_STEPS):  # ‖h'‖_Σ grows with t
        middle = (low + high) / 2
        short = _norm_after(h, sigma, factor(middle)) < target
        low = torch.where(short[:, None], middle, low)
        high = torch.where(short[:, None], high, middle)
    grown = factor(high)
    # Where h has no weight along the largest σ the boundary may be out of reach: scale h
    # radially instead, which keeps the constraint (and is Proposition 1's answer for σ ≡ 1).
    radial = target / _norm_after(h, sigma, torch.ones_like(h)).clamp(min=1e-30)
    return torch.where(reachable[:, None], grown, radial[:, None].expand_as(h))


def _shrink(h: Tensor, sigma: Tensor, target: float) -> Tensor:
    """Factors ``ν/(ν + σ)``, ``ν = max σ · s/(1 − s)``, with ``‖h'‖_Σ = target``."""
    top = sigma.max(dim=1, keepdim=True).values.clamp(min=1e-30)

    def factor(s: Tensor) -> Tensor:
        nu = top * s / (1.0 - s)
        return nu / (nu + sigma)

    low = torch.zeros(len(h), 1, dtype=h.dtype, device=h.device)
    high = torch.full_like(low, 1.0 - 1e-12)
    for _ in range(BISECTION_STEPS):  # ‖h'‖_Σ grows with s
        middle = (low + high) / 2
        long = _norm_after(h, sigma, factor(middle)) > target
        high = torch.where(long[:, None], middle, high)
        low = torch.where(long[:, None], low, middle)
    return factor(low)
