"""Robust encodings: every word, and every typo of it, to a cluster representative.

RobEn (Jones et al., arXiv 2005.01229, §3–4): an encoding α maps each token to the representative
(most frequent member) of its word's cluster; a typo maps to the cluster of the most frequent
vocabulary word it is a typo of; a word that is neither in the vocabulary nor a typo of one maps
to ``OOV``. A model that sees only ``α(x)`` can be attacked only through the few encodings the
typos of x reach, which ``reachable`` lists: that is what makes exact certification possible.

Out-of-vocabulary words are handled as in the paper and are the one weak spot: a typo of an
unknown word can land on a typo of a vocabulary word, so ``reachable(oov_word)`` may hold more
than ``OOV`` (``oov_instability`` measures how often).

``IdentityEncoding`` is the same interface for models trained on raw tokens (the standard and
augmentation baselines): every typo is its own encoding.
"""

from __future__ import annotations

import json
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from stalwart.errors import DataError
from stalwart.io import atomic_write_bytes, atomic_write_text
from stalwart.text.graph import bucket_owners, buckets
from stalwart.text.tokens import is_word, tokenize
from stalwart.text.typos import TypoFamily
from stalwart.text.vocabulary import Vocabulary

OOV = "<oov>"
FORMAT = "stalwart-roben-encoding"
VERSION = 1
_BUCKET_CACHE = 4  # typo tables kept at once; the largest holds about a million typos


class TokenEncoder(Protocol):
    """What classifiers, attacks and certificates need from an encoding."""

    family: TypoFamily

    def encode_tokens(self, tokens: Sequence[str]) -> list[str]:
        """The encoding of each token."""
        ...

    def reachable_many(self, tokens: Iterable[str]) -> dict[str, frozenset[str]]:
        """Each token's set of encodings over all of its typos."""
        ...


class IdentityEncoding:
    """No encoding: each token is itself, so every typo is a distinct input (the baselines)."""

    name = "identity"

    def __init__(self, family: TypoFamily | None = None) -> None:
        self.family = family or TypoFamily.internal_edit()

    def encode_tokens(self, tokens: Sequence[str]) -> list[str]:
        """The tokens unchanged."""
        return list(tokens)

    def reachable_many(self, tokens: Iterable[str]) -> dict[str, frozenset[str]]:
        """Each token's typos: all of them reach the model as they are."""
        return {token: self.family.typos(token) for token in set(tokens)}


