"""The demo: its claim at full scale (slow: a few minutes; `pytest -m slow`), and its report.

The fast test replaces the comparison with two toy runs (seconds) to check that the demo
ends by auditing its folder and printing where the report is.
"""

import json
import shutil

import html5lib
import pytest
from tests.conftest import TOY_RUN
from typer.testing import CliRunner

import stalwart.cli.run as cli_run
from stalwart.cli import app
from stalwart.experiments.configs import parse_config
from stalwart.experiments.run import run


@pytest.mark.slow
@pytest.mark.data("mnist", "fashion_mnist")
def test_demo_group_dro_beats_erm_and_jtt_closes_part_of_the_gap(tmp_path):
    result = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 0, result.output
    methods = json.loads((tmp_path / "demo" / "comparison.json").read_text())["methods"]
    worst = {name: row["worst_group_accuracy"]["mean"] for name, row in methods.items()}
    assert worst["group_dro"] > worst["erm"] + 0.2
    assert methods["jtt"]["gap_closed"] > 0.3
    assert (tmp_path / "demo" / "per_group_accuracy.png").stat().st_size > 0
    assert (tmp_path / "demo" / "report.html").stat().st_size > 0


def fake_comparison(trained):
    """Stands in for the dominoes comparison: copies a trained toy run in as two methods."""

    def run_experiment(config_path, overrides, out, *args):
        assert config_path.stem == "compare_dominoes"
        for method in ("erm", "jtt"):
            shutil.copytree(trained, out / method / "seed0")

    return run_experiment


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "toy"
    run(parse_config({**TOY_RUN, "out": str(out)}))
    return out


def test_demo_ends_with_its_report_and_prints_the_path(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(cli_run, "run_experiment", fake_comparison(trained))
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--audit-budget", "2"],
                                env={"COLUMNS": "300"})  # fmt: skip
    assert result.exit_code == 0, result.output
    page = out / "report.html"
    assert f"report: {page} (and {page.with_suffix('.json')})" in result.output
    data = json.loads(page.with_suffix(".json").read_text())
    assert list(data["runs"]) == ["erm", "jtt"]
    assert all(s["budget"] == 2 for r in data["runs"].values() for s in r["sections"])
    html5lib.HTMLParser(strict=True).parse(page.read_text())


def test_demo_without_audit_writes_no_report(trained, tmp_path, monkeypatch):
    monkeypatch.setattr(cli_run, "run_experiment", fake_comparison(trained))
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--audit-budget", "0"])
    assert result.exit_code == 0, result.output
    assert (out / "erm" / "seed0").is_dir() and not (out / "report.html").exists()
    refused = CliRunner().invoke(app, ["demo", "--out", str(out), "--audit-budget", "-1"],
                                 env={"COLUMNS": "300"})  # fmt: skip
    assert refused.exit_code == 2 and "--audit-budget must be >= 0" in refused.output
