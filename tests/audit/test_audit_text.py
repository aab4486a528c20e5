"""`stalwart audit` on text models: RobEn cells get the typos section, and only it.

A tiny ``kind: roben`` run (drug reviews, a bag of tokens, a 2,000-word encoding, 40 test
examples, two defenses) is trained once for the module, as ``tests/experiments/
test_roben_kind.py`` does; the tests that need it skip without the data packages.
"""

from __future__ import annotations

import json
import shlex
import shutil
from dataclasses import replace

import html5lib
import numpy as np
import pytest
from tests.conftest import TOY_RUN
from tests.experiment_helpers import Notes
from typer.testing import CliRunner

from stalwart.audit import audit, register_check
from stalwart.audit.checks.typos import _against_constant, next_examples
from stalwart.audit.runs import runs_to_audit
from stalwart.cli import app
from stalwart.data.text import TextSplit
from stalwart.errors import ConfigError
from stalwart.experiments.configs import parse_config, parse_experiment
from stalwart.experiments.kinds.roben import run_roben
from stalwart.experiments.run import run
from stalwart.report.html import Section
from stalwart.report.tables import ResultTable

needs_text_data = pytest.mark.data("drugreview", "english_words", "wordfreq", "codespell")
CLASSIFICATION_CHECKS = ["groups", "robustness", "certified", "simplicity", "shift"]
EXAMPLES = 40
AGGCLUST = "drug_reviews-agglomerative-bag-seed0"
STANDARD = "drug_reviews-standard-bag-seed0"
RESULTS = {
    "clean_accuracy": "clean accuracy",
    "attacked_accuracy": "accuracy under the typo attack",
    "certified_accuracy": "certified accuracy",
    "codespell_accuracy": "codespell accuracy",
    "majority_accuracy": "commonest class",
}
"""results.json's name of each figure of the typos section."""


@pytest.fixture(scope="module")
def roben_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("roben") / "tiny"
    raw = {
        "kind": "roben", "name": "tiny", "datasets": ["drug_reviews"],
        "defenses": ["standard", "agglomerative"], "models": ["bag"],
        "encoding": {"vocab": 2000}, "train": {"epochs": 15},
        "evaluate": {"examples": EXAMPLES}, "seeds": [0], "workers": 1, "out": str(root),
    }  # fmt: skip
    run_roben(parse_experiment(raw), Notes())
    return root


@pytest.fixture(scope="module")
def cell_report(roben_root):
    """Every default check on both cells, without a budget (all 40 examples)."""
    return audit([roben_root / "cells" / AGGCLUST, roben_root / "cells" / STANDARD], budget_s=None)


def sections(report, label):
    return {s.key: s for s in report.runs[label]}


