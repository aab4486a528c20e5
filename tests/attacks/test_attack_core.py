"""The projected-gradient core's parts: budgets, projections, step rules, objectives, and the
search itself on models whose answer is known in closed form."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from stalwart.attacks import (
    ATTACKS,
    Annulus,
    Box,
    Budget,
    CrossEntropy,
    L2Ball,
    LinfBall,
    MarginRows,
    NegativeBCE,
    gaussian_start,
    normalized_step,
    pgd,
    projected_gradient,
    sign_step,
)
from stalwart.errors import ConfigError


def lengths(t):
    return t.flatten(1).norm(dim=1)


def test_linf_ball_box_and_chain_project_onto_their_sets():
    g = torch.Generator().manual_seed(0)
    origin = torch.rand(50, 6, generator=g)
    delta = 0.5 * torch.randn(50, 6, generator=g)
    inside = Budget(0.1, "linf").projection()(delta, origin)
    assert inside.abs().max() <= 0.1 + 1e-7
    assert (origin + inside).min() >= 0 and (origin + inside).max() <= 1
    # A point already allowed is left where it is.
    small = 0.05 * torch.rand(50, 6, generator=g) * (origin < 0.9)
    assert torch.equal(LinfBall(0.1)(small, origin), small)


def test_l2_ball_shrinks_only_what_is_too_long():
    g = torch.Generator().manual_seed(1)
    delta = torch.randn(40, 3, 4, generator=g) * torch.linspace(0.01, 2, 40).view(-1, 1, 1)
    projected = L2Ball(0.5)(delta, None)
    before, after = lengths(delta), lengths(projected)
    assert torch.allclose(after, before.clamp(max=0.5), atol=1e-6)
    # Shrinking keeps the direction: the cosine is 1.
    cosine = (delta.flatten(1) * projected.flatten(1)).sum(1) / (before * after)
    assert torch.allclose(cosine, torch.ones(40), atol=1e-6)


def test_box_with_per_coordinate_bounds_and_without_origin():
    lo, hi = torch.tensor([-1.0, 0.0, 2.0]), torch.tensor([1.0, 0.5, 3.0])
    points = torch.tensor([[-2.0, 0.25, 5.0], [0.5, -1.0, 2.5]])
    assert torch.equal(Box(lo, hi)(points, None), torch.tensor([[-1.0, 0.25, 3.0],
                                                              [0.5, 0.0, 2.5]]))  # fmt: skip


def test_annulus_puts_every_offset_between_r_and_gamma_r_along_its_direction():
    g = torch.Generator().manual_seed(2)
    delta = torch.randn(200, 5, generator=g) * torch.linspace(0.1, 10, 200).view(-1, 1)
    projected = Annulus(radius=2.0, gamma=2.0)(delta, None)
    before, after = lengths(delta), lengths(projected)
    expected = np.clip(before.numpy(), 2.0, 4.0)  # independent: the clipped length
    assert np.allclose(after.numpy(), expected, rtol=1e-5)
    cosine = (delta * projected).sum(1) / (before * after)
    assert torch.allclose(cosine, torch.ones(200), atol=1e-5)
    # Both sides bind somewhere in this sample, and offsets inside are untouched.
    assert (before < 2).any() and (before > 4).any()
    middle = (before > 2) & (before < 4)
    assert torch.allclose(projected[middle], delta[middle])


@pytest.mark.parametrize(
    "kwargs, message",
    [({"radius": 0.0, "gamma": 2.0}, "radius r must be > 0"),
     ({"radius": 1.0, "gamma": 0.5}, "gamma must be >= 1"),
     ({"radius": math.nan, "gamma": 2.0}, "radius r must be > 0")],
)  # fmt: skip
def test_bad_annulus_is_named(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Annulus(**kwargs)


@pytest.mark.parametrize(
    "args, message",
    [
        ((-0.1, "linf", 0.0, 1.0), "eps must be >= 0; got -0.1"),
        ((math.nan, "linf", 0.0, 1.0), "eps must be >= 0; got nan"),
        ((1.5, "linf", 0.0, 1.0), "exceeds the input range"),
        ((0.1, "l1", 0.0, 1.0), "norm must be one of"),
        ((0.1, "linf", 1.0, 0.0), "lower < upper"),
        ((0.1, "linf", 0.0, math.inf), "must be finite"),
    ],
)
def test_bad_budget_is_named(args, message):
    with pytest.raises(ConfigError, match=message):
        Budget(*args)


def test_l2_budget_may_exceed_the_coordinate_range():
    assert Budget(3.0, "l2").eps == 3.0  # the diameter of [0, 1]^d grows with d


def test_budget_or_loose_values_not_both():
    model = nn.Linear(3, 2)
    x, y = torch.rand(4, 3), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ConfigError, match="either budget= or eps"):
        pgd(model, x, y, eps=0.1, budget=Budget(0.1))
    with pytest.raises(ConfigError, match="needs eps="):
        pgd(model, x, y)


def test_budget_gives_the_same_attack_as_loose_values():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    x, y = torch.rand(30, 3) * 0.5 + 0.5, torch.randint(0, 2, (30,))
    loose = pgd(model, x, y, eps=0.2, norm="l2", lower=0.5, upper=1.0, steps=5)
    typed = pgd(model, x, y, budget=Budget(0.2, "l2", 0.5, 1.0), steps=5)
    assert torch.equal(loose, typed)


def test_step_rules_are_steepest_ascent_for_their_norm():
    gradient = torch.tensor([[3.0, -4.0], [0.0, 2.0]])
    assert torch.equal(sign_step(gradient, 0.5), torch.tensor([[0.5, -0.5], [0.0, 0.5]]))
    assert torch.allclose(normalized_step(gradient, 0.5), torch.tensor([[0.3, -0.4], [0.0, 0.5]]))


def test_registry_lists_the_attacks_and_what_they_support():
    assert ATTACKS.names() == ["fgsm", "pgd", "square"]
    assert "pgd" in ATTACKS and "cw" not in ATTACKS
    assert ATTACKS.info("square").norms == ("linf",) and not ATTACKS.info("square").gradients
    for name in ("fgsm", "pgd"):
        assert ATTACKS.info(name).norms == ("linf", "l2") and ATTACKS.info(name).gradients
    with pytest.raises(ConfigError, match=r"unknown attack 'sqare' \(did you mean 'square'\?\)"):
        ATTACKS.get("sqare")


def test_margin_rows_search_finds_the_box_corner_of_a_linear_function():
    """Minimising max_i (C w)·x + d over a box: the best point is a corner the sign picks."""
    w = torch.tensor([[1.0, -2.0, 0.5]])
    model = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(w)
    lo, hi = torch.tensor([-1.0, 0.0, 2.0]), torch.tensor([1.0, 1.0, 4.0])
    C, d = torch.tensor([[1.0]]), torch.tensor([0.5])
    starts = torch.stack([(lo + hi) / 2, lo, hi])
    found = projected_gradient(
        model, None, MarginRows(C, d), Box(lo, hi), steps=30, step_size=0.2 * (hi - lo),
        start=starts, keep_best=True, project_start=False,
    )  # fmt: skip
    corner = torch.tensor([-1.0, 1.0, 2.0])  # the minimiser: x_i at lo where w_i > 0
    minimum = (corner @ w[0] + 0.5).item()
    assert torch.allclose(found.points, corner.expand(3, 3))
    assert torch.allclose(found.scores, torch.full((3,), -minimum))


def test_margin_rows_per_example_move_each_start_as_its_own_rows_would():
    """Per-example rows (branch and bound attacks starts of different conjunctions together)
    give each start the points and scores it gets alone with its rows shared."""
    g = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).double()
    lo, hi = -torch.ones(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    starts = 2 * torch.rand(3, 4, generator=g, dtype=torch.float64) - 1
    C = torch.randn(3, 2, 3, generator=g, dtype=torch.float64)
    d = torch.randn(3, 2, generator=g, dtype=torch.float64)
    settings = dict(steps=10, step_size=0.1 * (hi - lo), keep_best=True, project_start=False)
    together = projected_gradient(model, None, MarginRows(C, d), Box(lo, hi), start=starts,
                                  **settings)  # fmt: skip
    for i in range(3):
        alone = projected_gradient(model, None, MarginRows(C[i], d[i]), Box(lo, hi),
                                   start=starts[i : i + 1], **settings)  # fmt: skip
        torch.testing.assert_close(together.points[i], alone.points[0])
        torch.testing.assert_close(together.scores[i], alone.scores[0])
    assert not torch.allclose(together.points[0], together.points[1])


def test_keep_best_returns_the_best_iterate_not_the_last():
    """With a step too long for the box, iterates overshoot; the best point seen is kept."""
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)

    class Distance(MarginRows):  # −|x − 0.3|: the best point is x = 0.3
        def scores(self, outputs, index):
            return -(outputs[:, 0] - 0.3).abs()

    # Iterates 0.05 → 0.25 → 0.45 (the sign step overshoots 0.3): the last is worse.
    found = projected_gradient(
        model, None, Distance(None, None), Box(-1.0, 1.0), steps=2, step_size=0.2,
        start=torch.tensor([[0.05]]), keep_best=True,
    )  # fmt: skip
    assert found.points.item() == pytest.approx(0.25)
    assert found.scores.item() == pytest.approx(-0.05)


def test_drocc_search_matches_a_hand_computation_for_a_linear_logit():
    """For f(x) = w·x the gradient of BCE(f(x̃), 0) points along w for every example, so 10
    normalised steps move each point by 10·η·w/‖w‖, then the annulus projection rescales."""
    w = torch.tensor([3.0, -1.0, 2.0, 0.5])
    model = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(w[None])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(25, 4, generator=g)
    found = projected_gradient(
        model, x, NegativeBCE(), Annulus(1.0, 2.0), steps=10, step_size=0.15,
        step_rule=normalized_step, start=gaussian_start(1.0, torch.Generator().manual_seed(3)),
        project_every=10, project_start=False,
    )  # fmt: skip
    # Independently, in NumPy: the same start, the same moves, the clipped length.
    h = torch.randn(25, 4, generator=torch.Generator().manual_seed(3)).numpy().astype(np.float64)
    direction = (w / w.norm()).numpy()
    h = h + 10 * 0.15 * direction
    length = np.linalg.norm(h, axis=1, keepdims=True)
    h = h * np.clip(length, 1.0, 2.0) / length
    assert np.allclose(found.points.numpy(), x.numpy() + h, atol=1e-5)
    offsets = lengths(found.points - x)
    assert (offsets >= 1 - 1e-5).all() and (offsets <= 2 + 1e-5).all()


def test_cross_entropy_objective_succeeds_when_the_prediction_changes_or_hits_the_target():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0]])
    y, target = torch.tensor([0, 0]), torch.tensor([1, 2])
    assert CrossEntropy(y).succeeded(logits, None).tolist() == [False, True]
    assert CrossEntropy(y, target).succeeded(logits, None).tolist() == [False, False]
    # With an index, the outputs are those of the indexed examples only.
    assert CrossEntropy(y).succeeded(logits[1:], torch.tensor([1])).tolist() == [True]
    assert CrossEntropy(y, torch.tensor([2, 1])).succeeded(
        logits[1:], torch.tensor([1])
    ).tolist() == [True]
