"""Predicting each model's accuracy on a shifted set from its outputs there, without labels.

Every predictor reads a ``ModelPool``: a set of models, each with its ``Outputs`` on a labelled
in-distribution (ID) set, usually validation, and on one unlabelled out-of-distribution (OOD)
set, all models on the same examples. It returns one predicted OOD accuracy per model.

- ``naive``: the ID accuracy, the floor every method should beat under shift.
- ``atc``: average thresholded confidence (Garg et al., arXiv 2201.04234).
- ``doc``: difference of confidences (Guillory et al., arXiv 2107.03315).
- ``aline-s`` and ``aline-d``: agreement on the line (Baek et al., arXiv 2206.13089).

Predictors live in the ``PREDICTORS`` registry and are built with their options, e.g.
``PREDICTORS.build("atc", score="confidence")(pool)``, or in one call with ``predict``.
``evaluate_predictors`` scores them against true OOD accuracies, shift by shift.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from stalwart.errors import ConfigError, DataError, closest, shorten
from stalwart.registry import Registry
from stalwart.shift.outputs import Outputs
from stalwart.shift.scaling import Scale, check_scale, to_accuracy, to_scale

if TYPE_CHECKING:
    import pandas as pd

Predictor = Callable[["ModelPool"], np.ndarray]
"""Maps a pool of models to one predicted OOD accuracy per model, in the pool's order."""

Score = Literal["negative_entropy", "confidence"]
SCORES: tuple[Score, ...] = ("negative_entropy", "confidence")
DEFAULT_PREDICTORS = ("naive", "atc", "doc", "aline-s", "aline-d")

PREDICTORS: Registry[Predictor] = Registry("predictor")


@dataclass(frozen=True, eq=False)
class ModelPool:
    """Several models on one labelled ID set and one unlabelled shifted (OOD) set.

    Attributes:
        names: one unique name per model.
        id_outputs: each model's outputs on the ID set, in the order of ``names``.
        id_labels: (n_id,) labels of the ID set, shared by all models.
        ood_outputs: each model's outputs on the OOD set (the same examples for every model).
    """

    names: tuple[str, ...]
    id_outputs: tuple[Outputs, ...]
    id_labels: np.ndarray
    ood_outputs: tuple[Outputs, ...]

    def __post_init__(self) -> None:
        # Accept lists (or any sequence) but store tuples, so the pool stays immutable.
        object.__setattr__(self, "names", tuple(self.names))
        object.__setattr__(self, "id_outputs", tuple(self.id_outputs))
        object.__setattr__(self, "ood_outputs", tuple(self.ood_outputs))
        object.__setattr__(self, "id_labels", np.asarray(self.id_labels))
        names, n_models = self.names, len(self.names)
        if n_models == 0:
            raise DataError("a model pool needs at least one model; got none")
        if not all(isinstance(name, str) for name in names):
            raise DataError(f"model names must be strings; got {shorten(names)}")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise DataError(f"model names must be unique; repeated: {shorten(duplicates)}")
        for which in ("id_outputs", "ood_outputs"):
            outputs = getattr(self, which)
            if len(outputs) != n_models:
                raise DataError(f"{n_models} model names but {len(outputs)} {which}")
            for name, output in zip(names, outputs, strict=True):
                if not isinstance(output, Outputs):
                    raise DataError(
                        f"{which} of model {name!r} must be an Outputs; got {type(output).__name__}"
                    )
        if self.id_labels.ndim != 1:
            raise DataError(
                f"id_labels must be one label per example; got shape {self.id_labels.shape}"
            )
        for name, output in zip(names, self.id_outputs, strict=True):
            if len(output) != len(self.id_labels):
                raise DataError(
                    f"model {name!r} has {len(output)} ID outputs for "
                    f"{len(self.id_labels)} ID labels"
                )
        n_ood = len(self.ood_outputs[0])
        for name, output in zip(names, self.ood_outputs, strict=True):
            if len(output) != n_ood:
                raise DataError(
                    f"all models must be evaluated on the same OOD examples: model {names[0]!r} "
                    f"has {n_ood} OOD outputs, model {name!r} has {len(output)}"
                )

    @classmethod
    def from_mappings(
        cls,
        id_outputs: Mapping[str, Outputs],
        id_labels: np.ndarray,
        ood_outputs: Mapping[str, Outputs],
    ) -> ModelPool:
        """A pool from ``{model name: Outputs}`` on ID and OOD; both must name the same models."""
        missing = sorted(set(id_outputs) ^ set(ood_outputs))
        if missing:
            raise DataError(
                f"ID and OOD outputs must name the same models; only in one of them: "
                f"{shorten(missing)}"
            )
        names = tuple(id_outputs)
        return cls(
            names=names,
            id_outputs=tuple(id_outputs[name] for name in names),
            id_labels=id_labels,
            ood_outputs=tuple(ood_outputs[name] for name in names),
        )

    def __len__(self) -> int:
        return len(self.names)

    def id_accuracy(self) -> np.ndarray:
        """(models,) accuracy of each model on the labelled ID set."""
        return np.array([output.accuracy(self.id_labels) for output in self.id_outputs])

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """The (first, second) model indices of every unordered pair, first < second."""
        return np.triu_indices(len(self), k=1)

    def agreements(self) -> tuple[np.ndarray, np.ndarray]:
        """(ID, OOD) agreement of every pair in ``pairs()``: neither needs a label."""
        return _pair_agreements(self.id_outputs), _pair_agreements(self.ood_outputs)