def cli_json(command):
    """Run a printed ``stalwart ...`` command with ``--json``; its one row."""
    words = shlex.split(command)
    assert words[0] == "stalwart"
    result = CliRunner().invoke(app, [*words[1:], "--json"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    return row


@needs_text_data
def test_a_cell_gets_the_typos_section_and_the_other_checks_say_why_not(cell_report):
    found = sections(cell_report, AGGCLUST)
    assert list(found) == [*CLASSIFICATION_CHECKS, "typos", "one_class"]
    assert found["one_class"].status == "not_applicable"
    assert "this is a text model" in found["one_class"].reason
    for key in CLASSIFICATION_CHECKS:
        assert found[key].status == "not_applicable", key
        assert "this is a text model (a RobEn cell)" in found[key].reason
        assert "classification runs" in found[key].reason
    typos = found["typos"]
    assert typos.status == "ok", typos.reason
    figures = {name: figure.value for name, figure in typos.figures.items()}
    assert figures["examples"] == EXAMPLES
    assert figures["certificate"] == "additive (exact)" and figures["capped examples"] == 0
    assert (figures["certified accuracy"] <= figures["accuracy under the typo attack"]
            <= figures["clean accuracy"])  # fmt: skip
    assert 0 <= figures["codespell accuracy"] <= 1
    assert "The figures match the cell's results.json (same examples)." in typos.notes
    assert len(typos.plots) == 1


@needs_text_data
@pytest.mark.parametrize("name", [AGGCLUST, STANDARD])
def test_the_typos_figures_are_what_their_commands_print(roben_root, cell_report, name):
    typos = sections(cell_report, name)["typos"]
    attack_line, certify_line = typos.command.splitlines()
    cell = str(roben_root / "cells" / name)
    assert shlex.split(attack_line)[:4] == ["stalwart", "text", "attack", cell]
    assert shlex.split(certify_line)[:4] == ["stalwart", "text", "certify", cell]
    attacked, certified = cli_json(attack_line), cli_json(certify_line)
    assert attacked["examples"] == certified["examples"] == EXAMPLES
    value = {name: figure.value for name, figure in typos.figures.items()}
    assert attacked["clean"] == certified["clean"] == value["clean accuracy"]
    assert attacked["attacked"] == value["accuracy under the typo attack"]
    assert certified["certified"] == value["certified accuracy"]
    assert certified["capped"] == value["capped examples"]
    assert certified["method"] == value["certificate"]
    # And those are the figures the run itself recorded on the same examples.
    results = json.loads((roben_root / "cells" / name / "results.json").read_text())
    for key, figure in RESULTS.items():
        assert results[key] == typos.figures[figure].value, key


@needs_text_data
def test_classification_runs_and_cells_side_by_side(roben_root, tmp_path):
    toy = tmp_path / "toy"
    run(parse_config({**TOY_RUN, "out": str(toy)}))
    report = audit([toy, roben_root / "cells" / STANDARD], checks=["groups", "typos"],
                   budget_s=30)  # fmt: skip
    on_toy, on_cell = sections(report, "toy"), sections(report, STANDARD)
    assert on_toy["groups"].status == "ok" and on_cell["typos"].status == "ok"
    assert on_toy["typos"].status == "not_applicable"
    assert on_toy["typos"].reason.startswith("this check is for text models")
    assert "a `kind: roben` run" in on_toy["typos"].reason
    assert on_cell["groups"].status == "not_applicable"
    # Raw tokens: the attack breaks much of what is right, and next to nothing is certified.
    figures = {name: figure.value for name, figure in on_cell["typos"].figures.items()}
    assert figures["certified accuracy"] <= figures["accuracy under the typo attack"]
    assert figures["accuracy under the typo attack"] < figures["clean accuracy"]
    compared = {s.key: s for s in report.side_by_side}
    assert compared["typos"].tables[0].rows[-1] == ["status", "not applicable", "ok"]
    html5lib.HTMLParser(strict=True).parse(report.html())


@needs_text_data
def test_a_roben_root_is_audited_cell_by_cell_one_seed_each(roben_root, tmp_path):
    root = tmp_path / "root"
    shutil.copytree(roben_root / "cells", root / "cells")
    shutil.copytree(root / "cells" / AGGCLUST, root / "cells" / AGGCLUST.replace("0", "1"))
    chosen, notes = runs_to_audit([root])
    assert chosen == [
        ("drug_reviews-agglomerative-bag", root / "cells" / AGGCLUST),
        ("drug_reviews-standard-bag", root / "cells" / STANDARD),
    ]
    assert "3 RobEn cells of 2 dataset × defense × model entries" in notes[0]
    assert "--all-seeds" in notes[0]
    every, _ = runs_to_audit([root], all_seeds=True)
    assert [label for label, _ in every] == [
        AGGCLUST, AGGCLUST.replace("0", "1"), STANDARD
    ]  # fmt: skip
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        app, ["audit", str(root), "-o", str(out), "--checks", "groups,typos", "--budget", "30"],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(out.with_suffix(".json").read_text())
    assert list(data["runs"]) == ["drug_reviews-agglomerative-bag", "drug_reviews-standard-bag"]
    for entry in data["runs"].values():
        found = {s["key"]: s for s in entry["sections"]}
        assert found["typos"]["status"] == "ok" and found["groups"]["status"] == "not_applicable"
    page = out.read_text()
    assert "3 RobEn cells of 2" in page
    html5lib.HTMLParser(strict=True).parse(page)


@needs_text_data
def test_a_certificate_the_attack_breaks_fails_the_section(roben_root, monkeypatch):
    import stalwart.text.certify as certify_module

    honest = certify_module.certify

    def unsound(classifier, split, **options):
        found = honest(classifier, split, **options)
        return replace(found, robust=np.ones_like(found.robust))  # every example

    monkeypatch.setattr(certify_module, "certify", unsound)
    report = audit([roben_root / "cells" / STANDARD], checks=["typos"], budget_s=None)
    typos = sections(report, STANDARD)["typos"]
    assert typos.status == "failed"
    assert "certified robust were broken by the attack" in typos.reason
    assert "certified accuracy" in typos.figures  # what was measured stays on the page


def test_the_examples_grow_while_the_last_measurement_says_they_fit():
    def words(k):
        return 10 * k  # as many new words per example: the certificate's cost is linear too

    # 8 examples took 1 s + 1 s; 8 s left, 80 % planned: 25 examples cost 6.25 s.
    assert next_examples(8, (1.0, 1.0), 8.0, 100, words) == 25
    assert next_examples(8, (1.0, 1.0), 1e9, 100, words) == 100  # all fit
    assert next_examples(8, (1.0, 1.0), float("inf"), 100, words) == 100
    assert next_examples(8, (1.0, 1.0), 3.0, 100, words) is None  # not 1.5 times more
    assert next_examples(100, (1.0, 1.0), 60.0, 100, words) is None  # all measured
    # New examples with few new words: the certificate's share of the cost grows slowly.
    assert next_examples(8, (1.0, 1.0), 8.0, 100, lambda k: min(10 * k, 80 + k)) > 25


def test_a_check_names_the_kinds_it_applies_to():
    with pytest.raises(ConfigError, match=r"applies_to must name kinds of run from"):
        register_check("test_wrong_kind", "Wrong", default=False, applies_to=("images",))


class _FixedClassifier:
    """Gives example i the class ``predictions[i]`` (examples are told apart by their text)."""

    class encoder:  # noqa: N801 - the interface's attribute name
        @staticmethod
        def encode_tokens(tokens):
            return tokens

    def __init__(self, predictions):
        self.predictions = predictions

    def logits(self, encoded, batch_size=512):
        index = [int(tokens[1]) for tokens in encoded]
        return np.eye(3)[np.asarray(self.predictions)[index]]


@pytest.mark.parametrize(
    ("predictions", "clean", "says"),
    [
        ([2] * 10, 0.7, "gives every one of the 10 examples the class 'positive'"),
        ([2] * 9 + [0], 0.71, "within 2 points of predicting the commonest class (70.0%); 90%"),
        ([2] * 7 + [0] * 3, 0.8, None),
    ],
)
def test_a_model_near_a_constant_classifier_is_named(predictions, clean, says):
    """The typos section sets the model beside the commonest class, and says when it is near."""
    labels = [2] * 7 + [0] * 2 + [1]
    split = TextSplit([f"review {i}" for i in range(10)], labels, [0] * 10,
                      ("negative", "neutral", "positive"), ("all",))  # fmt: skip
    section = Section("typos", "Typos", tables=[ResultTable(["", "accuracy %"])])
    notes = _against_constant(section, _FixedClassifier(predictions), split, clean)
    assert section.figures["commonest class"].value == pytest.approx(0.7)
    assert section.tables[-1].rows[-1][:2] == ["predicting the commonest class", "70.0"]
    if says is None:
        assert notes == []
    else:
        assert len(notes) == 1 and says in notes[0], notes
