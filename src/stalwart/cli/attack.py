"""`stalwart attack`: clean and robust accuracy of a trained run, per group."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stalwart.cli import app, console, friendly_errors, run_split


@app.command()
@friendly_errors
def attack(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `stalwart run`.")],
    eps: Annotated[float, typer.Option(help="The budget ε, in the data's units.")],
    norm: Annotated[str, typer.Option(help="linf or l2.")] = "linf",
    attack_name: Annotated[
        list[str] | None, typer.Option("--attack", help="pgd, fgsm and/or square (repeatable).")
    ] = None,
    steps: Annotated[int, typer.Option(help="PGD steps per restart.")] = 40,
    restarts: Annotated[int, typer.Option(help="PGD random restarts.")] = 1,
    queries: Annotated[int, typer.Option(help="Square Attack queries per example.")] = 1000,
    split: Annotated[
        str, typer.Option(help="The evaluation set: test, val, or an extra.")
    ] = "test",
    lower: Annotated[float, typer.Option(help="Smallest valid input value.")] = 0.0,
    upper: Annotated[float, typer.Option(help="Largest valid input value.")] = 1.0,
    examples: Annotated[
        int | None, typer.Option(help="Attack only the first N examples (default: all).")
    ] = None,
) -> None:
    """Clean and robust accuracy, per group, of a trained run's selected model."""
    from stalwart.attacks import Budget, attack_names, check_attack_settings, robust_accuracy
    from stalwart.errors import ConfigError
    from stalwart.report import group_table

    # Every option is checked before the run is loaded, so a slip fails in milliseconds: the
    # names, the budget, then whether each attack implements the norm.
    attack_names(attack_name or ["pgd"])
    budget = Budget(eps, norm, lower, upper)
    names = attack_names(attack_name or ["pgd"], norm)
    check_attack_settings(steps=steps, restarts=restarts, queries=queries)
    if examples is not None and examples < 1:
        raise ConfigError(f"--examples must be >= 1 (the number of examples); got {examples}")
    config, dataset, model = run_split(run_dir, split)
    if examples is not None and examples < len(dataset):
        import torch

        dataset = dataset.subset(torch.arange(examples))
    result = robust_accuracy(model, dataset, attack=names, budget=budget, steps=steps,
                             restarts=restarts, queries=queries)  # fmt: skip
    title = (f"{config.name}: {split} ({len(dataset)} examples), {'+'.join(result.attacks)} "
             f"{norm} eps {eps}, "
             f"{steps} steps × {restarts} restarts")  # fmt: skip
    console.print(group_table({"clean": result.clean, "robust": result.robust}, title))
