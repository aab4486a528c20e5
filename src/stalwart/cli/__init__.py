"""The ``stalwart`` command line: a thin layer over the library.

One module per group of commands (``run``, ``attack``, ``certify``, ``datasets``, ``diagnose``,
``shift``, ``inherit``, ``text``, ``rl``, ``audit``);
each adds its commands to ``app`` when imported below. Commands import the library lazily, so that
``stalwart --help`` and ``stalwart verify`` load only what they use.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

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


def print_error(error: Exception) -> None:
    """``error: MESSAGE`` on stderr: escaped (a message may quote "[...]"), never wrapped."""
    errors.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)


def friendly_errors(command: Callable) -> Callable:
    """Print a user's mistake as one message and exit with status 2; keep tracebacks for bugs."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except StalwartError as error:
            print_error(error)
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


def names(value: str) -> list[str]:
    """The items of a comma-separated option (``ibp,crown``)."""
    return [name.strip() for name in value.split(",") if name.strip()]


def run_split(run_dir: Path, split: str) -> tuple[Any, Any, Any]:
    """A finished run's config, one of its evaluation sets, and its selected model."""
    from stalwart.errors import ConfigError
    from stalwart.experiments.run import load_run

    config, splits, model = load_run(run_dir)
    sets = splits.evaluation_sets()
    if split not in sets:
        raise ConfigError(f"unknown split {split!r}; choose from {sorted(sets)}")
    return config, sets[split], model


# Each module registers its commands on `app` (imported for that effect, after `app` exists).
from stalwart.cli import run as _run  # noqa: E402, F401, I001  (listed first in --help)
from stalwart.cli import attack as _attack  # noqa: E402, F401
from stalwart.cli import certify as _certify  # noqa: E402, F401
from stalwart.cli import datasets as _datasets  # noqa: E402, F401
from stalwart.cli import diagnose as _diagnose  # noqa: E402, F401
from stalwart.cli import shift as _shift  # noqa: E402, F401
from stalwart.cli import inherit as _inherit  # noqa: E402, F401
from stalwart.cli import text as _text  # noqa: E402, F401
from stalwart.cli import rl as _rl  # noqa: E402, F401
from stalwart.cli import audit as _audit  # noqa: E402, F401


def main() -> None:
    """Entry point of the ``stalwart`` command (and of ``torchrun ... -m stalwart``).

    Under torchrun every process runs the same command: they join one process group first
    (``stalwart.engine.distributed``), and only rank 0 prints to stdout.
    """
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torch.distributed only when asked for
        import sys

        from stalwart.engine.distributed import join_from_environment

        if not join_from_environment().main:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (for the process's lifetime)
    app()


if __name__ == "__main__":
    main()
