"""RobEn's typo graph and clusterings against independent, plainly written versions of the same.

Everything the modules under test compute is recomputed here from the definitions in RobEn
(Jones et al., arXiv 2005.01229, §4, and the reference code's ``get_all_edit_dist_one`` and
``agglom_clusters.py``), written the obvious way:

- the typo family B(w) by enumerating internal edits, and the QWERTY neighbours by hand;
- the ``shared`` and ``reaches`` relations by brute force over all pairs of words;
- AggClust as the reference does it: per connected component, dense one-hot memberships, the
  dense "dominates" matrix W (W[w, o] = 1 when a typo of w, or w itself, belongs to o), and after
  every merge a full rescan of all allowed pairs (clusters joined by a shared-typo edge) for the
  most negative ΔΦ, stopping when none is negative; Φ itself from the literal norms of one-hot
  vectors to their centroids.

The clusterings are compared on hand-made vocabularies (the reference's toy, worked out by hand
below, and seeded random ones with many collisions and tied frequencies) and, where the word
list and wordfreq are installed, on the 1,500 most frequent English words.
"""

from __future__ import annotations

import math
import string
from itertools import combinations

import numpy as np
import pytest
from scipy import sparse

from stalwart.errors import ConfigError
from stalwart.text.build import build_encoding
from stalwart.text.clustering import (
    agglomerative,
    check_gamma,
    connected_components,
    fidelity,
    numbered,
    objective,
    stability,
)
from stalwart.text.graph import TypoGraph, typo_graph
from stalwart.text.typos import KEYBOARD_NEIGHBOURS, TypoFamily
from stalwart.text.vocabulary import Vocabulary

LETTERS = string.ascii_lowercase
INTERNAL = TypoFamily.internal_edit()
KEYBOARD = TypoFamily.keyboard_typos()

# QWERTY neighbours written out by hand from a keyboard: left and right keys, and the keys of
# the rows above and below that touch (rows are staggered half a key to the right going down).
HAND_KEYBOARD = {
    "q": "aw", "w": "aeqs", "e": "drsw", "r": "deft", "t": "fgry", "y": "ghtu", "u": "hijy",
    "i": "jkou", "o": "iklp", "p": "lo",
    "a": "qswz", "s": "adewxz", "d": "cefrsx", "f": "cdgrtv", "g": "bfhtvy", "h": "bgjnuy",
    "j": "hikmnu", "k": "ijlmo", "l": "kop",
    "z": "asx", "x": "cdsz", "c": "dfvx", "v": "bcfg", "b": "ghnv", "n": "bhjm", "m": "jkn",
}  # fmt: skip

# RobEn's toy (agglom_clusters.py, ``toy=True``). In vocabulary order (most frequent first).
TOY_WORDS = ("stop", "step", "plain", "pin", "pun", "ham")
TOY_FREQUENCIES = (100, 50, 75, 15, 10, 5)

needs_words = pytest.mark.data("english_words", "wordfreq")


# --- the independent versions ---------------------------------------------------------------


def edits(word: str, keyboard: bool = False, min_length: int = 0) -> set[str]:
    """B(word), enumerated edit by edit; the first and last letters are never touched."""
    if len(word) < max(2, min_length):
        return {word}
    first, middle, last = word[0], word[1:-1], word[-1]
    out = {word}
    for i in range(len(middle) + 1):  # insert before middle[i] (or at the end of the middle)
        out |= {first + middle[:i] + c + middle[i:] + last for c in LETTERS}
    for i in range(len(middle)):
        out.add(first + middle[:i] + middle[i + 1 :] + last)
        letters = HAND_KEYBOARD[middle[i]] if keyboard else LETTERS
        out |= {first + middle[:i] + c + middle[i + 1 :] + last for c in letters}
    for i in range(len(middle) - 1):
        swapped = middle[:i] + middle[i + 1] + middle[i] + middle[i + 2 :]
        out.add(first + swapped + last)
    return out


