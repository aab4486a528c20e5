"""A run under audit: where it is, what it is called in the report, and its loaded model.

The run is loaded once (``stalwart.experiments.run.load_run``) and shared by its checks. A run
that cannot be loaded (no config, no saved model, a corrupt checkpoint) keeps the reason, and
every check of it reports that reason instead of a figure.
"""

from __future__ import annotations

import math
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stalwart.errors import StalwartError


@dataclass
class AuditedRun:
    """One run directory and, once loaded, its config, splits and selected model."""

    label: str
    path: Path
    config: Any = None
    splits: Any = None
    model: Any = None
    error: str = ""
    load_seconds: float = 0.0
    _tried: bool = field(default=False, repr=False)

    def load(self) -> bool:
        """Load the run (once); False, with ``error`` set, when it cannot be loaded."""
        if not self._tried:
            self._tried = True
            from stalwart.experiments.run import load_run

            started = time.perf_counter()
            try:
                self.config, self.splits, self.model = load_run(self.path)
            except StalwartError as error:
                self.error = str(error)
            except Exception as error:  # a config of another kind, a model that breaks...
                self.error = f"{type(error).__name__}: {error}"
            self.load_seconds = time.perf_counter() - started
        return not self.error

    @property
    def quoted(self) -> str:
        """The run directory as a shell word, for the commands the report prints."""
        return shlex.quote(str(self.path))

    @property
    def finished(self) -> bool:
        """Whether the run wrote its ``summary.json`` (else the model is its best so far)."""
        return (self.path / "summary.json").is_file()

    def input_range(self) -> tuple[float, float]:
        """The valid input range attacks and bounds stay in.

        Images in ``[0, 1]`` keep that range; other data (standardised features, Gaussian
        toys) has no natural box, so the smallest box with two decimals that holds every
        training and test input stands in for it, and the commands the report prints pass it
        as ``--lower``/``--upper``.
        """
        low = min(float(self.splits.train.x.min()), float(self.splits.test.x.min()))
        high = max(float(self.splits.train.x.max()), float(self.splits.test.x.max()))
        if low >= 0.0 and high <= 1.0:
            return 0.0, 1.0
        return math.floor(low * 100) / 100, math.ceil(high * 100) / 100


def range_options(lower: float, upper: float) -> str:
    """`` --lower L --upper U`` unless the range is the commands' default ``[0, 1]``."""
    # "=" keeps a negative bound from reading as an option of its own.
    return "" if (lower, upper) == (0.0, 1.0) else f" --lower={lower:g} --upper={upper:g}"
