import pytest
import torch
from torch import nn

from stalwart import data, fit, models
from stalwart.attacks import Budget, pgd, robust_accuracy, square_attack
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
    """An example is robust only if neither attack changes its label: the combined accuracy is
    that of the intersection, computed here from the two attacks run directly."""
    model, test = digits_model
    weak = dict(eps=0.1, steps=2, step_size=0.01)  # a PGD too weak to find everything
    both = robust_accuracy(model, test, attack=["pgd", "square"], queries=200, **weak)
    square_only = robust_accuracy(model, test, attack="square", eps=0.1, queries=200)
    with torch.no_grad():
        pgd_right = model(pgd(model, test.x, test.y, **weak)).argmax(1) == test.y
        square_right = model(square_attack(model, test.x, test.y, eps=0.1, queries=200)).argmax(1)
        square_right = square_right == test.y
    assert both.accuracy == pytest.approx((pgd_right & square_right).float().mean().item())
    assert square_only.accuracy == pytest.approx(square_right.float().mean().item())
    # Square Attack does its share through robust_accuracy too.
    assert square_only.accuracy < square_only.clean.accuracy - 0.2
    # The weak PGD misses points Square finds, so the worst case is below PGD's alone.
    assert (pgd_right & ~square_right).sum() >= 5
    assert both.accuracy < robust_accuracy(model, test, **weak).accuracy


def test_square_finds_what_pgd_finds_where_gradients_are_informative(digits_model):
    """On an honest model PGD is the stronger attack: nearly every point Square fools, PGD
    fools too, and Square fools most of them."""
    model, test = digits_model
    with torch.no_grad():
        square = model(square_attack(model, test.x, test.y, eps=0.1, queries=300)).argmax(1)
        strong = model(pgd(model, test.x, test.y, eps=0.1, steps=40, restarts=3)).argmax(1)
    square_fooled, pgd_fooled = square != test.y, strong != test.y
    assert square_fooled.sum() >= 0.6 * pgd_fooled.sum() > 0
    assert (square_fooled & ~pgd_fooled).sum() <= 0.05 * len(test)


class Counting(nn.Module):
    """Counts the model's calls and the rows (example evaluations) it was given."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls, self.rows = model, 0, 0

    def forward(self, x):
        self.calls += 1
        self.rows += len(x)
        return self.model(x)


def test_square_spends_exactly_its_query_budget_on_a_point_it_cannot_fool():
    """A model that never changes its mind within the ball: every example uses all its
    queries, and no more."""
    model = nn.Linear(6, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([5.0, -5.0]))  # class 0 whatever the input
    counting = Counting(model)
    x, y = torch.rand(7, 6), torch.zeros(7, dtype=torch.long)
    for queries in (1, 2, 57):
        counting.calls = counting.rows = 0
        square_attack(counting, x, y, eps=0.1, queries=queries)
        assert counting.calls == queries and counting.rows == 7 * queries


def test_square_stops_querying_an_example_once_it_is_fooled(digits_model):
    model, test = digits_model
    counting = Counting(model)
    square_attack(counting, test.x, test.y, eps=0.1, queries=300)
    assert 10 < counting.calls <= 300  # it searched, within its budget
    # Fooled examples leave the search, so far fewer than every example × every query.
    assert counting.rows < 0.8 * 300 * len(test)


def test_square_accepts_a_budget_and_refuses_l2():
    model = nn.Linear(4, 2)
    x, y = torch.rand(5, 4), torch.zeros(5, dtype=torch.long)
    loose = square_attack(model, x, y, eps=0.1, queries=20)
    assert torch.equal(loose, square_attack(model, x, y, budget=Budget(0.1), queries=20))
    with pytest.raises(ConfigError, match="linf only"):
        square_attack(model, x, y, budget=Budget(0.1, "l2"))
    with pytest.raises(ConfigError, match="queries must be >= 1"):
        square_attack(model, x, y, eps=0.1, queries=0)


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
    # The black-box check passed because Square ran and PGD did at least as well, not because
    # Square found nothing.
    assert report.black_box["square"] < report.black_box["clean"] - 0.2


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
