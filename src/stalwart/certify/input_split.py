"""Branch and bound over the input box, for networks with few inputs (ACAS Xu and the like).

Wang, Pei, Whitehouse, Yang and Jana, "Formal Security Analysis of Neural Networks using
Symbolic Intervals" (ReluVal, USENIX Security 2018, arXiv 1804.10829), with CROWN as the
bound (as in nnenum's and αβ-CROWN's input-split modes). Each unsafe conjunction is decided
separately: sub-boxes are bounded with CROWN in batches (and a few α-CROWN steps on those
CROWN leaves open); a sub-box whose lower bound on some row is positive is ruled out; the
centre of every remaining sub-box is run through the network (a counterexample ends the
search, once checked); the others are bisected along the input whose halving raises the
sub-box's CROWN bound most (to first order). When no sub-box is left the conjunction holds.
With a handful of inputs the boxes shrink fast, where ReLU splitting would face hundreds of
unstable units.
"""

from __future__ import annotations

import torch
from torch import Tensor

from stalwart.certify.crown import crown_layer_bounds, crown_rows
from stalwart.certify.network import Network

ALPHA_STEPS = 5
"""α-CROWN steps on the sub-boxes CROWN leaves open (the bound's lower ReLU slopes, optimised
per box): on ACAS Xu property 2 a few steps close boxes that CROWN would split thousands of
times more; more steps cost more than the splits they save."""
ALPHA_LR = 0.2


def _split_scores(net: Network, lo: Tensor, hi: Tensor, C: Tensor, d: Tensor) -> Tensor:
    """How much halving each input would raise the sub-box's bound ``(batch, n)``.

    The bound that rules a sub-box out is its best row's (one row above zero suffices).
    Halving input ``k`` moves one end of the box by half its width, so the first-order gain
    is ``(∂v/∂lo_k − ∂v/∂hi_k) · width_k``, the derivative taken through CROWN, intermediate
    bounds included (the idea of αβ-CROWN's input-split heuristic, which weighs CROWN's input
    coefficients by the width). The network's own gradient, an earlier choice here, says where
    the outputs move, not where the bound is loose: on ACAS Xu property 1 it left sub-boxes
    open by the thousand that this score closes in a few hundred.
    """
    lo, hi = lo.detach().clone().requires_grad_(True), hi.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        best = crown_rows(net, lo, hi, C, d).max(dim=1).values
        d_lo, d_hi = torch.autograd.grad(best.sum(), [lo, hi])
    width = (hi - lo).detach()
    # A small floor (by width) keeps every input splittable where the bound is flat.
    return ((d_lo - d_hi) * width).clamp(min=0) + 1e-9 * width


def _sub_box_bounds(net, lo, hi, C, d, deadline, rounding, slack) -> Tensor:
    """Lower bounds ``(batch, rows)``: CROWN, then α-CROWN where CROWN rules nothing out."""
    bounds = crown_layer_bounds(net, lo, hi, rounding=rounding)
    lower = crown_rows(net, lo, hi, C, d, bounds=bounds, rounding=rounding)
    if slack is not None:
        lower = lower - slack(lo, hi)
    open_ = ~(lower > 0).any(dim=1)
    if bool(open_.any()) and len(net.layers) > 1:
        sub = [(lb[open_], ub[open_]) for lb, ub in bounds]
        tighter = crown_rows(net, lo[open_], hi[open_], C, d, bounds=sub, alpha=True,
                             steps=ALPHA_STEPS, lr=ALPHA_LR, rounding=rounding,
                             deadline=deadline)  # fmt: skip
        if slack is not None:
            tighter = tighter - slack(lo[open_], hi[open_])
        lower[open_] = torch.maximum(lower[open_], tighter)
    return lower


def input_split_disjunct(
    net: Network,
    lo: Tensor,
    hi: Tensor,
    C: Tensor,
    d: Tensor,
    deadline,
    checker,
    *,
    batch: int = 512,
    max_domains: int = 200_000,
    rounding: bool = False,
    slack=None,
) -> tuple[str, Tensor | None, str]:
    """Decide one unsafe conjunction ``{y : C y + d ≤ 0}`` over ``[lo, hi]`` by input splits.

    ``checker.check`` decides whether a sub-box's centre is a counterexample (a centre it
    rejects leaves the sub-box open, to be split further); ``rounding`` makes CROWN subtract
    its rounding allowance (networks below float64), and ``slack(lo, hi)``, when given, is
    subtracted from every sub-box's rows too (the error of a network's cast to float32).

    Returns:
        ``(status, counterexample, detail)`` with status ``holds``, ``violated`` or ``unknown``.
    """
    pending_lo, pending_hi = lo[None], hi[None]
    visited = 0
    while len(pending_lo):
        if deadline.passed:
            return "unknown", None, f"time out with {len(pending_lo)} sub-boxes open"
        if len(pending_lo) > max_domains:
            return "unknown", None, f"more than {max_domains} sub-boxes open"
        blo, bhi = pending_lo[:batch], pending_hi[:batch]
        pending_lo, pending_hi = pending_lo[batch:], pending_hi[batch:]
        visited += len(blo)
        with torch.no_grad():
            lower = _sub_box_bounds(net, blo, bhi, C, d, deadline, rounding, slack)
        open_ = ~(lower > 0).any(dim=1)
        blo, bhi = blo[open_], bhi[open_]
        if not len(blo):
            continue
        found = checker.check((blo + bhi) / 2)
        if found is not None:
            return "violated", found, f"input splitting, {visited} sub-boxes"
        scores = _split_scores(net, blo, bhi, C, d)
        dim = scores.argmax(dim=1)
        rows = torch.arange(len(blo), device=blo.device)
        middle = (blo[rows, dim] + bhi[rows, dim]) / 2
        left_hi, right_lo = bhi.clone(), blo.clone()
        left_hi[rows, dim] = middle
        right_lo[rows, dim] = middle
        pending_lo = torch.cat([blo, right_lo, pending_lo])
        pending_hi = torch.cat([left_hi, bhi, pending_hi])
    return "holds", None, f"input splitting, {visited} sub-boxes"
