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
    """

    title: str
    order: int = 100
    default: bool = True


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


def register_check(name: str, title: str, *, order: int = 100, default: bool = True):
    """Decorator that registers a check function under ``name``."""
    return CHECKS.register(name, info=CheckInfo(title, order, default))


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
