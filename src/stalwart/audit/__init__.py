"""The reliability report: every check stalwart knows, run against trained runs (issue 19).

>>> from stalwart.audit import audit
>>> report = audit(["runs/erm_dominoes"], budget_s=60)   # or a folder of runs: runs/demo
>>> report.write("report.html")                            # one offline page + report.json

Each check (``stalwart/audit/checks/``, one file each, registered in ``CHECKS``) measures one
axis and returns a ``stalwart.report.html.Section``: its figures, tables, plots and the command
that reproduces them. A check has a time budget; one that fails, runs out of time or does not
apply gives a section that says so, never a crash of the whole report.
"""

from stalwart.audit.catalog import (
    CHECKS,
    CheckInfo,
    default_checks,
    register_check,
    registered_checks,
)
from stalwart.audit.context import AuditSettings, CheckContext, NotApplicable, OutOfTime
from stalwart.audit.runner import Audit, AuditReport, audit
from stalwart.audit.runs import runs_to_audit
from stalwart.audit.target import AuditedRun

__all__ = [
    "CHECKS",
    "Audit",
    "AuditReport",
    "AuditSettings",
    "AuditedRun",
    "CheckContext",
    "CheckInfo",
    "NotApplicable",
    "OutOfTime",
    "audit",
    "default_checks",
    "register_check",
    "registered_checks",
    "runs_to_audit",
]
