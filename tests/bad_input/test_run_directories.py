"""Bad run directories: each row damages a run directory (or points --out somewhere unusable)
one way, runs ``stalwart run`` on it, and expects one clear error naming the path.

Tests here run as root, which chmod does not stop: a directory that cannot be written is
simulated by denying it in ``os.access`` (how the up-front check asks), and, where the kernel
allows, made really immutable with ``chattr +i``. Every row that starts from an existing run
also checks that the refused command left its files as they were.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.bad_input.conftest import expect_clean_error, invoke
from tests.conftest import TOY_RUN

TOY = TOY_RUN


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished toy run, trained once and copied by each row that needs one."""
    root = tmp_path_factory.mktemp("finished")
    config = root / "toy.yaml"
    config.write_text(yaml.safe_dump(TOY))
    result = invoke("run", config, "--out", root / "run")
    assert result.exit_code == 0, result.output
    return root / "run"


class Case:
    """What a row's setup may use: a folder, the config, a copy of the finished run."""

    def __init__(self, tmp_path: Path, finished_run: Path, monkeypatch) -> None:
        self.tmp = tmp_path
        self.config = tmp_path / "toy.yaml"
        self.config.write_text(yaml.safe_dump(TOY))
        self.run = tmp_path / "run"
        self._finished = finished_run
        self.monkeypatch = monkeypatch
        self.cleanups: list = []

    def finished(self) -> Path:
        shutil.copytree(self._finished, self.run)
        return self.run

    def interrupted(self) -> Path:
        """Trained but not evaluated: the rerun resumes from its checkpoints."""
        self.finished()
        (self.run / "summary.json").unlink()
        return self.run

    def deny_writes(self, path: Path) -> None:
        """Make ``os.access`` say ``path`` cannot be written (root ignores chmod)."""
        real = os.access
        denied = os.path.realpath(path)

        def access(target, mode, *args, **kwargs):
            if mode & os.W_OK and os.path.realpath(target) == denied:
                return False
            return real(target, mode, *args, **kwargs)

        self.monkeypatch.setattr(os, "access", access)

    def immutable(self, path: Path) -> None:
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"chattr +i is not available here: {done.stderr.decode().strip()}")
        self.cleanups.append(lambda: subprocess.run(["chattr", "-i", str(path)], check=True))

    def hold_lock(self, path: Path) -> int:
        """Another process holds the run directory's lock as a run does: flock, then its PID."""
        script = (
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.ftruncate(fd, 0)\n"
            "os.write(fd, f'{os.getpid()}\\n'.encode())\n"
            "print('held', flush=True)\n"
            "time.sleep(120)\n"
        )
        holder = subprocess.Popen(
            [sys.executable, "-c", script, str(path / ".run.lock")], stdout=subprocess.PIPE
        )
        assert holder.stdout.readline() == b"held\n"
        self.cleanups.append(lambda: (holder.kill(), holder.wait()))
        return holder.pid


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def metrics_not_utf8_finished(case):
    _append(case.finished() / "metrics.jsonl", b"\xff\n")
    return ["metrics.jsonl line 3", "not UTF-8", "edited"]


def metrics_not_utf8_interrupted(case):
    _append(case.interrupted() / "metrics.jsonl", b"\xff\n")
    return ["metrics.jsonl line 3", "not UTF-8", "edited"]


def metrics_text_line_finished(case):
    _append(case.finished() / "metrics.jsonl", b"garbage\n")
    return ["metrics.jsonl line 3", "not a JSON record", "edited"]


def metrics_text_line_interrupted(case):
    _append(case.interrupted() / "metrics.jsonl", b"garbage\n")
    return ["metrics.jsonl line 3", "not a JSON record", "edited"]


def metrics_missing_an_epoch(case):
    metrics = case.interrupted() / "metrics.jsonl"
    metrics.write_text(metrics.read_text().splitlines()[1] + "\n")
    return ["metrics.jsonl", "epochs [2]", "edited"]


def summary_not_utf8(case):
    (case.finished() / "summary.json").write_bytes(b"\xff\xfe{")
    return ["summary.json is damaged", "delete it"]


def config_yaml_not_utf8(case):
    (case.finished() / "config.yaml").write_bytes(b"\xff\xfe: [")
    return ["config.yaml is not valid YAML"]


