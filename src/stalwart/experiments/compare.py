"""Compare methods on one dataset over several seeds: one table, one per-group bar chart.

Every method trains the same model on the same data with the same training settings (each
method may override some), is selected by the same validation metric, and is reported on the
test set as mean ± standard deviation over seeds, together with whether it read group labels
during training. This is the comparison of Idrissi et al. 2022 (arXiv 2110.14503) and of the
JTT paper's Table 1 (arXiv 2107.09044), run on data that ships offline.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from rich.table import Table

from stalwart.config import ComponentConfig, RunConfig, StrictModel, TrainConfig
from stalwart.errors import ConfigError
from stalwart.experiments.configs import parse_config
from stalwart.experiments.executor import Job, run_jobs
from stalwart.experiments.run import RunSummary
from stalwart.io import atomic_write_bytes, write_json
from stalwart.methods import method_info


class CompareConfig(StrictModel):
    """Methods × seeds on one dataset and model.

    ``methods`` maps a label to the method's parameters; an entry may name its method with
    ``method:`` (default: the label) and override training settings with ``train:``.
    """

    kind: Literal["compare"]
    name: str = "compare"
    data: ComponentConfig
    model: ComponentConfig
    train: TrainConfig = TrainConfig()
    methods: dict[str, dict[str, Any]] = Field(min_length=1)
    seeds: list[int] = Field(default=[0, 1, 2], min_length=1)
    workers: int = Field(1, ge=1, description="parallel worker processes")
    out: str | None = None

    def root(self) -> Path:
        """The comparison's directory."""
        return Path(self.out) if self.out else Path("runs") / self.name

    def validate_runs(self) -> None:
        """Check every method entry as a run config before anything runs."""
        expand(self)


def _reusable(config: RunConfig, same_seed: list[RunConfig]) -> dict[str, Path]:
    """The finished run a method declares it can start from (``MethodInfo.reuses``), if here.

    DFR retrains the last layer of an ERM model: when the comparison trains ERM on the same
    data and model with the same training settings and seed, DFR starts from that run.
    """
    wanted = method_info(config.method.name).reuses
    for other in same_seed:
        if (
            wanted is not None
            and other.method.name == wanted
            and not other.method.params
            and (other.data, other.model, other.train) == (config.data, config.model, config.train)
        ):
            return {wanted: other.run_dir()}
    return {}


def expand(config: CompareConfig) -> list[list[Job]]:
    """The runs of a comparison, in waves: a later wave reuses runs of an earlier one."""
    root = config.root()
    base = config.model_dump(include={"data", "model", "train"}, mode="json")
    jobs: dict[tuple[str, int], RunConfig] = {}
    for label, entry in config.methods.items():
        entry = dict(entry)
        method = {
            "name": entry.pop("method", label),
            **{k: v for k, v in entry.items() if k != "train"},
        }
        train = {**base["train"], **entry.get("train", {})}
        for seed in config.seeds:
            raw = {
                **base, "name": f"{config.name}/{label}", "method": method,
                "train": {**train, "seed": seed}, "out": str(root / label / f"seed{seed}"),
            }  # fmt: skip
            try:
                jobs[label, seed] = parse_config(raw, f"{config.name}: methods.{label}")
            except ConfigError as error:
                raise ConfigError(str(error)) from None
    first, second = [], []
    for (label, seed), run_config in jobs.items():
        reuse = _reusable(run_config, [c for (_, s), c in jobs.items() if s == seed])
        job = Job(run_config, shared_dir=root / "shared", reuse=reuse, label=label)
        (second if reuse else first).append(job)
    return [wave for wave in (first, second) if wave]


def compare(
    config: CompareConfig, on_done: Callable[[Job, RunSummary], None] | None = None
) -> dict[str, Any]:
    """Run every method × seed, then write ``comparison.json``, ``comparison.md`` and a chart."""
    results: dict[str, list[RunSummary]] = {}
    for wave in expand(config):
        for job, summary in zip(wave, run_jobs(wave, config.workers, on_done), strict=True):
            results.setdefault(job.label, []).append(summary)
    table = summarise(results)
    root = config.root()
    write_json(root / "comparison.json", table)
    (root / "comparison.md").write_text(markdown_table(table))
    plot_per_group(table, root / "per_group_accuracy.png", title=config.name)
    return table


