"""Build a RobEn encoding: typo graph, then connected components or agglomerative clusters."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from stalwart.errors import ConfigError, closest
from stalwart.text.clustering import (
    agglomerative,
    check_gamma,
    connected_components,
    fidelity,
    normalised,
    stability,
)
from stalwart.text.encoding import Encoding
from stalwart.text.graph import typo_graph
from stalwart.text.typos import TypoFamily
from stalwart.text.vocabulary import Vocabulary

Method = Literal["agglomerative", "connected_components"]
METHODS = ("agglomerative", "connected_components")


def build_encoding(
    vocabulary: Vocabulary | Sequence[str],
    frequencies: Sequence[float] | np.ndarray | None = None,
    *,
    family: TypoFamily | None = None,
    method: Method = "agglomerative",
    gamma: float = 0.3,
    progress: Callable[[str, int, int], None] | None = None,
) -> Encoding:
    """The RobEn encoding of a vocabulary (Jones et al., arXiv 2005.01229, §4).

    Args:
        vocabulary: a ``Vocabulary``, or words given with ``frequencies``.
        frequencies: each word's frequency (only with a list of words).
        family: the typos to be robust to; default the paper's internal edits.
        method: ``"connected_components"`` (ConnComp: perfectly stable) or
            ``"agglomerative"`` (AggClust: components split where fidelity gains more).
        gamma: AggClust's weight of fidelity against stability, in [0, 1].
        progress: called as ``progress(stage, words_done, words_total)`` while building.

    Raises:
        ConfigError: an unknown method or a gamma outside [0, 1].
        DataError: a bad vocabulary (empty, duplicates, non-ASCII words, bad frequencies).
    """
    if method not in METHODS:
        raise ConfigError(
            f"unknown encoding method {method!r}{closest(method, METHODS)}; choose from "
            f"{list(METHODS)}"
        )
    gamma = check_gamma(gamma)
    if not isinstance(vocabulary, Vocabulary):
        if frequencies is None:
            raise ConfigError("give the words' frequencies with a list of words")
        vocabulary = Vocabulary.from_words(vocabulary, frequencies)
    family = family or TypoFamily.internal_edit()
    n = len(vocabulary)

    def tracker(stage: str) -> Callable[[int], None] | None:
        if progress is None:
            return None
        done = [0]

        def advance(words: int) -> None:
            done[0] += words
            progress(stage, done[0], n)

        return advance

    start = time.perf_counter()
    graph = typo_graph(vocabulary, family, tracker("typo graph"))
    components = graph.components()
    if method == "connected_components":
        labels = connected_components(graph)
        merges = None
    else:
        result = agglomerative(graph, vocabulary.frequencies, gamma, tracker("clusters"))
        labels, merges = result.labels, len(result.changes)
    rho = normalised(vocabulary.frequencies)
    stats = {
        "words": n,
        "clusters": int(labels.max()) + 1,
        "components": int(components.max()) + 1,
        "typos": graph.n_typos,
        "shared_typo_edges": graph.shared.nnz // 2,
        "merges": merges,
        "stability": stability(labels, graph, rho),
        "fidelity": fidelity(labels, rho),
        "seconds": round(time.perf_counter() - start, 2),
    }
    return Encoding(
        vocabulary,
        labels,
        family,
        method=method,
        gamma=gamma if method == "agglomerative" else None,
        stats=stats,
    )
