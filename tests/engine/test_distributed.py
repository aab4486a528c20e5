"""Data-parallel fit: two gloo processes train as one process does, identically on each rank."""

from __future__ import annotations

import importlib
import socket

import pytest
import torch
import torch.multiprocessing as mp
from tests.conftest import make_grouped
from torch import nn

from stalwart.data.core import Splits
from stalwart.data.samplers import balanced
from stalwart.engine.distributed import World, shard
from stalwart.engine.fit import fit
from stalwart.errors import ConfigError
from stalwart.methods import build

# 70 examples in batches of 16: the last batch (6) splits 3 + 3. SGD with momentum, so the
# optimiser's state matters too.
SETTINGS = dict(epochs=3, batch_size=16, lr=0.05, optimizer="sgd", momentum=0.9, progress=False)


def splits() -> Splits:
    return Splits(
        train=make_grouped(70, seed=0, name="tiny/train"),
        val=make_grouped(32, seed=1, name="tiny/val"),
        test=make_grouped(32, seed=2, name="tiny/test"),
    )


def new_model(batch_norm: bool = False):
    torch.manual_seed(0)
    norm = [nn.BatchNorm1d(16)] if batch_norm else []
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), *norm, nn.ReLU(), nn.Linear(16, 2))


def train(method_name: str = "erm", batch_norm: bool = False, **kw):
    data = splits()
    method = build(method_name, data.train)
    sampler = balanced(data.train.y) if method_name == "erm" else None
    return fit(new_model(batch_norm), method, data, sampler=sampler, **{**SETTINGS, **kw})


class Killed(Exception):
    """Stands in for the processes being killed."""


def _kill_at(epoch: int):
    def on_epoch_end(record):
        if record["epoch"] == epoch:
            raise Killed

    return on_epoch_end


def _worker(rank: int, size: int, port: int, out: str, kw: dict) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size
    )
    try:
        torch.set_num_threads(1)
        if "kill_at" in kw:
            kw = {k: v for k, v in kw.items() if k != "kill_at"} | {
                "on_epoch_end": _kill_at(kw["kill_at"])
            }
        result = train(**kw)
        torch.save(
            {
                "model": result.model.state_dict(),
                "method": result.method.state_dict(),
                "history": result.history,
            },
            f"{out}/rank{rank}.pt",
        )
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def train_in_parallel(tmp_path, size: int = 2, **kw) -> list[dict]:
    mp.spawn(_worker, args=(size, _free_port(), str(tmp_path), kw), nprocs=size, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(size)]


def test_shards_partition_every_batch_in_rank_order():
    positions = torch.arange(10, 17)
    shares = [shard(positions, World(rank, 3)) for rank in range(3)]
    assert [s.tolist() for s in shares] == [[10, 13, 16], [11, 14], [12, 15]]
    assert torch.equal(shard(positions, World()), positions)


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    return train_in_parallel(tmp_path_factory.mktemp("ddp"))


def test_every_rank_ends_with_the_same_model_and_record(tmp_path):
    # With batch norm each rank normalises its own share, so the running statistics differ
    # from rank to rank until rank 0's are shared after each epoch.
    first, second = train_in_parallel(tmp_path, batch_norm=True)
    assert any("running_mean" in key for key in first["model"])
    for key, value in first["model"].items():
        assert torch.equal(value, second["model"][key]), key
    assert [r["val"] for r in first["history"]] == [r["val"] for r in second["history"]]


def test_two_ranks_train_as_one_process_up_to_float_rounding(two_ranks):
    alone = train()
    state = alone.model.state_dict()
    parallel = two_ranks[0]["model"]
    # The gradient is a sum of two shares instead of one mean: equal up to float32 rounding,
    # which three epochs of SGD with momentum amplify only slightly on this small problem.
    for key, value in state.items():
        torch.testing.assert_close(parallel[key], value, rtol=1e-4, atol=1e-5, msg=key)
    for mine, theirs in zip(alone.history, two_ranks[0]["history"], strict=True):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
        assert mine["val"]["accuracy"] == theirs["val"]["accuracy"]


