"""CROWN and α-CROWN: linear bounds propagated backwards through the network.

Zhang, Weng, Chen, Hsieh and Daniel, "Efficient Neural Network Robustness Certification with
General Activation Functions", NeurIPS 2018 (arXiv 1811.00866); α-CROWN: Xu, Zhang, Wang,
Wang, Jana, Lin and Hsieh, "Fast and Complete: Enabling Complete Neural Network Verification
with Rapid and Massively Parallel Incomplete Verifiers", ICLR 2021 (arXiv 2011.13824).

Each ReLU with pre-activation bounds ``l < 0 < u`` is enclosed between two lines: above by the
chord ``u (z − l) / (u − l)``, below by ``α z`` with ``α ∈ [0, 1]``. A row ``λ`` of the output
property is pulled back layer by layer: through an affine layer by ``Wᵀ`` (each layer's own
``backward``, so convolutions never become dense matrices), through a ReLU by choosing, per
unit, the lower line where ``λ`` is positive and the upper one where it is negative. At the
input the linear function is minimised over the box in closed form. CROWN picks
``α = 1 if u > −l else 0``; α-CROWN optimises α per output row by projected gradient ascent.

Intermediate pre-activation bounds come from the same backward pass, one layer at a time,
and are intersected with interval bounds (both are sound, so their intersection is too).
"""

from __future__ import annotations

import torch
from torch import Tensor

from stalwart.certify.bounds import BOUNDS
from stalwart.certify.ibp import ibp_rows
from stalwart.certify.ibp import layer_bounds as ibp_layer_bounds
from stalwart.certify.network import Network
from stalwart.errors import ConfigError

LayerBounds = list[tuple[Tensor, Tensor]]


