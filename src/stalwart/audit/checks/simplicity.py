"""Which input blocks the model relies on: randomized AUC per block (simplicity bias).

Shah et al., "The Pitfalls of Simplicity Bias in Neural Networks" (arXiv 2006.07710): each
block the data declares (dominoes: the digit on top and the garment below; slab data: the
simple and the complex coordinates) is permuted across the test examples, and the AUC says
what the model loses. An AUC near 0.5 with a block randomized means the model relies on that
block alone; an unchanged AUC means it ignores it. As ``stalwart diagnose`` does, blocks are
randomized on the examples where every block predicts the label (its defaults: one
permutation, seed 0); this check computes the same figures without writing the run's cache.
"""

from __future__ import annotations

from stalwart.audit.catalog import register_check
from stalwart.audit.context import CheckContext, NotApplicable
from stalwart.audit.target import AuditedRun
from stalwart.report.html import Plot, Section
from stalwart.report.tables import ResultTable


@register_check("simplicity", "Which input blocks the model relies on", order=40)
def simplicity_check(run: AuditedRun, context: CheckContext) -> Section:
    """Standard AUC, and the AUC with each block (and everything but it) randomized."""
    from stalwart import simplicity

    section = context.section
    test = run.splits.test
    if test.blocks is None:
        raise NotApplicable(
            f"the run's data ({run.config.data.name}) declares no input blocks; simplicity "
            "diagnostics need data with named blocks, such as dominoes, colored_mnist, lms or ms"
        )
    dataset = simplicity.agreeing_subset(test)
    context.check_time("randomizing each block")
    report = simplicity.randomized_auc(run.model, dataset, repeats=1, seed=0)
    standard = report.standard.auc
    section.figure("AUC", standard, better="higher")
    drops = {name: standard - s.auc for name, s in report.randomized.items()}
    relied = max(drops, key=drops.get)
    section.figure("relies most on", relied)
    for name, scores in report.randomized.items():
        section.figure(f"AUC, {name} randomized", scores.auc)
    table = ResultTable(["block", "randomized AUC", "all but it randomized AUC", "AUC drop"],
                        title=f"{run.label}: {report.examples} test examples "
                        f"({dataset.name})")  # fmt: skip
    for name in report.randomized:
        table.add(name, f"{report.randomized[name].auc:.3f}",
                  f"{report.complement[name].auc:.3f}", f"{drops[name]:+.3f}",
                  bold=name == relied)  # fmt: skip
    section.tables.append(table)
    simple = test.blocks.simple
    if simple is not None:
        section.notes.append(
            f"The data's simplest predictive block is {simple!r}: a randomized AUC near 0.5 "
            "for it means the model relies on it alone (simplicity bias)."
        )
    section.plots.append(Plot(_bars_png(standard, report), "AUC with each block randomized."))
    section.command = f"stalwart diagnose {run.quoted}"
    return section


def _bars_png(standard: float, report) -> bytes:
    from stalwart.report.plots import figure_png, pyplot

    plt = pyplot()
    names = list(report.randomized)
    figure, axes = plt.subplots(figsize=(5.0, 3.2))
    axes.bar(["none", *names], [standard, *(report.randomized[n].auc for n in names)])
    axes.axhline(0.5, color="#c44", linestyle="--", linewidth=1, label="chance (0.5)")
    axes.set_ylim(0, 1)
    axes.set_xlabel("block randomized")
    axes.set_ylabel("AUC")
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    return figure_png(figure)
