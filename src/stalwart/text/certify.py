"""Exact robust accuracy over a whole typo family, for models that read only encodings.

RobEn (Jones et al., arXiv 2005.01229, §3 and the reference code's ``get_possible_recoveries``):
a model that sees only α(x) can be fooled by a typo of x only through an encoding some typo
reaches. Each token's reachable encodings are few (``Encoding.reachable_many``), so the
sentence's are their product: the example is robust iff the model is right on every one.

- **Enumeration** runs the model on every reachable encoding, up to ``cap`` of them (the paper's
  10,000); an example with more counts as not robust and is reported in ``n_capped``.
- **Additive models** (the bag of tokens: logits = bias + Σ per-token contributions) are
  certified exactly without enumerating: for each wrong class the worst margin is the sum of
  each position's worst choice, so no cap applies.

With a word budget (``TypoFamily.max_words`` = b) the adversary changes at most b positions:
enumeration walks the subsets of at most b positions; the additive bound takes the b largest
per-position margin drops.

For the identity encoding (a model on raw tokens) the reachable sets are the typos themselves,
hundreds per word, so almost every example is capped: such models are attacked
(``stalwart.text.attack``), not certified.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations, product

import numpy as np
import torch

from stalwart.data.text import TextSplit
from stalwart.text.encoding import TokenEncoder
from stalwart.text.tokens import tokenize

SEPARATOR = "[SEP]"
DEFAULT_CAP = 10_000


def split_tokens(split: TextSplit) -> list[list[str]]:
    """The tokens of each example; a pair's two texts joined by a ``[SEP]`` token."""
    if split.texts_b is None:
        return [tokenize(text) for text in split.texts]
    return [
        [*tokenize(a), SEPARATOR, *tokenize(b)]
        for a, b in zip(split.texts, split.texts_b, strict=True)
    ]


def predicted_classes(classifier: object, split: TextSplit) -> np.ndarray:
    """Each example's predicted class, read through the classifier's own encoder."""
    encoder = classifier.encoder  # type: ignore[attr-defined]
    return _predict(classifier, [encoder.encode_tokens(t) for t in split_tokens(split)], 512)


def majority_share(split: TextSplit) -> float:
    """The commonest class's share of ``split``: what a constant classifier scores."""
    return float(np.bincount(np.asarray(split.y)).max() / len(split))


@dataclass(frozen=True)
class Certificate:
    """Per-example results of ``certify``.

    Attributes:
        correct: the clean encoding is classified correctly.
        robust: every reachable encoding is classified correctly (false when capped).
        encodings: how many encodings the adversary can reach (a float: it can be huge).
        capped: more than the cap, so not checked and counted as not robust.
        exact_additive: the additive bound decided, with no enumeration.
    """

    correct: np.ndarray
    robust: np.ndarray
    encodings: np.ndarray
    capped: np.ndarray
    exact_additive: bool

    @property
    def clean_accuracy(self) -> float:
        """Accuracy on the clean texts."""
        return float(self.correct.mean())

    @property
    def robust_accuracy(self) -> float:
        """Certified robust accuracy: right on every typo the family allows."""
        return float(self.robust.mean())

    @property
    def n_capped(self) -> int:
        """Examples past the cap, counted as not robust."""
        return int(self.capped.sum())


def reachable_options(
    encoder: TokenEncoder, examples: Sequence[Sequence[str]]
) -> list[list[tuple[str, ...]]]:
    """For each example and position: the clean encoding first, then the other reachable ones."""
    reach = encoder.reachable_many(t for tokens in examples for t in tokens)
    options = []
    for tokens in examples:
        clean = encoder.encode_tokens(tokens)
        rows = []
        for token, encoded in zip(tokens, clean, strict=True):
            others = sorted(reach[token] - {encoded})
            rows.append((encoded, *others))
        options.append(rows)
    return options


def count_encodings(sizes: Sequence[int], max_words: int | None) -> float:
    """How many encodings ``sizes`` options per position give with at most ``max_words`` changes."""
    if max_words is None:
        return float(math.prod(sizes))
    # Elementary symmetric sums of the (size − 1) alternatives, up to degree max_words.
    totals = [1.0] + [0.0] * max_words
    for size in sizes:
        for degree in range(max_words, 0, -1):
            totals[degree] += totals[degree - 1] * (size - 1)
    return float(sum(totals))


def _encodings(rows: Sequence[tuple[str, ...]], max_words: int | None) -> Iterator[list[str]]:
    """Every reachable encoding of one example (the clean one first)."""
    if max_words is None:
        yield from (list(choice) for choice in product(*rows))
        return
    clean = [row[0] for row in rows]
    movable = [i for i, row in enumerate(rows) if len(row) > 1]
    for size in range(0, max_words + 1):
        for positions in combinations(movable, size):
            for choice in product(*(rows[i][1:] for i in positions)):
                encoded = clean.copy()
                for i, e in zip(positions, choice, strict=True):
                    encoded[i] = e
                yield encoded


