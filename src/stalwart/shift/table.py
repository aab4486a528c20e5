"""Accuracy tables: one row per model, one column per evaluation setting (arXiv 2107.04649).

Fitting an accuracy line (Miller et al., "Accuracy on the Line", arXiv 2107.04649) starts from
the accuracies of many models on an in-distribution test set and on shifted sets. The
imagenet-testbed's ``robustness_top1s.csv`` lays them out as a wide table, one row per model
and one column per evaluation setting, in percent; the run store and a testbed here produce the
same table as a pandas DataFrame. ``read_accuracy_table`` reads either, checks every cell, and
gives an ``AccuracyTable`` of fractions whose ``pair`` feeds ``stalwart.shift.line.fit_line``.

Cells left empty (or written ``NA``, ``N/A``, ``NaN``, ``null``, ``None``) are missing values:
a model not evaluated in some setting. They are kept as NaN, and ``fit_line`` leaves such
models out and counts them.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stalwart.errors import DataError, closest, shorten

MISSING_WORDS = frozenset({"", "na", "n/a", "nan", "null", "none"})
"""Cell texts (compared without case or surrounding spaces) read as a missing accuracy."""


@dataclass(frozen=True)
class AccuracyTable:
    """Accuracies of models (rows) in evaluation settings (columns), as fractions in [0, 1].

    Attributes:
        frame: the table as a DataFrame of floats, indexed by model name, NaN where missing.
        source: where it was read from, for messages (a path, or ``"DataFrame"``).
        in_distribution: settings known to be in-distribution (a testbed's ``val`` and
            ``test``): never counted among the shifts that ``--ood all`` stands for.
        families: each model's family (``mlp``, ``knn``, ...) in row order, where known (a
            testbed); plots colour the models by it.
    """

    frame: pd.DataFrame
    source: str = "DataFrame"
    in_distribution: tuple[str, ...] = ()
    families: tuple[str, ...] | None = None

    @property
    def settings(self) -> list[str]:
        """The evaluation settings (column names), in table order."""
        return [str(name) for name in self.frame.columns]

    @property
    def models(self) -> list[str]:
        """The model names (row names), in table order."""
        return [str(name) for name in self.frame.index]

    def __len__(self) -> int:
        return len(self.frame)

    def column(self, name: str) -> np.ndarray:
        """Accuracies of every model in setting ``name`` (NaN where missing); a copy."""
        if name not in self.frame.columns:
            raise DataError(
                f"{self.source} has no evaluation setting {name!r}{closest(name, self.settings)}; "
                f"its settings are {self.settings}"
            )
        return self.frame[name].to_numpy(dtype=np.float64, copy=True)

    def pair(self, id_setting: str, ood_setting: str) -> tuple[np.ndarray, np.ndarray]:
        """ID and OOD accuracies of every model, NaNs kept (``fit_line`` counts them)."""
        return self.column(id_setting), self.column(ood_setting)


class _Cells:
    """A table's header and cells before checking, with where each row came from."""

    def __init__(
        self,
        source: str,
        header: list[str],
        columns: list[list[Any]],
        lines: list[int] | None,
        index: list[Any] | None = None,
        index_name: str | None = None,
    ) -> None:
        self.source = source
        self.header = header
        self.columns = columns  # column-major: columns[j][i] is row i's cell in column j
        self.lines = lines  # CSV line number of each row, None for a DataFrame
        self.index = index  # a DataFrame's meaningful index, a candidate for model names
        self.index_name = index_name
        self.rows = len(columns[0]) if columns else len(index or [])

    def where(self, row: int, model: str | None) -> str:
        """Where row ``row`` is, for a message: the CSV line, or the DataFrame position."""
        place = (
            f"{self.source} line {self.lines[row]}"
            if self.lines is not None
            else f"DataFrame row {row}"
        )
        return place + (f" (model {model!r})" if model is not None else "")


def _parse(cell: Any) -> float | None:
    """The number in ``cell``: NaN for a missing value, None for something not a number."""
    if isinstance(cell, bool | np.bool_):
        return None  # True is not an accuracy, though Python would read it as 1
    if isinstance(cell, numbers.Real):
        return float(cell)
    if isinstance(cell, str):
        text = cell.strip()
        if text.lower() in MISSING_WORDS:
            return math.nan
        try:
            return float(text)
        except ValueError:
            return None
    try:
        if pd.isna(cell):  # None, pd.NA, pd.NaT and the like
            return math.nan
    except (TypeError, ValueError):
        pass
    return None


