"""The attack's memory of scored sentences, optionally kept in a file so a killed attack resumes.

The beam-search attack (``stalwart.text.attack``) asks for the logits of thousands of trial
sentences a round; each distinct sentence is computed once and remembered here, keyed by a
128-bit digest of its tokens. On a transformer over long reviews the attack runs for an hour
or more, so the memory can be written to a checkpoint file every few minutes: run again from
the same classifier and settings, the attack replays its rounds (its random draws are seeded,
its choices follow the logits) and every sentence it already scored comes from the file,
until it reaches the round where it stopped; the results are those of an uninterrupted run.

The file carries a fingerprint of what the scores belong to (the attack's settings, the
examples, and the classifier's logits on them, rounded to 1e-5); a file with another
fingerprint was written for another classifier or attack and is ignored, then replaced.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from stalwart.errors import DataError
from stalwart.io import atomic_write_bytes

SAVE_EVERY_SECONDS = 300.0
SEPARATOR = "\x1f"  # between tokens in a digest; no token contains it


def digest(tokens: Iterable[str]) -> bytes:
    """A sentence's key: 16 bytes of BLAKE2b over its tokens."""
    return hashlib.blake2b(SEPARATOR.join(tokens).encode(), digest_size=16).digest()


def fingerprint(examples: Sequence[Sequence[str]], clean_logits: np.ndarray, settings: str) -> str:
    """What a checkpoint's scores belong to: the examples, the classifier's logits, the settings."""
    h = hashlib.sha256(settings.encode())
    for tokens in examples:
        h.update(digest(tokens))
    h.update(np.round(np.asarray(clean_logits, dtype=np.float64), 5).tobytes())
    return h.hexdigest()


class Scores:
    """Logits of sentences, each computed once by ``compute`` (a list of sentences → an array).

    Args:
        compute: the model, on a list of encoded sentences, returning ``(n, classes)`` logits.
        checkpoint: a ``.npz`` file to resume from and to write every ``every`` seconds (None:
            memory only).
        fingerprint: identifies the classifier and attack (:func:`fingerprint`); required with
            ``checkpoint``.
        every: seconds between checkpoint writes (default ``SAVE_EVERY_SECONDS``).

    Raises:
        DataError: ``checkpoint`` exists but cannot be read as such a file.
    """

    def __init__(
        self,
        compute: Callable[[list[Sequence[str]]], np.ndarray],
        checkpoint: str | Path | None = None,
        fingerprint: str = "",
        every: float | None = None,
    ) -> None:
        self.compute = compute
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.fingerprint = fingerprint
        self.every = SAVE_EVERY_SECONDS if every is None else every
        self.known: dict[bytes, np.ndarray] = {}
        self.restored = 0  # sentences read from the checkpoint
        self.computed = 0  # sentences the model scored here
        self._saved_at = time.monotonic()
        if self.checkpoint is not None and self.checkpoint.exists():
            self._load(self.checkpoint)

    def add(self, sentences: Sequence[Sequence[str]], logits: np.ndarray) -> None:
        """Remember logits computed elsewhere (the clean sentences)."""
        for tokens, row in zip(sentences, logits, strict=True):
            self.known[digest(tokens)] = row

    def __call__(self, sentences: Sequence[Sequence[str]]) -> np.ndarray:
        """``(len(sentences), classes)`` logits; only sentences never scored reach the model."""
        keys = [digest(tokens) for tokens in sentences]
        new = {key: tokens for key, tokens in zip(keys, sentences, strict=True)
               if key not in self.known}  # fmt: skip
        if new:
            self.known.update(zip(new, self.compute(list(new.values())), strict=True))
            self.computed += len(new)
            if self.checkpoint is not None and time.monotonic() - self._saved_at >= self.every:
                self.save()
        return np.stack([self.known[key] for key in keys])

    def save(self) -> None:
        """Write every score to the checkpoint file, atomically."""
        if self.checkpoint is None:
            return
        # bytes as uint8 rows: numpy's fixed-width bytes type would drop trailing zero bytes
        keys = np.frombuffer(b"".join(self.known), dtype=np.uint8).reshape(-1, 16)
        logits = np.stack(list(self.known.values())) if self.known else np.zeros((0, 0))
        atomic_write_bytes(self.checkpoint, lambda f: np.savez(
            f, fingerprint=np.array(self.fingerprint), keys=keys, logits=logits))  # fmt: skip
        self._saved_at = time.monotonic()

    def _load(self, path: Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as archive:
                found, keys, logits = archive["fingerprint"], archive["keys"], archive["logits"]
            found = str(found)
            if keys.dtype != np.uint8 or keys.shape[1:] != (16,) or len(keys) != len(logits):
                raise ValueError(f"keys of shape {keys.shape} for {len(logits)} rows of logits")
        except (OSError, ValueError, KeyError, EOFError) as error:
            raise DataError(
                f"{path} is not a readable attack checkpoint ({error}); delete it to start the "
                "attack afresh"
            ) from None
        if found != self.fingerprint:
            return  # written for another classifier or attack: start afresh, then replace it
        self.known.update(zip((row.tobytes() for row in keys), logits, strict=True))
        self.restored = len(keys)
