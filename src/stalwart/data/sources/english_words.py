"""The most frequent English words: a Debian word list ranked by wordfreq's frequencies.

RobEn's encodings cluster a vocabulary of common words (arXiv 2005.01229); this gives that
vocabulary from data that ships offline:

- the words: a word list, one word a line. The Debian packages ``wamerican`` (file
  ``/usr/share/dict/american-english``), ``wamerican-large`` (``american-english-large``) and
  ``wamerican-huge`` (``american-english-huge``), built from SCOWL under its permissive
  license (use, copy and distribute freely, keeping the notice), or a user's own list
  in ``$STALWART_DATA/words``. Only lowercase ASCII alphabetic entries are kept (proper nouns,
  possessives, accented and hyphenated words are dropped).
- the ranking: ``wordfreq.get_frequency_dict("en", wordlist="large")`` of PyPI ``wordfreq``
  3.1.1 (code Apache-2.0; data CC BY-SA 4.0, from Wikipedia, subtitles, news, books, web text,
  Twitter and Reddit), whose data ships inside the wheel and loads with no network. Words it
  does not know (frequency 0) are dropped.

Words that survive both, measured with Debian's 2020.12.07 lists: american-english 57,747,
american-english-large 81,821, american-english-huge 100,688.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from stalwart.data.packages import WORD_LISTS, WORDFREQ_PYPI_VERSION, word_list_folders
from stalwart.data.storage import check_data_home, data_home
from stalwart.data.text import register_text_dataset
from stalwart.errors import ConfigError, DataMissingError

WORD_LIST_ALIASES = {"small": "wamerican", "large": "wamerican-large", "huge": "wamerican-huge"}
"""Short names of the Debian word lists, smallest first."""
WORDFREQ_INSTALL = f"pip install wordfreq=={WORDFREQ_PYPI_VERSION}"


def _wordfreq() -> Any:
    try:
        import wordfreq
    except ImportError:
        raise DataMissingError(
            "ranking English words needs wordfreq, which is not installed; install it with\n"
            f"    {WORDFREQ_INSTALL}\n(it is in stalwart's `text` extra: pip install -e '.[text]')"
        ) from None
    return wordfreq


@functools.lru_cache(maxsize=1)
def english_frequencies() -> dict[str, float]:
    """The English word frequencies of wordfreq (its "large" list), loaded once.

    Raises:
        DataMissingError: wordfreq is not installed (the message names the pip command).
    """
    return _wordfreq().get_frequency_dict("en", wordlist="large")


def resolve_word_list(word_list: str) -> Path:
    """The file of ``word_list``: a Debian list by name, or a file of your own.

    Accepted: ``small``, ``large``, ``huge``; the Debian package names ``wamerican``,
    ``wamerican-large``, ``wamerican-huge``; the file name of one of those; or the name of a
    file in ``$STALWART_DATA/words``. A Debian list is looked for in ``$STALWART_DATA/words``
    first, then in ``/usr/share/dict``.

    Raises:
        DataMissingError: the list is not installed (the message names the apt-get command), or
            no such file is in ``$STALWART_DATA/words``.
        DataError: ``$STALWART_DATA`` is a file.
    """
    check_data_home()
    debian = WORD_LIST_ALIASES.get(word_list, word_list)
    by_file = {file_name: name for name, file_name in WORD_LISTS.items()}
    debian = by_file.get(debian, debian)
    if debian in WORD_LISTS:
        file_name = WORD_LISTS[debian]
        for folder in word_list_folders():
            if (folder / file_name).is_file():
                return folder / file_name
        raise DataMissingError(
            f"the word list {word_list!r} ({file_name}) is not installed; install it with\n"
            f"    apt-get install -y {debian}\nor copy a list (one word a line) named "
            f"{file_name} into {data_home() / 'words'}"
        )
    own = data_home() / "words" / word_list
    if Path(word_list).name == word_list and own.is_file():
        return own
    words_folder = data_home() / "words"
    present = sorted(p.name for p in words_folder.iterdir()) if words_folder.is_dir() else []
    raise DataMissingError(
        f"unknown word list {word_list!r}: it is not one of {list(WORD_LIST_ALIASES)} or "
        f"{list(WORD_LISTS)}, and {own} does not exist. Put your own list (one word a line) in "
        f"{words_folder} and pass its file name; that folder holds {present}"
    )


def read_words(path: Path) -> list[str]:
    """The distinct lowercase ASCII alphabetic words of a word list, in file order."""
    # Bytes that are not UTF-8 (a latin-1 list) become U+FFFD and fail the ASCII test below.
    text = path.read_bytes().decode("utf-8", errors="replace")
    words = (line.strip() for line in text.splitlines())
    return list(dict.fromkeys(w for w in words if w.isascii() and w.isalpha() and w.islower()))


@functools.lru_cache(maxsize=8)
def _ranked(path: Path, size: int, mtime_ns: int) -> tuple[tuple[str, ...], np.ndarray]:
    del size, mtime_ns  # part of the cache key only: a replaced list is read again
    frequencies = english_frequencies()
    known = [(w, frequencies[w]) for w in read_words(path) if frequencies.get(w, 0.0) > 0.0]
    known.sort(key=lambda item: (-item[1], item[0]))
    return tuple(w for w, _ in known), np.array([f for _, f in known], dtype=np.float64)


def ranked_words(word_list: str = "huge") -> tuple[tuple[str, ...], np.ndarray]:
    """Every word of ``word_list`` that wordfreq knows, most frequent first, with frequencies.

    Raises:
        DataMissingError: the list or wordfreq is missing (the message says how to install).
    """
    path = resolve_word_list(word_list)
    _wordfreq()  # a missing wordfreq is reported before the list is read
    stat = path.stat()
    words, frequencies = _ranked(path, stat.st_size, stat.st_mtime_ns)
    return words, frequencies.copy()  # the cached array stays as it was


def _larger_lists(word_list: str, size: int) -> str:
    """A hint naming the larger Debian lists that hold ``size`` words, for the error."""
    names = list(WORD_LIST_ALIASES)
    current = WORD_LIST_ALIASES.get(word_list, word_list)
    if current in WORD_LIST_ALIASES.values():
        larger = names[list(WORD_LIST_ALIASES.values()).index(current) + 1 :]
    else:
        larger = names
    hints = []
    for name in larger:
        try:
            count = len(ranked_words(name)[0])
        except DataMissingError:
            hints.append(f"word_list={name!r} (apt-get install -y {WORD_LIST_ALIASES[name]})")
            continue
        if count >= size:
            return f"; use word_list={name!r} ({count:,} words)"
        hints.append(f"word_list={name!r} has {count:,}")
    known = f" ({', '.join(hints)})" if hints else ""
    return f"; no Debian list is that large{known}: use a larger list of your own"


@register_text_dataset(
    "english_vocabulary",
    "the most frequent lowercase English words (wamerican-huge ranked by wordfreq)",
    needs=("english_words", "wordfreq"),
)
def english_vocabulary(size: int, word_list: str = "huge") -> tuple[tuple[str, ...], np.ndarray]:
    """The ``size`` most frequent lowercase English words of a word list, with frequencies.

    Words are ranked by wordfreq's English frequency, most frequent first, ties broken
    alphabetically (see the module docstring).

    Args:
        size: how many words.
        word_list: ``small``, ``large`` or ``huge`` (Debian ``wamerican``,
            ``wamerican-large``, ``wamerican-huge``), a Debian package or file name, or the file
            name of your own list in ``$STALWART_DATA/words``.

    Returns:
        The words, and their frequencies as float64 (the share of English word tokens).

    Raises:
        ConfigError: ``size`` is below 1 or above the number of ranked words in the list (the
            message names the count and a larger list to use).
        DataMissingError: the word list or wordfreq is not installed (the message says how to
            install it).
    """
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ConfigError(f"size must be a whole number of at least 1; got {size!r}")
    words, frequencies = ranked_words(word_list)
    if size > len(words):
        raise ConfigError(
            f"word list {word_list!r} ({resolve_word_list(word_list)}) has {len(words):,} "
            f"lowercase words that wordfreq knows, fewer than size={size:,}"
            f"{_larger_lists(word_list, size)}"
        )
    return words[:size], frequencies[:size]
