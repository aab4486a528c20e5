"""`kind: simplicity` on tiny slab data, and `stalwart diagnose` on its runs."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from stalwart import simplicity
from stalwart.cli import app
from stalwart.errors import ConfigError
from stalwart.experiments.configs import parse_experiment
from stalwart.experiments.diagnose import RESULT, diagnose_run
from stalwart.experiments.kinds import Reporter
from stalwart.experiments.kinds.simplicity import run_simplicity
from stalwart.experiments.run import load_run

SLABS = {"n_train": 3000, "n_val": 200, "n_test": 1000, "dim": 8}


def config_for(root, **extra):
    raw = {
        "kind": "simplicity", "name": "tiny", "out": str(root), "workers": 1, "seeds": [0, 1],
        "datasets": {
            "lms5": {"name": "lms", "slabs": 5, **SLABS, "label": "LMS-5"},
            "noisy": {"name": "lms", "slabs": 7, "corrupt_linear": 0.2, **SLABS,
                      "model": {"name": "mlp", "hidden": [32]}, "train": {"epochs": 2}},
        },
        "model": {"name": "mlp", "hidden": [64, 64]},
        "train": {"epochs": 4, "batch_size": 128, "optimizer": "sgd", "lr": 0.1,
                  "weight_decay": 5e-5, "select": "last"},
        "uap": {"eps": 1.0, "steps": 20},
        **extra,
    }  # fmt: skip
    return parse_experiment(raw, "test")


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    root = tmp_path_factory.mktemp("simplicity")
    config = config_for(root)
    return root, config, run_simplicity(config, Reporter())


def test_the_table_summarises_each_dataset_over_seeds(experiment):
    root, config, table = experiment
    rows = table["datasets"]
    assert list(rows) == ["lms5", "noisy"] and rows["lms5"]["label"] == "LMS-5"
    assert rows["lms5"]["seeds"] == 2 and rows["lms5"]["simple"] == "simple"
    # Every figure is the mean over the seeds' own diagnostics.
    for label in rows:
        found = [json.loads((root / label / f"seed{s}" / RESULT).read_text()) for s in (0, 1)]
        auc = [f["report"]["randomized"]["simple"]["auc"] for f in found]
        assert rows[label]["s_randomized_auc"]["mean"] == pytest.approx(sum(auc) / 2)
        share = [f["uap"]["share"]["simple"] for f in found]
        assert rows[label]["uap_share"]["mean"] == pytest.approx(sum(share) / 2)
    # The network leans on the linear coordinate of LMS-5, as in the paper.
    assert rows["lms5"]["accuracy"]["mean"] > 0.97
    assert rows["lms5"]["s_randomized_auc"]["mean"] < 0.7
    assert rows["lms5"]["sc_randomized_auc"]["mean"] > 0.95
    # Entries override the model and training; the runs are ordinary run directories.
    noisy, _, _ = load_run(root / "noisy" / "seed1")
    assert noisy.model.params == {"hidden": [32]} and noisy.train.epochs == 2
    assert noisy.train.seed == 1 and noisy.data.params["corrupt_linear"] == 0.2
    assert (root / "simplicity.md").read_text().count("LMS-5") == 1


def test_diagnose_reads_a_run_and_caches_by_options(experiment):
    root, _, _ = experiment
    run = root / "lms5" / "seed0"
    _, splits, model = load_run(run)
    first = diagnose_run(run, ["simple"], seed=3)
    agreeing = simplicity.agreeing_subset(splits.test)  # all of LMS-5: nothing is corrupted
    assert len(agreeing) == len(splits.test)
    direct = simplicity.randomized_auc(model, agreeing, ["simple"], seed=3)
    assert first["report"] == json.loads(json.dumps(direct.to_dict()))
    assert first["uap"] is None and first["blocks"] == ["simple"]
    coordinates = simplicity.coordinate_accuracy(model, splits.test, seed=3)
    assert first["coordinate_accuracy"] == pytest.approx(coordinates.tolist())
    assert len(coordinates) == 8 and coordinates[0] < 0.8 < min(coordinates[1:])
    stamp = (run / RESULT).stat().st_mtime_ns
    assert diagnose_run(run, ["simple"], seed=3) == first
    assert (run / RESULT).stat().st_mtime_ns == stamp  # read back, not recomputed
    noisy = root / "noisy" / "seed0"
    every = diagnose_run(noisy, agreeing=False)["report"]["examples"]
    assert diagnose_run(noisy)["report"]["examples"] < every == 1000  # corrupted rows left out
    (run / RESULT).write_text("{not json")
    assert diagnose_run(run, ["simple"], seed=3) == first  # a damaged cache is recomputed


def test_diagnose_command_pools_seeds_of_each_entry(experiment):
    root, _, _ = experiment
    result = CliRunner().invoke(app, ["diagnose", str(root), "--format", "json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert sorted(found) == ["lms5", "noisy"] and len(found["lms5"]) == 2
    table = CliRunner().invoke(app, ["diagnose", str(root / "noisy"), "--blocks", "simple"])
    assert table.exit_code == 0, table.output
    assert "noisy" in table.output and "AUC" in table.output
    both = CliRunner().invoke(
        app, ["diagnose", str(root / "noisy"), "--blocks", "complex,simple", "--format", "json"]
    )
    (runs,) = json.loads(both.output).values()
    assert [list(run["report"]["randomized"]) for run in runs] == [["complex", "simple"]] * 2
    bad = CliRunner().invoke(app, ["diagnose", str(root), "--blocks", "simpel"])
    assert bad.exit_code == 2 and "did you mean 'simple'" in bad.output
    empty = CliRunner().invoke(app, ["diagnose", str(root / "lms5" / "nothing")])
    assert empty.exit_code == 2 and "does not exist" in empty.output


def test_bad_configs_name_the_entry(tmp_path):
    with pytest.raises(ConfigError, match=r"datasets.lms5.*.slabs.: Input should be 3, 5 or 7"):
        config_for(tmp_path, datasets={"lms5": {"name": "lms", "slabs": 4}}).validate_runs()
    with pytest.raises(ConfigError, match="give the data source as name: SOURCE"):
        config_for(tmp_path, datasets={"lms5": {"slabs": 5}})
    with pytest.raises(ConfigError, match="uap.eps"):
        config_for(tmp_path, uap={"eps": 0})
