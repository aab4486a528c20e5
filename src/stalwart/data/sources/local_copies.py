"""Datasets that cannot ship with stalwart, read from a user's own copy in its standard layout.

Waterbirds, CelebA, MultiNLI and CivilComments have licences or sizes that keep them out of any
package. Each source reads the folder passed as ``root`` or, by default, ``$STALWART_DATA/<name>``.
The folder may be the dataset's own folder or the folder that holds it under its usual name
(``waterbird_complete95_forest2water2/``, ``civilcomments_v1.0/``, ...). When a needed file is
missing, the error names it, shows the expected layout and says where to get the data.

This module holds what the four sources share: their layouts, finding the folder, checking
files and columns, capping splits for quick runs, and reading images with Pillow.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from stalwart.data.core import GroupedDataset, Splits
from stalwart.data.storage import check_data_home, data_home
from stalwart.errors import ConfigError, DataError, DataMissingError


@dataclass(frozen=True)
class LocalLayout:
    """The files a local copy must hold, and where the data can be obtained.

    Args:
        name: the source name, also the default folder ``$STALWART_DATA/<name>``.
        needs: the files or folders that must exist; each entry lists the relative paths that
            are accepted for it (the first one present is used).
        subfolders: folders inside ``root`` where the files may sit, tried in order.
        layout: the expected layout, for error messages.
        obtain: where the data can be downloaded.
    """

    name: str
    needs: tuple[tuple[str, ...], ...]
    subfolders: tuple[str, ...]
    layout: str
    obtain: str


LAYOUTS: dict[str, LocalLayout] = {
    layout.name: layout
    for layout in (
        LocalLayout(
            name="waterbirds",
            needs=(("metadata.csv",),),
            subfolders=("", "waterbird_complete95_forest2water2"),
            layout=(
                "<root>/metadata.csv with columns img_id, img_filename, y, split, place, "
                "place_filename (y: 1 = waterbird; place: 1 = water background; split: 0 train, "
                "1 val, 2 test), and each image at <root>/<img_filename>, e.g. "
                "<root>/001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg"
            ),
            obtain=(
                "the group DRO tarball https://nlp.stanford.edu/data/dro/"
                "waterbird_complete95_forest2water2.tar.gz (github.com/kohpangwei/group_DRO); "
                "unpack it and use the waterbird_complete95_forest2water2 folder"
            ),
        ),
        LocalLayout(
            name="celeba",
            needs=(
                ("list_attr_celeba.csv", "list_attr_celeba.txt", "Anno/list_attr_celeba.txt"),
                (
                    "list_eval_partition.csv",
                    "list_eval_partition.txt",
                    "Eval/list_eval_partition.txt",
                ),
                ("img_align_celeba", "Img/img_align_celeba"),
            ),
            subfolders=("", "data", "celeba-dataset"),
            layout=(
                "Kaggle layout: <root>/list_attr_celeba.csv (image_id and 40 attributes in "
                "{-1, 1}, Blond_Hair and Male among them), <root>/list_eval_partition.csv "
                "(image_id, partition 0 train / 1 val / 2 test) and the JPEGs in "
                "<root>/img_align_celeba/ (or img_align_celeba/img_align_celeba/ as the Kaggle "
                "zip unpacks). The official files list_attr_celeba.txt and "
                "list_eval_partition.txt (at <root>/ or in Anno/ and Eval/, images in "
                "Img/img_align_celeba/) are accepted instead of the CSVs"
            ),
            obtain=(
                "Kaggle https://www.kaggle.com/datasets/jessicali9530/celeba-dataset, or the "
                "official site https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html "
                "(Aligned&Cropped images)"
            ),
        ),
        LocalLayout(
            name="multinli",
            needs=(
                ("metadata_random.csv", "data/metadata_random.csv"),
                ("train.tsv", "glue_data/MNLI/train.tsv"),
                ("dev_matched.tsv", "glue_data/MNLI/dev_matched.tsv"),
                ("dev_mismatched.tsv", "glue_data/MNLI/dev_mismatched.tsv"),
            ),
            subfolders=("",),
            layout=(
                "<root>/metadata_random.csv (group DRO split: columns gold_label, split and "
                "optionally sentence2_has_negation, one row per example) and the GLUE MNLI files "
                "<root>/train.tsv, <root>/dev_matched.tsv, <root>/dev_mismatched.tsv (columns "
                "sentence1, sentence2, ..., gold_label). The metadata rows follow the rows of the "
                "three TSV files in that order. The group DRO layout <root>/data/"
                "metadata_random.csv with <root>/glue_data/MNLI/*.tsv is accepted too; the "
                "cached BERT feature files are pickles and are never read"
            ),
            obtain=(
                "metadata_random.csv from github.com/kohpangwei/group_DRO "
                "(dataset_metadata/multinli/), and the GLUE MNLI files from "
                "https://dl.fbaipublicfiles.com/glue/data/MNLI.zip"
            ),
        ),
        LocalLayout(
            name="civilcomments",
            needs=(("all_data_with_identities.csv",),),
            subfolders=("", "civilcomments_v1.0"),
            layout=(
                "<root>/all_data_with_identities.csv (WILDS CivilComments; first column the row "
                "index) with columns comment_text, split (train/val/test), toxicity and the "
                "identity columns male, female, LGBTQ, christian, muslim, other_religions, "
                "black, white, identity_any"
            ),
            obtain=(
                "the WILDS CivilComments archive civilcomments_v1.0 "
                "(https://wilds.stanford.edu/datasets/; with the wilds package: "
                "wilds.get_dataset('civilcomments', download=True))"
            ),
        ),
    )
}

LOCAL_COPY = frozenset(LAYOUTS)
"""Sources that read a user's own copy and so cannot load with their defaults alone."""


