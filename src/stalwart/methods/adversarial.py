"""Adversarial training: PGD adversarial training and TRADES, as losses.

- ``pgd_at`` (Madry et al., ICLR 2018, arXiv 1706.06083): the cross-entropy at the PGD point,
  ``CE(f(x'), y)`` with ``x' = PGD(x, y)`` inside the ε-ball.
- ``trades`` (Zhang et al., ICML 2019, arXiv 1901.08573): ``CE(f(x), y) + β·KL(f(x) ‖ f(x'))``,
  where ``x'`` maximises the KL term itself, starting from ``x + 0.001·N(0, I)`` and taking
  sign-gradient steps projected onto the L∞ ball and the input range, as the reference code does.

Both inner maximisations are calls to the attack core (``stalwart.attacks.core``). The inner
maximisation runs with the model in eval mode (batch-norm statistics are not
updated by adversarial points) and the gradient of the outer loss flows only through the
model's outputs, never through the attack. Inputs are in the data's own units: ``lower`` and
``upper`` bound them, and ``eps`` is checked against that range.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stalwart.attacks.core import (
    Budget,
    TradesKL,
    evaluation_mode,
    gaussian_start,
    projected_gradient,
    sign_step,
    trades_kl,
)
from stalwart.attacks.pgd import pgd
from stalwart.data.core import Batch, GroupedDataset
from stalwart.engine.method import Method
from stalwart.errors import ConfigError
from stalwart.methods.catalog import register_method

__all__ = ["TRADES", "PGDAdversarialTraining", "pgd_at", "trades", "trades_kl"]


class PGDAdversarialTraining(Method):
    """Cross-entropy at the PGD point (Madry et al.)."""

    data_parallel = "mean"

    def __init__(self, eps: float, steps: int, step_size: float, norm: str, lower: float,
                 upper: float, clean_weight: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        self.budget = Budget(eps, norm, lower, upper)
        self.steps, self.step_size = steps, step_size
        self.clean_weight = clean_weight

    def adversarial(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """PGD points for ``(x, y)``, from a fresh random start drawn from the run's seed.

        Every step runs (no early stopping), and examples the model already gets wrong are
        left where they are.
        """
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        return pgd(model, x, y, seed=seed, budget=self.budget, steps=self.steps,
                   step_size=self.step_size, early_stop=False)  # fmt: skip

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """``(1 − w)·CE(f(x'), y) + w·CE(f(x), y)``: ``x'`` the PGD point, ``w`` clean_weight."""
        robust = F.cross_entropy(model(self.adversarial(model, batch.x, batch.y)), batch.y)
        if self.clean_weight == 0:
            return robust
        clean = F.cross_entropy(model(batch.x), batch.y)
        return (1 - self.clean_weight) * robust + self.clean_weight * clean


class TRADES(Method):
    """Clean cross-entropy plus β times the KL divergence to the worst nearby point."""

    data_parallel = "mean"

    def __init__(self, eps: float, steps: int, step_size: float, beta: float, lower: float,
                 upper: float) -> None:  # fmt: skip
        super().__init__()
        self.budget = Budget(eps, "linf", lower, upper)
        self.steps, self.step_size, self.beta = steps, step_size, beta

    def adversarial(self, model: nn.Module, x: Tensor) -> Tensor:
        """Points in the L∞ ball around ``x`` that maximise the KL divergence from ``f(x)``.

        The search starts from ``x + 0.001·N(0, I)`` drawn from torch's global generator (the
        reference's start) and takes sign-gradient steps.
        """
        with evaluation_mode(model):
            with torch.no_grad():
                clean = model(x)
            found = projected_gradient(
                model, x, TradesKL(clean), self.budget.projection(), steps=self.steps,
                step_size=self.step_size, step_rule=sign_step, start=gaussian_start(0.001),
            )  # fmt: skip
        return found.points

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """``CE(f(x), y) + β·KL(f(x) ‖ f(x'))``."""
        adversarial = self.adversarial(model, batch.x)
        clean_logits = model(batch.x)
        return F.cross_entropy(clean_logits, batch.y) + self.beta * trades_kl(
            clean_logits, model(adversarial)
        )


def _checked(eps: float, steps: int, step_size: float | None, norm: str, lower: float,
             upper: float) -> float:  # fmt: skip
    budget = Budget(eps, norm, lower, upper)
    return step_size if step_size is not None else budget.step_size(steps)


@register_method("pgd_at", group_labels="no")
def pgd_at(
    train: GroupedDataset,
    *,
    eps: float = 0.1,
    steps: int = 10,
    step_size: float | None = None,
    norm: str = "linf",
    lower: float = 0.0,
    upper: float = 1.0,
    clean_weight: float = 0.0,
) -> PGDAdversarialTraining:
    """PGD adversarial training with an ε-ball of ``norm`` (default 10 steps of 2.5·ε/10).

    ``clean_weight`` mixes in the clean loss, ``(1 − w)·CE(f(x'), y) + w·CE(f(x), y)``; the RST
    paper's adversarial-training baseline uses ``w = 0.5``.
    """
    alpha = _checked(eps, steps, step_size, norm, lower, upper)
    if not 0.0 <= clean_weight <= 1.0:
        raise ConfigError(f"method 'pgd_at': clean_weight must lie in [0, 1]; got {clean_weight}")
    return PGDAdversarialTraining(eps, steps, alpha, norm, lower, upper, clean_weight)


@register_method("trades", group_labels="no")
def trades(
    train: GroupedDataset,
    *,
    eps: float = 0.1,
    steps: int = 10,
    step_size: float | None = None,
    beta: float = 6.0,
    lower: float = 0.0,
    upper: float = 1.0,
) -> TRADES:
    """TRADES with an L∞ ball (the reference's β = 6 by default)."""
    alpha = _checked(eps, steps, step_size, "linf", lower, upper)
    return TRADES(eps, steps, alpha, beta, lower, upper)
