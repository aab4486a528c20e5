"""The registries of training methods.

``METHODS``: one-stage methods, functions ``(train: GroupedDataset, *, hyperparameters) ->
Method`` (methods that depend on the data read group or class counts from the training set).
``STAGED``: multi-stage methods (JTT, DFR), functions ``(context: StageContext, *,
hyperparameters) -> FitResult`` that compose calls to ``fit``.
"""

from __future__ import annotations

from typing import Any

from stalwart.errors import ConfigError, closest
from stalwart.methods.base import Method
from stalwart.registry import Registry

METHODS: Registry[Method] = Registry("method")
STAGED: Registry[Any] = Registry("method")


def all_method_names() -> list[str]:
    """Every method name, one-stage and staged."""
    return sorted([*METHODS.names(), *STAGED.names()])


def registry_of(name: str) -> Registry:
    """The registry that holds ``name``; a wrong name lists every method."""
    for registry in (METHODS, STAGED):
        if name in registry:
            return registry
    names = all_method_names()
    raise ConfigError(f"unknown method {name!r}{closest(name, names)}; choose from {names}")
