"""Complete search (MILP and branch and bound): answers agree with the exact MILP optimum,
``violated`` always comes with a checked counterexample, timeouts give ``unknown``."""

import time

import pytest
import torch
from torch import nn

import stalwart.certify.complete as complete
from stalwart.certify import Box, OutputProperty, from_module
from stalwart.certify.complete import milp_optimum, search
from stalwart.errors import ConfigError


def small_net(seed, sizes=(3, 10, 10, 3)):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes, sizes[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return from_module(nn.Sequential(*layers[:-1]), (sizes[0],)).detach()


def problem(net, seed, eps):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(net.in_features, generator=g)
    label = int(net(x).argmax())
    return x, Box(x - eps, x + eps), OutputProperty.margin(label, net.out_features)


def sampled_violation(net, box, prop, n=20000):
    x = box.sample(n, torch.Generator().manual_seed(1))
    y = net(x)
    return any(bool(((y @ C.T + d) <= 0).all(1).any()) for C, d in prop.disjuncts)


@pytest.mark.parametrize("method", ["milp", "bab", "bab+beta"])
def test_answers_match_the_exact_optimum(method):
    seen = set()
    for seed in range(14):
        net = small_net(seed)
        _, box, prop = problem(net, seed, eps=0.35)
        C, d, _ = prop.stacked()
        optimum = milp_optimum(net, box.lower, box.upper, C, d)
        expected = "violated" if bool((optimum <= 0).any()) else "holds"
        # No attack first: the solver itself must find the counterexamples.
        result = search(net, box, prop, timeout=30, method=method, attack_restarts=0)
        assert result.status == expected, (seed, result, optimum)
        seen.add((expected, result.detail.split()[0]))
        if result.status == "violated":
            x = result.counterexample
            assert x.shape == (3,) and box.contains(x)
            y = net.detach(dtype=torch.float64)(x)  # the answer is about the exact network
            assert prop.violated_by(y) and torch.allclose(result.output, y)
        else:
            assert result.counterexample is None
            assert not sampled_violation(net, box, prop)
    statuses = {s for s, _ in seen}
    assert statuses == {"holds", "violated"}
    # Some answers need the solver, not just CROWN or the first LP.
    assert any(how in ("MILP", "branch") for s, how in seen if s == "holds"), seen


def test_conv_module_with_attack_finds_a_checked_counterexample():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 2), nn.ReLU(), nn.Flatten(), nn.Linear(8, 2))
    x = torch.rand(1, 3, 3)
    label = int(model(x[None]).argmax())
    prop = OutputProperty.margin(label, 2)
    wide = Box(torch.zeros(1, 3, 3), torch.ones(1, 3, 3))
    for method in ("milp", "bab", "bab+beta"):
        result = search(model, wide, prop, timeout=20, method=method)
        if result.status == "violated":
            assert result.counterexample.shape == (1, 3, 3)
            exact = from_module(model, (1, 3, 3)).detach(dtype=torch.float64)
            assert prop.violated_by(exact(result.counterexample))
        else:
            assert result.status == "holds"
            assert not sampled_violation(from_module(model, (1, 3, 3)), wide, prop)
    narrow = search(model, Box(x, x), prop, timeout=20)
    assert narrow.status == "holds"


def test_tiny_timeout_gives_unknown_and_timeouts_are_honoured():
    net = small_net(3, (6, 40, 40, 40, 5))
    _, box, prop = problem(net, 3, eps=0.5)
    assert search(net, box, prop, timeout=1e-6, attack_restarts=0).status == "unknown"
    for method in ("milp", "bab", "bab+beta"):
        started = time.perf_counter()
        result = search(net, box, prop, timeout=0.5, method=method, attack_restarts=0)
        assert time.perf_counter() - started < 3.0
        if result.status == "violated":
            assert prop.violated_by(net.detach(dtype=torch.float64)(result.counterexample))


