"""Meta-RL learners against each other: benchmarks × learners × seeds, learning curves, one plot.

DREAM (Liu, Raghunathan, Liang and Finn, arXiv 2008.02790) claims to solve meta-exploration
benchmarks where end-to-end meta-RL (E-RL²) stays in a local optimum. This kind measures that
claim: each cell meta-trains one learner on one benchmark for one seed (``stalwart.rl.loop``,
its run directory in ``ROOT/cells/BENCHMARK-LEARNER-seedK/run``, so a killed cell resumes
exactly), and the cells' held-out learning curves are summarised as mean ± std over seeds at
each evaluation, in a table and one plot per benchmark.

    kind: meta_rl
    benchmarks:                       # label → run-config keys (env required)
      bus_tight: {env: {name: distracting_bus_tight}, total_steps: 30000, eval_every: 1500}
      map_tight: {env: {name: map_tight}, total_steps: 60000, eval_every: 3000}
    learners:                         # label → run-config keys (learner required)
      dream: {learner: dream}
      erl2: {learner: erl2}
    train: {}                         # run-config keys shared by every cell
    seeds: [0, 1, 2]

A cell's run config is ``train``, then its benchmark's keys, then its learner's, then
``seed``; a key set by both the benchmark and the learner is refused as ambiguous. Every
cell's config is validated before anything runs.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from stalwart.config import NamedConfig, check_plain_name
from stalwart.errors import ConfigError
from stalwart.experiments.cells import finished_cell, run_cells
from stalwart.experiments.executors import Executor
from stalwart.experiments.kinds import Reporter, register_kind
from stalwart.io import atomic_write_text, write_json
from stalwart.report import ResultTable, mean_std

SCHEMA = 1
SOLVED_TOLERANCE = 0.05
"""A curve counts as solved from the first evaluation within this of the oracle's return."""


class MetaRLConfig(NamedConfig):
    """Benchmarks × learners × seeds (see the module docstring)."""

    kind: Literal["meta_rl"]
    name: str = "meta_rl"
    benchmarks: dict[str, dict[str, Any]] = Field(min_length=1)
    learners: dict[str, dict[str, Any]] = Field(min_length=1)
    train: dict[str, Any] = Field(
        default_factory=dict, description="run-config keys shared by every cell"
    )
    seeds: list[int] = Field(default=[0, 1, 2], min_length=1)
    workers: int = Field(2, ge=1, description="parallel worker processes (one cell each)")
    threads: int = Field(1, ge=1, le=256, description="torch threads per worker")
    out: str | None = None

    @field_validator("benchmarks", "learners")
    @classmethod
    def _labels_are_folder_names(cls, entries: dict[str, dict[str, Any]], info: Any) -> dict:
        required = "env" if info.field_name == "benchmarks" else "learner"
        for label, entry in entries.items():
            check_plain_name(label, f"{info.field_name} label")
            if not isinstance(entry, dict) or required not in entry:
                raise ValueError(f"{info.field_name}.{label}: give its {required}: key")
        return entries

    def root(self) -> Path:
        """The experiment's directory."""
        return Path(self.out) if self.out else Path("runs") / self.name

    def validate_runs(self) -> None:
        """Check every cell's run config before anything runs."""
        expand(self)


def expand(config: MetaRLConfig) -> list[dict[str, Any]]:
    """Every cell: ``benchmark``, ``learner``, ``seed`` labels and its validated run config."""
    from stalwart.rl.config import validate_rl_config

    cells = []
    for benchmark, bench_keys in config.benchmarks.items():
        for learner, learner_keys in config.learners.items():
            both = sorted(set(bench_keys) & set(learner_keys))
            if both:
                raise ConfigError(
                    f"{config.name}: benchmarks.{benchmark} and learners.{learner} both set "
                    f"{both}; set each key in one place (or in train: for every cell)"
                )
            for seed in config.seeds:
                raw = {**config.train, **bench_keys, **learner_keys, "seed": seed}
                source = f"{config.name}: benchmarks.{benchmark} × learners.{learner}"
                run = validate_rl_config(raw, source).model_dump(mode="json")
                cells.append({"benchmark": benchmark, "learner": learner, "seed": seed, "run": run})
    return cells


def _folder(root: Path, cell: dict[str, Any]) -> Path:
    return root / "cells" / f"{cell['benchmark']}-{cell['learner']}-seed{cell['seed']}"