class Encoding:
    """A RobEn encoding of a vocabulary (build one with ``stalwart.text.build_encoding``).

    Args:
        vocabulary: the words, most frequent first.
        clusters: the cluster of each word, numbered by most frequent member.
        family: the typos the encoding is built against.
        method: ``"connected_components"`` or ``"agglomerative"``.
        gamma: AggClust's fidelity weight (None for connected components).
        stats: figures of the build (sizes, objective terms, seconds), kept when saved.
    """

    def __init__(
        self,
        vocabulary: Vocabulary,
        clusters: np.ndarray,
        family: TypoFamily,
        *,
        method: str,
        gamma: float | None = None,
        stats: dict[str, Any] | None = None,
    ) -> None:
        clusters = np.asarray(clusters, dtype=np.int64)
        if clusters.shape != (len(vocabulary),):
            raise DataError(
                f"an encoding needs one cluster per word: {len(vocabulary)} words, "
                f"{clusters.size} clusters"
            )
        n_clusters = int(clusters.max()) + 1
        first = np.full(n_clusters, -1)
        seen = np.unique(clusters, return_index=True)
        first[seen[0]] = seen[1]
        if clusters.min() < 0 or (first < 0).any() or (np.diff(first) < 0).any():
            raise DataError(
                "cluster ids must be 0..k-1 numbered in the order of each cluster's most "
                "frequent word (use stalwart.text.clustering.numbered)"
            )
        self.vocabulary = vocabulary
        self.clusters = clusters
        self.family = family
        self.method = method
        self.gamma = gamma
        self.stats = dict(stats or {})
        self.representatives = [vocabulary.words[i] for i in first]
        self.name = method if gamma is None else f"{method}(gamma={gamma:g})"
        self._owner_cache: dict[str, int | None] = {}
        self._buckets: OrderedDict[tuple[str, str], dict[str, int]] = OrderedDict()
        self._bucket_members: dict[tuple[str, str], list[int]] | None = None

    @property
    def n_clusters(self) -> int:
        """How many clusters (distinct encodings of vocabulary words)."""
        return len(self.representatives)

    def owner(self, token: str) -> int | None:
        """The most frequent vocabulary word whose typos hold ``token`` (itself if it is one)."""
        if token in self.vocabulary.index:
            return self.vocabulary.index[token]
        if token not in self._owner_cache:
            index = self.vocabulary.index
            found = [
                index[c]
                for c in self.family.preimage_candidates(token)
                if c in index and token in self.family.typos(c)
            ]
            self._owner_cache[token] = min(found) if found else None
        return self._owner_cache[token]

    def encode_token(self, token: str) -> str:
        """The encoding of one token.

        Its cluster's representative, ``OOV``, or the token itself when it is not a word
        (digits, punctuation).
        """
        if not is_word(token):
            return token
        owner = self.owner(token)
        return OOV if owner is None else self.representatives[self.clusters[owner]]

    def encode_tokens(self, tokens: Sequence[str]) -> list[str]:
        """The encoding of each token."""
        return [self.encode_token(token) for token in tokens]

    def encode(self, text: str) -> str:
        """The encoded text: tokens of ``text`` encoded and joined by spaces."""
        return " ".join(self.encode_tokens(tokenize(text)))

    def reachable(self, token: str) -> frozenset[str]:
        """Every encoding a typo of ``token`` (or the token itself) can produce."""
        return self.reachable_many([token])[token]

    def reachable_many(self, tokens: Iterable[str]) -> dict[str, frozenset[str]]:
        """``reachable`` for many tokens, building each bucket's typo table once."""
        by_bucket: dict[tuple[str, str], list[str]] = defaultdict(list)
        out: dict[str, frozenset[str]] = {}
        for token in set(tokens):
            if self.family.perturbable(token):
                by_bucket[TypoFamily.bucket(token)].append(token)
            else:
                out[token] = frozenset((self.encode_token(token),))
        for bucket, group in by_bucket.items():
            owners = self._bucket_table(bucket)
            for token in group:
                out[token] = frozenset(
                    OOV
                    if (o := owners.get(typo)) is None
                    else self.representatives[self.clusters[o]]
                    for typo in self.family.typos(token)
                )
        return out

    def _bucket_table(self, bucket: tuple[str, str]) -> dict[str, int]:
        """Typo -> owner for the vocabulary words of one bucket (a few kept, least recent out)."""
        if bucket in self._buckets:
            self._buckets.move_to_end(bucket)
            return self._buckets[bucket]
        if self._bucket_members is None:
            self._bucket_members = buckets(self.vocabulary)
        table = bucket_owners(self.vocabulary, self.family, self._bucket_members.get(bucket, []))
        self._buckets[bucket] = table
        if len(self._buckets) > _BUCKET_CACHE:
            self._buckets.popitem(last=False)
        return table

    def oov_instability(self, tokens: Iterable[str]) -> tuple[int, int]:
        """(out-of-vocabulary words among ``tokens``, those a typo moves off ``OOV``)."""
        unknown = [t for t in set(tokens) if is_word(t) and self.owner(t) is None]
        reach = self.reachable_many(unknown)
        return len(unknown), sum(len(reach[t]) > 1 for t in unknown)

    # --- saving -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the encoding, as JSON values."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "method": self.method,
            "gamma": self.gamma,
            "family": self.family.to_dict(),
            "vocabulary_checksum": self.vocabulary.checksum,
            "stats": self.stats,
            "words": list(self.vocabulary.words),
            "frequencies": self.vocabulary.frequencies.tolist(),
            "clusters": self.clusters.tolist(),
        }

    def save(self, path: str | Path) -> Path:
        """Write the encoding to ``path``: JSON, or NumPy ``.npz`` by the suffix; atomic."""
        path = Path(path)
        values = self.to_dict()
        if path.suffix == ".npz":
            arrays = {
                "words": np.array(values.pop("words")),
                "frequencies": np.array(values.pop("frequencies")),
                "clusters": np.array(values.pop("clusters")),
            }
            header = np.array(json.dumps(values))
            atomic_write_bytes(path, lambda f: np.savez_compressed(f, header=header, **arrays))
        else:
            atomic_write_text(path, json.dumps(values))
        return path

    @classmethod
    def load(cls, path: str | Path, vocabulary: Vocabulary | None = None) -> Encoding:
        """Read an encoding written by ``save``.

        Args:
            path: a ``.json`` or ``.npz`` file.
            vocabulary: if given, the encoding must have been built on exactly these words.

        Raises:
            DataError: the file is missing, not an encoding, of another format version,
                damaged (the words no longer match their checksum), or built on another
                vocabulary.
        """
        path = Path(path)
        rebuild = "rebuild it with `stalwart text build-encoding`"
        if not path.is_file():
            raise DataError(f"no encoding file at {path}; {rebuild}")
        try:
            if path.suffix == ".npz":
                with np.load(path, allow_pickle=False) as archive:
                    values = json.loads(str(archive["header"]))
                    for key in ("words", "frequencies", "clusters"):
                        values[key] = archive[key].tolist()
            else:
                values = json.loads(path.read_text())
        except (OSError, ValueError, KeyError, EOFError) as error:
            raise DataError(f"{path} is not a readable encoding ({error}); {rebuild}") from None
        if not isinstance(values, dict) or values.get("format") != FORMAT:
            raise DataError(f"{path} is not a stalwart RobEn encoding file; {rebuild}")
        if values.get("version") != VERSION:
            raise DataError(
                f"{path} is encoding format version {values.get('version')}, this stalwart "
                f"reads version {VERSION}; {rebuild}"
            )
        try:
            loaded = Vocabulary.from_words(values["words"], values["frequencies"])
            if loaded.checksum != values["vocabulary_checksum"]:
                raise DataError("its words do not match the checksum stored with them")
            encoding = cls(
                loaded,
                np.asarray(values["clusters"]),
                TypoFamily.from_dict(values["family"]),
                method=values["method"],
                gamma=values["gamma"],
                stats=values.get("stats"),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"{path} is a damaged encoding file: {error}; {rebuild}") from None
        if vocabulary is not None and vocabulary.checksum != loaded.checksum:
            raise DataError(
                f"{path} was built on another vocabulary ({len(loaded)} words, checksum "
                f"{loaded.checksum[:12]}) than the one given ({len(vocabulary)} words, "
                f"{vocabulary.checksum[:12]}); {rebuild}"
            )
        return encoding
