"""`stalwart diagnose`: which input block a trained run relies on (simplicity bias, 2006.07710)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

import typer

from stalwart.cli import app, console, friendly_errors, names

SEED_FOLDER = re.compile(r"seed\d+")


def _runs(path: Path) -> list[Path]:
    """``path`` if it is a run with a saved model, else every such run beneath it."""
    from stalwart.errors import DataMissingError
    from stalwart.experiments.store import find_runs

    found = [run for run in find_runs(path) if (run / "checkpoints" / "best.pt").is_file()]
    if not found:
        raise DataMissingError(
            f"{path} holds no trained run (a folder with config.yaml and checkpoints/best.pt); "
            "train one with `stalwart run CONFIG`"
        )
    return found


def _label(run: Path, root: Path) -> str:
    """A run's row: its folder under ``root``, seeds of one entry (``…/seed3``) pooled."""
    if run == root:
        return run.name
    relative = run.relative_to(root)
    if SEED_FOLDER.fullmatch(relative.name):
        # ENTRY/seed3 pools under ENTRY; seed3 directly under the folder asked for, under it.
        return str(relative.parent) if relative.parent != Path(".") else root.name
    return str(relative)


@app.command()
@friendly_errors
def diagnose(
    path: Annotated[Path, typer.Argument(help="A run directory, or a folder of runs.")],
    blocks: Annotated[
        str | None,
        typer.Option(help="Input blocks to randomize, comma-separated (default: the data's)."),
    ] = None,
    split: Annotated[str, typer.Option(help="test or val.")] = "test",
    repeats: Annotated[int, typer.Option(help="Permutations per block, averaged.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the permutations.")] = 0,
    uap_eps: Annotated[
        float | None,
        typer.Option(help="Also find a per-class universal ℓ2 perturbation of this size."),
    ] = None,
    all_groups: Annotated[
        bool,
        typer.Option(
            "--all-groups",
            help="Randomize on every example, not only where every block predicts the label.",
        ),
    ] = False,
    format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Randomize each input block of the test set and see what the model loses.

    For each run: accuracy, worst-group accuracy, and the AUC with each block randomized
    (permuted across test rows; Shah et al., arXiv 2006.07710). A block whose randomization
    drops the AUC to 0.5 is one the model relies on exclusively; one that changes nothing is
    ignored. The blocks are randomized on the examples where every block predicts the label
    (dominoes: the digit agrees with the garment), since on the others a spurious block says
    nothing of the label whether the model reads it or not. Runs of one comparison entry
    (``LABEL/seed0``, ``LABEL/seed1``…) are pooled into mean ± std. Results are cached in each
    run's simplicity.json.
    """
    from stalwart.errors import ConfigError
    from stalwart.experiments.diagnose import diagnose_run
    from stalwart.report import ResultTable, mean_std

    if format not in ("table", "json"):
        raise ConfigError(f"unknown format {format!r}; choose from ['table', 'json']")
    if split not in ("test", "val"):
        raise ConfigError(f"unknown split {split!r}; choose from ['test', 'val']")
    chosen = names(blocks) if blocks else None
    runs = _runs(path)
    rows: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        found = diagnose_run(run, chosen, repeats=repeats, seed=seed, uap_eps=uap_eps,
                             split=split, agreeing=not all_groups)  # fmt: skip
        rows.setdefault(_label(run, path), []).append(found)
    if format == "json":
        typer.echo(json.dumps({label: found for label, found in rows.items()}, indent=2))
        return
    block_names = list(next(iter(rows.values()))[0]["blocks"])
    headers = ["run", "runs", "acc %", "worst group %", "AUC"]
    headers += [f"{b}-randomized AUC" for b in block_names]
    headers += ["UAP acc %", "UAP share"] if uap_eps is not None else []
    table = ResultTable(
        headers,
        title=f"{path}: {split} set, each block permuted across the rows "
        f"{'of every group' if all_groups else 'where every block predicts the label'} "
        f"({repeats} permutation{'s' if repeats > 1 else ''}, seed {seed}); AUC 0.5 = the "
        "model relies on that block alone",
    )

    def cell(values: list[float], scale: float = 1.0, digits: int = 3) -> str:
        stat = mean_std(scale * v for v in values)
        spread = f" ± {stat['std']:.{digits}f}" if len(values) > 1 else ""
        return f"{stat['mean']:.{digits}f}{spread}"

    for label, found in rows.items():
        cells = [label, str(len(found)), cell([f["accuracy"] for f in found], 100, 1),
                 cell([f["worst_group_accuracy"] for f in found], 100, 1),
                 cell([f["report"]["standard"]["auc"] for f in found])]  # fmt: skip
        cells += [cell([f["report"]["randomized"][b]["auc"] for f in found]) for b in block_names]
        if uap_eps is not None:
            simple = found[0]["simple"] or block_names[0]
            cells += [cell([f["uap"]["perturbed_accuracy"] for f in found], 100, 1),
                      f"{simple}: " + cell([f["uap"]["share"][simple] for f in found])]  # fmt: skip
        table.add(*cells)
    console.print(table.rich())
