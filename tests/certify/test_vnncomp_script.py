"""benchmarks/vnncomp.py on a tiny fake VNN-COMP category: counts, published answers, checks.

The category has one network (``y = relu(x)`` on two inputs, saved with :func:`save_onnx` and
gzipped like the 2022 files) and three properties: one that holds and that two fake 2022 tools
agree on, one that is violated and that they dispute, and one that holds and that no tool
answered. One test runs stalwart's real verifier in subprocesses; the others stand in a fake
verifier (a few lines of Python without torch) to give wrong answers and to hang.
"""

from __future__ import annotations

import gzip
import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from stalwart.certify.network import from_module
from stalwart.certify.onnx_io import save_onnx
from stalwart.certify.vnnlib import write_counterexample

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("vnncomp", ROOT / "benchmarks" / "vnncomp.py")
vnncomp = importlib.util.module_from_spec(_spec)
sys.modules["vnncomp"] = vnncomp  # dataclasses look their module up while being built
_spec.loader.exec_module(vnncomp)

CATEGORY = "tiny"
BOX = "".join(f"(declare-const {v} Real)\n" for v in ("X_0", "X_1", "Y_0", "Y_1")) + "".join(
    f"(assert (>= X_{i} 0.0))\n(assert (<= X_{i} 1.0))\n" for i in (0, 1)
)
PROPERTIES = {
    # y = x on [0, 1]²: y_0 never reaches 2.
    "holds": BOX + "(assert (>= Y_0 2.0))\n",
    # y_0 ≥ y_1 + 0.5 at x = (1, 0), for example.
    "violated": BOX + "(assert (>= Y_0 (+ Y_1 0.5)))\n",
    "unanswered": BOX + "(assert (<= Y_1 -1.0))\n",
}
# What the two fake 2022 tools answered (the 2022 rows, one test_nano row to be ignored).
TOOLS = {
    "tool_a": {"holds": "unsat", "violated": "sat", "unanswered": "timeout"},
    "tool_b": {"holds": "unsat", "violated": "unsat", "unanswered": "error_exit_code_1"},
}


@pytest.fixture
def suite(tmp_path, monkeypatch):
    """``(bench_dir, results_dir)`` of the fake category, files gzipped as in the 2022 repo."""
    # The verifier subprocesses import this checkout's stalwart, whatever the venv holds.
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT / "src"), path) if p))
    bench = tmp_path / "bench" / "benchmarks" / CATEGORY
    (bench / "onnx").mkdir(parents=True)
    (bench / "vnnlib").mkdir()
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2))
        model[0].bias.zero_()
    plain = save_onnx(from_module(model, (2,)), tmp_path / "net.onnx")
    (bench / "onnx" / "net.onnx.gz").write_bytes(gzip.compress(plain.read_bytes()))
    rows = []
    for name, text in PROPERTIES.items():
        (bench / "vnnlib" / f"{name}.vnnlib.gz").write_bytes(gzip.compress(text.encode()))
        rows.append(f"onnx/net.onnx,vnnlib/{name}.vnnlib,30\n")
    (bench / "instances.csv").write_text("".join(rows))
    results = tmp_path / "results"
    for tool, answers in TOOLS.items():
        (results / tool / CATEGORY).mkdir(parents=True)
        lines = [f"{CATEGORY},./benchmarks/test/test_nano.onnx,./benchmarks/test/test_nano.vnnlib,"
                 "1.0,sat,1.0\n"]  # fmt: skip
        lines += [
            f"{CATEGORY},./benchmarks/{CATEGORY}/onnx/net.onnx,./benchmarks/{CATEGORY}/vnnlib/"
            f"{name}.vnnlib,1.5,{word},2.5\n"
            for name, word in answers.items()
        ]
        (results / tool / CATEGORY / "results.csv").write_text("".join(lines))
    return tmp_path / "bench", results


def run(suite, tmp_path, *extra: str):
    bench, results = suite
    argv = [str(bench), str(results), "--categories", CATEGORY, "--tools", "tool_a,tool_b",
            "--out", str(tmp_path / "out.csv"), *extra]  # fmt: skip
    return vnncomp.main(argv)


