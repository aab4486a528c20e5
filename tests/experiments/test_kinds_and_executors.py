"""Experiment kinds as a registry, and executors: local processes and Ray give the same table."""

import json
from typing import Literal

import pytest
import yaml
from typer.testing import CliRunner

from stalwart.cli import app
from stalwart.config import StrictModel
from stalwart.errors import ConfigError
from stalwart.experiments.configs import parse_experiment
from stalwart.experiments.executors import LocalExecutor, build_executor
from stalwart.experiments.kinds import KINDS, kinds, register_kind

runner = CliRunner()
BASE = {
    "data": {"name": "toy_spurious", "n": 160, "n_val": 64, "n_test": 64, "core_dim": 4,
             "spurious_dim": 4},
    "model": {"name": "mlp", "hidden": [8]},
    "train": {"epochs": 2, "batch_size": 32, "progress": False},
}  # fmt: skip


def test_every_shipped_kind_is_registered_with_config_run_and_renderer():
    registry = kinds()
    assert {"run", "compare", "sweep", "overparam", "robustness", "rst_linear"} <= set(registry)
    for name in registry:
        kind = registry.get(name)()
        assert kind.name == name
        assert kind.config.model_fields["kind"].default in (name, None) or name in str(
            kind.config.model_fields["kind"].annotation
        )
        assert callable(kind.run) and callable(kind.render) and callable(kind.describe)


def test_unknown_kind_lists_the_registered_ones():
    with pytest.raises(ConfigError, match=r"unknown kind 'swep' \(did you mean 'sweep'\?\)"):
        parse_experiment({"kind": "swep"})


class EchoConfig(StrictModel):
    kind: Literal["echo_for_test"]
    name: str = "echo"
    words: list[str]


def test_a_new_kind_needs_only_its_registration(tmp_path):
    calls = []
    register_kind(
        "echo_for_test", config=EchoConfig,
        run=lambda config, reporter, executor: calls.append(config.words) or len(config.words),
        render=lambda config, result: [f"{result} words: {' '.join(config.words)}"],
        describe=lambda config: f"echo {config.name}",
    )  # fmt: skip
    try:
        path = tmp_path / "echo.yaml"
        path.write_text(yaml.safe_dump({"kind": "echo_for_test", "words": ["holds", "up"]}))
        result = runner.invoke(app, ["run", str(path)])
        assert result.exit_code == 0, result.output
        assert "echo echo" in result.output and "2 words: holds up" in result.output
        assert calls == [["holds", "up"]]
        bad = runner.invoke(app, ["run", str(path), "--set", "wrods=[a]"])
        assert bad.exit_code == 2 and "did you mean 'words'" in bad.output
    finally:
        KINDS._entries.pop("echo_for_test")
        KINDS._info.pop("echo_for_test")


def test_unknown_executor_and_misplaced_address_are_refused():
    with pytest.raises(ConfigError, match="did you mean 'ray'"):
        build_executor("rey")
    with pytest.raises(ConfigError, match="--address goes with --executor ray"):
        build_executor("local", address="auto")
    assert build_executor("local", workers=3) == LocalExecutor(3)
    assert build_executor("ray", workers=2).num_cpus == 2


def _square(x):
    return x * x


def test_local_executor_yields_every_result_with_its_position():
    assert sorted(LocalExecutor(1).map(_square, [1, 2, 3])) == [(0, 1), (1, 4), (2, 9)]
    assert sorted(LocalExecutor(2).map(_square, [1, 2, 3])) == [(0, 1), (1, 4), (2, 9)]


def test_sweep_on_ray_gives_the_same_table_as_local_processes(tmp_path):
    # One worker: two Ray workers on two cores cost 14 s more and test nothing the local
    # process pool's test (test_sweep_in_parallel_workers_matches_sequential) does not.
    sweep = {"kind": "sweep", "name": "exec", "base": {**BASE, "name": "x"},
             "grid": {"train.lr": [0.001, 0.01]}, "seeds": [0], "workers": 1}  # fmt: skip
    tables = {}
    for executor in ("local", "ray"):
        path = tmp_path / f"{executor}.yaml"
        path.write_text(yaml.safe_dump({**sweep, "out": str(tmp_path / executor)}))
        result = runner.invoke(app, ["run", str(path), "--executor", executor])
        assert result.exit_code == 0, result.output
        tables[executor] = json.loads((tmp_path / executor / "sweep.json").read_text())
    assert tables["ray"] == tables["local"]
    assert len(tables["ray"]["trials"]) == 2