def _run_cell(task: tuple[dict[str, Any], str, int]) -> dict[str, Any]:
    """Train one cell (in a worker process), resuming its run directory; record its curve."""
    import torch

    from stalwart.rl.loop import train

    cell, folder, threads = task
    torch.set_num_threads(threads)
    result = train(cell["run"], run_dir=Path(folder) / "run", resume=True)
    found = {
        "schema": SCHEMA, "cell": cell, "curve": result.curve,
        "references": result.references, "resumed_from": result.resumed_from,
        "seconds": result.seconds,
    }  # fmt: skip
    write_json(Path(folder) / "results.json", found)
    return found


def _announce(found: dict[str, Any]) -> str:
    cell, last = found["cell"], found["curve"][-1]
    return (
        f"{cell['benchmark']} · {cell['learner']} · seed {cell['seed']}: held-out return "
        f"{last['return']:+.3f} at step {last['step']:,} (oracle "
        f"{found['references']['oracle']:+.3f}; {found['seconds']:.0f}s)"
    )


def run_meta_rl(
    config: MetaRLConfig, reporter: Reporter, executor: Executor | None = None
) -> dict[str, Any]:
    """Train (or reuse) every cell; write ``meta_rl.json``, ``meta_rl.md`` and ``curves.png``."""
    root = config.root()
    cells = expand(config)
    tasks = [(cell, str(_folder(root, cell)), config.threads) for cell in cells]
    kept = [finished_cell(_folder(root, cell), SCHEMA, cell) for cell in cells]
    records = run_cells(
        tasks, kept, _run_cell, reporter, _announce, workers=config.workers, executor=executor
    )
    summary = summarise(records)
    result = {"summary": summary, "records": records}
    write_json(root / "meta_rl.json", result)
    markdown = "\n".join(f"**{t.title}**\n\n{t.markdown()}" for t in tables(summary))
    atomic_write_text(root / "meta_rl.md", markdown)
    curve_plot(summary, root / "curves.png", title=config.name)
    return result


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per benchmark: references, and per learner the mean ± std curve and its milestones.

    Curves of one benchmark and learner are aligned by evaluation index (every seed
    evaluates at the first round past each multiple of ``eval_every``, so the k-th records
    differ by less than a round); the step shown is the mean of theirs.
    """
    benchmarks: dict[str, Any] = {}
    for record in records:
        cell = record["cell"]
        entry = benchmarks.setdefault(
            cell["benchmark"],
            {"env": cell["run"]["env"]["name"], "references": record["references"],
             "learners": {}},
        )  # fmt: skip
        entry["learners"].setdefault(cell["learner"], []).append(record)
    for entry in benchmarks.values():
        oracle = entry["references"]["oracle"]
        entry["learners"] = {
            learner: _learner_summary(runs, oracle) for learner, runs in entry["learners"].items()
        }
    return {"benchmarks": benchmarks, "solved_tolerance": SOLVED_TOLERANCE}


def _learner_summary(runs: list[dict[str, Any]], oracle: float) -> dict[str, Any]:
    length = min(len(run["curve"]) for run in runs)
    curve = []
    for k in range(length):
        points = [run["curve"][k] for run in runs]
        curve.append(
            {"step": round(mean_std(p["step"] for p in points)["mean"]),
             **mean_std(p["return"] for p in points)}
        )  # fmt: skip
    solved = [_solved_at(run["curve"], oracle) for run in runs]
    return {
        "seeds": len(runs),
        "curve": curve,
        "final": mean_std(run["curve"][-1]["return"] for run in runs),
        "solved_at": solved,
        "seconds": mean_std(run["seconds"] for run in runs),
    }


def _solved_at(curve: list[dict[str, Any]], oracle: float) -> int | None:
    """The first evaluation step within ``SOLVED_TOLERANCE`` of the oracle, or None."""
    for record in curve:
        if record["return"] >= oracle - SOLVED_TOLERANCE:
            return int(record["step"])
    return None


def _signed(stat: dict[str, float]) -> str:
    return f"{stat['mean']:+.3f} ± {stat['std']:.3f}"


TERMINAL_POINTS = 9
"""Evaluations a learning-curve table shows in the terminal (``meta_rl.md`` has them all)."""


def tables(summary: dict[str, Any], points: int | None = None) -> list[ResultTable]:
    """One table of final returns and milestones, then one learning-curve table per benchmark.

    ``points`` keeps at most that many evaluations of each curve, evenly spaced, the first and
    the last included (None: every one).
    """
    overview = ResultTable(
        ["benchmark", "learner", "seeds", "final held-out return", "solved at (per seed)",
         "oracle", "random", "s / run"],
        title=f"held-out exploitation return, mean ± std over seeds (solved: within "
        f"{summary['solved_tolerance']} of the oracle)",
    )  # fmt: skip
    curves = []
    for benchmark, entry in summary["benchmarks"].items():
        refs = entry["references"]
        for learner, found in entry["learners"].items():
            solved = ", ".join("never" if s is None else f"{s:,}" for s in found["solved_at"])
            overview.add(
                benchmark, learner, str(found["seeds"]), _signed(found["final"]), solved,
                f"{refs['oracle']:+.3f}", f"{refs['random']:+.3f}",
                f"{found['seconds']['mean']:.0f}",
            )  # fmt: skip
        curves.append(_curve_table(benchmark, entry, points))
    return [overview, *curves]


def _curve_table(benchmark: str, entry: dict[str, Any], points: int | None) -> ResultTable:
    """Learners as rows, evaluations as columns (steps of the first learner)."""
    learners = entry["learners"]
    first = next(iter(learners.values()))["curve"]
    shown = range(len(first))
    if points is not None and len(first) > points:
        every = -(-(len(first) - 1) // (points - 1))  # evenly spaced, at most `points`
        shown = sorted({*range(0, len(first), every), len(first) - 1})
    table = ResultTable(
        ["learner", *(f"{first[k]['step']:,}" for k in shown)],
        title=f"{benchmark} ({entry['env']}): held-out return by environment steps",
    )
    for learner, found in learners.items():
        curve = found["curve"]
        table.add(learner, *(_signed(curve[k]) if k < len(curve) else "-" for k in shown))
    return table


def curve_plot(summary: dict[str, Any], path: Path, *, title: str = "") -> None:
    """One panel per benchmark: mean ± std held-out return by environment steps per learner."""
    from stalwart.report.plots import pyplot, save_figure

    plt = pyplot()
    entries = summary["benchmarks"]
    figure, axes = plt.subplots(1, len(entries), figsize=(5.2 * len(entries), 3.8), squeeze=False)
    for axis, (benchmark, entry) in zip(axes[0], entries.items(), strict=True):
        for learner, found in entry["learners"].items():
            steps = [p["step"] for p in found["curve"]]
            mean = [p["mean"] for p in found["curve"]]
            std = [p["std"] for p in found["curve"]]
            (line,) = axis.plot(steps, mean, label=f"{learner} ({found['seeds']} seeds)")
            low = [m - s for m, s in zip(mean, std, strict=True)]
            high = [m + s for m, s in zip(mean, std, strict=True)]
            axis.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
        for name, style in (("oracle", "--"), ("random", ":")):
            value = entry["references"][name]
            if not math.isnan(value):
                axis.axhline(value, color="grey", linestyle=style, linewidth=1, label=name)
        named = benchmark if benchmark == entry["env"] else f"{benchmark} ({entry['env']})"
        axis.set_title(named, fontsize=10)
        axis.set_xlabel("environment steps")
        axis.set_ylabel("held-out exploitation return")
        axis.legend(fontsize=8)
    if title:
        figure.suptitle(f"{title}: mean ± std over seeds", fontsize=10)
    figure.tight_layout()
    save_figure(figure, path)


def render(config: MetaRLConfig, result: dict[str, Any]) -> list[Any]:
    """The tables, then where they were written."""
    found = [table.rich() for table in tables(result["summary"], TERMINAL_POINTS)]
    root = config.root()
    return [*found, f"written: {root / 'meta_rl.md'}, {root / 'curves.png'}"]


def describe(config: MetaRLConfig) -> str:
    """``name: B benchmarks × L learners × S seeds = N cells → ROOT``."""
    cells = len(config.benchmarks) * len(config.learners) * len(config.seeds)
    return (
        f"[bold]{config.name}[/]: {len(config.benchmarks)} benchmarks × {len(config.learners)} "
        f"learners × {len(config.seeds)} seeds = {cells} cells → {config.root()}"
    )


KIND = register_kind(
    "meta_rl", config=MetaRLConfig, run=run_meta_rl, render=render, describe=describe
)
