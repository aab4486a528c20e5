"""`stalwart audit`: one offline HTML page (and its JSON) auditing runs on every axis."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stalwart.cli import app, console, friendly_errors, names

STATUS_STYLE = {"ok": "green", "partial": "yellow", "failed": "red", "not_applicable": "dim"}


@app.command()
@friendly_errors
def audit(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(
            help="Run directories or RobEn cells, or folders of them (runs/demo, the ROOT of a "
            "`kind: roben` run), side by side."
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The HTML page to write (JSON beside it).")
    ] = Path("report.html"),
    checks: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated checks (default: groups,robustness,certified,simplicity,shift,"
            "typos; each applies to the runs of its kind)."
        ),  # fmt: skip
    ] = None,
    budget: Annotated[float, typer.Option(help="Seconds each check may take (0: no limit).")] = 60,
    testbed: Annotated[
        Path | None,
        typer.Option(help="A testbed folder on the runs' data, for the shift check."),
    ] = None,
    all_seeds: Annotated[
        bool,
        typer.Option(
            "--all-seeds", help="In a folder of runs or cells, audit every seed, not one."
        ),
    ] = False,
    title: Annotated[str, typer.Option(help="The page's title.")] = "",
) -> None:
    """Audit trained runs: groups, PGD robustness, certified accuracy, reliance, shift, typos.

    Each check runs within --budget seconds and reports what it measured with the command
    that reproduces it; a check that fails, runs out of time or does not apply says so in its
    section. Writes one self-contained HTML page (works offline, prints) and a JSON file.
    """
    from rich.markup import escape
    from rich.table import Table

    from stalwart.audit import Audit, runs_to_audit
    from stalwart.errors import ConfigError

    if budget < 0:
        raise ConfigError(f"--budget must be >= 0 seconds (0: no limit); got {budget}")
    if output.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--output must end in .html (the JSON goes beside it); got {output}")
    # Checked before any run is loaded: a misspelt check fails in milliseconds.
    runner = Audit(names(checks) if checks else None, budget_s=budget or None, testbed=testbed)
    chosen, notes = runs_to_audit(run_dirs, all_seeds=all_seeds)
    report = runner.run(chosen, title=title, notes=notes)
    page, data = report.write(output)

    # A check that applies to none of the runs (a text check on image runs) gets no column.
    shown = [
        index for index in range(len(runner.checks))
        if any(s[index].status != "not_applicable" for s in report.runs.values())
    ]  # fmt: skip
    table = Table(title="audit", title_justify="left")
    table.add_column("run")
    for index in shown:
        table.add_column(runner.checks[index], justify="right")
    for label, sections in report.runs.items():
        cells = [
            f"[{STATUS_STYLE[s.status]}]{s.status.replace('_', ' ')}[/] {s.seconds:.1f}s"
            for s in (sections[index] for index in shown)
        ]
        table.add_row(escape(label), *cells)
    console.print(table)
    hidden = [key for index, key in enumerate(runner.checks) if index not in shown]
    if hidden:
        console.print(
            f"not applicable to these runs (the page says why): {', '.join(hidden)}",
            highlight=False, soft_wrap=True,
        )  # fmt: skip
    for note in notes:
        console.print(escape(note), highlight=False)
    console.print(
        f"report: {escape(str(page))} (and {escape(str(data))})", highlight=False, soft_wrap=True
    )  # a path is copied whole, never wrapped
