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


def layer_bounds(net: Network, lower: Tensor, upper: Tensor) -> list[tuple[Tensor, Tensor]]:
    """Interval bounds on the pre-activations of every layer, for inputs ``(batch, n)``."""
    bounds = []
    lo, hi = lower, upper
    for i, layer in enumerate(net.layers):
        center, radius = (hi + lo) / 2, (hi - lo) / 2
        mid, rad = layer.forward(center), layer.abs_forward(radius)
        bounds.append((mid - rad, mid + rad))
        if i < len(net.layers) - 1:
            lo, hi = torch.relu(mid - rad), torch.relu(mid + rad)
    return bounds


def ibp_rows(net: Network, lower: Tensor, upper: Tensor, C: Tensor, d: Tensor) -> Tensor:
    """Lower bounds on ``C f(x) + d`` for inputs in the box, shape ``(batch, rows)``.

    Args:
        net: the network.
        lower: input lower bounds ``(batch, n)``.
        upper: input upper bounds ``(batch, n)``.
        C: ``(rows, outputs)`` or, one per example, ``(batch, rows, outputs)``.
        d: ``(rows,)`` or ``(batch, rows)``.
    """
    if len(net.layers) > 1:
        pre = layer_bounds(Network(net.layers[:-1], net.input_shape), lower, upper)[-1]
        lo, hi = torch.relu(pre[0]), torch.relu(pre[1])
    else:
        lo, hi = lower, upper
    last = net.layers[-1]
    weight = C @ last.dense_weight()  # (rows, hidden) or (batch, rows, hidden)
    bias = C @ last.bias + d
    center, radius = (hi + lo) / 2, (hi - lo) / 2
    if weight.dim() == 2:
        return center @ weight.T - radius @ weight.abs().T + bias
    mid = torch.einsum("brh,bh->br", weight, center)
    rad = torch.einsum("brh,bh->br", weight.abs(), radius)
    return mid - rad + bias
