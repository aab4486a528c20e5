"""`stalwart inherit`: the printed rates, matrices and summary are the library's numbers."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import numpy as np
import pytest
from tests.bad_input.conftest import expect_clean_error, invoke

from stalwart.shift.inherit import FailureSet, overlap, save_failures, summarize

PROBES = 300


def failure_set(model, failed, task, encoder, perturbation, ids=None):
    return FailureSet(
        model=model,
        perturbation=perturbation,
        kind="flip",
        probe_ids=np.arange(len(failed)) if ids is None else ids,
        failed=failed,
        task=task,
        adaptation="linear_probe" if encoder else "scratch",
        encoder=encoder,
        probe_set="tweets/test",
    )


@pytest.fixture
def roots(tmp_path):
    """Two experiment folders: a tweets model and a drugs model from one encoder, and a scratch
    model of each task; the adapted ones share most failures of a common weak spot."""
    rng = np.random.default_rng(0)
    sets = {}
    for perturbation in ("typo", "codespell"):
        weak = rng.random(PROBES) < 0.25
        for task in ("tweets", "drugs"):
            keep = rng.random(PROBES) < 0.8
            adapted = np.where(keep, weak, rng.random(PROBES) < 0.25)
            sets[f"{task}/minilm", perturbation] = failure_set(
                f"{task}/minilm", adapted, task, "minilm", perturbation
            )
            sets[f"{task}/scratch", perturbation] = failure_set(
                f"{task}/scratch", rng.random(PROBES) < 0.3, task, None, perturbation
            )
    tweets = [s for (m, _), s in sets.items() if m.startswith("tweets")]
    drugs = [s for (m, _), s in sets.items() if m.startswith("drugs")]
    save_failures(tmp_path / "adapt_tweets" / "seed0" / "failures.npz", tweets)
    save_failures(tmp_path / "adapt_drugs" / "failures.npz", drugs)
    return tmp_path / "adapt_tweets", tmp_path / "adapt_drugs", sets


def run_json(*args):
    result = invoke("inherit", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_json_holds_the_librarys_rates_pairs_and_summary(roots):
    tweets, drugs, sets = roots
    out = run_json(tweets, drugs)
    assert len(out["files"]) == 2
    rates = {(r["model"], r["perturbation"]): r["rate"] for r in out["rates"]}
    assert rates == {key: pytest.approx(s.rate) for key, s in sets.items()}
    assert len(out["pairs"]) == 2 * 6  # 4 models, 2 perturbations
    for pair in out["pairs"]:
        first = sets[pair["first_model"], pair["first_perturbation"]]
        second = sets[pair["second_model"], pair["second_perturbation"]]
        assert pair["first_perturbation"] == pair["second_perturbation"]
        expected = overlap(first, second)
        for name in ("jaccard", "beyond_chance", "expected_joint_rate", "lift", "p_value"):
            assert pair[name] == pytest.approx(getattr(expected, name)), name
        assert pair["both"] == expected.both and pair["relation"] == expected.relation
    pairs = [
        overlap(sets[a, p], sets[b, p])
        for p in ("codespell", "typo")
        for a, b in [("drugs/minilm", "drugs/scratch"), ("drugs/minilm", "tweets/minilm"),
                     ("drugs/minilm", "tweets/scratch"), ("drugs/scratch", "tweets/minilm"),
                     ("drugs/scratch", "tweets/scratch"), ("tweets/minilm", "tweets/scratch")]
    ]  # fmt: skip
    assert out["summary"] == [group.to_dict() for group in summarize(pairs)]
    same = [g for g in out["summary"] if g["relation"] == "same encoder"]
    scratch = [g for g in out["summary"] if g["relation"] == "adapted and scratch"]
    # The constructed weak spot: adapted models share failures across tasks, beyond chance.
    assert min(g["mean_beyond_chance"] for g in same) > 0.1
    assert max(abs(g["mean_beyond_chance"]) for g in scratch) < 0.05


def test_table_prints_rates_matrix_cells_and_summary(roots, monkeypatch):
    from stalwart.cli import console

    monkeypatch.setattr(console, "_width", 250)
    tweets, drugs, sets = roots
    result = invoke("inherit", tweets, drugs, "--perturbation", "typo", "--by", "model")
    assert result.exit_code == 0, result.output
    text = result.output
    adapted = overlap(sets["drugs/minilm", "typo"], sets["tweets/minilm", "typo"])
    cell = f"{adapted.jaccard:.2f} ({100 * adapted.beyond_chance:+.1f})"
    assert cell in text
    assert f"{100 * sets['tweets/scratch', 'typo'].rate:.1f}" in text
    assert "typo flip %" in text and "codespell" not in text  # only the chosen perturbation
    assert "same encoder" in text and "adapted and scratch" in text
    assert f"{PROBES} shared probes" in text


def test_markdown_and_csv_and_out_file(roots, tmp_path):
    tweets, drugs, sets = roots
    result = invoke("inherit", tweets, drugs, "--format", "markdown", "--by", "model")
    assert result.exit_code == 0, result.output
    assert (
        "| model | task | adaptation | encoder | codespell flip % | typo flip % |" in result.stdout
    )
    assert result.stdout.count("| #1 drugs/minilm |") == 2  # one matrix per perturbation
    result = invoke("inherit", tweets, drugs, "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 12
    wanted = ("drugs/minilm", "tweets/minilm", "typo")
    row = next(
        r for r in rows if (r["first_model"], r["second_model"], r["first_perturbation"]) == wanted
    )
    expected = overlap(sets["drugs/minilm", "typo"], sets["tweets/minilm", "typo"])
    assert float(row["jaccard"]) == pytest.approx(expected.jaccard)
    assert float(row["p_value"]) == pytest.approx(expected.p_value)
    assert row["second_encoder"] == "minilm" and row["relation"] == "same encoder"
    out = tmp_path / "report" / "inherit.md"
    result = invoke("inherit", tweets, drugs, "--format", "markdown", "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_text() == invoke("inherit", tweets, drugs, "--format", "markdown").stdout
    table = tmp_path / "inherit.txt"
    assert invoke("inherit", tweets, drugs, "--out", table).exit_code == 0
    assert "same encoder" in table.read_text() and "\x1b[" not in table.read_text()


def test_bad_inputs_exit_with_one_clear_line(roots, tmp_path):
    tweets, drugs, sets = roots
    (tmp_path / "empty").mkdir()
    expect_clean_error(invoke("inherit", tmp_path / "empty"), ["no failures.npz under"])
    expect_clean_error(invoke("inherit", tmp_path / "nowhere"), ["nowhere does not exist"])
    expect_clean_error(
        invoke("inherit", tweets, "--perturbation", "typos"),
        ["no failures under perturbation 'typos' (did you mean 'typo'?)"],
    )
    expect_clean_error(invoke("inherit", tweets, "--format", "html"), ["unknown format 'html'"])
    expect_clean_error(
        invoke("inherit", tweets, "--adaptation", "lp"),
        ["no failures of adaptation 'lp'", "['linear_probe', 'scratch']"],
    )
    expect_clean_error(
        invoke("inherit", tweets, "--by", "models"),
        ["unknown --by 'models' (did you mean 'model'?)"],
    )
    # Probe ids of another range: nothing to compare on.
    other = failure_set("other", np.ones(5, bool), "x", None, "typo", ids=np.arange(1000, 1005))
    save_failures(tmp_path / "disjoint" / "failures.npz", [other])
    expect_clean_error(
        invoke("inherit", tweets, tmp_path / "disjoint"), ["share no probe id", "'other'"]
    )
    damaged = tmp_path / "damaged" / "failures.npz"
    damaged.parent.mkdir()
    damaged.write_bytes((drugs / "failures.npz").read_bytes()[:300])
    expect_clean_error(invoke("inherit", tweets, damaged.parent), [str(damaged), "write it again"])
    lone = tmp_path / "lone" / "failures.npz"
    save_failures(lone, [sets["tweets/minilm", "typo"]])
    expect_clean_error(invoke("inherit", lone, "--format", "csv"), ["no pair to compare"])


def test_only_the_chosen_adaptations_are_compared(roots):
    tweets, drugs, sets = roots
    out = run_json(tweets, drugs, "--adaptation", "scratch")
    assert {r["model"] for r in out["rates"]} == {"tweets/scratch", "drugs/scratch"}
    assert len(out["pairs"]) == 2  # one pair per perturbation
    assert {g["relation"] for g in out["summary"]} == {"both scratch"}


def test_a_folder_given_twice_is_read_once(roots):
    tweets, _, _ = roots
    out = run_json(tweets, tweets / "seed0", tweets / "seed0" / "failures.npz")
    assert len(out["files"]) == 1 and len(out["rates"]) == 4


def test_tables_by_adaptation_average_each_task_and_adaptation_over_its_models(tmp_path):
    """Two seeds of each of two adaptations: one row per adaptation, the seeds' mean."""
    rng = np.random.default_rng(3)
    sets = {}
    for adaptation, rate in (("lp", 0.2), ("ft", 0.4)):
        for seed in (0, 1):
            model = f"tweets/{adaptation}/seed{seed}"
            s = failure_set(model, rng.random(PROBES) < rate, "tweets", "minilm", "typo")
            sets[adaptation, seed] = dataclasses.replace(s, adaptation=adaptation)
    save_failures(tmp_path / "failures.npz", list(sets.values()))
    result = invoke("inherit", tmp_path, "--format", "markdown")
    assert result.exit_code == 0, result.output
    text = result.stdout
    mean = 100 * np.mean([sets["ft", 0].rate, sets["ft", 1].rate])
    assert f"| tweets | ft | minilm | 2 | {mean:.1f} ± " in text
    within = overlap(sets["ft", 0], sets["ft", 1])
    across = [overlap(sets["ft", i], sets["lp", j]) for i in (0, 1) for j in (0, 1)]
    jaccard = np.mean([p.jaccard for p in across])
    beyond = 100 * np.mean([p.beyond_chance for p in across])
    row = next(line for line in text.splitlines() if "tweets · ft (2) |" in line)
    assert f"{within.jaccard:.2f} ({100 * within.beyond_chance:+.1f})" in row
    assert f"{jaccard:.2f} ({beyond:+.1f})" in row
    assert "seed0" not in text  # no row per model
