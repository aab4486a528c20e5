"""Bad data: empty splits, NaN written into a dataset after it was built, a data folder that is
a file. Each row expects one clear error naming the dataset, the split, the file or the folder.

Rows a user meets through the command line run ``stalwart run`` (or ``stalwart datasets``);
rows a user meets through the library call it and expect the ``StalwartError`` subclass.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from tests.bad_input.conftest import expect_clean_error, invoke
from tests.data.fixtures_local import write_local_copy

from stalwart import data
from stalwart.data import GroupedDataset, Splits
from stalwart.data.packages import package
from stalwart.data.storage import cached_arrays
from stalwart.engine import evaluate, fit, predict_logits
from stalwart.errors import DataError
from stalwart.methods.erm import ERM


def without_split(name: str, folder, split: int, column: str = "split", file="metadata.csv"):
    """A local copy of ``name`` in ``folder`` whose metadata has no row of ``split``."""
    write_local_copy(name, folder)
    frame = pd.read_csv(folder / file)
    frame[frame[column] != split].to_csv(folder / file, index=False)


def run_config(tmp_path, data_section: dict) -> object:
    path = tmp_path / "run.yaml"
    config = {"data": data_section, "model": {"name": "mlp"}, "train": {"epochs": 1}}
    path.write_text(yaml.safe_dump(config))
    return path


# --- through the command line ---------------------------------------------------------------


def waterbirds_without_val(tmp_path, monkeypatch):
    without_split("waterbirds", tmp_path / "copy", split=1)
    return ["run", run_config(tmp_path, {"name": "waterbirds", "root": str(tmp_path / "copy")})]


def celeba_without_test(tmp_path, monkeypatch):
    folder = tmp_path / "copy"
    write_local_copy("celeba", folder)
    partition = pd.read_csv(folder / "list_eval_partition.csv")
    kept = partition[partition["partition"] != 2]
    kept.to_csv(folder / "list_eval_partition.csv", index=False)
    attributes = pd.read_csv(folder / "list_attr_celeba.csv")
    attributes[attributes["image_id"].isin(kept["image_id"])].to_csv(
        folder / "list_attr_celeba.csv", index=False
    )
    return ["run", run_config(tmp_path, {"name": "celeba", "root": str(folder)})]


def civilcomments_without_train(tmp_path, monkeypatch):
    folder = tmp_path / "copy"
    write_local_copy("civilcomments", folder)
    path = folder / "all_data_with_identities.csv"
    frame = pd.read_csv(path, index_col=0)
    frame[frame["split"] != "train"].to_csv(path)
    return ["run", run_config(tmp_path, {"name": "civilcomments", "root": str(folder)})]


def data_home_is_a_file(tmp_path, monkeypatch):
    (tmp_path / "data").write_text("not a folder")
    monkeypatch.setenv("STALWART_DATA", str(tmp_path / "data"))
    return ["run", run_config(tmp_path, {"name": "waterbirds"})]


def data_home_under_a_file(tmp_path, monkeypatch):
    (tmp_path / "data").write_text("not a folder")
    monkeypatch.setenv("STALWART_DATA", str(tmp_path / "data" / "stalwart"))
    return ["datasets"]


# (id, setup returning the command's arguments, what the message must name)
CLI_ROWS = [
    (
        "waterbirds-empty-val",
        waterbirds_without_val,
        ["split 'val' has no examples", "metadata.csv"],
    ),
    (
        "celeba-empty-test",
        celeba_without_test,
        ["split 'test' has no examples", "list_eval_partition.csv", "partition"],
    ),
    (
        "civilcomments-empty-train",
        civilcomments_without_train,
        ["split 'train' has no examples", "all_data_with_identities.csv"],
    ),
    (
        "data-home-is-a-file",
        data_home_is_a_file,
        ["$STALWART_DATA", "data is a file, not a folder"],
    ),
    ("data-home-under-a-file", data_home_under_a_file, ["data is a file, not a folder"]),
]


@pytest.mark.parametrize(
    ("setup", "mentions"), [r[1:] for r in CLI_ROWS], ids=[r[0] for r in CLI_ROWS]
)
def test_bad_data_through_the_command_line(tmp_path, monkeypatch, setup, mentions):
    monkeypatch.setenv("STALWART_DATA", str(tmp_path / "stalwart_data"))
    monkeypatch.chdir(tmp_path)  # the default run directory lands here, if anything ran
    args = setup(tmp_path, monkeypatch)
    output = expect_clean_error(invoke(*args))
    # The terminal wraps long paths anywhere, so compare with the whitespace taken out.
    for text in mentions:
        assert "".join(text.split()) in "".join(output.split()), output
    assert not (tmp_path / "runs").exists()


# --- through the library --------------------------------------------------------------------


def grouped(n: int = 16, name: str = "tiny/val", seed: int = 0) -> GroupedDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    return GroupedDataset(
        torch.randn(n, 4, generator=g) + y[:, None], y, y, n_classes=2,
        group_names=["y=0", "y=1"], name=name,
    )  # fmt: skip


def empty_dataset(tmp_path, monkeypatch):
    GroupedDataset(torch.empty(0, 3), torch.empty(0), torch.empty(0), n_classes=2,
                   group_names=["a", "b"], name="empty/train")  # fmt: skip


def empty_selection(tmp_path, monkeypatch):
    grouped(name="tiny/train").subset([], name="tiny/none")


def nan_written_into_val_then_evaluate(tmp_path, monkeypatch):
    val = grouped()
    val.x[5, 2] = float("nan")  # after construction, which checked the inputs
    evaluate(torch.nn.Linear(4, 2), val)


def inf_written_into_test_then_predict(tmp_path, monkeypatch):
    test = grouped(name="tiny/test")
    test.x[9] = float("inf")
    predict_logits(torch.nn.Linear(4, 2), test)


def nan_written_into_val_then_fit(tmp_path, monkeypatch):
    splits = Splits(grouped(64, "tiny/train"), grouped(16, "tiny/val", 1), grouped(16, "tiny/test"))
    splits.val.x[3] = float("nan")
    fit(torch.nn.Linear(4, 2), ERM(), splits, epochs=1, batch_size=16, progress=False)


def diverged_model(tmp_path, monkeypatch):
    model = torch.nn.Linear(4, 2)
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    evaluate(model, grouped(name="tiny/test"))


def waterbirds_without_val_from_library(tmp_path, monkeypatch):
    without_split("waterbirds", tmp_path / "copy", split=1)
    data.load("waterbirds", root=str(tmp_path / "copy"))


def cache_under_a_file_data_home(tmp_path, monkeypatch):
    (tmp_path / "data").write_text("")
    monkeypatch.setenv("STALWART_DATA", str(tmp_path / "data"))
    cached_arrays("demo", lambda: {"x": np.zeros(2)})


def mnist_with_a_file_data_home(tmp_path, monkeypatch):
    (tmp_path / "data").write_text("")
    monkeypatch.setenv("STALWART_DATA", str(tmp_path / "data"))
    package("mnist").require()  # looked for under $STALWART_DATA only


LIBRARY_ROWS = [
    ("empty-dataset", empty_dataset, ["empty/train", "no examples"]),
    ("empty-selection", empty_selection, ["tiny/none", "no examples"]),
    ("nan-in-val-evaluate", nan_written_into_val_then_evaluate,
     ["tiny/val", "NaN or infinite", "position 5, index 5", "after it was built"]),
    ("inf-in-test-predict", inf_written_into_test_then_predict,
     ["tiny/test", "position 9, index 9"]),
    ("nan-in-val-fit", nan_written_into_val_then_fit, ["tiny/val", "position 3, index 3"]),
    ("diverged-model", diverged_model,
     ["tiny/test", "model's outputs", "16 of 16", "inputs are finite"]),
    ("waterbirds-empty-val", waterbirds_without_val_from_library,
     ["waterbirds", "split 'val' has no examples", "metadata.csv", "split = 1"]),
    ("cache-in-a-file", cache_under_a_file_data_home, ["data is a file, not a folder"]),
    ("package-in-a-file", mnist_with_a_file_data_home, ["data is a file, not a folder"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "mentions"), [r[1:] for r in LIBRARY_ROWS], ids=[r[0] for r in LIBRARY_ROWS]
)
def test_bad_data_through_the_library(tmp_path, monkeypatch, call, mentions):
    monkeypatch.setenv("STALWART_DATA", str(tmp_path / "stalwart_data"))
    with pytest.raises(DataError) as error:
        call(tmp_path, monkeypatch)
    for text in mentions:
        assert text in str(error.value), str(error.value)
    assert "\n" not in str(error.value)
