import pytest
import torch
from torch import nn

from stalwart import data, fit, models
from stalwart.attacks import fgsm, pgd, robust_accuracy
from stalwart.data import GroupedDataset
from stalwart.errors import ConfigError


def linear_binary(weight, bias=0.0):
    model = nn.Sequential(nn.Flatten(), nn.Linear(len(weight), 2))
    with torch.no_grad():
        model[1].weight.copy_(torch.stack([-weight / 2, weight / 2]))
        model[1].bias.copy_(torch.tensor([-bias / 2, bias / 2]))
    return model


def points(n=400, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = 0.5 + 0.1 * torch.randn(n, d, generator=g)
    return x.clamp(0.3, 0.7)


@pytest.mark.parametrize("norm, dual", [("linf", 1), ("l2", 2)])
def test_pgd_finds_the_exact_robust_set_of_a_linear_model(norm, dual):
    """For f(x) = w·x + b, the worst ε-perturbation lowers y's margin by ε‖w‖_dual exactly."""
    weight = torch.tensor([1.0, -2.0, 0.5, 3.0, -1.0])
    x = points()
    score = x @ weight - 0.5 * weight.sum()
    y = (score > 0).long()
    model = linear_binary(weight, bias=-0.5 * weight.sum().item())
    eps = 0.05  # small enough that the box [0, 1] never binds around points in [0.3, 0.7]
    # From the clean point every step moves straight along ±w, so 20 steps of 2.5ε/20 reach the
    # ball's edge exactly; a random start would approach it only geometrically under L2.
    adversarial = pgd(model, x, y, eps=eps, norm=norm, steps=20, random_start=False)
    fooled = model(adversarial).argmax(1) != y
    expected = score.abs() <= eps * weight.norm(p=dual)
    assert torch.equal(fooled, expected)
    assert expected.any() and (~expected).any()


def test_perturbations_stay_in_the_ball_and_the_box():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
    x = torch.rand(64, 1, 4, 4)
    x[:8] = 0.0  # inputs on the edge of the box
    y = torch.randint(0, 3, (64,))
    for norm, eps in (("linf", 0.1), ("l2", 0.5)):
        adversarial = pgd(model, x, y, eps=eps, norm=norm, steps=10, restarts=2)
        delta = (adversarial - x).flatten(1)
        size = delta.abs().max(1).values if norm == "linf" else delta.norm(dim=1)
        assert (size <= eps + 1e-6).all()
        assert adversarial.min() >= 0 and adversarial.max() <= 1


def test_examples_already_misclassified_are_left_alone():
    weight = torch.tensor([1.0, 1.0])
    model = linear_binary(weight, bias=-1.0)
    x = torch.tensor([[0.2, 0.2], [0.9, 0.9]])
    y = torch.tensor([1, 1])  # the first is already wrong (score < 0)
    adversarial = pgd(model, x, y, eps=0.1, steps=5)
    assert torch.equal(adversarial[0], x[0])


def test_targeted_attack_reaches_the_target():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x = torch.rand(32, 4) * 0.2 + 0.4
    y = model(x).argmax(1)
    target = (y + 1) % 3
    adversarial = pgd(model, x, y, eps=1.0, steps=50, target=target)
    assert (model(adversarial).argmax(1) == target).float().mean() > 0.9


@pytest.fixture(scope="module")
def digits_model():
    splits = data.load("digits", seed=0)
    torch.manual_seed(0)
    model = models.build("mlp", splits.train, hidden=[64])
    fit(model, "erm", splits, epochs=15, lr=3e-3, progress=False, select="last")
    return model, splits.test


def test_robust_accuracy_falls_with_eps_and_reaches_zero(digits_model):
    model, test = digits_model
    values = [
        robust_accuracy(model, test, eps=eps, steps=10).accuracy
        for eps in (0.0, 0.05, 0.1, 0.3, 1.0)
    ]
    assert values[0] > 0.9
    assert values == sorted(values, reverse=True)
    assert values[-1] == 0.0


def test_more_restarts_and_steps_never_raise_robust_accuracy(digits_model):
    model, test = digits_model
    one = robust_accuracy(model, test, eps=0.08, steps=5, restarts=1).accuracy
    three = robust_accuracy(model, test, eps=0.08, steps=5, restarts=3).accuracy
    long = robust_accuracy(model, test, eps=0.08, steps=40, restarts=3).accuracy
    assert three <= one and long <= three + 0.005


def test_worst_case_over_attacks_is_at_most_each_attack(digits_model):
    model, test = digits_model
    each = [
        robust_accuracy(model, test, attack=a, eps=0.05, steps=10).accuracy for a in ("fgsm", "pgd")
    ]
    both = robust_accuracy(model, test, attack=["fgsm", "pgd"], eps=0.05, steps=10)
    assert both.accuracy <= min(each)
    assert both.clean.accuracy >= both.accuracy
    assert len(both.robust.group_accuracy) == test.n_groups
    assert float(both) == both.accuracy


def test_fgsm_is_one_full_step():
    model = linear_binary(torch.tensor([1.0, -1.0]))
    x = torch.tensor([[0.5, 0.4]])
    adversarial = fgsm(model, x, torch.tensor([1]), eps=0.05)
    assert torch.allclose(adversarial, torch.tensor([[0.45, 0.45]]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"eps": -0.1}, "eps must be >= 0; got -0.1"),
        ({"eps": 2.0}, "exceeds the input range"),
        ({"eps": 0.1, "norm": "l1"}, "norm must be one of"),
        ({"eps": 0.1, "attack": "pgdd"}, "did you mean 'pgd'"),
        ({"eps": 0.1, "attack": []}, "name at least one attack"),
        (
            {"eps": 0.1, "steps": 0},
            r"steps must be an integer >= 1 \(PGD steps per restart\); got 0",
        ),
        ({"eps": 0.1, "restarts": 0}, r"restarts must be an integer >= 1 .*; got 0"),
        ({"eps": 0.1, "queries": 0}, r"queries must be an integer >= 1 .*; got 0"),
        ({"eps": 0.1, "steps": 2.5}, r"steps must be an integer >= 1 .*; got 2.5"),
        ({"eps": 0.1, "step_size": -0.01}, "step_size must be > 0 and finite; got -0.01"),
        ({"eps": 0.1, "lower": 0.5, "upper": 0.5}, "lower < upper"),
        ({}, "needs eps="),
    ],
)
def test_bad_budgets_are_named(kwargs, message):
    dataset = GroupedDataset(
        torch.rand(8, 2), torch.zeros(8), torch.zeros(8), n_classes=2, group_names=["all"]
    )
    with pytest.raises(ConfigError, match=message):
        robust_accuracy(linear_binary(torch.ones(2)), dataset, **kwargs)


def test_inputs_outside_the_range_are_refused():
    dataset = GroupedDataset(
        torch.rand(8, 2) * 255, torch.zeros(8), torch.zeros(8), n_classes=2, group_names=["all"]
    )
    with pytest.raises(ConfigError, match="outside the valid range"):
        robust_accuracy(linear_binary(torch.ones(2)), dataset, eps=0.1)


def test_model_without_input_gradient_is_refused():
    class Detached(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(2, 2)

        def forward(self, x):
            return self.linear(x.detach())

    with pytest.raises(ConfigError, match="does not depend"):
        pgd(Detached(), torch.rand(4, 2), torch.zeros(4, dtype=torch.long), eps=0.1)
