"""Overparameterization exacerbates spurious correlations (Sagawa et al. 2020, arXiv 2005.04345).

The study sweeps the number of random features ``N`` of a :class:`RandomFeatures` model on the
paper's synthetic data (``toy_spurious``: a noisy core feature agrees with the label, a clean
spurious feature agrees with it in a fraction ``majority_fraction`` of training examples) and
fits the linear head by nearly unregularised logistic regression, as in the paper's
implicit-memorisation setting (Sec. 4, reference code ``ssagawa/overparam_spur_corr``).

The finding under test: past the interpolation threshold (zero training error), a larger model
lowers average error but **raises worst-group error when minority groups are upweighted**,
while **subsampling the majority groups** keeps worst-group error low and falling as ``N``
grows; plain ERM has a poor worst group at every size.

Three training objectives, each on the same data and the same random features:

* ``erm``: every training example once.
* ``upweight``: each group's examples are replicated until the group is as large as the
  largest group. Sizes rarely divide evenly, so each example of a group of size ``n_g`` is
  repeated ``⌊m/n_g⌋`` times and a further ``m mod n_g`` of them, drawn without replacement
  with a seeded generator, once more (``m`` = largest group size); every group then has exactly
  ``m`` rows and every original example is present. This is the reference's ``oversample``.
* ``subsample``: every group is reduced to the size of the smallest group by drawing without
  replacement with a seeded generator (the reference's ``undersample``).

Each fit is scikit-learn's ``LogisticRegression`` (lbfgs, no intercept) with ``C = 1/(rows·λ)``,
``rows`` being the number of (resampled) training rows. Its coefficients are copied into the
model's ``head``, so each fit is an ordinary stalwart model. Errors are 0-1 errors; the
"average" test error weights each group's test error by its share of the original training set,
as the reference does (the test set itself is balanced); the plain balanced-test average is
recorded too.
"""

from __future__ import annotations

import io
import json
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
import yaml
from pydantic import Field, field_validator
from rich.table import Table
from torch import Tensor

from stalwart.config import NamedConfig
from stalwart.data.core import GroupedDataset, Splits
from stalwart.data.samplers import balanced_subsample, numpy_choice
from stalwart.experiments.executors import Executor, LocalExecutor
from stalwart.experiments.kinds import Reporter, register_kind
from stalwart.io import atomic_write_bytes, atomic_write_text, write_json
from stalwart.metrics.group import GroupMetrics, group_metrics
from stalwart.models.heads import write_linear_head
from stalwart.models.random_features import RandomFeatures

Objective = Literal["erm", "upweight", "subsample"]
OBJECTIVES: tuple[Objective, ...] = ("erm", "upweight", "subsample")
SOURCE = "toy_spurious"
# Train error at or below this counts as interpolating ("train error ≈ 0") in the summary and
# plot: lbfgs stops on a gradient tolerance, which can leave a stray point or two misfit.
INTERPOLATION_TOLERANCE = 0.005
# 10^(2 + k/6), k = 0..12: from well below the interpolation threshold (measured at N ≈ 700 for
# ERM and upweighting with n = 3000, N ≈ 200 for subsampling) to well above it.
DEFAULT_N_FEATURES = [100, 147, 215, 316, 464, 681, 1000, 1468, 2154, 3162, 4642, 6813, 10000]


