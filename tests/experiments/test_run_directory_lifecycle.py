"""Run directories: one process at a time, nothing left behind by a run that never finished an
epoch, advice after damage that works as written, and the epoch a resumed run restored."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
import yaml
from tests.conftest import toy_run
from typer.testing import CliRunner

from stalwart.cli import app
from stalwart.config import check_plain_name
from stalwart.errors import CheckpointError, ConfigError
from stalwart.experiments.configs import parse_config
from stalwart.experiments.run import resolved, run
from stalwart.io import append_line, hold_run_directory

TOY = toy_run(epochs=3, optimizer="sgd", lr=0.05)
DIVERGES = {**TOY, "train": {**TOY["train"], "lr": 1e30}}  # NaN loss within epoch 1
JTT = {"name": "jtt", "identification_epochs": 1, "upweight": 3}


@pytest.fixture(autouse=True)
def one_thread():
    """Train in one thread: on a shared, loaded machine more threads only wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_config(tmp_path, raw, name="config.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def invoke(*args):
    """``stalwart ARGS`` in this process, printed wide enough that no path is wrapped."""
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "1000"})


def delete(path):
    """Delete a file or a folder, as a user following the advice would."""
    if os.path.isdir(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def one_line(output):
    return " ".join(output.split())


def epochs_in(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["epoch"] for line in lines]


class Interrupt(Exception):
    pass


def interrupted_after(config_path, epoch):
    """Run the config in this process and stop it once ``epoch`` is saved."""

    def stop(record):
        if record["epoch"] == epoch:
            raise Interrupt

    config = parse_config(yaml.safe_load(config_path.read_text()))
    with pytest.raises(Interrupt):
        run(config, on_epoch_end=stop)


# --- one process at a time ---------------------------------------------------------------


def test_second_run_is_refused_naming_the_holder_and_a_killed_run_resumes(tmp_path):
    raw = {
        **TOY,
        "data": {**TOY["data"], "n": 400},
        "train": {**TOY["train"], "epochs": 40},
        "out": str(tmp_path / "run"),
    }
    config = write_config(tmp_path, raw)
    metrics = tmp_path / "run" / "metrics.jsonl"
    first = subprocess.Popen(
        [sys.executable, "-m", "stalwart.cli", "run", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline and first.poll() is None:
            if metrics.exists() and metrics.read_text().count("\n") >= 1:
                break
            time.sleep(0.01)
        assert first.poll() is None, first.stdout.read().decode()

        second = invoke("run", config)  # this process, while the first one trains

        assert first.poll() is None, "the first run ended before the second tried; make it longer"
        assert second.exit_code == 2, second.output
        assert f"is in use by another stalwart run (PID {first.pid})" in second.output
        first.send_signal(signal.SIGKILL)  # the system releases the lock of a killed process
        first.wait()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    restored = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["epoch"]

    resumed = invoke("run", config)

    assert resumed.exit_code == 0, resumed.output
    assert f"resumed after epoch {restored}" in resumed.output
    assert epochs_in(tmp_path / "run") == list(range(1, 41))  # one line per epoch, no doubles


def test_lock_is_reentrant_in_one_thread_and_excludes_another(tmp_path):
    refused = []

    def other_thread():
        try:
            with hold_run_directory(tmp_path / "run"):
                pass
        except CheckpointError as error:
            refused.append(str(error))

    # Both without waiting: a lock that is not re-entrant refuses the inner hold at once.
    with hold_run_directory(tmp_path / "run"), hold_run_directory(tmp_path / "run"):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert refused and f"is in use by another stalwart run (PID {os.getpid()})" in refused[0]
    with hold_run_directory(tmp_path / "run"):  # released when the outer hold ended
        pass


def test_refusal_names_the_holders_pid_without_an_earlier_holders_tail(tmp_path):
    # A holder that writes its PID over a longer one without truncating leaves "301\n6\n".
    lock = tmp_path / "run" / ".run.lock"
    lock.parent.mkdir()
    lock.write_text("301\n6\n")
    descriptor = os.open(lock, os.O_RDWR)
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    refused = []

    def other_thread():  # flock locks belong to the open file, so a thread sees the conflict
        try:
            with hold_run_directory(tmp_path / "run"):
                pass
        except CheckpointError as error:
            refused.append(str(error))

    try:
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    finally:
        os.close(descriptor)
    assert refused and "(PID 301);" in refused[0], refused


def test_waiting_hold_gets_the_lock_when_it_is_released(tmp_path):
    acquired = threading.Event()

    def waiter():  # as fit waits, e.g. DFR reading a finished ERM run another worker reads
        with hold_run_directory(tmp_path / "run", wait=True):
            acquired.set()

    with hold_run_directory(tmp_path / "run"):
        thread = threading.Thread(target=waiter)
        thread.start()
        assert not acquired.wait(0.5), "got the lock while another held it"
    thread.join(timeout=30)
    assert acquired.is_set()


def test_recipe_final_stage_runs_inside_the_run_lock(tmp_path):
    config = write_config(tmp_path, {**TOY, "method": JTT, "out": str(tmp_path / "run")})
    results = []
    # A lock that is not re-entrant would wait for itself forever: run where a hang can fail.
    worker = threading.Thread(target=lambda: results.append(invoke("run", config)), daemon=True)
    worker.start()
    worker.join(timeout=180)
    assert results, "the staged run did not finish: its final stage waits for the run's lock"
    assert results[0].exit_code == 0, results[0].output
    assert epochs_in(tmp_path / "run") == [1, 2, 3]


# --- a run that fails before its first epoch ends leaves nothing that blocks the fix -------


@pytest.mark.parametrize("method", ["erm", "jtt"])
def test_run_diverging_in_epoch_one_leaves_nothing_and_the_fix_runs(tmp_path, method):
    raw = {**DIVERGES, "out": str(tmp_path / "run")}
    if method == "jtt":  # diverges in stage 1, the identification model
        raw["method"] = JTT
    failed = invoke("run", write_config(tmp_path, raw))
    assert failed.exit_code == 2 and "training loss became nan in epoch 1" in failed.output

    assert not (tmp_path / "run").exists()
    fixed = {**raw, "train": TOY["train"]}
    result = invoke("run", write_config(tmp_path, fixed))
    assert result.exit_code == 0, result.output


def test_failure_in_an_existing_folder_removes_only_the_runs_files(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("the user's")
    failed = invoke("run", write_config(tmp_path, {**DIVERGES, "out": str(out)}))
    assert failed.exit_code == 2
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_run_killed_in_epoch_one_does_not_block_a_corrected_config(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    # What SIGKILL during epoch 1 leaves: the config, an empty metrics file, the lock file.
    (out / "config.yaml").write_text(
        yaml.safe_dump(resolved(parse_config({**DIVERGES, "out": str(out)})))
    )
    (out / "metrics.jsonl").write_text("")
    (out / ".run.lock").write_text("12345\n")
    result = invoke("run", write_config(tmp_path, {**TOY, "out": str(out)}))
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["lr"] == 0.05


def test_run_that_finished_an_epoch_keeps_it_and_refuses_another_config(tmp_path):
    config = write_config(tmp_path, {**TOY, "out": str(tmp_path / "run")})
    interrupted_after(config, epoch=1)
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    other = write_config(tmp_path, {**DIVERGES, "out": str(tmp_path / "run")}, "other.yaml")
    refused = invoke("run", other)
    assert refused.exit_code == 2 and "different config" in refused.output
    result = invoke("run", config)
    assert result.exit_code == 0 and "resumed after epoch 1" in result.output


# --- "resumed after epoch N" is the epoch restored ------------------------------------------


def test_resumed_message_names_the_checkpoints_epoch_not_the_metrics_lines(tmp_path):
    config = write_config(tmp_path, {**TOY, "out": str(tmp_path / "run")})
    interrupted_after(config, epoch=1)
    # A kill between an epoch's record and its checkpoint: one line more than was restored.
    metrics = tmp_path / "run" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + json.dumps({"epoch": 2}) + "\n")
    result = invoke("run", config)
    assert result.exit_code == 0, result.output
    assert "resumed after epoch 1" in result.output
    assert epochs_in(tmp_path / "run") == [1, 2, 3]


def test_full_restart_is_not_reported_as_resumed(tmp_path):
    config = write_config(tmp_path, {**TOY, "out": str(tmp_path / "run")})
    interrupted_after(config, epoch=2)
    shutil.rmtree(tmp_path / "run" / "checkpoints")  # the advice after a damaged checkpoint
    result = invoke("run", config)
    assert result.exit_code == 0, result.output
    assert "resumed" not in result.output
    assert epochs_in(tmp_path / "run") == [1, 2, 3]


# --- the advice after a damaged checkpoint works as written ---------------------------------


@pytest.mark.parametrize("damaged", ["best.pt", "last.pt"])
def test_advice_after_a_damaged_checkpoint_of_an_unfinished_run_works(tmp_path, damaged):
    whole = invoke("run", write_config(tmp_path, {**TOY, "out": str(tmp_path / "whole")}, "w.yaml"))
    assert whole.exit_code == 0
    config = write_config(tmp_path, {**TOY, "out": str(tmp_path / "run")})
    interrupted_after(config, epoch=2)
    (tmp_path / "run" / "checkpoints" / damaged).write_bytes(b"not a checkpoint")

    refused = invoke("run", config)
    assert refused.exit_code == 2
    advice = re.search(
        r"Delete (\S+) to train this run again from epoch 1", one_line(refused.output)
    )
    assert advice, refused.output
    delete(advice.group(1))
    result = invoke("run", config)

    assert result.exit_code == 0, result.output
    runs = {t: json.loads((tmp_path / t / "summary.json").read_text()) for t in ("whole", "run")}
    assert runs["run"]["metrics"] == runs["whole"]["metrics"]


def test_advice_after_a_damaged_model_of_a_finished_run_works(tmp_path):
    config = write_config(tmp_path, {**TOY, "out": str(tmp_path / "run")})
    assert invoke("run", config).exit_code == 0
    (tmp_path / "run" / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint")
    attack = ("attack", tmp_path / "run", "--eps", "0.1", "--steps", "2", "--lower", "-100",
              "--upper", "100")  # fmt: skip

    refused = invoke(*attack)
    assert refused.exit_code == 2
    advice = re.search(
        r"delete (\S+) and (\S+), then run `stalwart run (\S+) --out (\S+)`",
        one_line(refused.output),
    )
    assert advice, refused.output
    delete(advice.group(1))
    delete(advice.group(2))
    assert invoke("run", advice.group(3), "--out", advice.group(4)).exit_code == 0
    result = invoke(*attack)
    assert result.exit_code == 0, result.output


# --- names and writes -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["erm_seed0", "dominoes 2", "résumé", "a.b"])
def test_plain_names_are_accepted(name):
    assert check_plain_name(name) == name


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/abs", "a\\b", "tab\there"])
def test_names_that_leave_runs_are_refused(name):
    with pytest.raises(ConfigError, match="not a plain name"):
        check_plain_name(name)


def test_plain_name_runs_under_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke("run", write_config(tmp_path, {**TOY, "train": {**TOY["train"], "epochs": 1}}))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "runs" / "toy" / "summary.json").exists()


def test_a_failed_append_names_the_file(tmp_path):
    (tmp_path / "plain").write_text("a file where a folder should be")
    with pytest.raises(CheckpointError, match=re.escape(f"cannot write {tmp_path}/plain/m.jsonl")):
        append_line(tmp_path / "plain" / "m.jsonl", "{}")
