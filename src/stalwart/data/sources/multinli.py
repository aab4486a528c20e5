"""MultiNLI with negation in the hypothesis as the spurious attribute, from a local copy.

The group DRO setup (Sagawa et al., arXiv 1911.08731): labels contradiction 0, entailment 1,
neutral 2; the attribute is whether sentence2 holds a negation word (nobody, no, never, nothing,
after removing punctuation, lowercasing and splitting on spaces); group ``2·y + a``, 6 groups
named "contradiction, no negation", "contradiction, negation", ... The split is group DRO's
random 50/20/30 re-split of the pooled training and development sets, read from
``metadata_random.csv`` (``split`` 0 train, 1 val, 2 test).

Layout accepted (one layout; see ``stalwart.data.sources.local_copies``), ``root`` defaulting to
``$STALWART_DATA/multinli``:

- ``metadata_random.csv`` from the group DRO repository: one row per example with columns
  ``gold_label`` (0/1/2, or the label words), ``split`` and optionally
  ``sentence2_has_negation`` (computed from sentence2 when absent); a leading unnamed index column
  is ignored.
- the GLUE MNLI files ``train.tsv``, ``dev_matched.tsv`` and ``dev_mismatched.tsv`` (tab-separated,
  unquoted, with a header naming ``sentence1``, ``sentence2`` and ``gold_label``).

The metadata rows follow the TSV rows in the order train, dev_matched, dev_mismatched; this is
how group DRO aligns its metadata with its cached features, built from the same TSVs. Row counts
and labels are checked against each other. The group DRO folder layout
(``data/metadata_random.csv``, ``glue_data/MNLI/*.tsv``) is accepted as well. The cached BERT
feature files of group DRO are pickled objects and are never read.

Inputs are vectors from ``encoder`` (``stalwart.data.sources.text_encoding``): for ``hashing``
the concatenation ``[h(sentence1), h(sentence2)]`` (``2·n_features`` values); for ``minilm``
``[u, v, |u − v|, u ⊙ v]`` of the two sentence embeddings (1,536 values). The full dataset has
412,349 pairs: at the default 4,096 hashing features that is 13.5 GB of float32, so cap the splits
with ``max_examples`` or lower ``n_features`` on small machines. ``index`` is the metadata row.
"""

from __future__ import annotations

import csv
import string
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from stalwart.data.catalog import register_source
from stalwart.data.core import GroupedDataset, Splits
from stalwart.data.sources.local_copies import (
    LAYOUTS,
    check_max_examples,
    check_values,
    choose_splits,
    find_copy,
    fingerprint,
    first_present,
    read_table,
)
from stalwart.data.sources.text_encoding import Encoder, check_encoder, encode_pairs
from stalwart.data.storage import local_cache
from stalwart.errors import DataError

CLASS_NAMES = ["contradiction", "entailment", "neutral"]
LABEL_IDS = {name: k for k, name in enumerate(CLASS_NAMES)}
GROUP_NAMES = [f"{c}, {a}" for c in CLASS_NAMES for a in ("no negation", "negation")]
NEGATION_WORDS = frozenset({"nobody", "no", "never", "nothing"})  # arXiv 1803.02324
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def has_negation(sentence: str) -> bool:
    """Whether ``sentence`` holds a negation word, tokenised as in group DRO's script."""
    tokens = sentence.translate(_PUNCTUATION).lower().split(" ")
    return any(token in NEGATION_WORDS for token in tokens)


def read_glue_tsv(path: Path) -> tuple[list[str], list[str], list[str]]:
    """(sentence1, sentence2, gold_label) of a GLUE MNLI TSV, read without quote handling.

    The files hold unbalanced quote characters, so they are split on tabs only, as the GLUE
    processors do.
    """
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path} is empty; it needs a header row and one row per example")
        missing = [c for c in ("sentence1", "sentence2", "gold_label") if c not in header]
        if missing:
            raise DataError(f"{path} lacks the column(s) {missing}; its header is {header}")
        i1, i2, il = (header.index(c) for c in ("sentence1", "sentence2", "gold_label"))
        first, second, labels = [], [], []
        for line_number, row in enumerate(reader, start=2):
            if len(row) <= max(i1, i2, il):
                raise DataError(
                    f"{path}, line {line_number}: {len(row)} tab-separated fields, expected "
                    f"{len(header)}"
                )
            first.append(row[i1])
            second.append(row[i2])
            labels.append(row[il])
    return first, second, labels


