"""kind: anomaly — detectors × datasets × seeds, cells kept and reused, tables and ranks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from tests.experiment_helpers import Notes
from typer.testing import CliRunner

from stalwart.anomaly.benchmark import Cell, evaluate_cell, summarize
from stalwart.cli import app
from stalwart.data.one_class import breast_cancer, limited_negatives_mnist
from stalwart.errors import ConfigError, DataMissingError
from stalwart.experiments.configs import parse_experiment
from stalwart.experiments.kinds.anomaly import run_anomaly

ODDS_FOLDER = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "odds"
needs_odds = pytest.mark.skipif(not ODDS_FOLDER.is_dir(), reason=f"no ODDS files at {ODDS_FOLDER}")
runner = CliRunner()


def _config(tmp_path, **changes):
    raw = {
        "kind": "anomaly", "name": "tiny", "datasets": ["wine", "breast_cancer"],
        "detectors": {"iforest": {}, "pyod_iforest": {}, "deep_svdd": {"epochs": 2}},
        "seeds": [0, 1], "workers": 1, "out": str(tmp_path / "tiny"), **changes,
    }  # fmt: skip
    return parse_experiment(raw)


def test_every_cell_is_measured_summarized_and_reused(tmp_path):
    config = _config(tmp_path)
    notes = Notes()
    result = run_anomaly(config, notes)
    root = tmp_path / "tiny"
    assert len(result["records"]) == 2 * 3 * 2
    assert notes.lines[0] == "0 cells reused, 12 to fit"
    for name in ("anomaly.json", "anomaly.md", "ranks.png"):
        assert (root / name).stat().st_size > 0
    summary = result["summary"]
    assert summary["ranked_datasets"] == 2
    # Ours and PyOD's Isolation Forest are scikit-learn's, seeded alike: identical figures.
    for dataset in ("wine", "breast_cancer"):
        assert (
            summary["cells"][dataset]["iforest"]["auroc"]
            == (summary["cells"][dataset]["pyod_iforest"]["auroc"])
        )
        assert summary["cells"][dataset]["iforest"]["auroc"]["mean"] > 0.7
    assert summary["ranks"]["iforest"] == summary["ranks"]["pyod_iforest"]
    # Run again: every cell is reused, and the same table comes out.
    again = Notes()
    assert run_anomaly(config, again)["summary"] == summary
    assert again.lines[0] == "12 cells reused, 0 to fit"
    # A changed parameter refits that detector's cells only; a damaged cell is refitted.
    cell = root / "cells" / "wine" / "iforest" / "seed0.json"
    cell.write_text("{not json")
    changed = _config(tmp_path, detectors={"iforest": {}, "pyod_iforest": {},
                                           "deep_svdd": {"epochs": 3}})  # fmt: skip
    notes = Notes()
    run_anomaly(changed, notes)
    assert notes.lines[0] == "7 cells reused, 5 to fit"
    assert json.loads(cell.read_text())["detector"] == "iforest"


def test_summary_ranks_by_mean_auroc_with_ties_shared():
    records = [
        {"dataset": d, "detector": k, "seed": 0, "auroc": a, "auprc": 0.5, "f1": 0.5,
         "fit_seconds": 1.0}
        for d, scores in {"a": {"x": 0.9, "y": 0.8, "z": 0.7},
                          "b": {"x": 0.6, "y": 0.6, "z": 0.9}}.items()
        for k, a in scores.items()
    ]  # fmt: skip
    ranks = summarize(records)["ranks"]
    assert ranks == {"x": (1 + 2.5) / 2, "y": (2 + 2.5) / 2, "z": (3 + 1) / 2}


def test_cell_measures_the_test_split_only_with_a_stated_threshold():
    data = breast_cancer(seed=0)
    found = evaluate_cell(Cell("breast_cancer", "ocsvm", 0, {"standardize": True}), data)
    assert 0.8 < found["auroc"] <= 1 and 0 < found["auprc"] <= 1
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import OneClassSVM

    scaler = StandardScaler().fit(data.train_x)
    model = OneClassSVM().fit(scaler.transform(data.train_x))
    train_scores = -model.decision_function(scaler.transform(data.train_x))
    threshold = np.quantile(train_scores, 0.95)  # 5% of training normals above it
    predicted = -model.decision_function(scaler.transform(data.test_x)) > threshold
    from sklearn.metrics import f1_score, roc_auc_score

    assert found["auroc"] == pytest.approx(roc_auc_score(data.test_y, -model.decision_function(
        scaler.transform(data.test_x))), abs=1e-9)  # fmt: skip
    assert found["f1"] == pytest.approx(f1_score(data.test_y, predicted), abs=1e-9)


@pytest.mark.data
def test_limited_negatives_cell_reports_recall_at_fixed_fpr():
    data = limited_negatives_mnist(seed=0)
    found = evaluate_cell(Cell("mnist_limited_negatives", "iforest", 0, {}), data)
    for key in ("recall_at_3pct_fpr", "recall_at_5pct_fpr", "close_recall_at_3pct_fpr"):
        assert 0 <= found[key] <= 1
    assert found["recall_at_5pct_fpr"] >= found["recall_at_3pct_fpr"]


@needs_odds
def test_odds_wildcard_expands_to_every_file(tmp_path):
    from stalwart.experiments.kinds.anomaly import expand_datasets

    config = _config(tmp_path, datasets=["odds:*", "wine"], odds_folder=str(ODDS_FOLDER))
    names = expand_datasets(config)
    assert len(names) == 18 and names[0] == "odds:arrhythmia" and names[-1] == "wine"


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"detectors": {"drocc_lt": {}}}, r"unknown detector 'drocc_lt' \(did you mean 'drocc_lf'"),
     ({"detectors": {"drocc": {"radious": 2}}}, r"detectors.drocc: DROCC has no parameter "
                                                r"'radious' \(did you mean 'radius'"),
     ({"detectors": {"pyod_iforest": {"n_trees": 5}}}, "n_trees"),
     ({"datasets": ["wines"]}, r"unknown dataset 'wines' \(did you mean 'wine'"),
     ({"datasets": ["mnist:12"]}, "normal class is a digit"),
     ({"seeds": []}, "seeds")],
)  # fmt: skip
def test_bad_configs_are_refused_before_anything_runs(tmp_path, changes, message):
    path = tmp_path / "bad.yaml"
    raw = {"kind": "anomaly", "datasets": ["wine"], "detectors": {"iforest": {}},
           "out": str(tmp_path / "out"), **changes}  # fmt: skip
    path.write_text(yaml.safe_dump(raw))
    result = runner.invoke(app, ["run", str(path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    import re

    assert re.search(message, " ".join(result.output.split())), result.output
    assert not (tmp_path / "out" / "cells").exists()


def test_the_shipped_examples_are_valid():
    for name in (
        "anomaly_odds",
        "anomaly_odds_same_settings",
        "anomaly_fashion_mnist",
        "anomaly_mnist_lf",
    ):
        raw = yaml.safe_load(Path("examples", f"{name}.yaml").read_text())
        try:  # parsing validates every detector and dataset name
            assert parse_experiment(raw).kind == "anomaly"
        except (ConfigError, DataMissingError) as error:  # only the ODDS folder may be missing
            assert "no ODDS folder" in str(error), error
            raw = {**raw, "odds_folder": None, "datasets": ["wine"]}
            assert parse_experiment(raw).kind == "anomaly"  # the rest of the config is valid


def test_a_labelled_entry_runs_another_setting_of_a_detector(tmp_path):
    config = _config(tmp_path, datasets=["wine"], seeds=[0], detectors={
        "iforest": {}, "iforest_10": {"detector": "iforest", "n_estimators": 10},
    })  # fmt: skip
    result = run_anomaly(config, Notes())
    cells = result["summary"]["cells"]["wine"]
    assert set(cells) == {"iforest", "iforest_10"}
    assert cells["iforest"]["auroc"] != cells["iforest_10"]["auroc"]
    with pytest.raises(ConfigError, match=r"detectors.ifor: unknown detector 'iforrest'"):
        _config(tmp_path, detectors={"ifor": {"detector": "iforrest"}}).validate_runs()


def test_a_cell_is_refitted_when_its_data_settings_change(tmp_path):
    from stalwart.experiments.kinds.anomaly import _reusable, data_settings

    fields = {"odds_folder": "/data/odds", "image_train": 100}
    cell = {"dataset": "fashion_mnist:3", "detector": "iforest", "seed": 0, "params": {},
            "threshold_fpr": 0.05}  # fmt: skip
    path = tmp_path / "cell.json"
    path.write_text(
        json.dumps({"schema": 1, "data_settings": data_settings("fashion_mnist:3", fields), **cell})
    )
    assert _reusable(path, cell, fields) is not None
    assert _reusable(path, cell, {**fields, "odds_folder": "/elsewhere"}) is not None  # unused
    assert _reusable(path, cell, {**fields, "image_train": 200}) is None


def test_tables_add_the_mean_over_each_family():
    from stalwart.experiments.kinds.anomaly import tables

    records = [
        {"dataset": d, "detector": "x", "seed": 0, "auroc": a, "auprc": 0.5, "f1": 0.5,
         "fit_seconds": 1.0}
        for d, a in {"mnist:0": 0.8, "mnist:1": 0.6, "wine": 0.9}.items()
    ]  # fmt: skip
    auroc_table = tables(summarize(records))[0]
    assert ["mean over mnist:* (2)", "0.700"] in auroc_table.rows
    assert not any(row[0].startswith("mean over wine") for row in auroc_table.rows)
