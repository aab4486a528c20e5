"""Data-parallel fit: two gloo processes train as one process does, identically on each rank.

One pair of processes (a module fixture) plays every scenario in turn, since starting them
costs more than the scenarios; each test compares what both ranks saved with one process.
"""

from __future__ import annotations

import importlib
import json
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from tests.conftest import make_grouped
from torch import nn

from stalwart.config import TrainConfig
from stalwart.data.core import Splits
from stalwart.data.samplers import balanced
from stalwart.engine.distributed import World, shard, world
from stalwart.engine.evaluate import predict_logits, sharded_evaluation
from stalwart.engine.fit import fit
from stalwart.errors import ConfigError
from stalwart.methods import build
from stalwart.recipes import StageContext, run_method

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


def jtt(run_dir: Path):
    """JTT through its stages into ``run_dir``, and the size of the error set it wrote."""
    context = StageContext(splits(), new_model, TrainConfig(**SETTINGS), run_dir=run_dir)
    result = run_method("jtt", {"identification_epochs": 1, "upweight": 3}, context)
    return result, json.loads((run_dir / "error_set.json").read_text())["size"]


class Killed(Exception):
    """Stands in for the processes being killed."""


def kill_at(epoch: int):
    def on_epoch_end(record):
        if record["epoch"] == epoch:
            raise Killed

    return on_epoch_end


def scenarios(out: Path) -> dict[str, dict]:
    """Every scenario, played on each rank: what each ends with."""

    def saved(result) -> dict:
        return {"model": result.model.state_dict(), "method": result.method.state_dict(),
                "history": result.history}  # fmt: skip

    found = {
        "erm": saved(train()),
        "batch_norm": saved(train(batch_norm=True)),
        "group_dro": saved(train("group_dro")),
    }
    run_dir = out / "killed"
    try:
        train(run_dir=run_dir, resume=True, on_epoch_end=kill_at(2))
    except Killed:
        # Every rank stops at the same epoch, but rank 1 may get there before rank 0 has
        # written that epoch's line: wait for it, as a resumed run does.
        torch.distributed.barrier()
        found["metrics_at_kill"] = len((run_dir / "metrics.jsonl").read_text().splitlines())
    found["resumed"] = saved(train(run_dir=run_dir, resume=True))
    result, errors = jtt(out / "jtt")
    found["jtt"] = {"model": result.model.state_dict(), "errors": errors}
    found["sharded_eval"] = sharded_eval()
    return found


def sharded_eval() -> dict:
    """Logits of 7 examples, computed sharded across the ranks and whole on each."""
    seen = []
    model = new_model()
    model.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    seven = make_grouped(7, seed=3, name="seven")
    with sharded_evaluation(world()):
        sharded = predict_logits(model, seven, batch_size=2)
    examples = torch.tensor(sum(seen))
    return {"sharded": sharded, "whole": predict_logits(model, seven), "examples": examples}


