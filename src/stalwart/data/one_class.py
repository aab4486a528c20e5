"""Data for one-class anomaly detection: a container of splits and the standard benchmarks.

One-class classification learns from normal examples only and scores how anomalous new ones
are; DROCC (Goyal et al., "DROCC: Deep Robust One-Class Classification", ICML 2020,
arXiv 2002.12718) is the method this data serves. Labels everywhere are 1 = anomaly,
0 = normal. Training holds normals only, except in the limited-negatives setting (DROCC-LF),
where it also holds a few labelled negatives. Validation and test hold both.

Sources: tabular data split by :func:`one_class_split` (scikit-learn's breast cancer and wine,
and the ODDS files), one-vs-rest images (Ruff et al., "Deep One-Class Classification", ICML
2018), and the DROCC-LF MNIST setting with masked "close negatives".
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from stalwart.data.splitting import check_fraction
from stalwart.errors import ConfigError, DataError

if TYPE_CHECKING:
    from stalwart.data.sources.images import ImagePool

IMAGE_SOURCES = ("fashion_mnist", "mnist")
WINE_ANOMALIES = 10
"""Wine anomalies kept, as in ODDS's wine set: 10 of class 0 against classes 1 and 2."""


@dataclass(frozen=True)
class OneClassData:
    """Train/validation/test data for one-class anomaly detection.

    Attributes:
        name: the dataset's name, for reports.
        train_x: training inputs, float32 (n, ...).
        val_x: validation inputs.
        val_y: validation labels, int64, 1 = anomaly, 0 = normal.
        test_x: test inputs.
        test_y: test labels.
        train_y: training labels; None in the pure one-class setting, where training holds
            normals only. Set in the limited-negatives setting (labelled negatives are 1).
        val_close: bool mask of the validation "close negatives" (anomalies made by slightly
            corrupting normals), or None where there are none.
        test_close: the same for the test set.

    Raises:
        DataError: inputs are not float32 or differ in shape between splits, labels are not
            int64 0/1 or disagree in length with their inputs, or a close-negative mask is not
            a bool mask of anomalies.
    """

    name: str
    train_x: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    train_y: np.ndarray | None = None
    val_close: np.ndarray | None = None
    test_close: np.ndarray | None = None

    def __post_init__(self) -> None:
        for split, x in (("train", self.train_x), ("val", self.val_x), ("test", self.test_x)):
            if x.dtype != np.float32:
                raise DataError(f"{self.name}: {split}_x must be float32; it is {x.dtype}")
        shapes = {self.train_x.shape[1:], self.val_x.shape[1:], self.test_x.shape[1:]}
        if len(shapes) != 1:
            raise DataError(f"{self.name}: train, val and test inputs differ in shape: {shapes}")
        for split, x, y in (
            ("train", self.train_x, self.train_y),
            ("val", self.val_x, self.val_y),
            ("test", self.test_x, self.test_y),
        ):
            if y is None:
                continue
            if y.dtype != np.int64 or y.ndim != 1:
                raise DataError(f"{self.name}: {split}_y must be a 1-D int64 array")
            if len(y) != len(x):
                raise DataError(f"{self.name}: {split} has {len(x)} inputs but {len(y)} labels")
            if not np.isin(y, (0, 1)).all():
                raise DataError(f"{self.name}: {split} labels must be 0 (normal) or 1 (anomaly)")
        for split, close, y in (
            ("val", self.val_close, self.val_y),
            ("test", self.test_close, self.test_y),
        ):
            if close is None:
                continue
            if close.dtype != bool or close.shape != y.shape:
                raise DataError(f"{self.name}: {split}_close must be a bool mask like {split}_y")
            if (y[close] != 1).any():
                raise DataError(f"{self.name}: {split}_close marks a normal; close are anomalies")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input: ``(d,)`` for tabular data, ``(1, 28, 28)`` for images."""
        return tuple(self.train_x.shape[1:])

    @property
    def n_features(self) -> int:
        """The number of values in one input (d, or 784 for a 28×28 image)."""
        return int(np.prod(self.input_shape))

    def describe(self) -> str:
        """A one-line summary: examples per split, normals and anomalies."""

        def counts(y: np.ndarray | None, n: int, close: np.ndarray | None = None) -> str:
            if y is None:
                return f"{n} normal"
            text = f"{int((y == 0).sum())} normal + {int((y == 1).sum())} anomalies"
            return text + (f" ({int(close.sum())} close)" if close is not None else "")

        return (
            f"{self.name}: train {counts(self.train_y, len(self.train_x))}; "
            f"val {counts(self.val_y, len(self.val_x), self.val_close)}; "
            f"test {counts(self.test_y, len(self.test_x), self.test_close)}; "
            f"{self.n_features} features"
        )

    def standardized(self) -> OneClassData:
        """A copy with every split standardized by the training inputs' mean and std.

        As in the DROCC reference code for tabular data, the statistics come from training
        only. Features constant in training are centred but not scaled (std taken as 1), where
        the reference divides by ``std + 1e-4`` and so multiplies any test deviation by 10⁴.
        """
        mean = self.train_x.mean(axis=0, dtype=np.float64)
        std = self.train_x.std(axis=0, dtype=np.float64)
        std[std == 0] = 1.0

        def scale(x: np.ndarray) -> np.ndarray:
            return ((x - mean) / std).astype(np.float32)

        return dataclasses.replace(
            self, train_x=scale(self.train_x), val_x=scale(self.val_x), test_x=scale(self.test_x)
        )


def one_class_split(
    name: str,
    X: np.ndarray,  # noqa: N803  (the conventional name of a feature matrix)
    y: np.ndarray,
    *,
    seed: int,
    train: float = 0.6,
    val: float = 0.15,
    val_anomalies: float = 0.25,
) -> OneClassData:
    """Split labelled data into normal-only training data and mixed validation and test data.

    Normals (``y == 0``) are shuffled and split ``train`` / ``val`` / the rest (test);
    anomalies go ``val_anomalies`` to validation and the rest to test. Validation always gets
    at least one normal and one anomaly. Within each split the original order is kept.

    Args:
        name: the dataset's name.
        X: inputs, (n, ...) numeric.
        y: labels, (n,), 1 = anomaly, 0 = normal.
        seed: seeds the shuffle; the same seed gives the same split.
        train: fraction of the normals used for training.
        val: fraction of the normals used for validation (``train + val < 1``).
        val_anomalies: fraction of the anomalies used for validation.

    Raises:
        ConfigError: a fraction is not strictly between 0 and 1, or ``train + val >= 1``.
        DataError: X and y disagree in length, labels are not 0/1, X has NaN or infinite
            values, or there are too few normals or anomalies to fill every split.
    """
    for label, fraction in (("train", train), ("val", val), ("val_anomalies", val_anomalies)):
        check_fraction(label, fraction)
    if train + val >= 1.0:
        raise ConfigError(
            f"{name}: train ({train}) + val ({val}) must be below 1, so that some normals are "
            "left for the test set"
        )
    X, y = np.asarray(X), np.asarray(y).reshape(-1)
    if len(X) != len(y):
        raise DataError(f"{name}: X has {len(X)} rows but y has {len(y)} labels")
    if not np.isin(y, (0, 1)).all():
        raise DataError(f"{name}: y must hold only 0 (normal) and 1 (anomaly)")
    X = X.astype(np.float32)
    bad_rows = ~np.isfinite(X.reshape(len(X), -1)).all(axis=1)
    if bad_rows.any():
        raise DataError(
            f"{name}: X has NaN or infinite values in {int(bad_rows.sum())} of {len(X)} rows; "
            "drop or impute them first"
        )
    rng = np.random.default_rng(seed)
    normals = rng.permutation(np.flatnonzero(y == 0))
    anomalies = rng.permutation(np.flatnonzero(y == 1))
    n_train = round(train * len(normals))
    n_val = max(1, round(val * len(normals)))
    n_val_anomalies = max(1, round(val_anomalies * len(anomalies)))
    if n_train < 2 or len(normals) - n_train - n_val < 1:
        raise DataError(
            f"{name}: {len(normals)} normals give {n_train} for training, {n_val} for "
            f"validation and {len(normals) - n_train - n_val} for test; training needs at "
            "least 2 and test at least 1: use more data or change train/val"
        )
    if len(anomalies) - n_val_anomalies < 1:
        raise DataError(
            f"{name}: {len(anomalies)} anomalies cannot fill both validation and test (each "
            "needs at least one); use data with more anomalies"
        )
    train_rows = np.sort(normals[:n_train])
    val_rows = np.sort(
        np.concatenate([normals[n_train : n_train + n_val], anomalies[:n_val_anomalies]])
    )
    test_rows = np.sort(np.concatenate([normals[n_train + n_val :], anomalies[n_val_anomalies:]]))
    labels = y.astype(np.int64)
    return OneClassData(
        name=name,
        train_x=X[train_rows],
        val_x=X[val_rows],
        val_y=labels[val_rows],
        test_x=X[test_rows],
        test_y=labels[test_rows],
    )


def breast_cancer(
    *, seed: int, train: float = 0.6, val: float = 0.15, val_anomalies: float = 0.25
) -> OneClassData:
    """scikit-learn's Wisconsin diagnostic breast cancer data: benign normal, malignant anomalous.

    All 569 examples (357 benign, 212 malignant, 30 features), split by
    :func:`one_class_split`. ODDS's ``wbc`` is the same data with the malignant class cut to
    21 examples.
    """
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    malignant = list(bunch.target_names).index("malignant")
    anomalous = (bunch.target == malignant).astype(np.int64)
    return one_class_split(
        "breast_cancer", bunch.data, anomalous, seed=seed, train=train, val=val,
        val_anomalies=val_anomalies,
    )  # fmt: skip


def wine(
    *, seed: int, train: float = 0.6, val: float = 0.15, val_anomalies: float = 0.25
) -> OneClassData:
    """scikit-learn's wine data made an anomaly-detection set as ODDS's ``wine`` is.

    Classes 1 and 2 (119 wines) are normal; 10 wines of class 0, drawn once with a fixed seed
    (the same set for every ``seed``), are the anomalies: 129 examples, 13 features, 7.8%
    anomalous (Rayana, ODDS Library, 2016). Keeping all of class 0 instead would make anomalies
    the majority (107 of 178) under any choice of normal class, which is not anomaly detection.
    """
    from sklearn.datasets import load_wine

    bunch = load_wine()
    normal = np.flatnonzero(bunch.target != 0)
    outliers = np.random.default_rng(0).choice(
        np.flatnonzero(bunch.target == 0), WINE_ANOMALIES, replace=False
    )
    rows = np.sort(np.concatenate([normal, outliers]))
    anomalous = (bunch.target[rows] == 0).astype(np.int64)
    return one_class_split(
        "wine", bunch.data[rows], anomalous, seed=seed, train=train, val=val,
        val_anomalies=val_anomalies,
    )  # fmt: skip


def odds(
    name_or_path: str | Path,
    *,
    seed: int,
    folder: str | Path | None = None,
    train: float = 0.6,
    val: float = 0.15,
    val_anomalies: float = 0.25,
) -> OneClassData:
    """An ODDS benchmark file (Rayana, 2016), split by :func:`one_class_split`.

    Args:
        name_or_path: a file stem such as ``"arrhythmia"``, found in the ODDS folder (see
            :func:`stalwart.data.sources.odds.odds_folder`), or a path to a ``.mat`` file.
        seed: seeds the split.
        folder: the folder holding the files; default ``$STALWART_ODDS``, else
            ``$STALWART_DATA/odds``.
        train: fraction of the normals used for training.
        val: fraction of the normals used for validation.
        val_anomalies: fraction of the anomalies used for validation.

    Raises:
        DataMissingError: the file or folder is missing.
        DataError: the file is malformed (see :func:`stalwart.data.sources.odds.read_odds`).
    """
    from stalwart.data.sources.odds import odds_path, read_odds

    path = odds_path(name_or_path, folder)
    X, y = read_odds(path)
    return one_class_split(
        path.stem, X, y, seed=seed, train=train, val=val, val_anomalies=val_anomalies
    )


def _image_pool(images: str) -> ImagePool:
    from stalwart.data.sources.images import fashion_mnist_images, mnist_images

    if images not in IMAGE_SOURCES:
        raise ConfigError(f"images must be one of {list(IMAGE_SOURCES)}; got {images!r}")
    return fashion_mnist_images() if images == "fashion_mnist" else mnist_images()


def _float_images(images: np.ndarray) -> np.ndarray:
    from stalwart.data.sources.images import to_float_images

    return to_float_images(images).numpy()


def one_vs_rest(
    images: Literal["fashion_mnist", "mnist"],
    normal_class: int,
    *,
    seed: int,
    n_train: int | None = None,
    n_val: int = 500,
) -> OneClassData:
    """One class of an image set is normal, the other nine anomalous (Ruff et al., ICML 2018).

    The classic protocol that DROCC follows on CIFAR-10 and that applies to any labelled image
    set. Validation takes ``n_val`` images drawn at random from the training pool (every class,
    so about 10% normal); training takes the normal class's images among the rest (at most
    ``n_train`` of them, drawn at random; all where fewer are left); the test set is the whole
    test pool. Images are float32 (N, 1, 28, 28) in [0, 1]; labels are 1 unless of
    ``normal_class``.

    Raises:
        ConfigError: an unknown image set, a class outside 0–9, or sizes out of range.
        DataError: validation drew no normal or no anomaly (raise ``n_val``).
        DataMissingError: the image set is not installed (the message gives the command).
    """
    if not 0 <= normal_class <= 9:
        raise ConfigError(f"normal_class must be a class index 0-9; got {normal_class}")
    pool = _image_pool(images)
    n_pool = len(pool.train_y)
    if not 2 <= n_val < n_pool:
        raise ConfigError(f"n_val must lie between 2 and {n_pool - 1} (the pool's size - 1)")
    rng = np.random.default_rng([seed, 0])
    order = rng.permutation(n_pool)
    val_rows = np.sort(order[:n_val])
    rest = np.sort(order[n_val:])
    candidates = rest[pool.train_y[rest] == normal_class]
    if n_train is not None:
        if n_train < 2:
            raise ConfigError(f"{images}: n_train must be at least 2; got {n_train}")
        if n_train < len(candidates):  # at most n_train: a class with fewer keeps them all
            candidates = np.sort(
                np.random.default_rng([seed, 1]).choice(candidates, n_train, False)
            )
    val_y = (pool.train_y[val_rows] != normal_class).astype(np.int64)
    if val_y.all() or not val_y.any():
        raise DataError(
            f"{images}: the {n_val} validation images hold no "
            f"{'normal' if val_y.all() else 'anomalous'} image; raise n_val"
        )
    return OneClassData(
        name=f"{images}/{normal_class}-vs-rest",
        train_x=_float_images(pool.train_x[candidates]),
        val_x=_float_images(pool.train_x[val_rows]),
        val_y=val_y,
        test_x=_float_images(pool.test_x),
        test_y=(pool.test_y != normal_class).astype(np.int64),
    )


def mask_pixels(images: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Copies of ``images`` with ``round(fraction · pixels)`` pixels of each set to 0.

    The pixels are drawn at random, independently for each image, and set to the darkest value,
    as the DROCC-LF reference code makes its close negatives from MNIST zeros (it masks 40%
    of the pixels of a whole batch at once; here each image loses exactly its share).
    """
    n, pixels = len(images), int(np.prod(images.shape[1:]))
    k = round(fraction * pixels)
    masked = images.reshape(n, pixels).copy()
    # The k smallest of a row of uniform keys are a uniform random k-subset of the pixels.
    chosen = np.argpartition(rng.random((n, pixels)), k, axis=1)[:, :k] if k < pixels else None
    if chosen is None:
        masked[:] = 0
    else:
        np.put_along_axis(masked, chosen, 0, axis=1)
    return masked.reshape(images.shape)


