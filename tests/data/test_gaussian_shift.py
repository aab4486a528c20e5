"""The Gaussian covariance-shift model of accuracy on the line (arXiv 2107.04649)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from stalwart import data
from stalwart.data.sources.gaussian_shift import closed_form_line, distributions, linear_accuracy
from stalwart.errors import ConfigError

SETTINGS = [
    {},
    {"mean_scale": 1.0, "covariance_scale": 2.0},
    {"mean_scale": 0.5, "covariance_scale": 0.7, "dim": 5, "spectrum_decay": 2.0},
]


def random_classifiers(dim: int, k: int = 200, seed: int = 0, best=None) -> np.ndarray:
    """Random directions, mixed with ``best`` in random proportions (weak to strong models)."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=(k, dim))
    if best is None:
        return theta
    theta /= np.linalg.norm(theta, axis=1, keepdims=True)
    weight = rng.uniform(0, 1, size=(k, 1))
    return (1 - weight) * theta + weight * best / np.linalg.norm(best)


@pytest.mark.parametrize("params", SETTINGS)
def test_analytic_accuracies_lie_exactly_on_the_closed_form_line(params):
    mu, sigma, mu_ood, sigma_ood = distributions(**params)
    theta = random_classifiers(len(mu), best=np.linalg.solve(sigma, mu))
    id_accuracy = linear_accuracy(theta, mu, sigma)
    ood_accuracy = linear_accuracy(theta, mu_ood, sigma_ood)
    assert id_accuracy.min() < 0.5 < 0.8 < id_accuracy.max()  # a spread, not one point
    slope, bias = closed_form_line(**params)
    assert slope == pytest.approx(
        params.get("mean_scale", 0.8) / params.get("covariance_scale", 1.5)
    )
    assert bias == 0.0
    np.testing.assert_allclose(norm.ppf(ood_accuracy), slope * norm.ppf(id_accuracy) + bias,
                               rtol=0, atol=1e-9)  # fmt: skip
    # The line fitted by least squares on the probits recovers it.
    fit_slope, fit_bias = np.polyfit(norm.ppf(id_accuracy), norm.ppf(ood_accuracy), 1)
    assert (fit_slope, fit_bias) == (pytest.approx(slope), pytest.approx(0.0, abs=1e-9))


def test_linear_accuracy_against_monte_carlo_and_bayes():
    mu, sigma, _, _ = distributions(dim=3, separation=1.5)
    theta = np.array([1.0, -0.5, 2.0])
    rng = np.random.default_rng(0)
    y = rng.choice([-1.0, 1.0], size=200_000)
    x = y[:, None] * mu + rng.multivariate_normal(np.zeros(3), sigma, size=len(y))
    assert linear_accuracy(theta, mu, sigma) == pytest.approx(
        np.mean(np.sign(x @ theta) == y), abs=0.005
    )
    bayes = np.linalg.solve(sigma, mu)  # Fisher's discriminant: the best linear classifier
    assert linear_accuracy(bayes, mu, sigma) == pytest.approx(norm.cdf(np.sqrt(mu @ bayes)))
    assert linear_accuracy(bayes, mu, sigma) >= linear_accuracy(theta, mu, sigma)


def test_source_samples_match_the_analytic_accuracies_within_binomial_error():
    params = {"dim": 10, "mean_scale": 0.7, "covariance_scale": 1.3, "n_test": 4000,
              "n_ood": 4000}  # fmt: skip
    splits = data.load("gaussian_shift", **params)
    assert set(splits.extra) == {"ood"}
    assert splits.test.n_classes == 2 and splits.test.group_names == splits.test.class_names
    assert torch.equal(splits.test.group, splits.test.y)
    assert splits.test.class_counts().tolist() == [2000, 2000]
    mu, sigma, mu_ood, sigma_ood = distributions(dim=10, mean_scale=0.7, covariance_scale=1.3)
    for theta in random_classifiers(10, k=5, seed=3):
        for dataset, m, s in ((splits.test, mu, sigma), (splits.extra["ood"], mu_ood, sigma_ood)):
            sign = 2 * dataset.y.numpy() - 1
            sample = np.mean(np.sign(dataset.x.double().numpy() @ theta) == sign)
            analytic = linear_accuracy(theta, m, s)
            error = np.sqrt(analytic * (1 - analytic) / len(dataset))
            assert abs(sample - analytic) < 4 * error, (sample, analytic)


def test_the_distributions_do_not_depend_on_the_seed_but_samples_do():
    a, b = data.load("gaussian_shift", seed=0, n=20), data.load("gaussian_shift", seed=1, n=20)
    assert not torch.equal(a.train.x, b.train.x)
    assert torch.equal(data.load("gaussian_shift", seed=0, n=20).extra["ood"].x, a.extra["ood"].x)
    # The OOD spread is covariance_scale times the ID spread around the class means.
    big = data.load("gaussian_shift", n_test=20_000, n_ood=20_000, covariance_scale=2.0)
    mu, _, mu_ood, _ = distributions(covariance_scale=2.0)
    spread = [
        (ds.x.double().numpy() - (2 * ds.y.numpy()[:, None] - 1) * m).std()
        for ds, m in ((big.test, mu), (big.extra["ood"], mu_ood))
    ]
    assert spread[1] / spread[0] == pytest.approx(2.0, rel=0.02)


def test_wrong_parameters_are_refused():
    with pytest.raises(ConfigError, match="did you mean 'mean_scale'"):
        closed_form_line(mean_scal=1.0)
    with pytest.raises(ConfigError, match="positive"):
        data.load("gaussian_shift", covariance_scale=0.0)
    with pytest.raises(ConfigError, match="does not apply"):
        data.load("gaussian_shift", shifts=["blur_1"])
