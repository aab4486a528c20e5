"""Per-group and worst-group test accuracy of a run's selected model, with its group table.

The model is evaluated afresh on the test set (``stalwart.engine.evaluate``); the figures are
compared with the run's ``summary.json``, which was written from the same model, so that a
checkpoint changed after training shows up here.
"""

from __future__ import annotations

import json

from stalwart.audit.catalog import register_check
from stalwart.audit.context import CheckContext
from stalwart.audit.target import AuditedRun
from stalwart.report.html import Plot, Section

TOLERANCE = 1e-6
"""Largest difference from summary.json read as the same figure (float round trips)."""


@register_check("groups", "Per-group and worst-group accuracy", order=10)
def groups(run: AuditedRun, context: CheckContext) -> Section:
    """Average, weighted and worst-group test accuracy, one row per group, a bar per group."""
    from stalwart.engine import evaluate
    from stalwart.report import group_result_table
    from stalwart.report.plots import figure_png, per_group_figure

    section = context.section
    splits = run.splits
    context.check_time("evaluating the test set")
    metrics = evaluate(run.model, splits.test, weights_from=splits.train)
    section.figure("test accuracy", metrics.accuracy, "%", "higher")
    section.figure("worst-group accuracy", metrics.worst_group_accuracy, "%", "higher")
    section.figure("worst group", metrics.worst_group)
    section.figure("average − worst group", metrics.accuracy - metrics.worst_group_accuracy,
                   "%", "lower")  # fmt: skip
    section.figure("weighted accuracy", metrics.weighted_accuracy, "%", "higher")
    section.tables.append(group_result_table({"test": metrics}, f"{run.label}: test set"))
    context.check_time("drawing the per-group bars")
    figure = per_group_figure(
        list(metrics.group_names),
        {run.label: [{"mean": a, "std": 0.0} for a in metrics.group_accuracy]},
        title=f"{run.label}: per-group test accuracy",
    )
    section.plots.append(Plot(figure_png(figure), "Test accuracy of each group."))
    section.command = f"stalwart runs {run.quoted}"
    section.notes += _against_summary(run, metrics)
    return section


def _against_summary(run: AuditedRun, metrics) -> list[str]:
    """A note when the run is unfinished, or when its summary disagrees with the model."""
    if not run.finished:
        return ["The run has not finished: this is its best model so far (no summary.json)."]
    try:
        stored = json.loads((run.path / "summary.json").read_text())["metrics"]["test"]
        recorded = float(stored["worst_group_accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        return ["The run's summary.json cannot be read; the figures are the model's own."]
    if abs(recorded - metrics.worst_group_accuracy) > TOLERANCE:
        return [
            f"summary.json records a worst-group test accuracy of {100 * recorded:.1f} %, the "
            f"saved model gives {100 * metrics.worst_group_accuracy:.1f} %: the checkpoint "
            "changed after training (or the data did)."
        ]
    return ["The figures match the run's summary.json."]
