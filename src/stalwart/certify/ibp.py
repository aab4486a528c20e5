"""Interval bound propagation (IBP).

Gowal et al., "On the Effectiveness of Interval Bound Propagation for Training Verifiably
Robust Models", 2018 (arXiv 1810.12715). Each affine layer maps a box to the box with centre
``W c + b`` and radius ``|W| r``; a ReLU clips both ends. The output rows ``C f(x) + d`` are
bounded through the elided last layer ``C W_L``, which is tighter than bounding the logits
first and subtracting them. Everything is batched and differentiable, so IBP serves as a
training loss as well as a certificate.
"""

from __future__ import annotations

import torch
from torch import Tensor

from stalwart.certify.network import Network
from stalwart.certify.rounding import gamma, underflow


def _interval(layer, lo: Tensor, hi: Tensor, rounding: bool) -> tuple[Tensor, Tensor]:
    """Bounds on ``W x + b`` over ``[lo, hi]``; widened by the rounding error when asked.

    With ``rounding``, the float centre and radius, the two products and the final sums are
    each off by at most ``γ`` times the magnitudes involved (``rounding.py``), all bounded by
    ``|W| max(|lo|, |hi|)`` and ``|b|``; the sum is added on both sides.
    """
    center, radius = (hi + lo) / 2, (hi - lo) / 2
    mid, rad = layer.forward(center), layer.abs_forward(radius)
    if rounding:
        dtype = lo.dtype
        size = torch.maximum(lo.abs(), hi.abs())
        slack = gamma(layer.in_features + 4, dtype) * (
            2 * layer.abs_forward(size) + layer.bias.abs() + mid.abs() + rad
        ) + underflow(layer.in_features + 4, dtype)
        rad = rad + slack
    return mid - rad, mid + rad


def layer_bounds(
    net: Network, lower: Tensor, upper: Tensor, *, rounding: bool = False
) -> list[tuple[Tensor, Tensor]]:
    """Interval bounds on the pre-activations of every layer, for inputs ``(batch, n)``.

    Args:
        net: the network.
        lower: input lower bounds ``(batch, n)``.
        upper: input upper bounds ``(batch, n)``.
        rounding: widen each bound by a rigorous allowance for the rounding of this dtype
            (needed for a certificate below float64; see ``rounding.py``).
    """
    bounds = []
    lo, hi = lower, upper
    for i, layer in enumerate(net.layers):
        low, high = _interval(layer, lo, hi, rounding)
        bounds.append((low, high))
        if i < len(net.layers) - 1:
            lo, hi = torch.relu(low), torch.relu(high)
    return bounds


def ibp_rows(
    net: Network, lower: Tensor, upper: Tensor, C: Tensor, d: Tensor, *, rounding: bool = False
) -> Tensor:
    """Lower bounds on ``C f(x) + d`` for inputs in the box, shape ``(batch, rows)``.

    Args:
        net: the network.
        lower: input lower bounds ``(batch, n)``.
        upper: input upper bounds ``(batch, n)``.
        C: ``(rows, outputs)`` or, one per example, ``(batch, rows, outputs)``.
        d: ``(rows,)`` or ``(batch, rows)``.
        rounding: subtract a rigorous allowance for the rounding of this dtype.
    """
    if len(net.layers) > 1:
        hidden = Network(net.layers[:-1], net.input_shape)
        pre = layer_bounds(hidden, lower, upper, rounding=rounding)[-1]
        lo, hi = torch.relu(pre[0]), torch.relu(pre[1])
    else:
        lo, hi = lower, upper
    last = net.layers[-1]
    weight = C @ last.dense_weight()  # (rows, hidden) or (batch, rows, hidden)
    bias = C @ last.bias + d
    center, radius = (hi + lo) / 2, (hi - lo) / 2
    if weight.dim() == 2:
        value = center @ weight.T - radius @ weight.abs().T + bias
    else:
        mid = torch.einsum("brh,bh->br", weight, center)
        rad = torch.einsum("brh,bh->br", weight.abs(), radius)
        value = mid - rad + bias
    if rounding:
        # The elided weight C W is itself rounded: its error, like every other, is at most γ
        # times |C| |W| applied to the magnitudes, so one absolute-value pass bounds them all.
        size = torch.maximum(lo.abs(), hi.abs())
        abs_rows = last.abs_backward(C.abs())
        if abs_rows.dim() == 2:
            magnitude = 2 * size @ abs_rows.T
        else:
            magnitude = 2 * torch.einsum("brh,bh->br", abs_rows, size)
        magnitude = magnitude + C.abs() @ last.bias.abs() + d.abs() + value.abs()
        k = C.shape[-1] + last.in_features + 6
        value = value - gamma(k, lower.dtype) * magnitude - underflow(k, lower.dtype)
    return value
