"""Robust accuracy: an example counts only if no attack, and no restart, changes its label.

Robustness is the pointwise worst case over every attack asked for: each example is attacked
by each attack (and each of its restarts) and is robust only if all of them fail. Results are
reported per group, like every other evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from stalwart.attacks.pgd import check_budget, fgsm, pgd
from stalwart.attacks.square import square_attack
from stalwart.data.core import GroupedDataset
from stalwart.data.loader import iterate_batches
from stalwart.errors import ConfigError, closest
from stalwart.metrics.group import GroupMetrics, group_metrics

ATTACKS = ("fgsm", "pgd", "square")


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
    norm: str = "linf",
    eps: float,
    steps: int = 40,
    step_size: float | None = None,
    restarts: int = 1,
    lower: float = 0.0,
    upper: float = 1.0,
    batch_size: int = 512,
    seed: int = 0,
    queries: int = 1000,
) -> RobustEvaluation:
    """Clean and robust accuracy (overall and per group) of ``model`` on ``dataset``.

    Args:
        model: a classifier returning logits, with its normalisation inside.
        dataset: inputs in ``[lower, upper]``.
        attack: ``"pgd"``, ``"fgsm"``, ``"square"`` (black-box, L∞ only) or a list of them
            (worst case over all).
        norm: ``"linf"`` or ``"l2"``.
        eps: the budget ε in the data's units.
        steps: PGD steps per restart.
        step_size: PGD step; default ``2.5·ε/steps``.
        restarts: PGD random restarts.
        lower: smallest valid input value.
        upper: largest valid input value.
        batch_size: examples attacked at once.
        seed: seeds PGD's random starts and Square Attack's search.
        queries: Square Attack's model evaluations per example.

    Raises:
        ConfigError: an unknown attack or norm, ε < 0 or beyond the input range, inputs
            outside ``[lower, upper]``, or a model without input gradients.
    """
    names = (attack,) if isinstance(attack, str) else tuple(attack)
    for name in names:
        if name not in ATTACKS:
            raise ConfigError(
                f"unknown attack {name!r}{closest(name, ATTACKS)}; choose from {list(ATTACKS)}"
            )
    check_budget(eps, norm, lower, upper)
    if "square" in names and norm != "linf":
        raise ConfigError(f"the square attack is implemented for linf only; got norm {norm!r}")
    if dataset.x.min() < lower or dataset.x.max() > upper:
        raise ConfigError(
            f"inputs of {dataset.name} lie in [{dataset.x.min():.3g}, {dataset.x.max():.3g}], "
            f"outside the valid range [{lower}, {upper}]; pass the data's own lower and upper"
        )
    budget = dict(eps=eps, norm=norm, lower=lower, upper=upper)
    pgd_settings = dict(steps=steps, step_size=step_size, restarts=restarts, seed=seed)
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
            for name in names:
                if name == "fgsm":
                    adversarial = fgsm(model, x, y, **budget)
                elif name == "square":
                    adversarial = square_attack(model, x, y, eps=eps, queries=queries,
                                                lower=lower, upper=upper, seed=seed)  # fmt: skip
                else:
                    adversarial = pgd(model, x, y, **budget, **pgd_settings)
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
        metrics(clean_predictions), metrics(robust_predictions), eps, norm, names
    )