def _relu_lines(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Upper slope, upper intercept and CROWN's adaptive lower slope for each unit.

    Stable units are exact: slope 1 (active) or 0 (inactive) on both sides.
    """
    active = lower >= 0
    unstable = (lower < 0) & (upper > 0)
    width = (upper - lower).clamp(min=torch.finfo(lower.dtype).tiny)
    slope = torch.where(unstable, upper / width, active.to(lower.dtype))
    intercept = torch.where(unstable, -slope * lower, torch.zeros_like(lower))
    adaptive = torch.where(unstable, (upper > -lower).to(lower.dtype), active.to(lower.dtype))
    return slope, intercept, adaptive


def backward_bound(
    net: Network,
    depth: int,
    lower: Tensor,
    upper: Tensor,
    C: Tensor,
    d: Tensor | None,
    bounds: LayerBounds,
    alphas: list[Tensor] | None = None,
) -> Tensor:
    """Lower bounds on ``C z_depth + d`` (``z_depth`` the pre-activation of layer ``depth``).

    Args:
        net: the network.
        depth: index of the layer whose pre-activations the rows read (``len(layers) − 1``
            for the outputs).
        lower: input lower bounds ``(batch, n)``.
        upper: input upper bounds ``(batch, n)``.
        C: rows ``(m, width)`` shared by the batch or ``(batch, m, width)``.
        d: offsets ``(m,)`` or ``(batch, m)``, or None.
        bounds: pre-activation bounds ``(batch, width_j)`` of every layer ``j < depth``.
        alphas: optional lower slopes for each ReLU layer ``j < depth``, broadcastable to
            ``(batch, m, width_j)``; used only on unstable units.

    Returns:
        ``(batch, m)`` lower bounds.
    """
    batch = lower.shape[0]
    lam = C if C.dim() == 3 else C.unsqueeze(0).expand(batch, *C.shape)
    const = torch.zeros(lam.shape[:2], dtype=lam.dtype, device=lam.device)
    if d is not None:
        const = const + d
    layer = net.layers[depth]
    const = const + lam @ layer.bias
    lam = layer.backward(lam)
    for j in range(depth - 1, -1, -1):
        lb, ub = bounds[j]
        slope, intercept, adaptive = _relu_lines(lb, ub)
        slope, intercept = slope.unsqueeze(1), intercept.unsqueeze(1)
        if alphas is not None:
            unstable = ((lb < 0) & (ub > 0)).unsqueeze(1)
            low = torch.where(unstable, alphas[j], adaptive.unsqueeze(1))
        else:
            low = adaptive.unsqueeze(1)
        positive, negative = lam.clamp(min=0), lam.clamp(max=0)
        const = const + (negative * intercept).sum(-1)
        lam = positive * low + negative * slope
        layer = net.layers[j]
        const = const + lam @ layer.bias
        lam = layer.backward(lam)
    center = ((upper + lower) / 2).unsqueeze(-1)
    radius = ((upper - lower) / 2).unsqueeze(-1)
    return (lam @ center).squeeze(-1) - (lam.abs() @ radius).squeeze(-1) + const


def crown_layer_bounds(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    *,
    intersect_ibp: bool = True,
    fixed: list[Tensor] | None = None,
) -> LayerBounds:
    """CROWN bounds on the pre-activations of every layer, for inputs ``(batch, n)``.

    Layer ``i``'s bounds come from a backward pass of the rows ``±e_k`` through the layers
    below it, using the bounds already found for those layers.

    Args:
        net: the network.
        lower: input lower bounds ``(batch, n)`` (or ``(n,)``, one box).
        upper: input upper bounds, same shape.
        intersect_ibp: also clip each layer's bounds to its interval bounds (sound, tighter).
        fixed: optional per hidden layer ``(batch, width)`` tensors with ``+1`` (unit known
            active), ``−1`` (known inactive) or ``0``; a subdomain of branch and bound. The
            bounds of such units are clipped at zero before the next layers use them, so an
            empty subdomain shows as ``lower > upper`` somewhere.

    Returns:
        ``(l, u)`` for each layer, each ``(batch, width)`` (``(width,)`` for one box).
    """
    single = lower.dim() == 1
    if single:
        lower, upper = lower[None], upper[None]
    interval = ibp_layer_bounds(net, lower, upper) if intersect_ibp else None
    bounds: LayerBounds = []
    for i, layer in enumerate(net.layers):
        if i == 0:
            # One affine map: interval arithmetic is already exact.
            center, radius = (upper + lower) / 2, (upper - lower) / 2
            mid, rad = layer.forward(center), layer.abs_forward(radius)
            lb, ub = mid - rad, mid + rad
        else:
            width = layer.out_features
            eye = torch.eye(width, dtype=lower.dtype, device=lower.device)
            if interval is not None and i < len(net.layers) - 1:
                # Units that IBP already finds stable are relaxed exactly whatever their
                # bounds, so CROWN is spent only on the rest (of any box in the batch).
                il, iu = interval[i]
                unstable = (il < 0) & (iu > 0)
                eye = eye[unstable.any(0)]
            half = len(eye)
            if half:
                rows = torch.cat([eye, -eye])
                both = backward_bound(net, i, lower, upper, rows, None, bounds)
            if interval is not None and i < len(net.layers) - 1:
                lb, ub = interval[i][0].clone(), interval[i][1].clone()
                if half:
                    # Per box, so that a box's bounds do not depend on the rest of the batch.
                    picked = eye.argmax(1)
                    chosen = unstable[:, picked]
                    lb[:, picked] = torch.where(chosen, both[:, :half], lb[:, picked])
                    ub[:, picked] = torch.where(chosen, -both[:, half:], ub[:, picked])
            else:
                lb, ub = both[:, :half], -both[:, half:]
        if interval is not None:
            lb, ub = torch.maximum(lb, interval[i][0]), torch.minimum(ub, interval[i][1])
        if fixed is not None and i < len(fixed):
            lb = torch.where(fixed[i] > 0, lb.clamp(min=0), lb)
            ub = torch.where(fixed[i] < 0, ub.clamp(max=0), ub)
        bounds.append((lb, ub))
    if single:
        bounds = [(lb[0], ub[0]) for lb, ub in bounds]
    return bounds


def _optimise_alpha(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    C: Tensor,
    d: Tensor,
    bounds: LayerBounds,
    start: Tensor,
    steps: int,
    lr: float,
) -> Tensor:
    """α-CROWN: maximise each row's bound over lower slopes in ``[0, 1]`` with Adam.

    The slopes are separate for every output row (Xu et al. §3.1); intermediate bounds stay
    fixed. Every iterate is a valid bound, so the best seen per row is returned.
    """
    net = net.detach()
    lower, upper, C, d = lower.detach(), upper.detach(), C.detach(), d.detach()
    bounds = [(lb.detach(), ub.detach()) for lb, ub in bounds]
    m = C.shape[-2]
    alphas = []
    for lb, ub in bounds[: len(net.layers) - 1]:
        _, _, adaptive = _relu_lines(lb, ub)
        alphas.append(adaptive.unsqueeze(1).expand(-1, m, -1).clone().requires_grad_(True))
    best = start.detach().clone()
    with torch.enable_grad():
        optimiser = torch.optim.Adam(alphas, lr=lr)
        for _ in range(steps):
            value = backward_bound(net, len(net.layers) - 1, lower, upper, C, d, bounds, alphas)
            best = torch.maximum(best, value.detach())
            optimiser.zero_grad()
            (-value.sum()).backward()
            optimiser.step()
            with torch.no_grad():
                for a in alphas:
                    a.clamp_(0.0, 1.0)
        with torch.no_grad():
            value = backward_bound(net, len(net.layers) - 1, lower, upper, C, d, bounds, alphas)
    return torch.maximum(best, value)


def crown_rows(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    C: Tensor,
    d: Tensor,
    *,
    alpha: bool = False,
    steps: int = 20,
    lr: float = 0.1,
    bounds: LayerBounds | None = None,
) -> Tensor:
    """Lower bounds on ``C f(x) + d`` over the box by CROWN (or α-CROWN).

    Args:
        net: the network.
        lower: input lower bounds ``(batch, n)`` or ``(n,)``.
        upper: input upper bounds, same shape.
        C: rows ``(m, outputs)`` or ``(batch, m, outputs)``.
        d: offsets ``(m,)`` or ``(batch, m)``.
        alpha: optimise the lower ReLU slopes per row (α-CROWN); never looser than CROWN.
        steps: α-CROWN's gradient steps.
        lr: α-CROWN's Adam learning rate.
        bounds: precomputed pre-activation bounds (``crown_layer_bounds``), batched.

    Returns:
        ``(batch, m)`` lower bounds, or ``(m,)`` for one unbatched box. Differentiable in the
        network's parameters unless ``alpha`` is set.
    """
    single = lower.dim() == 1
    if single:
        lower, upper = lower[None], upper[None]
    if steps < 0 or not lr > 0:
        raise ConfigError(f"α-CROWN needs steps >= 0 and lr > 0; got steps={steps}, lr={lr}")
    if bounds is None:
        bounds = crown_layer_bounds(net, lower, upper)
    depth = len(net.layers) - 1
    value = backward_bound(net, depth, lower, upper, C, d, bounds)
    if alpha and depth > 0 and steps > 0:
        value = _optimise_alpha(net, lower, upper, C, d, bounds, value, steps, lr)
    return value[0] if single else value


@BOUNDS.register("crown")
def _crown(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    C: Tensor,
    d: Tensor,
    *,
    alpha: bool = False,
    alpha_steps: int = 20,
    alpha_lr: float = 0.1,
) -> Tensor:
    """CROWN (α-CROWN with ``alpha=True``), never looser than IBP (the larger of the two)."""
    value = crown_rows(net, lower, upper, C, d, alpha=alpha, steps=alpha_steps, lr=alpha_lr)
    return torch.maximum(value, ibp_rows(net, lower[None], upper[None], C, d)[0]).detach()