def test_group_dro_keeps_one_set_of_group_weights_across_ranks(tmp_path):
    alone = train("group_dro")
    first, second = train_in_parallel(tmp_path, method_name="group_dro")
    # q is updated with the whole batch's group losses on every rank: the same on both, and
    # the same as one process's up to float rounding.
    assert torch.equal(first["method"]["q"], second["method"]["q"])
    torch.testing.assert_close(first["method"]["q"], alone.method.q, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(alone.method.q, torch.full_like(alone.method.q, 0.25))
    for key, value in alone.model.state_dict().items():
        torch.testing.assert_close(first["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_a_method_whose_loss_couples_examples_is_refused_data_parallel(monkeypatch):
    fit_module = importlib.import_module("stalwart.engine.fit")  # the module, not the function
    monkeypatch.setattr(fit_module, "world", lambda: World(0, 2))
    with pytest.raises(ConfigError, match="CVaRDRO cannot train data-parallel"):
        train("cvar_dro")


def test_a_killed_parallel_run_resumes_to_the_same_model(two_ranks, tmp_path):
    run_dir = tmp_path / "run"
    kw = {"run_dir": str(run_dir), "resume": True}
    with pytest.raises(mp.ProcessRaisedException, match="Killed"):
        train_in_parallel(tmp_path, **kw, kill_at=2)
    # Rank 0 wrote the run's files, once: two epochs of metrics, a checkpoint at epoch 2.
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2
    resumed = train_in_parallel(tmp_path, **kw)
    for key, value in two_ranks[0]["model"].items():
        assert torch.equal(resumed[0]["model"][key], value), key
        assert torch.equal(resumed[1]["model"][key], value), key


def test_torchrun_runs_a_config_whose_summary_matches_one_process(tmp_path):
    import json
    import subprocess
    import sys

    import yaml
    from tests.conftest import TOY_RUN

    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump({**TOY_RUN, "out": str(tmp_path / "parallel")}))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               f"--master_port={_free_port()}", "-m", "stalwart", "run", str(config)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("epoch   1") == 1  # rank 0 alone prints
    alone = subprocess.run(
        [sys.executable, "-m", "stalwart", "run", str(config), "--out", str(tmp_path / "one")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert alone.returncode == 0, alone.stderr[-2000:]
    parallel = json.loads((tmp_path / "parallel" / "summary.json").read_text())
    single = json.loads((tmp_path / "one" / "summary.json").read_text())
    for split in ("val", "test"):
        assert parallel["metrics"][split]["accuracy"] == single["metrics"][split]["accuracy"]


def test_a_grid_of_runs_is_refused_under_torchrun(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from stalwart.cli import app

    monkeypatch.setattr("stalwart.engine.distributed.world", lambda: World(0, 2))
    result = CliRunner().invoke(app, ["run", "examples/compare_toy_spurious.yaml"])
    assert result.exit_code == 2 and "only a single run" in " ".join(result.output.split())


def _jtt_worker(rank: int, size: int, port: int, out: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size
    )
    try:
        torch.set_num_threads(1)
        result, errors = jtt_run(f"{out}/run")
        torch.save({"model": result.model.state_dict(), "errors": errors}, f"{out}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def jtt_run(run_dir: str):
    """JTT through its stages into ``run_dir``; its error set as the recipe wrote it."""
    import json
    from pathlib import Path

    from stalwart.config import TrainConfig
    from stalwart.recipes import StageContext, run_method

    data = splits()
    context = StageContext(data, new_model, TrainConfig(**SETTINGS), run_dir=run_dir)
    result = run_method("jtt", {"identification_epochs": 1, "upweight": 3}, context)
    written = json.loads((Path(run_dir) / "error_set.json").read_text())
    return result, written["size"]


def test_jtt_finds_one_error_set_and_trains_its_stages_across_ranks(tmp_path):
    alone, alone_errors = jtt_run(str(tmp_path / "alone"))
    mp.spawn(_jtt_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    first, second = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert first["errors"] == second["errors"] == alone_errors > 0
    for key, value in alone.model.state_dict().items():
        assert torch.equal(first["model"][key], second["model"][key]), key
        torch.testing.assert_close(first["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)
