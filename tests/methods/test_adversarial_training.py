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


def test_trades_loss_is_clean_cross_entropy_plus_beta_kl():
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.rand(8, 4), torch.randint(0, 3, (8,))
    batch = Batch(x, y, torch.zeros(8, dtype=torch.long), torch.arange(8))
    dataset = data.GroupedDataset(x, y, torch.zeros(8), n_classes=3, group_names=["all"])
    method = build("trades", dataset, eps=0.1, steps=5, beta=2.0)
    torch.manual_seed(1)
    loss = method.loss(model, batch)
    torch.manual_seed(1)
    adversarial = method.adversarial(model, x)
    assert (adversarial - x).abs().max() <= 0.1 + 1e-6
    expected = F.cross_entropy(model(x), y) + 2.0 * trades_kl(model(x), model(adversarial))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


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
