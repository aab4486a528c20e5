"""Experiment kinds: what a config's ``kind:`` runs, each declared in one file of this folder.

A kind registers its config class (a strict pydantic model with ``kind: Literal[name]``), its
run function and its renderer with :func:`register_kind`. Every module here is imported when
the registry is first used, so adding a kind is adding one file: the command line, config
loading and ``stalwart run`` find it through ``KINDS``.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from stalwart.experiments.executors import Executor, Job
from stalwart.experiments.run import RunSummary
from stalwart.registry import Registry


class Reporter:
    """Hears what a kind is doing while it runs; the command line prints it, the library not.

    Kinds call these hooks; every one does nothing by default.
    """

    def epoch(self, record: dict[str, Any]) -> None:
        """One epoch of a single run finished (its ``metrics.jsonl`` record)."""

    def run_finished(self, job: Job, summary: RunSummary) -> None:
        """One run of a multi-run kind finished (or was found finished)."""

    def note(self, text: str) -> None:
        """A line of progress worth showing."""


@dataclass(frozen=True)
class Kind:
    """One experiment kind.

    Attributes:
        name: the ``kind:`` value.
        config: its config class.
        run: ``run(config, reporter, executor) -> result``; ``executor`` is None unless the
            user chose one (the kind then uses its config's ``workers`` locally).
        render: ``render(config, result) -> [rich renderables or str]`` printed after a run.
        describe: ``describe(config) -> str``: the line printed before running.
    """

    name: str
    config: type[BaseModel]
    run: Callable[[Any, Reporter, Executor | None], Any]
    render: Callable[[Any, Any], Iterable[Any]]
    describe: Callable[[Any], str]


KINDS: Registry[Kind] = Registry("experiment kind")


def register_kind(
    name: str,
    *,
    config: type[BaseModel],
    run: Callable[[Any, Reporter, Executor | None], Any],
    render: Callable[[Any, Any], Iterable[Any]],
    describe: Callable[[Any], str],
) -> Kind:
    """Declare the kind ``name``; call it at the bottom of the kind's module."""
    kind = Kind(name, config, run, render, describe)
    KINDS.register(name)(lambda: kind)
    return kind


_loaded = False


def kinds() -> Registry[Kind]:
    """``KINDS``, with every module of this folder imported (each registers its kind)."""
    global _loaded
    if not _loaded:
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
        _loaded = True
    return KINDS


def kind(name: str) -> Kind:
    """The kind ``name``; a wrong name lists the choices."""
    return kinds().get(name)()
