"""What a check is handed: the run, its budget, the section it fills, and the audit's settings.

A check fills ``context.section`` as it goes, so that when it runs out of time (it calls
``context.check_time`` between steps, or the audit interrupts it) what already finished is
kept in a ``partial`` section. It raises :class:`NotApplicable` when it has nothing to say
about the run (no input blocks, no testbed, a model the bounds do not support).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat

from stalwart.report.html import Section


class NotApplicable(Exception):  # noqa: N818  (a verdict, not an error)
    """The check does not apply to this run; the message says why (and how to make it)."""


class OutOfTime(Exception):  # noqa: N818  (raised on purpose when the budget is spent)
    """The check's budget is spent.

    Constructible without arguments: the audit raises it inside a check that overran
    (``PyThreadState_SetAsyncExc`` takes a class, not an instance).
    """

    def __init__(self, doing: str = "") -> None:
        super().__init__(doing)
        self.doing = doing


class AuditSettings(BaseModel):
    """What the checks may use, beside the run itself.

    Attributes:
        budget_s: seconds each check may take (None: no limit).
        testbed: a testbed folder (``kind: testbed``) on the runs' data, for the shift check;
            by default ``runs/testbed_<data name>`` when that folder exists.
        attack_examples: the most test examples the robustness check attacks.
        certify_examples: the most test points the certified check bounds.
        typo_examples: the most test examples the typos check attacks and certifies (and never
            more than the cell measured itself, its ``evaluate: examples``).
    """

    model_config = ConfigDict(extra="forbid")

    budget_s: PositiveFloat | None = 60.0
    testbed: Path | None = None
    attack_examples: int = Field(default=500, ge=1)
    certify_examples: int = Field(default=100, ge=1)
    typo_examples: int = Field(default=1000, ge=1)


@dataclass
class CheckContext:
    """One check's run on one audited run.

    Attributes:
        section: the section the check fills (title, key and budget already set).
        settings: the audit's settings.
        budget: seconds the check may take (``math.inf``: no limit).
        started: ``time.perf_counter()`` when the check began.
    """

    section: Section
    settings: AuditSettings
    budget: float
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Seconds since the check began."""
        return time.perf_counter() - self.started

    def left(self) -> float:
        """Seconds left of the budget (negative once spent; ``inf`` without a budget)."""
        return self.budget - self.elapsed()

    def check_time(self, doing: str) -> None:
        """Raise :class:`OutOfTime` (naming what was about to run) once the budget is spent."""
        if self.left() <= 0:
            raise OutOfTime(doing)
