"""`stalwart audit` on one-class detectors: anomaly cells get the one-class section, and only it.

A tiny ``kind: anomaly`` run (scikit-learn's wine data, Isolation Forest and a 3-epoch DROCC,
one seed) is run once for the module; its cells are audited one by one and as a folder.
"""

from __future__ import annotations

import json
import shutil

import html5lib
import pytest
from tests.experiment_helpers import Notes
from typer.testing import CliRunner

from stalwart.audit import audit
from stalwart.audit.runs import runs_to_audit
from stalwart.cli import app
from stalwart.data import one_class
from stalwart.errors import ConfigError
from stalwart.experiments.configs import parse_experiment
from stalwart.experiments.kinds.anomaly import run_anomaly

CLASSIFICATION_CHECKS = ["groups", "robustness", "certified", "simplicity", "shift", "typos"]
DETECTORS = {"iforest": {}, "drocc": {"epochs": 3, "warmup_epochs": 1, "ascent_steps": 3}}


@pytest.fixture(scope="module")
def anomaly_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("anomaly") / "tiny"
    raw = {"kind": "anomaly", "name": "tiny", "datasets": ["wine"], "detectors": DETECTORS,
           "seeds": [0, 1], "workers": 1, "out": str(root)}  # fmt: skip
    run_anomaly(parse_experiment(raw), Notes())
    return root


def cell(root, detector, seed=0):
    return root / "cells" / "wine" / detector / f"seed{seed}.json"


@pytest.fixture(scope="module")
def root_report(anomaly_root):
    return audit(anomaly_root, budget_s=None)


def sections(report, label):
    return {s.key: s for s in report.runs[label]}


def test_a_folder_of_cells_audits_one_seed_per_detector(anomaly_root, root_report):
    assert list(root_report.runs) == ["wine/drocc", "wine/iforest"]
    assert root_report.paths["wine/iforest"] == str(cell(anomaly_root, "iforest"))
    assert any("4 one-class cells of 2 dataset × detector entries" in n for n in root_report.notes)
    chosen, _ = runs_to_audit([anomaly_root], all_seeds=True)
    assert [label for label, _ in chosen] == [
        "wine/drocc/seed0.json", "wine/drocc/seed1.json",
        "wine/iforest/seed0.json", "wine/iforest/seed1.json",
    ]  # fmt: skip


@pytest.mark.parametrize("detector", DETECTORS)
def test_the_one_class_section_reproduces_the_cells_record(anomaly_root, root_report, detector):
    record = json.loads(cell(anomaly_root, detector).read_text())
    found = sections(root_report, f"wine/{detector}")
    section = found["one_class"]
    assert section.status == "ok", section.reason
    assert section.figures["AUROC"].value == round(record["auroc"], 4)
    assert section.figures["AUPRC"].value == round(record["auprc"], 4)
    assert section.figures["anomaly F1"].value == round(record["f1"], 4)
    test_y = one_class.wine(seed=0).test_y
    assert section.figures["held-out anomalies"].value == int(test_y.sum())
    assert section.figures["held-out normals"].value == int((test_y == 0).sum())
    assert "The figures match the cell's record" in section.notes[-1]
    assert section.plots and section.plots[0].data[:4] == b"\x89PNG"
    assert "--checks one_class" in section.command
    for key in CLASSIFICATION_CHECKS:
        assert found[key].status == "not_applicable"
        assert "one-class detector" in found[key].reason


def test_side_by_side_ranks_the_detectors_by_auroc(root_report):
    (table,) = next(s for s in root_report.side_by_side if s.key == "one_class").tables
    row = [r[0] for r in table.rows].index("AUROC")
    values = [float(v) for v in table.rows[row][1:]]
    best = 1 + values.index(max(values))
    assert (row, best) in table.marked


def test_a_record_that_the_fit_does_not_reproduce_is_reported(anomaly_root, tmp_path):
    changed = tmp_path / "cells" / "wine" / "iforest" / "seed0.json"
    changed.parent.mkdir(parents=True)
    record = json.loads(cell(anomaly_root, "iforest").read_text())
    true_auroc = record["auroc"]
    changed.write_text(json.dumps({**record, "auroc": 0.5, "precision": 0.0}))
    report = audit(changed, checks=["one_class"], budget_s=None)
    (label,) = report.runs
    assert label == "wine/iforest/seed0"
    section = sections(report, label)["one_class"]
    assert section.figures["AUROC"].value == round(true_auroc, 4)
    note = section.notes[-1]
    assert "AUROC 0.5000 there" in note and "does not reproduce" in note
    assert "anomaly precision at the threshold 0.0000 there" in note

    changed.write_text(json.dumps({**record, "precision": 0.0}))
    section = sections(audit(changed, checks=["one_class"], budget_s=None), label)["one_class"]
    assert "reproduces the record's AUROC, but the record differs" in section.notes[-1]


def test_a_cell_of_another_schema_gives_a_section_that_says_so(anomaly_root, tmp_path):
    old = tmp_path / "seed0.json"
    old.write_text(json.dumps({**json.loads(cell(anomaly_root, "iforest").read_text()),
                               "schema": 0}))  # fmt: skip
    report = audit(old, checks=["one_class"])
    ((_, (section,)),) = report.runs.items()
    assert section.status == "failed"
    assert "schema 0" in section.reason and "run the experiment again" in section.reason


def test_a_file_that_is_not_a_cell_is_refused_with_what_to_give(tmp_path):
    broken = tmp_path / "seed0.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not a one-class cell's record"):
        runs_to_audit([broken])


def test_cli_audits_an_anomaly_run_into_a_valid_page(anomaly_root, tmp_path):
    copy = tmp_path / "tiny"
    shutil.copytree(anomaly_root, copy)
    page = tmp_path / "report.html"
    result = CliRunner().invoke(app, ["audit", str(copy), "-o", str(page)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    # Only the check that applies gets a column; the others are named once.
    assert "one_class" in result.output and "│ groups" not in result.output
    assert (
        f"not applicable to these runs (the page says why): {', '.join(CLASSIFICATION_CHECKS)}"
        in result.output
    )
    html5lib.HTMLParser(strict=True).parse(page.read_text())
    data = json.loads(page.with_suffix(".json").read_text())
    assert set(data["runs"]) == {"wine/drocc", "wine/iforest"}
    for found in data["runs"].values():
        statuses = {section["key"]: section["status"] for section in found["sections"]}
        assert statuses == {
            **dict.fromkeys(CLASSIFICATION_CHECKS, "not_applicable"),
            "one_class": "ok",
        }