def test_a_milp_point_that_does_not_violate_is_never_reported(monkeypatch):
    net = small_net(5)  # violated, and CROWN alone cannot decide it
    _, box, prop = problem(net, 5, eps=0.35)
    calls = []

    class Fake:
        status, message = 0, "optimal"
        x = None

    def fake_milp(c, constraints, integrality, bounds, options):
        calls.append(1)
        Fake.x = bounds.lb.copy()
        Fake.x[:3] = box.center.numpy()  # the centre is classified correctly
        return Fake()

    monkeypatch.setattr(complete, "milp", fake_milp)
    monkeypatch.setattr(complete, "_attack", lambda net, lo, hi, C, d, starts, steps: starts)
    result = search(net, box, prop, timeout=10, attack_restarts=0)
    assert calls and result.status == "unknown" and result.counterexample is None


def test_milp_optimum_is_exact_on_a_single_relu():
    net = from_module(nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 1)), (1,))
    with torch.no_grad():
        for layer in (net.layers[0].weight, net.layers[1].weight):
            layer.fill_(1.0)
        net.layers[0].bias.zero_()
        net.layers[1].bias.fill_(-0.5)
    # f(x) = relu(x) - 0.5 on [-1, 2]: minimum -0.5, and -f has minimum -1.5.
    C, d = torch.tensor([[1.0], [-1.0]]), torch.zeros(2)
    optimum = milp_optimum(net, torch.tensor([-1.0]), torch.tensor([2.0]), C, d)
    assert torch.allclose(optimum, torch.tensor([-0.5, -1.5]), atol=1e-6)


def test_bad_arguments():
    net = small_net(0)
    _, box, prop = problem(net, 0, eps=0.1)
    with pytest.raises(ConfigError, match="method"):
        search(net, box, prop, timeout=1, method="smt")
    with pytest.raises(ConfigError, match="timeout"):
        search(net, box, prop, timeout=0)
    with pytest.raises(ConfigError, match="branch_candidates must be at least 1"):
        search(net, box, prop, timeout=1, method="bab+beta", branch_candidates=0)


def test_diversified_starts_spread_the_outputs_that_uniform_starts_leave_bunched():
    # Uniform points in a box of 200 inputs average out in every unit: their outputs bunch
    # together. Output-diversified starts (Tashiro et al. 2020) stay in the box and spread.
    torch.manual_seed(0)
    net = from_module(nn.Sequential(nn.Linear(200, 64), nn.ReLU(), nn.Linear(64, 5)), (200,))
    lo, hi = torch.zeros(200), torch.ones(200)
    starts = torch.rand(64, 200)
    directions = 2 * torch.rand(64, 5) - 1
    spread = complete._diversified(net, lo, hi, starts, directions)
    assert bool(((spread >= lo) & (spread <= hi)).all())
    with torch.no_grad():
        bunched, diverse = net(starts).std(0), net(spread).std(0)
    assert bool((diverse > 3 * bunched).all()), (diverse, bunched)


def test_the_attack_descends_on_every_conjunction_whatever_its_length():
    """Conjunctions of 3 rows (unreachable) and 2 rows (a sliver around ``x_0 = 0.3``, away
    from the centre and the corners where the starts begin) share one batch, the short one
    padded: descent still finds the sliver."""
    from stalwart.certify import Dense, from_ops

    f64 = torch.float64
    identity = torch.eye(2, dtype=f64)
    net = from_ops([Dense(identity, torch.zeros(2, dtype=f64))], (2,))
    lo, hi = torch.zeros(2, dtype=f64), torch.ones(2, dtype=f64)
    unreachable = (torch.tensor([[-1.0, 0], [0, -1], [-1, -1]], dtype=f64),
                   torch.tensor([2.0, 2, 4], dtype=f64))  # y ≥ 2 everywhere  # fmt: skip
    sliver = (torch.tensor([[1.0, 0], [-1, 0]], dtype=f64),
              torch.tensor([-0.31, 0.29], dtype=f64))  # 0.29 ≤ y_0 ≤ 0.31  # fmt: skip
    found = complete.find_counterexample(net, lo, hi, OutputProperty([unreachable, sliver]))
    assert found is not None and 0.29 <= float(found[0]) <= 0.31
    assert complete.find_counterexample(net, lo, hi, OutputProperty([unreachable])) is None
