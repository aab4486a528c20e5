import json
import statistics

import pytest

from stalwart.errors import ConfigError
from stalwart.experiments.configs import parse_experiment
from stalwart.experiments.kinds.compare import compare, expand
from stalwart.experiments.kinds.sweep import sweep, trials

DATA = {
    "name": "toy_spurious",
    "n": 400,
    "majority_fraction": 0.9,
    "core_dim": 2,
    "core_variance": 1.0,
    "spurious_dim": 2,
    "spurious_variance": 0.05,
    "n_val": 80,
    "n_test": 80,
}
TRAIN = {"epochs": 3, "batch_size": 32, "optimizer": "sgd", "lr": 0.05, "progress": False}


def compare_config(tmp_path, **changes):
    raw = {
        "kind": "compare",
        "name": "cmp",
        "data": DATA,
        "model": {"name": "linear"},
        "train": TRAIN,
        "methods": {"erm": {}, "dfr": {}, "gdro": {"method": "group_dro"}},
        "seeds": [0, 1],
        "out": str(tmp_path / "cmp"),
        **changes,
    }
    return parse_experiment(raw)


def test_compare_runs_every_method_and_seed_and_summarises(tmp_path):
    config = compare_config(tmp_path)
    table = compare(config)
    root = tmp_path / "cmp"
    assert set(table["methods"]) == {"erm", "dfr", "gdro"}
    for label in ("erm", "dfr", "gdro"):
        tests = [
            json.loads((root / label / f"seed{s}" / "summary.json").read_text())["metrics"]["test"]
            for s in (0, 1)
        ]
        expected = statistics.fmean(t["worst_group_accuracy"] for t in tests)
        assert table["methods"][label]["worst_group_accuracy"]["mean"] == pytest.approx(expected)
    assert table["methods"]["gdro"]["group_labels"] == "yes"
    assert table["methods"]["erm"]["group_labels"] == "no"
    assert table["methods"]["dfr"]["group_labels"] == "validation set"
    for name in ("comparison.json", "comparison.md", "per_group_accuracy.png"):
        assert (root / name).stat().st_size > 0
    # DFR built on the ERM runs instead of training its own base.
    assert not list((root / "shared").glob("dfr-base-*"))
    assert json.loads((root / "dfr" / "seed0" / "dfr.json").read_text())["base_dir"].endswith(
        "erm/seed0"
    )
    assert (root / "dfr" / "seed0" / "checkpoints" / "best.pt").exists()  # the retrained model


def test_dfr_waits_for_erm_in_a_second_wave(tmp_path):
    waves = expand(compare_config(tmp_path))
    assert [sorted({job.label for job in wave}) for wave in waves] == [["erm", "gdro"], ["dfr"]]


def test_compare_rejects_a_bad_method_entry_before_running(tmp_path):
    with pytest.raises(ConfigError, match="upweigth"):
        compare_config(tmp_path, methods={"jtt": {"upweigth": 3}})
    assert not (tmp_path / "cmp").exists()


def sweep_raw(tmp_path, **changes):
    return {
        "kind": "sweep",
        "name": "sw",
        "base": {
            "data": DATA,
            "model": {"name": "linear"},
            "method": {"name": "jtt"},
            "train": TRAIN,
        },
        "grid": {"method.upweight": [1, 10]},
        "seeds": [0],
        "workers": 1,
        "out": str(tmp_path / "sw"),
        **changes,
    }


def test_sweep_selects_on_validation_and_shares_the_identification_stage(tmp_path):
    config = parse_experiment(sweep_raw(tmp_path))
    result = sweep(config)
    rows = result["trials"]
    assert [row["overrides"] for row in rows] == [{"method.upweight": 1}, {"method.upweight": 10}]
    assert result["selected"] == max(rows, key=lambda r: r["val"])["trial"]
    assert len(list((tmp_path / "sw" / "shared").glob("jtt-identification-*"))) == 1


def test_random_draws_are_seeded_by_name_and_key(tmp_path):
    raw = sweep_raw(
        tmp_path, grid={}, samples=3, random={"train.lr": {"low": 1e-3, "high": 1e-1, "log": True}}
    )
    first = trials(parse_experiment(raw))
    assert first == trials(parse_experiment(raw))
    assert all(1e-3 <= t["train.lr"] <= 1e-1 for t in first)
    more = {**raw, "random": {**raw["random"], "method.upweight": {"choices": [5, 20]}}}
    assert [t["train.lr"] for t in trials(parse_experiment(more))] == [t["train.lr"] for t in first]
    renamed = trials(parse_experiment({**raw, "name": "other"}))
    assert [t["train.lr"] for t in renamed] != [t["train.lr"] for t in first]


def test_sweep_in_parallel_workers_matches_sequential(tmp_path):
    sequential = sweep(parse_experiment(sweep_raw(tmp_path / "a")))
    parallel = sweep(parse_experiment(sweep_raw(tmp_path / "b", workers=2)))
    assert [r["val"] for r in sequential["trials"]] == [r["val"] for r in parallel["trials"]]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"kind": "sweeep"}, "did you mean 'sweep'"),
        ({"grid": {"method.upweigth": [1]}}, "upweigth"),
        ({"random": {"train.lr": {"low": 1.0}}}, "low and high"),
        ({"samplez": 3}, "did you mean 'samples'"),
    ],
)
def test_sweep_config_errors(tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        parse_experiment(sweep_raw(tmp_path, **change))