def brute_relations(words, keyboard=False, min_length=0):
    """(shared, dominates) by brute force over all pairs: both dense n × n booleans.

    ``shared[u, v]``: u ≠ v and B(u) ∩ B(v) ≠ ∅. ``dominates[w, o]``: some t ∈ B(w) belongs to o,
    where t belongs to itself if it is a vocabulary word, else to the most frequent (lowest
    index) word whose family holds it. The diagonal of ``dominates`` is all ones (w ∈ B(w)).
    """
    families = [edits(w, keyboard, min_length) for w in words]
    index = {w: i for i, w in enumerate(words)}
    n = len(words)
    shared = np.zeros((n, n), dtype=bool)
    for u, v in combinations(range(n), 2):
        shared[u, v] = shared[v, u] = bool(families[u] & families[v])
    dominates = np.zeros((n, n), dtype=bool)
    for w in range(n):
        for t in families[w]:
            owner = index.get(t)
            if owner is None:
                owner = min(o for o in range(n) if t in families[o])
            dominates[w, owner] = True
    return shared, dominates


def fast_relations(words):
    """The same two relations (internal-edit family) through a typo -> words index.

    For the 1,500-word vocabulary, where all pairs would be slow; still independent of
    ``graph.py`` (no buckets, no sparse matrices).
    """
    index = {w: i for i, w in enumerate(words)}
    holders: dict[str, list[int]] = {}
    for i, w in enumerate(words):
        for t in edits(w):
            holders.setdefault(t, []).append(i)  # ascending: words are in frequency order
    n = len(words)
    shared = np.zeros((n, n), dtype=bool)
    dominates = np.eye(n, dtype=bool)
    for t, group in holders.items():
        owner = index.get(t, group[0])
        dominates[group, owner] = True
        if len(group) > 1:
            shared[np.ix_(group, group)] = True
    np.fill_diagonal(shared, False)
    return shared, dominates


def literal_objective(labels, dominates, rho, gamma):
    """Φ = γ·Φ_fid + (1−γ)·Φ_stab straight from the definitions (one-hot φ, norms, counts)."""
    n = len(labels)
    x = np.eye(n)
    fid = 0.0
    for cluster in np.unique(labels):
        members = labels == cluster
        mu = rho[members] @ x[members] / rho[members].sum()
        fid += rho[members] @ np.linalg.norm(x[members] - mu, axis=1)
    counts = [len({labels[o] for o in np.flatnonzero(dominates[w])}) for w in range(n)]
    return gamma * fid + (1 - gamma) * float(rho @ np.array(counts, dtype=np.float64))


def cluster_fidelity(rows, rho):
    """Each row's cluster's Φ_fid: Σ ρ(w)·‖e_w − μ‖ over its members, one-hot e_w, dense μ."""
    mass = rows @ rho
    mu = rows * rho / np.where(mass > 0, mass, 1.0)[:, None]
    square = (mu**2).sum(axis=1)[:, None]
    # ‖e_w − μ‖² = (1 − μ_w)² + Σ_{j≠w} μ_j²
    distance = np.sqrt(np.maximum(0.0, (1 - mu) ** 2 + square - mu**2))
    return (rows * rho * distance).sum(axis=1)


def dense_greedy(shared, dominates, rho, gamma, check_objective=False):
    """AggClust on one component the reference's way (module docstring).

    Args:
        shared, dominates: the component's dense relations (words in frequency order).
        rho: the component's normalised frequencies.
        gamma: fidelity weight.
        check_objective: recompute Φ from scratch after every merge and check that it fell by
            exactly the ΔΦ the rescan chose.

    Returns:
        (cluster slot of each word, the ΔΦ of each merge in order). A cluster lives in the slot
        of its lowest-index word; ties pick the pair of lowest slots, as the module claims.
    """
    n = len(rho)
    member = np.eye(n, dtype=bool)
    reached = dominates.T.copy()  # reached[c, w]: some typo of w (or w) is in cluster c
    allowed = shared.copy()
    deltas: list[float] = []
    labels = np.arange(n)
    before = literal_objective(labels, dominates, rho, gamma) if check_objective else 0.0
    while True:
        a, b = np.nonzero(np.triu(allowed, 1))
        if a.size == 0:
            break
        fid = cluster_fidelity(member.astype(float), rho)
        merged = (member[a] | member[b]).astype(float)
        both = (reached[a] & reached[b]).astype(float) @ rho
        change = gamma * (cluster_fidelity(merged, rho) - fid[a] - fid[b]) - (1 - gamma) * both
        best = change.min()
        if best >= 0:
            break
        # Exact ties are common (wordfreq's frequencies are rounded); the two implementations
        # sum in different orders, so "tied" means equal to within rounding.
        k = np.flatnonzero(change <= best + 1e-9 * abs(best))[0]  # row-major: lowest slots
        keep, gone = a[k], b[k]
        member[keep] |= member[gone]
        member[gone] = False
        reached[keep] |= reached[gone]
        reached[gone] = False
        allowed[keep] |= allowed[gone]
        allowed[:, keep] |= allowed[:, gone]
        allowed[gone] = allowed[:, gone] = False
        allowed[keep, keep] = False
        labels[member[keep]] = keep
        deltas.append(float(best))
        if check_objective:
            after = literal_objective(labels, dominates, rho, gamma)
            assert after < before
            assert after - before == pytest.approx(best, rel=1e-9, abs=1e-15)
            before = after
    return labels, deltas


