"""Compare training methods on clean and adversarially robust accuracy, over seeds.

The experiment of the RST paper's Table 1 (Raghunathan et al., arXiv 2002.10716): standard
training, PGD adversarial training, TRADES and robust self-training on the same labelled set,
each attacked after training with the same PGD budget. Training goes through a comparison
(``stalwart.experiments.kinds.compare``): same runs, same directories, same reuse of finished runs.
Robust accuracy is the pointwise worst case over attacks and restarts
(:func:`stalwart.attacks.robust_accuracy`) on the first ``examples`` test points.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from pydantic import Field

from stalwart.attacks import attack_names, robust_accuracy
from stalwart.attacks.pgd import check_budget
from stalwart.config import StrictModel
from stalwart.errors import ConfigError
from stalwart.experiments.executors import Executor, Job
from stalwart.experiments.kinds import Reporter, register_kind
from stalwart.experiments.kinds.compare import CompareConfig, compare, expand
from stalwart.experiments.kinds.compare import describe as compare_describe
from stalwart.experiments.run import RunSummary, load_run
from stalwart.io import atomic_write_text, write_json
from stalwart.report import ResultTable, mean_std, percent_cell


class AttackConfig(StrictModel):
    """The evaluation attack: a budget, the attacks, and how hard they try."""

    eps: float
    norm: Literal["linf", "l2"] = "linf"
    attacks: list[str] = Field(default=["pgd"], min_length=1)
    steps: int = Field(40, ge=1)
    restarts: int = Field(5, ge=1)
    step_size: float | None = Field(None, gt=0)
    queries: int = Field(1000, ge=1, description="Square Attack queries per example")
    lower: float = 0.0
    upper: float = 1.0
    examples: int | None = Field(1000, ge=1, description="first test points attacked")


class RobustnessConfig(CompareConfig):
    """A comparison whose runs are also attacked after training (``attack:``)."""

    kind: Literal["robustness"]  # type: ignore[assignment]
    name: str = "robustness"
    attack: AttackConfig

    def validate_runs(self) -> None:
        """Check the attack budget and every method entry before anything runs."""
        check_budget(self.attack.eps, self.attack.norm, self.attack.lower, self.attack.upper)
        check_attack_names(self.attack)
        super().validate_runs()


def attack_run(run_dir, attack: AttackConfig) -> dict[str, float]:
    """Clean and robust test accuracy of one finished run's selected model."""
    _, splits, model = load_run(run_dir)
    test = splits.test
    if attack.examples is not None and attack.examples < len(test):
        test = test.subset(torch.arange(attack.examples))
    result = robust_accuracy(
        model, test, attack=attack.attacks, norm=attack.norm, eps=attack.eps,
        steps=attack.steps, step_size=attack.step_size, restarts=attack.restarts,
        lower=attack.lower, upper=attack.upper, queries=attack.queries,
    )  # fmt: skip
    return {"clean": result.clean.accuracy, "robust": result.robust.accuracy, "n": len(test)}


def robustness(
    config: RobustnessConfig,
    on_done: Callable[[Job, RunSummary], None] | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Train every method × seed, attack each, write ``robustness.json`` and ``.md``."""
    compare(config, on_done=on_done, executor=executor)
    jobs = [job for wave in expand(config) for job in wave]
    methods = {}
    for label in config.methods:
        scores = [
            attack_run(job.config.run_dir(), config.attack) for job in jobs if job.label == label
        ]
        methods[label] = {
            "seeds": len(scores),
            "clean": mean_std(s["clean"] for s in scores),
            "robust": mean_std(s["robust"] for s in scores),
            "per_seed": scores,
        }
    table = {"attack": config.attack.model_dump(), "methods": methods}
    write_json(config.root() / "robustness.json", table)
    text = f"Attack: {describe_attack(table['attack'])}.\n\n" + result_table(table).markdown()
    atomic_write_text(config.root() / "robustness.md", text)
    return table


def result_table(table: dict[str, Any], title: str = "") -> ResultTable:
    """Methods as rows: clean and robust test accuracy (mean ± std over seeds)."""
    out = ResultTable(("method", "clean %", "robust %", "seeds"), title=title)
    for label, row in table["methods"].items():
        out.add(label, percent_cell(row["clean"]), percent_cell(row["robust"]), str(row["seeds"]))
    return out


def describe_attack(attack: dict[str, Any]) -> str:
    """One line naming the evaluation budget."""
    return (
        f"{'+'.join(attack['attacks'])} {attack['norm']} ε={attack['eps']}, {attack['steps']} "
        f"steps × {attack['restarts']} restarts, first {attack['examples']} test points"
    )


def check_attack_names(attack: AttackConfig) -> None:
    """Reject an unknown attack, or one without this norm, before training starts."""
    try:
        attack_names(attack.attacks, attack.norm)
    except ConfigError as error:
        raise ConfigError(f"attack.attacks: {error}") from None


def run_robustness(
    config: RobustnessConfig, reporter: Reporter, executor: Executor | None = None
) -> dict[str, Any]:
    """The kind's run function: :func:`robustness`, reporting each finished run."""
    return robustness(config, on_done=reporter.run_finished, executor=executor)


def render(config: RobustnessConfig, table: dict[str, Any]) -> list[Any]:
    """The clean/robust table, titled with the attack."""
    title = (
        f"{config.name}: test accuracy, mean ± std over seeds; robust under "
        f"{describe_attack(table['attack'])}"
    )
    return [result_table(table, title).rich()]


KIND = register_kind(
    "robustness", config=RobustnessConfig, run=run_robustness, render=render,
    describe=compare_describe,
)  # fmt: skip
