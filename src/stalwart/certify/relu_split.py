"""Batched branch and bound over ReLU splits, bounded by β-CROWN (``beta_crown.py``).

Wang, Zhang, Xu, Lin, Jana, Hsieh and Kolter, "Beta-CROWN: Efficient Bound Propagation with
Per-neuron Split Constraints for Neural Network Robustness Verification", NeurIPS 2021
(arXiv 2103.06624), Algorithm 1; the search itself is Bunel et al.'s branch and bound (JMLR
2020, arXiv 1909.06588).

The unsafe conjunctions ``{y : C y + d ≤ 0}`` of a property (nine for a robustness property
over ten classes) are decided in one search: every subdomain carries its conjunction, the
roots of all of them are bounded in one batched call, and children of different conjunctions
share the batches after (each with its own rows; ``beta_crown`` takes a ``C`` per subdomain).
Open subdomains wait in one priority queue, lowest bound first (the ones furthest from being
ruled out). Each round pops up to ``batch`` of them, splits each on the unit chosen when it
was bounded (filtered smart branching, :func:`beta_crown.strongest_splits`: of the units
:func:`beta_crown.intercept_scores` rates highest, the one whose two children bound best in
one cheap pass), and bounds all the children in one batched β-CROWN call,
warm-started from the parent's α and β (Wang et al. §3.2: the parent's optimum is a good start).
A child's layer bounds start from its parent's, which hold on it: the layers up to its new
split keep them (its relaxation there is the parent's, so CROWN would find them again), and
only the layers above are bounded anew, for the units the parent left unstable.
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

from stalwart.certify.beta_crown import SplitBounds, beta_crown, strongest_splits
from stalwart.certify.crown import LayerBounds
from stalwart.certify.deadline import Deadline
from stalwart.certify.network import Network
from stalwart.certify.spec import padded_rows

# A leaf's exact LP, given its splits and its own sound layer bounds: the value (None if the
# solver failed) and the minimising input.
ExactLeaf = Callable[[list[np.ndarray], LayerBounds], tuple[float | None, Tensor | None]]
# A gradient attack from the given starts: a checked counterexample or None.
Attack = Callable[[Tensor, Tensor, Tensor], Tensor | None]
"""``attack(starts, C, d)``: a checked counterexample found from ``starts`` ``(n, inputs)``,
each towards its own conjunction's rows ``C[i]`` ``(m, outputs)`` and offsets ``d[i]``."""


MEMORY_LIMIT = 4 * 2**30
"""Bytes the open subdomains' tensors may hold before the search gives up with ``unknown``."""

BRANCH_CANDIDATES = 10
"""Units tried per subdomain by filtered smart branching before one is split. αβ-CROWN's 2022
mnist_fc setting is 5 (``kfsb``, on a GPU); on 2 CPU cores 10 took 0.84 and 0.81 of the time
of the plain intercept score on two 256×4 instances of 30 to 100 s, against 0.93 and 0.86 for
5 (``benchmarks/branching.py``, docs/results.md)."""


@dataclass
class _Domain:
    """An open subdomain of conjunction ``k``: splits, warm starts, bounds, next unit to split.

    α and β are kept in float32 to save memory; any values are sound once projected. The layer
    bounds stay in float64: they hold on every child, which starts from them. Every tensor is
    its own compact copy, not a view that would keep its whole batch alive.
    """

    k: int
    splits: list[Tensor]
    alphas: list[Tensor]
    betas: list[Tensor]
    bounds: LayerBounds
    branch: tuple[int, int]

    @property
    def nbytes(self) -> int:
        tensors = [*self.splits, *self.alphas, *self.betas, *(t for b in self.bounds for t in b)]
        return sum(t.element_size() * t.numel() for t in tensors)


