"""CelebA with blond hair as the label and sex as the spurious attribute, from a local copy.

As in group DRO (Sagawa et al., arXiv 1911.08731): y = ``Blond_Hair``, a = ``Male``, group
``2·y + a``: "not blond, female", "not blond, male", "blond, female", "blond, male" (blond men
are the rare group). The splits are CelebA's own (``partition`` 0 train, 1 val, 2 test).

Layout (see ``stalwart.data.sources.local_copies``), ``root`` defaulting to
``$STALWART_DATA/celeba``:

- Kaggle CSVs: ``list_attr_celeba.csv`` (``image_id`` and 40 attribute columns in {-1, 1}) and
  ``list_eval_partition.csv`` (``image_id, partition``), images in ``img_align_celeba/`` (or in
  ``img_align_celeba/img_align_celeba/``, as the Kaggle zip unpacks).
- Or the official text files, used when the CSV is absent: ``list_attr_celeba.txt`` (first line
  the number of images, second line the 40 attribute names, then ``<image_id> <40 values>`` per
  line, separated by spaces) and ``list_eval_partition.txt`` (``<image_id> <partition>`` per
  line), at the top of ``root`` or in ``Anno/`` and ``Eval/``, images in ``img_align_celeba/``
  or ``Img/img_align_celeba/``. Columns are found by name, not position.

Images are centre-cropped to a square of side ``min(width, height)`` (178 for the aligned
178×218 faces), resized to ``image_size`` (group DRO's evaluation transform) and returned as RGB
float32 in [0, 1] of shape ``(3, image_size, image_size)``. The full dataset holds 202,599 images
(about 10 GB as float32 at 64×64); ``max_examples`` caps each split for quick experiments. The
converted uint8 arrays are cached beside the copy, in ``<root>/.stalwart-cache/``. ``index`` is
the row of the attribute file. Every split must have rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stalwart.data.catalog import register_source
from stalwart.data.core import Splits
from stalwart.data.sources.local_copies import (
    LAYOUTS,
    center_crop_then_resize,
    check_image_size,
    check_max_examples,
    check_values,
    choose_splits,
    find_copy,
    fingerprint,
    first_present,
    image_splits,
    read_images,
    read_table,
    require_columns,
)
from stalwart.data.storage import cached_arrays, local_cache
from stalwart.errors import DataError

LABEL, ATTRIBUTE = "Blond_Hair", "Male"
CLASS_NAMES = ["not blond", "blond"]
GROUP_NAMES = ["not blond, female", "not blond, male", "blond, female", "blond, male"]
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


def _read_official_attributes(path: Path) -> pd.DataFrame:
    """The official ``list_attr_celeba.txt``: a count line, a names line, then rows."""
    with open(path) as handle:
        handle.readline()
        names = handle.readline().split()
    if not names:
        raise DataError(f"{path}: the second line must list the attribute names; it is empty")
    try:
        return pd.read_csv(path, sep=r"\s+", skiprows=2, header=None, names=["image_id", *names])
    except (pd.errors.ParserError, ValueError) as error:
        raise DataError(f"cannot read {path}: {error}") from None


def _read_attributes(path: Path) -> pd.DataFrame:
    if path.suffix == ".txt":
        frame = _read_official_attributes(path)
        require_columns(frame, ("image_id", LABEL, ATTRIBUTE), path)
        return frame
    return read_table(path, ("image_id", LABEL, ATTRIBUTE))


def _read_partition(path: Path) -> pd.DataFrame:
    if path.suffix == ".txt":
        return read_table(path, ("image_id", "partition"), sep=r"\s+", header=None,
                          names=["image_id", "partition"])  # fmt: skip
    return read_table(path, ("image_id", "partition"))


def _image_folder(folder: Path, first_image: str) -> Path:
    images = first_present(folder, LAYOUTS["celeba"].needs[2])
    nested = images / "img_align_celeba"  # the Kaggle zip nests the folder in itself
    if not (images / first_image).exists() and (nested / first_image).exists():
        return nested
    return images


@register_source("celeba")
def celeba(
    *,
    root: str | None = None,
    image_size: int = 64,
    max_examples: int | None = None,
    seed: int = 0,
) -> Splits:
    """CelebA from a local copy: blond hair × male, 4 groups (see the module docstring).

    Args:
        root: the folder holding the attribute and partition files; default
            ``$STALWART_DATA/celeba``.
        image_size: side of the square images returned.
        max_examples: if set, at most this many examples per split, chosen by ``seed``.
        seed: picks the capped subsets; the splits themselves are CelebA's own.

    Raises:
        DataMissingError: the folder, a metadata file or an image is missing.
        DataError: a metadata file lacks a column, or holds values out of range or images the
            other file does not list.
    """
    check_image_size(image_size)
    check_max_examples(max_examples)
    folder = find_copy("celeba", root)
    needs = LAYOUTS["celeba"].needs
    attributes_path = first_present(folder, needs[0])
    partition_path = first_present(folder, needs[1])
    attributes = _read_attributes(attributes_path)
    partition = _read_partition(partition_path)
    for column in (LABEL, ATTRIBUTE):
        check_values(attributes[column], {-1, 1}, column, attributes_path)
    check_values(partition["partition"], {0, 1, 2}, "partition", partition_path)
    split_of = dict(zip(partition["image_id"], partition["partition"], strict=True))
    image_ids = attributes["image_id"].astype(str).to_numpy()
    unlisted = [i for i in image_ids if i not in split_of]
    if unlisted:
        raise DataError(
            f"{partition_path} gives no partition for {len(unlisted)} images of "
            f"{attributes_path}, the first being {unlisted[0]!r}"
        )
    split = np.array([split_of[i] for i in image_ids], dtype=np.int64)
    chosen = choose_splits(
        split, SPLIT_IDS, max_examples, seed, name="celeba", path=partition_path,
        column="partition",
    )  # fmt: skip
    rows = np.concatenate(list(chosen.values()))
    images_folder = _image_folder(folder, image_ids[0]) if len(image_ids) else folder
    key = "celeba-" + fingerprint(
        str(folder.resolve()), attributes_path, partition_path, image_size, rows
    )
    images = cached_arrays(
        key,
        lambda: {
            "images": read_images(
                [images_folder / image_ids[r] for r in rows],
                center_crop_then_resize(image_size),
                image_size,
            )
        },
        local_cache(folder),
    )["images"]
    y_all = (attributes[LABEL].to_numpy(np.int64) == 1).astype(np.int64)
    group_all = 2 * y_all + (attributes[ATTRIBUTE].to_numpy(np.int64) == 1)

    return image_splits(
        images,
        chosen,
        y_all,
        group_all,
        group_names=GROUP_NAMES,
        class_names=CLASS_NAMES,
        name="celeba",
    )