def default_root(name: str) -> Path:
    """Where a local copy is looked for when no ``root`` is given: ``$STALWART_DATA/<name>``."""
    return data_home() / name


def _layout(name: str) -> LocalLayout:
    if name not in LAYOUTS:
        raise ConfigError(f"{name!r} is not a local-copy dataset; choose from {sorted(LAYOUTS)}")
    return LAYOUTS[name]


def how_to_get(name: str) -> str:
    """The expected layout and where to obtain dataset ``name``, for messages."""
    layout = _layout(name)
    return (
        f"Expected layout of a local {name} copy:\n    {layout.layout}\n"
        f"Get it from {layout.obtain}.\n"
        f"Then pass root='<folder>' or put it in $STALWART_DATA/{name} ({default_root(name)})."
    )


def _missing_needs(layout: LocalLayout, folder: Path) -> list[tuple[str, ...]]:
    return [paths for paths in layout.needs if not any((folder / p).exists() for p in paths)]


def find_copy(name: str, root: str | None) -> Path:
    """The folder holding the local copy of ``name``.

    Raises:
        DataMissingError: the folder, or a file it needs, is missing; the message names the
            missing file, the expected layout and where to get the data.
        DataError: no ``root`` is given and ``$STALWART_DATA`` is a file.
    """
    layout = _layout(name)
    if not root:
        check_data_home()  # "$STALWART_DATA is a file" says more than "folder not found"
    base = Path(root).expanduser() if root else default_root(name)
    if not base.is_dir():
        raise DataMissingError(
            f"{name}: the folder {base} does not exist; {name} cannot ship with stalwart and "
            f"is read from your own copy.\n{how_to_get(name)}"
        )
    candidates = [base / sub if sub else base for sub in layout.subfolders]
    closest_folder, closest_missing = base, _missing_needs(layout, base)
    for folder in candidates:
        missing = _missing_needs(layout, folder)
        if not missing:
            return folder
        if len(missing) < len(closest_missing):
            closest_folder, closest_missing = folder, missing
    first = " or ".join(str(closest_folder / p) for p in closest_missing[0])
    raise DataMissingError(
        f"{name}: missing {first} ({len(closest_missing)} of the {len(layout.needs)} needed "
        f"files or folders are absent).\n{how_to_get(name)}"
    )


def first_present(folder: Path, paths: Sequence[str]) -> Path:
    """The first of ``paths`` (relative to ``folder``) that exists."""
    for relative in paths:
        if (folder / relative).exists():
            return folder / relative
    raise DataMissingError(f"{folder} has none of {list(paths)}")


