"""Typo robustness of a text model: clean, attacked and exactly certified accuracy (RobEn).

Jones et al., "Robust Encodings" (arXiv 2005.01229): a trained cell of a ``kind: roben`` run
is measured on test examples three ways, as the run itself measured it (``results.json``):

- clean accuracy;
- accuracy under the beam-search typo attack (``stalwart.text.attack``), an upper bound on
  robust accuracy;
- exact certified robust accuracy over the whole typo family (``stalwart.text.certify``):
  right on every typo of every word. A model on raw tokens reaches so many encodings that an
  example past the cap counts as not robust (``capped``); a bag of tokens is certified exactly,
  with no cap (the additive bound).

Beside them, the commonest class's share of the examples: a model that gives (nearly) every
example one class is as robust as a constant, and the section says so.

Certified ≤ attacked ≤ clean must hold example by example: an example certified robust that
the attack breaks is an unsound certificate, and the section fails saying so. With the data
package, accuracy on real misspellings (codespell's list) is measured too: one model call.

The examples are those ``--examples N`` picks (``stalwart.text.experiment.evaluation_subset``:
a fixed draw, the same for every seed and defense), as many as fit the budget: a first
measurement on a few examples times the attack and the certificate, and larger ones follow
while they fit (``next_examples``); the figures are those of the largest, each measurement
whole, so that its command reproduces it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

import numpy as np

from stalwart.audit.catalog import register_check
from stalwart.audit.context import CheckContext
from stalwart.audit.target import AuditedRun
from stalwart.report.html import Plot, Section
from stalwart.report.stats import percent
from stalwart.report.tables import ResultTable

PROBE = 8
"""Examples of the first measurement, which times the attack and the certificate."""
PLAN_SHARE = 0.8
"""Share of the time left a measurement may plan for (the rest: the margin of the estimate)."""
MIN_GROWTH = 1.5
"""A larger measurement is worth starting only with this many times the examples (or all)."""
DEFAULT_CAP = 10_000
"""``stalwart text certify``'s default ``--cap``."""
NEAR_CONSTANT = 0.02
"""Clean accuracy this close to the commonest class's share gets a note: near a constant."""
TOLERANCE = 1e-9
"""Largest difference from results.json read as the same figure."""


def next_examples(
    n: int, seconds: tuple[float, float], left: float, cap: int, words: Callable[[int], int]
) -> int | None:
    """The examples of the next measurement, after ``n`` took ``seconds``; None to stop.

    Args:
        n: the examples just measured.
        seconds: what attacking them and certifying them took.
        left: seconds left of the budget.
        cap: the most examples to measure.
        words: the distinct words of the first ``k`` examples, for any ``k``.

    The attack's cost grows with the examples; the certificate's with the distinct words (each
    word's typos and their encodings are computed once per call), which grow more slowly. The
    next measurement is the largest whose projected cost fits ``PLAN_SHARE`` of ``left``, when
    it has ``MIN_GROWTH`` times the examples or reaches ``cap``.
    """
    if n >= cap:
        return None
    attack, certificate = seconds
    known = max(words(n), 1)

    def cost(k: int) -> float:
        return attack * k / n + certificate * words(k) / known

    if math.isinf(left) or cost(cap) <= PLAN_SHARE * left:
        return cap
    low, high = n, cap  # cost(low) fits (it was measured), cost(high) does not
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if cost(middle) <= PLAN_SHARE * left else (low, middle)
    return low if low >= MIN_GROWTH * n else None


