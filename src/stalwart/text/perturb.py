"""Texts with typos: random typos for augmentation, and real misspellings as a natural test.

Augmentation is RobEn's ``k-aug`` baseline (Jones et al., arXiv 2005.01229, §5, the reference
code's ``KAugmentor``): each training example plus ``k`` copies in which every word is replaced
by a typo drawn uniformly from its family B(w). Real misspellings come from codespell's
dictionary (Wikipedia's list of common misspellings): every word with a known misspelling is
replaced by one of them, a test of typos that people actually make.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence

import numpy as np

from stalwart.data.text import TextSplit
from stalwart.text.certify import SEPARATOR, split_tokens
from stalwart.text.typos import TypoFamily


@functools.lru_cache(maxsize=1 << 16)
def _sorted_typos(family: TypoFamily, word: str) -> tuple[str, ...]:
    return tuple(sorted(family.typos(word)))


def _rebuild(split: TextSplit, examples: list[list[str]], name: str) -> TextSplit:
    """``split`` with its texts replaced by the (space-joined) token lists ``examples``."""
    if split.texts_b is None:
        texts, texts_b = tuple(" ".join(t) for t in examples), None
    else:
        halves = [(t[: t.index(SEPARATOR)], t[t.index(SEPARATOR) + 1 :]) for t in examples]
        texts = tuple(" ".join(a) for a, _ in halves)
        texts_b = tuple(" ".join(b) for _, b in halves)
    return TextSplit(
        texts, split.y, split.group, split.class_names, split.group_names, name, texts_b
    )


def random_typos(split: TextSplit, family: TypoFamily, seed: int = 0) -> TextSplit:
    """``split`` with every word replaced by a typo drawn uniformly from its family."""
    rng = random.Random(seed)
    examples = [
        [rng.choice(_sorted_typos(family, t)) for t in tokens] for tokens in split_tokens(split)
    ]
    return _rebuild(split, examples, f"{split.name}+typos")


def typo_augment(split: TextSplit, family: TypoFamily, k: int = 4, seed: int = 0) -> TextSplit:
    """``split`` followed by ``k`` randomly typo'd copies of it (the paper's k-aug)."""
    copies = [split, *(random_typos(split, family, seed * 1000 + j) for j in range(k))]
    return TextSplit(
        tuple(t for c in copies for t in c.texts),
        np.concatenate([c.y for c in copies]),
        np.concatenate([c.group for c in copies]),
        split.class_names,
        split.group_names,
        f"{split.name}+{k}aug",
        None if split.texts_b is None else tuple(t for c in copies for t in c.texts_b),  # type: ignore[misc]
    )


def real_misspellings(
    split: TextSplit, misspellings: Mapping[str, Sequence[str]], seed: int = 0
) -> tuple[TextSplit, float]:
    """``split`` with each word that has a known misspelling replaced by one of them.

    Returns:
        The misspelled split and the fraction of its words that were changed.
    """
    rng = random.Random(seed)
    examples, changed, total = [], 0, 0
    for tokens in split_tokens(split):
        out = []
        for t in tokens:
            options = misspellings.get(t)
            out.append(rng.choice(options) if options else t)
            changed += bool(options)
            total += t != SEPARATOR
        examples.append(out)
    return _rebuild(split, examples, f"{split.name}+codespell"), changed / max(total, 1)
