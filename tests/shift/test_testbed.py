"""A tiny testbed (6 models on digits, 2 shifts): format, resume, executors, sets and prediction."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from tests.experiment_helpers import Notes
from typer.testing import CliRunner

from stalwart.cli import app
from stalwart.config import validate_run_config
from stalwart.errors import CheckpointError, ConfigError
from stalwart.experiments.configs import parse_experiment
from stalwart.experiments.executors import LocalExecutor
from stalwart.experiments.kinds.testbed import run_testbed
from stalwart.experiments.run import load_run, run
from stalwart.shift.line import cross_validated_predictions
from stalwart.shift.predictors import ModelPool, predict
from stalwart.shift.testbed import (
    evaluation_sets,
    load_testbed_splits,
    model_outputs,
    predict_run,
    run_model,
    training_set,
)
from stalwart.shift.testbed_io import Testbed as Folder
from stalwart.shift.testbed_io import read_outputs
from stalwart.shift.zoo import ModelSpec, expand_family

SHIFTS = ["gaussian_noise_3", "rotation_3"]
ZOO = {
    "mlp": {"hidden": [[16], [32]], "train_size": 400},
    "cnn": {"width": 4, "depth": 1, "train_size": 300, "augment": "flip_shift"},
    "logistic": {"C": [0.01, 1.0], "train_size": 400, "max_iter": 50},
    "knn": {"n_neighbors": 3},
}
EVAL = 150


def config_for(root, zoo=ZOO, **extra):
    raw = {"kind": "testbed", "name": "tiny", "out": str(root), "eval_examples": EVAL,
           "workers": 1, "data": {"name": "digits", "shifts": SHIFTS}, "zoo": zoo,
           **extra}  # fmt: skip
    return parse_experiment(raw, "test")


@pytest.fixture(scope="module")
def testbed(tmp_path_factory):
    root = tmp_path_factory.mktemp("testbed")
    result = run_testbed(config_for(root), Notes(), LocalExecutor(1))
    return root, result


def test_a_run_writes_the_testbed_format_and_testbed_reads_it_back(testbed):
    root, result = testbed
    assert result["finished"] == result["models"] == 6
    assert (root / "config.yaml").is_file() and (root / "labels.npz").is_file()
    bed = Folder(root)
    assert bed.sets == ["val", "test", *SHIFTS]
    assert len(bed.models) == 6
    for model in bed.models:
        assert (root / "models" / model / "outputs.npz").is_file()
        assert bed.info(model)["id"] == model
    assert all(len(bed.labels[s]) == EVAL for s in bed.sets)  # every set subsampled
    csv = pd.read_csv(root / "accuracies.csv", index_col="model")
    pd.testing.assert_frame_equal(csv, bed.accuracies(), check_names=False)
    assert ((csv >= 0) & (csv <= 1)).all().all() and csv["test"].mean() > 0.3
    models = pd.read_csv(root / "models.csv", index_col="model")
    assert sorted(models.index) == sorted(bed.models)
    assert sorted(models["family"]) == ["cnn", "knn", "logistic", "logistic", "mlp", "mlp"]
    assert json.loads(models.loc[models["family"] == "mlp", "hidden"].iloc[0]) in ([16], [32])
    assert {line["shift"] for line in result["lines"]} == set(SHIFTS)
    families = {row["family"]: row for row in result["families"]}
    assert {f: row["models"] for f, row in families.items()} == {
        "mlp": 2, "cnn": 1, "logistic": 2, "knn": 1}  # fmt: skip
    mlps = csv.loc[models.index[models["family"] == "mlp"], "test"]
    assert families["mlp"]["min"] == mlps.min() and families["mlp"]["max"] == mlps.max()
    assert families["mlp"]["seconds"] == pytest.approx(models.loc[mlps.index, "seconds"].sum())


def test_running_again_skips_finished_models_and_redoes_an_interrupted_one(testbed, tmp_path):
    root, _ = testbed
    stamps = {p: p.stat().st_mtime_ns for p in root.glob("models/*/outputs.npz")}
    before = pd.read_csv(root / "accuracies.csv", index_col="model")
    notes = Notes()
    run_testbed(config_for(root), notes, LocalExecutor(1))
    assert "6 of 6 models finished before; training 0" in notes.lines[0]
    assert {p: p.stat().st_mtime_ns for p in root.glob("models/*/outputs.npz")} == stamps
    # Interrupted after training, before its outputs: the network is resumed and redone.
    mlp = next(p for p in root.glob("models/mlp-*"))
    (mlp / "outputs.npz").unlink()
    notes = Notes()
    run_testbed(config_for(root), notes, LocalExecutor(1))
    assert "5 of 6 models finished before; training 1" in notes.lines[0]
    assert mlp.name in notes.lines[1]
    pd.testing.assert_frame_equal(pd.read_csv(root / "accuracies.csv", index_col="model"), before)


def test_a_testbed_folder_refuses_other_evaluation_sets(testbed):
    root, _ = testbed
    with pytest.raises(CheckpointError, match="eval_examples: 150 there, 100 now"):
        run_testbed(config_for(root, eval_examples=100), Notes(), LocalExecutor(1))


def test_evaluation_sets_rebuilds_exactly_the_evaluated_sets(testbed, tmp_path):
    root, _ = testbed
    sets = evaluation_sets(root)
    bed = Folder(root)
    assert list(sets) == bed.sets
    for name, dataset in sets.items():
        np.testing.assert_array_equal(dataset.y.numpy(), bed.labels[name])
    # The test set and its corrupted copies keep the same (subsampled) examples.
    assert torch.equal(sets["test"].index, sets["gaussian_noise_3"].index)
    # A model trained again on the rebuilt sets leaves exactly the stored outputs.
    spec = ModelSpec(
        "knn", bed.info(next(m for m in bed.models if m.startswith("knn")))["settings"]
    )
    splits = load_testbed_splits(config_for(root))
    run_model(spec, splits, tmp_path / "again")
    stored, again = read_outputs(root / "models" / spec.id), read_outputs(tmp_path / "again")
    for name in sets:
        np.testing.assert_array_equal(again[name].predictions, stored[name].predictions)
        np.testing.assert_array_equal(again[name].confidence, stored[name].confidence)


def test_predict_run_joins_the_pool_and_matches_the_computation_by_hand(testbed, tmp_path):
    root, _ = testbed
    run_config = validate_run_config({
        "name": "new", "out": str(tmp_path / "new"), "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [24]},
        "train": {"epochs": 1, "progress": False, "device": "cpu"},
    })  # fmt: skip
    run(run_config)
    value = predict_run(tmp_path / "new", root, "aline-d", "rotation_3")
    assert 0 <= value <= 1
    bed, sets = Folder(root), evaluation_sets(root)
    _, _, model = load_run(tmp_path / "new")
    mine = model_outputs(model, {"val": sets["val"], "rotation_3": sets["rotation_3"]})
    names = [*bed.models, "run:new"]
    pool = ModelPool(
        names, [*(bed.outputs(m, "val") for m in bed.models), mine["val"]], bed.labels["val"],
        [*(bed.outputs(m, "rotation_3") for m in bed.models), mine["rotation_3"]],
    )  # fmt: skip
    assert value == pytest.approx(predict(pool, "aline-d")[-1])
    # naive: exactly the run's accuracy on the testbed's labelled ID set.
    naive = predict_run(tmp_path / "new", root, "naive", "rotation_3", id_set="test")
    assert naive == pytest.approx(model_outputs(model, sets)["test"].accuracy(bed.labels["test"]))
    # The command prints the same numbers, and with --check the truth and the error.
    result = CliRunner().invoke(app, [
        "shift", "predict", str(tmp_path / "new"), "--testbed", str(root), "--unlabelled",
        "rotation_3", "--method", "aline-d", "--method", "naive", "--check",
    ], env={"COLUMNS": "200"})  # fmt: skip
    assert result.exit_code == 0, result.output
    truth = mine["rotation_3"].accuracy(bed.labels["rotation_3"])
    aline_row = next(line for line in result.output.splitlines() if "aline-d" in line)
    assert f"{100 * value:.2f}" in aline_row and f"{100 * truth:.2f}" in aline_row
    assert f"{100 * (value - truth):+.2f}" in aline_row
    bad = CliRunner().invoke(app, ["shift", "predict", str(tmp_path / "new"), "--testbed",
                                   str(root), "--unlabelled", "rotation_3",
                                   "--method", "alined"])  # fmt: skip
    assert bad.exit_code == 2 and "did you mean 'aline-d'" in bad.output


def test_fit_on_a_testbed_fits_its_shifts_against_test_by_default(testbed):
    root, _ = testbed
    result = CliRunner().invoke(app, ["shift", "fit", str(root), "--format", "json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["id"] == "test" and list(found["lines"]) == SHIFTS  # not val: it is ID


def test_training_sets_are_nested_seeded_subsets_and_augmentations_add_one_copy(testbed):
    root, _ = testbed
    train = load_testbed_splits(config_for(root)).train
    small, large = (training_set(train, expand_family("mlp", {"train_size": n})[0])
                    for n in (100, 200))  # fmt: skip
    assert len(small) == 100 and set(small.index.tolist()) <= set(large.index.tolist())
    flipped = training_set(train, expand_family("mlp", {"train_size": 100, "augment": "flip"})[0])
    assert len(flipped) == 200 and torch.equal(flipped.x[100:], small.x.flip(-1))
    moved = training_set(train, expand_family("mlp", {"train_size": 100, "augment": "shift"})[0])
    assert torch.equal(moved.x[:100], small.x) and not torch.equal(moved.x[100:], small.x)
    # Translation moves pixels, it does not invent them: the copies' mass can only shrink.
    assert (moved.x[100:].sum((1, 2, 3)) <= small.x.sum((1, 2, 3)) + 1e-5).all()


def test_bad_testbed_configs_are_rejected_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"zoo\.mlp: unknown setting 'hiden'"):
        config_for(tmp_path, zoo={"mlp": {"hiden": [[8]]}})
    with pytest.raises(ConfigError, match=r"eval_exampels"):
        config_for(tmp_path, eval_exampels=5)
    with pytest.raises(ConfigError, match=r"zoo\.mlp\.augment: 'flip' needs image data"):
        parse_experiment({"kind": "testbed", "data": {"name": "gaussian_shift"},
                          "zoo": {"mlp": {"augment": "flip"}}})  # fmt: skip
    with pytest.raises(ConfigError, match=r"shift 'mnst'"):
        parse_experiment({"kind": "testbed", "data": {"name": "digits", "shifts": ["mnst"]},
                          "zoo": {"knn": None}})  # fmt: skip


def test_local_processes_and_ray_give_the_same_accuracies(tmp_path):
    zoo = {"mlp": {"hidden": [16], "train_size": [200, 400]}, "logistic": {"max_iter": 30}}
    tables = {}
    for executor in ("local", "ray"):
        path = tmp_path / f"{executor}.yaml"
        # One worker: Ray's start-up and a spawned process each cost seconds on two cores.
        raw = {"kind": "testbed", "name": "exec", "out": str(tmp_path / executor), "workers": 1,
               "eval_examples": 100, "data": {"name": "digits", "shifts": ["blur_2"]},
               "zoo": zoo}  # fmt: skip
        path.write_text(yaml.safe_dump(raw))
        result = CliRunner().invoke(app, ["run", str(path), "--executor", executor])
        assert result.exit_code == 0, result.output
        assert "blur_2" in result.output  # the renderer's line table
        tables[executor] = (tmp_path / executor / "accuracies.csv").read_text()
    assert tables["ray"] == tables["local"]
    assert len(tables["ray"].splitlines()) == 4


def test_evaluate_prints_each_predictors_mean_absolute_error_per_shift(testbed):
    root, _ = testbed
    result = CliRunner().invoke(
        app, ["shift", "evaluate", str(root), "--format", "json", "--method", "naive",
              "--method", "aline-d", "--folds", "3"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)["mean_absolute_error"]
    assert list(found) == SHIFTS  # the shifts, never val or test
    bed = Folder(root)
    truth = bed.accuracies()
    for shift in SHIFTS:
        pool = bed.pool("val", shift)
        true = truth.loc[list(pool.names), shift].to_numpy()
        for name in ("naive", "aline-d"):
            expected = np.abs(predict(pool, name) - true).mean()
            assert found[shift][name] == pytest.approx(expected)
        labelled = cross_validated_predictions(truth.loc[list(pool.names), "val"], true, folds=3)
        assert found[shift]["labelled line"] == pytest.approx(np.abs(labelled - true).mean())


def test_evaluate_restricts_to_families(testbed):
    root, _ = testbed
    result = CliRunner().invoke(
        app, ["shift", "evaluate", str(root), "--format", "json", "--family", "mlp",
              "--family", "logistic", "--method", "aline-s", "--folds", "4"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert found["models"] == 4 and found["families"] == ["mlp", "logistic"]
    bed = Folder(root)
    models = bed.family_models(["mlp", "logistic"])
    assert sorted(bed.info(m)["family"] for m in models) == ["logistic"] * 2 + ["mlp"] * 2
    pool = bed.pool("val", SHIFTS[0], models)
    true = bed.accuracies().loc[models, SHIFTS[0]].to_numpy()
    expected = np.abs(predict(pool, "aline-s") - true).mean()
    assert found["mean_absolute_error"][SHIFTS[0]]["aline-s"] == pytest.approx(expected)
    few = CliRunner().invoke(app, ["shift", "evaluate", str(root), "--family", "mlp",
                                   "--family", "logistic", "--folds", "2"])  # fmt: skip
    assert few.exit_code != 0 and "a line is fitted on 2 models" in few.output
    wrong = CliRunner().invoke(app, ["shift", "evaluate", str(root), "--family", "resnte"])
    assert wrong.exit_code != 0
    assert "no finished 'resnte' model" in wrong.output and "['cnn', 'knn'" in wrong.output


def test_fit_and_read_accuracies_select_families(testbed):
    from stalwart.shift.fits import read_accuracies

    root, _ = testbed
    table = read_accuracies(root, families=["mlp", "knn"])
    bed = Folder(root)
    assert sorted(table.models) == sorted(bed.family_models(["mlp", "knn"])) and len(table) == 3
    assert table.families == tuple(bed.info(m)["family"] for m in table.models)
    assert read_accuracies(root).families.count("logistic") == 2  # recorded for every testbed
    with pytest.raises(ConfigError, match="selects models of a testbed folder"):
        read_accuracies(root / "accuracies.csv", families=["mlp"])
    result = CliRunner().invoke(
        app, ["shift", "fit", str(root), "--family", "mlp", "--family", "logistic",
              "--format", "json", "--bootstrap", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert all(line["n"] == 4 for line in json.loads(result.output)["lines"].values())