def _children(parents: list[_Domain], depth: int):
    """Both children of each parent, stacked: conjunctions, splits, warm starts, bounds.

    The layer bounds are the parents': they hold on the children, tighter than the root's.
    """
    ks, splits, alphas, betas = [], [], [], []
    for parent in parents:
        layer, unit = parent.branch
        for side in (1, -1):
            child = [s.clone() if j == layer else s for j, s in enumerate(parent.splits)]
            child[layer][unit] = side
            ks.append(parent.k)
            splits.append(child)
            alphas.append(parent.alphas)
            betas.append(parent.betas)

    def stack(per_child: list[list[Tensor]]) -> list[Tensor]:
        return [torch.stack([c[j] for c in per_child]) for j in range(depth)]

    pairs = [p.bounds for p in parents for _ in (1, -1)]
    known = list(zip(stack([[lb for lb, _ in b] for b in pairs]),
                     stack([[ub for _, ub in b] for b in pairs]), strict=True))  # fmt: skip
    return torch.tensor(ks), stack(splits), stack(alphas), stack(betas), known


def _layer_units(flat: Tensor, widths: list[int]) -> list[tuple[int, int] | None]:
    """``(layer, unit)`` of each index into the hidden layers' units, concatenated; −1: None."""
    offsets = np.cumsum([0, *widths])
    units = []
    for index in flat.tolist():
        if index < 0:
            units.append(None)
            continue
        layer = int(np.searchsorted(offsets, index, side="right") - 1)
        units.append((layer, index - int(offsets[layer])))
    return units


