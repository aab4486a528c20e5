"""The vocabulary an encoding clusters: words, most frequent first, with their frequencies."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from stalwart.errors import DataError
from stalwart.text.tokens import is_word


@dataclass(frozen=True)
class Vocabulary:
    """Distinct lowercase ASCII words with positive frequencies, sorted most frequent first.

    The order is the encoding's tie-breaker everywhere: a typo belongs to its most frequent
    vocabulary word and a cluster's representative is its most frequent member (RobEn,
    arXiv 2005.01229, §4), so index 0 is the most frequent word. Ties keep the given order.

    Raises:
        DataError: no words, duplicates, a word that is not lowercase ASCII letters, a
            frequency that is not finite and positive, or lengths that differ.
    """

    words: tuple[str, ...]
    frequencies: np.ndarray
    index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        words = tuple(self.words)
        freqs = np.asarray(self.frequencies, dtype=np.float64)
        if not words:
            raise DataError("the vocabulary is empty; give at least one word")
        if freqs.shape != (len(words),):
            raise DataError(f"the vocabulary has {len(words)} words but {freqs.size} frequencies")
        for position, word in enumerate(words):
            if not isinstance(word, str) or not is_word(word):
                raise DataError(
                    f"vocabulary word {position} is {word!r}: words must be lowercase ASCII "
                    "letters (fold accents and lowercase them first)"
                )
        bad = np.flatnonzero(~np.isfinite(freqs) | (freqs <= 0))
        if bad.size:
            raise DataError(
                f"the frequency of {words[bad[0]]!r} is {freqs[bad[0]]}: every frequency must "
                "be finite and positive (drop words never seen)"
            )
        index: dict[str, int] = {}
        for position, word in enumerate(words):
            if index.setdefault(word, position) != position:
                raise DataError(
                    f"the vocabulary lists {word!r} twice (positions {index[word]} and "
                    f"{position}); give each word once"
                )
        order = np.argsort(-freqs, kind="stable")
        object.__setattr__(self, "words", tuple(words[i] for i in order))
        object.__setattr__(self, "frequencies", freqs[order])
        object.__setattr__(self, "index", {w: i for i, w in enumerate(self.words)})

    @classmethod
    def from_words(cls, words: Sequence[str], frequencies: Sequence[float]) -> Vocabulary:
        """The vocabulary of ``words`` with ``frequencies`` (any order; sorted here)."""
        return cls(tuple(words), np.asarray(frequencies, dtype=np.float64))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    @property
    def checksum(self) -> str:
        """SHA-256 of the words in order: what a saved encoding is checked against."""
        return hashlib.sha256("\n".join(self.words).encode("ascii")).hexdigest()
