"""The registry of data sources and the data packages each one needs.

Every source also takes ``shifts``, a list of named shifts (``stalwart.data.shifts``) added to
its splits as extra evaluation sets. It is handled here, once for every source: checked with
the other parameters (so a config fails before any data loads) and applied after the source
has built its splits.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from stalwart.data.core import Splits
from stalwart.registry import Registry

SHIFTS_PARAMETER = "shifts"


class SourceRegistry(Registry[Splits]):
    """Data sources: a registry whose every entry also takes the ``shifts`` parameter."""

    def parameters(self, name: str) -> dict[str, inspect.Parameter]:
        """The source's own keyword parameters plus ``shifts``."""
        return {
            **super().parameters(name),
            SHIFTS_PARAMETER: inspect.Parameter(
                SHIFTS_PARAMETER, inspect.Parameter.KEYWORD_ONLY, default=(), annotation=list[str]
            ),
        }

    def check_params(self, name: str, params: dict[str, Any]) -> None:
        """Check the source's parameters, then the shifts (names that apply to this source)."""
        from stalwart.data.shifts import check_shifts  # shifts reads sources, which import us

        own = {k: v for k, v in params.items() if k != SHIFTS_PARAMETER}
        super().check_params(name, own)
        check_shifts(name, params.get(SHIFTS_PARAMETER, ()))

    def build(self, name: str, *args: Any, **params: Any) -> Splits:
        """Build the source's splits, then add the shifted evaluation sets asked for."""
        from stalwart.data.shifts import add_shifts, check_shifts

        shifts = params.pop(SHIFTS_PARAMETER, ())
        check_shifts(name, shifts)  # before the (possibly slow) load
        splits = super().build(name, *args, **params)
        return add_shifts(splits, name, params, shifts)


SOURCES: SourceRegistry = SourceRegistry("dataset")
REQUIRES: dict[str, tuple[str, ...]] = {}


def register_source(
    name: str, requires: tuple[str, ...] = ()
) -> Callable[[Callable[..., Splits]], Callable[..., Splits]]:
    """Register a source under ``name``, recording the data packages it reads."""

    def add(source: Callable[..., Splits]) -> Callable[..., Splits]:
        REQUIRES[name] = requires
        return SOURCES.register(name)(source)

    return add
