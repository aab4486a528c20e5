"""Robust accuracy under PGD at a few ε, and the checks against gradient masking.

PGD (Madry et al., arXiv 1706.06083) under L∞ at ε = 1 %, 3 % and 10 % of the input range, on
the first test examples, as many as the budget allows: a probe times PGD on a few examples
first and sizes the rest from it. With time left, the gradient-masking checks of Athalye et
al. (arXiv 1802.00420) and Carlini et al. (arXiv 1902.06705) run at the middle ε on a subset
(``stalwart.attacks.sanity.gradient_masking_checks``): robust accuracy must fall as ε grows and
reach 0 at the full range, more steps must not help the model, and a black-box attack
(Square) must not find many more adversarial points than PGD.
"""

from __future__ import annotations

import math
import time

import torch

from stalwart.audit.catalog import register_check
from stalwart.audit.context import CheckContext
from stalwart.audit.target import AuditedRun, range_options
from stalwart.report.html import Plot, Section
from stalwart.report.stats import percent
from stalwart.report.tables import ResultTable

EPS_FRACTIONS = (0.01, 0.03, 0.1)
"""The budgets ε, as fractions of the input range (0.01, 0.03, 0.1 for images in [0, 1])."""
STEPS = 20
"""PGD steps (one restart) per ε."""
PROBE = 16
"""Examples the timing probe attacks."""
MIN_EXAMPLES = 16
"""Fewest examples worth a robust accuracy; below, the probe's own figure stands."""
SWEEP_SHARE = 0.6
"""Share of the budget the ε sweep may plan for; the rest goes to the masking checks."""
MASKING_COST = 40
"""The masking checks cost about this many PGD-20 runs per example (ε curve, 5× steps with
5 restarts, Square with ``QUERIES`` queries)."""
QUERIES = 300
"""Square Attack queries per example in the masking checks."""
MASKING_EXAMPLES = 100
"""The most examples the masking checks attack."""


def budgets(lower: float, upper: float) -> list[float]:
    """The ε of the sweep for inputs in ``[lower, upper]``, rounded to 3 significant digits."""
    return [float(f"{f * (upper - lower):.3g}") for f in EPS_FRACTIONS]


@register_check("robustness", "Robust accuracy under PGD", order=20)
def robustness(run: AuditedRun, context: CheckContext) -> Section:
    """Clean and PGD robust accuracy (and worst-group robust accuracy) at a few ε."""
    from stalwart.attacks import robust_accuracy

    section = context.section
    test = run.splits.test
    lower, upper = run.input_range()
    grid = budgets(lower, upper)
    trained = run.trained_eps()
    if trained is not None:  # a robust run is attacked at the ε it was trained for, too
        grid = sorted({*grid, trained[0]})
    settings = dict(steps=STEPS, restarts=1, lower=lower, upper=upper, seed=0)

    context.check_time("timing PGD on a few examples")
    probe = min(PROBE, len(test))
    started = time.perf_counter()
    robust_accuracy(run.model, _first(test, probe), eps=grid[0], **settings)
    per_example = (time.perf_counter() - started) / probe
    planned = SWEEP_SHARE * context.left() / (len(grid) * per_example)
    cap = min(context.settings.attack_examples, len(test))
    # Never fewer than the probe attacked: that much is known to fit.
    n = cap if math.isinf(planned) else min(cap, max(int(planned), probe))
    subset = _first(test, n)

    table = ResultTable(["ε (L∞)", "robust acc %", "robust worst group %", "examples"],
                        title=f"{run.label}: PGD-{STEPS}, first {n} test examples")  # fmt: skip
    section.tables.append(table)
    section.notes.append(
        f"PGD-{STEPS} (L∞, one restart, seed 0) on the first {n} of {len(test)} test examples, "
        f"inputs kept in [{lower:g}, {upper:g}]; ε = {', '.join(f'{e:g}' for e in grid)} "
        f"({', '.join(f'{100 * f:g} %' for f in EPS_FRACTIONS)} of that range"
        + (f"; and {trained[0]:g}, the ε {trained[1]} trained for)." if trained else ").")
    )
    curve: dict[float, float] = {}
    commands = []
    for eps in grid:
        context.check_time(f"attacking at ε = {eps:g}")
        result = robust_accuracy(run.model, subset, eps=eps, **settings)
        if not curve:
            curve[0.0] = result.clean.accuracy
            section.figure("clean accuracy", result.clean.accuracy, "%", "higher")
        curve[eps] = result.robust.accuracy
        section.figure(f"robust accuracy, ε = {eps:g}", result.robust.accuracy, "%", "higher")
        table.add(f"{eps:g}", percent(result.robust.accuracy),
                  percent(result.robust.worst_group_accuracy), str(n))  # fmt: skip
        commands.append(
            f"stalwart attack {run.quoted} --eps {eps:g} --steps {STEPS} --restarts 1 "
            f"--examples {n}{range_options(lower, upper)}"
        )
        section.command = "\n".join(commands)
    section.plots.append(Plot(_curve_png(curve, run.label), "Robust accuracy against ε."))
    _masking(run, context, subset, budgets(lower, upper)[1], per_example, settings)
    return section


def _first(dataset, n: int):
    return dataset.subset(torch.arange(n))


def _masking(run, context, subset, eps, per_example, settings) -> None:
    """The gradient-masking checks at ``eps`` on as many examples as the time left allows."""
    from stalwart.attacks.sanity import gradient_masking_checks

    section = context.section
    fits = 0.8 * context.left() / (MASKING_COST * per_example)
    m = min(MASKING_EXAMPLES, len(subset), int(min(fits, 1e9)))
    if m < MIN_EXAMPLES and m < len(subset):
        section.notes.append(
            "The gradient-masking checks did not fit in the time left "
            f"(about {MASKING_COST * per_example * MIN_EXAMPLES:.0f} s for {MIN_EXAMPLES} "
            "examples); give the check a larger budget (--budget)."
        )
        return
    context.check_time("running the gradient-masking checks")
    report = gradient_masking_checks(
        run.model, _first(subset, m), eps=eps, steps=STEPS, queries=QUERIES,
        lower=settings["lower"], upper=settings["upper"], seed=0,
    )  # fmt: skip
    passed = sum(report.checks.values())
    section.figure("gradient-masking checks passed", f"{passed} of {len(report.checks)}")
    table = ResultTable(
        ["check", "passed"], title=f"Gradient-masking checks at ε = {eps:g}, first {m} examples"
    )
    for name, ok in report.checks.items():
        table.add(name, "yes" if ok else "NO", bold=not ok)
    section.tables.append(table)
    curve = ", ".join(f"{e:g}: {percent(a)} %" for e, a in report.eps_curve.items())
    square, strongest = report.black_box["square"], report.black_box["pgd (strongest)"]
    section.notes.append(
        f"Masking checks: robust accuracy by ε {curve}; Square Attack ({QUERIES} queries) "
        f"{percent(square)} % against PGD's {percent(strongest)} %."
    )


def _curve_png(curve: dict[float, float], label: str) -> bytes:
    from stalwart.report.plots import figure_png, pyplot

    plt = pyplot()
    figure, axes = plt.subplots(figsize=(5.0, 3.2))
    axes.plot(list(curve), [100 * a for a in curve.values()], marker="o", label=label)
    axes.set_xlabel("ε (L∞)")
    axes.set_ylabel("robust accuracy (%)")
    axes.set_ylim(0, 100)
    axes.grid(alpha=0.3)
    axes.set_title("Robust accuracy under PGD")
    figure.tight_layout()
    return figure_png(figure)