def dense_agglomerative(shared, dominates, frequencies, gamma, check_objective=False):
    """``dense_greedy`` on every component of ``shared``; labels numbered by first word."""
    rho = np.asarray(frequencies, dtype=np.float64) / np.sum(frequencies)
    _, component = sparse.csgraph.connected_components(sparse.csr_matrix(shared), directed=False)
    labels = np.arange(len(rho))
    deltas: list[float] = []
    for c in np.unique(component):
        words = np.flatnonzero(component == c)
        if len(words) == 1:
            continue
        local, changes = dense_greedy(
            shared[np.ix_(words, words)],
            dominates[np.ix_(words, words)],
            rho[words],
            gamma,
            check_objective,
        )
        labels[words] = words[local]
        deltas += changes
    return canonical(labels), deltas


def canonical(labels) -> list[int]:
    """Labels renumbered 0, 1, ... in order of first appearance: equal iff same partition."""
    first: dict[int, int] = {}
    return [first.setdefault(int(label), len(first)) for label in labels]


def graph_of(words, frequencies, family=INTERNAL):
    vocabulary = Vocabulary.from_words(words, frequencies)
    return vocabulary, typo_graph(vocabulary, family)


def random_vocabulary(seed: int, size: int = 24):
    """Short words of one bucket (b…t) from few letters, so typos collide a lot; tied freqs."""
    rng = np.random.default_rng(seed)
    words: set[str] = set()
    while len(words) < size:
        middle = "".join(rng.choice(list("aeior"), size=rng.integers(1, 4)))
        words.add("b" + middle + "t")
    words_sorted = sorted(words)
    # Frequencies from a handful of values, as wordfreq's rounded ones: many exact ties.
    return words_sorted, rng.choice([1.0, 2.0, 3.0, 5.0, 8.0], size=size)


# --- typo families ---------------------------------------------------------------------------


def test_family_size_of_cat_by_hand():
    # 'cat': insertions at its 2 internal gaps, 26 letters each, but c·a·at and ca·a·t are the
    # same string 'caat', so 51; 1 deletion ('ct'); 25 substitutions of 'a'; no swap (one
    # internal letter); plus 'cat' itself: 78.
    b = INTERNAL.typos("cat")
    assert len(b) == 78 == 51 + 1 + 25 + 1
    assert {"cat", "caat", "ct", "cot", "cxat"} <= b and "act" not in b and "cats" not in b
    assert b == edits("cat")
    # Two letters: only insertions into the one gap ('aan' and 'ann' are different): 26 + 1.
    assert len(INTERNAL.typos("an")) == 27
    assert INTERNAL.typos("a") == {"a"}
    # Adjacent internal letters swap: 'form' -> 'from'; an edge letter never moves.
    assert "from" in INTERNAL.typos("form") and "ofrm" not in INTERNAL.typos("form")


def test_keyboard_neighbours_are_the_hand_written_qwerty_map_and_symmetric():
    assert {k: "".join(sorted(v)) for k, v in KEYBOARD_NEIGHBOURS.items()} == HAND_KEYBOARD
    for key, near in KEYBOARD_NEIGHBOURS.items():
        assert key not in near
        for other in near:
            assert key in KEYBOARD_NEIGHBOURS[other], (key, other)


def test_keyboard_family_size_by_hand():
    # 'word' (4 letters, so perturbable under the keyboard family's min_length=4): insertions
    # into 3 gaps × 26 = 78, less 'woord' and 'worrd' counted twice: 76; deletions 'wrd', 'wod';
    # substitutions o -> i k l p and r -> d e f t: 8; swap 'wrod'; itself: 88.
    b = KEYBOARD.typos("word")
    assert len(b) == 1 + 76 + 2 + 8 + 1 == 88
    assert {"wprd", "wotd", "wozrd", "wrod"} <= b  # insertions stay any letter
    assert "wxrd" not in b and "wzrd" not in b  # x and z are far from o
    assert b == edits("word", keyboard=True, min_length=4)


