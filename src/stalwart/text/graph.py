"""The typo graph of a vocabulary: which words share a typo, and whose typos each word reaches.

RobEn (Jones et al., arXiv 2005.01229, §4): a typo t belongs to the most frequent vocabulary word
w with t ∈ B(w), and a vocabulary word always to itself. Two relations follow, both sparse:

- ``shared[u, v]``: u and v share a typo (B(u) ∩ B(v) ≠ ∅). Its connected components are the
  ConnComp encoding, and only clusters joined by such an edge may merge in AggClust.
- ``reaches[w, o]``: some typo of w belongs to o ≠ w, i.e. o ∈ O(w) = {owner(t) : t ∈ B(w)}.
  The clusters an adversary can move w into are those of O(w) ∪ {w}; AggClust's stability term
  counts them.

Every family keeps first and last letters, so the typos are generated one bucket of words
(same first and last letter) at a time and the typo → owner table never holds more than one
bucket: memory stays bounded however large the vocabulary.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import sparse

from stalwart.text.typos import TypoFamily
from stalwart.text.vocabulary import Vocabulary


@dataclass(frozen=True)
class TypoGraph:
    """The two typo relations of a vocabulary (see the module docstring), as CSR matrices."""

    shared: sparse.csr_matrix
    reaches: sparse.csr_matrix
    n_typos: int

    def components(self) -> np.ndarray:
        """The connected component of every word in the shared-typo graph."""
        _, labels = sparse.csgraph.connected_components(self.shared, directed=False)
        return labels


def buckets(vocabulary: Vocabulary) -> dict[tuple[str, str], list[int]]:
    """Word indices by (first, last) letter, each list most frequent first."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, word in enumerate(vocabulary.words):
        groups[TypoFamily.bucket(word)].append(i)
    return dict(sorted(groups.items()))


def bucket_owners(
    vocabulary: Vocabulary, family: TypoFamily, members: Iterable[int]
) -> dict[str, int]:
    """Typo -> owning word index for every typo of the bucket ``members`` (most frequent first)."""
    owners, _ = _scan_bucket(vocabulary, family, list(members))
    return owners


def _scan_bucket(
    vocabulary: Vocabulary, family: TypoFamily, members: list[int]
) -> tuple[dict[str, int], dict[str, list[int]]]:
    """The bucket's typo -> owner table, and for each typo shared by several words, all of them."""
    words = vocabulary.words
    owners = {words[i]: i for i in members}  # a vocabulary word always belongs to itself
    sharers: dict[str, list[int]] = {}
    for i in members:  # most frequent first, so the first to claim a typo is its owner
        for typo in family.typos_uncached(words[i]):
            owner = owners.setdefault(typo, i)
            if owner != i:
                sharers.setdefault(typo, [owner]).append(i)
    return owners, sharers


def typo_graph(
    vocabulary: Vocabulary,
    family: TypoFamily,
    progress: Callable[[int], None] | None = None,
) -> TypoGraph:
    """The shared-typo and reaches relations of ``vocabulary`` under ``family``.

    Args:
        vocabulary: the words, most frequent first.
        family: the typos allowed.
        progress: called with the number of words done after each bucket.
    """
    n = len(vocabulary)
    shared_pairs: list[np.ndarray] = []
    reach_pairs: list[np.ndarray] = []
    n_typos = 0
    for members in buckets(vocabulary).values():
        owners, sharers = _scan_bucket(vocabulary, family, members)
        n_typos += len(owners)
        shared_pairs.append(_pairs(p for group in sharers.values() for p in combinations(group, 2)))
        reach_pairs.append(_pairs((i, group[0]) for group in sharers.values() for i in group[1:]))
        if progress is not None:
            progress(len(members))
    pairs = np.concatenate(shared_pairs)
    return TypoGraph(
        shared=_relation(np.concatenate([pairs, pairs[:, ::-1]]), n),
        reaches=_relation(np.concatenate(reach_pairs), n),
        n_typos=n_typos,
    )


def _pairs(pairs: Iterator[tuple[int, int]]) -> np.ndarray:
    flat = np.fromiter((k for pair in pairs for k in pair), dtype=np.int64)
    return flat.reshape(-1, 2)


def _relation(pairs: np.ndarray, n: int) -> sparse.csr_matrix:
    """A 0/1 CSR matrix with a one at each (row, column) pair (repeats counted once)."""
    matrix = sparse.csr_matrix(
        (np.ones(len(pairs), dtype=np.int32), (pairs[:, 0], pairs[:, 1])), shape=(n, n)
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1
    return matrix
