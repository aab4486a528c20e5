"""Datasets with a planted spurious feature, built from real images.

- ``colored_mnist``: digits collapsed to two classes (0–4 vs 5–9), drawn in one of two colour
  channels; the colour agrees with the label with probability ``spurious_correlation`` in train
  and is exactly balanced in validation and test (Arjovsky et al., arXiv 1907.02893, without
  their label noise unless asked for).
- ``dominoes``: an MNIST 0 or 1 stacked above a Fashion-MNIST image of one of two classes,
  the label (Shah et al., arXiv 2006.07710; Kirichenko et al., arXiv 2204.02937). The digit is
  the simple, spurious half: it agrees with the label with probability
  ``spurious_correlation`` in train and is balanced in validation and test.

Group ids are ``2·label + attribute``. Exactly ``round(p·n)`` training examples agree with the
label, so the configured correlation holds without sampling noise. Splits are disjoint by
source image: validation images are carved from the training pools, test images come from the
test pools.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from stalwart.data.blocks import InputBlocks
from stalwart.data.catalog import register_source
from stalwart.data.core import GroupedDataset, Splits
from stalwart.data.sources.images import (
    FASHION_CLASSES,
    ImagePool,
    fashion_mnist_images,
    mnist_images,
    to_float_images,
)
from stalwart.data.splitting import check_fraction, exact_bernoulli, split_off
from stalwart.errors import ConfigError


def _agreement(n: int, split: str, correlation: float, rng: np.random.Generator) -> np.ndarray:
    """Whether each example's attribute equals its label: ``correlation`` in train, ½ elsewhere."""
    return exact_bernoulli(n, correlation if split == "train" else 0.5, rng)


def _check_correlation(value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"spurious_correlation must lie in [0, 1]; got {value}")


def _pool_splits(
    pool: ImagePool, keep: Callable[[np.ndarray], np.ndarray], val_fraction: float, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(images, labels) of kept classes: train and val from the training pool, test from test."""
    train_pool = np.flatnonzero(keep(pool.train_y))
    train, val = split_off(len(train_pool), val_fraction, seed)
    test = np.flatnonzero(keep(pool.test_y))
    return {
        "train": (pool.train_x[train_pool[train]], pool.train_y[train_pool[train]]),
        "val": (pool.train_x[train_pool[val]], pool.train_y[train_pool[val]]),
        "test": (pool.test_x[test], pool.test_y[test]),
    }


@register_source("colored_mnist", requires=("mnist",))
def colored_mnist(
    *,
    spurious_correlation: float = 0.9,
    label_noise: float = 0.0,
    seed: int = 0,
    val_fraction: float = 0.1,
) -> Splits:
    """Two-class MNIST whose colour channel is a spurious feature (groups: label × colour)."""
    _check_correlation(spurious_correlation)
    check_fraction("val_fraction", val_fraction)
    if not 0.0 <= label_noise < 0.5:
        raise ConfigError(f"label_noise must lie in [0, 0.5); got {label_noise}")
    rng = np.random.default_rng(seed)
    parts = _pool_splits(mnist_images(), lambda y: np.ones(len(y), bool), val_fraction, seed)

    def make(split: str) -> GroupedDataset:
        images, digits = parts[split]
        label = (digits >= 5).astype(np.int64)
        label = np.where(rng.random(len(label)) < label_noise, 1 - label, label)
        colour = np.where(
            _agreement(len(label), split, spurious_correlation, rng), label, 1 - label
        )
        gray = to_float_images(images)
        x = torch.zeros(len(label), 2, *gray.shape[2:])
        x[torch.arange(len(label)), torch.from_numpy(colour)] = gray[:, 0]
        return GroupedDataset(
            x, torch.from_numpy(label), torch.from_numpy(2 * label + colour), n_classes=2,
            group_names=["0-4, red", "0-4, green", "5-9, red", "5-9, green"],
            class_names=["0-4", "5-9"], name=f"colored_mnist/{split}",
        )  # fmt: skip

    return Splits(train=make("train"), val=make("val"), test=make("test"))


def halves(input_shape: tuple[int, ...]) -> InputBlocks:
    """The ``top`` (simple: the digit) and ``bottom`` halves of a dominoes image.

    Groups are 2·label + digit, so the digit agrees with the label in groups 0 and 3.
    """
    top = torch.zeros(input_shape, dtype=torch.bool)
    top[:, : input_shape[1] // 2] = True
    return InputBlocks({"top": top, "bottom": ~top}, simple="top", agreeing_groups=(0, 3))


@register_source("dominoes", requires=("mnist", "fashion_mnist"))
def dominoes(
    *,
    spurious_correlation: float = 0.95,
    classes: tuple[str, str] = ("coat", "dress"),
    seed: int = 0,
    val_fraction: float = 0.1,
) -> Splits:
    """MNIST 0/1 (spurious, top) over Fashion-MNIST (label, bottom); groups: label × digit.

    The inputs declare two blocks, ``top`` (the digit: the simple feature) and ``bottom`` (the
    garment), for the randomized diagnostics of ``stalwart.simplicity`` (arXiv 2006.07710).
    """
    _check_correlation(spurious_correlation)
    check_fraction("val_fraction", val_fraction)
    unknown = [c for c in classes if c not in FASHION_CLASSES]
    if unknown or classes[0] == classes[1]:
        raise ConfigError(
            f"classes must be two different Fashion-MNIST classes from {list(FASHION_CLASSES)}; "
            f"got {list(classes)}"
        )
    codes = [FASHION_CLASSES.index(c) for c in classes]
    rng = np.random.default_rng(seed)
    fashion = _pool_splits(fashion_mnist_images(), lambda y: np.isin(y, codes), val_fraction, seed)
    digits = _pool_splits(mnist_images(), lambda y: y <= 1, val_fraction, seed)

    def make(split: str) -> GroupedDataset:
        bottom, fashion_label = fashion[split]
        label = (fashion_label == codes[1]).astype(np.int64)
        digit = np.where(_agreement(len(label), split, spurious_correlation, rng), label, 1 - label)
        # Digit images are drawn with replacement from this split's own pool of 0s and 1s.
        pool_x, pool_y = digits[split]
        top = np.empty_like(bottom)
        for d in (0, 1):
            chosen = digit == d
            top[chosen] = pool_x[rng.choice(np.flatnonzero(pool_y == d), int(chosen.sum()))]
        x = to_float_images(np.concatenate([top, bottom], axis=1))
        names = [f"{c}, digit {d}" for c in classes for d in (0, 1)]
        return GroupedDataset(
            x, torch.from_numpy(label), torch.from_numpy(2 * label + digit), n_classes=2,
            group_names=names, class_names=list(classes), name=f"dominoes/{split}",
            blocks=halves(x.shape[1:]),
        )  # fmt: skip

    return Splits(train=make("train"), val=make("val"), test=make("test"))
