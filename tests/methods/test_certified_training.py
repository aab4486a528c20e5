"""IBP certified training: the loss, its gradient, the ε warm-up, and certified accuracy."""

import pytest
import torch
from torch import nn

from stalwart.certify import from_module, ibp_rows
from stalwart.data import Batch, GroupedDataset
from stalwart.errors import ConfigError
from stalwart.methods import METHODS
from stalwart.methods.certified import ibp_worst_logits, margin_rows

DIM = 20


def toy(n, seed):
    """Two classes in [0, 1]²⁰ told apart by x₀ alone, with a gap of 0.3 between them.

    ERM also leans on the 19 noise inputs, which IBP's L∞ ball punishes; IBP training learns
    to ignore them.
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, DIM, generator=g)
    y = (x[:, 0] > 0.5).long()
    x[:, 0] = torch.where(y == 1, 0.65 + 0.35 * x[:, 0], 0.35 * x[:, 0])
    return Batch(x, y, y, torch.arange(n))


def build(name, **params):
    batch = toy(8, 0)
    train = GroupedDataset(batch.x, batch.y, batch.y, n_classes=2, group_names=["0", "1"],
                           name="toy")  # fmt: skip
    return METHODS.build(name, train, **params)


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(DIM, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                         nn.Linear(32, 2))  # fmt: skip


def certified_accuracy(model, batch, eps):
    net = from_module(model, (DIM,))
    lo, hi = (batch.x - eps).clamp(0, 1), (batch.x + eps).clamp(0, 1)
    C = margin_rows(batch.y, 2, batch.x.dtype)
    rows = ibp_rows(net, lo, hi, C, torch.zeros(C.shape[:2]))
    others = rows.masked_fill(torch.nn.functional.one_hot(batch.y, 2).bool(), torch.inf)
    return float((others.min(1).values > 0).float().mean())


def train(method, model, batch, steps=100):
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(steps):
        loss = method.loss(model, batch)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses


def test_worst_logits_bound_every_point_in_the_ball():
    model, batch = mlp(), toy(16, 0)
    worst = ibp_worst_logits(model, batch.x, batch.y, 0.1, 0.0, 1.0)
    assert torch.all(worst.gather(1, batch.y[:, None]) == 0)
    for _ in range(20):
        x = (batch.x + 0.1 * (2 * torch.rand_like(batch.x) - 1)).clamp(0, 1)
        logits = model(x)
        gap = logits - logits.gather(1, batch.y[:, None])
        assert (gap <= worst + 1e-5).all()


def test_gradient_reaches_every_parameter_and_steps_are_counted():
    method = build("ibp", eps=0.1, kappa=0.0, ramp_steps=10)
    model, batch = mlp(), toy(32, 0)
    assert method.current_eps() == 0.0
    method.steps += 5
    assert method.current_eps() == pytest.approx(0.05)
    method.loss(model, batch).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    assert int(method.state_dict()["steps"]) == 6  # saved in checkpoints: resume continues
    model.eval()
    method.loss(model, batch)
    assert int(method.steps) == 6


def test_ibp_training_lowers_the_ibp_loss_and_certifies_more_than_erm():
    batch, test = toy(128, 0), toy(256, 1)
    eps = 0.1
    erm_model = mlp()
    erm = build("erm")
    train(erm, erm_model, batch)
    ibp_model = mlp()
    method = build("ibp", eps=eps, kappa=0.5, ramp_steps=30)
    losses = train(method, ibp_model, batch)
    # After the warm-up ε is fixed, so the loss is comparable; it keeps falling.
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[30:40]) / 10
    erm_certified = certified_accuracy(erm_model, test, eps)
    ibp_certified = certified_accuracy(ibp_model, test, eps)
    assert ibp_certified > 0.9 and ibp_certified > erm_certified + 0.5, (
        erm_certified,
        ibp_certified,
    )


def test_bad_parameters_and_unsupported_models():
    with pytest.raises(ConfigError, match="eps"):
        build("ibp", eps=2.0)
    with pytest.raises(ConfigError, match="kappa"):
        build("ibp", kappa=1.5)
    method = build("ibp")
    model = nn.Sequential(nn.Linear(DIM, 4), nn.Tanh(), nn.Linear(4, 2))
    with pytest.raises(ConfigError, match="Tanh"):
        method.loss(model, toy(4, 0))
