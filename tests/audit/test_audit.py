"""`stalwart audit` and `stalwart.audit`: sections that apply, budgets, failures, the HTML page.

Two tiny runs are trained once for the module: the toy run of ``tests/conftest.py`` (Gaussian
features, no input blocks) and a slab-data run (``lms``, which declares blocks).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import time

import html5lib
import pytest
import torch
from tests.conftest import TOY_RUN
from typer.testing import CliRunner

from stalwart.attacks import robust_accuracy
from stalwart.audit import NotApplicable, audit, register_check
from stalwart.audit.runs import runs_to_audit
from stalwart.cli import app
from stalwart.errors import DataMissingError
from stalwart.experiments.configs import parse_config
from stalwart.experiments.run import load_run, run
from stalwart.metrics.group import group_metrics
from stalwart.report.html import Figure, Plot, Section, render_page
from stalwart.report.tables import ResultTable

BUDGET = 20.0
SLAB_RUN = {
    "name": "slabs",
    "data": {"name": "lms", "slabs": 5, "dim": 6, "n_train": 300, "n_val": 80, "n_test": 120},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"epochs": 2, "batch_size": 32, "progress": False},
}


# Fake checks for the budget and failure paths; default=False keeps them out of every audit
# that does not name them.
@register_check("test_raises", "A check that breaks", default=False)
def _raises(run, context):
    context.section.figure("before the bug", 1)
    raise RuntimeError("a bug inside the check")


@register_check("test_user_error", "A check that refuses", default=False)
def _user_error(run, context):
    raise DataMissingError("the data package is missing; install it with `stalwart datasets`")


@register_check("test_cooperative", "A slow check that keeps to its budget", default=False)
def _cooperative(run, context):
    context.section.figure("first step", 0.5, "%", "higher")
    while True:
        context.check_time("spinning")
        time.sleep(0.01)


@register_check("test_ignores_budget", "A slow check that ignores its budget", default=False)
def _ignores_budget(run, context):
    context.section.figure("first step", 7)
    while True:
        time.sleep(0.01)


@register_check("test_not_applicable", "A check that does not apply", default=False)
def _not_applicable(run, context):
    raise NotApplicable("only for one-class models")


def train(raw, out):
    run(parse_config({**raw, "out": str(out)}))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit")
    return {"toy": train(TOY_RUN, root / "toy"), "slabs": train(SLAB_RUN, root / "slabs")}


@pytest.fixture(scope="module")
def toy_report(runs):
    return audit([runs["toy"]], budget_s=BUDGET)


def cells(line):
    """The cells of one row of a rich table, as printed."""
    return [cell.strip() for cell in line.strip("│┃ ").split("│")]


def sections(report, label):
    return {s.key: s for s in report.runs[label]}


def test_toy_run_report_has_the_sections_that_apply(runs, toy_report):
    found = sections(toy_report, "toy")
    assert list(found) == [
        "groups", "robustness", "certified", "simplicity", "shift", "typos", "one_class"
    ]  # fmt: skip
    assert [found[k].status for k in ("groups", "robustness", "certified")] == ["ok"] * 3
    # The worst-group accuracy is the model's own, measured independently here.
    _, splits, model = load_run(runs["toy"])
    with torch.no_grad():
        predicted = model(splits.test.x).argmax(1)
    truth = group_metrics(predicted, splits.test.y, splits.test.group, splits.test.group_names)
    groups = found["groups"]
    assert groups.figures["worst-group accuracy"].value == pytest.approx(truth.worst_group_accuracy)
    assert groups.figures["test accuracy"].value == pytest.approx(truth.accuracy)
    assert groups.tables[0].rows[-1][-1] == f"{100 * truth.worst_group_accuracy:.1f}"
    assert len(groups.plots) == 1 and groups.command == f"stalwart runs {runs['toy']}"
    robust = found["robustness"]
    assert sum(name.startswith("robust accuracy, ε") for name in robust.figures) == 3
    certified = found["certified"]
    assert certified.figures["tightest bound"].value in ("ibp", "crown", "lp")
    eps = certified.figures["ε (L∞)"].value
    pgd_accuracy = certified.figures[f"PGD accuracy, ε = {eps:g} (upper bound)"].value
    assert certified.figures[f"certified accuracy, ε = {eps:g}"].value <= pgd_accuracy + 1e-6
    # What does not apply says why, and how to make it apply.
    assert found["simplicity"].status == "not_applicable"
    assert "declares no input blocks" in found["simplicity"].reason
    assert found["shift"].status == "not_applicable" and "--testbed" in found["shift"].reason
    assert found["typos"].status == "not_applicable" and "text models" in found["typos"].reason
    one_class = found["one_class"]
    assert one_class.status == "not_applicable" and "kind: anomaly" in one_class.reason


def test_robustness_figure_is_what_its_command_prints(runs, toy_report):
    robust = sections(toy_report, "toy")["robustness"]
    first = shlex.split(robust.command.splitlines()[0])
    assert first[:3] == ["stalwart", "attack", str(runs["toy"])]
    result = CliRunner().invoke(app, first[1:], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    eps = float(first[first.index("--eps") + 1])
    shown = robust.figures[f"robust accuracy, ε = {eps:g}"].text().removesuffix(" %")
    average = next(line for line in result.output.splitlines() if "│ average" in line)
    assert cells(average)[-1] == shown  # the robust column's average
    # And the same numbers come from the library directly on those examples.
    _, splits, model = load_run(runs["toy"])
    n = int(first[first.index("--examples") + 1])
    lower = float(next(a for a in first if a.startswith("--lower=")).split("=")[1])
    upper = float(next(a for a in first if a.startswith("--upper=")).split("=")[1])
    direct = robust_accuracy(model, splits.test.subset(torch.arange(n)), eps=eps, steps=20,
                             lower=lower, upper=upper)  # fmt: skip
    assert robust.figures[f"robust accuracy, ε = {eps:g}"].value == direct.robust.accuracy


def test_certified_figure_is_what_its_command_prints(runs, toy_report):
    certified = sections(toy_report, "toy")["certified"]
    words = shlex.split(certified.command)
    result = CliRunner().invoke(app, words[1:], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    tightest = certified.figures["tightest bound"].value
    row = next(line for line in result.output.splitlines() if f"certified: {tightest}" in line)
    eps = certified.figures["ε (L∞)"].value
    shown = certified.figures[f"certified accuracy, ε = {eps:g}"].text().removesuffix(" %")
    assert cells(row)[1] == shown


DIGITS_RUN = {
    "data": {"name": "digits"}, "model": {"name": "mlp", "hidden": [32]},
    "train": {"epochs": 8, "batch_size": 64, "lr": 3e-3, "progress": False},
}  # fmt: skip
TRAINED_EPS = 0.05


@pytest.fixture(scope="module")
def robust_runs(tmp_path_factory):
    """ERM, PGD adversarial training and IBP certified training of one MLP on digits."""
    root = tmp_path_factory.mktemp("robust")
    methods = {
        "erm": {"name": "erm"},
        "pgd_at": {"name": "pgd_at", "eps": TRAINED_EPS, "steps": 7},
        "ibp": {"name": "ibp", "eps": TRAINED_EPS, "kappa": 0.5, "ramp_steps": 100},
    }
    return {name: train({**DIGITS_RUN, "name": name, "method": method}, root / name)
            for name, method in methods.items()}  # fmt: skip


def test_robust_and_certified_runs_are_measured_at_the_eps_they_trained_for(robust_runs):
    report = audit(list(robust_runs.values()), checks=["robustness", "certified"], budget_s=None,
                   attack_examples=150, certify_examples=40)  # fmt: skip
    found = {label: sections(report, label) for label in robust_runs}
    at_trained = f"robust accuracy, ε = {TRAINED_EPS:g}"
    for label in robust_runs:
        assert [s.status for s in found[label].values()] == ["ok", "ok"], label
        # Every run is attacked at 1, 3 and 10 % of digits' [0, 1] range; the trained ones at
        # their ε too.
        figures = found[label]["robustness"].figures
        assert {f"robust accuracy, ε = {e:g}" for e in (0.01, 0.03, 0.1)} <= set(figures)
        assert (at_trained in figures) == (label != "erm")
    # Adversarial training holds up better than ERM.
    robust = {label: found[label]["robustness"].figures["robust accuracy, ε = 0.1"].value
              for label in found}  # fmt: skip
    assert robust["pgd_at"] > robust["erm"] + 0.05
    # ERM is certified at 1 % of the range; the trained runs at their ε.
    certified = {label: found[label]["certified"] for label in found}
    assert certified["erm"].figures["ε (L∞)"].value == 0.01
    assert "1 % of the input range" in certified["erm"].notes[0]
    for label in ("pgd_at", "ibp"):
        assert certified[label].figures["ε (L∞)"].value == TRAINED_EPS
        assert f"the ε {label} trained for" in certified[label].notes[0]
    name = f"certified accuracy, ε = {TRAINED_EPS:g}"
    upper = f"PGD accuracy, ε = {TRAINED_EPS:g} (upper bound)"
    for label in ("pgd_at", "ibp"):
        figures = certified[label].figures
        assert figures[name].value <= figures[upper].value
    assert certified["pgd_at"].figures[name].value > 0.25  # CROWN/LP certify the small MLP
    # Side by side, runs certified at different ε share no row, so none is ranked against ERM.
    (table,) = next(s for s in report.side_by_side if s.key == "certified").tables
    row = [r[0] for r in table.rows].index(name)
    assert table.rows[row][1] == "-"  # ERM's column (its ε is 0.01)
    values = {c: certified[label].figures[name].value for c, label in ((2, "pgd_at"), (3, "ibp"))}
    best = {c for c, v in values.items() if v == max(values.values())}
    assert {c for r, c in table.marked if r == row} == best


def test_data_with_blocks_gets_the_simplicity_section(runs):
    report = audit([runs["slabs"]], checks=["simplicity"], budget_s=BUDGET)
    section = sections(report, "slabs")["simplicity"]
    assert section.status == "ok", section.reason
    assert {"AUC, simple randomized", "AUC, complex randomized"} <= set(section.figures)
    assert section.figures["relies most on"].value in ("simple", "complex")
    assert section.command == f"stalwart diagnose {runs['slabs']}"
    # The audit reads the run and writes nothing into it (no simplicity.json cache).
    assert not (runs["slabs"] / "simplicity.json").exists()


def test_a_check_that_raises_fails_alone(runs):
    report = audit([runs["toy"]], checks=["groups", "test_raises", "test_user_error"],
                   budget_s=BUDGET)  # fmt: skip
    found = sections(report, "toy")
    assert found["test_raises"].status == "failed"
    assert found["test_raises"].reason == "RuntimeError: a bug inside the check"
    # A user's error is shown as it is: it says what to do.
    assert found["test_user_error"].status == "failed"
    assert found["test_user_error"].reason.startswith("the data package is missing")
    assert found["groups"].status == "ok"
    page = report.html()
    assert "a bug inside the check" in page and "worst-group accuracy" in page


def test_a_check_over_budget_is_cut_and_keeps_what_finished(runs):
    started = time.perf_counter()
    report = audit([runs["toy"]], checks=["test_cooperative", "test_ignores_budget"],
                   budget_s=0.3)  # fmt: skip
    elapsed = time.perf_counter() - started
    found = sections(report, "toy")
    cooperative = found["test_cooperative"]
    assert cooperative.status == "partial"
    assert "ran out of its 0.3 s budget while spinning" in cooperative.reason
    assert cooperative.figures["first step"].value == 0.5
    assert cooperative.seconds < 1.0
    # One that ignores its budget is interrupted after the grace period (1 s at least).
    ignoring = found["test_ignores_budget"]
    assert ignoring.status == "partial" and "ran out of its 0.3 s budget" in ignoring.reason
    assert ignoring.figures["first step"].value == 7
    assert 1.2 < ignoring.seconds < 3.0
    assert elapsed < 6.0


def test_a_check_that_does_not_apply_says_so(runs):
    report = audit([runs["toy"]], checks=["test_not_applicable"], budget_s=BUDGET)
    section = sections(report, "toy")["test_not_applicable"]
    assert section.status == "not_applicable" and section.reason == "only for one-class models"
    assert "not applicable" in report.html()


def test_a_corrupted_checkpoint_gives_a_report_that_says_so(runs, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(runs["toy"], broken)
    (broken / "checkpoints" / "best.pt").write_bytes(b"not a checkpoint")
    not_a_run = tmp_path / "empty"
    not_a_run.mkdir()
    report = audit([broken, not_a_run], checks=["groups", "robustness"], budget_s=BUDGET)
    for section in report.runs["broken"]:
        assert section.status == "failed"
        assert "cannot be audited" in section.reason and "corrupt" in section.reason
    for section in report.runs["empty"]:
        assert section.status == "failed" and "not a run directory" in section.reason
    page = report.html()
    assert "corrupt" in page
    html5lib.HTMLParser(strict=True).parse(page)


def test_the_page_is_valid_html5_self_contained_and_embeds_its_plots(toy_report):
    page = toy_report.html()
    parser = html5lib.HTMLParser(strict=True)
    parser.parse(page)  # strict: raises on the first parse error
    assert parser.errors == []
    lowered = page.lower()
    for forbidden in ("http://", "https://", "<script", "<link", "url(", "@import", "<iframe"):
        assert forbidden not in lowered, forbidden
    plots = sum(len(s.plots) for s in toy_report.runs["toy"])
    assert plots >= 3
    assert len(re.findall(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"', page)) == plots
    assert '<meta name="viewport"' in page and "@media print" in page
    assert "overflow-x: auto" in page  # wide tables scroll inside their box on a phone


def test_every_string_is_escaped():
    evil = '<script>alert("x")</script> & "quotes"'
    section = Section("groups", evil, reason=evil, command=evil, notes=[evil])
    section.figure(evil, evil)
    table = ResultTable([evil, "b"], title=evil)
    table.add(evil, evil)
    section.tables.append(table)
    section.plots.append(Plot("<svg xmlns='a'></svg>", caption=evil))
    page = render_page(evil, {evil: [section]}, notes=[evil], paths={evil: evil})
    assert "<script" not in page and "&lt;script&gt;" in page
    html5lib.HTMLParser(strict=True).parse(page)
    assert 'src="data:image/svg+xml;base64,' in page


def test_figures_show_units_and_rank():
    assert Figure(0.8512, "%", "higher").text() == "85.1 %"
    assert Figure(float("nan"), "%").text() == "-" and Figure("crown").number() is None
    with pytest.raises(ValueError, match="unknown section status"):
        Section("x", "x", status="fine")


def test_several_runs_side_by_side_mark_the_best(runs):
    report = audit([runs["toy"], runs["slabs"]], checks=["groups", "simplicity"], budget_s=BUDGET)
    compared = {s.key: s for s in report.side_by_side}
    table = compared["groups"].tables[0]
    assert list(table.columns) == ["", "toy", "slabs"]
    worst = next(r for r, row in enumerate(table.rows) if row[0] == "worst-group accuracy")
    values = [sections(report, label)["groups"].figures["worst-group accuracy"].value
              for label in ("toy", "slabs")]  # fmt: skip
    best_column = 1 + values.index(max(values))
    assert (worst, best_column) in table.marked
    assert (worst, 3 - best_column) not in table.marked or values[0] == values[1]
    # A figure that ranks nothing (the worst group's name) is never marked.
    name_row = next(r for r, row in enumerate(table.rows) if row[0] == "worst group")
    assert not any(r == name_row for r, _ in table.marked)
    # The simplicity table says which run it does not apply to.
    assert table.rows[-1][0] == "status"
    assert any("toy:" in note for note in compared["simplicity"].notes)
    page = report.html()
    assert "Side by side" in page and "▲" in page
    html5lib.HTMLParser(strict=True).parse(page)
    # A side-by-side section has no status or time of its own: its last row holds the runs'.
    side = page[page.index('id="all-groups"') : page.index('id="run-toy"')]
    assert 'class="status' not in side and " s of " not in side
    own = page[page.index('id="toy-groups"') :]
    assert 'class="status status-ok"' in own and f" s of {BUDGET:g} s" in own


def test_a_folder_of_runs_audits_one_seed_per_entry(runs, tmp_path):
    for method in ("erm", "jtt"):
        for seed in (0, 1):
            shutil.copytree(runs["toy"], tmp_path / "demo" / method / f"seed{seed}")
    chosen, notes = runs_to_audit([tmp_path / "demo"])
    assert chosen == [("erm", tmp_path / "demo/erm/seed0"), ("jtt", tmp_path / "demo/jtt/seed0")]
    assert "4 runs of 2 entries" in notes[0] and "--all-seeds" in notes[0]
    every, _ = runs_to_audit([tmp_path / "demo"], all_seeds=True)
    assert [label for label, _ in every] == ["erm/seed0", "erm/seed1", "jtt/seed0", "jtt/seed1"]


def test_cli_writes_the_page_and_its_json(runs, tmp_path):
    out = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(
        app, ["audit", str(runs["toy"]), "-o", str(out), "--checks", "groups,simplicity",
              "--budget", "20"], env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.is_file() and "report:" in result.output and "not applicable" in result.output
    data = json.loads(out.with_suffix(".json").read_text())
    found = {s["key"]: s for s in data["runs"]["toy"]["sections"]}
    assert found["groups"]["status"] == "ok" and found["simplicity"]["status"] == "not_applicable"
    assert found["groups"]["figures"]["worst-group accuracy"] >= 0
    html5lib.HTMLParser(strict=True).parse(out.read_text())


@pytest.mark.parametrize(
    "options, message",
    [
        (["--checks", "group,robustness"], "unknown check 'group' (did you mean 'groups'?)"),
        (["--budget", "-1"], "--budget must be >= 0"),
        (["-o", "report.pdf"], "--output must end in .html"),
    ],
)
def test_cli_refuses_bad_options_with_the_fix(runs, options, message):
    result = CliRunner().invoke(app, ["audit", str(runs["toy"]), *options],
                                env={"COLUMNS": "300"})  # fmt: skip
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_same_run_same_figures(runs, toy_report):
    again = audit([runs["toy"]], checks=["groups", "robustness"], budget_s=BUDGET)
    for key in ("groups", "robustness"):
        first = sections(toy_report, "toy")[key].to_dict()["figures"]
        assert sections(again, "toy")[key].to_dict()["figures"] == first
