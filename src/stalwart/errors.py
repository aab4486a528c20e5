"""Error types that the command line turns into one clear message and a non-zero exit.

Every error says what was wrong and what to do about it. The command line prints the message
of any ``StalwartError`` without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable
from typing import Any


class StalwartError(Exception):
    """Base class of the errors a user can cause and fix."""


class ConfigError(StalwartError, ValueError):
    """A configuration value or key is wrong."""


class DataError(StalwartError, ValueError):
    """A dataset is malformed: NaNs, labels or group ids out of range, mismatched lengths."""


class DataMissingError(StalwartError, FileNotFoundError):
    """A data package or a local copy of a dataset is not where it should be."""


class CheckpointError(StalwartError, RuntimeError):
    """A checkpoint is corrupt, or does not match the model, or a run directory disagrees."""


def closest(name: str, choices: Iterable[str]) -> str:
    """Return a ``" (did you mean 'x'?)"`` hint for ``name``, or an empty string."""
    if len(name) > 200:  # no valid name is that long; spare difflib the comparison
        return ""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = _SHORT.maxlong = 60
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict = 3, 6, 6
MAX_QUOTED = 100
"""The most characters of a value an error message quotes."""


def shorten(value: Any) -> str:
    """A ``repr`` of ``value`` cut to at most ``MAX_QUOTED`` characters, for error messages.

    Messages quote what a user wrote, and what a user wrote can be enormous (a long list, or a
    YAML alias bomb that expands to billions of items): ``reprlib`` stops at a few items and a
    few levels, so even a huge shared structure is quoted in microseconds.
    """
    text = _SHORT.repr(value)
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 3] + "..."