def test_min_length_and_max_words():
    assert KEYBOARD.typos("cat") == {"cat"} and not KEYBOARD.perturbable("cat")
    assert KEYBOARD.perturbable("word")
    five = TypoFamily(min_length=5)
    assert five.typos("word") == {"word"} and five.typos("words") == edits("words")
    # A short word is never perturbed but is still another word's typo: 'pain' -> 'pin'.
    vocabulary, graph = graph_of(["pain", "pin"], [2.0, 1.0], KEYBOARD)
    assert graph.shared[0, 1] == 1 and graph.reaches[0, 1] == 1 and graph.reaches[1, 0] == 0
    # max_words caps perturbed words per sentence; a word's family, and the graph, ignore it.
    assert KEYBOARD.max_words == 1 and INTERNAL.max_words is None
    budgeted = INTERNAL.budget(2)
    assert budgeted.max_words == 2 and budgeted.name == "internal_edit@2"
    assert budgeted.budget(None).name == "internal_edit" and budgeted.typos("cat") == edits("cat")
    words, frequencies = random_vocabulary(0)
    vocabulary = Vocabulary.from_words(words, frequencies)
    plain, capped = typo_graph(vocabulary, INTERNAL), typo_graph(vocabulary, budgeted)
    assert (plain.shared != capped.shared).nnz == 0 and (plain.reaches != capped.reaches).nnz == 0
    for bad in (0, -1):
        with pytest.raises(ConfigError, match="max_words must be >= 1"):
            TypoFamily(max_words=bad)
    with pytest.raises(ConfigError, match="min_length must be >= 0"):
        TypoFamily(min_length=-1)


@pytest.mark.parametrize("family", [INTERNAL, KEYBOARD], ids=["internal_edit", "keyboard"])
def test_every_typo_keeps_first_and_last_letter(family):
    words = ["the", "a", "an", "word", "typos", "mississippi", "eye", "aardvark", "zz"]
    for word in words:
        for typo in family.typos(word):
            assert TypoFamily.bucket(typo) == TypoFamily.bucket(word), (word, typo)
            assert abs(len(typo) - len(word)) <= 1
            assert typo == word or typo[1:-1] != word[1:-1]


# --- the typo graph --------------------------------------------------------------------------

SMALL = [
    *TOY_WORDS, "pain", "plan", "pan", "pen", "pint", "punt", "stoop", "steep", "strop",
    "hem", "him", "hum", "harm", "cat", "cot", "coat", "cost", "cast", "chat", "bat", "boat",
]  # fmt: skip


@pytest.mark.parametrize(
    "family, keyboard, min_length",
    [(INTERNAL, False, 0), (KEYBOARD, True, 4)],
    ids=["internal_edit", "keyboard"],
)
def test_shared_and_reaches_match_brute_force(family, keyboard, min_length):
    rng = np.random.default_rng(1)
    words = list(dict.fromkeys(SMALL + random_vocabulary(2, size=30)[0]))
    frequencies = rng.choice([1.0, 2.0, 4.0, 7.0], size=len(words))
    vocabulary, graph = graph_of(words, frequencies, family)
    for word in vocabulary.words:
        assert family.typos(word) == edits(word, keyboard, min_length)
    shared, dominates = brute_relations(vocabulary.words, keyboard, min_length)
    assert (graph.shared.toarray() == shared).all()
    reaches = dominates & ~np.eye(len(words), dtype=bool)
    assert (graph.reaches.toarray() == reaches).all()
    assert graph.shared.nnz > 40 and graph.reaches.nnz > 20  # the test has teeth
    # Both relations stay inside a bucket (first and last letter), and reaches ⊆ shared.
    rows, cols = graph.shared.nonzero()
    for u, v in zip(rows, cols, strict=True):
        assert TypoFamily.bucket(vocabulary.words[u]) == TypoFamily.bucket(vocabulary.words[v])
    assert not (reaches & ~shared).any()