def fake_verifier(tmp_path: Path, body: str) -> str:
    """A ``--verifier`` command whose ``verify`` runs ``body`` with ``result`` (a Path) set."""
    script = tmp_path / "fake.py"
    script.write_text(
        "import sys, time\nfrom pathlib import Path\n"
        "result = Path(sys.argv[sys.argv.index('--result') + 1])\n" + body
    )
    return f"{sys.executable} {script}"


def test_real_verifier_counts_checks_and_resumes(suite, tmp_path, capsys):
    counts = run(suite, tmp_path)[CATEGORY]
    # holds: solved (tools agree); violated: solved, its checked counterexample settles the
    # dispute; unanswered: holds, but no 2022 tool answered it.
    assert (counts["solved"], counts["holds"], counts["violated"]) == (2, 1, 1)
    assert (counts["unreferenced"], counts["wrong"], counts["unknown"]) == (1, 0, 0)
    rows = vnncomp.read_done(tmp_path / "out.csv")
    violated = rows[(CATEGORY, "onnx/net.onnx", "vnnlib/violated.vnnlib")]
    assert (violated["answer"], violated["ce_check"], violated["reference"]) == (
        "sat", "ok", "disputed")  # fmt: skip
    assert float(violated["ce_margin"]) <= 0  # reached without the 1e-4 tolerance
    printed = capsys.readouterr().out
    assert "3 instance(s) run, 0 taken" in printed
    # Tool columns: tool_a matches on holds (violated stays disputed for the tools).
    assert printed.splitlines()[-2].split()[-2:] == ["1", "1"]

    # A second run reruns nothing and prints the same counts from the CSV.
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert run(suite, tmp_path)[CATEGORY] == counts
    assert "0 instance(s) run, 3 taken" in capsys.readouterr().out
    assert (tmp_path / "out.csv").read_text().splitlines() == lines
    # Another timeout is another run.
    run(suite, tmp_path, "--limit", "1", "--timeout-scale", "0.5",
        "--verifier", fake_verifier(tmp_path, "result.write_text('unknown\\n')"))  # fmt: skip
    assert "1 instance(s) run, 0 taken" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("written", "why"),
    [
        # x = (0, 0) and its true outputs: not in the unsafe region of any property.
        ("sat\n((X_0 0.0) (X_1 0.0) (Y_0 0.0) (Y_1 0.0))\n", "miss the unsafe region"),
        # Outputs that the network does not compute.
        ("sat\n((X_0 0.0) (X_1 0.0) (Y_0 3.0) (Y_1 -2.0))\n", "differ from the claimed"),
        # An input outside the box.
        ("sat\n((X_0 1.5) (X_1 0.0) (Y_0 1.5) (Y_1 0.0))\n", "outside every box"),
        ("sat\n", "no counterexample"),
    ],
)
def test_a_bad_counterexample_counts_as_wrong(suite, tmp_path, written, why):
    verifier = fake_verifier(tmp_path, f"result.write_text({written!r})")
    counts = run(suite, tmp_path, "--verifier", verifier)[CATEGORY]
    assert counts["wrong"] == 3 and counts["solved"] == 0
    for row in vnncomp.read_done(tmp_path / "out.csv").values():
        assert row["outcome"] == "wrong" and why in row["ce_check"]