def _pair_agreements(outputs: Sequence[Outputs]) -> np.ndarray:
    predictions = np.stack([output.predictions for output in outputs])
    # One row at a time keeps memory at (models, examples) even for a hundred-model testbed.
    per_row = [
        (predictions[i] == predictions[i + 1 :]).mean(axis=1) for i in range(len(outputs) - 1)
    ]
    return np.concatenate(per_row) if per_row else np.empty(0)


def check_score(score: str) -> Score:
    """``score`` itself, or a ConfigError listing the choices."""
    if score not in SCORES:
        raise ConfigError(
            f"unknown score {shorten(score)}{closest(str(score), SCORES)}; "
            f"choose from {list(SCORES)}"
        )
    return score  # type: ignore[return-value]


@PREDICTORS.register("naive")
def naive() -> Predictor:
    """Each model's ID accuracy, taken as its OOD accuracy: exact only when nothing shifts.

    The baseline the label-free methods are measured against; under a shift that hurts every
    model it overestimates every model by the size of the drop.
    """

    def predictor(pool: ModelPool) -> np.ndarray:
        return pool.id_accuracy()

    return predictor


def atc_threshold(id_scores: np.ndarray, n_correct: int) -> tuple[float, float]:
    """The threshold t and tie weight q that count exactly ``n_correct`` ID examples.

    An example counts 1 if its score is above t and q if it equals t, so that
    #{s > t} + q·#{s = t} = ``n_correct`` exactly. t is the lowest of −∞ and the distinct
    scores with at most ``n_correct`` scores strictly above it. Without ties at the boundary
    q is 0 and this is Garg et al.'s threshold; with ties (a k-nearest-neighbour model whose
    every confidence is 1, say), no threshold alone can match the ID accuracy, and the weight
    shares the tied examples out, as a randomised threshold would in expectation.
    """
    scores = np.sort(np.asarray(id_scores, dtype=np.float64))
    candidates = np.concatenate([[-np.inf], np.unique(scores)])
    above = len(scores) - np.searchsorted(scores, candidates, side="right")
    chosen = int(np.flatnonzero(above <= n_correct)[0])
    threshold = float(candidates[chosen])
    tied = int((scores == threshold).sum())
    weight = (n_correct - int(above[chosen])) / tied if tied else 0.0
    return threshold, weight


