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

Rounding: the upper line's slope and intercept are rounded up, so the line stays above the
ReLU whatever the rounding; below float64 (``rounding=True``) every bound also subtracts a
rigorous allowance for its own rounding, summed layer by layer (:class:`_Tally`).
"""

from __future__ import annotations

from typing import Annotated

import torch
from pydantic import Field
from torch import Tensor

from stalwart.certify.bounds import BOUNDS
from stalwart.certify.deadline import Deadline, check
from stalwart.certify.ibp import _interval, ibp_rows
from stalwart.certify.ibp import layer_bounds as ibp_layer_bounds
from stalwart.certify.network import Network
from stalwart.certify.optim import Adam
from stalwart.certify.rounding import gamma, underflow, unit_roundoff
from stalwart.errors import ConfigError

LayerBounds = list[tuple[Tensor, Tensor]]


def _relu_lines(lower: Tensor, upper: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Upper slope, upper intercept and CROWN's adaptive lower slope for each unit.

    Stable units are exact: slope 1 (active) or 0 (inactive) on both sides. The chord's
    slope and intercept are rounded up (by a few units of roundoff, more than the two or three
    roundings that computed them), so the line ``s z + t`` stays above the ReLU on ``[l, u]``:
    ``s ≥ u / (u − l)`` and ``t ≥ −s l`` give ``s z + t ≥ s (z − l) ≥ relu(z)`` there.
    """
    active = lower >= 0
    unstable = (lower < 0) & (upper > 0)
    u = unit_roundoff(lower.dtype)
    width = (upper - lower).clamp(min=torch.finfo(lower.dtype).tiny)
    slope = torch.where(unstable, upper / width * (1 + 4 * u), active.to(lower.dtype))
    intercept = torch.where(unstable, -slope * lower * (1 + 2 * u), torch.zeros_like(lower))
    adaptive = torch.where(unstable, (upper > -lower).to(lower.dtype), active.to(lower.dtype))
    return slope, intercept, adaptive