def test_toy_graph_by_hand():
    vocabulary, graph = graph_of(TOY_WORDS, TOY_FREQUENCIES)
    assert vocabulary.words == ("stop", "plain", "step", "pin", "pun", "ham")
    edges = {
        tuple(sorted(vocabulary.words[i] for i in e))
        for e in zip(*graph.shared.nonzero(), strict=False)
    }
    # step <-> stop (each is a substitution of the other), pin <-> pun (likewise), plain and
    # pin share 'plin' and 'pain'; plain and pun share nothing; ham is alone.
    assert edges == {("step", "stop"), ("pin", "pun"), ("pin", "plain")}
    reach = {
        (vocabulary.words[i], vocabulary.words[j])
        for i, j in zip(*graph.reaches.nonzero(), strict=False)
    }
    # A shared typo belongs to the more frequent word ('plin' to plain, 'pan' to pin), a
    # vocabulary word to itself (the 'step' typo of stop to step): plain reaches nobody.
    assert reach == {("step", "stop"), ("stop", "step"), ("pin", "pun"), ("pun", "pin"),
                     ("pin", "plain")}  # fmt: skip
    assert graph.components().tolist() == [0, 1, 0, 1, 1, 2]


# --- the clusterings -------------------------------------------------------------------------


def test_toy_clusters_by_hand():
    # Two singletons of ρa, ρb merged: Φ_fid = √2·2ρaρb/(ρa+ρb) (one-hot), and Φ_stab falls by
    # ρ of the words reaching both. In units of 1/255:
    #   stop+step:  ΔΦ = 0.3·(√2·2·100·50/150) − 0.7·150   ≈ 28.3 − 105.0 < 0: merge
    #   pin+pun:    ΔΦ = 0.3·(√2·2·15·10/25)   − 0.7·25    ≈ 5.09 − 17.5  < 0: merge
    #   plain+pin:  ΔΦ = 0.3·(√2·2·75·15/90)   − 0.7·15    ≈ 10.61 − 10.5 > 0: no
    #   plain+{pin,pun} afterwards: Φ_fid 52.0 − 16.97 for only pin reaching both:
    #               ΔΦ ≈ 0.3·35.03 − 0.7·15 = 10.508 − 10.5 > 0: no
    # so γ = 0.3 gives {stop, step} {plain} {pin, pun} {ham}.
    vocabulary, graph = graph_of(TOY_WORDS, TOY_FREQUENCIES)
    result = agglomerative(graph, vocabulary.frequencies, 0.3)
    clusters = [{w for w, c in zip(vocabulary.words, result.labels, strict=True) if c == k}
                for k in range(result.labels.max() + 1)]  # fmt: skip
    assert clusters == [{"stop", "step"}, {"plain"}, {"pin", "pun"}, {"ham"}]
    root2 = math.sqrt(2)
    expected = [0.3 * root2 * 2 * 100 * 50 / 150 - 0.7 * 150,
                0.3 * root2 * 2 * 15 * 10 / 25 - 0.7 * 25]  # fmt: skip
    assert result.changes == pytest.approx([e / 255 for e in expected], rel=1e-12)
    # γ = 0 cares only for stability: the components. γ = 0.7: no merge pays for itself.
    assert agglomerative(graph, vocabulary.frequencies, 0).labels.tolist() == [0, 1, 0, 1, 1, 2]
    assert agglomerative(graph, vocabulary.frequencies, 0.7).labels.tolist() == list(range(6))
    shared, dominates = brute_relations(vocabulary.words)
    for gamma in (0.0, 0.3, 0.5, 0.7):
        dense, _ = dense_agglomerative(shared, dominates, vocabulary.frequencies, gamma, True)
        assert canonical(agglomerative(graph, vocabulary.frequencies, gamma).labels) == dense