class OverparamConfig(NamedConfig):
    """The sweep over model size ``N``, objectives and seeds (arXiv 2005.04345, Sec. 4).

    ``data`` holds parameters of the ``toy_spurious`` source (``name: toy_spurious`` may be
    given, and is the only source allowed; the source's defaults are the paper's
    setting: n = 3000, majority fraction 0.9, 100 core dimensions of variance 100, 100 spurious
    dimensions of variance 1); the seed comes from ``seeds``. ``l2`` is the paper's λ, giving
    ``C = 1/(rows·λ)``. ``tol`` is lbfgs's gradient tolerance on the *summed* loss, the scale on
    which the reference's scikit-learn (≤ 0.23) applied its default 1e-4; today's scikit-learn
    averages the loss, so the fit passes ``tol / rows``.
    """

    kind: Literal["overparam"] = "overparam"
    name: str = "overparam"
    data: dict[str, Any] = Field(default_factory=dict)
    n_features: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: list(DEFAULT_N_FEATURES), min_length=1
    )
    objectives: list[Objective] = Field(default_factory=lambda: list(OBJECTIVES), min_length=1)
    seeds: list[Annotated[int, Field(ge=0)]] = Field(default_factory=lambda: [0], min_length=1)
    l2: float = Field(1e-9, gt=0, description="the paper's λ; C = 1/(rows·λ)")
    max_iter: int = Field(10_000, ge=1, description="lbfgs iteration cap per fit")
    tol: float = Field(1e-4, gt=0, description="lbfgs gradient tolerance on the summed loss")
    workers: int = Field(2, ge=1, description="processes fitting (seed, N) cells in parallel")
    out: str | None = Field(None, description="run directory; default runs/<name>")

    @field_validator("data")
    @classmethod
    def _check_data(cls, value: dict[str, Any]) -> dict[str, Any]:
        from stalwart.data import SOURCES

        value = dict(value)
        # Other experiment configs name their source; this study has exactly one.
        name = value.pop("name", SOURCE)
        if name != SOURCE:
            raise ValueError(f"the study runs on data 'toy_spurious' only; got name {name!r}")
        if "seed" in value:
            raise ValueError("set the seeds with the top-level 'seeds' list, not data.seed")
        SOURCES.check_params(SOURCE, value)  # unknown keys, with the closest valid one
        return value

    @field_validator("n_features", "objectives", "seeds")
    @classmethod
    def _no_repeats(cls, value: list) -> list:
        if len(set(value)) != len(value):
            raise ValueError(f"must not repeat an entry; got {value}")
        return value

    def run_dir(self) -> Path:
        """Where the study writes its results."""
        return Path(self.out) if self.out else Path("runs") / self.name


# --------------------------------------------------------------------------------------------
# Resampling


def _group_positions(groups: np.ndarray, n_groups: int) -> list[np.ndarray]:
    return [np.flatnonzero(groups == g) for g in range(n_groups)]


def upweight_indices(groups: np.ndarray, n_groups: int, rng: np.random.Generator) -> np.ndarray:
    """Row positions that replicate every group up to the size ``m`` of the largest group.

    A group of ``n_g`` examples contributes each example ``⌊m/n_g⌋`` times plus ``m mod n_g``
    of them, drawn without replacement, once more, so every non-empty group ends with exactly
    ``m`` rows and contains each of its original examples. Empty groups stay empty.
    """
    positions = _group_positions(np.asarray(groups), n_groups)
    largest = max(len(p) for p in positions)
    parts = []
    for members in positions:
        if len(members) == 0:
            continue
        copies, remainder = divmod(largest, len(members))
        parts.append(np.tile(members, copies))
        parts.append(np.sort(rng.choice(members, remainder, replace=False)))
    return np.concatenate(parts)


def subsample_indices(groups: np.ndarray, n_groups: int, rng: np.random.Generator) -> np.ndarray:
    """Row positions of a random subset holding as many examples of each group as the smallest.

    Only non-empty groups count; each is reduced, without replacement, to the size of the
    smallest non-empty group (:func:`stalwart.data.samplers.balanced_subsample`).
    """
    return balanced_subsample(torch.from_numpy(np.asarray(groups)), numpy_choice(rng)).numpy()


def resample_indices(
    objective: Objective, groups: np.ndarray, n_groups: int, seed: int
) -> np.ndarray:
    """The training rows of ``objective``; the draw depends on ``seed`` and the objective only.

    The same seed gives the same rows at every model size, so along a sweep only ``N`` changes.
    """
    rng = np.random.default_rng([seed, OBJECTIVES.index(objective)])
    if objective == "erm":
        return np.arange(len(groups))
    if objective == "upweight":
        return upweight_indices(groups, n_groups, rng)
    if objective == "subsample":
        return subsample_indices(groups, n_groups, rng)
    raise ValueError(f"unknown objective {objective!r}; choose from {list(OBJECTIVES)}")


# --------------------------------------------------------------------------------------------
# Fitting one model


@dataclass
class HeadFit:
    """A logistic-regression fit of a model's head, with how the solver ended."""

    rows: np.ndarray  # positions of the training rows the fit saw (with repeats)
    iterations: int
    converged: bool
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


