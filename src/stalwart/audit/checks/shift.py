"""Predicted accuracy under the testbed's shifts, without their labels, and the line behind it.

Agreement on the line (Baek et al., arXiv 2206.13089): the run's model joins a testbed's zoo
of models trained on the same data (``kind: testbed``); over every pair of models, agreement
on the shifted set against agreement on the labelled ID set lies on a line (probit axes), which
needs no labels; applied to the run's own ID accuracy it predicts its accuracy under the shift
(ALine-S). Accuracy on the line itself is Miller et al., arXiv 2107.04649. The check applies
only with a testbed: ``--testbed``, or ``runs/testbed_<data name>`` when that folder exists.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from stalwart.audit.catalog import register_check
from stalwart.audit.context import CheckContext, NotApplicable
from stalwart.audit.target import AuditedRun
from stalwart.report.html import Plot, Section
from stalwart.report.stats import percent
from stalwart.report.tables import ResultTable

ID_SET = "val"
"""The labelled in-distribution set the predictor reads (``stalwart shift predict``'s default)."""
PREDICTOR = "aline-s"


def find_testbed(run: AuditedRun, context: CheckContext) -> Path:
    """The testbed to use, or ``NotApplicable`` saying how to get one."""
    if context.settings.testbed is not None:
        return Path(context.settings.testbed)
    data = run.config.data.name
    guess = Path("runs") / f"testbed_{data}"
    if (guess / "labels.npz").is_file():
        return guess
    raise NotApplicable(
        f"no testbed on {data} was given (nor found at {guess}); train one with a "
        f"`kind: testbed` config on the same data (e.g. `stalwart run "
        f"examples/testbed_fashion_mnist.yaml`) and pass it with --testbed"
    )


@register_check("shift", "Predicted accuracy under shift", order=50)
def shift(run: AuditedRun, context: CheckContext) -> Section:
    """ALine-S's predicted accuracy on each shift of the testbed, with its agreement line."""
    from stalwart.shift.predictors import PREDICTORS, fit_agreement_line
    from stalwart.shift.testbed import run_pool
    from stalwart.shift.testbed_io import Testbed

    section = context.section
    testbed = find_testbed(run, context)
    shifts = [name for name in Testbed(testbed).sets if name not in ("val", "test")]
    if not shifts:
        raise NotApplicable(f"the testbed {testbed} has no shifted set (data: shifts: [...])")
    table = ResultTable(
        ["shift", "predicted acc %", "agreement line slope", "bias", "testbed models"],
        title=f"{run.label}: ALine-S on {testbed} (labels of the shifts not read; probit axes)",
    )
    section.tables.append(table)
    predicted: dict[str, float] = {}
    commands = []
    for name in shifts:
        context.check_time(f"predicting accuracy on {name}")
        pool, row_name = run_pool(run.path, testbed, name, ID_SET)
        row = pool.names.index(row_name)
        if not predicted:
            section.figure(f"{ID_SET} accuracy (ID)", float(pool.id_accuracy()[row]), "%", "higher")
        line = fit_agreement_line(pool)
        predicted[name] = float(PREDICTORS.build(PREDICTOR)(pool)[row])
        section.figure(f"predicted accuracy, {name}", predicted[name], "%", "higher")
        table.add(name, percent(predicted[name]), f"{line.slope:.3f}", f"{line.bias:+.3f}",
                  str(len(pool) - 1))  # fmt: skip
        commands.append(
            f"stalwart shift predict {run.quoted} --testbed {shlex.quote(str(testbed))} "
            f"--unlabelled {shlex.quote(name)} --method {PREDICTOR}"
        )
        section.command = "\n".join(commands)
    section.plots.append(Plot(_bars_png(predicted), "Predicted accuracy on each shift."))
    return section


def _bars_png(predicted: dict[str, float]) -> bytes:
    from stalwart.report.plots import accuracy_bars_png

    return accuracy_bars_png(predicted, ylabel="predicted accuracy (%)")
