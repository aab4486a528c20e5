"""CivilComments-WILDS toxicity classification with identity groups, from a local copy.

Label: toxic when ``toxicity ≥ 0.5`` (Koh et al., arXiv 2012.07421; Borkan et al. 2019). Identity
columns are binarised at 0.5 the same way, and an empty identity value counts as "not mentioned".

Groups, two views:

- **Training groups** (``train``, ``val``, ``test``): ``2·y + identity_any``, as in JTT and group
  DRO on this dataset: "non-toxic, no identity", "non-toxic, identity", "toxic, no identity",
  "toxic, identity".
- **WILDS evaluation groups**: the 16 overlapping groups (identity = 1, y) over the identities
  male, female, LGBTQ, christian, muslim, other_religions, black, white. One comment can mention
  several identities, so they cannot be groups of one dataset. Instead ``Splits.extra`` holds one
  set per identity, ``test/<identity>``: the test comments that mention it, with two groups
  "non-toxic, <identity>" and "toxic, <identity>". The worst group accuracy over these extra
  sets is the WILDS worst-group accuracy. An identity with no test comment gets no extra set.

Layout (see ``stalwart.data.sources.local_copies``), ``root`` defaulting to
``$STALWART_DATA/civilcomments``: ``all_data_with_identities.csv`` from the WILDS archive
``civilcomments_v1.0`` (a leading unnamed index column is ignored) with columns ``comment_text``,
``split`` (train/val/test), ``toxicity``, the eight identity columns and ``identity_any``. An
empty comment is read as the empty string.

Inputs are vectors from ``encoder`` (``stalwart.data.sources.text_encoding``). The full dataset
has about 448,000 comments: at the default 4,096 hashing features that is 7.3 GB of float32, so
cap the splits with ``max_examples`` or lower ``n_features`` on small machines. ``index`` is the
row of the CSV.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from stalwart.data.catalog import register_source
from stalwart.data.core import GroupedDataset, Splits
from stalwart.data.sources.local_copies import (
    check_max_examples,
    check_values,
    choose_splits,
    find_copy,
    fingerprint,
    read_table,
)
from stalwart.data.sources.text_encoding import Encoder, check_encoder, encode
from stalwart.data.storage import local_cache
from stalwart.errors import DataError

IDENTITIES = ("male", "female", "LGBTQ", "christian", "muslim", "other_religions", "black", "white")
CLASS_NAMES = ["non-toxic", "toxic"]
GROUP_NAMES = [f"{c}, {a}" for c in CLASS_NAMES for a in ("no identity", "identity")]
SPLIT_IDS = {"train": "train", "val": "val", "test": "test"}
COLUMNS = ("comment_text", "split", "toxicity", *IDENTITIES, "identity_any")
THRESHOLD = 0.5


def _binary(frame: pd.DataFrame, column: str, path: object) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: column {column!r} must be numeric; row {row} holds {frame[column][row]!r}"
        )
    return (values.fillna(0.0).to_numpy() >= THRESHOLD).astype(np.int64)


@register_source("civilcomments")
def civilcomments(
    *,
    root: str | None = None,
    encoder: Encoder = "hashing",
    n_features: int = 2**12,
    max_examples: int | None = None,
    seed: int = 0,
) -> Splits:
    """CivilComments from a local copy: toxicity × identity_any, plus per-identity test sets.

    Args:
        root: the folder holding ``all_data_with_identities.csv``; default
            ``$STALWART_DATA/civilcomments``.
        encoder: ``"hashing"`` (default) or ``"minilm"``.
        n_features: hashing buckets.
        max_examples: if set, at most this many examples per split, chosen by ``seed``.
        seed: picks the capped subsets; the splits themselves are fixed by the CSV.

    Raises:
        DataMissingError: the file is missing, or ``minilm`` is asked for but not installed.
        DataError: the CSV lacks a column or holds values out of range.
    """
    check_encoder(encoder, n_features)
    check_max_examples(max_examples)
    folder = find_copy("civilcomments", root)
    path = folder / "all_data_with_identities.csv"
    frame = read_table(path, COLUMNS)
    if frame["toxicity"].isna().any():
        row = int(np.flatnonzero(frame["toxicity"].isna())[0])
        count = int(frame["toxicity"].isna().sum())
        raise DataError(
            f"{path}: toxicity is empty in {count} rows (first at row {row}); every comment "
            "needs a toxicity score"
        )
    split = frame["split"].astype(str).str.strip()
    check_values(split, set(SPLIT_IDS.values()), "split", path)
    y = _binary(frame, "toxicity", path)
    identity_any = _binary(frame, "identity_any", path)
    identities = {name: _binary(frame, name, path) for name in IDENTITIES}
    split_array = split.to_numpy()
    chosen = choose_splits(
        split_array, SPLIT_IDS, max_examples, seed, name="civilcomments", path=path,
        column="split",
    )  # fmt: skip
    rows = np.concatenate(list(chosen.values()))
    texts = frame["comment_text"].fillna("").astype(str).to_numpy()
    key = "civilcomments-" + fingerprint(str(folder.resolve()), path, rows)
    x = torch.from_numpy(
        encode(
            [texts[r] for r in rows],
            encoder=encoder,
            n_features=n_features,
            cache_key=key,
            cache_folder=local_cache(folder),
        )  # fmt: skip
    )
    group = 2 * y + identity_any

    parts, start = {}, 0
    for name, positions in chosen.items():
        stop = start + len(positions)
        parts[name] = GroupedDataset(
            x[start:stop], torch.from_numpy(y[positions]), torch.from_numpy(group[positions]),
            n_classes=2, group_names=GROUP_NAMES, class_names=CLASS_NAMES,
            index=torch.from_numpy(positions), name=f"civilcomments/{name}",
        )  # fmt: skip
        start = stop

    test, test_rows = parts["test"], chosen["test"]
    extra = {}
    for identity, flags in identities.items():
        mentions = np.flatnonzero(flags[test_rows] == 1)
        if len(mentions) == 0:
            continue
        p = torch.from_numpy(mentions)
        extra[f"test/{identity}"] = GroupedDataset(
            test.x[p], test.y[p], test.y[p], n_classes=2,
            group_names=[f"{c}, {identity}" for c in CLASS_NAMES], class_names=CLASS_NAMES,
            index=test.index[p], name=f"civilcomments/test/{identity}",
        )  # fmt: skip
    return Splits(**parts, extra=extra)
