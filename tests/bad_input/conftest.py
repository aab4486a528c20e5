"""The shared bad-input battery: each row feeds stalwart one wrong input, expects one clear error.

A row passes when the command exits with status 2, prints no traceback, and its message names
what was wrong (``mentions``) — the path, the key, the range — and, where it matters, leaves the
files it was given as they were. One file per area (configs, data, run directories, command-line
arguments, verification inputs), each a table of rows run by ``expect_clean_error``.
"""

from __future__ import annotations

from collections.abc import Iterable

from typer.testing import CliRunner

from stalwart.cli import app

runner = CliRunner()


def invoke(*args):
    """Run ``stalwart ARGS`` in this process; return the click result."""
    return runner.invoke(app, [str(a) for a in args])


def expect_clean_error(result, mentions: Iterable[str] = (), exit_code: int = 2) -> str:
    """Assert a one-message failure: the exit status, no traceback, and every ``mentions``."""
    output = result.output  # stdout and stderr, as a terminal shows them
    assert result.exit_code == exit_code, f"exit {result.exit_code}, output:\n{output}"
    assert "Traceback" not in output, output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"raised {type(result.exception).__name__}: {result.exception}")
    assert "Value error," not in output and ": : " not in output, f"pydantic's wording:\n{output}"
    for text in mentions:
        assert text in output, f"{text!r} not in:\n{output}"
    return output
