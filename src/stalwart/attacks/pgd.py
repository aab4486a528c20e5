"""Projected gradient descent and FGSM, under L∞ and L2 budgets.

Madry, Makelov, Schmidt, Tsipras and Vladu, "Towards Deep Learning Models Resistant to
Adversarial Attacks", ICLR 2018 (arXiv 1706.06083); FGSM: Goodfellow, Shlens and Szegedy,
ICLR 2015 (arXiv 1412.6572).

Each step moves along the gradient of the cross-entropy (its sign under L∞, its direction
under L2), then projects back onto the ε-ball around the clean input and onto the valid input
range ``[lower, upper]``. Models carry their own input normalisation, so attacks work in the
data's own units. Per-example early stopping freezes an example once it is misclassified
(or, targeted, once it reaches its target): it keeps its first successful perturbation, and a
batch stops when every example has succeeded. Restarts begin from fresh random points; an
example counts as broken if any restart breaks it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stalwart.errors import ConfigError

NORMS = ("linf", "l2")


def check_budget(eps: float, norm: str, lower: float, upper: float) -> None:
    """Reject a negative ε, an ε beyond the input range, or an unsupported norm."""
    if norm not in NORMS:
        raise ConfigError(f"norm must be one of {list(NORMS)}; got {norm!r}")
    if not lower < upper:
        raise ConfigError(f"the input range needs lower < upper; got [{lower}, {upper}]")
    if eps < 0 or math.isnan(eps):
        raise ConfigError(f"eps must be >= 0; got {eps}")
    # Under L∞ an ε of the whole range already allows any input; under L2 the diameter does.
    largest = (upper - lower) if norm == "linf" else math.inf
    if eps > largest:
        raise ConfigError(
            f"eps = {eps} exceeds the input range [{lower}, {upper}] (at most {largest} under "
            f"{norm}); inputs are attacked in the data's own units"
        )


def _per_example_norm(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1).view(-1, *[1] * (t.dim() - 1))


def project(delta: Tensor, x: Tensor, eps: float, norm: str, lower: float, upper: float) -> Tensor:
    """The perturbation nearest ``delta`` with ``x + δ`` in the ε-ball and the input range."""
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / _per_example_norm(delta).clamp(min=1e-12)).clamp(max=1.0)
    # Clamping into the box only shrinks each coordinate of δ, so the ball constraint holds.
    return (x + delta).clamp(lower, upper) - x


def _random_start(x: Tensor, eps: float, norm: str, generator: torch.Generator) -> Tensor:
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    if norm == "linf":
        return (2 * noise - 1) * eps
    direction = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    direction = direction / _per_example_norm(direction).clamp(min=1e-12)
    radius = torch.rand(len(x), generator=generator, dtype=x.dtype).to(x.device)
    return direction * eps * radius.view(-1, *[1] * (x.dim() - 1))


def _succeeded(logits: Tensor, y: Tensor, target: Tensor | None) -> Tensor:
    predictions = logits.argmax(dim=1)
    return predictions == target if target is not None else predictions != y


def _input_gradient(model: nn.Module, x: Tensor, y: Tensor, target: Tensor | None) -> Tensor:
    x = x.detach().requires_grad_(True)
    logits = model(x)
    # Untargeted: climb the loss of the true label; targeted: descend that of the target.
    loss = F.cross_entropy(logits, y) if target is None else -F.cross_entropy(logits, target)
    if not loss.requires_grad:
        raise ConfigError(
            "the model's output does not depend differentiably on its input (no gradient); "
            "gradient attacks need a differentiable model"
        )
    (gradient,) = torch.autograd.grad(loss, x, allow_unused=True)
    if gradient is None:
        raise ConfigError("the model's output does not depend on its input; nothing to attack")
    return gradient


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 40,
    step_size: float | None = None,
    restarts: int = 1,
    random_start: bool = True,
    target: Tensor | None = None,
    lower: float = 0.0,
    upper: float = 1.0,
    seed: int = 0,
    early_stop: bool = True,
) -> Tensor:
    """Adversarial versions of ``x`` within an ε-ball, found by projected gradient steps.

    Args:
        model: a classifier returning logits (put in eval mode during the attack).
        x: clean inputs, inside ``[lower, upper]``.
        y: their labels.
        eps: the budget ε, in the data's units.
        norm: ``"linf"`` or ``"l2"``.
        steps: gradient steps per restart.
        step_size: the step α; default ``2.5·ε/steps`` (Madry et al.).
        restarts: independent random starts; an example is broken if any breaks it.
        random_start: start each restart at a random point of the ball (else at ``x``).
        target: if given, a targeted attack towards these labels.
        lower: smallest valid input value.
        upper: largest valid input value.
        seed: seeds the random starts.
        early_stop: stop updating an example once it is broken (else run every step).

    Returns:
        For each example, the first successful perturbation found, else the last point of the
        last restart.
    """
    check_budget(eps, norm, lower, upper)
    if steps < 0 or restarts < 1:
        raise ConfigError(f"steps must be >= 0 and restarts >= 1; got {steps}, {restarts}")
    alpha = step_size if step_size is not None else 2.5 * eps / max(steps, 1)
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        x = x.detach()
        best = x.clone()
        with torch.no_grad():
            done = _succeeded(model(x), y, target)
        for _ in range(restarts):
            if done.all():
                break
            delta = _random_start(x, eps, norm, generator) if random_start else torch.zeros_like(x)
            delta = project(delta, x, eps, norm, lower, upper)
            active = ~done
            for _ in range(steps):
                index = torch.nonzero(active).flatten()
                if len(index) == 0:
                    break
                goal = None if target is None else target[index]
                gradient = _input_gradient(model, x[index] + delta[index], y[index], goal)
                if norm == "linf":
                    step = alpha * gradient.sign()
                else:
                    step = alpha * gradient / _per_example_norm(gradient).clamp(min=1e-12)
                delta[index] = project(delta[index] + step, x[index], eps, norm, lower, upper)
                if early_stop:  # freeze what is broken: it keeps its first successful point
                    with torch.no_grad():
                        broken = _succeeded(model(x[index] + delta[index]), y[index], goal)
                    active[index[broken]] = False
            with torch.no_grad():
                broken = _succeeded(model(x + delta), y, target)
            best[~done] = x[~done] + delta[~done]
            done |= broken
        return best.detach()
    finally:
        model.train(was_training)


def fgsm(
    model: nn.Module, x: Tensor, y: Tensor, *, eps: float, norm: str = "linf",
    lower: float = 0.0, upper: float = 1.0,
) -> Tensor:  # fmt: skip
    """One gradient step of size ε from ``x`` (the fast gradient sign method under L∞)."""
    return pgd(model, x, y, eps=eps, norm=norm, steps=1, step_size=eps, restarts=1,
               random_start=False, lower=lower, upper=upper)  # fmt: skip
