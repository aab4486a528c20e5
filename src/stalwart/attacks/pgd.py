"""Projected gradient descent and FGSM, under L∞ and L2 budgets.

Madry, Makelov, Schmidt, Tsipras and Vladu, "Towards Deep Learning Models Resistant to
Adversarial Attacks", ICLR 2018 (arXiv 1706.06083); FGSM: Goodfellow, Shlens and Szegedy,
ICLR 2015 (arXiv 1412.6572).

Both are the projected-gradient core (``core.py``) with the cross-entropy as objective: each
step moves along its gradient (its sign under L∞, its direction under L2), then projects back
onto the ε-ball around the clean input and onto the valid input range ``[lower, upper]``.
Models carry their own input normalisation, so attacks work in the data's own units.
Per-example early stopping freezes an example once it is misclassified (or, targeted, once it
reaches its target): it keeps its first successful perturbation, and a batch stops when every
example has succeeded. Restarts begin from fresh random points; an example counts as broken if
any restart breaks it.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stalwart.attacks.catalog import ATTACKS, AttackInfo
from stalwart.attacks.core import (
    NORMS,
    Budget,
    CrossEntropy,
    as_budget,
    evaluation_mode,
    projected_gradient,
    uniform_ball_start,
)

__all__ = ["NORMS", "check_budget", "fgsm", "pgd"]


def check_budget(eps: float, norm: str, lower: float, upper: float) -> None:
    """Reject a negative ε, an ε beyond the input range, or an unsupported norm.

    The checks of :class:`Budget`, for callers that hold loose values.
    """
    Budget(eps, norm, lower, upper)


@ATTACKS.register("pgd", info=AttackInfo(norms=NORMS, gradients=True))
def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float | None = None,
    norm: str | None = None,
    steps: int = 40,
    step_size: float | None = None,
    restarts: int = 1,
    random_start: bool = True,
    target: Tensor | None = None,
    lower: float | None = None,
    upper: float | None = None,
    seed: int = 0,
    early_stop: bool = True,
    budget: Budget | None = None,
) -> Tensor:
    """Adversarial versions of ``x`` within an ε-ball, found by projected gradient steps.

    Args:
        model: a classifier returning logits (put in eval mode during the attack).
        x: clean inputs, inside ``[lower, upper]``.
        y: their labels.
        eps: the budget ε, in the data's units.
        norm: ``"linf"`` (default) or ``"l2"``.
        steps: gradient steps per restart.
        step_size: the step α; default ``2.5·ε/steps`` (Madry et al.).
        restarts: independent random starts; an example is broken if any breaks it.
        random_start: start each restart at a random point of the ball (else at ``x``).
        target: if given, a targeted attack towards these labels.
        lower: smallest valid input value (default 0).
        upper: largest valid input value (default 1).
        seed: seeds the random starts.
        early_stop: stop updating an example once it is broken (else run every step).
        budget: ε, norm and range as one :class:`Budget`, instead of the four loose values.

    Returns:
        For each example, the first successful perturbation found, else the last point of the
        last restart.
    """
    budget = as_budget(budget, eps, norm, lower, upper)
    alpha = step_size if step_size is not None else budget.step_size(steps)
    generator = torch.Generator().manual_seed(seed)
    start = uniform_ball_start(budget.eps, budget.norm, generator) if random_start else None
    with evaluation_mode(model):
        found = projected_gradient(
            model, x.detach(), CrossEntropy(y, target), budget.projection(),
            steps=steps, step_size=alpha, step_rule=budget.step_rule(), start=start,
            restarts=restarts, early_stop=early_stop,
        )  # fmt: skip
    return found.points


@ATTACKS.register("fgsm", info=AttackInfo(norms=NORMS, gradients=True))
def fgsm(
    model: nn.Module, x: Tensor, y: Tensor, *, eps: float | None = None, norm: str | None = None,
    lower: float | None = None, upper: float | None = None, budget: Budget | None = None,
) -> Tensor:  # fmt: skip
    """One gradient step of size ε from ``x`` (the fast gradient sign method under L∞)."""
    budget = as_budget(budget, eps, norm, lower, upper)
    return pgd(model, x, y, steps=1, step_size=budget.eps, restarts=1, random_start=False,
               budget=budget)  # fmt: skip
