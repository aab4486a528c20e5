"""Named registries of datasets, models and methods.

A registry maps a name to a factory. Looking up a wrong name lists the choices and suggests
the closest one; building with a wrong keyword names the parameter, suggests the closest
valid one, and type-checks values through pydantic.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import pydantic

from stalwart.errors import ConfigError, closest

T = TypeVar("T")


class Registry(Generic[T]):
    """A name → factory table for one kind of thing (``"dataset"``, ``"model"``, ...).

    A registry may require every entry to carry the same metadata (``info=``, an instance of
    ``info_type``), so that what is known about an entry is recorded in one place and one form.
    """

    def __init__(self, kind: str, info_type: type | None = None) -> None:
        self.kind = kind
        self.info_type = info_type
        self._entries: dict[str, Callable[..., T]] = {}
        self._info: dict[str, Any] = {}

    def register(
        self, name: str, info: Any = None
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator that adds a factory under ``name``, with its metadata ``info``."""
        if self.info_type is not None and not isinstance(info, self.info_type):
            raise TypeError(
                f"{self.kind} {name!r} must be registered with info={self.info_type.__name__}(...)"
            )

        def add(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = factory
            self._info[name] = info
            return factory

        return add

    def info(self, name: str) -> Any:
        """The metadata registered with ``name`` (None for registries without metadata)."""
        self.get(name)  # a wrong name lists the choices
        return self._info[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._entries)

    def get(self, name: str) -> Callable[..., T]:
        """Return the factory registered under ``name``; a wrong name lists the choices."""
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}{closest(name, self._entries)}; "
                f"choose from {self.names()}"
            ) from None

    def parameters(self, name: str) -> dict[str, inspect.Parameter]:
        """The keyword parameters a user may set for ``name`` (leading positionals excluded)."""
        signature = inspect.signature(self.get(name))
        return {
            key: p
            for key, p in signature.parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        }

    def check_params(self, name: str, params: dict[str, Any]) -> None:
        """Raise ``ConfigError`` on a key the factory does not take or a value of a wrong type.

        Runs call this before building anything, so that a mistake fails before work starts.
        """
        allowed = self.parameters(name)
        for key in params:
            if key not in allowed:
                raise ConfigError(
                    f"{self.kind} {name!r} has no parameter {key!r}{closest(key, allowed)}; "
                    f"its parameters are {sorted(allowed)}"
                )
        hints = typing.get_type_hints(self.get(name))
        fields = {
            key: (hints.get(key, Any), p.default if p.default is not p.empty else ...)
            for key, p in allowed.items()
        }
        schema = pydantic.create_model(
            f"{name}_parameters", __config__=pydantic.ConfigDict(arbitrary_types_allowed=True),
            **fields,
        )  # fmt: skip
        try:
            schema.model_validate(params)
        except pydantic.ValidationError as error:
            raise ConfigError(describe_validation_error(error, f"{self.kind} {name!r}")) from None

    def build(self, name: str, *args: Any, **params: Any) -> T:
        """Call the factory for ``name`` with type-checked keyword parameters."""
        factory = self.get(name)
        self.check_params(name, params)
        checked = pydantic.validate_call(config={"arbitrary_types_allowed": True})(factory)
        try:
            return checked(*args, **params)
        except pydantic.ValidationError as error:
            raise ConfigError(describe_validation_error(error, f"{self.kind} {name!r}")) from None


def describe_validation_error(error: pydantic.ValidationError, where: str) -> str:
    """Turn a pydantic error into 'where: parameter 'x' must be ...; got ...' lines."""
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        lines.append(f"{where}: parameter {location!r}: {item['msg']}; got {item.get('input')!r}")
    return "\n".join(lines)
