"""Clusterings of a vocabulary for RobEn: connected components, and agglomerative refinement.

RobEn (Jones et al., arXiv 2005.01229, §4) encodes each word by its cluster. Two objectives pull
against each other, both weighted by word frequency ρ (here normalised to sum to one):

- **stability** Φ_stab = Σ_w ρ(w)·|{cluster(o) : o ∈ O(w) ∪ {w}}|, the clusters an adversary
  can move w into (``graph.TypoGraph.reaches``): 1 for every word is perfectly stable;
- **fidelity** Φ_fid = Σ_w ρ(w)·‖φ(w) − μ_C(w)‖ with one-hot φ (as the reference code) and
  μ_C the frequency-weighted centroid of w's cluster: 0 when every word is alone.

ConnComp takes the components of the shared-typo graph: perfectly stable, poor fidelity.
AggClust starts inside each component from singletons and greedily merges the pair of clusters,
joined by a shared-typo edge, that lowers Φ = γ·Φ_fid + (1−γ)·Φ_stab the most, until no merge
lowers it. The reference rescans every allowed pair over dense n×n matrices after each merge.
Here the change of a merge is computed incrementally, in time linear in the two clusters:

- Φ_stab falls by ρ of the words that reach both clusters (T(A) ∩ T(B), T(C) the words that
  reach C), and no other pair's change moves when A and B merge;
- a cluster's Φ_fid depends only on its members: with R = Σρ and S = Σρ² over the cluster,
  ‖φ(w) − μ‖ = sqrt(1 − 2ρ(w)/R + S/R²).

Candidate merges wait in a heap; an entry whose clusters changed since it was pushed is
skipped, and a merge pushes the merged cluster's pairs anew. The greedy is exact: it makes the
same choice as a full rescan (ties broken by the smaller word indices).
"""

from __future__ import annotations

import heapq
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from stalwart.errors import ConfigError
from stalwart.text.graph import TypoGraph


def check_gamma(gamma: float) -> float:
    """``gamma`` if it is a number in [0, 1], else a ``ConfigError`` saying what it weighs."""
    if (
        isinstance(gamma, bool | np.bool_)
        or not isinstance(gamma, numbers.Real)
        or not 0 <= gamma <= 1
    ):
        raise ConfigError(
            f"gamma must be a number in [0, 1] (the weight of fidelity against stability, "
            f"the paper uses 0.3); got {gamma!r}"
        )
    return float(gamma)


