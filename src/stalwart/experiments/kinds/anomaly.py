"""One-class anomaly detection: every detector × every dataset × seeds, one table, one rank plot.

Each cell fits one detector on one seed's split of one dataset and measures the test set
(``stalwart.anomaly.benchmark``); finished cells are kept in ``ROOT/cells/`` and reused when
the run is repeated with the same settings, so an interrupted sweep resumes where it stopped.

    kind: anomaly
    datasets: ["odds:*", breast_cancer, wine]     # or fashion_mnist:*, mnist:3,
    odds_folder: ../shared/data/odds              #    mnist_limited_negatives
    detectors:
      drocc: {epochs: 30, warmup_epochs: 10}
      iforest: {}
      pyod_iforest: {}
    seeds: [0, 1, 2, 3, 4]

Dataset names: ``odds:NAME`` (``odds:*``: every ``.mat`` file of the ODDS folder),
``breast_cancer``, ``wine``, ``fashion_mnist:C`` / ``mnist:C`` (class C normal, the other
nine anomalous; ``:*`` for all ten) and ``mnist_limited_negatives`` (DROCC-LF's setting).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from stalwart.config import NamedConfig
from stalwart.errors import ConfigError, closest
from stalwart.experiments.cells import run_cells
from stalwart.experiments.executors import Executor
from stalwart.experiments.kinds import Reporter, register_kind
from stalwart.io import atomic_write_text, write_json
from stalwart.report import ResultTable

FAMILIES = ("odds", "fashion_mnist", "mnist")
PLAIN = ("breast_cancer", "wine", "mnist_limited_negatives")
SCHEMA = 1


class AnomalyConfig(NamedConfig):
    """Detectors × datasets × seeds."""

    kind: Literal["anomaly"]
    name: str = "anomaly"
    datasets: list[str] = Field(min_length=1)
    detectors: dict[str, dict[str, Any]] = Field(min_length=1)
    seeds: list[int] = Field(default=[0, 1, 2, 3, 4], min_length=1)
    odds_folder: str | None = Field(
        None, description="the ODDS .mat files; default $STALWART_ODDS, else $STALWART_DATA/odds"
    )
    image_train: int | None = Field(
        None,
        ge=2,
        description="at most this many normal training images per one-vs-rest task (None: all)",
    )
    threshold_fpr: float = Field(
        0.05, gt=0, lt=1, description="F1 threshold: the score this fraction of training "
        "normals exceeds",
    )  # fmt: skip
    workers: int = Field(2, ge=1, description="parallel worker processes")
    out: str | None = None

    @field_validator("datasets")
    @classmethod
    def _known_names(cls, datasets: list[str]) -> list[str]:
        for name in datasets:
            family, _, member = name.partition(":")
            if name in PLAIN or (family in FAMILIES and member):
                continue
            choices = [*PLAIN, *(f"{f}:..." for f in FAMILIES)]
            raise ValueError(
                f"unknown dataset {name!r}{closest(name, choices)}; choose from {choices} "
                "(odds:NAME or odds:*, fashion_mnist:C or :*, mnist:C or :*)"
            )
        return datasets

    def root(self) -> Path:
        """The experiment's directory."""
        return Path(self.out) if self.out else Path("runs") / self.name

    def validate_runs(self) -> None:
        """Check every detector name and parameter, and every dataset name, before running."""
        from stalwart.anomaly.benchmark import check_detectors

        check_detectors(self.detectors)
        expand_datasets(self)


def expand_datasets(config: AnomalyConfig) -> list[str]:
    """The dataset names with every ``:*`` expanded, in order, without repeats."""
    from stalwart.data.sources.odds import odds_names

    names: list[str] = []
    for name in config.datasets:
        family, _, member = name.partition(":")
        if member == "*":
            members = odds_names(config.odds_folder) if family == "odds" else map(str, range(10))
            names += [f"{family}:{m}" for m in members]
        elif family in ("fashion_mnist", "mnist") and member not in map(str, range(10)):
            raise ConfigError(f"{name}: the normal class is a digit 0–9 (or *); got {member!r}")
        else:
            names.append(name)
    return list(dict.fromkeys(names))


def load_dataset(name: str, seed: int, config_fields: dict[str, Any]) -> Any:
    """The ``OneClassData`` split of dataset ``name`` for ``seed``."""
    from stalwart.data import one_class

    family, _, member = name.partition(":")
    if family == "odds":
        return one_class.odds(member, seed=seed, folder=config_fields["odds_folder"])
    if family in ("fashion_mnist", "mnist"):
        return one_class.one_vs_rest(
            family, int(member), seed=seed, n_train=config_fields["image_train"]
        )
    if name == "mnist_limited_negatives":
        return one_class.limited_negatives_mnist(seed=seed)
    return getattr(one_class, name)(seed=seed)


