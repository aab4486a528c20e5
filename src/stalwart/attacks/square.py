"""Square Attack under L∞: a score-based black-box attack, the check against gradient masking.

Andriushchenko, Croce, Flammarion and Hein, "Square Attack: a query-efficient black-box
adversarial attack via random search", ECCV 2020 (arXiv 1912.00049).

It reads only the model's logits, never its gradients, so a defence that merely hides its
gradients does not fool it: if Square Attack finds many more adversarial points than PGD does,
PGD's robust accuracy is not to be trusted. The search starts from vertical stripes of ±ε,
then repeatedly redraws a random square window (per channel ±ε) of a side that shrinks on a
fixed schedule, keeping a change only when it lowers the margin ``f_y − max_{j≠y} f_j``.
An example stops once it is misclassified.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from stalwart.attacks.catalog import ATTACKS, AttackInfo
from stalwart.attacks.core import Budget, as_budget
from stalwart.errors import ConfigError


def _margin(logits: Tensor, y: Tensor) -> Tensor:
    true = logits.gather(1, y[:, None])[:, 0]
    other = logits.clone()
    other.scatter_(1, y[:, None], -math.inf)
    return true - other.max(dim=1).values


def _window_share(p_init: float, iteration: int, queries: int) -> float:
    """The share of pixels the window covers: halved at fixed fractions of the budget."""
    it = int(iteration / queries * 10000)
    halvings = sum(it > t for t in (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000))
    return p_init / 2**halvings


@ATTACKS.register("square", info=AttackInfo(norms=("linf",), gradients=False))
@torch.no_grad()
def square_attack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float | None = None,
    queries: int = 1000,
    p_init: float = 0.3,
    lower: float | None = None,
    upper: float | None = None,
    seed: int = 0,
    budget: Budget | None = None,
) -> Tensor:
    """Adversarial inputs within ``eps`` (L∞) of ``x`` found from logits alone.

    Args:
        model: a classifier returning logits (in eval mode).
        x: inputs ``(n, …)``; images ``(n, C, H, W)`` get square windows, other inputs are
            searched as ``(n, 1, 1, d)`` (windows become intervals).
        y: true labels.
        eps: the L∞ budget.
        queries: model evaluations per example (the search's iterations).
        p_init: initial share of the input a window covers (0.3 suits MNIST-sized images).
        lower: smallest valid input value (default 0).
        upper: largest valid input value (default 1).
        seed: seeds the random search.
        budget: ε and range as one L∞ :class:`Budget`, instead of the loose values.

    Raises:
        ConfigError: a budget that is not L∞, or fewer than one query.
    """
    budget = as_budget(budget, eps, None, lower, upper)
    if budget.norm != "linf":
        raise ConfigError(
            f"the square attack is implemented for linf only; got norm {budget.norm!r}"
        )
    if queries < 1:
        raise ConfigError(f"queries must be >= 1 (model evaluations per example); got {queries}")
    eps, lower, upper = budget.eps, budget.lower, budget.upper
    generator = torch.Generator().manual_seed(seed)
    shape = x.shape
    images = x.reshape(len(x), 1, 1, -1) if x.dim() != 4 else x
    n, c, h, w = images.shape

    def rand_sign(*size: int) -> Tensor:
        signs = torch.randint(0, 2, size, generator=generator).to(x.device, x.dtype) * 2 - 1
        return signs * eps

    def logits_of(z: Tensor) -> Tensor:
        return model(z.reshape(-1, *shape[1:]))

    best = (images + rand_sign(n, c, 1, w)).clamp(lower, upper)
    margin = _margin(logits_of(best), y)
    for i in range(queries - 1):
        active = torch.nonzero(margin > 0).flatten()
        if len(active) == 0:
            break
        side = max(int(round(math.sqrt(_window_share(p_init, i, queries) * h * w))), 1)
        side_h, side_w = min(side, h), min(side, w)
        top = int(torch.randint(0, h - side_h + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - side_w + 1, (1,), generator=generator))
        candidate = best[active].clone()
        delta = candidate - images[active]
        delta[:, :, top : top + side_h, left : left + side_w] = rand_sign(len(active), c, 1, 1)
        candidate = (images[active] + delta).clamp(lower, upper)
        new_margin = _margin(logits_of(candidate), y[active])
        better = new_margin < margin[active]
        best[active[better]] = candidate[better]
        margin[active[better]] = new_margin[better]
    return best.reshape(shape)
