"""DROCC-LF's projection (Proposition 1) and its gradient metric."""

from __future__ import annotations

import pytest
import torch

from stalwart.anomaly.mahalanobis import MahalanobisAnnulus, gradient_metric, mahalanobis_norm
from stalwart.attacks.core import Annulus
from stalwart.errors import ConfigError


def _case(seed: int, n: int = 64, d: int = 12):
    generator = torch.Generator().manual_seed(seed)
    sigma = torch.rand(n, d, generator=generator) ** 2 * 3
    sigma = sigma * d / sigma.sum(dim=1, keepdim=True)  # as gradient_metric scales it
    # Lengths from far inside to far outside the annulus [1, 2].
    h = torch.randn(n, d, generator=generator, dtype=torch.float64)
    h = h * torch.logspace(-1.5, 1.5, n, dtype=torch.float64)[:, None] / h.norm(dim=1, keepdim=True)
    return h, sigma.double()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_projection_lands_in_the_ellipsoidal_annulus(seed):
    h, sigma = _case(seed)
    projected = MahalanobisAnnulus(sigma, radius=1.0, gamma=2.0)(h, None)
    norm = mahalanobis_norm(projected, sigma)
    assert (norm >= 1.0 - 1e-6).all() and (norm <= 2.0 + 1e-6).all(), norm
    before = mahalanobis_norm(h, sigma)
    inside = (before >= 1.0) & (before <= 2.0)
    assert inside.any() and torch.equal(projected[inside], h[inside])  # already allowed: kept


def test_euclidean_metric_gives_the_euclidean_annulus():
    h, _ = _case(3)
    ones = torch.ones_like(h)
    projected = MahalanobisAnnulus(ones, radius=1.0, gamma=2.0)(h, None)
    torch.testing.assert_close(projected, Annulus(1.0, 2.0)(h, None), rtol=1e-6, atol=1e-9)


def _reference_random_search(h, sigma, radius, gamma, generator, draws=40):
    """The reference's solver (EdgeML drocclf_trainer.optim_solver): best of 40 random λ."""
    out = h.clone()
    norm = mahalanobis_norm(h, sigma)
    for i in range(len(h)):
        g, v = sigma[i], h[i]
        if norm[i] < radius:
            low = -1 / g.max() + g.min() * 1e-4
            candidates = low * torch.rand(draws, generator=generator, dtype=h.dtype)
        elif norm[i] > gamma * radius:
            alpha = gamma * radius / norm[i]
            nu = (
                alpha
                / (1 - alpha)
                * g.max()
                * torch.rand(draws, generator=generator, dtype=h.dtype)
            )
            candidates = 1 / nu
        else:
            continue
        best, best_distance = v, float("inf")
        for lam in candidates:
            moved = v / (1 + lam * g)
            m = mahalanobis_norm(moved[None], g[None])[0]
            if radius - 1e-9 <= m <= gamma * radius + 1e-9:
                distance = float((moved - v).norm())
                if distance < best_distance:
                    best, best_distance = moved, distance
        out[i] = best
    return out


def test_bisection_is_never_farther_than_the_reference_random_search():
    h, sigma = _case(4)
    ours = MahalanobisAnnulus(sigma, radius=1.0, gamma=2.0)(h, None)
    theirs = _reference_random_search(h, sigma, 1.0, 2.0, torch.Generator().manual_seed(0))
    feasible = mahalanobis_norm(theirs, sigma).sub(1.5).abs() <= 0.5 + 1e-9
    ours_distance = (ours - h).norm(dim=1)[feasible]
    theirs_distance = (theirs - h).norm(dim=1)[feasible]
    assert (ours_distance <= theirs_distance + 1e-6).all()
    # ...and strictly closer for most points the random search did move.
    moved = (theirs - h).norm(dim=1)[feasible] > 0
    assert (ours_distance[moved] < theirs_distance[moved] - 1e-9).float().mean() > 0.5


def test_radial_scaling_in_the_metric_is_never_closer():
    # Scaling h along itself is feasible too; Proposition 1's point must be at least as close.
    h, sigma = _case(5)
    ours = MahalanobisAnnulus(sigma, radius=1.0, gamma=2.0)(h, None)
    norm = mahalanobis_norm(h, sigma)
    radial = h * (norm.clamp(1.0, 2.0) / norm)[:, None]
    assert ((ours - h).norm(dim=1) <= (radial - h).norm(dim=1) + 1e-7).all()


def test_gradient_metric_is_nonnegative_and_sums_to_the_dimension():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)
    )
    x = torch.randn(5, 2, 3)
    metric = gradient_metric(model, x)
    assert metric.shape == x.shape and (metric >= 0).all()
    torch.testing.assert_close(metric.flatten(1).sum(dim=1), torch.full((5,), 6.0))
    # Proportional to the input gradient's magnitudes.
    points = x.clone().requires_grad_(True)
    logits = model(points).reshape(5)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.ones(5))
    (gradient,) = torch.autograd.grad(loss, points)
    ratio = metric / gradient.abs()
    torch.testing.assert_close(ratio.flatten(1).std(dim=1), torch.zeros(5), atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"radius": 0.0, "gamma": 2.0}, "radius r must be > 0"),
     ({"radius": 1.0, "gamma": 0.5}, "gamma must be >= 1")],
)  # fmt: skip
def test_bad_annulus_is_named(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        MahalanobisAnnulus(torch.ones(2, 3), **kwargs)
