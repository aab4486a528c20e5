"""Robust accuracy: an example counts only if no attack, and no restart, changes its label.

Robustness is the pointwise worst case over every attack asked for: each example is attacked
by each attack (and each of its restarts) and is robust only if all of them fail. Results are
reported per group, like every other evaluation.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from stalwart.attacks.catalog import ATTACKS
from stalwart.attacks.core import Budget, as_budget
from stalwart.errors import ConfigError
from stalwart.metrics.group import GroupMetrics, group_metrics

if TYPE_CHECKING:  # the data package is imported on use: `import stalwart.attacks` stays light
    from stalwart.data.core import GroupedDataset


def check_attack_settings(
    *, steps: int = 1, restarts: int = 1, queries: int = 1, step_size: float | None = None
) -> None:
    """Reject settings outside their range.

    At least one step, restart and query; a step size, if given, positive and finite.

    Raises:
        ConfigError: naming the setting, its range and the value received.
    """
    for name, value, meaning in (
        ("steps", steps, "PGD steps per restart"),
        ("restarts", restarts, "PGD restarts"),
        ("queries", queries, "Square queries per example"),
    ):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1 ({meaning}); got {value!r}")
    if step_size is not None and not (step_size > 0 and math.isfinite(step_size)):
        raise ConfigError(f"step_size must be > 0 and finite; got {step_size}")


def attack_names(attack: str | Sequence[str], norm: str | None = None) -> tuple[str, ...]:
    """The attacks asked for, each checked against the registry and the norm.

    A wrong name lists the registered ones; given a ``norm``, an attack that does not implement
    it is refused.
    """
    names = (attack,) if isinstance(attack, str) else tuple(attack)
    if not names:
        raise ConfigError(f"name at least one attack; choose from {ATTACKS.names()}")
    for name in names:
        supported = ATTACKS.info(name).norms
        if norm is not None and norm not in supported:
            raise ConfigError(
                f"the {name} attack is implemented for {' and '.join(supported)} only; "
                f"got norm {norm!r}"
            )
    return names


@dataclass(frozen=True)
class RobustEvaluation:
    """Clean and robust metrics of one model on one dataset under one budget."""

    clean: GroupMetrics
    robust: GroupMetrics
    eps: float
    norm: str
    attacks: tuple[str, ...]

    @property
    def accuracy(self) -> float:
        """Robust accuracy: the fraction of examples no attack changes and that are correct."""
        return self.robust.accuracy

    def __float__(self) -> float:
        return self.accuracy


def robust_accuracy(
    model: nn.Module,
    dataset: GroupedDataset,
    *,
    attack: str | Sequence[str] = "pgd",
    norm: str | None = None,
    eps: float | None = None,
    steps: int = 40,
    step_size: float | None = None,
    restarts: int = 1,
    lower: float | None = None,
    upper: float | None = None,
    batch_size: int = 512,
    seed: int = 0,
    queries: int = 1000,
    budget: Budget | None = None,
) -> RobustEvaluation:
    """Clean and robust accuracy (overall and per group) of ``model`` on ``dataset``.

    Args:
        model: a classifier returning logits, with its normalisation inside.
        dataset: inputs in ``[lower, upper]``.
        attack: a name in ``ATTACKS`` (``"pgd"``, ``"fgsm"``, ``"square"``: black-box, L∞
            only) or a list of them (worst case over all).
        norm: ``"linf"`` (default) or ``"l2"``.
        eps: the budget ε in the data's units.
        steps: PGD steps per restart.
        step_size: PGD step; default ``2.5·ε/steps``.
        restarts: PGD random restarts.
        lower: smallest valid input value (default 0).
        upper: largest valid input value (default 1).
        batch_size: examples attacked at once.
        seed: seeds PGD's random starts and Square Attack's search.
        queries: Square Attack's model evaluations per example.
        budget: ε, norm and range as one :class:`Budget`, instead of the four loose values.

    Raises:
        ConfigError: an unknown attack or norm, ε < 0 or beyond the input range, a setting
            out of its range, inputs outside ``[lower, upper]``, or a model without input
            gradients.
    """
    from stalwart.data.loader import iterate_batches

    attack_names(attack)  # a wrong name first, then the budget, then what fits together
    budget = as_budget(budget, eps, norm, lower, upper)
    names = attack_names(attack, budget.norm)
    check_attack_settings(steps=steps, restarts=restarts, queries=queries, step_size=step_size)
    if dataset.x.min() < budget.lower or dataset.x.max() > budget.upper:
        raise ConfigError(
            f"inputs of {dataset.name} lie in [{dataset.x.min():.3g}, {dataset.x.max():.3g}], "
            f"outside the valid range [{budget.lower}, {budget.upper}]; pass the data's own "
            "lower and upper"
        )
    # Each attack gets the settings it takes (its keyword parameters), so a new registered
    # attack needs no change here.
    offered = dict(budget=budget, steps=steps, step_size=step_size, restarts=restarts,
                   seed=seed, queries=queries)  # fmt: skip
    attacks = {
        name: (ATTACKS.get(name), {key: value for key, value in offered.items()
                                   if key in ATTACKS.parameters(name)})
        for name in names
    }  # fmt: skip
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    clean_predictions, robust_predictions = [], []
    try:
        for batch in iterate_batches(dataset, batch_size):
            x, y = batch.x.to(device), batch.y.to(device)
            with torch.no_grad():
                clean = model(x).argmax(dim=1)
            worst = clean.clone()
            for run, settings in attacks.values():
                adversarial = run(model, x, y, **settings)
                with torch.no_grad():
                    predicted = model(adversarial).argmax(dim=1)
                # Keep, per example, a wrong prediction if any attack found one.
                worst = torch.where((worst == y) & (predicted != y), predicted, worst)
            clean_predictions.append(clean.cpu())
            robust_predictions.append(worst.cpu())
    finally:
        model.train(was_training)

    def metrics(predictions: list[torch.Tensor]) -> GroupMetrics:
        return group_metrics(
            torch.cat(predictions), dataset.y.cpu(), dataset.group.cpu(), dataset.group_names
        )

    return RobustEvaluation(
        metrics(clean_predictions), metrics(robust_predictions), budget.eps, budget.norm, names
    )
