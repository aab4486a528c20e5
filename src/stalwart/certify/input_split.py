"""Branch and bound over the input box, for networks with few inputs (ACAS Xu and the like).

Wang, Pei, Whitehouse, Yang and Jana, "Formal Security Analysis of Neural Networks using
Symbolic Intervals" (ReluVal, USENIX Security 2018, arXiv 1804.10829), with CROWN as the
bound (as in nnenum's and αβ-CROWN's input-split modes). Each unsafe conjunction is decided
separately: sub-boxes are bounded with CROWN in batches; a sub-box whose lower bound on some
row is positive is ruled out; the centre of every remaining sub-box is run through the
network (a counterexample ends the search, once checked); the others are bisected along the
input whose width times the bound's sensitivity to it is largest. When no sub-box is left
the conjunction holds. With a handful of inputs the boxes shrink fast, where ReLU splitting
would face hundreds of unstable units.
"""

from __future__ import annotations

import torch
from torch import Tensor

from stalwart.certify.crown import crown_rows
from stalwart.certify.network import Network


def _split_scores(net: Network, lo: Tensor, hi: Tensor, C: Tensor, d: Tensor) -> Tensor:
    """How much halving each input would help: width × |gradient of the worst row| at the centre."""
    centre = ((lo + hi) / 2).requires_grad_(True)
    with torch.enable_grad():
        rows = net(centre) @ C.T + d
        (gradient,) = torch.autograd.grad(rows.max(dim=1).values.sum(), centre)
    # A small floor keeps every input splittable when the gradient vanishes there.
    return (hi - lo) * (gradient.abs() + 1e-6 * gradient.abs().amax(dim=1, keepdim=True) + 1e-12)


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
            lower = crown_rows(net, blo, bhi, C, d, rounding=rounding)
            if slack is not None:
                lower = lower - slack(blo, bhi)
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
