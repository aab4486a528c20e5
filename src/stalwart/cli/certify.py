"""`stalwart verify` (an ONNX network and a VNN-LIB property) and `stalwart certify` (a run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from stalwart.cli import app, console, errors, friendly_errors, names, run_split
from stalwart.errors import StalwartError


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
            timeout=timeout, bounds=names(bounds), complete=complete,
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
    from stalwart.io import write_json

    config, dataset, model = run_split(run_dir, split)
    options = {"sdp": {"steps": sdp_steps}} if sdp_steps is not None else {}
    n = min(examples, len(dataset))
    with Progress(console=errors, transient=True, disable=not errors.is_terminal) as progress:
        task = progress.add_task("certifying", total=n)
        table = certified_accuracy(
            model, dataset, eps=eps, bounds=names(bounds), examples=examples, lower=lower,
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