def fit_head(
    model: RandomFeatures,
    features: Tensor,
    labels: Tensor,
    rows: np.ndarray,
    *,
    l2: float = 1e-9,
    max_iter: int = 10_000,
    tol: float = 1e-4,
) -> HeadFit:
    """Fit ``model.head`` by lbfgs logistic regression on ``features[rows]``, in place.

    Args:
        model: a two-class model whose ``head`` is ``nn.Linear(N, 2)`` without bias.
        features: ``model.features(x)`` of the training set, float64 for an exact copy.
        labels: class labels in ``{0, 1}``.
        rows: the training rows to fit on; a row listed k times counts k times (it is passed
            once, with sample weight k).
        l2: the ridge strength λ; scikit-learn's ``C = 1/(len(rows)·λ)``.
        max_iter: lbfgs iteration cap.
        tol: gradient tolerance on the summed loss (divided by ``len(rows)`` for scikit-learn).

    Returns:
        The rows, iteration count, whether lbfgs stopped before ``max_iter``, and any warning
        messages (``ConvergenceWarning`` among them).
    """
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    # A row repeated k times and a row of weight k give the same objective and gradient
    # (scikit-learn averages by the weight sum, len(rows)), so lbfgs takes the same steps up to
    # rounding, without a copy of the upweighted features: 3000 rows instead of 10800 in the
    # paper's setting.
    distinct, repeats = np.unique(rows, return_counts=True)
    x = features.detach().cpu().double().numpy()[distinct]
    y = labels.cpu().numpy()[distinct]
    weight = None if (repeats == 1).all() else repeats.astype(np.float64)
    solver = LogisticRegression(
        C=1.0 / (len(rows) * l2),
        fit_intercept=False,
        solver="lbfgs",
        max_iter=max_iter,
        tol=tol / len(rows),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        solver.fit(x, y, sample_weight=weight)
    if list(solver.classes_) != [0, 1]:
        raise ValueError(f"the head fit needs labels 0 and 1; got classes {solver.classes_}")
    write_linear_head(model.head, solver.coef_, 0.0, solver.classes_)
    iterations = int(np.max(solver.n_iter_))
    return HeadFit(
        rows=rows,
        iterations=iterations,
        converged=iterations < max_iter,
        warnings=sorted(
            {f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught}
        ),
        seconds=time.perf_counter() - started,
    )


def random_features_model(train: GroupedDataset, n_features: int, seed: int) -> RandomFeatures:
    """The study's model, in float64 so that its predictions equal scikit-learn's exactly.

    Call ``.float()`` on it for float32 inputs.
    """
    from stalwart import models

    model = models.build("random_features", train, n_features=n_features, seed=seed)
    return model.double().eval()  # type: ignore[return-value]


def features_of(model: RandomFeatures, x: Tensor) -> Tensor:
    """``model.features`` in float64, without gradients."""
    with torch.no_grad():
        return model.features(x.double())


def fit_random_features(
    train: GroupedDataset,
    n_features: int,
    objective: Objective,
    *,
    seed: int = 0,
    l2: float = 1e-9,
    max_iter: int = 10_000,
    tol: float = 1e-4,
) -> tuple[RandomFeatures, HeadFit]:
    """One model of the study: ``N`` random features, head fitted under ``objective``.

    Returns:
        The fitted float64 :class:`RandomFeatures` model and how its head fit ended.
    """
    model = random_features_model(train, n_features, seed)
    rows = resample_indices(objective, train.group.numpy(), train.n_groups, seed)
    fit = fit_head(
        model, features_of(model, train.x), train.y, rows, l2=l2, max_iter=max_iter, tol=tol
    )
    return model, fit


# --------------------------------------------------------------------------------------------
# The sweep


def _predict(model: RandomFeatures, features: Tensor) -> Tensor:
    with torch.no_grad():
        return model.head(features).argmax(dim=1)


def _errors(metrics: GroupMetrics) -> dict[str, Any]:
    return {
        "error": 1 - metrics.accuracy,
        "worst_group_error": 1 - metrics.worst_group_accuracy,
        "group_errors": [1 - a for a in metrics.group_accuracy],
    }


@lru_cache(maxsize=8)
def _load(seed: int, data_json: str) -> Splits:
    from stalwart import data

    return data.load(SOURCE, seed=seed, **json.loads(data_json))


def _cell(task: tuple[dict[str, Any], int, int]) -> list[dict[str, Any]]:
    """Every objective's record for one (seed, N): the features are computed once."""
    config_dump, seed, n_features = task
    cfg = OverparamConfig.model_validate(config_dump)
    splits = _load(seed, json.dumps(cfg.data, sort_keys=True))
    train, test = splits.train, splits.test
    model = random_features_model(train, n_features, seed)
    train_features, test_features = features_of(model, train.x), features_of(model, test.x)
    train_counts = train.group_counts()
    records = []
    for objective in cfg.objectives:
        rows = resample_indices(objective, train.group.numpy(), train.n_groups, seed)
        fit = fit_head(
            model,
            train_features,
            train.y,
            rows,
            l2=cfg.l2,
            max_iter=cfg.max_iter,
            tol=cfg.tol,
        )
        index = torch.from_numpy(rows)
        fitted = group_metrics(
            _predict(model, train_features[index]),
            train.y[index],
            train.group[index],
            train.group_names,
        )
        tested = group_metrics(
            _predict(model, test_features),
            test.y,
            test.group,
            test.group_names,
            reference_counts=train_counts,
        )
        train_errors, test_errors = _errors(fitted), _errors(tested)
        records.append(
            {
                "objective": objective,
                "n_features": n_features,
                "seed": seed,
                "train_rows": len(rows),
                "train_group_counts": list(fitted.group_counts),
                "C": 1.0 / (len(rows) * cfg.l2),
                "train_error": train_errors["error"],
                "train_worst_group_error": train_errors["worst_group_error"],
                "train_group_errors": train_errors["group_errors"],
                # the paper's "average": group errors weighted by original training shares
                "test_error": 1 - tested.weighted_accuracy,
                "test_balanced_error": test_errors["error"],
                "test_worst_group_error": test_errors["worst_group_error"],
                "test_group_errors": test_errors["group_errors"],
                "group_names": list(tested.group_names),
                "iterations": fit.iterations,
                "converged": fit.converged,
                "warnings": fit.warnings,
                "fit_seconds": fit.seconds,
            }
        )
    return records


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run BLAS, OpenMP and torch on one thread inside the block, then restore them.

    Every fit runs this way, in process or in a worker, for two reasons. Speed: lbfgs is a
    chain of memory-bound matrix-vector products; on 2 cores that another job also used, two
    BLAS threads made a sweep 4x slower than one (35.6 s against 8.1 s, measured), and two
    single-threaded worker processes use the cores better. Determinism: one thread fixes the
    order of floating-point sums, so a result does not depend on ``workers``.
    """
    from threadpoolctl import threadpool_limits

    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(torch_threads)


def _cell_single_threaded(task: tuple[dict[str, Any], int, int]) -> list[dict[str, Any]]:
    with single_threaded():
        return _cell(task)


def _order(record: dict[str, Any]) -> tuple:
    return (OBJECTIVES.index(record["objective"]), record["n_features"], record["seed"])


def run_overparam(
    cfg: OverparamConfig,
    progress: Callable[[dict[str, Any]], None] | None = None,
    executor: Executor | None = None,
) -> list[dict[str, Any]]:
    """Run the sweep of arXiv 2005.04345, Sec. 4 and write its run directory.

    For every seed and model size ``N``, draws ``toy_spurious`` data, builds random features,
    fits the head under each objective and measures train and test errors per group. Writes
    ``config.yaml``, ``results.jsonl`` (one line per record, rewritten atomically as cells
    finish), ``summary.json`` (means with min/max over seeds and the interpolation threshold
    of each objective) and ``overparam.png``.

    Args:
        cfg: the study's configuration.
        progress: called with each record as soon as it is measured.
        executor: where the (seed, N) cells run (default: ``cfg.workers`` local processes).

    Returns:
        One record per (objective, N, seed), ordered by objective, then N, then seed.
    """
    started = time.perf_counter()
    run_dir = cfg.run_dir()
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        run_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    )
    dump = cfg.model_dump(mode="json")
    # Largest models first, so that the longest cells do not finish last on a busy pool.
    tasks = [(dump, s, n) for n in sorted(cfg.n_features, reverse=True) for s in cfg.seeds]
    records: list[dict[str, Any]] = []

    def collect(cell_records: list[dict[str, Any]]) -> None:
        records.extend(cell_records)
        records.sort(key=_order)
        lines = "".join(json.dumps(r) + "\n" for r in records)
        atomic_write_text(run_dir / "results.jsonl", lines)
        for record in cell_records:
            if progress is not None:
                progress(record)

    executor = executor or LocalExecutor(cfg.workers)
    for _, cell_records in executor.map(_cell_single_threaded, tasks):
        collect(cell_records)
    _load.cache_clear()

    summary = summarize(records)
    summary["config"] = dump
    summary["seconds"] = time.perf_counter() - started
    write_json(run_dir / "summary.json", summary)
    write_plot(run_dir / "overparam.png", records, title=cfg.name)
    return records


# --------------------------------------------------------------------------------------------
# Summaries, plot and table


def aggregate(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, min and max over seeds of each error, per (objective, N)."""
    cells: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for record in records:
        cells.setdefault((record["objective"], record["n_features"]), []).append(record)
    keys = ("train_error", "test_error", "test_balanced_error", "test_worst_group_error")
    rows = []
    for (objective, n_features), group in cells.items():
        row: dict[str, Any] = {"objective": objective, "n_features": n_features}
        row["seeds"] = sorted(r["seed"] for r in group)
        for key in keys:
            values = [r[key] for r in group]
            row[key] = {"mean": float(np.mean(values)), "min": min(values), "max": max(values)}
        row["all_converged"] = all(r["converged"] for r in group)
        rows.append(row)
    rows.sort(key=lambda r: (OBJECTIVES.index(r["objective"]), r["n_features"]))
    return rows


def interpolation_threshold(rows: Sequence[dict[str, Any]], objective: str) -> int | None:
    """Smallest ``N`` from which the mean train error stays ≤ ``INTERPOLATION_TOLERANCE``."""
    sizes = [r for r in rows if r["objective"] == objective]
    threshold = None
    for row in reversed(sizes):  # sorted by N
        if row["train_error"]["mean"] > INTERPOLATION_TOLERANCE:
            break
        threshold = row["n_features"]
    return threshold


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The aggregated table and, per objective, worst-group error around interpolation.

    For each objective: the interpolation threshold, and the mean worst-group test error at the
    smallest ``N``, at the threshold and at the largest ``N``; ``worst_group_change`` is the
    change from the threshold to the largest ``N`` (positive: overparameterisation hurt).
    """
    rows = aggregate(records)
    trends = {}
    for objective in dict.fromkeys(r["objective"] for r in rows):
        sizes = [r for r in rows if r["objective"] == objective]
        threshold = interpolation_threshold(rows, objective)
        worst = {r["n_features"]: r["test_worst_group_error"]["mean"] for r in sizes}
        trend: dict[str, Any] = {
            "interpolation_threshold": threshold,
            "worst_group_error_smallest_n": worst[sizes[0]["n_features"]],
            "worst_group_error_largest_n": worst[sizes[-1]["n_features"]],
        }
        if threshold is not None:
            trend["worst_group_error_at_threshold"] = worst[threshold]
            trend["worst_group_change"] = worst[sizes[-1]["n_features"]] - worst[threshold]
        trends[objective] = trend
    return {
        "reference": "arXiv 2005.04345 (Sagawa et al. 2020), Sec. 4",
        "interpolation_tolerance": INTERPOLATION_TOLERANCE,
        "average_error": "test group errors weighted by original training group shares",
        "n_records": len(records),
        "converged": all(r["converged"] for r in records),
        "objectives": trends,
        "table": rows,
    }


def write_plot(path: Path, records: Sequence[dict[str, Any]], title: str = "") -> None:
    """Average and worst-group test error against ``N`` (log axis), one line per objective.

    Lines are means over seeds, bands span min to max; dotted vertical lines mark, per
    objective, the smallest ``N`` from which the mean train error stays ≈ 0 (interpolation).
    The average panel weights group errors by the training set's group shares, as the paper.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = aggregate(records)
    figure = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(figure)
    panels = figure.subplots(1, 2, sharey=True)
    colors = {"erm": "tab:gray", "upweight": "tab:red", "subsample": "tab:blue"}
    panel_keys = (
        ("test_error", "average test error (training group shares)"),
        ("test_worst_group_error", "worst-group test error"),
    )
    objectives = list(dict.fromkeys(r["objective"] for r in rows))
    # Objectives often interpolate at the same N: one labelled line per distinct threshold.
    thresholds: dict[int, list[str]] = {}
    for objective in objectives:
        threshold = interpolation_threshold(rows, objective)
        if threshold is not None:
            thresholds.setdefault(threshold, []).append(objective)
    for axis, (key, label) in zip(panels, panel_keys, strict=True):
        for objective in objectives:
            sizes = [r for r in rows if r["objective"] == objective]
            n = [r["n_features"] for r in sizes]
            mean = [r[key]["mean"] for r in sizes]
            color = colors.get(objective)
            axis.plot(n, mean, marker="o", color=color, label=objective)
            low, high = [r[key]["min"] for r in sizes], [r[key]["max"] for r in sizes]
            axis.fill_between(n, low, high, color=color, alpha=0.2, linewidth=0)
        axis.set_ylim(0, max(0.7, axis.get_ylim()[1]))
        for threshold, names in thresholds.items():
            color = colors.get(names[0]) if len(names) == 1 else "black"
            axis.axvline(threshold, color=color, linestyle=":", linewidth=1.2)
            axis.text(
                threshold, 0.01, f" {', '.join(names)}: train error ≈ 0",
                rotation=90, va="bottom", ha="right", fontsize=7, color=color,
                transform=axis.get_xaxis_transform(),
                bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1},
            )  # fmt: skip
        axis.set_xscale("log")
        axis.set_xlabel("number of random features N")
        axis.set_title(label)
        axis.grid(alpha=0.3)
    panels[0].set_ylabel("0-1 error")
    panels[0].legend(title="objective", fontsize=8, title_fontsize=8)
    seeds = sorted({r["seed"] for r in records})
    figure.suptitle(
        f"{title}: overparameterization and spurious correlations (arXiv 2005.04345), "
        f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}",
        fontsize=10,
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, lambda handle: handle.write(buffer.getvalue()))