def _mean_std(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def summarise(results: dict[str, list[RunSummary]]) -> dict[str, Any]:
    """Mean and standard deviation over seeds of test metrics, per method."""
    methods = {}
    for label, summaries in results.items():
        tests = [s.metrics["test"] for s in summaries]
        n_groups = len(tests[0].group_names)
        methods[label] = {
            "group_labels": summaries[0].group_labels,
            "seeds": len(summaries),
            "accuracy": _mean_std([t.accuracy for t in tests]),
            "worst_group_accuracy": _mean_std([t.worst_group_accuracy for t in tests]),
            "val_worst_group_accuracy": _mean_std(
                [s.metrics["val"].worst_group_accuracy for s in summaries]
            ),
            "group_accuracy": [
                _mean_std([t.group_accuracy[g] for t in tests]) for g in range(n_groups)
            ],
            "seconds": sum(s.seconds for s in summaries),
        }
    if "erm" in methods and "group_dro" in methods:
        # The JTT paper's summary: how much of the worst-group gap between ERM and group DRO
        # a method closes (1 = all of it), from mean test worst-group accuracies.
        low = methods["erm"]["worst_group_accuracy"]["mean"]
        high = methods["group_dro"]["worst_group_accuracy"]["mean"]
        for row in methods.values():
            gain = row["worst_group_accuracy"]["mean"] - low
            row["gap_closed"] = gain / (high - low) if high != low else None
    first = next(iter(results.values()))[0].metrics["test"]
    return {"group_names": list(first.group_names), "methods": methods}


def _cell(stat: dict[str, float]) -> str:
    return f"{100 * stat['mean']:.1f} ± {100 * stat['std']:.1f}"


def _gap(row: dict[str, Any]) -> str:
    """Share of the ERM → group DRO worst-group gap closed (see ``summarise``)."""
    share = row.get("gap_closed")
    return "-" if share is None else f"{100 * share:.0f}%"


COLUMNS = (
    "method", "test avg %", "test worst group %", "gap closed", "group labels in training", "seeds"
)  # fmt: skip  # fmt: skip


def _row(label: str, row: dict[str, Any]) -> list[str]:
    return [label, _cell(row["accuracy"]), _cell(row["worst_group_accuracy"]), _gap(row),
            row["group_labels"], str(row["seeds"])]  # fmt: skip


def rich_table(table: dict[str, Any], title: str = "") -> Table:
    """Methods as rows: test accuracies (%), share of the gap closed, group-label use."""
    out = Table(title=title or None, title_justify="left")
    for column in COLUMNS:
        out.add_column(column, justify="left" if column == "method" else "right")
    for label, row in table["methods"].items():
        out.add_row(*_row(label, row))
    return out


def markdown_table(table: dict[str, Any]) -> str:
    """The same table in Markdown, for docs/results.md."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_row(label, row)) + " |" for label, row in table["methods"].items()]
    return "\n".join(lines) + "\n"


def plot_per_group(table: dict[str, Any], path: Path, title: str = "") -> None:
    """A grouped bar chart: test accuracy per group (mean over seeds, std as error bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups, methods = table["group_names"], table["methods"]
    width = 0.8 / len(methods)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.6 * len(groups) + 2), 4.0))
    for k, (label, row) in enumerate(methods.items()):
        positions = [g + (k - (len(methods) - 1) / 2) * width for g in range(len(groups))]
        means = [100 * s["mean"] for s in row["group_accuracy"]]
        errors = [100 * s["std"] for s in row["group_accuracy"]]
        means = [0.0 if math.isnan(m) else m for m in means]
        axes.bar(positions, means, width, yerr=errors, label=label, capsize=2)
    axes.set_xticks(range(len(groups)), groups)
    axes.set_ylabel("test accuracy (%)")
    axes.set_ylim(0, 100)
    axes.set_title(title or "per-group test accuracy")
    axes.legend(ncol=min(len(methods), 6), fontsize="small", loc="upper center",
                bbox_to_anchor=(0.5, -0.1), frameon=False)  # fmt: skip
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    atomic_write_bytes(path, lambda handle: figure.savefig(handle, format="png", dpi=120))
    plt.close(figure)
