"""``kind: testbed``: train a model zoo, evaluate every model on ID and every shift.

The testbed of accuracy on the line (Miller et al., arXiv 2107.04649): many models on one
in-distribution training set, one row per model, one column per evaluation set. The config is
``stalwart.shift.testbed.TestbedConfig``; the zoo format is ``stalwart.shift.zoo``; the folder
format is ``stalwart.shift.testbed_io``. Every unfinished model is one executor task (local
processes by default, Ray with ``--executor ray``); finished models are skipped, so running the
config again resumes, and adding a family to the zoo trains only the new models.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stalwart.errors import DataError
from stalwart.experiments.executors import Executor, LocalExecutor
from stalwart.experiments.kinds import Reporter, register_kind
from stalwart.io import atomic_write_text
from stalwart.report import ResultTable
from stalwart.shift.line import fit_line
from stalwart.shift.testbed import (
    MODELS_DIR,
    TestbedConfig,
    claim_folder,
    load_testbed_splits,
    train_testbed_model,
)
from stalwart.shift.testbed_io import Testbed, is_finished, write_labels

MODELS_CSV = "models.csv"
ACCURACIES_CSV = "accuracies.csv"


def write_tables(root: Path) -> Testbed:
    """``models.csv`` and ``accuracies.csv`` of every finished model in ``root``."""
    import pandas as pd

    testbed = Testbed(root)
    rows = []
    for model in testbed.models:
        info = testbed.info(model)
        rows.append({"model": model, "family": info["family"], "seconds": info["seconds"],
                     "train_examples": info.get("train_examples"), **info["settings"]})  # fmt: skip
    models = pd.DataFrame(rows).set_index("model")
    # Lists (an MLP's hidden widths) as JSON text, so the CSV reads back unambiguously.
    models = models.map(lambda v: json.dumps(v) if isinstance(v, list) else v)
    atomic_write_text(root / MODELS_CSV, models.to_csv())
    atomic_write_text(root / ACCURACIES_CSV, testbed.accuracies().to_csv())
    return testbed


def shift_lines(testbed: Testbed, id_set: str = "test") -> list[dict[str, Any]]:
    """Per shift, the probit line of its accuracy on ``id_set`` accuracy over every model."""
    accuracies = testbed.accuracies()
    lines = []
    for shift in testbed.sets:
        if shift in ("val", "test"):
            continue
        try:
            line = fit_line(accuracies[id_set], accuracies[shift], "probit", bootstrap=0)
        except DataError as error:  # too few models yet, or all equally accurate
            lines.append({"shift": shift, "error": str(error)})
            continue
        lines.append({"shift": shift, "slope": line.slope, "bias": line.bias, "r2": line.r2,
                      "n": line.n, "mean_accuracy": float(accuracies[shift].mean())})  # fmt: skip
    return lines


def family_summary(testbed: Testbed, id_set: str = "test") -> list[dict[str, Any]]:
    """Per model family: the count, ``id_set`` accuracy (least, median, most) and seconds.

    A zoo of weak models then shows before any line is read.
    """
    accuracy = testbed.accuracies()[id_set]
    infos = {model: testbed.info(model) for model in testbed.models}
    found = []
    for family in dict.fromkeys(info["family"] for info in infos.values()):
        mine = [model for model, info in infos.items() if info["family"] == family]
        values = accuracy.loc[mine]
        found.append({"family": family, "models": len(mine), "min": float(values.min()),
                      "median": float(values.median()), "max": float(values.max()),
                      "seconds": sum(float(infos[m]["seconds"]) for m in mine)})  # fmt: skip
    return found


def run_testbed(
    config: TestbedConfig, reporter: Reporter, executor: Executor | None = None
) -> dict[str, Any]:
    """Write ``labels.npz``, train every unfinished model, write the tables; fit the lines."""
    root = claim_folder(config)
    specs = config.models()
    splits = load_testbed_splits(config)
    write_labels(root, {name: ds.y.numpy() for name, ds in splits.evaluation_sets().items()})
    todo = [spec for spec in specs if not is_finished(root / MODELS_DIR / spec.id)]
    reporter.note(
        f"{len(specs) - len(todo)} of {len(specs)} models finished before; training {len(todo)}"
    )
    raw = config.model_dump(mode="json")
    tasks = [(raw, asdict(spec)) for spec in todo]
    for done, (_, (model_id, seconds)) in enumerate(
        (executor or LocalExecutor(config.workers)).map(train_testbed_model, tasks), start=1
    ):
        reporter.note(f"  [{done}/{len(todo)}] {model_id} ({seconds:.1f}s)")
    testbed = write_tables(root)
    return {
        "root": str(root),
        "models": len(specs),
        "trained": len(todo),
        "finished": len(testbed.models),
        "sets": testbed.sets,
        "lines": shift_lines(testbed),
        "families": family_summary(testbed),
    }


def render(config: TestbedConfig, result: dict[str, Any]) -> list[Any]:
    """Models finished, and each shift's probit line (test → shift): slope, bias, R²."""
    table = ResultTable(
        ("shift", "slope", "bias", "R²", "mean acc %"),
        title=f"{config.name}: {result['finished']} models finished in {result['root']} "
        f"(trained now: {result['trained']}); probit lines, test → shift",
    )
    for line in result["lines"]:
        if "error" in line:
            table.add(line["shift"], "—", "—", "—", "—")
            continue
        table.add(
            line["shift"], f"{line['slope']:.3f}", f"{line['bias']:+.3f}", f"{line['r2']:.3f}",
            f"{100 * line['mean_accuracy']:.1f}",
        )  # fmt: skip
    families = ResultTable(
        ("family", "models", "least test acc %", "median", "most", "CPU s"),
        title="the zoo: test accuracy per family",
    )
    for row in result.get("families", []):
        families.add(row["family"], str(row["models"]), f"{100 * row['min']:.1f}",
                     f"{100 * row['median']:.1f}", f"{100 * row['max']:.1f}",
                     f"{row['seconds']:.0f}")  # fmt: skip
    return [families.rich(), table.rich()]


def describe(config: TestbedConfig) -> str:
    """``name: M models on DATA → ROOT``."""
    models = len(config.models())
    return f"[bold]{config.name}[/]: {models} models on {config.data.name} → {config.root()}"


KIND = register_kind(
    "testbed", config=TestbedConfig, run=run_testbed, render=render, describe=describe
)
