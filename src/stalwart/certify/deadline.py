"""A wall-clock deadline shared by every stage of one verification answer.

A time-out is a promise about wall-clock time: each stage checks the deadline before work it
can stop, and a call it cannot interrupt (a HiGHS solve) gets the time that is left as its own
limit. A stage that runs out of time either returns the sound answer it already has (α-CROWN's
best slopes, the LP's CROWN fallback) or raises :class:`Expired`, which the cascade turns into
``unknown``.
"""

from __future__ import annotations

import math
import time


class Expired(TimeoutError):
    """The deadline passed before a stage could give a sound answer."""


class Deadline:
    """Wall-clock time left until a fixed end (``math.inf`` seconds: no end)."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    @property
    def left(self) -> float:
        """Seconds until the end (negative once past it)."""
        return self.end - time.perf_counter()

    @property
    def passed(self) -> bool:
        """Whether the end has passed."""
        return self.left <= 0

    def check(self, stage: str) -> None:
        """Raise :class:`Expired` naming ``stage`` if the end has passed."""
        if self.passed:
            raise Expired(f"time out during {stage}")

    def limit(self, floor: float = 1e-3) -> float:
        """The time left, as a solver's own time limit (at least ``floor``; finite)."""
        left = self.left
        return max(left, floor) if math.isfinite(left) else 1e9


def check(deadline: Deadline | None, stage: str) -> None:
    """:meth:`Deadline.check` that accepts no deadline."""
    if deadline is not None:
        deadline.check(stage)
