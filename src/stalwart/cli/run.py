"""`stalwart run`, `stalwart demo` and `stalwart runs`: run a config of any kind, query runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stalwart.cli import app, console, friendly_errors


class ConsoleReporter:
    """Prints what a running experiment reports: epochs of one run, finished runs of many."""

    def epoch(self, record: dict[str, Any]) -> None:
        """One line per epoch (classification metrics, or the evaluator's keys)."""
        val = record["val"]
        if "worst_group_accuracy" in val:
            scores = (
                f"val acc {100 * val['accuracy']:.1f}%  "
                f"worst group {100 * val['worst_group_accuracy']:.1f}%"
            )
        else:
            scores = "  ".join(f"val {k} {v:.4f}" for k, v in val.items() if isinstance(v, float))
        console.print(
            f"epoch {record['epoch']:>3}  loss {record['train_loss']:.4f}  {scores}  "
            f"({record['seconds']:.1f}s)",
            highlight=False,
        )

    def run_finished(self, job: Any, summary: Any) -> None:
        """One line per finished run: its test accuracy and worst-group accuracy."""
        test = summary.metrics["test"]
        seed = job.config.train.seed
        how = "reused" if summary.reused else f"{summary.seconds:.0f}s"
        console.print(
            f"  {job.label or job.config.name} seed {seed}: test acc "
            f"{100 * test.accuracy:.1f}%  worst group {100 * test.worst_group_accuracy:.1f}%  "
            f"({how})",
            highlight=False,
        )

    def note(self, text: str) -> None:
        """A progress line."""
        console.print(text, highlight=False)


def run_experiment(
    config_path: Path,
    overrides: list[str],
    out: Path | None,
    executor: str = "local",
    address: str | None = None,
) -> None:
    """Load a config of any kind, run it through its kind, print what the kind renders."""
    from stalwart.experiments.configs import load_experiment
    from stalwart.experiments.executors import build_executor
    from stalwart.experiments.kinds import kind

    if out is not None:
        overrides = [*overrides, f"out={out}"]
    config = load_experiment(config_path, overrides)
    if getattr(config, "kind", "run") != "run":
        from stalwart.engine.distributed import world
        from stalwart.errors import ConfigError

        if world().parallel:
            raise ConfigError(
                f"kind {config.kind!r} runs many trainings in worker processes of its own; "
                "under torchrun only a single run (a config without kind:) trains "
                "data-parallel. Run it without torchrun, or run each of its configs with it"
            )
    chosen = None
    if executor != "local" or address is not None:
        chosen = build_executor(executor, address=address, workers=getattr(config, "workers", 1))
    experiment = kind(config.kind)
    console.print(experiment.describe(config))
    result = experiment.run(config, ConsoleReporter(), chosen)
    for item in experiment.render(config, result):
        console.print(item, highlight=False)


@app.command()
@friendly_errors
def run(
    config: Annotated[Path, typer.Argument(help="A YAML config (its `kind:` says what it runs).")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a key: --set train.lr=0.01 (repeatable)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/<name>).")] = None,
    executor: Annotated[
        str, typer.Option(help="Where many runs go: local (processes) or ray.")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (auto, ray://HOST:10001).")
    ] = None,
) -> None:
    """Run a config: one training run, a comparison, a sweep or a study.

    Rerunning a config resumes what was interrupted and reuses what finished.
    """
    run_experiment(config, set_ or [], out, executor, address)


@app.command()
@friendly_errors
def demo(
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/demo"),
    epochs: Annotated[int | None, typer.Option(help="Override the recipe's epochs.")] = None,
    audit_budget: Annotated[
        float,
        typer.Option(help="Seconds each check of the closing audit may take (0: no audit)."),
    ] = 10,
) -> None:
    """The main job: ERM, JTT, group DRO, SUBG, RWG and DFR on dominoes, 5 seeds, one table.

    Ends by auditing one run of each method (`stalwart audit OUT -o OUT/report.html`) and
    printing the report's path.
    """
    from stalwart.errors import ConfigError
    from stalwart.experiments import recipe_path

    if audit_budget < 0:
        raise ConfigError(f"--audit-budget must be >= 0 seconds (0: no audit); got {audit_budget}")
    overrides = [f"train.epochs={epochs}"] if epochs is not None else []
    run_experiment(recipe_path("compare_dominoes"), overrides, out)
    if audit_budget:
        from stalwart.cli.audit import audit

        console.print(f"auditing one run per method, {audit_budget:g} s per check", highlight=False)
        audit([out], output=out / "report.html", budget=audit_budget)


@app.command()
@friendly_errors
def runs(
    path: Annotated[Path, typer.Argument(help="A run directory or a folder of runs.")],
    where: Annotated[
        list[str] | None,
        typer.Option(help="Keep runs where KEY=VALUE (or != > >= < <=); repeatable."),
    ] = None,
    columns: Annotated[
        str | None, typer.Option(help="Comma-separated columns to show (default: a summary).")
    ] = None,
    group_by: Annotated[
        str | None,
        typer.Option(help="Comma-separated keys; shows mean ± std of the columns per group."),
    ] = None,
    format: Annotated[
        str, typer.Option("--format", help="table, markdown, csv or json.")
    ] = "table",
) -> None:
    """Finished and unfinished runs under PATH as one table: config, metrics, timings."""
    from stalwart.cli.runs_table import show_runs

    show_runs(path, where or [], columns, group_by, format)