class _Tally:
    """The rounding allowance of one backward pass, built alongside it (``rounding=True``).

    The pass rewrites a row as ``λ_j · h_j + const`` layer by layer; each rewrite is exact for
    the coefficients actually computed, except for the rounding of what it computes. So the
    total error is a sum of local terms (Higham §3.1: a sum or product of ``k`` terms is off by
    at most ``γ_k`` times the sum of their absolute values):

    - the product ``λ W`` of a layer: ``γ (|λ| |W|) · H``, with ``H`` bounding the layer's
      input in absolute value (sound bounds from the layers below, or the input box);
    - the constant: ``γ`` times the absolute values added to it so far (biases, intercepts);
    - the relaxation's products ``λ⁺ α``, ``λ⁻ s``: ``2u |λ_new| · max(|l|, |u|)``;
    - the final minimisation over the box: ``γ (|λ| · 2 max(|lower|, |upper|) + const)``.

    Choosing the lower or upper line by the sign of the *computed* coefficient is exact for
    that coefficient, so the choice adds nothing. ``gamma`` includes a safety factor for the
    second-order terms (rounding of the allowance itself).
    """

    def __init__(self, lam: Tensor, d: Tensor | None) -> None:
        self.dtype = lam.dtype
        self.u = unit_roundoff(lam.dtype)
        self.error = torch.zeros(lam.shape[:2], dtype=lam.dtype, device=lam.device)
        self.const = torch.zeros_like(self.error) + (d.detach().abs() if d is not None else 0)
        self.roundings = 0

    def affine(self, layer, lam: Tensor, inputs: Tensor) -> None:
        lam = lam.detach().abs()
        self.const = self.const + lam @ layer.bias.detach().abs()
        # (|λ| |W|) · H = |λ| · (|W| H): one product per box, not one per row.
        products = (lam * layer.abs_forward(inputs.detach()).unsqueeze(1)).sum(-1)
        k = layer.out_features + 2
        self.error = self.error + gamma(k, self.dtype) * (products + self.const)
        self.roundings += k

    def relax(self, lam: Tensor, negative: Tensor, intercept: Tensor, lb: Tensor, ub: Tensor):
        self.const = self.const + (negative.detach().abs() * intercept).sum(-1)
        size = torch.maximum(lb.abs(), ub.abs()).unsqueeze(1)
        k = lb.shape[-1] + 2
        self.error = self.error + gamma(k, self.dtype) * self.const
        self.error = self.error + 2 * self.u * (lam.detach().abs() * size).sum(-1)
        self.roundings += k

    def finish(self, lam: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
        size = 2 * torch.maximum(lower.abs(), upper.abs()).unsqueeze(1)
        k = lower.shape[-1] + 4
        total = (lam.detach().abs() * size).sum(-1) + self.const
        self.roundings += k
        return self.error + gamma(k, self.dtype) * total + underflow(self.roundings, self.dtype)


def _input_size(net: Network, j: int, lower: Tensor, upper: Tensor, bounds: LayerBounds):
    """A bound on ``|input|`` of layer ``j``: the box for the first, else ``relu(u_{j−1})``."""
    if j == 0:
        return torch.maximum(lower.abs(), upper.abs())
    return torch.relu(bounds[j - 1][1])


def backward_bound(
    net: Network,
    depth: int,
    lower: Tensor,
    upper: Tensor,
    C: Tensor,
    d: Tensor | None,
    bounds: LayerBounds,
    alphas: list[Tensor] | None = None,
    *,
    rounding: bool = False,
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
        rounding: subtract a rigorous allowance for this dtype's rounding (:class:`_Tally`),
            so the bound holds for the network's weights in exact arithmetic.

    Returns:
        ``(batch, m)`` lower bounds.
    """
    batch = lower.shape[0]
    shared = C.dim() == 2
    lam = C if not shared else C.unsqueeze(0).expand(batch, *C.shape)
    const = torch.zeros(lam.shape[:2], dtype=lam.dtype, device=lam.device)
    if d is not None:
        const = const + d
    tally = _Tally(lam, d) if rounding else None
    layer = net.layers[depth]
    const = const + lam @ layer.bias
    if tally is not None:
        with torch.no_grad():
            tally.affine(layer, lam, _input_size(net, depth, lower, upper, bounds))
    # Rows shared by the batch (a layer's ±e_k) go through their first layer once, not per box.
    lam = layer.backward(C).unsqueeze(0).expand(batch, -1, -1) if shared else layer.backward(lam)
    return _pull_back(net, depth - 1, lower, upper, lam, const, bounds, alphas, tally)


def _pull_back(
    net: Network,
    top: int,
    lower: Tensor,
    upper: Tensor,
    lam: Tensor,
    const: Tensor,
    bounds: LayerBounds,
    alphas: list[Tensor] | None = None,
    tally: _Tally | None = None,
) -> Tensor:
    """The rest of :func:`backward_bound`, from rows on ReLU layer ``top``'s outputs.

    ``lam`` (plus ``const``) is pulled back to the input and minimised over the box.
    """
    for j in range(top, -1, -1):
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
        if tally is not None:
            with torch.no_grad():
                tally.relax(lam, negative, intercept, lb, ub)
                tally.affine(layer, lam, _input_size(net, j, lower, upper, bounds))
        if j == 0 and tally is None:
            return const + _box_minimum(layer, lam, ub > 0, lower, upper)
        # Inactive units' coefficients are zero (both lines are): the product skips them.
        lam = layer.backward_on(lam, ub > 0)
    center = ((upper + lower) / 2).unsqueeze(-1)
    radius = ((upper - lower) / 2).unsqueeze(-1)
    value = (lam @ center).squeeze(-1) - (lam.abs() @ radius).squeeze(-1) + const
    if tally is not None:
        with torch.no_grad():
            allowance = tally.finish(lam, lower, upper)
        value = value - allowance
    return value


def _box_minimum(layer, lam: Tensor, support: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
    """``min λ · W x`` over the box for rows ``λ`` ``(batch, m, out)`` zero off ``support``.

    ``λ W c − |λ W| r`` (centre ``c``, radius ``r``), with the centre pushed through the layer
    first and the radius term a fused 1-norm: no pass over ``|λ W|`` besides the product.
    """
    center, radius = (upper + lower) / 2, (upper - lower) / 2
    at_center = (lam @ layer.linear(center).unsqueeze(-1)).squeeze(-1)
    spread = layer.backward_on(lam, support).mul_(radius.unsqueeze(1))
    return at_center - torch.linalg.vector_norm(spread, 1, dim=-1)


def _pair_bound(net: Network, depth: int, lower: Tensor, upper: Tensor, units: Tensor,
                bounds: LayerBounds) -> Tensor:  # fmt: skip
    """:func:`backward_bound` for rows ``[E; −E]``, in half the work through the first ReLU.

    ``E`` (the rows ``units``) is shared by the batch; returns ``(batch, 2 h)`` lower bounds.
    A row ``±w`` (``w`` a row of the layer's weight) crosses the ReLU below as
    ``λ± = ½ (±w ⊙ S − |w| ⊙ D)`` with ``S = α + s`` and ``D = s − α`` (lower and upper
    slopes), so the next product is needed only for ``w ⊙ S`` (zero on inactive units) and
    ``|w| ⊙ D`` (zero on stable ones), not for both rows over every unit.
    """
    layer = net.layers[depth]
    const = (units @ layer.bias).expand(lower.shape[0], -1)
    w = layer.backward(units)
    lb, ub = bounds[depth - 1]
    slope, intercept, adaptive = _relu_lines(lb, ub)
    total, difference = (adaptive + slope).unsqueeze(1), (slope - adaptive).unsqueeze(1)
    # Each row's intercepts are those of the units where it takes the upper line.
    up_plus = w.clamp(max=0) @ intercept.unsqueeze(-1)
    up_minus = -(w.clamp(min=0) @ intercept.unsqueeze(-1))
    below = net.layers[depth - 1]
    odd, even = w * total, w.abs() * difference
    odd_const, even_const = odd @ below.bias, even @ below.bias
    plus_const = const + up_plus.squeeze(-1) + (odd_const - even_const) / 2
    minus_const = -const + up_minus.squeeze(-1) - (odd_const + even_const) / 2
    active, unstable = ub > 0, (lb < 0) & (ub > 0)
    if depth == 1:
        # λ± = ½ (±odd − even) on the input: both minima from the two products.
        center, radius = (upper + lower) / 2, ((upper - lower) / 2).unsqueeze(1)
        at_center = below.linear(center).unsqueeze(-1)
        odd_c, even_c = (odd @ at_center).squeeze(-1), (even @ at_center).squeeze(-1)
        odd = below.backward_on(odd, active).mul_(radius)
        even = below.backward_on(even, unstable).mul_(radius)
        plus_spread = torch.linalg.vector_norm(odd - even, 1, dim=-1)
        minus_spread = torch.linalg.vector_norm(even.add_(odd), 1, dim=-1)
        plus = plus_const + (odd_c - even_c - plus_spread) / 2
        minus = minus_const - (odd_c + even_c + minus_spread) / 2
        return torch.cat([plus, minus], dim=1)
    odd = below.backward_on(odd, active)
    even = below.backward_on(even, unstable)
    lam = torch.cat([odd - even, -odd - even], dim=1) / 2
    const = torch.cat([plus_const, minus_const], dim=1)
    return _pull_back(net, depth - 2, lower, upper, lam, const, bounds)


def _intersect(interval: LayerBounds | None, reference: LayerBounds, batch: int) -> LayerBounds:
    """``reference`` (per layer ``(width,)`` or ``(batch, width)``) clipped to ``interval``."""
    both = []
    for i, (rl, ru) in enumerate(reference):
        rl, ru = rl.expand(batch, -1), ru.expand(batch, -1)
        if interval is not None:
            rl, ru = torch.maximum(rl, interval[i][0]), torch.minimum(ru, interval[i][1])
        both.append((rl, ru))
    if interval is not None:
        both += interval[len(reference) :]
    return both


def crown_layer_bounds(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    *,
    intersect_ibp: bool = True,
    reference: LayerBounds | None = None,
    reuse: int = 0,
    depth: int | None = None,
    fixed: list[Tensor] | None = None,
    rounding: bool = False,
    deadline: Deadline | None = None,
) -> LayerBounds:
    """CROWN bounds on the pre-activations of every layer, for inputs ``(batch, n)``.

    Layer ``i``'s bounds come from a backward pass of the rows ``±e_k`` through the layers
    below it, using the bounds already found for those layers. Units that the interval bounds
    (or ``reference``) already find stable in every box get no rows: their relaxation is exact
    whatever their bounds, so CROWN is spent on the rest.

    Args:
        net: the network.
        lower: input lower bounds ``(batch, n)`` (or ``(n,)``, one box).
        upper: input upper bounds, same shape.
        intersect_ibp: also clip each layer's bounds to its interval bounds (sound, tighter).
        reference: sound bounds already known on these boxes, ``(width,)`` or
            ``(batch, width)`` for some first layers (branch and bound: the parent
            subdomain's); every bound is clipped to them, and units they find stable are
            not bounded again.
        reuse: the first ``reuse`` layers keep ``reference``'s bounds without a backward
            pass, for a caller that knows CROWN would find them no tighter (branch and bound:
            a child's layers up to the one split last are bounded as in its parent).
        depth: bound the layers up to this one only (default all).
        fixed: optional per hidden layer ``(batch, width)`` tensors with ``+1`` (unit known
            active), ``−1`` (known inactive) or ``0``; a subdomain of branch and bound. The
            bounds of such units are clipped at zero before the next layers use them, so an
            empty subdomain shows as ``lower > upper`` somewhere.
        rounding: widen every bound by a rigorous allowance for this dtype's rounding.
        deadline: checked before each layer (raises ``Expired`` once past).

    Returns:
        ``(l, u)`` for each layer, each ``(batch, width)`` (``(width,)`` for one box).
    """
    single = lower.dim() == 1
    if single:
        lower, upper = lower[None], upper[None]
    if reuse > (0 if reference is None else len(reference)):
        raise ConfigError(f"reuse={reuse} needs reference bounds for that many layers")
    interval = ibp_layer_bounds(net, lower, upper, rounding=rounding) if intersect_ibp else None
    if reference is not None:
        interval = _intersect(interval, reference, lower.shape[0])
    bounds: LayerBounds = []
    for i, layer in enumerate(net.layers[: None if depth is None else depth + 1]):
        check(deadline, "CROWN's layer bounds")
        if i < reuse:
            lb, ub = interval[i]
        elif i == 0:
            # One affine map: interval arithmetic is already exact (up to rounding).
            lb, ub = _interval(layer, lower, upper, rounding)
        else:
            width = layer.out_features
            eye = torch.eye(width, dtype=lower.dtype, device=lower.device)
            known = interval is not None and i < min(len(interval), len(net.layers) - 1)
            if known:
                # Units already known stable are relaxed exactly whatever their bounds, so
                # CROWN is spent only on the rest (of any box in the batch).
                il, iu = interval[i]
                unstable = (il < 0) & (iu > 0)
                eye = eye[unstable.any(0)]
            half = len(eye)
            if half and not rounding:
                both = _pair_bound(net, i, lower, upper, eye, bounds)
            elif half:
                rows = torch.cat([eye, -eye])
                both = backward_bound(net, i, lower, upper, rows, None, bounds, rounding=True)
            if known:
                lb, ub = interval[i][0].clone(), interval[i][1].clone()
                if half:
                    # Per box, so that a box's bounds do not depend on the rest of the batch.
                    picked = eye.argmax(1)
                    chosen = unstable[:, picked]
                    lb[:, picked] = torch.where(chosen, both[:, :half], lb[:, picked])
                    ub[:, picked] = torch.where(chosen, -both[:, half:], ub[:, picked])
            else:
                lb, ub = both[:, :half], -both[:, half:]
        if interval is not None and i < len(interval):
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
    deadline: Deadline | None = None,
    rounding: bool = False,
    depth: int | None = None,
) -> Tensor:
    """α-CROWN: maximise each row's bound over lower slopes in ``[0, 1]`` with Adam.

    The slopes are separate for every output row (Xu et al. §3.1); intermediate bounds stay
    fixed. Every iterate is a valid bound, so the best seen per row is returned, and running
    out of time only stops the search early. ``depth``: the rows read layer ``depth``'s
    pre-activations (default the outputs).
    """
    depth = len(net.layers) - 1 if depth is None else depth
    net = net.detach()
    lower, upper, C, d = lower.detach(), upper.detach(), C.detach(), d.detach()
    bounds = [(lb.detach(), ub.detach()) for lb, ub in bounds]
    m = C.shape[-2]
    alphas = []
    for lb, ub in bounds[:depth]:
        _, _, adaptive = _relu_lines(lb, ub)
        alphas.append(adaptive.unsqueeze(1).expand(-1, m, -1).clone().requires_grad_(True))
    best = start.detach().clone()
    with torch.enable_grad():
        optimiser = Adam(alphas, lr=lr)
        for _ in range(steps):
            if deadline is not None and deadline.passed:
                return best
            value = backward_bound(net, depth, lower, upper, C, d, bounds, alphas,
                                   rounding=rounding)  # fmt: skip
            best = torch.maximum(best, value.detach())
            optimiser.zero_grad()
            (-value.sum()).backward()
            optimiser.step()
            with torch.no_grad():
                for a in alphas:
                    a.clamp_(0.0, 1.0)
        with torch.no_grad():
            value = backward_bound(net, depth, lower, upper, C, d, bounds, alphas,
                                   rounding=rounding)  # fmt: skip
    return torch.maximum(best, value)


def alpha_layer_bounds(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    *,
    steps: int = 20,
    lr: float = 0.1,
    deadline: Deadline | None = None,
) -> LayerBounds:
    """Layer bounds with α-CROWN's slopes optimised for every unstable unit's ``±e_k`` rows.

    Layer by layer: CROWN's bounds (:func:`crown_layer_bounds`, on the layers below as already
    tightened), then ``steps`` Adam steps on the lower slopes of the layers below, per row, for
    the units still unstable in some box (Xu et al., ICLR 2021, §3.1: optimised intermediate
    bounds). Tighter than CROWN's where it matters most, in the deep layers; the cost is one
    α-CROWN run per hidden layer, so it is meant for a root (branch and bound's), not for
    every subdomain. Without rounding allowances: a certificate in float64.
    """
    single = lower.dim() == 1
    if single:
        lower, upper = lower[None], upper[None]
    # CROWN is not monotone in the layer bounds below (its adaptive slopes change with them),
    # so each layer is also clipped to plain CROWN's bounds.
    plain = crown_layer_bounds(net, lower, upper, deadline=deadline)
    bounds: LayerBounds = []
    for i in range(len(net.layers)):
        lb, ub = crown_layer_bounds(net, lower, upper, reference=[*bounds, plain[i]], reuse=i,
                                    depth=i, deadline=deadline)[i]  # fmt: skip
        unstable = ((lb < 0) & (ub > 0)).any(0)
        if 0 < i < len(net.layers) - 1 and steps > 0 and bool(unstable.any()):
            eye = torch.eye(len(unstable), dtype=lower.dtype, device=lower.device)[unstable]
            rows, half = torch.cat([eye, -eye]), len(eye)
            start = torch.cat([lb[:, unstable], -ub[:, unstable]], dim=1)
            zero = torch.zeros(rows.shape[0], dtype=lower.dtype, device=lower.device)
            value = _optimise_alpha(net, lower, upper, rows, zero, bounds, start, steps, lr,
                                    deadline, depth=i)  # fmt: skip
            lb, ub = lb.clone(), ub.clone()
            lb[:, unstable] = torch.maximum(lb[:, unstable], value[:, :half])
            ub[:, unstable] = torch.minimum(ub[:, unstable], -value[:, half:])
        bounds.append((lb, ub))
    if single:
        bounds = [(lb[0], ub[0]) for lb, ub in bounds]
    return bounds


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
    rounding: bool = False,
    deadline: Deadline | None = None,
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
        bounds: precomputed pre-activation bounds (``crown_layer_bounds``), batched; they
            must have been computed with the same ``rounding``.
        rounding: subtract a rigorous allowance for this dtype's rounding (below float64).
        deadline: stops α-CROWN early (still sound); raises ``Expired`` while the layer bounds
            are computed.

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
        bounds = crown_layer_bounds(net, lower, upper, rounding=rounding, deadline=deadline)
    depth = len(net.layers) - 1
    value = backward_bound(net, depth, lower, upper, C, d, bounds, rounding=rounding)
    if alpha and depth > 0 and steps > 0:
        value = _optimise_alpha(net, lower, upper, C, d, bounds, value, steps, lr, deadline,
                                rounding)  # fmt: skip
    return value[0] if single else value


@BOUNDS.register("crown")
def _crown(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    C: Tensor,
    d: Tensor,
    *,
    rounding: bool = False,
    deadline: Deadline | None = None,
) -> Tensor:
    """CROWN, never looser than IBP (the larger of the two)."""
    value = crown_rows(net, lower, upper, C, d, rounding=rounding, deadline=deadline)
    ibp = ibp_rows(net, lower[None], upper[None], C, d, rounding=rounding)[0]
    return torch.maximum(value, ibp).detach()


@BOUNDS.register("crown+alpha")
def _alpha_crown(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    C: Tensor,
    d: Tensor,
    *,
    steps: Annotated[int, Field(ge=0)] = 20,
    lr: Annotated[float, Field(gt=0)] = 0.1,
    rounding: bool = False,
    deadline: Deadline | None = None,
) -> Tensor:
    """α-CROWN: ``steps`` Adam steps at rate ``lr`` on the lower slopes; never below CROWN."""
    value = crown_rows(net, lower, upper, C, d, alpha=True, steps=steps, lr=lr,
                       rounding=rounding, deadline=deadline)  # fmt: skip
    ibp = ibp_rows(net, lower[None], upper[None], C, d, rounding=rounding)[0]
    return torch.maximum(value, ibp).detach()