def check_against_dense(vocabulary, graph, shared, dominates, gamma, check_objective):
    """Our AggClust against ``dense_agglomerative``: partition, ΔΦs and the objective."""
    rho = vocabulary.frequencies / vocabulary.frequencies.sum()
    ours = agglomerative(graph, vocabulary.frequencies, gamma)
    dense, dense_changes = dense_agglomerative(
        shared, dominates, vocabulary.frequencies, gamma, check_objective
    )
    assert canonical(ours.labels) == dense
    assert ours.labels.tolist() == numbered(ours.labels).tolist()
    changes = np.array(ours.changes)
    assert (changes < 0).all()
    # The same merges, perhaps in another order across components: the same multiset of ΔΦ.
    assert np.sort(changes) == pytest.approx(np.sort(dense_changes), rel=1e-9, abs=1e-15)
    # Φ from scratch at the end is Φ of singletons plus every ΔΦ (so each ΔΦ was the true one
    # in sum, and Φ fell at every merge as each is negative); and ours agrees with the literal.
    start = literal_objective(np.arange(len(rho)), dominates, rho, gamma)
    end = literal_objective(ours.labels, dominates, rho, gamma)
    assert objective(ours.labels, graph, rho, gamma) == pytest.approx(end, rel=1e-12)
    assert end - start == pytest.approx(changes.sum(), rel=1e-9, abs=1e-15)
    return ours


@pytest.mark.parametrize("seed", range(12))
def test_agglomerative_equals_dense_greedy_on_random_vocabularies(seed):
    words, frequencies = random_vocabulary(seed)
    vocabulary, graph = graph_of(words, frequencies)
    shared, dominates = brute_relations(vocabulary.words)
    merged = 0
    for gamma in (0.1, 0.3, 0.5):
        ours = check_against_dense(vocabulary, graph, shared, dominates, gamma, True)
        merged += len(ours.changes)
    assert merged > 10  # the vocabularies do give merges to compare


def test_tied_merges_go_to_the_lower_word_indices():
    # bet, brat (ρ 2/5 each) and baat (1/5), in that vocabulary order. baat shares 'bat' with
    # bet (its owner) and is one substitution from brat, whose typo 'baat' is baat itself:
    # T(bet) = {bet, brat, baat}, T(brat) = T(baat) = {brat, baat}. Joining baat to bet or to
    # brat costs the same Φ_fid (√2·2·(2/5)(1/5)/(3/5)) and saves the same ρ(brat)+ρ(baat):
    #   ΔΦ = 0.6·0.3771 − 0.4·3/5 = −0.0137 for (bet, baat) and for (brat, baat),
    #   ΔΦ = 0.6·0.5657 − 0.24 > 0 for (bet, brat);
    # the tie goes to (bet, baat), the lower indices. Then brat joining {bet, baat}:
    #   ΔΦ = 0.6·(0.7947 − 0.3771) − 0.24 = +0.0106 > 0, so it stays alone.
    vocabulary, graph = graph_of(["baat", "bet", "brat"], [1.0, 2.0, 2.0])
    assert vocabulary.words == ("bet", "brat", "baat")
    result = agglomerative(graph, vocabulary.frequencies, 0.6)
    assert result.labels.tolist() == [0, 1, 0]
    assert result.changes == pytest.approx([0.6 * math.sqrt(2) * 2 * 2 / 15 - 0.24], rel=1e-12)
    shared, dominates = brute_relations(vocabulary.words)
    for gamma in (0.3, 0.5, 0.6):
        check_against_dense(vocabulary, graph, shared, dominates, gamma, True)


def test_gamma_one_makes_no_merge_and_gamma_zero_gives_the_components():
    words, frequencies = random_vocabulary(3)
    vocabulary, graph = graph_of(words, frequencies)
    one = agglomerative(graph, vocabulary.frequencies, 1)
    assert one.labels.tolist() == list(range(len(words))) and one.changes == []
    zero = agglomerative(graph, vocabulary.frequencies, 0.0)
    assert zero.labels.tolist() == connected_components(graph).tolist()


@pytest.mark.parametrize("gamma", [-0.1, 1.0001, float("nan"), float("inf"), "0.3", None, True])
def test_gamma_outside_the_unit_interval_is_a_config_error(gamma):
    vocabulary, graph = graph_of(TOY_WORDS, TOY_FREQUENCIES)
    with pytest.raises(ConfigError, match=r"gamma must be a number in \[0, 1\]"):
        check_gamma(gamma)
    with pytest.raises(ConfigError, match=r"gamma must be a number in \[0, 1\]"):
        agglomerative(graph, vocabulary.frequencies, gamma)
    with pytest.raises(ConfigError, match=r"gamma must be a number in \[0, 1\]"):
        build_encoding(vocabulary, gamma=gamma)
    assert check_gamma(0) == 0.0 and check_gamma(1) == 1.0 and check_gamma(0.3) == 0.3