def certify(
    classifier: object,
    split: TextSplit,
    *,
    max_words: int | None = None,
    cap: int = DEFAULT_CAP,
    batch_size: int = 1024,
    use_additive: bool = True,
) -> Certificate:
    """Certified robust accuracy of ``classifier`` on ``split`` over its encoder's typo family.

    Args:
        classifier: has ``encoder`` (a ``TokenEncoder``) and ``logits(encoded_lists)``; if it
            has ``additive()`` returning ``(bias, contributions)``, that decides exactly.
        split: the texts and labels.
        max_words: at most this many perturbed words per example (default: the encoder's
            family's ``max_words``; None there means every word).
        cap: enumerate at most this many encodings per example (the paper's 10,000).
        batch_size: encodings per model call.
        use_additive: use the exact additive bound when the model offers it.
    """
    encoder = classifier.encoder  # type: ignore[attr-defined]
    if max_words is None:
        max_words = encoder.family.max_words
    examples = split_tokens(split)
    options = reachable_options(encoder, examples)
    labels = np.asarray(split.y)
    counts = np.array([count_encodings([len(r) for r in rows], max_words) for rows in options])
    additive = classifier.additive() if use_additive and hasattr(classifier, "additive") else None
    if additive is not None:
        correct, robust = _additive(additive, options, labels, max_words)
        capped = np.zeros(len(labels), dtype=bool)
    else:
        correct, robust, capped = _enumerate(
            classifier, options, labels, counts, max_words, cap, batch_size
        )
    return Certificate(correct, robust & correct, counts, capped, additive is not None)


def _enumerate(
    classifier: object,
    options: list[list[tuple[str, ...]]],
    labels: np.ndarray,
    counts: np.ndarray,
    max_words: int | None,
    cap: int,
    batch_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(labels)
    correct = np.zeros(n, dtype=bool)
    robust = np.zeros(n, dtype=bool)
    capped = counts > cap
    clean = [[row[0] for row in rows] for rows in options]
    predictions = _predict(classifier, clean, batch_size)
    correct[:] = predictions == labels
    # Every uncapped, correctly classified example: run the model on all its encodings, many
    # examples to a batch; an example stays robust until one of its encodings is misclassified.
    robust[:] = correct & ~capped
    pending: list[list[str]] = []
    owner: list[int] = []

    def flush() -> None:
        if pending:
            wrong = _predict(classifier, pending, batch_size) != labels[owner]
            robust[np.asarray(owner)[wrong]] = False
            pending.clear()
            owner.clear()

    for i in np.flatnonzero(robust):
        for encoded in _encodings(options[i], max_words):
            pending.append(encoded)
            owner.append(int(i))
            if len(pending) >= batch_size:
                flush()
    flush()
    return correct, robust, capped


def _predict(classifier: object, encoded: list[list[str]], batch_size: int) -> np.ndarray:
    logits = classifier.logits(encoded, batch_size=batch_size)  # type: ignore[attr-defined]
    return torch.as_tensor(logits).argmax(dim=1).cpu().numpy()


def _additive(
    additive: tuple[torch.Tensor, object],
    options: list[list[tuple[str, ...]]],
    labels: np.ndarray,
    max_words: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact worst case for logits = bias + Σ_i c(e_i): per wrong class, each position's worst."""
    bias, contributions = additive
    bias = torch.as_tensor(bias, dtype=torch.float64)
    n = len(labels)
    correct = np.zeros(n, dtype=bool)
    robust = np.zeros(n, dtype=bool)
    for i, rows in enumerate(options):
        length = len(rows)
        flat = [e for row in rows for e in row]
        c = torch.as_tensor(contributions(flat, length), dtype=torch.float64)  # type: ignore[operator]
        y = int(labels[i])
        margins = c[:, y : y + 1] - c  # margin of y over each class, per option
        sizes = [len(row) for row in rows]
        starts = np.cumsum([0, *sizes[:-1]])
        clean = margins[starts]  # each position's clean option
        worst = torch.from_numpy(np.minimum.reduceat(margins.numpy(), starts, axis=0))
        base = bias[y] - bias
        clean_margin = base + clean.sum(dim=0)
        drops = clean - worst  # how much each position can lower each margin, >= 0
        if max_words is not None and max_words < length:
            drops = drops.topk(max_words, dim=0).values
        worst_margin = clean_margin - drops.sum(dim=0)
        others = torch.arange(len(bias)) != y
        correct[i] = bool((clean_margin[others] > 0).all())
        robust[i] = bool((worst_margin[others] > 0).all())
    return correct, robust