def data_settings(dataset: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The config settings that decide a dataset's split (a cell is reused only if equal)."""
    family = dataset.partition(":")[0]
    if family == "odds":
        return {"odds_folder": fields["odds_folder"]}
    if family in ("fashion_mnist", "mnist"):
        return {"image_train": fields["image_train"]}
    return {}


def _cell_path(root: Path, dataset: str, detector: str, seed: int) -> Path:
    return root / "cells" / dataset.replace(":", "-") / detector / f"seed{seed}.json"


def _run_cell(task: tuple[Any, dict[str, Any], str]) -> dict[str, Any]:
    """Fit one cell (in a worker process) and record it; module-level so that it pickles."""
    from stalwart.anomaly.benchmark import evaluate_cell

    cell, fields, path = task
    data = load_dataset(cell.dataset, cell.seed, fields)
    found = {"schema": SCHEMA, "data_settings": data_settings(cell.dataset, fields),
             **evaluate_cell(cell, data)}  # fmt: skip
    write_json(Path(path), found)
    return found


def _announce(found: dict[str, Any]) -> str:
    """One line for a fitted cell: dataset, detector, seed, AUROC."""
    return (
        f"{found['dataset']} · {found['detector']} · seed {found['seed']}: AUROC "
        f"{found['auroc']:.3f} ({found['fit_seconds']:.1f}s)"
    )


def run_anomaly(
    config: AnomalyConfig, reporter: Reporter, executor: Executor | None = None
) -> dict[str, Any]:
    """Run (or reuse) every cell, then write ``anomaly.json``, ``anomaly.md`` and ``ranks.png``."""
    from dataclasses import asdict

    from stalwart.anomaly.benchmark import Cell, summarize

    config.validate_runs()
    root = config.root()
    fields = {"odds_folder": config.odds_folder, "image_train": config.image_train}
    tasks, kept = [], []
    for dataset in expand_datasets(config):
        for detector, params in config.detectors.items():
            for seed in config.seeds:
                cell = Cell(dataset, detector, seed, params, config.threshold_fpr)
                path = _cell_path(root, dataset, detector, seed)
                tasks.append((cell, fields, str(path)))
                kept.append(_reusable(path, asdict(cell), fields))
    records = run_cells(
        tasks, kept, _run_cell, reporter, _announce, workers=config.workers,
        executor=executor, verb="fit",
    )  # fmt: skip
    summary = summarize(records)
    result = {"summary": summary, "records": records, "threshold_fpr": config.threshold_fpr}
    write_json(root / "anomaly.json", result)
    atomic_write_text(root / "anomaly.md", "\n".join(t.markdown() for t in tables(summary)))
    rank_plot(summary, root / "ranks.png", title=f"{config.name}: average rank by AUROC")
    return result


CELL_KEYS = ("schema", "dataset", "detector", "seed", "params", "threshold_fpr", "data_settings")
"""What a cell's record holds besides its figures: enough to fit the same detector again."""


def is_cell_record(path: Path) -> bool:
    """Whether the JSON file ``path`` is a cell's record (``cells/DATASET/DETECTOR/seedK.json``)."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(found, dict) and all(key in found for key in CELL_KEYS)


def load_cell(path: str | Path) -> tuple[Any, dict[str, Any], Any]:
    """A finished cell: its ``Cell``, its record (the figures it measured) and its data split.

    The record fixes everything the fit depended on (dataset, seed, detector, parameters, the
    data settings), so the split is the one the cell was fitted and measured on.

    Raises:
        ConfigError: ``path`` is not a cell's record, or one of another schema.
        DataMissingError: the cell's dataset is not available here.
    """
    from stalwart.anomaly.benchmark import Cell

    path = Path(path)
    if not is_cell_record(path):
        raise ConfigError(
            f"{path} is not the record of a `kind: anomaly` cell (cells/DATASET/DETECTOR/"
            f"seedK.json holding {', '.join(CELL_KEYS)}); run the experiment to write it"
        )
    record = json.loads(path.read_text())
    if record["schema"] != SCHEMA:
        raise ConfigError(
            f"{path} was written by another version (schema {record['schema']}, this one reads "
            f"{SCHEMA}); run the experiment again to rewrite it"
        )
    cell = Cell(record["dataset"], record["detector"], int(record["seed"]),
                dict(record["params"]), float(record["threshold_fpr"]))  # fmt: skip
    fields = {"odds_folder": None, "image_train": None, **record["data_settings"]}
    return cell, record, load_dataset(cell.dataset, cell.seed, fields)


def _reusable(path: Path, cell: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any] | None:
    """A finished cell of the same settings, or None (missing, damaged or out of date)."""
    if not path.exists():
        return None
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):  # a damaged cell is fitted again, never trusted
        return None
    if not isinstance(found, dict):
        return None
    same = (
        found.get("schema") == SCHEMA
        and found.get("data_settings") == data_settings(cell["dataset"], fields)
        and all(found.get(k) == v for k, v in cell.items())
    )
    return found if same else None


# --- tables and the rank plot ---


def _cell(stat: dict[str, float] | None, digits: int = 3) -> str:
    if stat is None or math.isnan(stat["mean"]):
        return "-"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def tables(summary: dict[str, Any]) -> list[ResultTable]:
    """The result tables: datasets × detectors, and the limited-negatives recalls.

    AUROC (with average ranks), AUPRC, F1 and fit seconds; the recall at 3% / 5% FPR where the
    data has close negatives.
    """
    detectors, cells = summary["detectors"], summary["cells"]
    out = []
    for metric, title in (("auroc", "AUROC"), ("auprc", "AUPRC"), ("f1", "anomaly-class F1")):
        table = ResultTable(["data", *detectors], title=f"test {title}, mean ± std over seeds")
        for dataset in summary["datasets"]:
            table.add(dataset, *(_cell(cells[dataset].get(d, {}).get(metric)) for d in detectors))
        for family, members in _families(summary["datasets"]).items():
            table.add(f"mean over {family}:* ({len(members)})",
                      *(_mean_of_means(cells, members, d, metric) for d in detectors))  # fmt: skip
        if metric == "auroc":
            ranks = summary["ranks"]
            table.add(f"average rank ({summary['ranked_datasets']} datasets)",
                      *(f"{ranks[d]:.2f}" if not math.isnan(ranks[d]) else "-"
                        for d in detectors), bold=True)  # fmt: skip
        out.append(table)
    seconds = ResultTable(["data", *detectors], title="seconds to fit, mean over seeds")
    for dataset in summary["datasets"]:
        row = [cells[dataset].get(d, {}).get("fit_seconds") for d in detectors]
        seconds.add(dataset, *("-" if s is None else f"{s['mean']:.2f} s" for s in row))
    out.append(seconds)
    recall_rows = [
        (dataset, detector, stats) for dataset in summary["datasets"]
        for detector, stats in cells[dataset].items() if "recall_at_3pct_fpr" in stats
    ]  # fmt: skip
    if recall_rows:
        recall = ResultTable(
            ["data", "detector", "AUROC", "recall @ 3% FPR", "recall @ 5% FPR",
             "close only @ 3%", "close only @ 5%"],
            title="recall of normal points at a fixed false-positive rate (all negatives; "
            "close negatives only)",
        )  # fmt: skip
        for dataset, detector, stats in recall_rows:
            recall.add(dataset, detector, _cell(stats["auroc"]),
                       _cell(stats["recall_at_3pct_fpr"]), _cell(stats["recall_at_5pct_fpr"]),
                       _cell(stats["close_recall_at_3pct_fpr"]),
                       _cell(stats["close_recall_at_5pct_fpr"]))  # fmt: skip
        out.append(recall)
    return out


def _families(datasets: list[str]) -> dict[str, list[str]]:
    """Dataset families (``odds``, ``fashion_mnist``, ...) with two or more members."""
    families: dict[str, list[str]] = {}
    for dataset in datasets:
        family, _, member = dataset.partition(":")
        if member:
            families.setdefault(family, []).append(dataset)
    return {family: members for family, members in families.items() if len(members) > 1}


def _mean_of_means(cells: dict[str, Any], members: list[str], detector: str, metric: str) -> str:
    means = [cells[m].get(detector, {}).get(metric, {}).get("mean", math.nan) for m in members]
    if any(math.isnan(m) for m in means):
        return "-"
    return f"{sum(means) / len(means):.3f}"


def rank_plot(summary: dict[str, Any], path: Path, *, title: str = "") -> None:
    """Average rank of each detector (1 = best), ours and PyOD's in two colours."""
    from stalwart.report.plots import pyplot, save_figure

    ranks = {d: r for d, r in summary["ranks"].items() if not math.isnan(r)}
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 0.45 * max(len(ranks), 2) + 1.2))
    order = sorted(ranks, key=ranks.get, reverse=True)
    colours = ["tab:orange" if d.startswith("pyod_") else "tab:blue" for d in order]
    axis.barh(order, [ranks[d] for d in order], color=colours)
    axis.set_xlabel(f"average rank by test AUROC over {summary['ranked_datasets']} datasets "
                    "(lower is better; orange: PyOD)")  # fmt: skip
    axis.set_title(title, fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)


def render(config: AnomalyConfig, result: dict[str, Any]) -> list[Any]:
    """The tables, then where they were written."""
    found = [table.rich() for table in tables(result["summary"])]
    return [*found, f"written: {config.root() / 'anomaly.md'}, {config.root() / 'ranks.png'}"]


def describe(config: AnomalyConfig) -> str:
    """``name: D datasets × K detectors × S seeds → ROOT``."""
    return (
        f"[bold]{config.name}[/]: {len(config.datasets)} dataset entries × "
        f"{len(config.detectors)} detectors × {len(config.seeds)} seeds → {config.root()}"
    )


KIND = register_kind(
    "anomaly", config=AnomalyConfig, run=run_anomaly, render=render, describe=describe
)
