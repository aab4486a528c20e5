"""Adversarial training: PGD adversarial training and TRADES, as losses.

- ``pgd_at`` (Madry et al., ICLR 2018, arXiv 1706.06083): the cross-entropy at the PGD point,
  ``CE(f(x'), y)`` with ``x' = PGD(x, y)`` inside the ε-ball.
- ``trades`` (Zhang et al., ICML 2019, arXiv 1901.08573): ``CE(f(x), y) + β·KL(f(x) ‖ f(x'))``,
  where ``x'`` maximises the KL term itself, starting from ``x + 0.001·N(0, I)`` and taking
  sign-gradient steps projected onto the L∞ ball and the input range, as the reference code does.

The inner maximisation runs with the model in eval mode (batch-norm statistics are not
updated by adversarial points) and the gradient of the outer loss flows only through the
model's outputs, never through the attack. Inputs are in the data's own units: ``lower`` and
``upper`` bound them, and ``eps`` is checked against that range.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stalwart.attacks.pgd import check_budget, pgd, project
from stalwart.data.core import Batch, GroupedDataset
from stalwart.engine.method import Method
from stalwart.errors import ConfigError
from stalwart.methods.catalog import register_method


class PGDAdversarialTraining(Method):
    """Cross-entropy at the PGD point (Madry et al.)."""

    def __init__(self, eps: float, steps: int, step_size: float, norm: str, lower: float,
                 upper: float, clean_weight: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        self.budget = dict(eps=eps, steps=steps, step_size=step_size, norm=norm, lower=lower,
                           upper=upper, early_stop=False)  # fmt: skip
        self.clean_weight = clean_weight

    def adversarial(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """PGD points for ``(x, y)``, from a fresh random start drawn from the run's seed."""
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        return pgd(model, x, y, seed=seed, **self.budget)

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """``(1 − w)·CE(f(x'), y) + w·CE(f(x), y)``: ``x'`` the PGD point, ``w`` clean_weight."""
        robust = F.cross_entropy(model(self.adversarial(model, batch.x, batch.y)), batch.y)
        if self.clean_weight == 0:
            return robust
        clean = F.cross_entropy(model(batch.x), batch.y)
        return (1 - self.clean_weight) * robust + self.clean_weight * clean


def trades_kl(clean_logits: Tensor, adversarial_logits: Tensor) -> Tensor:
    """KL(p_clean ‖ p_adversarial) averaged over the batch (the TRADES regulariser)."""
    return F.kl_div(
        F.log_softmax(adversarial_logits, dim=1), F.softmax(clean_logits, dim=1),
        reduction="batchmean",
    )  # fmt: skip


class TRADES(Method):
    """Clean cross-entropy plus β times the KL divergence to the worst nearby point."""

    def __init__(self, eps: float, steps: int, step_size: float, beta: float, lower: float,
                 upper: float) -> None:  # fmt: skip
        super().__init__()
        self.eps, self.steps, self.step_size, self.beta = eps, steps, step_size, beta
        self.lower, self.upper = lower, upper

    def adversarial(self, model: nn.Module, x: Tensor) -> Tensor:
        """Points in the L∞ ball around ``x`` that maximise the KL divergence from ``f(x)``."""
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                clean = model(x)
            delta = project(
                0.001 * torch.randn_like(x), x, self.eps, "linf", self.lower, self.upper
            )
            for _ in range(self.steps):
                delta.requires_grad_(True)
                divergence = trades_kl(clean, model(x + delta))
                (gradient,) = torch.autograd.grad(divergence, delta)
                delta = project(delta.detach() + self.step_size * gradient.sign(), x, self.eps,
                                "linf", self.lower, self.upper)  # fmt: skip
        finally:
            model.train(was_training)
        return (x + delta).detach()

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """``CE(f(x), y) + β·KL(f(x) ‖ f(x'))``."""
        adversarial = self.adversarial(model, batch.x)
        clean_logits = model(batch.x)
        return F.cross_entropy(clean_logits, batch.y) + self.beta * trades_kl(
            clean_logits, model(adversarial)
        )


def _checked(eps: float, steps: int, step_size: float | None, norm: str, lower: float,
             upper: float) -> float:  # fmt: skip
    check_budget(eps, norm, lower, upper)
    return step_size if step_size is not None else 2.5 * eps / max(steps, 1)


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
