"""Certified accuracy under L∞ with the tightest bound that finishes within the budget.

Bounds are tried from the loosest and cheapest to the tightest (IBP, Gowal et al., arXiv
1810.12715; CROWN, Zhang et al., arXiv 1811.00866; the LP relaxation, Wong & Kolter, arXiv
1711.00851): each is first timed on one point the model holds against PGD, and a bound joins
the evaluation only when the projected time of every chosen bound on the planned points still
fits the budget. The evaluation itself is ``stalwart.certify.accuracy.certified_accuracy``,
exactly what ``stalwart certify`` prints, with PGD accuracy beside it as the upper bound.
"""

from __future__ import annotations

import time

import torch

from stalwart.audit.catalog import register_check
from stalwart.audit.context import CheckContext, NotApplicable, OutOfTime
from stalwart.audit.target import AuditedRun, range_options
from stalwart.report.html import Plot, Section
from stalwart.report.stats import percent
from stalwart.report.tables import ResultTable

BOUNDS = ("ibp", "crown", "lp")
"""Bounds in the order tried: loosest (cheapest) first."""
EPS_FRACTION = 0.01
"""ε as a fraction of the input range (the robustness check's smallest ε)."""
PGD_PROBE = 4
"""Points the PGD timing probe attacks (40 steps × 5 restarts, as ``stalwart certify``)."""
MIN_POINTS = 20
"""A tighter bound joins only if the chosen bounds still fit this many points (or all)."""
PLAN_SHARE = 0.8
"""Share of the time left the evaluation plans for (the rest: the margin of estimates)."""


@register_check("certified", "Certified accuracy", order=30)
def certified(run: AuditedRun, context: CheckContext) -> Section:
    """Clean, PGD and certified accuracy, tightest bound first.

    At ε = 1 % of the input range, or at the ε the run was trained for (adversarial or
    certified training: ``AuditedRun.trained_eps``).
    """
    from stalwart.attacks.pgd import pgd
    from stalwart.certify.accuracy import certified_accuracy
    from stalwart.certify.bounds import as_network, bound
    from stalwart.certify.spec import LinfBall
    from stalwart.errors import ConfigError

    section = context.section
    test = run.splits.test
    lower, upper = run.input_range()
    eps = float(f"{EPS_FRACTION * (upper - lower):.3g}")
    trained = run.trained_eps()
    if trained is not None:  # a robust or certified run is certified at the ε it trained for
        eps = trained[0]
    try:
        net = as_network(run.model, tuple(test.x.shape[1:])).detach(dtype=torch.float64)
    except ConfigError as error:
        raise NotApplicable(f"the bounds do not support this model: {error}") from None

    # Time PGD (which every point pays) and find a point the model holds, to time the bounds.
    context.check_time("timing PGD")
    k = min(PGD_PROBE, len(test))
    x, y = test.x[:k], test.y[:k]
    started = time.perf_counter()
    adversarial = pgd(run.model, x, y, eps=eps, steps=40, restarts=5, lower=lower, upper=upper)
    pgd_per_point = (time.perf_counter() - started) / k
    with torch.no_grad():
        held = (run.model(x).argmax(1) == y) & (run.model(adversarial).argmax(1) == y)
    held_share = float(held.float().mean())
    chosen: list[str] = []
    seconds: dict[str, float] = {}
    cap = min(context.settings.certify_examples, len(test))
    if held.any():
        i = int(held.nonzero()[0])
        box = LinfBall(x[i], eps, lower, upper)
        for name in BOUNDS:
            context.check_time(f"timing the {name} bound")
            started = time.perf_counter()
            bound(name, net, box, margin_of=int(y[i]))
            seconds[name] = time.perf_counter() - started
            # IBP needs one point to be worth it; a tighter bound must leave room for more.
            wanted = 1 if not chosen else min(MIN_POINTS, cap)
            if _plan(seconds, pgd_per_point, held_share, context, len(test)) < wanted:
                del seconds[name]
                break
            chosen.append(name)
    else:
        chosen = ["ibp"]  # no point to time bounds on: PGD breaks them all, IBP costs nothing
        seconds["ibp"] = 0.0
    if not chosen:
        raise OutOfTime("timing the bounds: not even IBP on its points fits the budget")
    n = min(cap, max(1, _plan(seconds, pgd_per_point, held_share, context, len(test))))
    section.notes.append(
        f"L∞ ε = {eps:g} ("
        + (
            f"the ε {trained[1]} trained for"
            if trained
            else f"{100 * EPS_FRACTION:g} % of the input range [{lower:g}, {upper:g}]"
        )
        + ") on "
        f"the first {n} of {len(test)} test points; bounds tried loosest first "
        f"({', '.join(BOUNDS)}); within the budget: {', '.join(chosen)}."
    )
    section.command = (
        f"stalwart certify {run.quoted} --eps {eps:g} --bounds {','.join(chosen)} "
        f"--examples {n}{range_options(lower, upper)}"
    )
    context.check_time(f"certifying {n} points with {', '.join(chosen)}")
    table = certified_accuracy(run.model, test, eps=eps, bounds=chosen, examples=n, lower=lower,
                               upper=upper)  # fmt: skip
    tightest = chosen[-1]
    section.figure("clean accuracy", table["clean"], "%", "higher")
    # ε in the names: side by side, runs certified at different ε are not ranked together.
    section.figure(f"PGD accuracy, ε = {eps:g} (upper bound)", table["pgd"], "%", "higher")
    section.figure(f"certified accuracy, ε = {eps:g}", table["bounds"][tightest]["certified"],
                   "%", "higher")  # fmt: skip
    section.figure("tightest bound", tightest)
    section.figure("ε (L∞)", eps)
    rows = ResultTable(["", "accuracy %", "s / point"],
                       title=f"{run.label}: first {n} test points, L∞ ε = {eps:g}")  # fmt: skip
    rows.add("clean", percent(table["clean"]), "")
    rows.add("PGD (upper bound)", percent(table["pgd"]), "")
    for name, row in table["bounds"].items():
        rows.add(f"certified: {name}", percent(row["certified"]),
                 f"{row['seconds_per_point']:.3f}", bold=name == tightest)  # fmt: skip
    section.tables.append(rows)
    if table["contradictions"]:
        section.status = "failed"
        section.reason = (
            f"{table['contradictions']} points certified by IBP were broken by PGD: a "
            "soundness bug; please report it"
        )
    section.plots.append(Plot(_bars_png(table), "Clean, PGD and certified accuracy."))
    return section


def _plan(
    seconds: dict[str, float], pgd_per_point: float, held_share: float, context: CheckContext,
    available: int,
) -> int:  # fmt: skip
    """How many points fit the time left with the bounds timed so far (all if no budget)."""
    per_point = pgd_per_point + held_share * sum(seconds.values())
    left = PLAN_SHARE * context.left()
    if left == float("inf"):
        return available
    return int(left / max(per_point, 1e-9))


def _bars_png(table: dict) -> bytes:
    from stalwart.report.plots import accuracy_bars_png

    bars = {"clean": table["clean"], "PGD": table["pgd"]}
    bars |= {f"cert. {name}": r["certified"] for name, r in table["bounds"].items()}
    colors = ["#888", "#c44"] + ["#2a7"] * len(table["bounds"])
    title = f"L∞ ε = {table['eps']:g}, {table['examples']} points"
    return accuracy_bars_png(bars, colors=colors, title=title)
