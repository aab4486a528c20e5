"""Typo families: which misspellings of a word an adversary may write.

RobEn (Jones et al., arXiv 2005.01229, §3 and the reference code's ``get_all_edit_dist_one``):
a word's typos B(w) are the word itself plus every string one *internal* edit away: insert a
lowercase letter, delete a letter, substitute a letter with any other, or swap two adjacent
letters, the first and last letters never changing. Across a sentence every word may carry one
typo at the same time (B(x) = B(x₁)×…×B(x_L)); ``max_words`` caps how many words change, the
restricted adversary of the paper's appendix.

``TypoFamily.keyboard()`` is the family users know from TextAttack's Pruthi et al. (2019) recipe:
swap, delete, insert, and substitute by a QWERTY neighbour only; words of four letters or more;
one perturbed word per sentence.

Every family here keeps a word's first and last letters, so typos of a word only ever collide
with words of the same first and last letter (``bucket``): the typo graph is built one bucket
at a time, in bounded memory.
"""

from __future__ import annotations

import functools
import string
from dataclasses import asdict, dataclass, replace
from typing import Any

from stalwart.errors import ConfigError, closest
from stalwart.text.tokens import is_word

OPERATIONS = ("insert", "delete", "substitute", "swap")
LETTERS = string.ascii_lowercase
_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")


def _keyboard_neighbours() -> dict[str, str]:
    """Each letter's neighbours on a QWERTY keyboard.

    Left, right, and the touching keys of the staggered rows above and below (``g``:
    ``f h t y v b``). Symmetric by construction.
    """
    position = {key: (r, c) for r, row in enumerate(_ROWS) for c, key in enumerate(row)}
    neighbours: dict[str, set[str]] = {key: set() for key in position}
    for key, (r, c) in position.items():
        # Each row sits half a key to the right of the one above: (r, c) touches (r-1, c) and
        # (r-1, c+1) above it.
        for rr, cc in ((r, c - 1), (r, c + 1), (r - 1, c), (r - 1, c + 1)):
            if 0 <= rr < len(_ROWS) and 0 <= cc < len(_ROWS[rr]):
                other = _ROWS[rr][cc]
                neighbours[key].add(other)
                neighbours[other].add(key)
    return {key: "".join(sorted(keys)) for key, keys in neighbours.items()}


KEYBOARD_NEIGHBOURS = _keyboard_neighbours()


