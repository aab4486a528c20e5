"""Batched branch and bound over ReLU splits, bounded by β-CROWN (``beta_crown.py``).

Wang, Zhang, Xu, Lin, Jana, Hsieh and Kolter, "Beta-CROWN: Efficient Bound Propagation with
Per-neuron Split Constraints for Neural Network Robustness Verification", NeurIPS 2021
(arXiv 2103.06624), Algorithm 1; the search itself is Bunel et al.'s branch and bound (JMLR
2020, arXiv 1909.06588).

Each unsafe conjunction ``{y : C y + d ≤ 0}`` is decided separately. Open subdomains wait in a
priority queue, lowest bound first (the ones furthest from being ruled out). Each round pops up
to ``batch`` of them, splits each on the unit its last bound scored highest
(:func:`beta_crown.intercept_scores`), and bounds all the children in one batched β-CROWN call,
warm-started from the parent's α and β (Wang et al. §3.2: the parent's optimum is a good start).
A child with some row's lower bound above zero is ruled out. The children's primal candidates
(the inputs minimising their linear bounds) are checked, and a short gradient attack starts
from the most promising ones, so counterexamples turn up while the tree is still small. A child
with no unstable unit left is linear on its subdomain; it is decided by the exact LP
(``exact``), which makes the search complete. When the queue is empty the conjunction holds.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from stalwart.certify.beta_crown import SplitBounds, beta_crown
from stalwart.certify.crown import LayerBounds
from stalwart.certify.deadline import Deadline
from stalwart.certify.network import Network

# A leaf's exact LP, given its splits and its own sound layer bounds: the value (None if the
# solver failed) and the minimising input.
ExactLeaf = Callable[[list[np.ndarray], LayerBounds], tuple[float | None, Tensor | None]]
# A gradient attack from the given starts: a checked counterexample or None.
Attack = Callable[[Tensor], Tensor | None]


@dataclass
class _Domain:
    """An open subdomain: its splits, warm starts and the unit to split next.

    α and β are kept in float32 to save memory; any values are sound once projected.
    """

    splits: list[Tensor]
    alphas: list[Tensor]
    betas: list[Tensor]
    branch: tuple[int, int]


def _best_units(result: SplitBounds) -> list[tuple[int, int] | None]:
    """Per subdomain, the ``(layer, unit)`` with the highest score; None if none is unstable."""
    if not result.scores:
        return [None] * len(result.lower)
    flat = torch.cat(result.scores, dim=1)
    best, where = flat.max(dim=1)
    offsets = np.cumsum([0] + [s.shape[1] for s in result.scores])
    units = []
    for value, index in zip(best.tolist(), where.tolist(), strict=True):
        if value == -np.inf:
            units.append(None)
            continue
        layer = int(np.searchsorted(offsets, index, side="right") - 1)
        units.append((layer, index - int(offsets[layer])))
    return units


def relu_split_disjunct(
    net: Network,
    lo: Tensor,
    hi: Tensor,
    C: Tensor,
    d: Tensor,
    root_bounds: LayerBounds,
    deadline: Deadline,
    checker,
    *,
    exact: ExactLeaf,
    attack: Attack,
    batch: int = 64,
    steps: int = 20,
    attack_starts: int = 4,
    max_domains: int = 20_000,
) -> tuple[str, Tensor | None, str]:
    """Decide one unsafe conjunction ``{y : C y + d ≤ 0}`` over ``[lo, hi]`` by ReLU splits.

    Args:
        net: the float64 network.
        lo: input lower bounds ``(n,)`` (float64).
        hi: input upper bounds ``(n,)``.
        C: rows ``(m, outputs)``.
        d: offsets ``(m,)``.
        root_bounds: CROWN's layer bounds on the whole box (at least every hidden layer's).
        deadline: past it the answer is ``unknown``.
        checker: ``checker.check(points)`` returns a certain counterexample among flat points.
        exact: the exact LP of a subdomain with every unit split or stable.
        attack: a short gradient attack from some starts (checked).
        batch: parents popped per round (``2 × batch`` children bounded together).
        steps: β-CROWN's Adam steps per round.
        attack_starts: children whose candidates seed the attack each round.
        max_domains: open subdomains beyond which the search gives up (memory).

    Returns:
        ``(status, counterexample, detail)`` with status ``holds``, ``violated`` or ``unknown``.
    """
    hidden = net.hidden_sizes
    root_bounds = root_bounds[: len(hidden)]
    device = lo.device
    counter = itertools.count()
    queue: list[tuple[float, int, _Domain]] = []
    explored = 0
    undecided = 0

    def bound(splits, alphas=None, betas=None) -> SplitBounds:
        return beta_crown(net, lo, hi, C, d, splits, root_bounds=root_bounds, alphas=alphas,
                          betas=betas, steps=steps, deadline=deadline)  # fmt: skip

    def settle(result: SplitBounds, splits: list[Tensor]):
        """Rule out, check, attack and queue the bounded subdomains; maybe an answer."""
        nonlocal undecided
        value = result.lower.max(dim=1).values
        open_ = (value <= 0).nonzero().flatten()
        if not len(open_):
            return None
        found = checker.check(result.candidates[open_])
        if found is not None:
            return "violated", found, f"β-CROWN candidate after {explored} subdomains"
        # The lowest bounds are the likeliest to hide a counterexample.
        promising = open_[value[open_].argsort()[:attack_starts]]
        found = attack(result.candidates[promising])
        if found is not None:
            return "violated", found, f"attack on subdomains after {explored} subdomains"
        units = _best_units(result)
        for i in open_.tolist():
            own = [s[i] for s in splits]
            if units[i] is None:
                own_bounds = [(lb[i], ub[i]) for lb, ub in result.layer_bounds]
                leaf_value, point = exact([s.cpu().numpy() for s in own], own_bounds)
                if leaf_value is None:
                    reason = "time out" if deadline.passed else "the LP solver failed"
                    return "unknown", None, f"{reason} on a leaf after {explored} subdomains"
                if leaf_value > 0:
                    continue
                found = attack(point[None]) if point is not None else None
                if found is not None:
                    return "violated", found, f"LP point of a leaf after {explored} subdomains"
                undecided += 1  # exact LP at a tie with zero: numerically undecidable here
                continue
            domain = _Domain(
                own,
                [a[i].float() for a in result.alphas],
                [b[i].float() for b in result.betas],
                units[i],
            )
            heapq.heappush(queue, (float(value[i]), next(counter), domain))
        return None

    if not hidden:
        # No ReLU: the network is affine and the LP over the box is exact.
        value, point = exact([], [])
        if value is None:
            return "unknown", None, "the LP solver failed"
        if value > 0:
            return "holds", None, "the exact LP rules it out"
        found = attack(point[None]) if point is not None else None
        if found is not None:
            return "violated", found, "LP point"
        return "unknown", None, "the LP optimum ties with the unsafe boundary"
    root = [torch.zeros(1, w, dtype=torch.int8, device=device) for w in hidden]
    result = bound(root)
    explored = 1
    answer = settle(result, root)
    if answer is not None:
        return answer
    while queue:
        if deadline.passed:
            return "unknown", None, f"time out with {len(queue)} subdomains open"
        if len(queue) > max_domains:
            return "unknown", None, f"more than {max_domains} subdomains open"
        parents = [heapq.heappop(queue)[2] for _ in range(min(batch, len(queue)))]
        splits = [[] for _ in hidden]
        alphas = [[] for _ in hidden]
        betas = [[] for _ in hidden]
        for parent in parents:
            layer, unit = parent.branch
            for side in (1, -1):
                for j in range(len(hidden)):
                    s = parent.splits[j]
                    if j == layer:
                        s = s.clone()
                        s[unit] = side
                    splits[j].append(s)
                    alphas[j].append(parent.alphas[j])
                    betas[j].append(parent.betas[j])
        splits = [torch.stack(s) for s in splits]
        alphas = [torch.stack(a) for a in alphas]
        betas = [torch.stack(b) for b in betas]
        result = bound(splits, alphas, betas)
        explored += len(splits[0])
        answer = settle(result, splits)
        if answer is not None:
            return answer
    if undecided:
        return "unknown", None, f"{undecided} subdomains tie with the unsafe boundary"
    return "holds", None, f"branch and bound (β-CROWN) closed {explored} subdomains"