def test_a_wrong_unsat_is_wrong_and_hangs_are_killed(suite, tmp_path):
    # unsat everywhere: right on holds; disputed on violated (tool_a says sat, tool_b unsat,
    # and no counterexample file settles it); unreferenced on the third.
    counts = run(suite, tmp_path, "--verifier", fake_verifier(tmp_path, "print('unsat');"
                 "result.write_text('unsat\\n')"))[CATEGORY]  # fmt: skip
    assert (counts["solved"], counts["disputed"], counts["unreferenced"]) == (1, 1, 1)

    (tmp_path / "out.csv").unlink()
    hang = fake_verifier(tmp_path, "time.sleep(60)")
    counts = run(suite, tmp_path, "--verifier", hang, "--timeout-scale", "0.01",
                 "--kill-after", "0.2", "--limit", "1")[CATEGORY]  # fmt: skip
    (row,) = vnncomp.read_done(tmp_path / "out.csv").values()
    assert (row["answer"], row["note"], counts["unknown"]) == ("timeout", "killed", 1)
    assert float(row["seconds"]) < 5

    (tmp_path / "out.csv").unlink()
    crash = fake_verifier(tmp_path, "raise SystemExit('boom')")
    run(suite, tmp_path, "--verifier", crash, "--limit", "1")
    (row,) = vnncomp.read_done(tmp_path / "out.csv").values()
    assert row["answer"] == "error" and "boom" in row["note"]


def test_published_answer_rules(suite, tmp_path):
    bench, results = suite
    answers = {"a": {("n", "p"): "sat", ("n", "q"): "unsat"},
               "b": {("n", "p"): "unsat", ("n", "q"): "unsat", ("n", "r"): "timeout"}}  # fmt: skip
    assert vnncomp.reference(answers, ("n", "q")) == "unsat"
    assert vnncomp.reference(answers, ("n", "p")) == "disputed"
    assert vnncomp.reference(answers, ("n", "r")) == "none"
    assert vnncomp.reference(answers, ("n", "s")) == "none"

    # A dispute is settled as sat by a tool's counterexample file that checks out.
    root = vnncomp.benchmark_root(bench)
    onnx = vnncomp.local_file(root, CATEGORY, "onnx/net.onnx", tmp_path / "cache")
    prop = vnncomp.local_file(root, CATEGORY, "vnnlib/violated.vnnlib", tmp_path / "cache")
    table = vnncomp.published_answers(results, CATEGORY)
    key = ("onnx/net.onnx", "vnnlib/violated.vnnlib")
    assert set(table) == {"tool_a", "tool_b"} and table["tool_a"][key] == "sat"
    assert vnncomp.settled(table, key, results, CATEGORY, onnx, prop) == "disputed"
    ce = results / "tool_a" / CATEGORY / "net_violated.counterexample"
    write_counterexample(ce, [0.3, 0.6], [0.3, 0.6])  # not unsafe: 0.3 < 0.6 + 0.5
    assert vnncomp.settled(table, key, results, CATEGORY, onnx, prop) == "disputed"
    # float32 inputs a hair outside the box pass within the competition's 1e-4, as 2022's did.
    write_counterexample(ce, [1.00000001, 0.0], [1.00000001, 0.0])
    assert vnncomp.settled(table, key, results, CATEGORY, onnx, prop) == "sat"

    assert vnncomp.outcome("unsat", "", "sat") == "wrong"
    assert vnncomp.outcome("sat", "ok", "unsat") == "wrong"
    assert vnncomp.outcome("sat", "ok", "none") == "solved"
    assert vnncomp.outcome("unsat", "", "none") == "unreferenced"
    assert vnncomp.outcome("timeout", "", "sat") == "unknown"


def test_bad_input_gets_a_clear_error(suite, tmp_path, capsys):
    bench, results = suite
    with pytest.raises(SystemExit):
        run(suite, tmp_path, "--categories", "nope")
    assert "no category 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        vnncomp.main([str(tmp_path), str(results)])
    assert "no category folder with an instances.csv" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(suite, tmp_path, "--tools", "alpha_beta_crown")
    assert "no tiny results of ['alpha_beta_crown']" in capsys.readouterr().err
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SystemExit):
        run(suite, tmp_path, "--out", str(tmp_path / "other.csv"))
    assert "not a results file of this script" in capsys.readouterr().err
    (bench / "benchmarks" / CATEGORY / "instances.csv").write_text("onnx/net.onnx,30\n")
    with pytest.raises(SystemExit):
        run(suite, tmp_path)
    assert "line 1: expected onnx/NET.onnx,vnnlib/PROP.vnnlib,TIMEOUT" in capsys.readouterr().err