@dataclass(frozen=True)
class TypoFamily:
    """The typos an adversary may write, word by word and across a sentence.

    Attributes:
        name: a label for tables and saved encodings.
        operations: which internal edits are allowed, a subset of ``OPERATIONS``.
        keyboard: substitutions only by a QWERTY neighbour (insertions stay any letter).
        min_length: words shorter than this are never perturbed.
        max_words: at most this many words of a sentence are perturbed (None: every word).
    """

    name: str = "internal_edit"
    operations: tuple[str, ...] = OPERATIONS
    keyboard: bool = False
    min_length: int = 0
    max_words: int | None = None

    def __post_init__(self) -> None:
        unknown = [op for op in self.operations if op not in OPERATIONS]
        if unknown or not self.operations:
            raise ConfigError(
                f"typo family {self.name!r}: operations must be a non-empty subset of "
                f"{list(OPERATIONS)}; got {list(self.operations)}"
                + (closest(unknown[0], OPERATIONS) if unknown else "")
            )
        if self.min_length < 0:
            raise ConfigError(f"typo family {self.name!r}: min_length must be >= 0")
        if self.max_words is not None and self.max_words < 1:
            raise ConfigError(
                f"typo family {self.name!r}: max_words must be >= 1 or None (every word); "
                f"got {self.max_words}"
            )
        object.__setattr__(
            self, "operations", tuple(op for op in OPERATIONS if op in self.operations)
        )

    @classmethod
    def internal_edit(cls) -> TypoFamily:
        """The paper's family: one internal insert/delete/substitute/swap in every word."""
        return cls()

    @classmethod
    def keyboard_typos(cls) -> TypoFamily:
        """TextAttack's Pruthi et al. (2019) recipe.

        QWERTY substitutions, words of four letters or more, one perturbed word per sentence.
        """
        return cls(name="keyboard", keyboard=True, min_length=4, max_words=1)

    def budget(self, max_words: int | None) -> TypoFamily:
        """This family with at most ``max_words`` perturbed words per sentence."""
        suffix = "" if max_words is None else f"@{max_words}"
        return replace(self, name=self.name.split("@")[0] + suffix, max_words=max_words)

    def typos(self, word: str) -> frozenset[str]:
        """B(word): the word and every typo of it (only the word for non-words and short words).

        Recent answers are cached; ``typos_uncached`` is for one pass over a whole vocabulary.
        """
        return _typos(self, word)

    def typos_uncached(self, word: str) -> frozenset[str]:
        """``typos`` without filling the cache (a vocabulary's typos would fill gigabytes)."""
        return _typos.__wrapped__(self, word)

    def perturbable(self, word: str) -> bool:
        """Whether ``word`` has any typo but itself."""
        return len(self.typos(word)) > 1

    def preimage_candidates(self, typo: str) -> frozenset[str]:
        """Every string one internal edit of any kind from ``typo``.

        A superset of the words whose family holds ``typo`` (insert undoes delete, substitute
        and swap undo themselves), to be filtered with ``typo in self.typos(candidate)``.
        """
        return _typos(_ANY_EDIT, typo)

    @staticmethod
    def bucket(word: str) -> tuple[str, str]:
        """First and last letter: the typos of words in different buckets never meet."""
        return word[0], word[-1]

    def to_dict(self) -> dict[str, Any]:
        """The family as plain JSON values (for saved encodings and run configs)."""
        return {**asdict(self), "operations": list(self.operations)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TypoFamily:
        """The family saved by ``to_dict``."""
        fields = {"name", "operations", "keyboard", "min_length", "max_words"}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise ConfigError(
                f"unknown typo family field {unknown[0]!r}{closest(unknown[0], fields)}; "
                f"choose from {sorted(fields)}"
            )
        return cls(**{**values, "operations": tuple(values.get("operations", OPERATIONS))})


FAMILIES = {"internal_edit": TypoFamily.internal_edit, "keyboard": TypoFamily.keyboard_typos}


def typo_family(name: str, max_words: int | None = None) -> TypoFamily:
    """The family called ``name`` (``internal_edit`` or ``keyboard``), optionally budgeted."""
    if name not in FAMILIES:
        raise ConfigError(
            f"unknown typo family {name!r}{closest(name, FAMILIES)}; choose from {sorted(FAMILIES)}"
        )
    family = FAMILIES[name]()
    return family if max_words is None else family.budget(max_words)


_ANY_EDIT = TypoFamily(name="any internal edit")


@functools.lru_cache(maxsize=1 << 12)
def _typos(family: TypoFamily, word: str) -> frozenset[str]:
    n = len(word)
    if not is_word(word) or n < max(family.min_length, 2):
        return frozenset((word,))
    ops = family.operations
    out = {word}
    for p in range(1, n):  # p: an internal position; the last letter stays at n-1
        head, tail = word[:p], word[p:]
        if "insert" in ops:
            out.update(head + c + tail for c in LETTERS)
        if p < n - 1:
            rest = word[p + 1 :]
            if "delete" in ops:
                out.add(head + rest)
            if "substitute" in ops:
                subs = KEYBOARD_NEIGHBOURS[word[p]] if family.keyboard else LETTERS
                out.update(head + c + rest for c in subs)
            if "swap" in ops and p < n - 2:
                out.add(head + word[p + 1] + word[p] + word[p + 2 :])
    return frozenset(out)
