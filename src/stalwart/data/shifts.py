"""Named distribution shifts, added to a source's splits as extra evaluation sets.

``stalwart.data.load("fashion_mnist", shifts=["gaussian_noise_3", "rotation_5"])`` returns the
usual splits with ``Splits.extra["gaussian_noise_3"]`` and ``Splits.extra["rotation_5"]``: the
test set under those shifts, labels, groups and indices kept. The ``shifts`` parameter is
handled once, for every source, by the source registry (``stalwart.data.catalog``), so a
config's ``data: {name: ..., shifts: [...]}`` is checked before any data loads.

The shifts (Miller et al., arXiv 2107.04649, study ID vs OOD accuracy over such sets):

- ``{corruption}_{severity}``: a corruption of ``stalwart.data.corruptions`` at severity 1–5
  applied to the test images (image sources only).
- ``digits``: for MNIST-trained models, scikit-learn's 1,797 8×8 digits drawn like MNIST
  (a natural shift: another collection, NIST writers, another pipeline); see
  :func:`digits_as_mnist`.
- ``mnist``: for models trained on ``digits``, the MNIST test images reduced to 8×8 the way
  the digits were made; see :func:`mnist_as_digits`.
- ``minority``: the test examples whose spurious attribute disagrees with the label, for
  sources whose group id is ``2·label + attribute`` with a binary attribute that agrees with
  the label in most training examples.

Every shifted set is built from a fixed seed (``SHIFT_SEED`` and the corruption's name, never
the run's seed), so every model of a testbed is evaluated on the same shifted images.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import ndimage

from stalwart.data.catalog import SOURCES
from stalwart.data.core import GroupedDataset, Splits
from stalwart.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from stalwart.errors import ConfigError, DataError, closest, shorten
from stalwart.registry import Registry

SHIFT_SEED = 20_210_709  # fixed (the paper's arXiv date), independent of any run's seed

IMAGE_SOURCES = frozenset(
    {"mnist", "fashion_mnist", "digits", "colored_mnist", "dominoes", "waterbirds", "celeba"}
)
"""Sources whose inputs are images ``(C, H, W)`` in [0, 1]: the corruptions apply to them."""

SPURIOUS_SOURCES = frozenset({"colored_mnist", "dominoes", "toy_spurious", "waterbirds"})
"""Sources with group ``2·label + attribute``, the attribute agreeing with the label in most
training examples. CelebA is left out: its groups are blond × male, and "agrees" has no
meaning there (the rare group is blond men)."""

DIGIT_NAMES = [str(k) for k in range(10)]

ShiftBuilder = Callable[[Splits, str, dict[str, Any]], GroupedDataset]


@dataclass(frozen=True)
class ShiftInfo:
    """The sources a shift applies to, and one line saying what it is."""

    sources: frozenset[str]
    description: str


SHIFTS: Registry[GroupedDataset] = Registry("shift", info_type=ShiftInfo)


def available_shifts(name: str) -> list[str]:
    """The shifts that apply to data source ``name``, sorted (ConfigError on a wrong name)."""
    SOURCES.get(name)
    return [shift for shift in SHIFTS.names() if name in SHIFTS.info(shift).sources]


def check_shifts(source: str, shifts: Any) -> list[str]:
    """Check a ``shifts`` parameter for ``source``; return it as a list of names.

    Raises:
        ConfigError: not a list of names, a repeated name, an unknown shift (the closest is
            suggested), or a shift that does not apply to ``source`` (its shifts are listed).
    """
    if isinstance(shifts, str) or not isinstance(shifts, Sequence):
        raise ConfigError(
            f"dataset {source!r}: parameter 'shifts' must be a list of shift names; "
            f"got {shorten(shifts)}"
        )
    names = list(shifts)
    for shift in names:
        if not isinstance(shift, str):
            raise ConfigError(
                f"dataset {source!r}: every shift must be a name; got {shorten(shift)}"
            )
        SHIFTS.get(shift)  # an unknown name lists every shift, with the closest one
        applicable = available_shifts(source)
        if shift not in applicable:
            raise ConfigError(
                f"shift {shift!r} does not apply to dataset {source!r} "
                f"({SHIFTS.info(shift).description}){closest(shift, applicable)}; "
                f"its shifts are {applicable}"
            )
    repeated = sorted({s for s in names if names.count(s) > 1})
    if repeated:
        raise ConfigError(f"dataset {source!r}: shifts must not repeat; {repeated} do")
    return names


def add_shifts(
    splits: Splits, source: str, params: dict[str, Any], shifts: Sequence[str]
) -> Splits:
    """``splits`` with one extra evaluation set per name in ``shifts`` (checked first)."""
    names = check_shifts(source, shifts)
    if not names:
        return splits
    extra = dict(splits.extra)
    for shift in names:
        if shift in extra:
            raise DataError(
                f"dataset {source!r} already has an extra evaluation set named {shift!r}"
            )
        extra[shift] = SHIFTS.get(shift)(splits, source, params)
    return Splits(splits.train, splits.val, splits.test, extra=extra, unlabelled=splits.unlabelled)


# --- corruptions of the test set ----------------------------------------------------------------


def _relabelled(base: GroupedDataset, x: torch.Tensor, name: str) -> GroupedDataset:
    """``base`` with inputs ``x``: labels, groups, names and indices kept."""
    return GroupedDataset(
        x, base.y, base.group, n_classes=base.n_classes, group_names=base.group_names,
        index=base.index, class_names=base.class_names, name=name,
    )  # fmt: skip


def _corruption_shift(corruption: str, severity: int) -> ShiftBuilder:
    def build(splits: Splits, source: str, params: dict[str, Any]) -> GroupedDataset:
        test = splits.test
        x = test.x
        if x.ndim != 4 or not x.is_floating_point() or x.min() < 0 or x.max() > 1:
            raise DataError(
                f"shift {corruption}_{severity} needs test images (n, C, H, W) in [0, 1]; "
                f"dataset {source!r} has inputs of shape {tuple(x.shape)}, dtype {x.dtype}"
            )
        # One stream per corruption, shared by its severities: severities differ in strength
        # only, and every model (whatever its run's seed) sees the same corrupted images.
        seed = [SHIFT_SEED, zlib.crc32(corruption.encode())]
        return _relabelled(
            test, corrupt(x, corruption, severity, seed=seed), f"{source}/{corruption}_{severity}"
        )

    return build


for _corruption in CORRUPTIONS.names():
    _table = CORRUPTIONS.info(_corruption)
    for _severity in SEVERITIES:
        SHIFTS.register(
            f"{_corruption}_{_severity}",
            ShiftInfo(
                IMAGE_SOURCES,
                f"{_corruption} of the test images at severity {_severity} "
                f"({_table.parameter} {_table.values[_severity - 1]})",
            ),
        )(_corruption_shift(_corruption, _severity))


# --- natural shifts between the two digit collections -------------------------------------------

MNIST_BOX = 20
"""MNIST fits each digit into a 20×20 box (aspect kept) inside its 28×28 field."""
MNIST_SIZE = 28
DIGITS_BITMAP = 32
"""The 8×8 digits count set pixels in 4×4 blocks of a 32×32 binary bitmap (values 0–16)."""


def _centre_by_mass(images: np.ndarray, size: int) -> np.ndarray:
    """Paste each ``(h, w)`` image into a ``size``² field with its centre of mass at the centre.

    MNIST's own rule (LeCun et al. 1998): translate so that the centre of mass of the pixels
    sits at the centre of the field; integer shifts, kept inside the field.
    """
    n, height, width = images.shape
    out = np.zeros((n, size, size), dtype=np.float32)
    total = images.sum(axis=(1, 2)) + 1e-12
    row_mass = (images.sum(axis=2) * np.arange(height)).sum(axis=1) / total
    col_mass = (images.sum(axis=1) * np.arange(width)).sum(axis=1) / total
    # Measured on MNIST's own images, the centre of mass averages (14.0, 14.0) in 0-based pixel
    # coordinates of the 28×28 field: ``size / 2``, not the geometric centre 13.5.
    centre = size / 2.0
    tops = np.clip(np.round(centre - row_mass), 0, size - height).astype(int)
    lefts = np.clip(np.round(centre - col_mass), 0, size - width).astype(int)
    for i in range(n):
        out[i, tops[i] : tops[i] + height, lefts[i] : lefts[i] + width] = images[i]
    return out


def digits_as_mnist() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 8×8 digits drawn the way MNIST draws its digits.

    Each 8×8 image (values 0–16, scaled to [0, 1]) is the whole digit box, so it is enlarged
    bilinearly to MNIST's 20×20 digit box (scipy ``zoom``, zeros beyond the edge, which gives
    the anti-aliased rim MNIST's digits have) and pasted into a 28×28 field with its centre of
    mass at the centre, as MNIST does. Intensities stay in [0, 1] with black background; the
    mean intensity lands near MNIST's (0.15 against 0.13; see the tests). The strokes stay blockier
    and thicker than MNIST's: that is the natural part of the shift.

    Returns:
        images ``(1797, 1, 28, 28)`` float32 and labels ``(1797,)`` int64.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    small = (bunch.images / 16.0).astype(np.float32)
    scale = MNIST_BOX / small.shape[-1]
    large = ndimage.zoom(small, (1, scale, scale), order=1, grid_mode=True, mode="grid-constant")
    field = np.clip(_centre_by_mass(large, MNIST_SIZE), 0.0, 1.0)
    return torch.from_numpy(field).unsqueeze(1), torch.from_numpy(bunch.target.astype(np.int64))


def mnist_as_digits(images: np.ndarray) -> torch.Tensor:
    """MNIST images (uint8 ``(n, 28, 28)``) reduced to 8×8 the way the sklearn digits were made.

    The UCI "optdigits" pipeline (Alpaydin & Kaynak 1998; the data behind
    ``sklearn.datasets.load_digits``): the digit's bounding box is scaled to a 32×32 binary
    bitmap and the set pixels are counted in 4×4 blocks, giving integers 0–16. Here: crop to
    the bounding box of the ink (pixels > 0), pad to a square (aspect kept, centred), resize
    to 32×32 bilinearly, threshold at 0.5, count 4×4 blocks, divide by 16 (the ``digits``
    source's scale), so every value is a multiple of 1/16 as in the digits.
    """
    from PIL import Image

    block = DIGITS_BITMAP // 8
    out = np.zeros((len(images), DIGITS_BITMAP, DIGITS_BITMAP), dtype=np.float32)
    for i, image in enumerate(images.astype(np.float32) / 255.0):
        rows, cols = np.nonzero(image > 0)
        if len(rows) == 0:
            continue
        crop = image[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        side = max(crop.shape)
        square = np.zeros((side, side), dtype=np.float32)
        top, left = (side - crop.shape[0]) // 2, (side - crop.shape[1]) // 2
        square[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
        resized = Image.fromarray(square, mode="F").resize(
            (DIGITS_BITMAP, DIGITS_BITMAP), Image.Resampling.BILINEAR
        )
        out[i] = np.asarray(resized) > 0.5
    counts = out.reshape(len(images), 8, block, 8, block).sum(axis=(2, 4))
    return torch.from_numpy((counts / float(block * block)).astype(np.float32)).unsqueeze(1)


@SHIFTS.register(
    "digits",
    ShiftInfo(frozenset({"mnist"}), "scikit-learn's 8×8 digits drawn as 28×28 MNIST images"),
)
def digits_shift(splits: Splits, source: str, params: dict[str, Any]) -> GroupedDataset:
    """All 1,797 scikit-learn digits as MNIST-like 28×28 images (see :func:`digits_as_mnist`)."""
    x, y = digits_as_mnist()
    return GroupedDataset(
        x, y, y, n_classes=10, group_names=DIGIT_NAMES, class_names=DIGIT_NAMES,
        name=f"{source}/digits",
    )  # fmt: skip


@SHIFTS.register(
    "mnist",
    ShiftInfo(frozenset({"digits"}), "MNIST test images reduced to 8×8 as the digits were"),
)
def mnist_shift(splits: Splits, source: str, params: dict[str, Any]) -> GroupedDataset:
    """The MNIST test images as 8×8 digits (see :func:`mnist_as_digits`); needs MNIST."""
    from stalwart.data.sources.images import mnist_images

    pool = mnist_images()  # a missing package says how to install it
    y = torch.from_numpy(pool.test_y.astype(np.int64))
    return GroupedDataset(
        mnist_as_digits(pool.test_x), y, y, n_classes=10, group_names=DIGIT_NAMES,
        class_names=DIGIT_NAMES, name=f"{source}/mnist",
    )  # fmt: skip


# --- subpopulation shift ------------------------------------------------------------------------


@SHIFTS.register(
    "minority",
    ShiftInfo(SPURIOUS_SOURCES, "test examples whose spurious attribute disagrees with the label"),
)
def minority_shift(splits: Splits, source: str, params: dict[str, Any]) -> GroupedDataset:
    """The test examples whose attribute disagrees with the label (group ``2·y + (1 − y)``)."""
    test = splits.test
    if test.n_groups != 2 * test.n_classes or test.n_classes != 2:
        raise DataError(
            f"shift 'minority' needs groups 2·label + attribute with 2 classes; dataset "
            f"{source!r} has {test.n_classes} classes and {test.n_groups} groups"
        )
    attribute = test.group % 2
    positions = torch.nonzero(attribute != test.y).flatten()
    if len(positions) == 0:
        raise DataError(f"dataset {source!r}: no test example is in a minority group")
    return test.subset(positions, name=f"{source}/minority")
