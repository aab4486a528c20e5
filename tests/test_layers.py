"""Layers: every subpackage imports alone, and the verifier does not pay for the whole library."""

import json
import pkgutil
import subprocess
import sys

import pytest

import stalwart

SUBPACKAGES = sorted(
    f"stalwart.{m.name}" for m in pkgutil.iter_modules(stalwart.__path__) if m.name != "__main__"
)


def fresh_import(module: str, report: str = "") -> str:
    code = f"import {module}\n{report}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"import {module} alone failed:\n{done.stderr}"
    return done.stdout


@pytest.mark.parametrize("module", SUBPACKAGES)
def test_each_subpackage_imports_alone_in_a_fresh_interpreter(module):
    fresh_import(module)


def test_certify_loads_neither_pandas_nor_scikit_learn_nor_the_methods():
    report = "import sys, json; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(fresh_import("stalwart.certify", report)))
    heavy = {"pandas", "sklearn", "stalwart.methods", "stalwart.engine", "stalwart.experiments"}
    assert not loaded & heavy, sorted(loaded & heavy)


def test_the_package_loads_its_parts_only_when_asked():
    report = "import sys, json; print(json.dumps(sorted(sys.modules)))"
    loaded = set(json.loads(fresh_import("stalwart", report)))
    assert not {m for m in loaded if m.startswith("stalwart.")}, "import stalwart loads nothing"
    out = fresh_import("stalwart", "from stalwart import fit, evaluate; print(fit.__module__)")
    assert out.strip() == "stalwart.recipes.train"


def test_the_accuracy_line_api_loads_without_torch():
    report = (
        "import sys, json; from stalwart.shift import fit_line, predict, ModelPool\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    loaded = set(json.loads(fresh_import("stalwart.shift", report)))
    assert "torch" not in loaded and "stalwart.shift.testbed_io" not in loaded
    out = fresh_import(
        "stalwart.shift", "from stalwart.shift import Testbed; print(Testbed.__name__)"
    )
    assert out.strip() == "Testbed"
