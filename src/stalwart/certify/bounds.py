"""One entry point for every bound: ``bound("crown", net, inputs, margin_of=label)``.

Each method registers a function ``(net, lower, upper, C, d, **options) -> lower bounds``
working on one input box (flat ``(n,)`` bounds) and a detached network; methods whose number
may be an estimate rather than a certificate return ``(lower, sound)``. This module does the
shared work: converting a model, cutting it from autograd, casting it to the dtype the bound
is computed in, choosing the output rows (the margins of a label or a VNN-LIB property),
timing, and wrapping the answer in a :class:`Bound`.

**One vocabulary.** A bound is named by its registry entry (``ibp``, ``crown``,
``crown+alpha``, ``lp``, ``sdp``) and tuned by that entry's keyword-only parameters, the same
names wherever it is called: ``bound("sdp", …, steps=500)``,
``verify(…, options={"sdp": {"steps": 500}})``, ``certified_accuracy(…, options=…)`` and
``--option sdp.steps=500`` on the command line. :func:`bound_options` lists them.

**Floating point.** Certificates are computed in float64 by default, where rounding is far
below anything a certificate is decided by. ``dtype=torch.float32`` is the faster option: the
input box is rounded outward and every bound subtracts a rigorous rounding allowance
(``rounding.py``), so a ``sound`` bound still holds for the network as its weights define it.
Two keyword parameters are not options but context that :func:`bound` supplies:
``rounding`` (whether to subtract that allowance) and ``deadline``.
"""

from __future__ import annotations

import time
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pydantic
import torch
from torch import Tensor, nn

from stalwart.certify.deadline import Deadline
from stalwart.certify.ibp import ibp_rows
from stalwart.certify.network import Network, from_module
from stalwart.certify.rounding import (
    cast_allowance,
    cast_is_exact,
    check_float,
    ieee_float32,
    outward,
)
from stalwart.certify.spec import Bound, Box, OutputProperty
from stalwart.errors import ConfigError, closest
from stalwart.registry import Registry

BoundFunction = Callable[..., Tensor | tuple[Tensor, bool]]
BOUNDS: Registry[Tensor] = Registry("bound")
# Keyword parameters that bound() supplies itself; a user never sets them as options.
CONTEXT = ("rounding", "deadline")


@BOUNDS.register("ibp")
def _ibp(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    C: Tensor,
    d: Tensor,
    *,
    rounding: bool = False,
    deadline: Deadline | None = None,
) -> Tensor:
    return ibp_rows(net, lower[None], upper[None], C, d, rounding=rounding)[0]


def bound_options(name: str) -> list[str]:
    """The options a user may set for the bound ``name`` (its keyword-only parameters)."""
    return [key for key in BOUNDS.parameters(name) if key not in CONTEXT]


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Reject an option the bound ``name`` does not take, or a value of the wrong type."""
    for key in options:
        if key in CONTEXT:
            raise ConfigError(
                f"{key!r} is not an option of bound {name!r}: it is set by the call itself "
                "(dtype=torch.float32 turns on the rounding allowance; deadline= or timeout= "
                "give the time)"
            )
        if key not in bound_options(name):
            # "crown" with alpha=True is the bound "crown+alpha": point there.
            hint = f" (use the bound '{name}+{key}')" if f"{name}+{key}" in BOUNDS else ""
            raise ConfigError(
                f"bound {name!r} has no option {key!r}{closest(str(key), bound_options(name))}"
                f"{hint}; its options are {bound_options(name)}"
            )
    for key, value in options.items():
        _validate(name, key, value)
    BOUNDS.check_params(name, dict(options))


def _adapter(name: str, key: str) -> pydantic.TypeAdapter:
    """The type of option ``key`` of bound ``name``, constraints (``Field(ge=0)``) included."""
    hint = typing.get_type_hints(BOUNDS.get(name), include_extras=True).get(key, Any)
    config = pydantic.ConfigDict(arbitrary_types_allowed=True, allow_inf_nan=False)
    return pydantic.TypeAdapter(hint, config=config)


def _validate(name: str, key: str, value: Any) -> Any:
    """``value`` converted to option ``key``'s type, or a ConfigError naming the rule."""
    try:
        return _adapter(name, key).validate_python(value)
    except pydantic.ValidationError as error:
        problem = error.errors(include_url=False)[0]["msg"]
        raise ConfigError(f"option {name}.{key}: {problem}; got {value!r}") from None


def check_bound_names(names: Iterable[str]) -> None:
    """Reject an unknown bound name (with the choices), or no name at all, before any work."""
    names = list(names)
    if not names:
        raise ConfigError(f"no bound given; choose from {BOUNDS.names()}")
    for name in names:
        BOUNDS.get(name)


def check_option_table(options: Mapping[str, Mapping[str, Any]] | None, names) -> dict:
    """Options per bound (``{"sdp": {"steps": 500}}``), checked against the bounds in use."""
    table = {name: dict(given) for name, given in (options or {}).items()}
    for name, given in table.items():
        BOUNDS.get(name)
        if name not in names:
            raise ConfigError(
                f"options are given for bound {name!r}, which is not among the bounds run "
                f"({list(names)}); add it or drop its options"
            )
        check_options(name, given)
    return table


