"""The audit: every chosen check on every run, each within its time budget, never a crash.

Each check runs in a worker thread with its budget. A check is expected to keep to it (it
sizes its work from a quick probe and calls ``context.check_time`` between steps); one that
overruns by more than a grace period is interrupted (``OutOfTime`` raised inside its thread),
and one that cannot be interrupted (stuck inside a long native call) is left behind and
reported. Whatever happens, the check's section comes back:

- it returned: its section, as it filled it (``ok`` unless it said otherwise);
- it raised ``NotApplicable``: ``not_applicable`` with the reason (a run of a kind the check
  is not for, ``CheckInfo.applies_to``, gets that status without the check being called);
- it ran out of time: ``partial``, keeping the figures it had recorded, with what it was doing;
- it raised a ``StalwartError``: ``failed`` with the message as it is (it says what to do);
- it raised anything else: ``failed`` with the exception's type and message.
"""

from __future__ import annotations

import ctypes
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stalwart.audit.catalog import default_checks, ordered, registered_checks
from stalwart.audit.context import AuditSettings, CheckContext, NotApplicable, OutOfTime
from stalwart.audit.runs import runs_to_audit
from stalwart.audit.side_by_side import side_by_side
from stalwart.audit.target import AuditedRun, not_applicable_reason
from stalwart.errors import StalwartError
from stalwart.io import atomic_write_text, write_json
from stalwart.report.html import Section, render_page

SEED = 0
"""Seeds torch before each check, so an audit gives the same figures every time."""


def grace(budget: float) -> float:
    """Seconds a check may overrun before it is interrupted: a tenth of its budget, 1 to 30."""
    return min(max(0.1 * budget, 1.0), 30.0)


@dataclass
class AuditReport:
    """Every run's sections, the side-by-side tables, and how the runs were chosen."""

    title: str
    runs: dict[str, list[Section]]
    paths: dict[str, str]
    notes: list[str] = field(default_factory=list)
    side_by_side: list[Section] = field(default_factory=list)

    def html(self) -> str:
        """The one-file HTML page."""
        return render_page(self.title, self.runs, self.side_by_side, notes=self.notes,
                           paths=self.paths)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """Everything in the page but the images, for ``report.json``."""
        return {
            "title": self.title,
            "notes": self.notes,
            "runs": {
                label: {"path": self.paths[label], "sections": [s.to_dict() for s in sections]}
                for label, sections in self.runs.items()
            },
        }

    def write(self, path: str | Path) -> tuple[Path, Path]:
        """Write the page to ``path`` and the JSON beside it (same stem, ``.json``), atomically.

        Returns:
            The two paths written.
        """
        page = Path(path)
        data = page.with_suffix(".json")
        atomic_write_text(page, self.html())
        write_json(data, self.to_dict())
        return page, data


class Audit:
    """Runs checks against runs, each within ``settings.budget_s`` seconds.

    Args:
        checks: registered check names (default: every default check), run in report order.
        settings: budgets and what the checks may use (``AuditSettings``), or its fields as
            keywords (``budget_s=30``, ``testbed=...``).

    Raises:
        ConfigError: an unknown check (with the closest name) or setting.
    """

    def __init__(
        self,
        checks: Sequence[str] | None = None,
        settings: AuditSettings | None = None,
        **options: Any,
    ) -> None:
        from stalwart.errors import ConfigError
        from stalwart.registry import describe_validation_error

        if settings is not None and options:
            raise ConfigError("pass settings= or keyword options, not both")
        if settings is None:
            import pydantic

            try:
                settings = AuditSettings(**options)
            except pydantic.ValidationError as error:
                raise ConfigError(describe_validation_error(error, "audit")) from None
        self.settings = settings
        self.checks = ordered(list(checks)) if checks else default_checks()

    def run(
        self, runs: Sequence[tuple[str, str | Path]], *, title: str = "", notes: Sequence[str] = ()
    ) -> AuditReport:
        """Audit ``(label, run directory)`` pairs; several give side-by-side tables too."""
        report = AuditReport(
            title or f"Reliability report: {', '.join(label for label, _ in runs)}",
            {}, {}, list(notes),
        )  # fmt: skip
        budget = self.settings.budget_s
        if budget is not None:
            report.notes.append(
                f"Each check had {budget:g} s (interrupted after {budget + grace(budget):g} s)."
            )
        for label, path in runs:
            target = AuditedRun(label, Path(path))
            report.paths[label] = str(path)
            report.runs[label] = [self.check(name, target) for name in self.checks]
        if len(report.runs) > 1:
            report.side_by_side = side_by_side(report.runs)
        return report

    def check(self, name: str, target: AuditedRun) -> Section:
        """One check's section on one run (never raises for the check's sake)."""
        info = registered_checks().info(name)
        budget = self.settings.budget_s
        section = Section(name, info.title, budget=budget)
        if target.kind not in info.applies_to:
            section.status = "not_applicable"
            section.reason = not_applicable_reason(target.kind, info.applies_to)
            return section
        if not target.load():
            section.status = "failed"
            section.reason = f"the run cannot be audited: {target.error}"
            return section
        context = CheckContext(section, self.settings, math.inf if budget is None else budget)
        outcome = _run_in_thread(registered_checks().get(name), target, context,
                                 None if budget is None else budget + grace(budget))  # fmt: skip
        section.seconds = context.elapsed()
        _settle(section, outcome, context)
        return section


