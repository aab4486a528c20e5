"""The accuracy line: OOD accuracy against ID accuracy on a probit axis (arXiv 2107.04649).

Miller et al., "Accuracy on the Line" (arXiv 2107.04649), find that across many models trained
on one distribution, out-of-distribution (OOD) accuracy is close to a linear function of
in-distribution (ID) accuracy once both are probit transformed::

    Φ⁻¹(acc_ood) ≈ slope · Φ⁻¹(acc_id) + bias

``fit_line`` fits that line by ordinary least squares on a pool of models, ``Line.predict``
reads a new model's OOD accuracy off it, and ``Line.effective_robustness`` measures how far a
model lies above it (Taori et al., "Measuring Robustness to Natural Distribution Shifts in
Image Classification", arXiv 2007.00644).

Conventions, and how they relate to the public code:

- Accuracies are fractions in [0, 1]. On the probit and logit scales 0 and 1 are clipped to
  [ε, 1 − ε] (``stalwart.shift.scaling.EPS``) so that a perfect model stays in the fit at a
  finite position; linearfits_app (statsmodels OLS) and imagenet-testbed
  (``scipy.stats.linregress``) instead leave them at ∓∞ and drop them.
- A model with a missing (NaN) ID or OOD accuracy is left out of the fit, as linearfits_app
  drops NaN pairs, and the number left out is reported in ``Line.dropped``.
- The line's uncertainty is a percentile bootstrap over models (imagenet-testbed also draws
  bootstrap confidence bands): models are resampled with replacement and the line refitted.
- A prediction interval for one new model is the classical OLS interval in the scaled space
  (see ``Line.predict``), mapped back to accuracies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from scipy.stats import t as student_t

from stalwart.errors import ConfigError, DataError
from stalwart.shift.scaling import Scale, check_scale, to_accuracy, to_scale

# Bootstrap draws are computed in blocks of at most this many resampled values, so that a pool of
# many thousand models does not allocate a (draws × models) matrix at once.
_BLOCK = 1 << 20


def _accuracies(name: str, values: Any, *, any_shape: bool = False) -> np.ndarray:
    """``values`` as a float array of fractions in [0, 1] (NaN allowed), or a DataError.

    One value per model (a number or a vector), unless ``any_shape``.
    """
    try:
        acc = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name} must be numbers (fractions in [0, 1]): {error}") from None
    if acc.ndim > 1 and not any_shape:
        raise DataError(f"{name} must be one accuracy per model; got shape {acc.shape}")
    flat = acc.reshape(-1)
    bad = ~np.isnan(flat) & ~((flat >= 0) & (flat <= 1))
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        where = (
            f"{name}[{', '.join(map(str, np.unravel_index(index, acc.shape)))}]"
            if acc.ndim
            else name
        )
        hint = (
            "; accuracies are fractions: divide percentages by 100"
            if np.isfinite(flat[index]) and 1 < flat[index] <= 100
            else ""
        )
        raise DataError(
            f"{where} = {float(flat[index])!r} is outside [0, 1] ({int(bad.sum())} such value"
            f"{'s' if bad.sum() > 1 else ''}){hint}"
        )
    return acc


def _pair(id_acc: Any, ood_acc: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays checked, one-dimensional and of one length."""
    x, y = _accuracies("id_acc", id_acc), _accuracies("ood_acc", ood_acc)
    x, y = np.atleast_1d(x), np.atleast_1d(y)
    if len(x) != len(y):
        raise DataError(f"id_acc has {len(x)} values and ood_acc {len(y)}; give one pair per model")
    return x, y


