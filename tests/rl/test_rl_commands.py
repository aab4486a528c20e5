"""`stalwart rl train` and `stalwart rl eval`: a run written, resumed, meta-tested; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from tests.rl.test_loop import TINY
from typer.testing import CliRunner

from stalwart.cli import app
from stalwart.rl.envs import make
from stalwart.rl.evaluate import HeldOut


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny E-RL² run trained once through the command line, for every test to read."""
    folder = tmp_path_factory.mktemp("rl_cli")
    config = folder / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "learner": "erl2", "total_steps": 120}))
    result = invoke("rl", "train", config, "--out", folder / "run")
    assert result.exit_code == 0, result.output
    return folder, result.output


def test_train_reports_each_evaluation_and_writes_the_run(trained):
    folder, output = trained
    run = folder / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["curve"][-1]["step"] >= 120
    # One progress line per evaluation, with the references, then the closing line.
    assert output.count("held-out return") == len(summary["curve"]) + 1
    assert "(oracle +0.150, random -0.500)" in output
    assert f"written {run / 'summary.json'}" in " ".join(output.split())


def test_training_again_resumes_the_finished_run_instead_of_starting_over(trained):
    folder, _ = trained
    before = (folder / "run" / "metrics.jsonl").read_text()
    result = invoke("rl", "train", folder / "tiny.yaml", "--out", folder / "run")
    assert result.exit_code == 0, result.output
    assert "(resuming)" in result.output
    assert (folder / "run" / "metrics.jsonl").read_text() == before


def test_eval_plays_the_held_out_pairs_asked_for_and_writes_them(trained):
    folder, _ = trained
    run = folder / "run"
    result = invoke("rl", "eval", run, "--episodes", 7, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["episodes"] == 7 and report["held_out_pairs"] == 32 * 4
    played = report["played"]
    test_problems = set(make("distracting_bus_tight").test_problems.tolist())
    assert {one["problem"] for one in played} <= test_problems
    assert all(len(one["exploration"]) == 5 for one in played)  # the budget, always spent
    assert report["return"] == pytest.approx(np.mean([one["return"] for one in played]))
    assert report["oracle"] >= report["return"]
    assert json.loads((run / "eval.json").read_text())["played"] == played
    table = invoke("rl", "eval", run, "--episodes", 3, "--traces", 2)
    assert table.exit_code == 0, table.output
    assert "oracle (knows μ)" in table.output and "exploration" in table.output


def test_the_held_out_pairs_drawn_are_distinct_seeded_and_all_when_asked_for_more():
    def pairs(**kw):
        held = HeldOut(lambda: make("distracting_bus_tight", split="test"), **kw)
        return list(zip(held.problems.tolist(), held.goals.tolist(), strict=True))

    every = pairs()
    some = pairs(limit=10, seed=1)
    assert len(set(some)) == 10 and set(some) <= set(every) and some == sorted(some)
    assert some == pairs(limit=10, seed=1) != pairs(limit=10, seed=2)
    assert pairs(limit=10_000) == every


def test_train_refuses_a_wrong_key_and_eval_a_folder_without_a_run(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({**TINY, "total_step": 10}))
    result = invoke("rl", "train", config, "--out", tmp_path / "run")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "did you mean 'total_steps'" in result.output
    assert not (tmp_path / "run").exists()
    result = invoke("rl", "eval", tmp_path)
    assert result.exit_code == 2 and "holds no meta-RL training run" in result.output


def test_eval_of_a_damaged_checkpoint_is_a_clear_error(trained, tmp_path):
    folder, _ = trained
    (tmp_path / "checkpoints").mkdir()
    data = (folder / "run" / "checkpoints" / "last.pt").read_bytes()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(data[: len(data) // 3])
    result = invoke("rl", "eval", tmp_path)
    assert result.exit_code == 2 and "corrupt" in result.output


@pytest.mark.parametrize("name", ["dream_bus", "erl2_bus"])
def test_the_example_run_configs_are_valid(name):
    from stalwart.config import read_config_file
    from stalwart.rl.config import validate_rl_config

    path = Path(__file__).resolve().parents[2] / "examples" / f"{name}.yaml"
    cfg = validate_rl_config(read_config_file(path), str(path))
    assert cfg.learner == name.split("_")[0] and cfg.env.name == "distracting_bus_tight"


def test_the_example_comparison_is_a_valid_meta_rl_config():
    from stalwart.experiments.configs import load_experiment

    path = Path(__file__).resolve().parents[2] / "examples" / "dream_vs_erl2.yaml"
    config = load_experiment(path)
    assert config.kind == "meta_rl" and config.seeds == [0, 1, 2]
    assert set(config.benchmarks) == {"bus_tight", "map_tight"}


def test_render_draws_the_trained_learner_on_the_problem_asked_for(trained, tmp_path):
    from PIL import Image

    folder, _ = trained
    run = folder / "run"
    result = invoke("rl", "render", run, "--problem", 7, "--goal", 1)
    assert result.exit_code == 0, result.output
    assert "problem 7, goal 1" in result.output
    with Image.open(run / "render" / "problem7.png") as picture:
        assert picture.width > picture.height > 100
    gif = tmp_path / "seven.gif"
    assert invoke("rl", "render", run, "--problem", 7, "--out", gif).exit_code == 0
    with Image.open(gif) as animation:
        assert animation.n_frames == 2 * (5 + 1)  # both episodes: 5 steps, 6 frames each
    result = invoke("rl", "render", run, "--problem", 48)
    assert result.exit_code == 2 and "between 0 and 47" in result.output
