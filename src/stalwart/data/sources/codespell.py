"""Real-world misspellings of English words, from codespell's dictionary.

The data: ``codespell_lib/data/dictionary.txt`` of PyPI ``codespell==2.4.3`` (code GPL-2.0;
dictionaries CC BY-SA 3.0, largely from Wikipedia's list of common misspellings), read at run
time from ``$STALWART_DATA/codespell`` (``stalwart datasets --install`` unpacks it there) or from
an installed codespell, without importing it. It is never copied into stalwart.

Each line is ``typo->fix``. A fix holding a comma lists several candidates (``aache->cache,
ache,``) or gives a reason not to fix automatically; codespell itself fixes only the lines
without one, and only those are kept here, as the unambiguous misspellings. Both sides must be
lowercase ASCII letters (capitalised names, digits, apostrophes and multi-word fixes are
dropped). Of the 64,980 lines, 58,916 are unambiguous and 57,222 of those pass the letter test;
they cover 13,666 correct words. RobEn (arXiv 2005.01229) and typo-robustness benchmarks use such
pairs as realistic typos, next to synthetic character edits.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from stalwart.data.packages import CODESPELL, package
from stalwart.data.text import register_text_dataset
from stalwart.errors import DataError

_WORD = re.compile(r"[a-z]+")


def parse_misspellings(lines: list[str], path: Path) -> dict[str, tuple[str, ...]]:
    """Correct word → its unambiguous misspellings (sorted), keys sorted, from dictionary lines.

    Raises:
        DataError: a non-empty line has no ``->``; the message names the line.
    """
    typos: dict[str, set[str]] = {}
    for line_number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if "->" not in line:
            raise DataError(f"{path}, line {line_number}: expected 'typo->fix'; got {line[:80]!r}")
        typo, fix = (part.strip() for part in line.split("->", 1))
        if "," in fix:  # several candidates, or a reason not to fix: ambiguous
            continue
        if _WORD.fullmatch(typo) and _WORD.fullmatch(fix) and typo != fix:
            typos.setdefault(fix, set()).add(typo)
    return {fix: tuple(sorted(typos[fix])) for fix in sorted(typos)}


@functools.lru_cache(maxsize=2)
def _read(path: Path, size: int, mtime_ns: int) -> dict[str, tuple[str, ...]]:
    del size, mtime_ns  # part of the cache key only: a replaced file is read again
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text: {error}") from None
    return parse_misspellings(lines, path)


@register_text_dataset(
    "codespell_misspellings",
    "57,222 real misspellings of 13,666 English words (codespell's dictionary)",
    needs=("codespell",),
)
def codespell_misspellings() -> dict[str, tuple[str, ...]]:
    """Correct word → its real-world misspellings, from codespell (see the module docstring).

    Returns:
        A new dict, keys sorted, each value the word's misspellings as a sorted tuple, e.g.
        ``result["because"]`` holds ``"becasue"`` and ``"beacuse"``.

    Raises:
        DataMissingError: codespell's dictionary is not installed (the message gives the
            install command).
        DataError: the dictionary is malformed.
    """
    path = package("codespell").require() / CODESPELL.file_name
    stat = path.stat()
    return dict(_read(path, stat.st_size, stat.st_mtime_ns))
