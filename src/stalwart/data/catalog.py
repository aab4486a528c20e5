"""The registry of data sources and the data packages each one needs."""

from __future__ import annotations

from collections.abc import Callable

from stalwart.data.core import Splits
from stalwart.registry import Registry

SOURCES: Registry[Splits] = Registry("dataset")
REQUIRES: dict[str, tuple[str, ...]] = {}


def register_source(
    name: str, requires: tuple[str, ...] = ()
) -> Callable[[Callable[..., Splits]], Callable[..., Splits]]:
    """Register a source under ``name``, recording the data packages it reads."""

    def add(source: Callable[..., Splits]) -> Callable[..., Splits]:
        REQUIRES[name] = requires
        return SOURCES.register(name)(source)

    return add
