"""Error types that the command line turns into one clear message and a non-zero exit.

Every error says what was wrong and what to do about it. The command line prints the message
of any ``StalwartError`` without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


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
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""