def _percent(value: float) -> str:
    return "-" if value != value else f"{100 * value:.1f}"


def format_table(records: Sequence[dict[str, Any]]) -> Table:
    """Mean train, average test and worst-group test error (%) per objective and ``N``."""
    rows = aggregate(records)
    seeds = sorted({r["seed"] for r in records})
    table = Table(
        title=f"overparameterization sweep (arXiv 2005.04345), error %, mean of {len(seeds)} "
        f"seed{'s' if len(seeds) > 1 else ''}",
        title_justify="left",
    )
    for column in ("objective", "N", "train", "test avg", "test worst group"):
        table.add_column(column, justify="left" if column == "objective" else "right")
    previous = None
    for row in rows:
        if previous is not None and row["objective"] != previous:
            table.add_section()
        interpolating = row["train_error"]["mean"] <= INTERPOLATION_TOLERANCE
        table.add_row(
            row["objective"] if row["objective"] != previous else "",
            str(row["n_features"]),
            _percent(row["train_error"]["mean"]) + (" *" if interpolating else "  "),
            _percent(row["test_error"]["mean"]),
            _percent(row["test_worst_group_error"]["mean"]),
            style=None if row["all_converged"] else "yellow",
        )
        previous = row["objective"]
    table.caption = (
        "* train error ≈ 0 (interpolating); avg weights groups by training shares; "
        "yellow: lbfgs hit max_iter"
    )
    return table


__all__ = [
    "DEFAULT_N_FEATURES",
    "OBJECTIVES",
    "HeadFit",
    "OverparamConfig",
    "aggregate",
    "features_of",
    "fit_head",
    "fit_random_features",
    "format_table",
    "interpolation_threshold",
    "random_features_model",
    "resample_indices",
    "run_overparam",
    "subsample_indices",
    "summarize",
    "upweight_indices",
    "write_plot",
]


def _run_kind(
    config: OverparamConfig, reporter: Reporter, executor: Executor | None = None
) -> list[dict[str, Any]]:
    return run_overparam(config, executor=executor)


def _render(config: OverparamConfig, records: list[dict[str, Any]]) -> list[Any]:
    return [format_table(records)]


def _describe(config: OverparamConfig) -> str:
    return f"[bold]{config.name}[/]: random features on toy_spurious, N = {config.n_features}"


KIND = register_kind(
    "overparam", config=OverparamConfig, run=_run_kind, render=_render, describe=_describe
)
