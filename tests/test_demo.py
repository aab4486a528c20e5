"""The demo's claim, at full scale (slow: a few minutes): run with `pytest -m slow`."""

import json

import pytest
from typer.testing import CliRunner

from stalwart.cli import app


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