def relu_split_search(
    net: Network,
    lo: Tensor,
    hi: Tensor,
    conjunctions: list[tuple[Tensor, Tensor]],
    root_bounds: LayerBounds,
    deadline: Deadline,
    checker,
    *,
    exact: list[ExactLeaf],
    attack: Attack,
    batch: int = 128,
    steps: int = 20,
    attack_starts: int = 4,
    max_memory: int = MEMORY_LIMIT,
    branch_candidates: int = BRANCH_CANDIDATES,
) -> tuple[str, Tensor | None, str]:
    """Decide whether any unsafe conjunction ``{y : C y + d ≤ 0}`` is reachable over ``[lo, hi]``.

    Args:
        net: the float64 network.
        lo: input lower bounds ``(n,)`` (float64).
        hi: input upper bounds ``(n,)``.
        conjunctions: the ``(C, d)`` pairs, rows ``(m_k, outputs)`` and offsets ``(m_k,)``.
        root_bounds: CROWN's layer bounds on the whole box (at least every hidden layer's).
        deadline: past it the answer is ``unknown``.
        checker: ``checker.check(points)`` returns a certain counterexample among flat points.
        exact: per conjunction, the exact LP of a subdomain with every unit split or stable.
        attack: a short gradient attack from some starts, each towards its own
            conjunction (checked).
        batch: parents popped per round (``2 × batch`` children bounded together, in one
            β-CROWN call: its optimisation costs per call more than per subdomain; on 2 CPU
            cores 128 beat 64, 256 and 512 on mnist_fc, docs/results.md).
        steps: β-CROWN's Adam steps per round.
        attack_starts: children whose candidates seed the attacks each round.
        max_memory: bytes the open subdomains may hold; beyond it the search gives up.
        branch_candidates: units tried per subdomain before one is split
            (:func:`beta_crown.strongest_splits`; 1: the highest intercept score).

    Returns:
        ``(status, counterexample, detail)``: ``holds`` (every conjunction ruled out),
        ``violated`` (a checked input reaching one) or ``unknown``.
    """
    hidden = net.hidden_sizes
    root_bounds = root_bounds[: len(hidden)]
    device = lo.device
    counter = itertools.count()
    queue: list[tuple[float, int, _Domain]] = []
    explored = 0
    undecided = 0
    held = 0  # bytes in the queue's domains
    C_all, d_all = padded_rows(conjunctions)

    def bound(ks: Tensor, splits, alphas=None, betas=None, known=root_bounds, unchanged=0):
        return beta_crown(net, lo, hi, C_all[ks], d_all[ks], splits, root_bounds=known,
                          unchanged=unchanged, alphas=alphas, betas=betas, steps=steps,
                          deadline=deadline)  # fmt: skip

    def settle(result: SplitBounds, ks: Tensor, splits: list[Tensor]):
        """Rule out, check, attack and queue the bounded subdomains; maybe an answer."""
        nonlocal undecided, held
        value = result.lower.max(dim=1).values
        open_ = (value <= 0).nonzero().flatten()
        if not len(open_):
            return None
        found = checker.check(result.candidates[open_])
        if found is not None:
            return "violated", found, f"β-CROWN candidate after {explored} subdomains"
        # The lowest bounds are the likeliest to hide a counterexample; each is attacked
        # towards its own conjunction.
        promising = open_[value[open_].argsort()[:attack_starts]]
        found = attack(result.candidates[promising], C_all[ks[promising]], d_all[ks[promising]])
        if found is not None:
            return "violated", found, f"attack on subdomains after {explored} subdomains"
        chosen = strongest_splits(net, lo, hi, C_all[ks[open_]], d_all[ks[open_]],
                                  result.select(open_), [s[open_] for s in splits],
                                  candidates=branch_candidates)  # fmt: skip
        units = dict(zip(open_.tolist(), _layer_units(chosen, hidden), strict=True))
        for i in open_.tolist():
            k = int(ks[i])
            own = [s[i] for s in splits]
            own_bounds = [(lb[i], ub[i]) for lb, ub in result.layer_bounds]
            if units[i] is None:
                leaf_value, point = exact[k]([s.cpu().numpy() for s in own], own_bounds)
                if leaf_value is None:
                    reason = "time out" if deadline.passed else "the LP solver failed"
                    return "unknown", None, f"{reason} on a leaf after {explored} subdomains"
                if leaf_value > 0:
                    continue
                found = None if point is None else attack(point[None], C_all[k][None],
                                                           d_all[k][None])  # fmt: skip
                if found is not None:
                    return "violated", found, f"LP point of a leaf after {explored} subdomains"
                undecided += 1  # exact LP at a tie with zero: numerically undecidable here
                continue
            domain = _Domain(
                k,
                [s.clone() for s in own],
                [a[i].to(torch.float32, copy=True) for a in result.alphas],
                [b[i].to(torch.float32, copy=True) for b in result.betas],
                [(lb.clone(), ub.clone()) for lb, ub in own_bounds],
                units[i],
            )
            held += domain.nbytes
            heapq.heappush(queue, (float(value[i]), next(counter), domain))
        return None

    if not hidden:
        # No ReLU: the network is affine and the LP over the box is exact.
        for k in range(len(conjunctions)):
            value, point = exact[k]([], [])
            if value is None:
                return "unknown", None, "the LP solver failed"
            if value > 0:
                continue
            found = None if point is None else attack(point[None], C_all[k][None], d_all[k][None])
            if found is not None:
                return "violated", found, "LP point"
            return "unknown", None, "the LP optimum ties with the unsafe boundary"
        return "holds", None, "the exact LP rules every unsafe region out"
    # Every conjunction's root, bounded together.
    ks = torch.arange(len(conjunctions), device=device)
    root = [torch.zeros(len(ks), w, dtype=torch.int8, device=device) for w in hidden]
    result = bound(ks, root)
    explored = len(ks)
    answer = settle(result, ks, root)
    if answer is not None:
        return answer
    while queue:
        if deadline.passed:
            return "unknown", None, f"time out with {len(queue)} subdomains open"
        if held > max_memory:
            gib = max_memory / 2**30
            return "unknown", None, f"the {len(queue)} open subdomains hold over {gib:g} GiB"
        parents = [heapq.heappop(queue)[2] for _ in range(min(batch, len(queue)))]
        held -= sum(parent.nbytes for parent in parents)
        ks, splits, alphas, betas, known = _children(parents, len(hidden))
        ks = ks.to(device)
        # Up to the layer of a child's new split its relaxation is its parent's, where CROWN
        # would find the same bounds again: only the layers above it are bounded anew.
        above = torch.tensor([p.branch[0] + 1 for p in parents for _ in (1, -1)], device=device)
        result = bound(ks, splits, alphas, betas, known, above)
        explored += len(splits[0])
        answer = settle(result, ks, splits)
        if answer is not None:
            return answer
    if undecided:
        return "unknown", None, f"{undecided} subdomains tie with the unsafe boundary"
    return "holds", None, f"branch and bound (β-CROWN) closed {explored} subdomains"
