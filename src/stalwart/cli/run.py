"""`stalwart run` and `stalwart demo`: run an experiment config of any kind."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from stalwart.cli import app, console, friendly_errors


def _print_epoch(record: dict[str, Any]) -> None:
    val = record["val"]
    console.print(
        f"epoch {record['epoch']:>3}  loss {record['train_loss']:.4f}  "
        f"val acc {100 * val['accuracy']:.1f}%  "
        f"worst group {100 * val['worst_group_accuracy']:.1f}%  ({record['seconds']:.1f}s)",
        highlight=False,
    )


def _run_experiment(config_path: Path, overrides: list[str], out: Path | None) -> None:
    from stalwart.config import RunConfig
    from stalwart.experiments.configs import load_experiment

    if out is not None:
        overrides = [*overrides, f"out={out}"]
    config = load_experiment(config_path, overrides)
    if isinstance(config, RunConfig):
        _run_one(config)
    elif config.kind == "compare":
        _compare(config)
    elif config.kind == "sweep":
        _sweep(config)
    elif config.kind == "robustness":
        _robustness(config)
    elif config.kind == "rst_linear":
        _rst_linear(config)
    else:
        _overparam(config)


def _robustness(config: Any) -> None:
    from stalwart.experiments.robustness import describe_attack, rich_table, robustness

    runs = len(config.methods) * len(config.seeds)
    console.print(
        f"[bold]{config.name}[/]: {len(config.methods)} methods × {len(config.seeds)} "
        f"seeds = {runs} runs on {config.data.name} → {config.root()}"
    )
    table = robustness(config, on_done=_print_finished)
    title = (f"{config.name}: test accuracy, mean ± std over seeds; robust under "
             f"{describe_attack(table['attack'])}")  # fmt: skip
    console.print(rich_table(table, title))


def _rst_linear(config: Any) -> None:
    from stalwart.experiments.rst_linear import format_table, run_rst_linear

    result = run_rst_linear(config)
    console.print(
        f"[bold]{config.name}[/]: noiseless linear regression, {config.draws} draws, "
        f"n = {config.labelled}, d = {config.dim}; errors are means over draws"
    )
    console.print(format_table(result), markup=False, highlight=False)
    if config.out:
        from stalwart.io import write_json

        write_json(Path(config.out) / "rst_linear.json", result)


def _print_finished(job: Any, summary: Any) -> None:
    test = summary.metrics["test"]
    seed = job.config.train.seed
    how = "reused" if summary.reused else f"{summary.seconds:.0f}s"
    console.print(
        f"  {job.label or job.config.name} seed {seed}: test acc {100 * test.accuracy:.1f}%  "
        f"worst group {100 * test.worst_group_accuracy:.1f}%  ({how})",
        highlight=False,
    )


def _compare(config: Any) -> None:
    from stalwart.experiments.compare import compare, rich_table

    runs = len(config.methods) * len(config.seeds)
    console.print(
        f"[bold]{config.name}[/]: {len(config.methods)} methods × {len(config.seeds)} "
        f"seeds = {runs} runs on {config.data.name} → {config.root()}"
    )
    table = compare(config, on_done=_print_finished)
    console.print(
        rich_table(
            table,
            f"{config.name}: test accuracy, mean ± std over seeds; each "
            f"method selected by val {config.train.select}",
        )
    )
    console.print(f"per-group chart: {config.root() / 'per_group_accuracy.png'}")


def _sweep(config: Any) -> None:
    from stalwart.experiments.sweep import rich_table, sweep, trials

    console.print(
        f"[bold]{config.name}[/]: {len(trials(config))} configurations × "
        f"{len(config.seeds)} seeds → {config.root()}"
    )
    result = sweep(config, on_done=_print_finished)
    console.print(rich_table(result, f"{config.name}: selected by mean val {config.select}"))


def _overparam(config: Any) -> None:
    from stalwart.experiments.overparam import format_table, run_overparam

    console.print(
        f"[bold]{config.name}[/]: random features on toy_spurious, N = {config.n_features}"
    )
    records = run_overparam(config)
    console.print(format_table(records))


def _run_one(config: Any) -> None:
    from stalwart.experiments import run
    from stalwart.report import group_table

    console.print(
        f"[bold]{config.name}[/]: {config.data.name} · {config.model.name} · "
        f"{config.method.name} → {config.run_dir()}"
    )
    summary = run(config, on_epoch_end=_print_epoch)
    if summary.reused:
        console.print(f"already finished in {summary.run_dir}; showing its results")
    elif summary.resumed_from:
        console.print(f"resumed after epoch {summary.resumed_from}")
    title = f"{config.name}: selected epoch {summary.best_epoch} by val {config.train.select}"
    console.print(group_table(summary.metrics, title))


@app.command()
@friendly_errors
def run(
    config: Annotated[
        Path,
        typer.Argument(
            help="A YAML config (kind: run, compare, sweep, overparam, robustness, rst_linear)."
        ),
    ],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a key: --set train.lr=0.01 (repeatable)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/<name>).")] = None,
) -> None:
    """Run a config: one training run, a comparison, a sweep or a study.

    Rerunning a config resumes what was interrupted and reuses what finished.
    """
    _run_experiment(config, set_ or [], out)


@app.command()
@friendly_errors
def demo(
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/demo"),
    epochs: Annotated[int | None, typer.Option(help="Override the recipe's epochs.")] = None,
) -> None:
    """The main job: ERM, JTT, group DRO, SUBG, RWG and DFR on dominoes, 3 seeds, one table."""
    from stalwart.experiments import recipe_path

    overrides = [f"train.epochs={epochs}"] if epochs is not None else []
    _run_experiment(recipe_path("compare_dominoes"), overrides, out)