@PREDICTORS.register("atc")
def atc(*, score: Score = "negative_entropy") -> Predictor:
    """Average thresholded confidence: the fraction of OOD examples scored above an ID threshold.

    Garg, Balakrishnan, Lipton, Neyshabur and Sedghi, "Leveraging Unlabeled Data to Predict
    Out-of-Distribution Performance", ICLR 2022 (arXiv 2201.04234), Section 3. On the labelled
    ID set, pick the threshold t at which the fraction of examples with score s(x) > t equals
    the ID accuracy; predict

        acc_OOD ≈ mean over OOD examples of 1[s(x) > t]   (+ q·1[s(x) = t] for ties, see
                                                            ``atc_threshold``).

    The score is the negative entropy Σ p log p of the softmax (ATC-NE, the paper's better
    variant, the default) or the maximum softmax probability (``score="confidence"``, ATC-MC).
    Exact when, on both sets, a prediction is correct iff its score exceeds one threshold.

    Args:
        score: ``"negative_entropy"`` or ``"confidence"``.
    """
    check_score(score)

    def predictor(pool: ModelPool) -> np.ndarray:
        predicted = []
        for id_output, ood_output in zip(pool.id_outputs, pool.ood_outputs, strict=True):
            n_correct = int((id_output.predictions == pool.id_labels).sum())
            threshold, weight = atc_threshold(getattr(id_output, score), n_correct)
            ood_scores = np.asarray(getattr(ood_output, score), dtype=np.float64)
            counted = (ood_scores > threshold) + weight * (ood_scores == threshold)
            predicted.append(float(counted.mean()))
        return np.array(predicted)

    return predictor


@PREDICTORS.register("doc")
def doc() -> Predictor:
    """Difference of confidences: the ID accuracy lowered by the drop in mean confidence.

    Guillory, Shankar, Ebrahimi, Darrell and Schmidt, "Predicting with Confidence on Unseen
    Distributions", ICCV 2021 (arXiv 2107.03315), Section 3. With ``conf`` the maximum softmax
    probability averaged over a set,

        acc_OOD ≈ acc_ID − (conf_ID − conf_OOD),

    exact when the confidence drops by as much as the accuracy (e.g. a model calibrated on
    both sets). The prediction is clipped to [0, 1]: a true accuracy lies there, so clipping
    never moves a prediction away from it.
    """

    def predictor(pool: ModelPool) -> np.ndarray:
        confidence_drop = np.array(
            [
                np.mean(id_output.confidence, dtype=np.float64)
                - np.mean(ood_output.confidence, dtype=np.float64)
                for id_output, ood_output in zip(pool.id_outputs, pool.ood_outputs, strict=True)
            ]
        )
        return np.clip(pool.id_accuracy() - confidence_drop, 0.0, 1.0)

    return predictor


@dataclass(frozen=True)
class AgreementLine:
    """OOD against ID agreement of all model pairs, fitted on ``scale``: y = slope·x + bias."""

    slope: float
    bias: float
    scale: Scale


MIN_ALINE_MODELS = 3
"""ALine needs a line through pairs, and ALine-D a system with at least as many pairs as models."""


def fit_agreement_line(pool: ModelPool, scale: Scale = "probit") -> AgreementLine:
    """Least-squares line through (ID agreement, OOD agreement) of every pair, on ``scale``.

    Agreements of exactly 0 or 1 (two models that always or never agree) are clipped to
    [EPS, 1 − EPS] by ``scaling.to_scale`` before the probit, so they stay in the fit.
    """
    check_scale(scale)
    if len(pool) < MIN_ALINE_MODELS:
        raise DataError(
            f"agreement on the line needs at least {MIN_ALINE_MODELS} models (pairs to fit a "
            f"line through); the pool has {len(pool)}: {list(pool.names)}"
        )
    id_agreement, ood_agreement = pool.agreements()
    x, y = to_scale(id_agreement, scale), to_scale(ood_agreement, scale)
    if np.ptp(x) <= 1e-12:
        raise DataError(
            "every pair of models agrees equally often on the ID set "
            f"({float(id_agreement[0]):.4f}), so the agreement line's slope is undetermined; "
            "add models that differ more"
        )
    slope, bias = np.polyfit(x, y, deg=1)
    return AgreementLine(slope=float(slope), bias=float(bias), scale=scale)


