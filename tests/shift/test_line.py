"""The accuracy line against closed-form least squares and scipy, and its intervals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from stalwart.errors import ConfigError, DataError
from stalwart.shift.line import Line, cross_validated_predictions, fit_line
from stalwart.shift.scaling import EPS, SCALES, to_accuracy, to_scale


def noisy_pool(n=40, slope=0.8, bias=-0.3, noise=0.1, scale="probit", seed=1):
    """ID and OOD accuracies of ``n`` models scattered about a known line in ``scale``."""
    rng = np.random.default_rng(seed)
    lo, hi = (0.55, 0.9) if scale != "linear" else (0.5, 0.8)
    id_acc = rng.uniform(lo, hi, n)
    z = slope * to_scale(id_acc, scale) + bias + noise * rng.normal(size=n)
    return id_acc, to_accuracy(z, scale)


def normal_equations(x, y):
    design = np.column_stack([x, np.ones_like(x)])
    slope, bias = np.linalg.solve(design.T @ design, design.T @ y)
    return slope, bias


@pytest.mark.parametrize("scale", SCALES)
def test_fit_matches_normal_equations_and_linregress(scale):
    kwargs = {"slope": 0.5, "bias": 0.1, "noise": 0.02} if scale == "linear" else {}
    id_acc, ood_acc = noisy_pool(scale=scale, **kwargs)
    line = fit_line(id_acc, ood_acc, scale, bootstrap=0)
    x, y = to_scale(id_acc, scale), to_scale(ood_acc, scale)

    slope, bias = normal_equations(x, y)
    assert line.slope == pytest.approx(slope, rel=1e-10)
    assert line.bias == pytest.approx(bias, rel=1e-10, abs=1e-12)

    reference = stats.linregress(x, y)
    assert line.slope == pytest.approx(reference.slope, rel=1e-10)
    assert line.bias == pytest.approx(reference.intercept, rel=1e-10, abs=1e-12)
    assert line.r2 == pytest.approx(reference.rvalue**2, rel=1e-10)
    # linregress's slope standard error is s / √Σ(x − x̄)², so s follows from it.
    s = reference.stderr * np.sqrt(((x - x.mean()) ** 2).sum())
    assert line.residual_std == pytest.approx(s, rel=1e-10)
    assert (line.n, line.dropped, line.scale) == (40, 0, scale)


def test_probit_edges_are_clipped_and_kept():
    id_acc = np.array([0.0, 0.5, 0.7, 0.9, 1.0])
    ood_acc = np.array([0.0, 0.4, 0.55, 0.8, 1.0])
    line = fit_line(id_acc, ood_acc, bootstrap=50)
    assert line.n == 5 and line.dropped == 0
    assert np.isfinite([line.slope, line.bias, line.r2, line.residual_std]).all()
    assert np.isfinite(line.draws).all()
    # The perfect and the hopeless model sit at Φ⁻¹(1 − ε) and Φ⁻¹(ε), not at ±∞.
    clip = lambda a: stats.norm.ppf(np.clip(a, EPS, 1 - EPS))  # noqa: E731
    reference = stats.linregress(clip(id_acc), clip(ood_acc))
    assert line.slope == pytest.approx(reference.slope, rel=1e-10)
    assert line.bias == pytest.approx(reference.intercept, abs=1e-10)
    prediction = line.predict([0.0, 1.0])
    assert np.isfinite(prediction.ood_acc).all() and np.isfinite(prediction.interval).all()


@pytest.mark.parametrize("scale", SCALES)
def test_noiseless_line_is_recovered_exactly(scale):
    slope, bias = (0.6, 0.05) if scale == "linear" else (1.3, -0.4)
    id_acc = np.linspace(0.5, 0.95, 7)
    ood_acc = to_accuracy(slope * to_scale(id_acc, scale) + bias, scale)
    line = fit_line(id_acc, ood_acc, scale, bootstrap=20)
    assert line.slope == pytest.approx(slope, abs=1e-9)
    assert line.bias == pytest.approx(bias, abs=1e-9)
    assert line.r2 == pytest.approx(1.0, abs=1e-12)
    assert line.residual_std == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(line.draws, [[slope, bias]] * 20, atol=1e-9)
    np.testing.assert_allclose(line.predict(id_acc).ood_acc, ood_acc, atol=1e-12)


def test_bootstrap_is_reproducible_with_a_seed():
    id_acc, ood_acc = noisy_pool()
    first = fit_line(id_acc, ood_acc, bootstrap=200, seed=3)
    again = fit_line(id_acc, ood_acc, bootstrap=200, seed=3)
    other = fit_line(id_acc, ood_acc, bootstrap=200, seed=4)
    assert first.draws.shape == (200, 2)
    np.testing.assert_array_equal(first.draws, again.draws)
    assert not np.allclose(first.draws, other.draws)
    # Refits on resampled models scatter about the fit on all of them.
    assert np.median(first.draws[:, 0]) == pytest.approx(first.slope, abs=0.05)
    assert first.draws[:, 0].std() > 0
    lo, hi = first.interval_of("slope")
    assert lo < first.slope < hi


def test_bootstrap_never_draws_a_resample_without_slope():
    # Three models: a resample of one model three times (1 in 9) has no line and is redrawn.
    line = fit_line([0.6, 0.7, 0.8], [0.5, 0.65, 0.7], bootstrap=300, seed=0)
    assert np.isfinite(line.draws).all()


def test_band_contains_the_line_and_widens_away_from_the_models():
    id_acc, ood_acc = noisy_pool()  # ID accuracies in [0.55, 0.9]
    line = fit_line(id_acc, ood_acc, bootstrap=1000, seed=0)
    grid = np.array([0.2, 0.4, 0.7, 0.75, 0.97, 0.995])
    prediction = line.predict(grid)
    lower, upper = prediction.band
    assert (lower < prediction.ood_acc).all() and (prediction.ood_acc < upper).all()
    width = to_scale(upper) - to_scale(lower)
    centre = int(np.argmin(abs(to_scale(grid) - line.id_mean)))
    assert grid[centre] in (0.7, 0.75)
    assert width[0] > width[1] > width[centre]
    assert width[-1] > width[-2] > width[centre]


def test_prediction_interval_is_wider_than_the_band_and_covers_new_models():
    slope, bias, noise = 0.8, -0.3, 0.15
    id_acc, ood_acc = noisy_pool(n=40, slope=slope, bias=bias, noise=noise, seed=5)
    line = fit_line(id_acc, ood_acc, bootstrap=500, seed=0)

    rng = np.random.default_rng(11)
    new_id = rng.uniform(0.5, 0.95, 4000)
    new_ood = to_accuracy(slope * to_scale(new_id) + bias + noise * rng.normal(size=4000))
    prediction = line.predict(new_id)
    (band_lo, band_hi), (lo, hi) = prediction.band, prediction.interval
    assert (lo < band_lo).all() and (band_hi < hi).all()
    covered = ((lo <= new_ood) & (new_ood <= hi)).mean()
    assert 0.9 <= covered <= 0.99
    # The band is about the line alone and misses most new models.
    assert ((band_lo <= new_ood) & (new_ood <= band_hi)).mean() < 0.5

    # Averaged over many pools of few models, the coverage is the level (exact for Gaussian
    # scatter); an interval without the t quantile or the new model's own scatter falls short.
    hits = []
    for seed in range(40):
        id_acc, ood_acc = noisy_pool(n=8, slope=slope, bias=bias, noise=noise, seed=100 + seed)
        lo, hi = fit_line(id_acc, ood_acc, bootstrap=0, level=0.9).predict(new_id[:200]).interval
        hits.append(((lo <= new_ood[:200]) & (new_ood[:200] <= hi)).mean())
    assert np.mean(hits) == pytest.approx(0.9, abs=0.03)


def test_missing_values_are_left_out_and_counted():
    id_acc, ood_acc = noisy_pool(n=12)
    holes_id, holes_ood = id_acc.copy(), ood_acc.copy()
    holes_id[2], holes_ood[7], holes_ood[9] = np.nan, np.nan, np.nan
    line = fit_line(holes_id, holes_ood, bootstrap=0)
    keep = np.ones(12, bool)
    keep[[2, 7, 9]] = False
    reference = fit_line(id_acc[keep], ood_acc[keep], bootstrap=0)
    assert (line.n, line.dropped) == (9, 3)
    assert (line.slope, line.bias, line.r2) == (reference.slope, reference.bias, reference.r2)
    assert "9 models (3 left out)" in str(line)
    assert np.isnan(line.predict([np.nan, 0.7]).ood_acc[0])


@pytest.mark.parametrize(
    ("id_acc", "ood_acc", "message"),
    [
        ([0.5, 0.6, 0.7], [0.4, 1.2, 0.5], r"ood_acc\[1\] = 1.2 is outside \[0, 1\]"),
        ([50, 60, 70], [0.4, 0.5, 0.6], "divide percentages by 100"),
        ([0.5, 0.6, np.inf], [0.4, 0.5, 0.6], r"id_acc\[2\] = inf"),
        ([0.5, 0.6], [0.4, 0.5, 0.6], "id_acc has 2 values and ood_acc 3"),
        ([0.5, 0.6, np.nan], [0.4, 0.5, 0.6], "at least 3 models .* got 2 .1 left out"),
        ([0.7, 0.7, 0.7], [0.4, 0.5, 0.6], "same ID accuracy"),
        ([0.5, "x", 0.6], [0.4, 0.5, 0.6], "id_acc must be numbers"),
    ],
)
def test_bad_accuracies_are_named(id_acc, ood_acc, message):
    with pytest.raises(DataError, match=message):
        fit_line(id_acc, ood_acc)


def test_bad_settings_are_config_errors():
    id_acc, ood_acc = noisy_pool(n=5)
    with pytest.raises(ConfigError, match="did you mean 'probit'"):
        fit_line(id_acc, ood_acc, "probt")
    with pytest.raises(ConfigError, match="bootstrap"):
        fit_line(id_acc, ood_acc, bootstrap=-1)
    with pytest.raises(ConfigError, match="level"):
        fit_line(id_acc, ood_acc, level=95)


@pytest.mark.parametrize("scale", SCALES)
def test_effective_robustness_is_zero_on_the_line_and_positive_above(scale):
    kwargs = {"slope": 0.5, "bias": 0.1, "noise": 0.02} if scale == "linear" else {}
    line = fit_line(*noisy_pool(scale=scale, **kwargs), scale, bootstrap=0)
    id_acc = np.array([0.6, 0.7, 0.8])
    on_line = line.predict(id_acc).ood_acc
    zero = line.effective_robustness(id_acc, on_line)
    np.testing.assert_allclose(zero.accuracy, 0, atol=1e-12)
    np.testing.assert_allclose(zero.scaled, 0, atol=1e-9)
    above = line.effective_robustness(id_acc, on_line + 0.05)
    np.testing.assert_allclose(above.accuracy, 0.05, atol=1e-12)
    assert (above.scaled > 0).all()
    below = line.effective_robustness(0.7, float(on_line[1]) - 0.02)
    assert below.accuracy == pytest.approx(-0.02) and below.scaled < 0


def test_predict_keeps_the_shape_of_its_input():
    line = fit_line(*noisy_pool(), bootstrap=50)
    grid = np.array([[0.6, 0.7, 0.8], [0.65, 0.75, np.nan]])
    prediction = line.predict(grid)
    assert prediction.ood_acc.shape == prediction.band[0].shape == prediction.interval[1].shape
    assert prediction.ood_acc.shape == (2, 3)
    assert np.isnan(prediction.band[0][1, 2]) and np.isnan(prediction.interval[0][1, 2])
    one = line.predict(0.7)
    assert isinstance(one.ood_acc, float) and isinstance(one.band[0], float)
    assert one.ood_acc == pytest.approx(prediction.ood_acc[0, 1])
    # On the linear scale nothing but the cut keeps the intervals among accuracies.
    steep = fit_line([0.5, 0.6, 0.7, 0.8], [0.3, 0.6, 0.75, 0.95], "linear", bootstrap=50)
    wide = steep.predict([0.0, 1.0])
    assert wide.ood_acc[1] > 1 and wide.ood_acc[0] < 0
    assert (wide.interval[0] >= 0).all() and (wide.interval[1] <= 1).all()
    assert (wide.band[0] >= 0).all() and (wide.band[1] <= 1).all()
    assert wide.interval[1][1] == 1 and wide.interval[0][0] == 0
    with pytest.raises(DataError, match=r"id_acc\[1, 0\] = 2.0"):
        line.predict([[0.5], [2.0]])


def test_summary_and_json():
    line = Line(
        slope=0.834, bias=-0.2071, r2=0.9712, n=120, dropped=2, scale="probit",
        residual_std=0.1, id_mean=0.5, id_sum_squares=3.0,
    )  # fmt: skip
    assert str(line) == "probit: ood = 0.83·id − 0.21, R² 0.97, 120 models (2 left out)"
    fitted = fit_line(*noisy_pool(), "logit", bootstrap=100, seed=2)
    assert str(fitted).startswith(f"logit: ood = {fitted.slope:.2f}·id ")
    assert "left out" not in str(fitted)

    data = json.loads(json.dumps(fitted.to_dict(draws=True)))
    assert data["bootstrap"] == 100 and data["dropped"] == 0
    assert data["slope_interval"][0] < data["slope"] < data["slope_interval"][1]
    back = Line.from_dict(data)
    assert back == fitted
    np.testing.assert_array_equal(back.draws, fitted.draws)
    grid = np.array([0.3, 0.7])
    for ours, theirs in zip(back.predict(grid), fitted.predict(grid), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert "draws" not in fitted.to_dict()


def test_cross_validated_line_uses_only_the_other_models():
    id_acc, ood_acc = noisy_pool(n=20)
    predicted = cross_validated_predictions(id_acc, ood_acc, folds=4, seed=3)
    order = np.random.default_rng(3).permutation(20)
    for held_out in np.array_split(order, 4):
        rest = np.setdiff1d(np.arange(20), held_out)
        line = fit_line(id_acc[rest], ood_acc[rest], bootstrap=0)
        np.testing.assert_allclose(predicted[held_out], line.predict(id_acc[held_out]).ood_acc)
    # Leave-one-out on a noiseless line is exact, and no model's own OOD label is read.
    z = 0.7 * to_scale(id_acc, "probit") - 0.2
    exact = to_accuracy(z, "probit")
    np.testing.assert_allclose(cross_validated_predictions(id_acc, exact, folds=20), exact)
    corrupted = exact.copy()
    corrupted[5] = 0.01
    assert cross_validated_predictions(id_acc, corrupted, folds=20)[5] == pytest.approx(exact[5])


@pytest.mark.parametrize("folds", [1, 21, 2.5, True])
def test_cross_validated_line_checks_its_folds(folds):
    id_acc, ood_acc = noisy_pool(n=20)
    with pytest.raises(ConfigError, match="folds must be a whole number from 2 to 20"):
        cross_validated_predictions(id_acc, ood_acc, folds=folds)


def test_cross_validated_line_needs_three_models_outside_each_fold():
    id_acc, ood_acc = noisy_pool(n=5)
    assert np.isfinite(cross_validated_predictions(id_acc, ood_acc, folds=3)).all()  # 3 outside
    with pytest.raises(DataError, match="with 5 models in 2 folds a line is fitted on 2 models"):
        cross_validated_predictions(id_acc, ood_acc, folds=2)
