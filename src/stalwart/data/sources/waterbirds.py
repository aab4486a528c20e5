"""Waterbirds (Sagawa et al., arXiv 1911.08731), read from a local copy of the group DRO tarball.

Birds from CUB pasted onto land or water backgrounds from Places: the label is the bird type
(landbird 0, waterbird 1), the spurious attribute the background (land 0, water 1), and the
group ``2·y + place``: "landbird, land", "landbird, water", "waterbird, land",
"waterbird, water". The splits are the tarball's own (``split`` 0/1/2 in ``metadata.csv``); the
training set is skewed (95% of each class on its usual background) while validation and test
are balanced on background within each class.

Layout (see ``stalwart.data.sources.local_copies``): ``<root>/metadata.csv`` with columns
``img_id, img_filename, y, split, place, place_filename`` (``img_filename``, ``y``, ``split`` and
``place`` are read) and each image at ``<root>/<img_filename>``. ``root`` defaults to
``$STALWART_DATA/waterbirds``; the folder holding ``waterbird_complete95_forest2water2/`` works
too. Every split must have rows.

Images are read with Pillow, resized to ``int(image_size·256/224)`` square and centre-cropped to
``image_size`` (group DRO's evaluation transform), and returned as RGB float32 in [0, 1] of shape
``(3, image_size, image_size)``. The converted uint8 arrays are cached beside the copy, in
``<root>/.stalwart-cache/``, keyed by folder, metadata file, size and selected rows. ``index`` is
the row of ``metadata.csv``.
"""

from __future__ import annotations

import numpy as np

from stalwart.data.catalog import register_source
from stalwart.data.core import Splits
from stalwart.data.sources.local_copies import (
    check_image_size,
    check_max_examples,
    check_values,
    choose_splits,
    find_copy,
    fingerprint,
    image_splits,
    read_images,
    read_table,
    resize_then_center_crop,
)
from stalwart.data.storage import cached_arrays, local_cache

CLASS_NAMES = ["landbird", "waterbird"]
GROUP_NAMES = ["landbird, land", "landbird, water", "waterbird, land", "waterbird, water"]
COLUMNS = ("img_filename", "y", "split", "place")
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


@register_source("waterbirds")
def waterbirds(
    *,
    root: str | None = None,
    image_size: int = 64,
    max_examples: int | None = None,
    seed: int = 0,
) -> Splits:
    """Waterbirds from a local copy: bird type × background, 4 groups (see the module docstring).

    Args:
        root: the folder holding ``metadata.csv``; default ``$STALWART_DATA/waterbirds``.
        image_size: side of the square images returned.
        max_examples: if set, at most this many examples per split, chosen by ``seed``.
        seed: picks the capped subsets; the splits themselves are fixed by the metadata.

    Raises:
        DataMissingError: the folder, ``metadata.csv`` or an image is missing.
        DataError: ``metadata.csv`` lacks a column, holds values out of range, or has no rows
            for a split.
    """
    check_image_size(image_size)
    check_max_examples(max_examples)
    folder = find_copy("waterbirds", root)
    metadata = folder / "metadata.csv"
    frame = read_table(metadata, COLUMNS)
    for column, allowed in {"y": {0, 1}, "place": {0, 1}, "split": {0, 1, 2}}.items():
        check_values(frame[column], allowed, column, metadata)
    split = frame["split"].to_numpy(np.int64)
    chosen = choose_splits(
        split, SPLIT_IDS, max_examples, seed, name="waterbirds", path=metadata, column="split"
    )
    rows = np.concatenate(list(chosen.values()))
    filenames = frame["img_filename"].astype(str).to_numpy()
    key = f"waterbirds-{fingerprint(str(folder.resolve()), metadata, image_size, rows)}"
    images = cached_arrays(
        key,
        lambda: {
            "images": read_images(
                [folder / filenames[r] for r in rows],
                resize_then_center_crop(image_size),
                image_size,
            )
        },
        local_cache(folder),
    )["images"]
    y_all = frame["y"].to_numpy(np.int64)
    group_all = 2 * y_all + frame["place"].to_numpy(np.int64)

    return image_splits(
        images,
        chosen,
        y_all,
        group_all,
        group_names=GROUP_NAMES,
        class_names=CLASS_NAMES,
        name="waterbirds",
    )