@register_check("typos", "Typo robustness (RobEn)", order=60, applies_to=("text",))
def typos(run: AuditedRun, context: CheckContext) -> Section:
    """Clean, attacked and certified accuracy over the typo family, and on real misspellings."""
    from stalwart.text.experiment import evaluation_subset

    section = context.section
    cell, classifier, test = run.config, run.model, run.splits.test
    settings = {"cap": DEFAULT_CAP, "beam_width": 5, "budget": None, **cell.evaluate}
    own = settings.get("examples") or len(test)
    cap = min(len(test), own, context.settings.typo_examples)

    # Measure a few examples, then as many as the last measurement says fit, until none more
    # do: every figure recorded is a whole measurement, reproduced by the command beside it.
    n: int | None = min(PROBE, cap)
    measured = 0
    while n is not None:
        subset = evaluation_subset(test, n)
        attacked, certificate, seconds = _measure(classifier, subset, settings, cell.seed, context)
        measured = n
        _record(section, run, n, attacked, certificate, settings)
        n = next_examples(n, seconds, context.left(), cap, lambda k: _words(test, k))
    family = classifier.encoder.family
    words = "every word" if settings["budget"] is None else f"at most {settings['budget']} words"
    section.notes.append(
        f"{measured} of {len(test)} test examples (those `--examples {measured}` picks: a fixed "
        f"draw, the same for every seed and defense); typo family {family.name}, {words} "
        f"perturbed; beam search of width {settings['beam_width']} (seed {cell.seed}); "
        f"certificate capped at {settings['cap']:,} encodings per example."
    )
    if measured < cap:
        section.notes.append(
            f"Measuring all {cap} examples did not fit the budget; give the check more "
            "(--budget) to measure them all."
        )
    try:
        _check_order(attacked, certificate)
    except AssertionError as error:
        section.status = "failed"
        section.reason = str(error)
    bars = {"clean": float(attacked.correct.mean()), "attacked": attacked.attacked_accuracy,
            "certified": certificate.robust_accuracy}  # fmt: skip
    codespell = _codespell(classifier, subset, cell.seed, context)
    if codespell is not None:
        bars["codespell"] = codespell
        section.figure("codespell accuracy", codespell, "%", "higher")
        section.tables[-1].add("real misspellings (codespell)", percent(codespell))
    section.notes += _against_constant(section, classifier, subset, bars["clean"])
    if certificate.n_capped:
        section.notes.append(
            f"{certificate.n_capped} examples reach more than {settings['cap']:,} encodings and "
            "count as not robust: the certified figure is a lower bound."
        )
    section.notes += _against_results(run, measured, bars)
    section.plots.append(Plot(_bars_png(bars, measured), "Clean, attacked and certified accuracy."))
    return section


def _record(section: Section, run: AuditedRun, n: int, attacked, certificate, settings) -> None:
    """One whole measurement's figures, table and command (replacing a smaller one's)."""
    clean = float(attacked.correct.mean())
    method = "additive (exact)" if certificate.exact_additive else "enumeration"
    section.figure("clean accuracy", clean, "%", "higher")
    section.figure("accuracy under the typo attack", attacked.attacked_accuracy, "%", "higher")
    section.figure("certified accuracy", certificate.robust_accuracy, "%", "higher")
    section.figure("capped examples", certificate.n_capped, better="lower")
    section.figure("certificate", method)
    section.figure("examples", n)
    table = ResultTable(["", "accuracy %"], title=f"{run.label}: {n} test examples")
    table.add("clean", percent(clean))
    table.add("beam-search typo attack (upper bound)", percent(attacked.attacked_accuracy))
    table.add(f"certified: {method}", percent(certificate.robust_accuracy), bold=True)
    section.tables = [table]
    section.command = _commands(run, n, settings, run.config.seed)


def _against_constant(section: Section, classifier, split, clean: float) -> list[str]:
    """The commonest class's share of ``split`` beside the model, and notes if it is near one.

    A model that gives (nearly) every example one class is as typo-robust as a constant
    classifier: its attacked and certified figures then say nothing about the encoding.
    """
    from stalwart.text.certify import majority_share, predicted_classes

    majority = majority_share(split)
    section.figure("commonest class", majority, "%")
    section.tables[-1].add("predicting the commonest class", percent(majority))
    predicted = predicted_classes(classifier, split)
    top = np.bincount(predicted).argmax()
    name = split.class_names[top] if split.class_names else str(top)
    notes = []
    if (predicted == top).all():
        notes.append(
            f"The model gives every one of the {len(split)} examples the class {name!r}: its "
            "robustness is that of a constant classifier, whatever it reads."
        )
    elif clean - majority < NEAR_CONSTANT:
        share = float(np.mean(predicted == top))
        notes.append(
            f"Clean accuracy ({100 * clean:.1f}%) is within {100 * NEAR_CONSTANT:.0f} points of "
            f"predicting the commonest class ({100 * majority:.1f}%); {share:.0%} of the "
            f"examples get {name!r}. Read the robustness figures as those of a model that "
            "hardly depends on its input."
        )
    return notes


