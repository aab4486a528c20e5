"""Adam with a cosine-annealed step, for the dual variables of α-CROWN and SDP-FO.

Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015 (arXiv 1412.6980);
the schedule is SGDR's cosine annealing without restarts (Loshchilov and Hutter, ICLR 2017,
arXiv 1608.03983). ``torch.optim`` computes the same update, but constructing its first
optimiser imports ``torch._dynamo``, seconds of start-up that a verification time-out cannot
interrupt; the update is a few tensor operations, so it is written here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


class Adam:
    """Adam on ``params`` (tensors with ``requires_grad``), updated in place by :meth:`step`.

    Args:
        params: the tensors to optimise.
        lr: the step size (the largest a coordinate moves per step, roughly).
        steps: length of the cosine schedule; ``None`` keeps ``lr`` fixed.
        final: the schedule's last step size, as a fraction of ``lr``.
        betas: decay rates of the first and second moment estimates.
        eps: added to the root of the second moment.
    """

    def __init__(
        self,
        params: Sequence[Tensor],
        lr: float,
        *,
        steps: int | None = None,
        final: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.lr, self.steps, self.final = lr, steps, final
        self.betas, self.eps = betas, eps
        self.count = 0
        self.first = [torch.zeros_like(p) for p in self.params]
        self.second = [torch.zeros_like(p) for p in self.params]

    def rate(self) -> float:
        """The step size of the next step."""
        if self.steps is None:
            return self.lr
        low = self.lr * self.final
        progress = min(self.count, self.steps) / max(self.steps, 1)
        return low + (self.lr - low) * (1 + math.cos(math.pi * progress)) / 2

    def keep(self, params: Sequence[Tensor], rows: Tensor) -> None:
        """Go on with ``params``: the old parameters' ``rows``, with their moment estimates.

        ``rows`` is a mask or positions along the first dimension: a batch of independent
        problems that drops its finished ones.
        """
        self.params = list(params)
        self.first = [m[rows] for m in self.first]
        self.second = [v[rows] for v in self.second]

    def zero_grad(self) -> None:
        """Drop the gradients of every parameter."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update from the parameters' ``.grad`` (minimising)."""
        rate = self.rate()
        self.count += 1
        b1, b2 = self.betas
        correction1 = 1 - b1**self.count
        correction2 = 1 - b2**self.count
        for p, m, v in zip(self.params, self.first, self.second, strict=True):
            if p.grad is None:
                continue
            m.mul_(b1).add_(p.grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            denominator = (v / correction2).sqrt_().add_(self.eps)
            p.addcdiv_(m, denominator, value=-rate / correction1)
