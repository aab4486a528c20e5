"""Accuracy tables: CSV files and DataFrames in, fractions out, one clear error per mistake."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stalwart.errors import DataError
from stalwart.shift.line import fit_line
from stalwart.shift.table import AccuracyTable, read_accuracy_table

TABLE = """\
model,cifar10,cifar10.1,cinic10
resnet18,0.93,0.85,0.74
vgg11,0.90,0.81,
densenet,0.95,0.88,0.79
"""


def write(tmp_path, text, name="accuracies.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_a_csv_of_fractions(tmp_path):
    table = read_accuracy_table(write(tmp_path, TABLE))
    assert isinstance(table, AccuracyTable)
    assert table.settings == ["cifar10", "cifar10.1", "cinic10"]
    assert table.models == ["resnet18", "vgg11", "densenet"]
    assert len(table) == 3
    np.testing.assert_array_equal(table.column("cifar10.1"), [0.85, 0.81, 0.88])
    # A missing cell is NaN and is kept, so that fit_line can count it.
    id_acc, ood_acc = table.pair("cifar10", "cinic10")
    np.testing.assert_array_equal(id_acc, [0.93, 0.90, 0.95])
    assert np.isnan(ood_acc[1]) and ood_acc[0] == 0.74
    assert table.frame.loc["densenet", "cinic10"] == 0.79
    assert table.frame.index.name == "model"


def test_pair_feeds_fit_line_with_missing_values_counted(tmp_path):
    rows = ["model,id,ood"] + [f"m{i},{0.5 + i / 50},{0.3 + i / 60}" for i in range(10)]
    rows[4] = "m3,0.56,"
    line = fit_line(*read_accuracy_table(write(tmp_path, "\n".join(rows))).pair("id", "ood"))
    assert (line.n, line.dropped) == (9, 1)


def test_percent_is_converted(tmp_path):
    text = ",imagenet,imagenet-v2\nresnet50,76.1,63.3\nvit,81.0,NA\n"  # testbed's layout
    table = read_accuracy_table(write(tmp_path, text), percent=True)
    np.testing.assert_allclose(table.column("imagenet"), [0.761, 0.81])
    assert np.isnan(table.column("imagenet-v2")[1])
    assert table.models == ["resnet50", "vit"]


def test_percentages_without_percent_get_a_hint(tmp_path):
    text = "model,imagenet,imagenet-v2\nresnet50,76.1,63.3\nvit,81.0,70.2\n"
    with pytest.raises(DataError, match=r"line 2 \(model 'resnet50'\), column 'imagenet': 76.1"):
        read_accuracy_table(write(tmp_path, text))
    with pytest.raises(DataError, match="pass --percent / percent=True"):
        read_accuracy_table(write(tmp_path, text))


def test_out_of_range_value_names_column_and_model(tmp_path):
    text = "model,id,ood\na,0.9,0.8\nb,0.85,1.7\nc,0.7,1.1\n"
    with pytest.raises(DataError) as error:
        read_accuracy_table(write(tmp_path, text))
    message = str(error.value)
    assert "line 3 (model 'b'), column 'ood': 1.7 is outside [0, 1] (and 1 more)" in message
    assert "percent" not in message  # one stray value is not a table of percentages
    with pytest.raises(DataError, match=r"line 4 \(model 'c'\), column 'id': -0.1 is outside"):
        read_accuracy_table(write(tmp_path, "model,id\na,0.9\nb,0.8\nc,-0.1\n"))
    with pytest.raises(DataError, match=r"'id': 120 is outside \[0, 100\]"):
        read_accuracy_table(write(tmp_path, "model,id\na,120\n"), percent=True)


def test_non_numeric_cell_names_column_row_and_line(tmp_path):
    text = TABLE.replace("0.81", "o.81")
    with pytest.raises(DataError) as error:
        read_accuracy_table(write(tmp_path, "\n\n" + text))  # blank lines still count
    message = str(error.value)
    assert "accuracies.csv line 5 (model 'vgg11'), column 'cifar10.1'" in message
    assert "'o.81' is not a number" in message
    long = "x" * 500
    with pytest.raises(DataError, match=r"'x+\.\.\.x+' is not a number") as error:
        read_accuracy_table(write(tmp_path, TABLE.replace("0.81", long)))
    assert long not in str(error.value)


def test_second_text_column_is_explained(tmp_path):
    text = "model,family,id\na,resnet,0.9\nb,vgg,0.8\n"
    with pytest.raises(DataError, match="column 'family' holds text, not accuracies"):
        read_accuracy_table(write(tmp_path, text))
    table = read_accuracy_table(pd.read_csv(write(tmp_path, text)).drop(columns="family"))
    assert table.models == ["a", "b"] and table.settings == ["id"]
    with pytest.raises(DataError, match="column 'model' holds text"):
        read_accuracy_table(write(tmp_path, text), model_column="family")


def test_missing_column_is_named_with_a_suggestion(tmp_path):
    table = read_accuracy_table(write(tmp_path, TABLE))
    with pytest.raises(DataError) as error:
        table.pair("cifar10", "cifar10.2")
    message = str(error.value)
    assert "no evaluation setting 'cifar10.2' (did you mean 'cifar10.1'?)" in message
    assert "['cifar10', 'cifar10.1', 'cinic10']" in message
    with pytest.raises(DataError, match=r"no column 'modle' \(did you mean 'model'\?\)"):
        read_accuracy_table(write(tmp_path, TABLE), model_column="modle")


def test_model_names_come_from_the_first_text_column_or_row_numbers(tmp_path):
    table = read_accuracy_table(write(tmp_path, "id,arch,ood\n0.9,a,0.8\n0.8,b,0.7\n"))
    assert table.models == ["a", "b"] and table.settings == ["id", "ood"]
    # A typo in one cell does not turn a column of accuracies into model names.
    with pytest.raises(DataError, match="column 'id': '0.9x' is not a number"):
        read_accuracy_table(write(tmp_path, "id,ood\n0.9x,0.8\n0.8,0.7\n0.7,0.6\n"))
    table = read_accuracy_table(write(tmp_path, "id,ood\n0.9,0.8\n0.8,0.7\n"))
    assert table.models == ["row 1", "row 2"] and table.settings == ["id", "ood"]
    # A column named model holds the names even when they are numbers.
    table = read_accuracy_table(write(tmp_path, "id,model,ood\n0.9,17,0.8\n0.8,4,0.7\n"))
    assert table.models == ["17", "4"] and table.settings == ["id", "ood"]


def test_dataframe_input():
    frame = pd.DataFrame({"name": ["a", "b", "c"], "id": [0.9, 0.8, 0.7], "ood": [0.8, None, 0.6]})
    table = read_accuracy_table(frame)
    assert table.models == ["a", "b", "c"] and table.settings == ["id", "ood"]
    assert table.source == "DataFrame"
    assert np.isnan(table.column("ood")[1])
    indexed = read_accuracy_table(frame.set_index("name") * 100, percent=True)
    np.testing.assert_allclose(indexed.column("id"), [0.9, 0.8, 0.7])
    assert indexed.models == ["a", "b", "c"]
    with pytest.raises(DataError, match=r"DataFrame row 1 \(model 'b'\), column 'ood': inf"):
        read_accuracy_table(frame.assign(ood=[0.8, np.inf, 0.6]))
    with pytest.raises(DataError, match=r"DataFrame row 2 \(model 'c'\), column 'id': 1.5"):
        read_accuracy_table(frame.assign(id=[0.9, 0.8, 1.5]))
    with pytest.raises(DataError, match=r"column 'id': True is not a number"):
        read_accuracy_table(frame.assign(id=[0.9, True, 0.7]))
    # Text cells and None in a column of objects, as a store may hand over.
    texts = read_accuracy_table(frame.assign(ood=["0.8", None, " 0.6 "]))
    np.testing.assert_array_equal(texts.column("ood"), [0.8, np.nan, 0.6])
    with pytest.raises(DataError, match="DataFrame row 1 has no model name in 'name'"):
        read_accuracy_table(frame.assign(name=["a", np.nan, "c"]))


def test_non_finite_cells_are_rejected(tmp_path):
    with pytest.raises(DataError, match=r"line 3 \(model 'b'\), column 'ood': 'inf' is not fin"):
        read_accuracy_table(write(tmp_path, "model,id,ood\na,0.9,0.8\nb,0.8, inf\n"))


def test_duplicates_are_rejected(tmp_path):
    with pytest.raises(DataError, match=r"duplicate model names: \['vgg11'\]"):
        read_accuracy_table(write(tmp_path, TABLE + "vgg11,0.91,0.8,0.7\n"))
    with pytest.raises(DataError, match=r"duplicate column names: \['id'\]"):
        read_accuracy_table(write(tmp_path, "model,id,id\na,0.9,0.8\n"))
    frame = pd.DataFrame([[0.9, 0.8]], columns=["id", "id"])
    with pytest.raises(DataError, match="duplicate column names"):
        read_accuracy_table(frame)
    with pytest.raises(DataError, match="line 3 has no model name"):
        read_accuracy_table(write(tmp_path, "model,id\na,0.9\n ,0.8\n"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"\n  \n", "is empty"),
        (b"model,id,ood\n", "header but no rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xd8", "not a CSV file"),
        (b'{"model": "a",\n "id": 0.9}\n', "line 2 has 1 field but the header"),
        (b"model\na\nb\n", "no evaluation settings"),
    ],
)
def test_bad_files(tmp_path, content, message):
    path = tmp_path / "table.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_accuracy_table(path)


def test_folder_and_wrong_type(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        read_accuracy_table(tmp_path)
    with pytest.raises(DataError, match="CSV path or a pandas DataFrame; got list"):
        read_accuracy_table([[0.9, 0.8]])


def test_byte_order_mark_and_tsv(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffmodel, id \n7,0.5\n".encode())
    table = read_accuracy_table(path)
    assert table.settings == ["id"] and table.models == ["7"]
    tsv = read_accuracy_table(write(tmp_path, "model\tid\na\t0.5\n", "table.tsv"))
    assert tsv.column("id")[0] == 0.5
