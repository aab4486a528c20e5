"""Words in, words out: the tokenisation every encoding, attack and certificate shares.

RobEn (Jones et al., arXiv 2005.01229) perturbs and encodes text word by word, so the tokens must
be the same everywhere: lowercase, accents folded to ASCII (``café`` -> ``cafe``), a run of
letters is one word, a run of digits is one token, and every other visible character is a token
of its own. Only words (runs of ASCII letters) can carry a typo.
"""

from __future__ import annotations

import re
import unicodedata

from stalwart.errors import DataError

_TOKEN = re.compile(r"[a-z]+|[0-9]+|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """The tokens of ``text``: lowercase words, digit runs and single symbols.

    Raises:
        DataError: ``text`` is not a string, or holds no token (empty or only whitespace).
    """
    if not isinstance(text, str):
        raise DataError(f"text must be a string; got {type(text).__name__} {text!r:.60}")
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    tokens = _TOKEN.findall(folded.lower())
    if not tokens:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise DataError(
            f"text {shown!r} holds no word to encode (empty, whitespace, or only characters "
            "with no ASCII form such as emoji); drop it before encoding"
        )
    return tokens


def is_word(token: str) -> bool:
    """Whether ``token`` is a run of lowercase ASCII letters, the only tokens typos touch."""
    return token.isascii() and token.isalpha() and token.islower()