def _read_csv(path: Path) -> _Cells:
    name = str(path)
    if not path.exists():
        raise DataError(f"accuracy table {name!r} does not exist; give the path of a CSV file")
    if path.is_dir():
        raise DataError(f"accuracy table {name!r} is a folder; give the path of a CSV file")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    records: list[tuple[int, list[str]]] = []
    try:
        # utf-8-sig: spreadsheets often start a CSV with a byte-order mark.
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            last = 0
            for record in reader:
                start, last = last + 1, reader.line_num
                if record and any(field.strip() for field in record):
                    records.append((start, record))
    except UnicodeDecodeError:
        raise DataError(
            f"accuracy table {name!r} is not a CSV file (it is not UTF-8 text); write it as "
            "CSV, e.g. with pandas' DataFrame.to_csv"
        ) from None
    except csv.Error as error:
        raise DataError(
            f"accuracy table {name!r} is not a readable CSV file (line {reader.line_num}: {error})"
        ) from None
    if not records:
        raise DataError(
            f"accuracy table {name!r} is empty; expected a header row naming the evaluation "
            "settings, then one row of accuracies per model"
        )
    header_line, raw_header = records[0]
    if len(records) == 1:
        raise DataError(f"accuracy table {name!r} has a header but no rows of accuracies")
    width = len(raw_header)
    for line, record in records[1:]:
        if len(record) != width:
            raise DataError(
                f"{name} line {line} has {len(record)} field{'s' if len(record) != 1 else ''} "
                f"but the header (line "
                f"{header_line}) has {width}; is this a CSV file with one row per model?"
            )
    # An empty header cell is usually the index that DataFrame.to_csv writes without a name.
    header = [text.strip() or f"column {j + 1}" for j, text in enumerate(raw_header)]
    columns = [[record[j] for _, record in records[1:]] for j in range(width)]
    return _Cells(name, header, columns, [line for line, _ in records[1:]])


def _read_frame(frame: pd.DataFrame) -> _Cells:
    header = [str(name) for name in frame.columns]
    index = index_name = None
    # A DataFrame indexed by model name (df.set_index("model")) carries the names in its index.
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
        index = list(frame.index)
        index_name = "model" if frame.index.name is None else str(frame.index.name)
    columns: list[list[Any]] = []
    for j in range(frame.shape[1]):
        series = frame.iloc[:, j]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            columns.append(series.to_numpy(dtype=np.float64, na_value=np.nan).tolist())
        else:
            columns.append(series.tolist())
    return _Cells("DataFrame", header, columns, None, index, index_name)


def _quote(cell: Any) -> str:
    """A cell as a message quotes it: text without its surrounding spaces, cut short."""
    return shorten(cell.strip() if isinstance(cell, str) else cell)


def _mostly_text(cells: Sequence[Any]) -> bool:
    """Whether most non-missing cells are not numbers (a column of names, not accuracies)."""
    parsed = [_parse(cell) for cell in cells]
    text = sum(value is None for value in parsed)
    numbers_ = sum(value is not None and not math.isnan(value) for value in parsed)
    return text > numbers_


def _check_unique(kind: str, names: Sequence[str], where: str) -> None:
    repeated = [name for name, count in Counter(names).items() if count > 1]
    if repeated:
        fix = (
            "rename or drop the repeated columns"
            if kind == "column names"
            else "give each row its own model name, or average the repeats first"
        )
        raise DataError(f"{where} has duplicate {kind}: {shorten(repeated)}; {fix}")


def read_accuracy_table(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    percent: bool = False,
    model_column: str | None = None,
) -> AccuracyTable:
    """Read accuracies of models in evaluation settings (one row per model, one column each).

    The layout of imagenet-testbed's ``robustness_top1s.csv``, the data behind the accuracy
    lines of Miller et al. (arXiv 2107.04649).

    Args:
        source: a CSV file (tab-separated if it ends in ``.tsv``) or a pandas DataFrame.
        percent: values are percentages in [0, 100] (imagenet-testbed's convention), converted
            to fractions; otherwise they must be fractions in [0, 1].
        model_column: the column holding model names. Without it: a column named ``model``;
            else, for a DataFrame, its index unless it is the default 0, 1, 2, ...; else the
            first column in which most filled cells are not numbers; else the rows are named
            ``row 1``, ``row 2``, ... Every other column is an evaluation setting.

    Returns:
        The ``AccuracyTable``, as fractions; missing cells are NaN.

    Raises:
        DataError: the file is missing, empty or not a CSV; a column name or a model name
            repeats; ``model_column`` does not exist; a cell is not a number, is infinite, or
            lies outside [0, 1] ([0, 100] with ``percent``).
    """
    if isinstance(source, pd.DataFrame):
        cells = _read_frame(source)
    elif isinstance(source, str | os.PathLike):
        cells = _read_csv(Path(source))
    else:
        raise DataError(
            f"an accuracy table is a CSV path or a pandas DataFrame; got {type(source).__name__}"
        )
    _check_unique("column names", cells.header, cells.source)

    names, model_at, model_name = _model_names(cells, model_column)
    if names is not None:
        for i, name in enumerate(names):
            if name is None:
                raise DataError(
                    f"{cells.where(i, None)} has no model name in {model_name!r}; name every model"
                )
        _check_unique("model names", names, f"{cells.source} (models in {model_name!r})")
    settings = [j for j in range(len(cells.header)) if j != model_at]
    if not settings:
        raise DataError(
            f"{cells.source} has no evaluation settings besides the model names in "
            f"{model_name!r}; expected one column of accuracies per setting"
        )

    values = np.empty((cells.rows, len(settings)))
    for k, j in enumerate(settings):
        values[:, k] = _column_values(cells, j, names, model_name)
    _check_range(cells, values, settings, names, percent)
    if percent:
        values = values / 100
    index = pd.Index(
        names if names is not None else [f"row {i + 1}" for i in range(cells.rows)],
        name=model_name or "model",
    )
    frame = pd.DataFrame(values, index=index, columns=[cells.header[j] for j in settings])
    return AccuracyTable(frame, cells.source)


