"""Grouped datasets, their sources and samplers.

>>> from stalwart import data
>>> splits = data.load("dominoes", spurious_correlation=0.95, seed=0)
>>> splits.train.group_counts()

Text data (raw strings, for text encoders) comes as ``TextSplits`` from the loaders listed in
``TEXT_DATASETS``:

>>> from stalwart.data.sources.tweets import tweets
>>> tweets(seed=0).train.group_names
"""

from __future__ import annotations

from typing import Any

from stalwart.data import derived, sources  # noqa: F401  (importing registers the sources)
from stalwart.data.catalog import REQUIRES, SOURCES
from stalwart.data.core import Batch, GroupedDataset, Splits
from stalwart.data.loader import iterate_batches
from stalwart.data.packages import PACKAGES, package
from stalwart.data.shifts import SHIFTS, available_shifts
from stalwart.data.sources import (  # noqa: F401  (importing lists the text datasets)
    codespell,
    drug_reviews,
    english_words,
    glue,
    tweets,
)
from stalwart.data.storage import data_home
from stalwart.data.text import TEXT_DATASETS, TextSplit, TextSplits

__all__ = [
    "PACKAGES",
    "REQUIRES",
    "SHIFTS",
    "SOURCES",
    "TEXT_DATASETS",
    "Batch",
    "GroupedDataset",
    "Splits",
    "TextSplit",
    "TextSplits",
    "available_shifts",
    "data_home",
    "iterate_batches",
    "load",
    "package",
]


def load(name: str, **params: Any) -> Splits:
    """Load the dataset ``name`` as train/val/test splits; ``params`` go to its source.

    Every source also takes ``shifts``: a list of shift names (``available_shifts(name)``),
    each added to ``Splits.extra`` as a shifted evaluation set, e.g.
    ``load("fashion_mnist", shifts=["gaussian_noise_3", "rotation_5"])``.

    Raises:
        ConfigError: unknown name or parameter (the closest valid one is suggested), a
            parameter of the wrong type or out of range, or a shift that does not apply.
        DataMissingError: a data package the source reads is not installed; the message
            gives the command that installs it.
    """
    SOURCES.get(name)  # fail on a wrong name before checking packages
    for required in REQUIRES.get(name, ()):
        package(required).require()
    return SOURCES.build(name, **params)
