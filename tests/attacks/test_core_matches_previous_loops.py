"""The attacks built on the projected-gradient core give bit-identical results to the three
loops they replaced (PGD, TRADES' inner maximisation, certify's attack stage).

Recorded results (docs/results.md: PGD, PGD-AT, TRADES, RST) depend on these attacks drawing
the same random numbers in the same order and doing the same arithmetic. The loops below are
frozen copies of the code before the core existed, kept here as the oracle.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stalwart.attacks import pgd
from stalwart.data import Batch
from stalwart.data.core import GroupedDataset
from stalwart.methods import build

# --- frozen copy of attacks/pgd.py before the core (the oracle) ---


def _old_norm(t):
    return t.flatten(1).norm(dim=1).view(-1, *[1] * (t.dim() - 1))


def _old_project(delta, x, eps, norm, lower, upper):
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / _old_norm(delta).clamp(min=1e-12)).clamp(max=1.0)
    return (x + delta).clamp(lower, upper) - x


def _old_random_start(x, eps, norm, generator):
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    if norm == "linf":
        return (2 * noise - 1) * eps
    direction = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    direction = direction / _old_norm(direction).clamp(min=1e-12)
    radius = torch.rand(len(x), generator=generator, dtype=x.dtype).to(x.device)
    return direction * eps * radius.view(-1, *[1] * (x.dim() - 1))


def _old_succeeded(logits, y, target):
    predictions = logits.argmax(dim=1)
    return predictions == target if target is not None else predictions != y


def _old_input_gradient(model, x, y, target):
    x = x.detach().requires_grad_(True)
    logits = model(x)
    loss = F.cross_entropy(logits, y) if target is None else -F.cross_entropy(logits, target)
    (gradient,) = torch.autograd.grad(loss, x, allow_unused=True)
    return gradient


def old_pgd(
    model, x, y, *, eps, norm="linf", steps=40, step_size=None, restarts=1, random_start=True,
    target=None, lower=0.0, upper=1.0, seed=0, early_stop=True,
):  # fmt: skip
    alpha = step_size if step_size is not None else 2.5 * eps / max(steps, 1)
    generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        x = x.detach()
        best = x.clone()
        with torch.no_grad():
            done = _old_succeeded(model(x), y, target)
        for _ in range(restarts):
            if done.all():
                break
            delta = (
                _old_random_start(x, eps, norm, generator) if random_start else torch.zeros_like(x)
            )
            delta = _old_project(delta, x, eps, norm, lower, upper)
            active = ~done
            for _ in range(steps):
                index = torch.nonzero(active).flatten()
                if len(index) == 0:
                    break
                goal = None if target is None else target[index]
                gradient = _old_input_gradient(model, x[index] + delta[index], y[index], goal)
                if norm == "linf":
                    step = alpha * gradient.sign()
                else:
                    step = alpha * gradient / _old_norm(gradient).clamp(min=1e-12)
                delta[index] = _old_project(delta[index] + step, x[index], eps, norm, lower, upper)
                if early_stop:
                    with torch.no_grad():
                        broken = _old_succeeded(model(x[index] + delta[index]), y[index], goal)
                    active[index[broken]] = False
            with torch.no_grad():
                broken = _old_succeeded(model(x + delta), y, target)
            best[~done] = x[~done] + delta[~done]
            done |= broken
        return best.detach()
    finally:
        model.train(was_training)


# --- frozen copy of TRADES.adversarial before the core ---


def _old_trades_kl(clean_logits, adversarial_logits):
    return F.kl_div(
        F.log_softmax(adversarial_logits, dim=1), F.softmax(clean_logits, dim=1),
        reduction="batchmean",
    )  # fmt: skip


def old_trades_adversarial(model, x, *, eps, steps, step_size, lower, upper):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            clean = model(x)
        delta = _old_project(0.001 * torch.randn_like(x), x, eps, "linf", lower, upper)
        for _ in range(steps):
            delta.requires_grad_(True)
            divergence = _old_trades_kl(clean, model(x + delta))
            (gradient,) = torch.autograd.grad(divergence, delta)
            delta = _old_project(delta.detach() + step_size * gradient.sign(), x, eps, "linf",
                                 lower, upper)  # fmt: skip
    finally:
        model.train(was_training)
    return (x + delta).detach()


# --- frozen copy of certify.complete._attack before the core ---


def old_certify_attack(net, lo, hi, C, d, starts, steps):
    x = starts.clone()
    width = hi - lo
    best = x.clone()
    best_value = torch.full((len(x),), torch.inf, dtype=x.dtype, device=x.device)
    with torch.enable_grad():
        for step in range(steps + 1):
            x.requires_grad_(True)
            value = (net(x) @ C.T + d).max(dim=1).values
            better = value.detach() < best_value
            best[better], best_value[better] = x.detach()[better], value.detach()[better]
            if step == steps:
                break
            (gradient,) = torch.autograd.grad(value.sum(), x)
            size = 0.1 * (1 - step / steps) + 0.005
            x = torch.minimum(torch.maximum(x.detach() - size * width * gradient.sign(), lo), hi)
    return best[best_value.argsort()]


# --- the comparisons ---


def random_classifier(seed, d=12, classes=4, batch_norm=False):
    torch.manual_seed(seed)
    layers = [nn.Flatten(), nn.Linear(d, 32)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(32))
    layers += [nn.ReLU(), nn.Linear(32, classes)]
    return nn.Sequential(*layers)


def inputs(seed, n=48, d=12, classes=4):
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.rand(n, d, generator=g)
    x[:4] = 0.0  # on the edge of the box
    y = torch.randint(0, classes, (n,), generator=g)
    return x, y


PGD_SETTINGS = [
    dict(eps=0.1, norm="linf", steps=10),
    dict(eps=0.1, norm="linf", steps=7, restarts=3, seed=5),
    dict(eps=0.5, norm="l2", steps=10, restarts=2, seed=1),
    dict(eps=0.05, norm="linf", steps=10, early_stop=False, restarts=2),
    dict(eps=0.3, norm="l2", steps=5, early_stop=False, step_size=0.07),
    dict(eps=0.2, norm="linf", steps=6, random_start=False, lower=-0.5, upper=1.5),
    dict(eps=0.05, norm="linf", steps=1, step_size=0.05, random_start=False),  # FGSM
    dict(eps=0.0, norm="linf", steps=3),
    dict(eps=0.1, norm="linf", steps=0, restarts=2),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("settings", PGD_SETTINGS, ids=lambda s: str(sorted(s.items())))
def test_pgd_is_bit_identical_to_the_previous_loop(seed, settings):
    model = random_classifier(seed, batch_norm=seed == 2)
    x, y = inputs(seed)
    ours = pgd(model, x, y, **settings)
    oracle = old_pgd(model, x, y, **settings)
    assert torch.equal(ours, oracle)
    assert model.training  # the mode is restored


@pytest.mark.parametrize("seed", [0, 3])
def test_targeted_pgd_is_bit_identical_to_the_previous_loop(seed):
    model = random_classifier(seed)
    x, y = inputs(seed)
    target = (y + 1) % 4
    for norm, eps in (("linf", 0.2), ("l2", 1.0)):
        ours = pgd(model, x, y, eps=eps, norm=norm, steps=15, target=target, restarts=2)
        oracle = old_pgd(model, x, y, eps=eps, norm=norm, steps=15, target=target, restarts=2)
        assert torch.equal(ours, oracle)


def test_pgd_on_images_is_bit_identical_to_the_previous_loop():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    x = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.randint(0, 3, (20,), generator=torch.Generator().manual_seed(1))
    for norm, eps in (("linf", 0.05), ("l2", 0.5)):
        ours = pgd(model, x, y, eps=eps, norm=norm, steps=8, restarts=2)
        assert torch.equal(ours, old_pgd(model, x, y, eps=eps, norm=norm, steps=8, restarts=2))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_trades_inner_maximisation_is_bit_identical_to_the_previous_loop(seed):
    model = random_classifier(seed, batch_norm=seed == 1)
    x, y = inputs(seed)
    dataset = GroupedDataset(x, y, torch.zeros(len(x)), n_classes=4, group_names=["all"])
    settings = dict(eps=0.1, steps=5, step_size=0.03, lower=0.0, upper=1.0)
    method = build("trades", dataset, beta=6.0, **settings)
    torch.manual_seed(seed)
    ours = method.adversarial(model, x)
    torch.manual_seed(seed)
    oracle = old_trades_adversarial(model, x, **settings)
    assert torch.equal(ours, oracle)
    # The whole loss, too: the method's loss against the same computation on the oracle point.
    batch = Batch(x, y, torch.zeros(len(x), dtype=torch.long), torch.arange(len(x)))
    torch.manual_seed(seed)
    loss = method.loss(model, batch)
    expected = F.cross_entropy(model(x), y) + 6.0 * _old_trades_kl(model(x), model(oracle))
    assert torch.equal(loss, expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_pgd_at_points_are_bit_identical_to_the_previous_loop(seed):
    model = random_classifier(seed)
    x, y = inputs(seed)
    dataset = GroupedDataset(x, y, torch.zeros(len(x)), n_classes=4, group_names=["all"])
    method = build("pgd_at", dataset, eps=0.1, steps=5, clean_weight=0.5)
    torch.manual_seed(seed)
    ours = method.adversarial(model, x, y)
    torch.manual_seed(seed)
    attack_seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
    oracle = old_pgd(model, x, y, eps=0.1, steps=5, step_size=2.5 * 0.1 / 5, seed=attack_seed,
                     early_stop=False)  # fmt: skip
    assert torch.equal(ours, oracle)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_certify_attack_stage_is_bit_identical_to_the_previous_loop(seed):
    from stalwart.certify.bounds import as_network
    from stalwart.certify.complete import _attack

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 3))  # fmt: skip
    net = as_network(model, (5,))
    lo, hi = -torch.rand(5), torch.rand(5) + 0.1
    C = torch.randn(2, 3)
    d = torch.randn(2)
    g = torch.Generator().manual_seed(seed)
    starts = lo + torch.rand(6, 5, generator=g) * (hi - lo)
    starts[0] = (lo + hi) / 2
    for steps in (1, 20, 30):
        assert torch.equal(_attack(net, lo, hi, C, d, starts, steps),
                           old_certify_attack(net, lo, hi, C, d, starts, steps))  # fmt: skip