def local_copy_status(name: str) -> tuple[bool, str]:
    """Whether ``$STALWART_DATA/<name>`` holds a usable copy, and a one-line note for listings.

    Only the metadata files are checked, not every image.
    """
    try:
        folder = find_copy(name, None)
    except DataMissingError:
        return False, (
            f"local copy: put it in $STALWART_DATA/{name} ({default_root(name)}); "
            f"get it from {_layout(name).obtain}"
        )
    return True, f"local copy found in {folder}"


def read_table(path: Path, columns: Sequence[str], **options: Any) -> pd.DataFrame:
    """Read a CSV or TSV with pandas and check that it has ``columns``.

    Raises:
        DataError: the file cannot be parsed or lacks a column (named in the message).
    """
    try:
        frame = pd.read_csv(path, **options)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read {path}: {error}") from None
    require_columns(frame, columns, path)
    return frame


def require_columns(frame: pd.DataFrame, columns: Sequence[str], path: Path) -> None:
    """Raise ``DataError`` naming the columns of ``columns`` that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path} lacks the column(s) {missing}; it has {list(frame.columns)[:50]}. "
            f"Needed: {list(columns)}"
        )


def check_values(values: pd.Series, allowed: set, column: str, path: Path) -> None:
    """Raise ``DataError`` if ``values`` holds anything outside ``allowed``."""
    bad = ~values.isin(list(allowed))
    if bad.any():
        found = sorted({str(v) for v in values[bad].unique()})[:5]
        raise DataError(
            f"{path}: column {column!r} must take values in {sorted(map(str, allowed))}; "
            f"found {found} ({int(bad.sum())} rows, first at row {int(np.flatnonzero(bad)[0])})"
        )


def check_max_examples(max_examples: int | None) -> None:
    """Raise ``ConfigError`` unless ``max_examples`` is None or positive."""
    if max_examples is not None and max_examples < 1:
        raise ConfigError(f"max_examples must be at least 1 or None; got {max_examples}")


def choose_splits(
    split: np.ndarray,
    split_values: Mapping[str, object],
    max_examples: int | None,
    seed: int,
    *,
    name: str,
    path: Path,
    column: str,
) -> dict[str, np.ndarray]:
    """The rows of each split (``split == value``), capped to ``max_examples`` by ``seed``.

    Args:
        split: the split column of every row.
        split_values: each split's name and the value that marks its rows, in order.
        max_examples: if set, at most this many rows per split, chosen by ``(seed, k)`` for
            the ``k``-th split.
        seed: picks the capped subsets.
        name: the dataset, for messages.
        path: the file the split column came from, for messages.
        column: the split column's name, for messages.

    Raises:
        DataError: a split has no rows; the message names it, the file and the column.
    """
    chosen = {}
    for k, (split_name, value) in enumerate(split_values.items()):
        rows = np.flatnonzero(split == value)
        if len(rows) == 0:
            counts = {s: int(np.sum(split == v)) for s, v in split_values.items()}
            raise DataError(
                f"{name}: split {split_name!r} has no examples: no row of {path} has "
                f"{column} = {value!r} (rows per split: {counts}); the local copy needs rows "
                "for every split"
            )
        chosen[split_name] = cap(rows, max_examples, (seed, k))
    return chosen


def cap(positions: np.ndarray, max_examples: int | None, seed: int | Sequence[int]) -> np.ndarray:
    """At most ``max_examples`` of ``positions``, a random subset chosen by ``seed``, sorted."""
    if max_examples is None or len(positions) <= max_examples:
        return positions
    chosen = np.random.default_rng(seed).choice(len(positions), max_examples, replace=False)
    return positions[np.sort(chosen)]


def fingerprint(*parts: object) -> str:
    """A short hash of ``parts``; files count by path, size and modification time.

    Used in cache keys so that a changed metadata file or another folder never reads a stale
    cache.
    """
    digest = hashlib.sha1()
    for part in parts:
        if isinstance(part, Path):
            stat = part.stat()
            part = f"{part.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        elif isinstance(part, np.ndarray):
            part = hashlib.sha1(np.ascontiguousarray(part).tobytes()).hexdigest()
        digest.update(str(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def check_image_size(image_size: int) -> None:
    """Raise ``ConfigError`` unless ``image_size`` is at least 8 pixels."""
    if image_size < 8:
        raise ConfigError(f"image_size must be at least 8 pixels; got {image_size}")


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise DataMissingError(
            "reading images needs Pillow; install it with\n    pip install pillow"
        ) from None
    return Image


def _crop_box(width: int, height: int, crop_w: int, crop_h: int) -> tuple[int, int, int, int]:
    # The same rounding as torchvision's center crop, so crops match the reference code.
    left = int(round((width - crop_w) / 2.0))
    top = int(round((height - crop_h) / 2.0))
    return left, top, left + crop_w, top + crop_h


def resize_then_center_crop(size: int, scale: float = 256.0 / 224.0) -> Callable[[Any], Any]:
    """Resize to a square of side ``int(size·scale)``, then crop the central ``size`` square.

    The Waterbirds evaluation transform of group DRO (``Resize(256/224·s)``, ``CenterCrop(s)``).
    """
    Image = _pillow()
    resized = int(size * scale)

    def transform(image: Any) -> Any:
        image = image.resize((resized, resized), Image.BILINEAR)
        return image.crop(_crop_box(resized, resized, size, size))

    return transform


def center_crop_then_resize(size: int) -> Callable[[Any], Any]:
    """Crop the central square of side ``min(width, height)``, then resize it to ``size``.

    For CelebA's 178×218 aligned faces this is group DRO's ``CenterCrop(178)``, ``Resize(s)``.
    """
    Image = _pillow()

    def transform(image: Any) -> Any:
        side = min(image.size)
        image = image.crop(_crop_box(*image.size, side, side))
        return image.resize((size, size), Image.BILINEAR)

    return transform


def read_images(paths: Sequence[Path], transform: Callable[[Any], Any], size: int) -> np.ndarray:
    """Images as uint8 of shape ``(N, 3, size, size)``, RGB, read in parallel threads.

    Raises:
        DataMissingError: an image file is missing (the first one is named).
        DataError: an image cannot be decoded or has the wrong size after ``transform``.
    """
    Image = _pillow()
    absent = [p for p in paths if not p.is_file()]
    if absent:
        raise DataMissingError(
            f"{len(absent)} of {len(paths)} image files are missing; the first is {absent[0]}"
        )

    def read(path: Path) -> np.ndarray:
        try:
            with Image.open(path) as image:
                array = np.asarray(transform(image.convert("RGB")), dtype=np.uint8)
        except OSError as error:  # PIL raises OSError subclasses for truncated or unknown files
            raise DataError(f"cannot decode the image {path}: {error}") from None
        if array.shape != (size, size, 3):
            raise DataError(f"{path}: expected a {size}×{size} RGB image, got {array.shape}")
        return array.transpose(2, 0, 1)

    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    # Decoding and resizing release the GIL, so threads use several cores without copies.
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for i, array in enumerate(pool.map(read, paths)):
            out[i] = array
    return out


def to_float_images(images: np.ndarray) -> torch.Tensor:
    """uint8 ``(N, 3, H, W)`` → float32 in [0, 1]."""
    return torch.from_numpy(images).float().div_(255.0)


def image_splits(
    images: np.ndarray,
    chosen: dict[str, np.ndarray],
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    group_names: Sequence[str],
    class_names: Sequence[str],
    name: str,
) -> Splits:
    """Splits from images stored split after split in the order of ``chosen``.

    Args:
        images: uint8 images of every chosen row, the rows of ``chosen["train"]`` first, then
            those of ``"val"``, then ``"test"``.
        chosen: the metadata rows of each split.
        labels: the label of every metadata row.
        groups: the group id of every metadata row.
        group_names: readable group names.
        class_names: readable class names.
        name: the dataset's name, for messages.
    """
    parts, start = {}, 0
    for split, positions in chosen.items():
        stop = start + len(positions)
        parts[split] = GroupedDataset(
            to_float_images(images[start:stop]),
            torch.from_numpy(labels[positions]),
            torch.from_numpy(groups[positions]),
            n_classes=len(class_names), group_names=group_names, class_names=class_names,
            index=torch.from_numpy(positions), name=f"{name}/{split}",
        )  # fmt: skip
        start = stop
    return Splits(**parts)
