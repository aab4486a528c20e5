"""A progress bar with live loss and validation metrics, silent when not on a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn


class TrainingProgress:
    """One bar over all epochs (advancing within each); its text shows the loss and val metrics."""

    def __init__(self, epochs: int, enabled: bool | None = None) -> None:
        console = Console(stderr=True)
        self.enabled = console.is_terminal if enabled is None else enabled
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            disable=not self.enabled,
            transient=False,
        )
        self._task = self._progress.add_task("train", total=epochs, status="")

    def __enter__(self) -> TrainingProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def advance(self, epochs: float, description: str, status: str) -> None:
        """Move the bar ``epochs`` (a fraction within an epoch) forward and refresh its text."""
        if self.enabled:
            self._progress.update(
                self._task, advance=epochs, description=description, status=status
            )
