"""Floating-point rounding: allowances that keep a bound computed in float32 a certificate.

A bound must hold for the network as its weights define it, in real arithmetic. Computed in
float64 the rounding error is about 1e-16 of the numbers involved, far below anything a
certificate is decided by, and certificates are computed in float64 by default. Computed in
float32 it is about 1e-7 of them, which networks with large weights turn into visible
unsoundness (a bound 2e-5 above the true minimum). The faster float32 path therefore subtracts
a rigorous allowance, from the standard forward error analysis of sums and products (Higham,
*Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1 and §3.5): with unit roundoff
``u`` and ``γ_k = k u / (1 − k u)``, any algorithm that evaluates a sum of products with at
most ``k`` roundings along each term has an error of at most ``γ_k`` times the same
computation done on absolute values. Bounds compute that absolute-value computation alongside
(one extra pass with ``|W|``) and subtract ``SAFETY · γ_k`` times it; ``SAFETY`` absorbs the
second-order terms (the rounding of the allowance itself, and of signs chosen from rounded
coefficients, each of the same order as the terms counted).

Inputs are boxes, and a box rounded to the nearest float32 can shrink: bounds widen a box
outward (:func:`outward`) and a counterexample must lie in the box rounded inward
(:func:`inward`), then pass :func:`violates`, an exact test in float64 with its own allowance.

On CUDA the allowances hold only for IEEE float32 products, not TF32 (:func:`ieee_float32`):
``bound``, ``search``, ``verify`` and ``certified_accuracy`` run inside it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor

from stalwart.errors import ConfigError

# Factor over the first-order error bound (see the module docstring).
SAFETY = 4.0


def unit_roundoff(dtype: torch.dtype) -> float:
    """Half the machine epsilon: the largest relative error of one rounding."""
    return torch.finfo(dtype).eps / 2


def gamma(k: int, dtype: torch.dtype) -> float:
    """``SAFETY · γ_k``: the allowance factor for ``k`` roundings along each term.

    Raises:
        ConfigError: when ``k u`` is too large for the bound to mean anything (float16 on a
            large network); compute in float64 instead.
    """
    u = unit_roundoff(dtype)
    ku = k * u
    if ku >= 0.1:
        raise ConfigError(
            f"{dtype} is too coarse for a rigorous rounding allowance over {k} operations; "
            "compute the bound in float64"
        )
    return SAFETY * ku / (1 - ku)


def underflow(k: int, dtype: torch.dtype) -> float:
    """An absolute allowance for ``k`` results that may have underflowed to subnormals."""
    return SAFETY * k * torch.finfo(dtype).tiny


def magnitude(net, m: Tensor) -> Tensor:
    """``|W_L|(… |W_1| m + |b_1| …) + |b_L|``: bounds ``|z_i|`` of every layer for ``|x| ≤ m``.

    Args:
        net: the network.
        m: ``(batch, n)`` non-negative input magnitudes.

    Returns:
        One ``(batch, width)`` tensor per layer (pre-activations; a ReLU only shrinks them).
    """
    out, a = [], m
    for layer in net.layers:
        a = layer.abs_forward(a) + layer.bias.abs()
        out.append(a)
    return out


def cast_allowance(net, lower: Tensor, upper: Tensor, C: Tensor, d: Tensor) -> Tensor:
    """How far ``C f(x) + d`` can move when the weights, ``C`` and ``d`` are rounded.

    One rounding per factor, to the network's dtype: ``γ_{L+2}`` times the rows' magnitude
    over the box (ReLU is 1-Lipschitz, so a relative error ``u`` in each weight moves each
    layer by at most ``u`` times its magnitude, compounded over the layers). A bound computed
    on a network cast down from more digits (a float64 network certified in float32)
    subtracts it to hold for the original.

    Args:
        net: the network in its working dtype.
        lower: input lower bounds ``(n,)`` or ``(batch, n)``.
        upper: input upper bounds, same shape.
        C: rows ``(m, outputs)``.
        d: offsets ``(m,)``.

    Returns:
        ``(m,)`` or ``(batch, m)`` allowances.
    """
    single = lower.dim() == 1
    size = torch.maximum(lower.abs(), upper.abs()).reshape(-1, lower.shape[-1])
    top = magnitude(net, size)[-1]
    k = len(net.layers) + 2
    slack = gamma(k, lower.dtype) * (top @ C.abs().T + d.abs()) + underflow(k, lower.dtype)
    return slack[0] if single else slack


def cast_is_exact(net, dtype: torch.dtype) -> bool:
    """Whether every weight and bias of ``net`` is exactly representable in ``dtype``."""
    exact = True

    def same(t: Tensor) -> Tensor:
        nonlocal exact
        exact = exact and bool(torch.equal(t.to(dtype).to(t.dtype), t))
        return t

    for layer in net.layers:
        layer.map(same)
    return exact


def round_down(value: float | list[float] | Tensor, dtype: torch.dtype) -> Tensor:
    """``value`` (a float, list or float64 tensor) in ``dtype``, rounded towards −∞.

    A lower bound stays one.

    Converting to nearest can round up by half a unit in the last place, which for float32 is
    1e-8 of the value: enough to put a bound computed exactly in float64 above the minimum.
    """
    exact = torch.as_tensor(value, dtype=torch.float64)
    t = exact.to(dtype)
    return torch.where(t.double() > exact, nextafter(t, -torch.inf), t)


def nextafter(t: Tensor, towards: float) -> Tensor:
    """Every entry moved one float towards ``towards`` (``±inf``)."""
    return torch.nextafter(t, torch.full_like(t, towards))


def outward(lower: Tensor, upper: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """The smallest ``dtype`` box that contains ``[lower, upper]`` (lower down, upper up)."""
    lo, hi = lower.to(dtype), upper.to(dtype)
    if lower.dtype == dtype:
        return lo, hi
    # Compare in the wider of the two types, where both values are exact.
    wide = torch.promote_types(lower.dtype, dtype)
    lo = torch.where(lo.to(wide) > lower.to(wide), nextafter(lo, -torch.inf), lo)
    hi = torch.where(hi.to(wide) < upper.to(wide), nextafter(hi, torch.inf), hi)
    return lo, hi


def inward(lower: Tensor, upper: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """The largest ``dtype`` box inside ``[lower, upper]`` (lower up, upper down)."""
    lo, hi = lower.to(dtype), upper.to(dtype)
    if lower.dtype == dtype:
        return lo, hi
    wide = torch.promote_types(lower.dtype, dtype)
    lo = torch.where(lo.to(wide) < lower.to(wide), nextafter(lo, torch.inf), lo)
    hi = torch.where(hi.to(wide) > upper.to(wide), nextafter(hi, -torch.inf), hi)
    return lo, hi


def outputs_with_error(net, x: Tensor) -> tuple[Tensor, Tensor]:
    """``f(x)`` for inputs ``(batch, n)`` and a rigorous bound on each output's rounding error.

    The error recursion follows one layer at a time: ``e_i = |W_i| e_{i−1} +
    γ(|W_i| |h_{i−1}| + |b_i|)`` (ReLU is 1-Lipschitz and exact).
    """
    dtype = x.dtype
    h, e = x, torch.zeros_like(x)
    for i, layer in enumerate(net.layers):
        z = layer.forward(h)
        g = gamma(layer.in_features + 2, dtype)
        e = layer.abs_forward(e) + g * (layer.abs_forward(h.abs()) + layer.bias.abs())
        e = e + underflow(layer.in_features + 2, dtype)
        h = torch.relu(z) if i < len(net.layers) - 1 else z
    return h, e


def rows_of_outputs(outputs: tuple[Tensor, Tensor], C: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """``C y + d`` and its rounding-error bound from :func:`outputs_with_error`'s ``(y, e)``.

    One network pass serves every disjunct of a property: only the rows differ.
    """
    h, e = outputs
    rows = h @ C.T + d
    g = gamma(C.shape[-1] + 2, h.dtype)
    error = e @ C.abs().T + g * (h.abs() @ C.abs().T + d.abs()) + underflow(C.shape[-1], h.dtype)
    return rows, error


def rows_with_error(net, x: Tensor, C: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
    """``C f(x) + d`` for inputs ``(batch, n)`` and a rigorous bound on its rounding error."""
    return rows_of_outputs(outputs_with_error(net, x), C, d)


def violates(net, x: Tensor, disjuncts) -> bool:
    """Whether the network maps ``x`` (one flat input) into the unsafe region, for certain.

    Evaluated alone in float64, and a row counts as ``≤ 0`` only when it stays so after its
    rounding allowance: the answer holds for the real-valued network, not just this rounding.
    """
    net = net.detach(dtype=torch.float64)
    x = x.reshape(1, -1).to(torch.float64)
    with torch.no_grad():
        outputs = outputs_with_error(net, x)
        for C, d in disjuncts:
            rows, error = rows_of_outputs(outputs, C.to(torch.float64), d.to(torch.float64))
            if bool((rows + error <= 0).all()):
                return True
    return False


@contextlib.contextmanager
def ieee_float32() -> Iterator[None]:
    """Float32 products in IEEE single precision while it lasts, as the allowances assume.

    On CUDA, PyTorch may run float32 matrix products (when a user allows it) and cuDNN
    convolutions (by default) in TF32, whose 10-bit mantissa rounds with ``u = 2^-11``, 8,192
    times the float32 ``u`` the allowances are computed for: a float32 bound would stop being
    a certificate. The flags are global, so they are set off here and restored on the way out
    (also on an error); float64, and every CPU computation, are unaffected by them. Usable as
    a decorator.
    """
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def check_float(dtype: torch.dtype) -> None:
    """Reject a dtype that is not a floating-point type."""
    if not dtype.is_floating_point:
        raise ConfigError(f"bounds are computed in a floating-point dtype; got {dtype}")
