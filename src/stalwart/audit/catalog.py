"""The registered checks: each is one function in ``stalwart/audit/checks/``, found by name.

A check is ``check(run: AuditedRun, context: CheckContext) -> Section``, registered with
:func:`register_check`. Every module of the ``checks`` folder is imported the first time the
registry is used, so adding a check is adding one file; a wrong name lists the choices.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stalwart.errors import ConfigError
from stalwart.registry import Registry

if TYPE_CHECKING:
    from stalwart.audit.context import CheckContext
    from stalwart.audit.target import AuditedRun
    from stalwart.report.html import Section

    Check = Callable[[AuditedRun, CheckContext], Section]


@dataclass(frozen=True)
class CheckInfo:
    """What the report says about a check.

    Attributes:
        title: the section's heading.
        order: position in the report (lower first); ties by name.
        default: whether ``stalwart audit`` runs it when no ``--checks`` are given.
        applies_to: the kinds of run it measures (keys of ``target.RUN_KINDS``); a run of
            another kind gets the section *not applicable*, and the check is not called.
    """

    title: str
    order: int = 100
    default: bool = True
    applies_to: tuple[str, ...] = ("classification",)


CHECKS: Registry = Registry("check", info_type=CheckInfo)

_loaded = False


def registered_checks() -> Registry:
    """``CHECKS``, with every module of ``stalwart.audit.checks`` imported."""
    global _loaded
    if not _loaded:
        folder = importlib.import_module("stalwart.audit.checks")
        for module in pkgutil.iter_modules(folder.__path__):
            importlib.import_module(f"{folder.__name__}.{module.name}")
        _loaded = True
    return CHECKS


def register_check(
    name: str,
    title: str,
    *,
    order: int = 100,
    default: bool = True,
    applies_to: Sequence[str] = ("classification",),
):
    """Decorator that registers a check function under ``name``.

    Raises:
        ConfigError: ``applies_to`` names no kind of run, or one the audit does not know.
    """
    from stalwart.audit.target import RUN_KINDS

    unknown = [kind for kind in applies_to if kind not in RUN_KINDS]
    if not applies_to or unknown:
        raise ConfigError(
            f"check {name!r}: applies_to must name kinds of run from {sorted(RUN_KINDS)}; "
            f"got {list(applies_to)}"
        )
    return CHECKS.register(name, info=CheckInfo(title, order, default, tuple(applies_to)))


def default_checks() -> list[str]:
    """The checks run when none are named, in report order."""
    registry = registered_checks()
    return ordered([name for name in registry if registry.info(name).default])


def ordered(names: Sequence[str]) -> list[str]:
    """``names`` checked against the registry (a wrong one lists the choices), in report order.

    Raises:
        ConfigError: an unknown check, a repeated one, or none at all.
    """
    registry = registered_checks()
    if not names:
        raise ConfigError(f"no check named; choose from {registry.names()}")
    for name in names:
        registry.get(name)
    repeated = sorted({name for name in names if list(names).count(name) > 1})
    if repeated:
        raise ConfigError(f"check {repeated[0]!r} is named twice")
    return sorted(names, key=lambda name: (registry.info(name).order, name))
