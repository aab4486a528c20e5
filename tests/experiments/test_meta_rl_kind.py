"""kind: meta_rl — benchmarks × learners × seeds, cells resumed and reused, curves summarised."""

from __future__ import annotations

import json

import pytest
from tests.experiment_helpers import Notes, refused_run
from tests.rl.test_loop import TINY

from stalwart.errors import ConfigError
from stalwart.experiments.configs import parse_experiment
from stalwart.experiments.kinds.meta_rl import run_meta_rl, summarise

SHARED = {k: v for k, v in TINY.items() if k not in ("env", "seed")}


def _raw(tmp_path, **changes):
    return {
        "kind": "meta_rl", "name": "tiny",
        "benchmarks": {"tight": {"env": {"name": "distracting_bus_tight"}, "total_steps": 100}},
        "learners": {"dream": {"learner": "dream"}, "erl2": {"learner": "erl2"}},
        "train": SHARED, "seeds": [0, 1], "workers": 1, "out": str(tmp_path / "tiny"),
        **changes,
    }  # fmt: skip


def test_every_cell_trains_is_summarised_and_is_reused(tmp_path):
    config = parse_experiment(_raw(tmp_path))
    notes = Notes()
    result = run_meta_rl(config, notes)
    root = tmp_path / "tiny"
    assert notes.lines[0] == "0 cells reused, 4 to train"
    for name in ("meta_rl.json", "meta_rl.md", "curves.png"):
        assert (root / name).stat().st_size > 0
    records = result["records"]
    assert [(r["cell"]["learner"], r["cell"]["seed"]) for r in records] == [
        ("dream", 0), ("dream", 1), ("erl2", 0), ("erl2", 1)
    ]  # fmt: skip
    # Each cell's run config is the shared keys, then the benchmark's, the learner's, the seed.
    run = records[0]["cell"]["run"]
    assert (run["total_steps"], run["hidden"], run["learner"], run["seed"]) == (100, 8, "dream", 0)
    folder = root / "cells" / "tight-erl2-seed1"
    assert json.loads((folder / "run" / "summary.json").read_text())["curve"] == records[3]["curve"]
    entry = result["summary"]["benchmarks"]["tight"]
    assert entry["references"] == {"oracle": pytest.approx(0.15), "random": -0.5}
    assert set(entry["learners"]) == {"dream", "erl2"}
    markdown = (root / "meta_rl.md").read_text()
    assert (
        "| tight | dream | 2 |" in markdown and "held-out return by environment steps" in markdown
    )
    # Again: every cell reused, the same summary; a damaged record retrains that cell only.
    again = Notes()
    assert run_meta_rl(config, again)["summary"] == result["summary"]
    assert again.lines[0] == "4 cells reused, 0 to train"
    # Its run directory is finished, so it resumes at the end: the same curve, and the wall
    # time of its first session, not of the resume.
    (folder / "results.json").write_text("{")
    third = Notes()
    redone = run_meta_rl(config, third)["records"][3]
    assert third.lines[0] == "3 cells reused, 1 to train"
    assert redone["curve"] == records[3]["curve"] and redone["resumed_from"] >= 100
    assert records[3]["seconds"] <= redone["seconds"] <= records[3]["seconds"] + 0.5


def _record(learner, seed, returns, oracle=0.15):
    curve = [{"step": 100 * k + seed, "return": r} for k, r in enumerate(returns)]
    cell = {"benchmark": "b", "learner": learner, "seed": seed, "run": {"env": {"name": "x"}}}
    return {"cell": cell, "curve": curve, "references": {"oracle": oracle, "random": -0.5},
            "seconds": 10.0 + seed}  # fmt: skip


def test_curves_are_averaged_by_evaluation_and_solved_at_the_first_near_oracle_one():
    summary = summarise(
        [_record("a", 0, [-0.5, 0.0, 0.12, 0.15]), _record("a", 1, [-0.5, -0.2, -0.2, 0.09])]
    )
    found = summary["benchmarks"]["b"]["learners"]["a"]
    assert [p["step"] for p in found["curve"]] == [0, 100, 200, 300]  # 0.5 rounds to even
    assert [p["mean"] for p in found["curve"]] == pytest.approx([-0.5, -0.1, -0.04, 0.12])
    assert found["curve"][1]["std"] == pytest.approx(0.1414, abs=1e-4)
    assert found["final"]["mean"] == pytest.approx(0.12)
    # Within 0.05 of the oracle (0.15): 0.12 at the third evaluation; never for seed 1.
    assert found["solved_at"] == [200, None]
    # Curves of different lengths are cut to the shortest.
    short = summarise([_record("a", 0, [0.0, 0.1, 0.2]), _record("a", 1, [0.0, 0.1])])
    assert len(short["benchmarks"]["b"]["learners"]["a"]["curve"]) == 2


def test_a_key_set_by_both_a_benchmark_and_a_learner_is_refused(tmp_path):
    raw = _raw(tmp_path, learners={"dream": {"learner": "dream", "total_steps": 5}})
    with pytest.raises(ConfigError, match=r"both set \['total_steps'\]"):
        parse_experiment(raw)


def test_a_wrong_cell_key_names_the_cell_and_the_closest_key(tmp_path):
    raw = _raw(tmp_path, learners={"erl2": {"learner": "erl2", "dream": {"noise": 0.5}}})
    message = refused_run(tmp_path, raw)
    assert "benchmarks.tight × learners.erl2" in message and "learner 'dream' only" in message
    raw = _raw(tmp_path, train={**SHARED, "batchsize": 3})
    assert "did you mean 'batch_size'" in refused_run(tmp_path, raw)
    raw = _raw(tmp_path, learners={"dream": {"lr": 0.1}})
    assert "learners.dream: give its learner: key" in refused_run(tmp_path, raw)
    assert not (tmp_path / "tiny").exists()


def test_the_terminal_shows_a_few_evenly_spaced_evaluations_and_the_markdown_all():
    from stalwart.experiments.kinds.meta_rl import tables

    summary = summarise([_record("a", 0, [0.01 * k for k in range(21)])])
    every = tables(summary)[1]
    assert every.columns[1:] == [f"{100 * k:,}" for k in range(21)]
    few = tables(summary, points=9)[1]
    assert few.columns[1:] == ["0", "300", "600", "900", "1,200", "1,500", "1,800", "2,000"]
    assert few.rows == [["a", *(f"{0.01 * k:+.3f} ± 0.000" for k in (0, 3, 6, 9, 12, 15, 18, 20))]]