@PREDICTORS.register("aline-s")
def aline_s(*, scale: Scale = "probit") -> Predictor:
    """ALine-S: the agreement line, fitted without labels, applied to each model's ID accuracy.

    Baek, Jiang, Raghunathan and Kolter, "Agreement-on-the-Line: Predicting the Performance of
    Neural Networks under Distribution Shift", NeurIPS 2022 (arXiv 2206.13089), Section 4.
    Whenever accuracy is on the line (Miller et al., arXiv 2107.04649), the ID-vs-OOD agreement
    of model pairs lies on a line with the same slope and bias. Agreement needs no labels, so
    fit Φ⁻¹(agr_OOD) = a·Φ⁻¹(agr_ID) + b by least squares over all pairs and predict

        acc_OOD(h) ≈ Φ(a·Φ⁻¹(acc_ID(h)) + b).

    Needs at least three models. Exact when accuracies and agreements share one line.

    Args:
        scale: the axes of the line, ``"probit"`` as in the paper (or ``"logit"``, ``"linear"``).
    """
    check_scale(scale)

    def predictor(pool: ModelPool) -> np.ndarray:
        line = fit_agreement_line(pool, scale)
        id_scaled = to_scale(pool.id_accuracy(), scale)
        return to_accuracy(line.slope * id_scaled + line.bias, scale)

    return predictor


def solve_aline_d(
    id_accuracy: np.ndarray,
    id_agreement: np.ndarray,
    ood_agreement: np.ndarray,
    slope: float,
    scale: Scale = "probit",
) -> np.ndarray:
    """Least-squares OOD accuracies from ALine-D's per-pair equations (see ``aline_d``).

    Args:
        id_accuracy: (models,) ID accuracies.
        id_agreement: (pairs,) ID agreements, pairs ordered as ``np.triu_indices(models, 1)``.
        ood_agreement: (pairs,) OOD agreements, same order.
        slope: the agreement line's slope (its bias cancels and is not needed).
        scale: the axes the line lives on.

    Returns:
        (models,) predicted OOD accuracies.
    """
    n_models = len(id_accuracy)
    first, second = np.triu_indices(n_models, k=1)
    if not len(id_agreement) == len(ood_agreement) == len(first):
        raise DataError(
            f"{n_models} models make {len(first)} pairs; got {len(id_agreement)} ID and "
            f"{len(ood_agreement)} OOD agreements"
        )
    id_scaled = to_scale(id_accuracy, scale)
    rows = np.arange(len(first))
    system = np.zeros((len(first), n_models))
    system[rows, first] = 0.5
    system[rows, second] = 0.5
    target = to_scale(ood_agreement, scale) + slope * (
        0.5 * (id_scaled[first] + id_scaled[second]) - to_scale(id_agreement, scale)
    )
    # With three or more models the pair graph has a triangle (an odd cycle), so the system has
    # full column rank and the least-squares solution is unique.
    ood_scaled, *_ = np.linalg.lstsq(system, target, rcond=None)
    return to_accuracy(ood_scaled, scale)


@PREDICTORS.register("aline-d")
def aline_d(*, scale: Scale = "probit") -> Predictor:
    """ALine-D: every model's OOD accuracy from a least-squares system over all model pairs.

    Baek, Jiang, Raghunathan and Kolter, NeurIPS 2022 (arXiv 2206.13089), Section 4. If the
    accuracy of models h, h' and their agreement lie on one line y = a·x + b (x = Φ⁻¹ of the ID
    value, y = Φ⁻¹ of the OOD value), averaging the two accuracy equations and subtracting the
    agreement equation cancels b:

        ½(Φ⁻¹ acc_OOD(h) + Φ⁻¹ acc_OOD(h')) = Φ⁻¹ agr_OOD(h, h')
            + a·(½(Φ⁻¹ acc_ID(h) + Φ⁻¹ acc_ID(h')) − Φ⁻¹ agr_ID(h, h')).

    With a from the agreement fit (as in ALine-S), everything on the right is known without
    OOD labels; the equations of all pairs form a linear system in the unknowns Φ⁻¹ acc_OOD(h),
    solved by least squares. The fitted bias is never used; each model's prediction draws on
    its agreements with every other model. Needs at least three models.

    Args:
        scale: the axes of the line, ``"probit"`` as in the paper (or ``"logit"``, ``"linear"``).
    """
    check_scale(scale)

    def predictor(pool: ModelPool) -> np.ndarray:
        line = fit_agreement_line(pool, scale)
        id_agreement, ood_agreement = pool.agreements()
        return solve_aline_d(pool.id_accuracy(), id_agreement, ood_agreement, line.slope, scale)

    return predictor