def parse_option(text: str) -> tuple[str, str, Any]:
    """``"sdp.steps=500"`` as ``("sdp", "steps", 500)``, the value converted to the option's type.

    Raises:
        ConfigError: for text not of the form ``BOUND.OPTION=VALUE``, an unknown bound or
            option, or a value that does not convert.
    """
    head, sep, raw = text.partition("=")
    name, dot, key = head.strip().rpartition(".")
    if not sep or not dot or not name or not key:
        raise ConfigError(
            f"option {text!r} is not of the form BOUND.OPTION=VALUE (e.g. sdp.steps=500)"
        )
    BOUNDS.get(name)
    if key not in bound_options(name):
        check_options(name, {key: None})  # raises, naming the options there are
    value = _validate(name, key, raw.strip())
    check_options(name, {key: value})
    return name, key, value


def as_network(model: nn.Module | Network, input_shape: tuple[int, ...] | None = None) -> Network:
    """``model`` as a :class:`Network` (converted from a module when needed)."""
    if isinstance(model, Network):
        return model
    if input_shape is None:
        raise ConfigError("converting a module to a network needs its input shape")
    return from_module(model, input_shape)


def property_for(
    net: Network, margin_of: int | None, prop: OutputProperty | None
) -> OutputProperty:
    """The output property: the margins of ``margin_of`` or the given ``prop`` (exactly one)."""
    if (margin_of is None) == (prop is None):
        raise ConfigError("give exactly one of margin_of (a label) or prop (an OutputProperty)")
    if prop is None:
        prop = OutputProperty.margin(int(margin_of), net.out_features, dtype=torch.float64)
    if prop.n_outputs != net.out_features:
        raise ConfigError(
            f"the property refers to {prop.n_outputs} outputs but the network has "
            f"{net.out_features}"
        )
    return prop


@ieee_float32()
def bound(
    method: str,
    model: nn.Module | Network,
    inputs: Box,
    *,
    margin_of: int | None = None,
    prop: OutputProperty | None = None,
    dtype: torch.dtype | None = torch.float64,
    deadline: Deadline | None = None,
    **options,
) -> Bound:
    """Lower bounds on the property's rows over one input box, by ``method``.

    Args:
        method: one of ``BOUNDS.names()`` (``ibp``, ``crown``, ``crown+alpha``, ``lp``, ``sdp``).
        model: a :class:`Network` or a supported ``nn.Module`` (converted on ``inputs``' shape).
        inputs: the input box, shaped like one input.
        margin_of: certify that this label stays the arg-max (rows ``y_label − y_j``).
        prop: or a general output property (rows ``C y + d``).
        dtype: compute in this dtype: float64 (the default; ``None`` means the same), or
            float32, faster, with the box rounded outward and a rigorous rounding allowance
            subtracted, so the bound stays a certificate (also for a network with more
            digits than float32: the error of casting it is subtracted too).
        deadline: bounds that iterate stop early (still sound) once it passes; the others
            raise ``Expired``.
        **options: the method's options (:func:`bound_options`): ``steps``/``lr`` for
            ``crown+alpha`` and ``sdp``, ``intermediate``/``refine`` for ``lp``, …

    Raises:
        ConfigError: an unknown method or option, a wrong property, a batched box.
    """
    dtype = torch.float64 if dtype is None else dtype
    check_float(dtype)
    function = BOUNDS.get(method)
    check_options(method, options)
    given = as_network(model, tuple(inputs.lower.shape)).detach()
    net = given.detach(dtype=dtype)
    prop = property_for(net, margin_of, prop)
    device = net.layers[0].bias.device
    lower, upper = outward(inputs.lower.detach(), inputs.upper.detach(), dtype)
    lower, upper, single = Box(lower.to(device), upper.to(device)).flat(net.input_shape)
    if not single:
        raise ConfigError("bound() takes one input box; loop over a batch or use ibp_rows")
    C, d, _ = prop.to(dtype, device).stacked()
    rounding = dtype != torch.float64
    start = time.perf_counter()
    with torch.no_grad():
        result = function(net, lower[0], upper[0], C, d, rounding=rounding, deadline=deadline,
                          **options)  # fmt: skip
    lows, sound = result if isinstance(result, tuple) else (result, True)
    if rounding and not (cast_is_exact(given, dtype) and cast_is_exact_property(prop, dtype)):
        # The bound holds for the cast network; the one asked about had more digits.
        lows = lows - cast_allowance(net, lower[0], upper[0], C, d)
    return Bound(lows.detach(), method, sound, time.perf_counter() - start)


def cast_is_exact_property(prop: OutputProperty, dtype: torch.dtype) -> bool:
    """Whether the property's rows are exactly representable in ``dtype``."""
    return all(
        bool(torch.equal(t.to(dtype).to(t.dtype), t)) for C, d in prop.disjuncts for t in (C, d)
    )
