"""One entry point for every bound: ``bound("crown", net, inputs, margin_of=label)``.

Each method registers a function ``(net, lower, upper, C, d, **options) -> lower bounds``
working on one input box (flat ``(n,)`` bounds) and a detached network; methods whose number
may be an estimate rather than a certificate return ``(lower, sound)``. This module does the
shared work: converting a model, cutting it from autograd, choosing the output rows (the
margins of a label or a VNN-LIB property), timing, and wrapping the answer in a :class:`Bound`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from stalwart.certify.ibp import ibp_rows
from stalwart.certify.network import Network, from_module
from stalwart.certify.spec import Bound, Box, OutputProperty
from stalwart.errors import ConfigError
from stalwart.registry import Registry

BoundFunction = Callable[..., Tensor | tuple[Tensor, bool]]
BOUNDS: Registry[Tensor] = Registry("bound")


@BOUNDS.register("ibp")
def _ibp(net: Network, lower: Tensor, upper: Tensor, C: Tensor, d: Tensor) -> Tensor:
    return ibp_rows(net, lower[None], upper[None], C, d)[0]


def bound_call(name: str) -> tuple[str, dict]:
    """The registered method and options behind a bound name; ``crown+alpha`` is α-CROWN."""
    if name == "crown+alpha":
        return "crown", {"alpha": True}
    return name, {}


def check_bound_names(names) -> None:
    """Reject an unknown bound name (with the choices) before any work starts."""
    for name in names:
        BOUNDS.get(bound_call(name)[0])


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
        prop = OutputProperty.margin(int(margin_of), net.out_features)
    if prop.n_outputs != net.out_features:
        raise ConfigError(
            f"the property refers to {prop.n_outputs} outputs but the network has "
            f"{net.out_features}"
        )
    return prop


def bound(
    method: str,
    model: nn.Module | Network,
    inputs: Box,
    *,
    margin_of: int | None = None,
    prop: OutputProperty | None = None,
    dtype: torch.dtype | None = None,
    **options,
) -> Bound:
    """Lower bounds on the property's rows over one input box, by ``method``.

    Args:
        method: one of ``BOUNDS.names()`` (``ibp``, ``crown``, ``lp``, ``sdp``, …).
        model: a :class:`Network` or a supported ``nn.Module`` (converted on ``inputs``' shape).
        inputs: the input box, shaped like one input.
        margin_of: certify that this label stays the arg-max (rows ``y_label − y_j``).
        prop: or a general output property (rows ``C y + d``).
        dtype: compute in this dtype (float64 for exact checks); default the network's.
        **options: passed to the method (``alpha=True`` for CROWN, ``steps`` for SDP-FO, …).
    """
    function = BOUNDS.get(method)
    BOUNDS.check_params(method, options)
    net = as_network(model, tuple(inputs.lower.shape)).detach(dtype=dtype)
    prop = property_for(net, margin_of, prop)
    dtype = net.layers[0].bias.dtype
    device = net.layers[0].bias.device
    lower, upper, single = inputs.to(dtype, device).flat(net.input_shape)
    if not single:
        raise ConfigError("bound() takes one input box; loop over a batch or use ibp_rows")
    C, d, _ = prop.to(dtype, device).stacked()
    start = time.perf_counter()
    with torch.no_grad() if method != "crown" else torch.enable_grad():
        result = function(net, lower[0], upper[0], C, d, **options)
    lows, sound = result if isinstance(result, tuple) else (result, True)
    return Bound(lows.detach(), method, sound, time.perf_counter() - start)