def test_connected_components_are_perfectly_stable():
    # Frequencies that sum to exactly 1 in floating point: Φ_stab is exactly 1 when every word
    # reaches only its own cluster, and above 1 as soon as one word reaches another cluster.
    words = ["stop", "step", "plain", "pin", "pun", "ham", "bat", "bet"]
    frequencies = np.array([1 / 4, 1 / 8, 1 / 4, 1 / 16, 1 / 16, 1 / 8, 1 / 16, 1 / 16])
    assert frequencies.sum() == 1.0
    vocabulary, graph = graph_of(words, frequencies)
    rho = vocabulary.frequencies
    labels = connected_components(graph)
    assert stability(labels, graph, rho) == 1.0
    singletons = np.arange(len(words))
    assert stability(singletons, graph, rho) > 1.0
    _, dominates = brute_relations(vocabulary.words)
    counts = [len(set(labels[dominates[w]])) for w in range(len(words))]
    assert counts == [1] * len(words)
    assert fidelity(singletons, rho) == 0.0
    encoding = build_encoding(vocabulary, method="connected_components")
    assert encoding.stats["stability"] == 1.0 and encoding.clusters.tolist() == labels.tolist()
    # The encoding's reachable sets agree: each vocabulary word reaches one representative.
    assert all(len(encoding.reachable(w)) == 1 for w in words)


def test_stability_counts_what_encodings_can_reach():
    words = [*TOY_WORDS, "bat", "bet", "bit", "boat"]
    vocabulary, graph = graph_of(words, [*TOY_FREQUENCIES, 3, 3, 2, 1])
    rho = vocabulary.frequencies / vocabulary.frequencies.sum()
    encoding = build_encoding(vocabulary, gamma=0.3)
    reach = encoding.reachable_many(vocabulary.words)
    # pin's typo 'plin' belongs to plain, left out of pin's cluster {pin, pun} (the hand-worked
    # toy above): pin is the unstable word.
    assert reach["pin"] == {"pin", "plain"} and reach["pun"] == {"pin"}
    sizes = np.array([len(reach[w]) for w in vocabulary.words], dtype=np.float64)
    assert stability(encoding.clusters, graph, rho) == pytest.approx(rho @ sizes, rel=1e-12)
    assert encoding.stats["stability"] == pytest.approx(rho @ sizes, rel=1e-12)


# --- the same on real English words -----------------------------------------------------------


@pytest.fixture(scope="module")
def english():
    from stalwart.data.sources.english_words import english_vocabulary

    words, frequencies = english_vocabulary(1500)
    vocabulary, graph = graph_of(words, frequencies)
    assert vocabulary.words == tuple(words)  # already most frequent first
    shared, dominates = fast_relations(vocabulary.words)
    return vocabulary, graph, shared, dominates


@needs_words
def test_english_graph_matches_the_independent_relations(english):
    vocabulary, graph, shared, dominates = english
    assert (graph.shared.toarray() == shared).all()
    assert (graph.reaches.toarray() == (dominates & ~np.eye(len(vocabulary), dtype=bool))).all()
    # On the 300 most frequent words, the index-based relations agree with all-pairs brute force.
    brute_shared, brute_dominates = brute_relations(vocabulary.words[:300])
    assert (shared[:300, :300] == brute_shared).all()
    assert (dominates[:300, :300] == brute_dominates).all()


@needs_words
@pytest.mark.parametrize("gamma", [0.1, 0.3, 0.6])
def test_english_agglomerative_equals_dense_greedy(english, gamma):
    vocabulary, graph, shared, dominates = english
    ours = check_against_dense(vocabulary, graph, shared, dominates, gamma, gamma == 0.3)
    assert len(ours.changes) > 100


@needs_words
def test_english_connected_components_stability_is_one(english):
    vocabulary, graph, _, dominates = english
    rho = vocabulary.frequencies / vocabulary.frequencies.sum()
    labels = connected_components(graph)
    assert all(len(set(labels[dominates[w]])) == 1 for w in range(len(rho)))
    assert stability(labels, graph, rho) == pytest.approx(1.0, abs=1e-12)
    assert stability(np.arange(len(rho)), graph, rho) > 1.0


def test_typo_count_is_the_number_of_distinct_typos():
    vocabulary, graph = graph_of(SMALL, np.arange(len(SMALL), 0, -1.0))
    assert isinstance(graph, TypoGraph)
    assert graph.n_typos == len(set().union(*(edits(w) for w in SMALL)))