def _worker(rank: int, size: int, port: int, out: str) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size
    )
    try:
        torch.set_num_threads(1)
        torch.save(scenarios(Path(out)), f"{out}/rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(2)]


def same(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def close(parallel: dict, alone: dict) -> None:
    # The gradient is a sum of two shares instead of one mean: equal up to float32 rounding,
    # which three epochs of SGD with momentum amplify only slightly on this small problem.
    for key, value in alone.items():
        torch.testing.assert_close(parallel[key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_shards_partition_every_batch_in_rank_order():
    positions = torch.arange(10, 17)
    shares = [shard(positions, World(rank, 3)) for rank in range(3)]
    assert [s.tolist() for s in shares] == [[10, 13, 16], [11, 14], [12, 15]]
    assert torch.equal(shard(positions, World()), positions)


def test_two_ranks_train_as_one_process_up_to_float_rounding(ranks):
    first, second = ranks
    assert same(first["erm"]["model"], second["erm"]["model"])
    alone = train()
    close(first["erm"]["model"], alone.model.state_dict())
    for mine, theirs in zip(alone.history, first["erm"]["history"], strict=True):
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-5)
        assert mine["val"]["accuracy"] == theirs["val"]["accuracy"]


def test_every_rank_ends_with_the_same_model_and_record_with_batch_norm(ranks):
    # Each rank normalises its own share, so the running statistics would differ from rank to
    # rank if rank 0's were not shared after each epoch.
    first, second = (rank["batch_norm"] for rank in ranks)
    assert any("running_mean" in key for key in first["model"])
    assert same(first["model"], second["model"])
    assert [r["val"] for r in first["history"]] == [r["val"] for r in second["history"]]


def test_group_dro_keeps_one_set_of_group_weights_across_ranks(ranks):
    first, second = (rank["group_dro"] for rank in ranks)
    alone = train("group_dro")
    # q is updated with the whole batch's group losses on every rank: the same on both, and
    # the same as one process's up to float rounding.
    assert torch.equal(first["method"]["q"], second["method"]["q"])
    torch.testing.assert_close(first["method"]["q"], alone.method.q, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(alone.method.q, torch.full_like(alone.method.q, 0.25))
    close(first["model"], alone.model.state_dict())


def test_a_killed_parallel_run_resumes_to_the_same_model(ranks):
    first, second = ranks
    # Rank 0 wrote the run's files, once: two epochs of metrics when it was killed.
    assert first["metrics_at_kill"] == second["metrics_at_kill"] == 2
    assert same(first["resumed"]["model"], first["erm"]["model"])
    assert same(second["resumed"]["model"], first["erm"]["model"])


def test_jtt_finds_one_error_set_and_trains_its_stages_across_ranks(ranks, tmp_path):
    first, second = (rank["jtt"] for rank in ranks)
    alone, alone_errors = jtt(tmp_path)
    assert first["errors"] == second["errors"] == alone_errors > 0
    assert same(first["model"], second["model"])
    close(first["model"], alone.model.state_dict())


def test_a_method_whose_loss_couples_examples_is_refused_data_parallel(monkeypatch):
    fit_module = importlib.import_module("stalwart.engine.fit")  # the module, not the function
    monkeypatch.setattr(fit_module, "world", lambda: World(0, 2))
    with pytest.raises(ConfigError, match="CVaRDRO cannot train data-parallel"):
        train("cvar_dro")


def test_a_grid_of_runs_is_refused_under_torchrun(monkeypatch):
    from typer.testing import CliRunner

    from stalwart.cli import app

    monkeypatch.setattr("stalwart.engine.distributed.world", lambda: World(0, 2))
    result = CliRunner().invoke(app, ["run", "examples/compare_toy_spurious.yaml"])
    assert result.exit_code == 2 and "only a single run" in " ".join(result.output.split())


def test_torchrun_runs_a_config_whose_summary_matches_one_process(tmp_path):
    import subprocess
    import sys

    import yaml
    from tests.conftest import TOY_RUN

    from stalwart.experiments.configs import parse_config
    from stalwart.experiments.run import run

    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump({**TOY_RUN, "out": str(tmp_path / "parallel")}))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
               f"--master_port={_free_port()}", "-m", "stalwart", "run", str(config)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("epoch   1") == 1  # rank 0 alone prints
    single = run(parse_config({**TOY_RUN, "out": str(tmp_path / "one")}))
    parallel = json.loads((tmp_path / "parallel" / "summary.json").read_text())
    for split in ("val", "test"):
        assert parallel["metrics"][split]["accuracy"] == single.metrics[split].accuracy


def test_validation_is_sharded_and_every_rank_gets_every_logit_once(ranks):
    first, second = (rank["sharded_eval"] for rank in ranks)
    # Rank 0 computed examples 0, 2, 4, 6 and rank 1 examples 1, 3, 5 ...
    assert [int(first["examples"]), int(second["examples"])] == [4, 3]
    # ... and both hold all seven logits, in order, as a whole evaluation gives them (up to
    # the rounding of other batch shapes in the matrix products).
    assert torch.equal(first["sharded"], second["sharded"])
    for found in (first, second):
        torch.testing.assert_close(found["sharded"], found["whole"], rtol=1e-6, atol=1e-6)