def _metadata_labels(frame: pd.DataFrame, path: Path) -> np.ndarray:
    labels = frame["gold_label"]
    if labels.dtype == object or pd.api.types.is_string_dtype(labels):
        labels = labels.astype(str).str.strip()
        if labels.isin(list(LABEL_IDS)).all():
            return labels.map(LABEL_IDS).to_numpy(np.int64)
        labels = pd.to_numeric(labels, errors="coerce")
    check_values(labels, {0, 1, 2}, "gold_label", path)
    return labels.to_numpy(np.int64)


@register_source("multinli")
def multinli(
    *,
    root: str | None = None,
    encoder: Encoder = "hashing",
    n_features: int = 2**12,
    max_examples: int | None = None,
    seed: int = 0,
) -> Splits:
    """MultiNLI from a local copy: label × negation, 6 groups (see the module docstring).

    Args:
        root: the folder holding ``metadata_random.csv`` and the GLUE MNLI TSVs; default
            ``$STALWART_DATA/multinli``.
        encoder: ``"hashing"`` (default) or ``"minilm"``.
        n_features: hashing buckets per sentence.
        max_examples: if set, at most this many examples per split, chosen by ``seed``.
        seed: picks the capped subsets; the splits themselves are fixed by the metadata.

    Raises:
        DataMissingError: a file is missing, or ``minilm`` is asked for but not installed.
        DataError: a file lacks a column, or the metadata and the TSVs disagree.
    """
    check_encoder(encoder, n_features)
    check_max_examples(max_examples)
    folder = find_copy("multinli", root)
    needs = LAYOUTS["multinli"].needs
    metadata_path = first_present(folder, needs[0])
    metadata = read_table(metadata_path, ("gold_label", "split"))
    check_values(metadata["split"], {0, 1, 2}, "split", metadata_path)
    labels = _metadata_labels(metadata, metadata_path)

    tsv_paths = [first_present(folder, paths) for paths in needs[1:]]
    first, second, tsv_labels = [], [], []
    for path in tsv_paths:
        a, b, c = read_glue_tsv(path)
        first += a
        second += b
        tsv_labels += c
    if len(first) != len(metadata):
        raise DataError(
            f"{metadata_path} has {len(metadata)} rows but the TSV files "
            f"({', '.join(p.name for p in tsv_paths)}) hold {len(first)} examples; the metadata "
            "must have one row per TSV row, in the order train, dev_matched, dev_mismatched"
        )
    tsv_ids = np.array([LABEL_IDS.get(label.strip(), -1) for label in tsv_labels])
    disagree = np.flatnonzero(tsv_ids != labels)
    if len(disagree):
        row = int(disagree[0])
        raise DataError(
            f"{metadata_path} and the TSV files disagree on {len(disagree)} labels (first at row "
            f"{row}: metadata {CLASS_NAMES[labels[row]]!r}, TSV {tsv_labels[row]!r}); the rows "
            "must follow train.tsv, dev_matched.tsv, dev_mismatched.tsv in that order"
        )
    if "sentence2_has_negation" in metadata.columns:
        check_values(
            metadata["sentence2_has_negation"], {0, 1}, "sentence2_has_negation", metadata_path
        )
        negation = metadata["sentence2_has_negation"].to_numpy(np.int64)
    else:
        negation = np.array([has_negation(s) for s in second], dtype=np.int64)

    split = metadata["split"].to_numpy(np.int64)
    chosen = choose_splits(
        split, SPLIT_IDS, max_examples, seed, name="multinli", path=metadata_path,
        column="split",
    )  # fmt: skip
    rows = np.concatenate(list(chosen.values()))
    key = "multinli-" + fingerprint(str(folder.resolve()), metadata_path, *tsv_paths, rows)
    x = torch.from_numpy(
        encode_pairs(
            [first[r] for r in rows],
            [second[r] for r in rows],
            encoder=encoder,
            n_features=n_features,
            cache_key=key,
            cache_folder=local_cache(folder),
        )
    )
    group = 2 * labels + negation

    parts, start = {}, 0
    for name, positions in chosen.items():
        stop = start + len(positions)
        parts[name] = GroupedDataset(
            x[start:stop], torch.from_numpy(labels[positions]),
            torch.from_numpy(group[positions]), n_classes=3, group_names=GROUP_NAMES,
            class_names=CLASS_NAMES, index=torch.from_numpy(positions), name=f"multinli/{name}",
        )  # fmt: skip
        start = stop
    return Splits(**parts)