def _measure(classifier, split, settings: dict, seed: int, context: CheckContext):
    """The attack's and the certificate's results on ``split``, as the CLI computes them."""
    from stalwart.text.attack import beam_search_attack
    from stalwart.text.certify import certify

    context.check_time(f"attacking {len(split)} examples")
    started = time.perf_counter()
    attacked = beam_search_attack(classifier, split, budget=settings["budget"],
                                  beam_width=settings["beam_width"], seed=seed)  # fmt: skip
    attack_seconds = time.perf_counter() - started
    context.check_time(f"certifying {len(split)} examples")
    started = time.perf_counter()
    certificate = certify(classifier, split, max_words=settings["budget"], cap=settings["cap"])
    return attacked, certificate, (attack_seconds, time.perf_counter() - started)


def _words(test, k: int) -> int:
    """Distinct words of the ``k`` examples ``--examples k`` picks."""
    from stalwart.text.certify import split_tokens
    from stalwart.text.experiment import evaluation_subset

    return len({t for tokens in split_tokens(evaluation_subset(test, k)) for t in tokens})


def _check_order(attacked, certificate) -> None:
    """Certified ≤ attacked ≤ clean, example by example (AssertionError otherwise)."""
    from stalwart.text.attack import check_bound

    check_bound(certificate.robust, attacked.survived)
    if (attacked.survived & ~attacked.correct).any():
        raise AssertionError("the attack counts an example it misclassified clean as surviving")
    if not np.array_equal(certificate.correct, attacked.correct):
        raise AssertionError(
            "the certificate and the attack disagree on which clean examples are right; "
            "please report this"
        )


def _codespell(classifier, split, seed: int, context: CheckContext) -> float | None:
    """Accuracy with real misspellings swapped in (None, with a note, without the data)."""
    from stalwart.data.sources.codespell import codespell_misspellings
    from stalwart.errors import DataMissingError
    from stalwart.text.certify import predicted_classes
    from stalwart.text.perturb import real_misspellings

    context.check_time("measuring real misspellings")
    try:
        misspellings = codespell_misspellings()
    except DataMissingError as error:
        context.section.notes.append(f"No codespell accuracy: {error}")
        return None
    misspelled, _ = real_misspellings(split, misspellings, seed=seed)
    return float((predicted_classes(classifier, misspelled) == misspelled.y).mean())


def _commands(run: AuditedRun, n: int, settings: dict, seed: int) -> str:
    budget = "" if settings["budget"] is None else f" --budget {settings['budget']}"
    cap = "" if settings["cap"] == DEFAULT_CAP else f" --cap {settings['cap']}"
    return (
        f"stalwart text attack {run.quoted} --examples {n} --beam-width "
        f"{settings['beam_width']} --seed {seed}{budget}\n"
        f"stalwart text certify {run.quoted} --examples {n}{cap}{budget}"
    )


def _against_results(run: AuditedRun, n: int, found: dict[str, float]) -> list[str]:
    """A note comparing with the cell's ``results.json`` when it measured the same examples."""
    try:
        stored = json.loads((run.path / "results.json").read_text())
    except (OSError, ValueError):
        return ["The cell has no readable results.json to compare with."]
    if stored.get("examples") != n:
        return []
    names = {"clean": "clean_accuracy", "attacked": "attacked_accuracy",
             "certified": "certified_accuracy", "codespell": "codespell_accuracy"}  # fmt: skip
    differ = [
        f"{key} {100 * float(stored[names[key]]):.1f} % there, {100 * value:.1f} % here"
        for key, value in found.items()
        if names[key] in stored and abs(float(stored[names[key]]) - value) > TOLERANCE
    ]
    if differ:
        return [
            "results.json measured the same examples and differs ("
            + "; ".join(differ)
            + "): the classifier or the data changed after the run."
        ]
    return ["The figures match the cell's results.json (same examples)."]


def _bars_png(bars: dict[str, float], n: int) -> bytes:
    from stalwart.report.plots import accuracy_bars_png

    colors = {"clean": "#888", "attacked": "#c44", "certified": "#2a7", "codespell": "#47a"}
    return accuracy_bars_png(
        bars, colors=[colors[k] for k in bars], title=f"Typo robustness, {n} test examples"
    )
