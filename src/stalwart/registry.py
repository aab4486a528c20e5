"""Named registries of datasets, models and methods.

A registry maps a name to a factory. Looking up a wrong name lists the choices and suggests
the closest one; building with a wrong keyword names the parameter, suggests the closest
valid one, and type-checks values through pydantic.
"""

from __future__ import annotations

import collections.abc
import inspect
import types
import typing
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Generic, Literal, TypeVar, Union

import pydantic
from pydantic_core import PydanticCustomError

from stalwart.errors import ConfigError, closest, shorten

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
                f"unknown {self.kind} {shorten(name)}{closest(str(name), self._entries)}; "
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
                    f"{self.kind} {name!r} has no parameter {shorten(key)}"
                    f"{closest(str(key), allowed)}; its parameters are {sorted(allowed)}"
                )
        hints = typing.get_type_hints(self.get(name), include_extras=True)
        fields = {
            key: (
                strict_numbers(hints.get(key, Any)),
                p.default if p.default is not p.empty else ...,
            )
            for key, p in allowed.items()
        }
        # Numbers must be finite (lr: .inf is a typo, not a setting), as in every config section.
        schema = pydantic.create_model(
            f"{name}_parameters",
            __config__=pydantic.ConfigDict(arbitrary_types_allowed=True, allow_inf_nan=False),
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


MAX_ERROR_LINES = 20
"""The most problems one error message lists (the count of the rest follows)."""


def describe_validation_error(error: pydantic.ValidationError, where: str) -> str:
    """Turn a pydantic error into 'where: parameter 'x' must be ...; got ...' lines.

    A value is quoted by its first few characters only (``shorten``), and at most
    ``MAX_ERROR_LINES`` problems are listed, so a huge value never makes a huge message.
    """
    lines = []
    items = error.errors(include_url=False)
    for item in items[:MAX_ERROR_LINES]:
        location = ".".join(str(part) for part in item["loc"])
        lines.append(
            f"{where}: parameter {shorten(location)}: {item['msg']}; "
            f"got {shorten(item.get('input'))}"
        )
    if len(items) > MAX_ERROR_LINES:
        lines.append(f"{where}: ... and {len(items) - MAX_ERROR_LINES} more problems")
    return "\n".join(lines)


def _not_a_bool(value: Any) -> Any:
    # bool is a subclass of int, and pydantic's lax mode reads true as 1: `n: true` is a slip.
    if isinstance(value, bool):
        raise PydanticCustomError("bool_not_number", "expected a number, not a boolean")
    return value


_INT = Annotated[
    int, pydantic.BeforeValidator(_not_a_bool), pydantic.Field(ge=-(2**63), le=2**63 - 1)
]
_FLOAT = Annotated[float, pydantic.BeforeValidator(_not_a_bool)]
_GENERICS = {
    list, tuple, set, frozenset, dict, collections.abc.Sequence, collections.abc.Mapping,
    collections.abc.Set, collections.abc.Iterable,
}  # fmt: skip


def strict_numbers(hint: Any) -> Any:
    """``hint`` with every ``int`` and ``float`` in it refusing booleans, ints bounded to int64.

    Parameters keep pydantic's lax mode elsewhere (a list is accepted for a tuple, a NumPy
    integer for an int), but a boolean is never a number, and no integer parameter needs more
    than 64 bits (NumPy and PyTorch overflow beyond). Unions, ``Optional``, ``Annotated`` and
    the container generics are followed; any other type is returned as it is.
    """
    if hint is int:
        return _INT
    if hint is float:
        return _FLOAT
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is None or origin is Literal or not args:
        return hint
    if origin is Annotated:
        return Annotated[(strict_numbers(args[0]), *hint.__metadata__)]
    mapped = tuple(arg if arg is Ellipsis else strict_numbers(arg) for arg in args)
    if origin in (Union, types.UnionType):
        return Union[mapped]  # noqa: UP007  (built from a tuple of types)
    if origin in _GENERICS:
        return origin[mapped if len(mapped) > 1 else mapped[0]]
    return hint
