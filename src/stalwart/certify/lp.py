"""The LP (triangle) relaxation of a ReLU network, solved exactly by HiGHS.

Ehlers, "Formal Verification of Piece-wise Linear Feed-forward Neural Networks", ATVA 2017
(arXiv 1705.01320, "Planet"); Wong and Kolter, "Provable Defenses against Adversarial Examples
via the Convex Outer Adversarial Polytope", ICML 2018 (arXiv 1711.00851).

Each unstable ReLU (``l < 0 < u``) becomes a variable ``h`` in the triangle
``h ≥ 0, h ≥ z, h ≤ u (z − l) / (u − l)``, the convex hull of the ReLU's graph over
``[l, u]``; stable units are exact and get no variable (``h = z`` or ``h = 0`` substituted).
Pre-activations are affine expressions of the input and the unstable units' variables, so the
only variables are the input and one per unstable unit. Intermediate bounds come from CROWN by
default and can be tightened layer by layer with the LP itself (``refine``).

Soundness does not rest on the solver's optimality tolerances: the number returned for a row
is the Lagrangian dual value at HiGHS's multipliers (clipped to the right sign), which is a
lower bound on the LP for *any* multipliers because every variable is boxed. When HiGHS does not
report an optimum, or the deadline passes, the row falls back to the CROWN/IBP bound. Each
solve gets the time left as HiGHS's own limit. The LP is solved in float64, where a float32
network's weights are exact; below float64 (``rounding``) the intermediate bounds and the
fallback carry their rounding allowances.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import linprog
from torch import Tensor

from stalwart.certify.bounds import BOUNDS
from stalwart.certify.crown import LayerBounds, backward_bound, crown_layer_bounds
from stalwart.certify.deadline import Deadline
from stalwart.certify.ibp import ibp_rows
from stalwart.certify.ibp import layer_bounds as ibp_layer_bounds
from stalwart.certify.network import Network
from stalwart.certify.rounding import round_down
from stalwart.errors import ConfigError

INTERMEDIATE = ("crown", "ibp")


@dataclass
class Encoding:
    """Linear constraints ``A v ≤ b`` on boxed variables ``v = (x, h_unstable, [a_binary])``.

    Attributes:
        A: sparse ``(rows, n_vars)`` constraint matrix.
        b: right-hand sides.
        lower: variable lower bounds.
        upper: variable upper bounds.
        out: the last layer's pre-activations as ``out_matrix @ v + out_offset``.
        integrality: 1 for binary variables (MILP), 0 otherwise.
        units: per unstable unit ``(layer, index, h variable, z row, z offset, l, u)``, for
            choosing splits.
        n_inputs: number of input variables (they come first).
    """

    A: sp.csr_matrix
    b: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    out_matrix: np.ndarray
    out_offset: np.ndarray
    integrality: np.ndarray
    n_inputs: int
    units: list[tuple[int, int, int, np.ndarray, float, float, float]] = field(default_factory=list)


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().to(device="cpu", dtype=torch.float64).numpy()


def encode(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    bounds: LayerBounds,
    *,
    depth: int | None = None,
    splits: list[np.ndarray] | None = None,
    binary: bool = False,
) -> Encoding:
    """The triangle relaxation (or, with ``binary``, the exact big-M MILP) of the network.

    Args:
        net: the network.
        lower: input lower bounds ``(n,)``.
        upper: input upper bounds ``(n,)``.
        bounds: sound pre-activation bounds ``(width,)`` of at least the first ``depth`` layers.
        depth: encode layers below this one; ``out`` is then layer ``depth``'s pre-activation
            (default: the whole network).
        splits: per hidden layer, ``+1`` (unit constrained active, ``z ≥ 0``), ``−1``
            (constrained inactive, ``z ≤ 0``) or ``0``.
        binary: add a binary indicator per unstable unit (big-M encoding, Tjeng et al. 2019,
            arXiv 1711.07356), making the encoding exact.
    """
    depth = len(net.layers) - 1 if depth is None else depth
    lo_in, hi_in = _numpy(lower), _numpy(upper)
    n = lo_in.size
    layer_np = [(_numpy(b[0]), _numpy(b[1])) for b in bounds[:depth]]
    status = []
    for j, (lb, ub) in enumerate(layer_np):
        s = np.zeros(lb.size, dtype=np.int8) if splits is None else np.asarray(splits[j])
        unstable = (lb < 0) & (ub > 0) & (s == 0)
        status.append((unstable, (lb >= 0) | (s > 0)))
    n_unstable = int(sum(unst.sum() for unst, _ in status))
    n_vars = n + n_unstable * (2 if binary else 1)
    v_lo = np.empty(n_vars)
    v_hi = np.empty(n_vars)
    v_lo[:n], v_hi[:n] = lo_in, hi_in
    integrality = np.zeros(n_vars, dtype=np.int8)
    expr = np.zeros((n, n_vars))
    expr[:, :n] = np.eye(n)
    offset = np.zeros(n)
    rows: list[np.ndarray] = []
    rhs: list[np.ndarray] = []
    units = []
    next_var = n
    next_bin = n + n_unstable
    for j in range(depth):
        weight, bias = _numpy(net.layers[j].dense_weight()), _numpy(net.layers[j].bias)
        Z, z0 = weight @ expr, weight @ offset + bias
        lb, ub = layer_np[j]
        unstable, active = status[j]
        s = np.zeros(lb.size, dtype=np.int8) if splits is None else np.asarray(splits[j])
        # Split constraints hold only inside the subdomain; nothing else implies them.
        if (s > 0).any():
            rows.append(-Z[s > 0])
            rhs.append(z0[s > 0])
        if (s < 0).any():
            rows.append(Z[s < 0])
            rhs.append(-z0[s < 0])
        new_expr = np.zeros((lb.size, n_vars))
        new_offset = np.zeros(lb.size)
        new_expr[active] = Z[active]
        new_offset[active] = z0[active]
        idx = np.flatnonzero(unstable)
        if idx.size:
            p = np.arange(next_var, next_var + idx.size)
            next_var += idx.size
            Zu, zu, lu, uu = Z[idx], z0[idx], lb[idx], ub[idx]
            slope = uu / (uu - lu)
            H = np.zeros((idx.size, n_vars))
            H[np.arange(idx.size), p] = 1.0
            rows += [Zu - H, H - slope[:, None] * Zu]  # h ≥ z ;  h ≤ slope (z − lb)
            rhs += [-zu, slope * (zu - lu)]
            v_lo[p], v_hi[p] = 0.0, uu
            if binary:
                q = np.arange(next_bin, next_bin + idx.size)
                next_bin += idx.size
                B = np.zeros((idx.size, n_vars))
                B[np.arange(idx.size), q] = 1.0
                # h ≤ z − l (1 − a)  and  h ≤ u a
                rows += [H - Zu - lu[:, None] * B, H - uu[:, None] * B]
                rhs += [zu - lu, np.zeros(idx.size)]
                v_lo[q], v_hi[q] = 0.0, 1.0
                integrality[q] = 1
            new_expr[idx] = H
            for k, var, zrow, zoff in zip(idx, p, Zu, zu, strict=True):
                units.append((j, int(k), int(var), zrow, float(zoff), float(lb[k]), float(ub[k])))
        expr, offset = new_expr, new_offset
    weight, bias = _numpy(net.layers[depth].dense_weight()), _numpy(net.layers[depth].bias)
    A = sp.csr_matrix(np.concatenate(rows)) if rows else sp.csr_matrix((0, n_vars))
    b = np.concatenate(rhs) if rhs else np.zeros(0)
    return Encoding(A, b, v_lo, v_hi, weight @ expr, weight @ offset + bias, integrality, n, units)


def dual_value(enc: Encoding, c: np.ndarray, result) -> float:
    """A lower bound on ``min c·v`` over the encoding, valid for any HiGHS multipliers.

    Weak duality with the box kept explicit: for ``μ ≥ 0``,
    ``min c·v ≥ −μ·b + Σ_i min(r_i lo_i, r_i hi_i)`` with ``r = c + Aᵀμ``.
    """
    if enc.A.shape[0]:
        mu = np.maximum(-np.asarray(result.ineqlin.marginals), 0.0)
        r = c + enc.A.T @ mu
        value = -float(mu @ enc.b)
    else:
        r, value = c, 0.0
    return value + float(np.minimum(r * enc.lower, r * enc.upper).sum())


def solve_min(enc: Encoding, c: np.ndarray, deadline: Deadline | None = None) -> float | None:
    """A sound lower bound on ``min c·v`` over the LP, or None when HiGHS finds no optimum.

    The time left before ``deadline`` is HiGHS's own limit; past it, None without a solve.
    """
    if deadline is not None and deadline.passed:
        return None
    options = {"time_limit": deadline.limit()} if deadline is not None else {}
    result = linprog(
        c, A_ub=enc.A, b_ub=enc.b, bounds=np.stack([enc.lower, enc.upper], 1),
        method="highs", options=options,
    )  # fmt: skip
    if result.status != 0:
        return None
    return dual_value(enc, c, result)


def _interval_bounds(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    method: str,
    rounding: bool = False,
    deadline: Deadline | None = None,
) -> LayerBounds:
    if method not in INTERMEDIATE:
        raise ConfigError(f"intermediate must be one of {list(INTERMEDIATE)}; got {method!r}")
    if method == "crown":
        return crown_layer_bounds(net, lower, upper, rounding=rounding, deadline=deadline)
    boxes = ibp_layer_bounds(net, lower[None], upper[None], rounding=rounding)
    return [(lb[0], ub[0]) for lb, ub in boxes]


def refine_bounds(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    bounds: LayerBounds,
    *,
    rounding: bool = False,
    deadline: Deadline | None = None,
) -> LayerBounds:
    """Tighten each hidden layer's unstable units with the LP over the layers below it.

    Layer by layer (Ehlers 2017): the bounds found for layer ``j`` are used in the relaxation
    that bounds layer ``j + 1``. Units already stable are left alone, and so is every unit
    once the deadline passes (the bounds it has are sound).
    """
    refined = list(bounds)
    for j in range(1, len(net.layers) - 1):
        enc = encode(net, lower, upper, refined, depth=j)
        lb, ub = refined[j]
        new_l, new_u = lb.clone(), ub.clone()
        for k in torch.nonzero((lb < 0) & (ub > 0)).flatten().tolist():
            row, off = enc.out_matrix[k], float(enc.out_offset[k])
            low = solve_min(enc, row, deadline)
            high = solve_min(enc, -row, deadline)
            if low is not None:
                new_l[k] = torch.maximum(lb[k], round_down(low + off, lb.dtype).to(lb.device))
            if high is not None:
                new_u[k] = torch.minimum(ub[k], -round_down(high - off, ub.dtype).to(ub.device))
        refined[j] = (new_l, new_u)
    return refined


def lp_rows(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    C: Tensor,
    d: Tensor,
    *,
    intermediate: str = "crown",
    refine: bool = False,
    bounds: LayerBounds | None = None,
    rounding: bool = False,
    deadline: Deadline | None = None,
) -> Tensor:
    """Lower bounds on each row of ``C f(x) + d`` from the triangle LP, one LP per row.

    Args:
        net: the network (small: layers are made dense).
        lower: input lower bounds ``(n,)``.
        upper: input upper bounds ``(n,)``.
        C: rows ``(m, outputs)``.
        d: offsets ``(m,)``.
        intermediate: ``"crown"`` or ``"ibp"`` pre-activation bounds.
        refine: tighten the intermediate bounds with the LP, layer by layer.
        bounds: precomputed intermediate bounds (overrides ``intermediate``); they must
            carry the same ``rounding``.
        rounding: the network is below float64: use rounding allowances (see module doc).
        deadline: each LP gets the time left; rows not solved in time keep the CROWN/IBP
            bound.

    Returns:
        ``(m,)`` bounds, each at least the CROWN (or IBP) bound with the same intermediate
        bounds, since both are sound and the larger is kept.
    """
    net = net.detach()
    if bounds is None:
        bounds = _interval_bounds(net, lower, upper, intermediate, rounding, deadline)
    if refine:
        bounds = refine_bounds(net, lower, upper, bounds, rounding=rounding, deadline=deadline)
    batched = [(lb[None], ub[None]) for lb, ub in bounds]
    depth = len(net.layers) - 1
    lo, hi = lower[None], upper[None]
    crown = backward_bound(net, depth, lo, hi, C, d, batched, rounding=rounding)[0]
    fallback = torch.maximum(crown, ibp_rows(net, lo, hi, C, d, rounding=rounding)[0])
    enc = encode(net, lower, upper, bounds)
    objective = _numpy(C) @ enc.out_matrix
    constant = _numpy(C) @ enc.out_offset + _numpy(d)
    values = fallback.clone()
    for r in range(len(C)):
        low = solve_min(enc, objective[r], deadline)
        if low is not None:
            found = round_down(low + float(constant[r]), values.dtype)
            values[r] = torch.maximum(fallback[r], found.to(values.device))
    return values


@BOUNDS.register("lp")
def _lp(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    C: Tensor,
    d: Tensor,
    *,
    intermediate: Literal["crown", "ibp"] = "crown",
    refine: bool = False,
    rounding: bool = False,
    deadline: Deadline | None = None,
) -> Tensor:
    """The triangle LP with CROWN (or IBP) intermediate bounds, optionally LP-refined."""
    return lp_rows(net, lower, upper, C, d, intermediate=intermediate, refine=refine,
                   rounding=rounding, deadline=deadline)  # fmt: skip