def numbered(roots: np.ndarray) -> np.ndarray:
    """Cluster labels 0..k-1 numbered in the order of each cluster's most frequent word."""
    _, first, labels = np.unique(roots, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[labels]


def connected_components(graph: TypoGraph) -> np.ndarray:
    """ConnComp: one cluster per connected component of the shared-typo graph."""
    return numbered(graph.components())


def stability(labels: np.ndarray, graph: TypoGraph, rho: np.ndarray) -> float:
    """Φ_stab: Σ_w ρ(w)·(number of clusters among O(w) ∪ {w})."""
    reaches = graph.reaches.tocoo()
    rows = np.concatenate([reaches.row, np.arange(len(labels))])
    cols = labels[np.concatenate([reaches.col, np.arange(len(labels))])]
    pairs = np.unique(np.stack([rows, cols], axis=1), axis=0)
    return float(np.bincount(pairs[:, 0], minlength=len(labels)) @ rho)


def fidelity(labels: np.ndarray, rho: np.ndarray) -> float:
    """Φ_fid: Σ_w ρ(w)·‖φ(w) − μ_C(w)‖ with one-hot φ and frequency-weighted centroids."""
    mass = np.bincount(labels, weights=rho)
    squares = np.bincount(labels, weights=rho**2)
    r, s = mass[labels], squares[labels]
    return float(rho @ np.sqrt(np.maximum(0.0, 1 - 2 * rho / r + s / r**2)))


def objective(labels: np.ndarray, graph: TypoGraph, rho: np.ndarray, gamma: float) -> float:
    """Φ = γ·Φ_fid + (1−γ)·Φ_stab, computed from scratch."""
    return gamma * fidelity(labels, rho) + (1 - gamma) * stability(labels, graph, rho)


def normalised(frequencies: np.ndarray) -> np.ndarray:
    """Frequencies scaled to sum to one (ρ in the objective)."""
    frequencies = np.asarray(frequencies, dtype=np.float64)
    return frequencies / frequencies.sum()


@dataclass
class Agglomeration:
    """What ``agglomerative`` returns: labels, and each merge's change of Φ in order."""

    labels: np.ndarray
    changes: list[float] = field(default_factory=list)


def agglomerative(
    graph: TypoGraph,
    frequencies: np.ndarray,
    gamma: float,
    progress: Callable[[int], None] | None = None,
) -> Agglomeration:
    """AggClust: greedy merges inside each component while Φ falls (module docstring).

    Args:
        graph: the vocabulary's typo graph.
        frequencies: word frequencies, in vocabulary order.
        gamma: weight of fidelity in [0, 1]; the paper's main encoding uses 0.3.
        progress: called with the number of words done after each component.

    Returns:
        The cluster of every word (numbered by most frequent member) and each merge's ΔΦ,
        every one negative.
    """
    gamma = check_gamma(gamma)
    rho = normalised(frequencies)
    components = graph.components()
    order = np.argsort(components, kind="stable")
    bounds = np.flatnonzero(np.diff(components[order])) + 1
    roots = np.arange(len(rho))
    merger = _Merger(graph, rho, gamma)
    changes: list[float] = []
    for members in np.split(order, bounds):
        if len(members) > 1:
            changes += merger.run(members.tolist(), roots)
        if progress is not None:
            progress(len(members))
    return Agglomeration(numbered(roots), changes)


class _Merger:
    """The greedy of ``agglomerative`` on one component at a time (state keyed by root word)."""

    def __init__(self, graph: TypoGraph, rho: np.ndarray, gamma: float) -> None:
        self.shared = graph.shared
        self.reached_by = graph.reaches.tocsc()  # column o: the words whose typos reach o
        self.rho = rho
        self.gamma = gamma

    def run(self, words: list[int], roots: np.ndarray) -> list[float]:
        rho, gamma = self.rho, self.gamma
        members = {w: np.array([w]) for w in words}
        mass = {w: rho[w] for w in words}
        squares = {w: rho[w] ** 2 for w in words}
        fid = dict.fromkeys(words, 0.0)
        version = dict.fromkeys(words, 0)
        indptr, indices = self.reached_by.indptr, self.reached_by.indices
        reached = {w: {w, *indices[indptr[w] : indptr[w + 1]].tolist()} for w in words}
        shared = self.shared
        neighbours = {
            w: set(shared.indices[shared.indptr[w] : shared.indptr[w + 1]].tolist()) for w in words
        }
        heap: list[tuple[float, int, int, int, int]] = []

        def push_all(a: int, others: list[int]) -> None:
            """Push every merge of ``a`` with one of ``others`` that lowers Φ."""
            if not others:
                return
            merged = self._merged_fidelity(
                members[a], mass[a], squares[a],
                [members[x] for x in others],
                np.array([mass[x] for x in others]),
                np.array([squares[x] for x in others]),
            )  # fmt: skip
            for x, after in zip(others, merged.tolist(), strict=True):
                small, large = sorted((reached[a], reached[x]), key=len)
                both = sum(rho[w] for w in small if w in large)  # T(a) ∩ T(x): reach both
                delta = gamma * (after - fid[a] - fid[x]) - (1 - gamma) * both
                if delta < 0:
                    lo, hi = min(a, x), max(a, x)
                    heapq.heappush(heap, (delta, lo, hi, version[lo], version[hi]))

        for a in words:
            push_all(a, [b for b in neighbours[a] if b > a])
        changes: list[float] = []
        while heap:
            delta, a, b, va, vb = heapq.heappop(heap)
            if version.get(a) != va or version.get(b) != vb:
                continue  # one of the two merged since this entry was pushed
            del fid[b]
            members[a] = np.concatenate([members[a], members.pop(b)])
            mass[a] += mass.pop(b)
            squares[a] += squares.pop(b)
            fid[a] = float(_fidelity_of(rho[members[a]], mass[a], squares[a]))
            reached[a] |= reached.pop(b)
            del version[b]
            version[a] += 1
            for x in neighbours.pop(b):
                if x != a:
                    neighbours[x].discard(b)
                    neighbours[x].add(a)
                    neighbours[a].add(x)
            neighbours[a].discard(b)
            changes.append(delta)
            push_all(a, sorted(neighbours[a]))
        for root, group in members.items():
            roots[group] = root
        return changes

    def _merged_fidelity(
        self,
        a: np.ndarray,
        mass_a: float,
        squares_a: float,
        others: list[np.ndarray],
        mass_x: np.ndarray,
        squares_x: np.ndarray,
    ) -> np.ndarray:
        """Φ_fid of cluster ``a`` merged with each of ``others``, in one vectorised pass."""
        r, s = mass_a + mass_x, squares_a + squares_x
        rho_a = self.rho[a][:, None]
        # Chunk the |a| × |others| table so that a large cluster never needs a large one.
        step = max(1, 4_000_000 // len(a))
        own = np.concatenate(
            [
                _column_fidelity(rho_a, r[i : i + step], s[i : i + step])
                for i in range(0, len(r), step)
            ]
        )
        sizes = np.array([len(x) for x in others])
        which = np.repeat(np.arange(len(others)), sizes)
        rho_x = self.rho[np.concatenate(others)]
        theirs = rho_x * np.sqrt(
            np.maximum(0.0, 1 - 2 * rho_x / r[which] + s[which] / r[which] ** 2)
        )
        return own + np.bincount(which, weights=theirs, minlength=len(others))


def _column_fidelity(rho: np.ndarray, mass: np.ndarray, squares: np.ndarray) -> np.ndarray:
    """Σ over the rows of ``rho`` (a column) of each member's term, for each merged cluster."""
    return (rho * np.sqrt(np.maximum(0.0, 1 - 2 * rho / mass + squares / mass**2))).sum(axis=0)


def _fidelity_of(rho: np.ndarray, mass: float, squares: float) -> float:
    """One cluster's Φ_fid from its members' ρ, their sum and their sum of squares."""
    return float(rho @ np.sqrt(np.maximum(0.0, 1 - 2 * rho / mass + squares / mass**2)))
