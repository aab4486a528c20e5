import pytest
import torch
from torch import nn

from stalwart import data, fit, models
from stalwart.attacks import robust_accuracy, square_attack
from stalwart.attacks.sanity import gradient_masking_checks
from stalwart.errors import ConfigError


@pytest.fixture(scope="module")
def digits_model():
    splits = data.load("digits", seed=0)
    torch.manual_seed(0)
    model = models.build("mlp", splits.train, hidden=[64])
    fit(model, "erm", splits, epochs=15, lr=3e-3, progress=False, select="last")
    return model.eval(), splits.test.subset(torch.arange(80))


def test_square_attack_stays_in_the_ball_and_box_and_fools_the_model(digits_model):
    model, test = digits_model
    adversarial = square_attack(model, test.x, test.y, eps=0.1, queries=300)
    assert (adversarial - test.x).abs().max() <= 0.1 + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    clean = (model(test.x).argmax(1) == test.y).float().mean()
    fooled = (model(adversarial).argmax(1) == test.y).float().mean()
    assert fooled < clean - 0.2


def test_square_attack_never_beats_the_exact_robust_set_of_a_linear_model():
    """For a linear model the non-robust points are known exactly: Square finds only those."""
    torch.manual_seed(0)
    weight = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0, 1.5])
    model = nn.Sequential(nn.Linear(6, 2))
    with torch.no_grad():  # logit difference = w·(x − 0.5)
        model[0].weight.copy_(torch.stack([-weight / 2, weight / 2]))
        model[0].bias.copy_(torch.stack([weight.sum() / 4, -weight.sum() / 4]))
    x = (0.5 + 0.1 * torch.randn(300, 6)).clamp(0.2, 0.8)
    score = (x - 0.5) @ weight
    y = (score > 0).long()
    eps = 0.05
    fooled = model(square_attack(model, x, y, eps=eps, queries=200)).argmax(1) != y
    vulnerable = score.abs() <= eps * weight.abs().sum()
    assert not (fooled & ~vulnerable).any()
    assert fooled.sum() >= 0.9 * vulnerable.sum()


def test_robust_accuracy_with_square_is_pointwise_worst_case(digits_model):
    model, test = digits_model
    both = robust_accuracy(model, test, attack=["pgd", "square"], eps=0.1, steps=10, queries=200)
    pgd_only = robust_accuracy(model, test, eps=0.1, steps=10)
    assert both.accuracy <= pgd_only.accuracy


def test_square_refuses_l2():
    dataset = data.GroupedDataset(
        torch.rand(4, 2), torch.zeros(4), torch.zeros(4), n_classes=2, group_names=["all"]
    )
    with pytest.raises(ConfigError, match="linf only"):
        robust_accuracy(nn.Linear(2, 2), dataset, attack="square", norm="l2", eps=0.1)


def test_masking_checks_pass_on_an_honest_model(digits_model):
    model, test = digits_model
    report = gradient_masking_checks(model, test, eps=0.1, steps=5, queries=200)
    assert report.passed, report
    values = list(report.eps_curve.values())
    assert values[0] > 0.9 and values[-1] == 0.0


class Quantized(nn.Module):
    """A textbook gradient-masking defence: round the input before the model (zero gradient)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 4) / 4)


def test_masking_checks_catch_a_shattered_gradient(digits_model):
    model, test = digits_model
    report = gradient_masking_checks(Quantized(model), test, eps=0.1, steps=5, queries=200)
    assert not report.checks["black-box finds no more than PGD"], report
    assert not report.passed
