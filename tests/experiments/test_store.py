"""The run store: a tree of run directories as a DataFrame; filters, grouping, `stalwart runs`."""

import json

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from stalwart.cli import app
from stalwart.errors import ConfigError
from stalwart.experiments.store import aggregate, read_runs, select


def write_run(root, name, *, method, seed, lr, test, finished=True, epochs=2):
    run = root / name
    (run / "checkpoints").mkdir(parents=True)
    config = {
        "kind": "run", "name": name, "data": {"name": "toy_spurious", "n": 100},
        "model": {"name": "mlp", "hidden": [8, 8]}, "method": {"name": method},
        "train": {"lr": lr, "seed": seed}, "out": str(run),
    }  # fmt: skip
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    lines = [json.dumps({"epoch": e, "train_seconds": 1.5}) for e in range(1, epochs + 1)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if finished:
        metrics = {
            "accuracy": test[0], "worst_group_accuracy": test[1],
            "group_accuracy": [test[1], test[0]], "group_counts": [10, 30],
            "group_names": ["minority", "majority"], "weighted_accuracy": None, "loss": 0.5,
        }  # fmt: skip
        summary = {"name": name, "best_epoch": 2, "seconds": 3.0, "group_labels": "no",
                   "metrics": {"val": metrics, "test": metrics}}  # fmt: skip
        (run / "summary.json").write_text(json.dumps(summary))
    return run


@pytest.fixture
def tree(tmp_path):
    write_run(tmp_path, "erm/seed0", method="erm", seed=0, lr=0.001, test=(0.9, 0.5))
    write_run(tmp_path, "erm/seed1", method="erm", seed=1, lr=0.001, test=(0.8, 0.3))
    write_run(tmp_path, "gdro/seed0", method="group_dro", seed=0, lr=0.003, test=(0.85, 0.8))
    write_run(tmp_path, "gdro/seed1", method="group_dro", seed=1, lr=0.003, test=(0, 0),
              finished=False, epochs=1)  # fmt: skip
    (tmp_path / "shared" / "jtt-identification-abc").mkdir(parents=True)  # a stage: no config
    return tmp_path


def test_every_run_is_one_flat_row(tree):
    frame = read_runs(tree)
    assert sorted(frame["run"]) == ["erm/seed0", "erm/seed1", "gdro/seed0", "gdro/seed1"]
    row = frame.set_index("run").loc["erm/seed1"]
    assert row["method.name"] == "erm" and row["train.seed"] == 1 and row["train.lr"] == 0.001
    assert row["model.hidden"] == "[8, 8]"  # lists stay one hashable cell
    assert row["test.worst_group_accuracy"] == 0.3
    assert row["test.group_accuracy.minority"] == 0.3 and row["test.group_count.majority"] == 30
    assert row["epochs"] == 2 and row["train_seconds"] == 3.0
    assert row["status"] == "finished"
    assert frame.set_index("run").loc["gdro/seed1", "status"] == "unfinished"


@pytest.mark.parametrize(
    "where, runs",
    [
        (["method.name=erm"], ["erm/seed0", "erm/seed1"]),
        (["train.lr=0.003"], ["gdro/seed0", "gdro/seed1"]),
        (["train.lr=3e-3", "status=finished"], ["gdro/seed0"]),
        (["test.worst_group_accuracy>=0.5"], ["erm/seed0", "gdro/seed0"]),
        (["test.worst_group_accuracy<0.5"], ["erm/seed1"]),
        (["method.name!=erm"], ["gdro/seed0", "gdro/seed1"]),
        (["model.hidden=[8, 8]"], ["erm/seed0", "erm/seed1", "gdro/seed0", "gdro/seed1"]),
    ],
)
def test_filters(tree, where, runs):
    assert sorted(read_runs(tree, where)["run"]) == runs


def test_bad_filters_name_the_problem(tree):
    with pytest.raises(ConfigError, match="did you mean 'train.lr'"):
        read_runs(tree, ["train.lrr=0.1"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        read_runs(tree, ["no operator here"])
    with pytest.raises(ConfigError, match="compares numbers"):
        read_runs(tree, ["train.lr>abc"])
    with pytest.raises(ConfigError, match="does not exist"):
        read_runs(tree / "absent")


def test_aggregate_means_and_stds_over_seeds(tree):
    finished = select(read_runs(tree), ["status=finished"])
    table = aggregate(finished, ["method.name"], ["test.worst_group_accuracy"])
    erm = table.set_index("method.name").loc["erm"]
    assert erm["runs"] == 2
    assert erm["test.worst_group_accuracy.mean"] == pytest.approx(0.4)
    assert erm["test.worst_group_accuracy.std"] == pytest.approx(0.1414213562, rel=1e-9)
    assert table.set_index("method.name").loc["group_dro", "test.worst_group_accuracy.std"] == 0


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv", "json"])
def test_runs_command_prints_every_format(tree, fmt):
    result = CliRunner().invoke(app, ["runs", str(tree), "--where", "method.name=erm",
                                      "--format", fmt])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "gdro" not in result.output
    if fmt == "table":  # a narrow terminal folds long cells; the rows are there
        assert "2 rows from" in result.output and "erm/se" in result.output
    else:
        assert "erm/seed1" in result.output
    if fmt == "csv":
        assert result.output.splitlines()[0].startswith("run,status,method.name")
    if fmt == "json":
        assert json.loads(result.output)[0]["run"] == "erm/seed0"


def test_runs_command_groups_and_rejects_unknown_columns(tree):
    result = CliRunner().invoke(app, ["runs", str(tree), "--where", "status=finished",
                                      "--group-by", "method.name", "--format", "csv"])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = pd.read_csv(__import__("io").StringIO(result.output)).set_index("method.name")
    assert rows.loc["erm", "test.worst_group_accuracy.mean"] == pytest.approx(0.4)
    bad = CliRunner().invoke(app, ["runs", str(tree), "--columns", "test.acuracy"])
    assert bad.exit_code == 2 and "did you mean 'test.accuracy'" in bad.output


def test_runs_tables_are_for_reading(tree):
    """Percent, one ``m ± s`` cell per metric, short headers; status only where it is news."""

    def markdown(*args):
        result = CliRunner().invoke(app, ["runs", str(tree), *args, "--format", "markdown"])
        assert result.exit_code == 0, result.output
        return result.output

    grouped = markdown("--where", "status=finished", "--group-by", "method.name")
    assert "test worst %" in grouped.splitlines()[0]
    erm_row = next(line for line in grouped.splitlines() if line.startswith("| erm "))
    assert "40.0 ± 14.1" in erm_row and "85.0 ± 7.1" in erm_row  # worst group, accuracy
    assert "status" not in markdown("--where", "status=finished").splitlines()[0]
    assert "unfinished" in markdown()
