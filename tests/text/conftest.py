"""Small hand-made vocabularies and classifiers for the RobEn tests (no data package needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stalwart.text import Encoding, TypoFamily, Vocabulary, build_encoding

WORDS = {
    # Frequencies in the spirit of real English: function words first.
    "the": 5000, "a": 4000, "to": 3000, "was": 1500, "not": 1200, "it": 1100, "at": 900,
    "movie": 300, "film": 280, "good": 260, "bad": 250, "great": 200, "plot": 150,
    "boring": 120, "best": 110, "bed": 100, "bat": 90, "but": 400, "bit": 60, "fun": 80,
    "fan": 70, "fin": 20, "stop": 100, "step": 50, "plain": 75, "pin": 15, "pun": 10,
    "ham": 5, "terrible": 40, "terrific": 30, "awful": 35, "nice": 95, "mice": 12,
    "rice": 25, "dull": 33, "doll": 18, "dell": 4, "love": 210, "live": 190, "lane": 22,
}  # fmt: skip


@pytest.fixture(scope="session")
def vocabulary() -> Vocabulary:
    return Vocabulary.from_words(list(WORDS), list(WORDS.values()))


@pytest.fixture(scope="session")
def aggclust(vocabulary: Vocabulary) -> Encoding:
    return build_encoding(vocabulary, method="agglomerative", gamma=0.3)


@pytest.fixture(scope="session")
def conncomp(vocabulary: Vocabulary) -> Encoding:
    return build_encoding(vocabulary, method="connected_components")


class BagClassifier:
    """logits = bias + mean of per-token vectors: additive, so certifiable without enumerating.

    Unknown encoded tokens get a vector too (drawn from their hash), so every typo matters.
    """

    def __init__(self, encoder: object, n_classes: int = 2, seed: int = 0, additive: bool = True):
        self.encoder = encoder
        self.n_classes = n_classes
        self.seed = seed
        self.bias = torch.tensor(0.1 * np.random.default_rng(seed).normal(size=n_classes))
        self.offer_additive = additive
        self.calls = 0
        self._vectors: dict[str, np.ndarray] = {}

    def array(self, token: str) -> np.ndarray:
        if token not in self._vectors:
            rng = np.random.default_rng([self.seed, *token.encode()])
            self._vectors[token] = rng.normal(size=self.n_classes)
        return self._vectors[token]

    def vector(self, token: str) -> torch.Tensor:
        return torch.from_numpy(self.array(token))

    def logits(self, encoded: list[list[str]], batch_size: int = 512) -> torch.Tensor:
        self.calls += len(encoded)
        means = [sum(self.array(t) for t in ts) / len(ts) for ts in encoded]
        return self.bias + torch.from_numpy(np.stack(means))

    def additive(self):
        if not self.offer_additive:
            return None

        def contributions(tokens: list[str], length: int) -> torch.Tensor:
            return torch.stack([self.vector(t) for t in tokens]) / length

        return self.bias, contributions


class MaxClassifier(BagClassifier):
    """logits = max over tokens: not additive, so only enumeration certifies it."""

    def logits(self, encoded: list[list[str]], batch_size: int = 512) -> torch.Tensor:
        self.calls += len(encoded)
        return torch.from_numpy(np.stack([np.max([self.array(t) for t in ts], axis=0)
                                          for ts in encoded]))  # fmt: skip

    def additive(self):
        return None


@pytest.fixture
def family() -> TypoFamily:
    return TypoFamily.internal_edit()


@pytest.fixture(scope="session")
def toy_models() -> dict[str, type]:
    """The toy classifiers by name (test folders are not packages, so tests cannot import
    this module)."""
    return {"bag": BagClassifier, "max": MaxClassifier}
