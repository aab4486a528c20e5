"""A run killed with SIGKILL at an arbitrary moment resumes to exactly the uninterrupted result."""

import json
import os
import signal
import subprocess
import sys
import time

import torch
import yaml

CONFIG = {
    "name": "killed",
    "data": {"name": "toy_spurious", "n": 2000, "core_dim": 20, "spurious_dim": 20},
    "model": {"name": "mlp", "hidden": [256, 256], "dropout": 0.1},
    "train": {
        "epochs": 6,
        "batch_size": 16,
        "optimizer": "sgd",
        "lr": 0.01,
        "schedule": "cosine",
        "progress": False,
    },
}


def start(config_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "stalwart.cli", "run", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )


def strip_time(lines):
    records = [json.loads(line) for line in lines]
    return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in records]


def test_sigkill_then_rerun_gives_the_uninterrupted_result(tmp_path):
    paths = {}
    for tag in ("whole", "killed"):
        paths[tag] = tmp_path / f"{tag}.yaml"
        paths[tag].write_text(yaml.safe_dump({**CONFIG, "out": str(tmp_path / tag)}))

    whole = start(paths["whole"])
    killed = start(paths["killed"])
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and killed.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.01)
    assert killed.poll() is None, "the run finished before it could be killed; make it longer"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed" / "summary.json").exists()

    assert whole.wait(timeout=300) == 0, whole.stdout.read().decode()
    rerun = start(paths["killed"])
    output = rerun.communicate(timeout=300)[0].decode()
    assert rerun.returncode == 0, output
    assert "resumed after epoch" in output

    a = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "killed" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = {t: (tmp_path / t / "metrics.jsonl").read_text().splitlines() for t in paths}
    assert strip_time(lines["whole"]) == strip_time(lines["killed"])
    summaries = {t: json.loads((tmp_path / t / "summary.json").read_text()) for t in paths}
    assert summaries["whole"]["metrics"] == summaries["killed"]["metrics"]