def _least_squares(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slope and bias of OLS fits of each row of ``y`` on the same row of ``x``."""
    dx = x - x.mean(axis=-1, keepdims=True)
    dy = y - y.mean(axis=-1, keepdims=True)
    slope = (dx * dy).sum(axis=-1) / (dx * dx).sum(axis=-1)
    bias = y.mean(axis=-1) - slope * x.mean(axis=-1)
    return slope, bias


def _bootstrap(x: np.ndarray, y: np.ndarray, draws: int, seed: int | None) -> np.ndarray:
    """(draws, 2) slope and bias of the line refitted on models resampled with replacement.

    A resample whose ID values are all equal has no slope; it is drawn again, so every draw is
    a line (the bootstrap conditioned on a fittable resample, as is usual for regression).
    """
    rng = np.random.default_rng(seed)
    n = len(x)
    out = np.empty((draws, 2))
    block = max(1, _BLOCK // n)
    for start in range(0, draws, block):
        stop = min(draws, start + block)
        index = rng.integers(0, n, size=(stop - start, n))
        xs = x[index]
        flat = xs.max(axis=1) == xs.min(axis=1)
        while flat.any():
            index[flat] = rng.integers(0, n, size=(int(flat.sum()), n))
            xs = x[index]
            flat = xs.max(axis=1) == xs.min(axis=1)
        slope, bias = _least_squares(xs, y[index])
        out[start:stop, 0], out[start:stop, 1] = slope, bias
    return out


def _shaped(values: Any, shape: tuple[int, ...]) -> Any:
    """``values`` in ``shape``; a scalar (``np.float64``) for a scalar input, not a 0-d array."""
    return np.asarray(values, dtype=np.float64).reshape(shape)[()]


def _bound(values: np.ndarray, scale: Scale, shape: tuple[int, ...]) -> Any:
    """Scaled interval bounds as accuracies: mapped back, and kept within [0, 1]."""
    return _shaped(np.clip(to_accuracy(values, scale), 0.0, 1.0), shape)


class Prediction(NamedTuple):
    """OOD accuracies read off a ``Line`` for given ID accuracies.

    Each field has the shape of the ID accuracies asked about (a scalar for a scalar).

    Attributes:
        id_acc: the ID accuracies asked about.
        ood_acc: the line's point prediction, in accuracy units.
        band: (lower, upper) bootstrap percentile band of the line at ``id_acc``: where the
            line itself may lie (NaN when the line was fitted with ``bootstrap=0``).
        interval: (lower, upper) prediction interval for the OOD accuracy of one new model:
            the line's uncertainty plus the scatter of models about it.
        level: the coverage both intervals aim at.
    """

    id_acc: np.ndarray
    ood_acc: np.ndarray
    band: tuple[np.ndarray, np.ndarray]
    interval: tuple[np.ndarray, np.ndarray]
    level: float


class EffectiveRobustness(NamedTuple):
    """How far models lie above the line (Taori et al., arXiv 2007.00644).

    Attributes:
        accuracy: observed OOD accuracy minus the line's prediction, in accuracy units.
        scaled: the same difference on the line's scale (e.g. probit units).
    """

    accuracy: np.ndarray
    scaled: np.ndarray


@dataclass(frozen=True)
class Line:
    """A fitted accuracy line, ``to_scale(ood) = slope · to_scale(id) + bias`` (arXiv 2107.04649).

    Attributes:
        slope: slope on the scaled axes.
        bias: intercept on the scaled axes.
        r2: coefficient of determination of the fit (NaN when every OOD value is equal).
        n: number of models in the fit.
        dropped: number of models left out because their ID or OOD accuracy was NaN.
        scale: the axes, ``"probit"``, ``"logit"`` or ``"linear"``.
        residual_std: √(Σ residual² / (n − 2)), the scatter about the line in scaled units.
        id_mean: mean of the scaled ID accuracies of the fitted models.
        id_sum_squares: Σ (scaled ID − id_mean)², for the prediction interval.
        level: coverage of the band and the prediction interval, e.g. 0.95.
        draws: (bootstrap, 2) slope and bias of the line refitted on resampled models
            (read-only; left out of ``==``, which compares the fit itself).
    """

    slope: float
    bias: float
    r2: float
    n: int
    dropped: int
    scale: Scale
    residual_std: float
    id_mean: float
    id_sum_squares: float
    level: float = 0.95
    draws: np.ndarray = field(default_factory=lambda: np.empty((0, 2)), compare=False, repr=False)

    def __post_init__(self) -> None:
        draws = np.array(self.draws, dtype=np.float64).reshape(-1, 2)
        draws.setflags(write=False)  # a frozen line keeps its draws too
        object.__setattr__(self, "draws", draws)

    def scaled(self, id_acc: Any) -> np.ndarray:
        """The line at ``id_acc`` on its own scale (e.g. probit units)."""
        acc = _accuracies("id_acc", id_acc, any_shape=True)
        return self.slope * to_scale(acc, self.scale) + self.bias

    def predict(self, id_acc: Any) -> Prediction:
        """OOD accuracy predicted for models of ID accuracy ``id_acc`` (a number or an array).

        The point prediction is ``to_accuracy(slope · to_scale(id_acc) + bias)``.

        ``band`` is the percentile interval, at ``level``, of the bootstrap lines evaluated at
        ``id_acc``: the uncertainty of the line only, narrow near the fitted models and wider
        away from them.

        ``interval`` is the classical OLS prediction interval for one new model, computed in
        the scaled space and mapped back with ``to_accuracy`` (monotone, so the bounds carry
        over)::

            ŷ ± t(n − 2, (1 + level)/2) · s · √(1 + 1/n + (x − x̄)² / Σ(xᵢ − x̄)²)

        with x = to_scale(id_acc), s = ``residual_std``, x̄ = ``id_mean`` and the sum
        ``id_sum_squares``. The 1 under the root is the new model's own scatter about the line,
        the other terms the line's uncertainty; the interval is exact when models scatter
        about the line with independent Gaussian noise of one variance in the scaled space.
        NaN ID accuracies give NaN throughout. On the linear scale the band and the interval
        are cut to [0, 1] (the probit and logit scales stay inside by construction); the point
        prediction is not, so that it stays the line.
        """
        acc = _accuracies("id_acc", id_acc, any_shape=True)
        x = to_scale(acc, self.scale)
        point = self.slope * x + self.bias
        alpha = (1 - self.level) / 2
        if len(self.draws):
            flat_x = x.reshape(-1)
            lower, upper = np.empty(flat_x.size), np.empty(flat_x.size)
            block = max(1, _BLOCK // len(self.draws))
            for start in range(0, flat_x.size, block):
                part = flat_x[start : start + block]
                lines = self.draws[:, :1] * part[None, :] + self.draws[:, 1:]
                # NaN inputs have NaN lines in every draw, and quantile keeps them NaN.
                lower[start : start + block], upper[start : start + block] = np.quantile(
                    lines, [alpha, 1 - alpha], axis=0
                )
            band = (
                _bound(lower, self.scale, x.shape),
                _bound(upper, self.scale, x.shape),
            )
        else:
            band = (_shaped(np.full(x.shape, np.nan), x.shape),) * 2
        quantile = student_t.ppf(1 - alpha, self.n - 2)
        half = (
            quantile
            * self.residual_std
            * np.sqrt(1 + 1 / self.n + (x - self.id_mean) ** 2 / self.id_sum_squares)
        )
        interval = (
            _bound(point - half, self.scale, x.shape),
            _bound(point + half, self.scale, x.shape),
        )
        return Prediction(
            _shaped(acc, x.shape),
            _shaped(to_accuracy(point, self.scale), x.shape),
            band,
            interval,
            self.level,
        )

    def effective_robustness(self, id_acc: Any, ood_acc: Any) -> EffectiveRobustness:
        """Observed OOD accuracy minus the line's prediction (Taori et al., arXiv 2007.00644).

        Zero on the line, positive above it (more robust than the pool's trend predicts).
        Given both in accuracy units and on the line's scale, where a model's distance from the
        line does not shrink near 0 and 1 as it does in accuracy units.
        """
        x, y = _pair(id_acc, ood_acc)
        shape = np.shape(ood_acc)
        line = self.scaled(x)
        accuracy = y - to_accuracy(line, self.scale)
        scaled = to_scale(y, self.scale) - line
        return EffectiveRobustness(_shaped(accuracy, shape), _shaped(scaled, shape))

    def interval_of(self, which: str) -> tuple[float, float]:
        """Bootstrap percentile interval at ``level`` of ``"slope"`` or ``"bias"``."""
        if which not in ("slope", "bias"):
            raise ConfigError(f"interval_of takes 'slope' or 'bias'; got {which!r}")
        if not len(self.draws):
            return (math.nan, math.nan)
        alpha = (1 - self.level) / 2
        column = self.draws[:, 0 if which == "slope" else 1]
        lo, hi = np.quantile(column, [alpha, 1 - alpha])
        return (float(lo), float(hi))

    def __str__(self) -> str:
        sign = "−" if self.bias < 0 else "+"
        left = f" ({self.dropped} left out)" if self.dropped else ""
        model = "model" if self.n == 1 else "models"
        return (
            f"{self.scale}: ood = {self.slope:.2f}·id {sign} {abs(self.bias):.2f}, "
            f"R² {self.r2:.2f}, {self.n} {model}{left}"
        )

    def to_dict(self, *, draws: bool = False) -> dict[str, Any]:
        """The line as plain JSON values (NaN as None); ``draws=True`` keeps the bootstrap.

        ``Line.from_dict`` reads it back; without the draws the band is NaN.
        """

        def number(value: float) -> float | None:
            return None if math.isnan(value) else float(value)

        out: dict[str, Any] = {
            "scale": self.scale,
            "slope": float(self.slope),
            "bias": float(self.bias),
            "r2": number(self.r2),
            "n": int(self.n),
            "dropped": int(self.dropped),
            "residual_std": float(self.residual_std),
            "id_mean": float(self.id_mean),
            "id_sum_squares": float(self.id_sum_squares),
            "level": float(self.level),
            "bootstrap": len(self.draws),
            "slope_interval": [number(v) for v in self.interval_of("slope")],
            "bias_interval": [number(v) for v in self.interval_of("bias")],
        }
        if draws:
            out["draws"] = self.draws.tolist()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Line:
        """A line from ``to_dict`` output."""
        r2 = data.get("r2")
        return cls(
            slope=float(data["slope"]),
            bias=float(data["bias"]),
            r2=math.nan if r2 is None else float(r2),
            n=int(data["n"]),
            dropped=int(data["dropped"]),
            scale=check_scale(data["scale"]),
            residual_std=float(data["residual_std"]),
            id_mean=float(data["id_mean"]),
            id_sum_squares=float(data["id_sum_squares"]),
            level=float(data["level"]),
            draws=np.asarray(data.get("draws", []), dtype=np.float64).reshape(-1, 2),
        )


def fit_line(
    id_acc: Any,
    ood_acc: Any,
    scale: str = "probit",
    *,
    bootstrap: int = 1000,
    seed: int | None = 0,
    level: float = 0.95,
) -> Line:
    """Fit the accuracy line of a pool of models (Miller et al., arXiv 2107.04649).

    Ordinary least squares of ``to_scale(ood_acc)`` on ``to_scale(id_acc)``, one point per
    model, as ``scipy.stats.linregress`` would compute it in the transformed space.

    Args:
        id_acc: in-distribution accuracy of each model, fractions in [0, 1].
        ood_acc: out-of-distribution accuracy of the same models, same order.
        scale: ``"probit"`` (the paper's axes), ``"logit"`` or ``"linear"``.
        bootstrap: number of bootstrap refits (models resampled with replacement); 0 for none.
        seed: seed of ``numpy.random.default_rng`` for the bootstrap; the same seed gives the
            same draws.
        level: coverage of the bootstrap band and of the prediction interval.

    Returns:
        The fitted ``Line``. A model whose ID or OOD accuracy is NaN is left out and counted in
        ``Line.dropped``.

    Raises:
        DataError: lengths differ, a value lies outside [0, 1], fewer than 3 models have both
            values, or all of their ID accuracies are equal (no line through them).
        ConfigError: an unknown scale, a negative ``bootstrap`` or ``level`` outside (0, 1).
    """
    scale = check_scale(scale)
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, (int, np.integer)):
        raise ConfigError(f"bootstrap must be a whole number of draws; got {bootstrap!r}")
    if bootstrap < 0:
        raise ConfigError(f"bootstrap must be ≥ 0 draws; got {bootstrap}")
    if not 0 < level < 1:
        raise ConfigError(f"level must lie strictly between 0 and 1; got {level!r}")
    x_acc, y_acc = _pair(id_acc, ood_acc)
    keep = ~(np.isnan(x_acc) | np.isnan(y_acc))
    n, dropped = int(keep.sum()), int((~keep).sum())
    if n < 3:
        # Two points fit any line exactly: no scatter to measure, no interval to give.
        raise DataError(
            f"a line needs at least 3 models with both accuracies; got {n}"
            + (f" ({dropped} left out for a missing value)" if dropped else "")
        )
    x = to_scale(x_acc[keep], scale)
    y = to_scale(y_acc[keep], scale)
    if x.max() == x.min():
        raise DataError(
            f"all {n} models have the same ID accuracy on the {scale} scale; "
            "a line needs models of different ID accuracy"
        )
    slope, bias = (float(v) for v in _least_squares(x, y))
    residuals = y - (slope * x + bias)
    total = float(((y - y.mean()) ** 2).sum())
    sum_residuals = float((residuals**2).sum())
    # Constant OOD accuracies leave R² undefined (0/0); say so rather than invent a number.
    r2 = 1 - sum_residuals / total if total > 0 else math.nan
    draws = _bootstrap(x, y, int(bootstrap), seed) if bootstrap else np.empty((0, 2))
    return Line(
        slope=slope,
        bias=bias,
        r2=r2,
        n=n,
        dropped=dropped,
        scale=scale,
        residual_std=math.sqrt(sum_residuals / (n - 2)),
        id_mean=float(x.mean()),
        id_sum_squares=float(((x - x.mean()) ** 2).sum()),
        level=float(level),
        draws=draws,
    )


def cross_validated_predictions(
    id_acc: Any, ood_acc: Any, scale: str = "probit", *, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Each model's OOD accuracy read off a line fitted on the *other* models' OOD labels.

    The supervised reference for the label-free predictors of ``stalwart.shift.predictors``:
    what accuracy on the line (arXiv 2107.04649) gives when some models have been evaluated
    with OOD labels. Models are split into ``folds`` seeded folds; each fold's OOD accuracies
    are predicted from its ID accuracies by the line of the remaining folds.

    Args:
        id_acc: in-distribution accuracy of each model, fractions in [0, 1].
        ood_acc: out-of-distribution accuracy of the same models.
        scale: ``"probit"``, ``"logit"`` or ``"linear"``.
        folds: number of folds, 2 to the number of models (that many: leave one out).
        seed: seed of the fold assignment.

    Returns:
        (models,) predicted OOD accuracies, NaN where a model's ID accuracy is missing.

    Raises:
        ConfigError: ``folds`` below 2 or above the number of models.
        DataError: fewer than 3 models outside a fold, or as ``fit_line`` for a fold whose
            remaining models admit no line.
    """
    x_acc, y_acc = _pair(id_acc, ood_acc)
    if (
        isinstance(folds, bool)
        or not isinstance(folds, (int, np.integer))
        or not (2 <= folds <= len(x_acc))
    ):
        raise ConfigError(f"folds must be a whole number from 2 to {len(x_acc)}; got {folds!r}")
    smallest = len(x_acc) - math.ceil(len(x_acc) / folds)
    if smallest < 3:
        raise DataError(
            f"with {len(x_acc)} models in {folds} folds a line is fitted on {smallest} models; "
            "it needs at least 3: use more folds (or more models)"
        )
    order = np.random.default_rng(seed).permutation(len(x_acc))
    predicted = np.full(len(x_acc), np.nan)
    for held_out in np.array_split(order, folds):
        rest = np.setdiff1d(order, held_out)
        line = fit_line(x_acc[rest], y_acc[rest], scale, bootstrap=0)
        predicted[held_out] = line.predict(x_acc[held_out]).ood_acc
    return predicted
