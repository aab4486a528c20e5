"""What a model leaves behind on one evaluation set, for predicting its accuracy without labels.

Label-free predictors (ATC, DoC, agreement on the line) read a model's predicted classes and
its confidence on each example, never the labels of the shifted set. ``Outputs`` keeps
exactly that, compactly (one byte per prediction, two per score), so that a testbed of a
hundred models on dozens of shifted sets fits in memory and on disk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stalwart.errors import DataError


@dataclass(frozen=True)
class Outputs:
    """One model on one evaluation set: predicted class, max softmax probability, −entropy.

    Attributes:
        predictions: (n,) predicted class per example.
        confidence: (n,) the largest softmax probability, in [0, 1].
        negative_entropy: (n,) Σ p log p of the softmax, in [−log k, 0].
    """

    predictions: np.ndarray
    confidence: np.ndarray
    negative_entropy: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.predictions)
        if len(self.confidence) != n or len(self.negative_entropy) != n:
            raise DataError(
                f"outputs disagree in length: {n} predictions, {len(self.confidence)} "
                f"confidences, {len(self.negative_entropy)} entropies"
            )
        if n == 0:
            raise DataError("outputs of a model on an empty evaluation set")
        for name in ("confidence", "negative_entropy"):
            if not np.isfinite(getattr(self, name)).all():
                raise DataError(f"outputs hold a non-finite {name.replace('_', ' ')}")

    @classmethod
    def from_probabilities(cls, probabilities: np.ndarray) -> Outputs:
        """From an (n, classes) array of softmax probabilities (rows summing to 1)."""
        p = np.asarray(probabilities, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] < 2:
            raise DataError(f"expected (examples, classes ≥ 2) probabilities; got shape {p.shape}")
        if not np.isfinite(p).all() or (p < 0).any():
            raise DataError("probabilities must be finite and non-negative")
        plogp = np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)
        return cls(
            predictions=p.argmax(axis=1).astype(np.int16),
            confidence=p.max(axis=1).astype(np.float32),
            negative_entropy=plogp.sum(axis=1).astype(np.float32),
        )

    def __len__(self) -> int:
        return len(self.predictions)

    def accuracy(self, labels: np.ndarray) -> float:
        """Fraction of ``labels`` predicted (for the labelled sets: ID validation and test)."""
        labels = np.asarray(labels)
        if len(labels) != len(self):
            raise DataError(f"{len(labels)} labels for {len(self)} predictions")
        return float((self.predictions == labels).mean())

    def agreement(self, other: Outputs) -> float:
        """Fraction of examples on which two models predict the same class (needs no labels)."""
        if len(other) != len(self):
            raise DataError(f"agreement of models on sets of {len(self)} and {len(other)} examples")
        return float((self.predictions == other.predictions).mean())
