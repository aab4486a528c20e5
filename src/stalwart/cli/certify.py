"""`stalwart verify` (an ONNX network and a VNN-LIB property) and `stalwart certify` (a run)."""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from stalwart.cli import app, console, errors, friendly_errors, names, print_error, run_split
from stalwart.errors import ConfigError, StalwartError

DTYPES = ("float64", "float32")
DeviceOption = Annotated[
    str,
    typer.Option(
        help="Where to compute: cpu, cuda, cuda:N, mps, or auto (the first GPU if there is one)."
    ),
]
OPTION_HELP = (
    "A bound's option, BOUND.OPTION=VALUE (e.g. sdp.steps=300, crown+alpha.steps=50, "
    "lp.refine=true); repeat for more."
)


def _process_age() -> float:
    """Seconds since this process started (Linux ``/proc``; 0 where unknown)."""
    try:
        with open("/proc/self/stat") as handle:
            # Field 22 is the start time in clock ticks after boot; the command name (field 2)
            # may hold spaces, so count from the closing parenthesis.
            ticks = int(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


def _launched() -> bool:
    """Whether this process is the ``stalwart`` program (not a test or notebook calling it)."""
    import stalwart.cli

    return getattr(sys.modules.get("__main__"), "main", None) is stalwart.cli.main


def _startup_seconds() -> float:
    """Time already spent before this command began.

    The process's age when ``stalwart`` was launched as a program; nothing when the command
    is called inside a running process (tests, notebooks), where its own clock starts now.
    """
    return _process_age() if _launched() else 0.0


def timeout_margin(timeout: float) -> float:
    """Seconds kept back from ``--timeout`` for writing the answer and exiting."""
    return min(0.05 * timeout + 0.3, 5.0)


def option_table(items: list[str] | None, extra: dict[str, dict[str, Any]] | None = None) -> dict:
    """``--option`` values (``sdp.steps=300``) as ``{"sdp": {"steps": 300}}``."""
    from stalwart.certify.bounds import parse_option

    table: dict[str, dict[str, Any]] = {}
    for name, given in (extra or {}).items():
        table.setdefault(name, {}).update(given)
    for item in items or []:
        name, key, value = parse_option(item)
        table.setdefault(name, {})[key] = value
    return table


def _dtype(name: str):
    import torch

    if name not in DTYPES:
        raise ConfigError(f"--dtype must be one of {list(DTYPES)}; got {name!r}")
    return getattr(torch, name)


@app.command()
def verify(
    network: Annotated[Path, typer.Argument(help="The network, an ONNX file (.onnx, .onnx.gz).")],
    prop: Annotated[Path, typer.Argument(help="The property, a VNN-LIB file (unsafe region).")],
    timeout: Annotated[
        float,
        typer.Option(help="Wall-clock seconds for everything, start-up included; then unknown."),
    ] = 60.0,
    bounds: Annotated[
        str, typer.Option(help="Bounds to try in order: ibp, crown, crown+alpha, lp, sdp.")
    ] = "ibp,crown,crown+alpha,lp",
    complete: Annotated[
        str, typer.Option(help="Complete search: auto, input, milp, bab, bab+beta or none.")
    ] = "auto",
    option: Annotated[list[str] | None, typer.Option("--option", help=OPTION_HELP)] = None,
    dtype: Annotated[
        str, typer.Option(help="float64, or float32: faster, with rigorous rounding allowances.")
    ] = "float64",
    counterexample: Annotated[
        Path | None,
        typer.Option(
            help="Where to write a counterexample (default: beside --result, named after PROP)."
        ),
    ] = None,
    result: Annotated[
        Path | None, typer.Option(help="Also write a VNN-COMP result file (sat/unsat/unknown).")
    ] = None,
    device: DeviceOption = "cpu",
    verbose: Annotated[bool, typer.Option(help="Print what each stage found.")] = False,
) -> None:
    """Decide a VNN-LIB property of an ONNX network: prints holds, violated or unknown.

    VNN-COMP conventions: the property's asserted output region is the unsafe one, so a
    counterexample (an input reaching it) means violated (sat), and holds means unsat. Any
    error prints unknown and exits with status 2; it never prints holds.
    """
    entered = time.perf_counter()
    try:
        if not timeout > 0:
            raise ConfigError(f"--timeout must be > 0 seconds; got {timeout}")
        # The promise is wall-clock from launch: start-up so far counts, and a margin is kept
        # for writing the answer and exiting.
        budget = timeout - _startup_seconds() - timeout_margin(timeout)
        if budget <= 0:
            # Checked before the heavy imports (PyTorch alone can take seconds).
            errors.print(f"start-up alone took longer than --timeout {timeout:g}s")
            if result is not None:
                _write_word(result, "unknown")
            console.print("unknown")
            return
        work_dtype = _dtype(dtype)
        options = option_table(option)

        from stalwart.certify.deadline import Deadline

        deadline = Deadline(budget - (time.perf_counter() - entered))
        import torch

        from stalwart.certify.onnx_io import load_onnx
        from stalwart.certify.verify import verify as run_verify
        from stalwart.certify.vnnlib import parse_vnnlib
        from stalwart.devices import resolve_device

        where = resolve_device(device)
        # The network exactly as the file defines it (float32 weights are exact in float64).
        net = load_onnx(network, dtype=torch.float64).detach(device=where)
        instances = parse_vnnlib(prop, n_inputs=net.in_features, n_outputs=net.out_features,
                                 dtype=torch.float64)  # fmt: skip
        verdict = run_verify(
            net,
            [(inst.box_for(net.input_shape, "outer"), inst.prop,
              inst.box_for(net.input_shape, "inner")) for inst in instances],
            deadline=deadline, bounds=names(bounds), complete=complete, options=options,
            dtype=work_dtype,
        )  # fmt: skip
    except StalwartError as error:
        from stalwart.certify.vnnlib import write_result

        print_error(error)
        if result is not None:
            write_result(result, "error")
        console.print("unknown")
        raise typer.Exit(2) from None
    _report(verdict, prop, counterexample, result, verbose)
    if _launched():
        # Tearing down PyTorch and SciPy at exit takes up to seconds on a loaded machine, time
        # the promise has no room for: everything is written and closed, so leave now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _write_word(path: Path, word: str) -> None:
    """A one-word result file, written atomically without importing the library."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(word + "\n")
    os.replace(temporary, path)


def _report(verdict, prop: Path, counterexample: Path | None, result: Path | None, verbose):
    from stalwart.certify.vnnlib import write_counterexample, write_result

    if verbose:
        for line in verdict.log:
            errors.print(line, highlight=False, markup=False)
    console.print(verdict.status)
    if verdict.status == "violated":
        stem = prop.name.removesuffix(".gz").removesuffix(".vnnlib")
        path = counterexample
        if path is None and result is not None:
            path = result.parent / f"{stem}.counterexample"
        if path is not None:
            write_counterexample(path, verdict.counterexample.flatten(), verdict.output)
            errors.print(f"counterexample ({verdict.decided_by}): {path}", highlight=False)
        else:
            errors.print(
                f"counterexample found ({verdict.decided_by}); pass --counterexample FILE or "
                "--result FILE to write it",
                highlight=False,
            )
    elif verdict.status == "holds" and verbose:
        errors.print(f"proved by {verdict.decided_by} in {verdict.seconds:.2f}s")
    if verbose:
        errors.print(f"{_process_age():.2f}s since launch", highlight=False)
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
    examples: Annotated[
        int, typer.Option(help="Test points certified (the first ones; at least 1).")
    ] = 100,
    split: Annotated[str, typer.Option(help="The evaluation set: test or val.")] = "test",
    option: Annotated[list[str] | None, typer.Option("--option", help=OPTION_HELP)] = None,
    sdp_steps: Annotated[
        int | None, typer.Option(help="SDP-FO optimisation steps (short for --option sdp.steps=N).")
    ] = None,
    dtype: Annotated[
        str, typer.Option(help="float64, or float32: faster, with rigorous rounding allowances.")
    ] = "float64",
    lower: Annotated[float, typer.Option(help="Smallest valid input value.")] = 0.0,
    upper: Annotated[float, typer.Option(help="Largest valid input value.")] = 1.0,
    device: DeviceOption = "cpu",
) -> None:
    """Certified accuracy of a trained run under each bound, with PGD accuracy beside it."""
    if examples < 1:
        raise ConfigError(f"--examples must be >= 1 (the number of test points); got {examples}")
    if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
        raise ConfigError(f"the input range needs finite --lower < --upper; got [{lower}, {upper}]")
    if not (0 <= eps <= upper - lower):
        raise ConfigError(
            f"--eps must be in [0, {upper - lower:g}] (0 up to the width of the input range "
            f"[{lower:g}, {upper:g}]); got {eps}"
        )
    if sdp_steps is not None and sdp_steps < 0:
        raise ConfigError(f"--sdp-steps must be >= 0; got {sdp_steps}")
    work_dtype = _dtype(dtype)
    options = option_table(option, {"sdp": {"steps": sdp_steps}} if sdp_steps is not None else None)
    bound_names = names(bounds)
    from stalwart.certify.bounds import check_bound_names, check_option_table

    check_bound_names(bound_names)
    check_option_table(options, bound_names)
    from stalwart.devices import resolve_device

    where = resolve_device(device)

    from rich.progress import Progress

    from stalwart.certify.accuracy import certified_accuracy
    from stalwart.io import write_json

    config, dataset, model = run_split(run_dir, split)
    model = model.to(where)
    n = min(examples, len(dataset))
    with Progress(console=errors, transient=True, disable=not errors.is_terminal) as progress:
        task = progress.add_task("certifying", total=n)
        table = certified_accuracy(
            model, dataset, eps=eps, bounds=bound_names, examples=examples, lower=lower,
            upper=upper, options=options, dtype=work_dtype,
            on_example=lambda i: progress.update(task, advance=1),
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
