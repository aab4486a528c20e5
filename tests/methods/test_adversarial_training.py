import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stalwart import data, fit, models
from stalwart.attacks import robust_accuracy
from stalwart.data import Batch
from stalwart.errors import ConfigError
from stalwart.methods import build
from stalwart.methods.adversarial import trades_kl


def test_trades_kl_matches_its_formula():
    torch.manual_seed(0)
    clean, adversarial = torch.randn(5, 3), torch.randn(5, 3)
    p, q = F.softmax(clean, 1), F.softmax(adversarial, 1)
    expected = (p * (p.log() - q.log())).sum(1).mean()
    assert trades_kl(clean, adversarial).item() == pytest.approx(expected.item(), rel=1e-5)


def independent_cross_entropy(logits, y):
    """Mean of −log softmax(logits)[y], in float64 NumPy (not torch's cross-entropy)."""
    z = logits.detach().double().numpy()
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y.numpy()].mean())


def independent_kl(clean_logits, adversarial_logits):
    """Mean over examples of Σ p log(p/q), in float64 NumPy."""

    def log_softmax(logits):
        z = logits.detach().double().numpy()
        z = z - z.max(axis=1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

    log_p, log_q = log_softmax(clean_logits), log_softmax(adversarial_logits)
    return float((np.exp(log_p) * (log_p - log_q)).sum(axis=1).mean())


def small_problem(seed=0, sharpness=1.0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    with torch.no_grad():  # sharper models move further within the ball
        model[0].weight.mul_(sharpness)
    x, y = torch.rand(16, 4), torch.randint(0, 3, (16,))
    batch = Batch(x, y, torch.zeros(16, dtype=torch.long), torch.arange(16))
    dataset = data.GroupedDataset(x, y, torch.zeros(16), n_classes=3, group_names=["all"])
    return model, x, y, batch, dataset


def test_trades_loss_is_clean_cross_entropy_plus_beta_kl():
    model, x, y, batch, dataset = small_problem(sharpness=4.0)
    method = build("trades", dataset, eps=0.3, steps=10, beta=6.0)
    torch.manual_seed(1)
    loss = method.loss(model, batch)
    torch.manual_seed(1)
    adversarial = method.adversarial(model, x)
    assert (adversarial - x).abs().max() <= 0.3 + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    kl = independent_kl(model(x), model(adversarial))
    expected = independent_cross_entropy(model(x), y) + 6.0 * kl
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    # KL(p ‖ q) and KL(q ‖ p) differ here by far more than the tolerance, so the test tells
    # the TRADES direction from the reverse one.
    reverse = independent_kl(model(adversarial), model(x))
    assert 6.0 * abs(kl - reverse) > 100 * 1e-5 * expected


def test_trades_inner_maximisation_beats_a_random_corner_of_the_ball():
    model, x, y, batch, dataset = small_problem(sharpness=4.0)
    method = build("trades", dataset, eps=0.2, steps=10, beta=6.0)
    torch.manual_seed(2)
    found = independent_kl(model(x), model(method.adversarial(model, x)))
    signs = 2 * torch.randint(0, 2, x.shape, generator=torch.Generator().manual_seed(0)) - 1
    corner = independent_kl(model(x), model((x + 0.2 * signs).clamp(0, 1)))
    assert found > 3 * corner


@pytest.mark.parametrize("clean_weight", [0.0, 0.3, 1.0])
def test_pgd_at_loss_mixes_adversarial_and_clean_cross_entropy(clean_weight):
    """``(1 − w)·CE(f(x'), y) + w·CE(f(x), y)``, checked against a NumPy cross-entropy."""
    model, x, y, batch, dataset = small_problem(2)
    method = build("pgd_at", dataset, eps=0.2, steps=5, clean_weight=clean_weight)
    torch.manual_seed(3)
    loss = method.loss(model, batch)
    torch.manual_seed(3)
    adversarial = method.adversarial(model, x, y)
    assert (adversarial - x).abs().max() <= 0.2 + 1e-6
    robust, clean = (
        independent_cross_entropy(model(adversarial), y),
        independent_cross_entropy(model(x), y),
    )
    assert robust > clean + 0.01  # the two terms differ, so a swapped weight shows
    expected = (1 - clean_weight) * robust + clean_weight * clean
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_adversarial_training_raises_robust_accuracy_over_erm():
    splits = data.load("digits", seed=0)
    robust = {}
    for method in ("erm", "pgd_at", "trades"):
        torch.manual_seed(0)
        model = models.build("mlp", splits.train, hidden=[64])
        params = {} if method == "erm" else {"eps": 0.1, "steps": 5}
        from stalwart.methods import build as build_method

        fit(
            model,
            build_method(method, splits.train, **params),
            splits,
            epochs=15,
            lr=3e-3,
            progress=False,
            select="last",
        )
        robust[method] = robust_accuracy(model, splits.test, eps=0.1, steps=20).accuracy
    assert robust["pgd_at"] > robust["erm"] + 0.15, robust
    assert robust["trades"] > robust["erm"] + 0.15, robust


@pytest.mark.parametrize("name", ["pgd_at", "trades"])
def test_bad_budget_is_named(name):
    dataset = data.GroupedDataset(
        torch.rand(4, 2), torch.zeros(4), torch.zeros(4), n_classes=2, group_names=["all"]
    )
    with pytest.raises(ConfigError, match="eps must be >= 0"):
        build(name, dataset, eps=-1.0)