@dataclass
class _Outcome:
    section: Section | None = None
    error: BaseException | None = None
    abandoned: bool = False


def _run_in_thread(check, target: AuditedRun, context: CheckContext, limit: float | None):
    outcome = _Outcome()
    finished = threading.Event()

    def work() -> None:
        try:
            import torch

            torch.manual_seed(SEED)
            outcome.section = check(target, context)
        except BaseException as error:  # noqa: BLE001  (reported in the section, never lost)
            outcome.error = error
        finally:
            finished.set()

    thread = threading.Thread(target=work, name=f"audit-{context.section.key}", daemon=True)
    thread.start()
    if not finished.wait(limit):
        _interrupt(thread)
        # The interruption lands at the next Python instruction; a native call (a long solve)
        # must return first. Wait a little, then give up on the thread.
        if not finished.wait(grace(context.budget) if math.isfinite(context.budget) else None):
            outcome.abandoned = True
    return outcome


def _interrupt(thread: threading.Thread) -> None:
    """Raise ``OutOfTime`` inside ``thread`` (CPython's asynchronous exception)."""
    if thread.ident is None:
        return
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread.ident), ctypes.py_object(OutOfTime)
    )


def _settle(section: Section, outcome: _Outcome, context: CheckContext) -> None:
    """Turn how the check ended into the section's status and reason."""
    budget = f"{context.budget:g} s budget"
    error = outcome.error
    if outcome.abandoned:
        section.status = "partial"
        section.reason = (
            f"the check overran its {budget} and could not be interrupted; it was left "
            "running in the background, and the figures here are those it had recorded"
        )
    elif error is None:
        if outcome.section is not None and outcome.section is not section:
            # A check may build its own section; keep the audit's timing and budget on it.
            for key in ("status", "reason", "figures", "tables", "plots", "command", "notes"):
                setattr(section, key, getattr(outcome.section, key))
    elif isinstance(error, NotApplicable):
        section.status = "not_applicable"
        section.reason = str(error)
    elif isinstance(error, OutOfTime):
        section.status = "partial"
        doing = f" while {error.doing}" if error.doing else ""
        kept = "the figures here are those that finished" if section.figures else "nothing finished"
        section.reason = f"ran out of its {budget}{doing}; {kept}"
    elif isinstance(error, StalwartError):
        section.status = "failed"
        section.reason = str(error)
    else:
        section.status = "failed"
        section.reason = f"{type(error).__name__}: {error}".rstrip(": ")


def audit(
    run_dirs: Sequence[str | Path] | str | Path,
    checks: Sequence[str] | None = None,
    budget_s: float | None = 60.0,
    *,
    all_seeds: bool = False,
    title: str = "",
    **settings: Any,
) -> AuditReport:
    """Audit run directories (or folders of runs) with the registered checks.

    >>> report = audit("runs/erm_dominoes", budget_s=30)
    >>> report.write("report.html")          # and report.json beside it

    Args:
        run_dirs: run directories and/or folders of runs (``runs/demo``), audited side by side.
        checks: check names (default: all default checks).
        budget_s: seconds per check (None: no limit).
        all_seeds: in a folder of runs, audit every seed, not only each entry's lowest.
        title: the page's title.
        **settings: further ``AuditSettings`` (``testbed=``, ``attack_examples=``...).

    Raises:
        ConfigError: an unknown check or setting, or a path that does not exist.
    """
    runner = Audit(checks, budget_s=budget_s, **settings)
    paths = [run_dirs] if isinstance(run_dirs, str | Path) else list(run_dirs)
    chosen, notes = runs_to_audit(paths, all_seeds=all_seeds)
    started = time.perf_counter()
    report = runner.run(chosen, title=title, notes=notes)
    report.notes.append(f"Audited in {time.perf_counter() - started:.0f} s.")
    return report