def corrupt_best_checkpoint(case):
    (case.interrupted() / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint")
    return ["best.pt", "corrupt", "Delete", "from epoch 1"]


def corrupt_last_checkpoint(case):
    (case.interrupted() / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    return ["last.pt", "corrupt", "Delete", "from epoch 1"]


def best_checkpoint_as_last(case):
    checkpoints = case.interrupted() / "checkpoints"
    shutil.copy(checkpoints / "best.pt", checkpoints / "last.pt")
    return ["last.pt is not a stalwart training checkpoint", "Delete"]


def out_is_a_file(case):
    case.run.write_text("not a folder")
    return [f"{case.run} is a file, not a directory"]


def out_under_a_file(case):
    (case.tmp / "plain").write_text("not a folder")
    case.run = case.tmp / "plain" / "run"
    return [str(case.run), f"{case.tmp / 'plain'} is a file"]


def out_under_read_only_parent(case):
    parent = case.tmp / "locked"
    parent.mkdir()
    case.deny_writes(parent)
    case.run = parent / "run"
    return [f"cannot create run directory {case.run}", f"{parent} cannot be written"]


def run_directory_read_only(case):
    case.deny_writes(case.interrupted())
    return [f"run directory {case.run} cannot be written"]


def checkpoints_read_only(case):
    case.deny_writes(case.interrupted() / "checkpoints")
    return [f"{case.run / 'checkpoints'} is not writable"]


def run_directory_immutable(case):
    case.immutable(case.interrupted())
    return [f"{case.run} cannot be written", "immutable"]


def metrics_immutable(case):
    case.immutable(case.interrupted() / "metrics.jsonl")
    return [f"{case.run / 'metrics.jsonl'} is immutable"]


def disk_fills_during_the_run(case):
    def no_space(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    case.monkeypatch.setattr(os, "fsync", no_space)
    return [f"cannot write {case.run}", "No space left on device"]


def run_directory_in_use(case):
    pid = case.hold_lock(case.interrupted())
    return [f"{case.run} is in use by another stalwart run (PID {pid})"]


def name_outside_runs(case):
    raw = {**TOY, "name": "../../somewhere"}
    case.config.write_text(yaml.safe_dump(raw))
    case.run = None  # no --out: the name decides where the run goes
    return ["name '../../somewhere' is not a plain name"]


def name_absolute(case):
    name = str(case.tmp / "elsewhere")
    case.config.write_text(yaml.safe_dump({**TOY, "name": name}))
    case.run = None
    return ["name '/", "elsewhere' is not a plain name"]  # (a long name is shortened)


ROWS = [
    metrics_not_utf8_finished,
    metrics_not_utf8_interrupted,
    metrics_text_line_finished,
    metrics_text_line_interrupted,
    metrics_missing_an_epoch,
    summary_not_utf8,
    config_yaml_not_utf8,
    corrupt_best_checkpoint,
    corrupt_last_checkpoint,
    best_checkpoint_as_last,
    out_is_a_file,
    out_under_a_file,
    out_under_read_only_parent,
    run_directory_read_only,
    checkpoints_read_only,
    run_directory_immutable,
    metrics_immutable,
    disk_fills_during_the_run,
    run_directory_in_use,
    name_outside_runs,
    name_absolute,
]


def _files(root: Path | None) -> dict[Path, bytes]:
    if root is None or not root.is_dir():
        return {}
    # The lock file's content is the PID of the last process that held it.
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != ".run.lock"}


@pytest.mark.parametrize("row", ROWS, ids=[row.__name__ for row in ROWS])
def test_bad_run_directory(row, tmp_path, finished_run, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one line, so that long paths are not wrapped
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")  # runs/<name> goes here; runs/../../x is tmp_path/x
    case = Case(tmp_path, finished_run, monkeypatch)
    try:
        mentions = row(case)
        before = _files(case.run)
        out = [] if case.run is None else ["--out", case.run]
        expect_clean_error(invoke("run", case.config, *out), mentions)
        assert _files(case.run) == before, "the refused run changed the files it was given"
        assert not (tmp_path / "work" / "runs").exists()
        assert not (tmp_path / "somewhere").exists()
        assert not (tmp_path / "elsewhere").exists()
    finally:
        for cleanup in reversed(case.cleanups):
            cleanup()