def predict(pool: ModelPool, name: str, **options: Any) -> np.ndarray:
    """Predicted OOD accuracy of every model in ``pool`` by predictor ``name`` with ``options``."""
    predicted = np.asarray(PREDICTORS.build(name, **options)(pool), dtype=np.float64)
    assert predicted.shape == (len(pool),), (name, predicted.shape)
    return predicted


def predictions_table(
    pools: Mapping[str, ModelPool],
    names: Sequence[str] = DEFAULT_PREDICTORS,
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    ood_accuracy: Mapping[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """One row per shift, predictor and model: the predicted OOD accuracy (and the true one).

    Args:
        pools: shift name → the pool of models on that shift.
        names: registered predictor names.
        options: predictor name → its keyword options, e.g. ``{"atc": {"score": "confidence"}}``.
        ood_accuracy: shift name → (models,) true OOD accuracies in the pool's order; adds the
            columns ``ood_accuracy`` and ``absolute_error``.

    Returns:
        Columns ``shift, predictor, model, predicted`` (+ ``ood_accuracy, absolute_error``).
    """
    import pandas as pd  # only the tables need pandas

    options = dict(options or {})
    for name in [*names, *options]:
        PREDICTORS.get(name)  # a wrong name lists the choices before any work
    unused = sorted(set(options) - set(names))
    if unused:
        raise ConfigError(
            f"options given for predictors not asked for: {unused}; asked: {list(names)}"
        )
    for name in names:
        PREDICTORS.check_params(name, dict(options.get(name, {})))
    truth = _check_ood_accuracy(pools, ood_accuracy) if ood_accuracy is not None else None
    rows = []
    for shift, pool in pools.items():
        for name in names:
            predicted = predict(pool, name, **options.get(name, {}))
            for index, model in enumerate(pool.names):
                row = {"shift": shift, "predictor": name, "model": model}
                row["predicted"] = float(predicted[index])
                if truth is not None:
                    row["ood_accuracy"] = float(truth[shift][index])
                    row["absolute_error"] = abs(row["predicted"] - row["ood_accuracy"])
                rows.append(row)
    columns = ["shift", "predictor", "model", "predicted"]
    if truth is not None:
        columns += ["ood_accuracy", "absolute_error"]
    return pd.DataFrame(rows, columns=columns)


def _check_ood_accuracy(
    pools: Mapping[str, ModelPool], ood_accuracy: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    if set(pools) != set(ood_accuracy):
        raise DataError(
            f"true OOD accuracies must be given for exactly the shifts pooled; pooled "
            f"{sorted(pools)}, given {sorted(ood_accuracy)}"
        )
    checked = {}
    for shift, pool in pools.items():
        accuracy = np.asarray(ood_accuracy[shift], dtype=np.float64)
        if accuracy.shape != (len(pool),):
            raise DataError(
                f"shift {shift!r}: {len(pool)} models but true OOD accuracies of shape "
                f"{accuracy.shape}"
            )
        if not np.isfinite(accuracy).all() or (accuracy < 0).any() or (accuracy > 1).any():
            raise DataError(
                f"shift {shift!r}: true OOD accuracies must be fractions in [0, 1]; "
                f"got {shorten(accuracy.tolist())}"
            )
        checked[shift] = accuracy
    return checked


def evaluate_predictors(
    pools: Mapping[str, ModelPool],
    ood_accuracy: Mapping[str, np.ndarray],
    names: Sequence[str] = DEFAULT_PREDICTORS,
    *,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """How far each predictor's OOD accuracies are from the true ones, shift by shift.

    Args:
        pools: shift name → the pool of models on that shift.
        ood_accuracy: shift name → (models,) true OOD accuracies, in the pool's model order.
        names: registered predictor names.
        options: predictor name → its keyword options.

    Returns:
        One row per shift and predictor, in the order given: ``shift, predictor, models,
        mean_absolute_error, max_absolute_error`` (errors as fractions, not percent). The
        per-model predictions are ``predictions_table(..., ood_accuracy=...)``.
    """
    table = predictions_table(pools, names, options=options, ood_accuracy=ood_accuracy)
    summary = (
        table.groupby(["shift", "predictor"], sort=False)["absolute_error"]
        .agg(models="size", mean_absolute_error="mean", max_absolute_error="max")
        .reset_index()
    )
    return summary