def _model_names(
    cells: _Cells, model_column: str | None
) -> tuple[list[str | None] | None, int | None, str | None]:
    """Model names, the column they came from (None: the index or row numbers) and its name."""

    def from_cells(raw: Sequence[Any]) -> list[str | None]:
        out: list[str | None] = []
        for cell in raw:
            value = None if isinstance(cell, str) else _parse(cell)
            missing = cell is None or (value is not None and math.isnan(value))
            out.append(None if missing else (str(cell).strip() or None))
        return out

    if model_column is not None:
        if model_column in cells.header:
            j = cells.header.index(model_column)
            return from_cells(cells.columns[j]), j, model_column
        if cells.index is not None and model_column == cells.index_name:
            return from_cells(cells.index), None, model_column
        choices = cells.header + ([cells.index_name] if cells.index_name else [])
        raise DataError(
            f"{cells.source} has no column {model_column!r}{closest(model_column, choices)} "
            f"to take model names from; its columns are {choices}"
        )
    if "model" in cells.header:
        j = cells.header.index("model")
        return from_cells(cells.columns[j]), j, "model"
    if cells.index is not None:
        return from_cells(cells.index), None, cells.index_name
    for j, column in enumerate(cells.columns):
        if _mostly_text(column):
            return from_cells(column), j, cells.header[j]
    return None, None, None


def _column_values(
    cells: _Cells, j: int, names: list[str | None] | None, model_name: str | None
) -> np.ndarray:
    """Column ``j`` as floats (NaN where missing), or a DataError at its first bad cell."""
    column = cells.columns[j]
    setting = cells.header[j]
    parsed = [_parse(cell) for cell in column]
    bad = [i for i, value in enumerate(parsed) if value is None]
    if bad:
        i = bad[0]
        model = names[i] if names is not None else None
        more = f" ({len(bad)} cells in this column are not numbers)" if len(bad) > 1 else ""
        if _mostly_text(column):
            # A second column of text (a model family, a date): not an evaluation setting.
            besides = f"the model names in {model_name!r}" if model_name else "the model names"
            advice = (
                f"column {setting!r} holds text, not accuracies; every column besides "
                f"{besides} is read as an evaluation setting: drop it, or pass it as "
                "model_column / --model-column"
            )
        else:
            advice = "write accuracies as plain numbers, or leave the cell empty if missing"
        raise DataError(
            f"{cells.where(i, model)}, column {setting!r}: {_quote(column[i])} is not a "
            f"number{more}; {advice}"
        )
    values = np.array(parsed, dtype=np.float64)
    infinite = np.flatnonzero(np.isinf(values))
    if len(infinite):
        i = int(infinite[0])
        model = names[i] if names is not None else None
        raise DataError(
            f"{cells.where(i, model)}, column {setting!r}: {_quote(column[i])} is not finite; "
            "an accuracy is a number in [0, 1] (leave the cell empty if missing)"
        )
    return values


def _check_range(
    cells: _Cells,
    values: np.ndarray,
    settings: list[int],
    names: list[str | None] | None,
    percent: bool,
) -> None:
    """A DataError at the first value outside [0, 1] ([0, 100] with ``percent``)."""
    top = 100.0 if percent else 1.0
    outside = ~np.isnan(values) & ((values < 0) | (values > top))
    if not outside.any():
        return
    rows, cols = np.nonzero(outside)
    first = int(np.argmin(rows * values.shape[1] + cols))  # first in reading order
    i, k = int(rows[first]), int(cols[first])
    model = names[i] if names is not None else None
    filled = values[~np.isnan(values)]
    count = int(outside.sum())
    more = f" (and {count - 1} more)" if count > 1 else ""
    if percent:
        advice = "with percent=True (--percent) accuracies are percentages in [0, 100]"
    elif filled.min() >= 0 and filled.max() <= 100 and np.median(filled) > 1:
        advice = (
            "these values look like percentages: pass --percent / percent=True, or write "
            "accuracies as fractions in [0, 1]"
        )
    else:
        advice = "accuracies are fractions in [0, 1]"
    raise DataError(
        f"{cells.where(i, model)}, column {cells.header[settings[k]]!r}: {values[i, k]:g} is "
        f"outside [0, {top:g}]{more}; {advice}"
    )