def limited_negatives_mnist(
    *, seed: int, mask_fraction: float = 0.4, n_val: int = 500
) -> OneClassData:
    """MNIST zeros as normals with a few labelled negatives: the DROCC-LF setting.

    DROCC-LF (Goyal et al., 2020, Section 5) learns from normals plus a few labelled negatives
    and is tested on "close negatives" that resemble normals. Following the reference
    (microsoft/EdgeML, examples/pytorch/DROCC/main_drocclf_mnist.py): digit 0 is normal, digit
    1 is the labelled negative; close negatives are copies of held-out zeros with
    ``mask_fraction`` of their pixels, drawn at random, set to 0.

    Training holds the training pool's zeros and ones except ``n_val`` of them, drawn at
    random, that form validation; the test set holds the test pool's zeros and ones. Each of
    validation and test then gets one masked copy of each of its zeros (label 1, marked in
    ``val_close`` / ``test_close``), placed after its zeros and ones in the same order as the
    zeros they copy.

    Raises:
        ConfigError: ``mask_fraction`` not strictly between 0 and 1, or ``n_val`` out of range.
        DataError: validation drew no zero or no one (raise ``n_val``).
        DataMissingError: MNIST is not installed (the message gives the command).
    """
    check_fraction("mask_fraction", mask_fraction)
    pool = _image_pool("mnist")
    pool_rows = np.flatnonzero(np.isin(pool.train_y, (0, 1)))
    if not 2 <= n_val < len(pool_rows) - 1:
        raise ConfigError(
            f"n_val must lie between 2 and {len(pool_rows) - 2} (the training pool holds "
            f"{len(pool_rows)} zeros and ones); got {n_val}"
        )
    order = np.random.default_rng([seed, 0]).permutation(pool_rows)
    val_rows, train_rows = np.sort(order[:n_val]), np.sort(order[n_val:])
    val_digits = pool.train_y[val_rows]
    if (val_digits == 0).all() or (val_digits == 1).all():
        raise DataError(f"mnist: the {n_val} validation images hold only one digit; raise n_val")
    mask_rng = np.random.default_rng([seed, 1])

    def with_close_negatives(
        images: np.ndarray, digits: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        zeros, ones = images[digits == 0], images[digits == 1]
        close = mask_pixels(_float_images(zeros), mask_fraction, mask_rng)
        x = np.concatenate([_float_images(zeros), _float_images(ones), close])
        y = np.repeat(np.array([0, 1, 1], dtype=np.int64), [len(zeros), len(ones), len(close)])
        is_close = np.zeros(len(y), dtype=bool)
        is_close[len(zeros) + len(ones) :] = True
        return x, y, is_close

    test_rows = np.flatnonzero(np.isin(pool.test_y, (0, 1)))
    val_x, val_y, val_close = with_close_negatives(pool.train_x[val_rows], val_digits)
    test_x, test_y, test_close = with_close_negatives(
        pool.test_x[test_rows], pool.test_y[test_rows]
    )
    return OneClassData(
        name="mnist/limited-negatives",
        train_x=_float_images(pool.train_x[train_rows]),
        train_y=(pool.train_y[train_rows] == 1).astype(np.int64),
        val_x=val_x,
        val_y=val_y,
        val_close=val_close,
        test_x=test_x,
        test_y=test_y,
        test_close=test_close,
    )
