"""CROWN, α-CROWN and the triangle LP: soundness against sampled and attacked points, the
tightness order LP ≥ CROWN ≥ IBP, the MILP optimum as ground truth, hand-worked values."""

import pytest
import torch
from torch import nn

import stalwart.certify.crown as crown
import stalwart.certify.lp as lp
from stalwart.certify import (
    Box,
    Conv,
    Dense,
    Normalize,
    Scale,
    bound,
    from_module,
    from_ops,
    ibp_rows,
    layer_bounds,
)
from stalwart.certify.complete import milp_optimum
from stalwart.errors import ConfigError

D = torch.float64


def mlp_net(seed, sizes=(4, 12, 12, 3)):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes, sizes[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return from_module(nn.Sequential(*layers[:-1]).to(D), (sizes[0],)).detach()


def conv_net(seed):
    """Normalize + padded and unpadded convolutions: exercises Conv, Scale and Dense layers."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        Normalize([0.3, 0.5], [0.5, 2.0]),
        nn.Conv2d(2, 3, 3, stride=1, padding=0),
        nn.ReLU(),
        nn.Conv2d(3, 4, 2, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 2 * 2, 3),
    ).to(D)
    return from_module(model, (2, 5, 5)).detach()


def scale_net(seed):
    """An explicit elementwise layer followed by a ReLU, then a convolution."""
    g = torch.Generator().manual_seed(seed)
    scale = Scale(torch.randn(18, generator=g, dtype=D), torch.randn(18, generator=g, dtype=D))
    conv = Conv(torch.randn(2, 2, 2, 2, generator=g, dtype=D), torch.randn(2, generator=g, dtype=D),
                (2, 3, 3), (1, 1), (1, 1))  # fmt: skip
    dense = Dense(torch.randn(3, conv.out_features, generator=g, dtype=D),
                  torch.randn(3, generator=g, dtype=D))  # fmt: skip
    return from_ops([scale, "relu", conv, "relu", dense], (2, 3, 3))


def cases():
    for seed in range(6):
        yield f"mlp{seed}", mlp_net(seed)
    yield "deep", mlp_net(10, (3, 10, 10, 10, 4))
    for seed in range(3):
        yield f"conv{seed}", conv_net(seed)
    yield "scale", scale_net(0)


CASES = list(cases())


def random_problem(net, seed, width=0.3):
    g = torch.Generator().manual_seed(seed)
    center = torch.rand(net.in_features, generator=g, dtype=D)
    radius = width * torch.rand(net.in_features, generator=g, dtype=D)
    C = torch.randn(4, net.out_features, generator=g, dtype=D)
    d = torch.randn(4, generator=g, dtype=D)
    return center - radius, center + radius, C, d


def attacked_min(net, lo, hi, C, d, n_samples=4000, steps=40):
    """The smallest value of each row over random points and PGD-descended points."""
    g = torch.Generator().manual_seed(0)
    x = lo + torch.rand(n_samples, lo.numel(), generator=g, dtype=D) * (hi - lo)
    sampled = (net(x) @ C.T + d).min(0).values
    # Descend every row at once from 64 of the samples (one batch of rows × starts).
    rows, n = len(C), lo.numel()
    z = x[:64].unsqueeze(0).repeat(rows, 1, 1)
    for step in range(steps):
        z.requires_grad_(True)
        value = (net(z.reshape(-1, n)).reshape(rows, 64, -1) * C[:, None]).sum(-1) + d[:, None]
        (grad,) = torch.autograd.grad(value.sum(), z)
        size = 0.05 * (1 - step / steps) + 1e-3
        z = torch.minimum(torch.maximum(z.detach() - size * (hi - lo) * grad.sign(), lo), hi)
    value = (net(z.reshape(-1, n)).reshape(rows, 64, -1) * C[:, None]).sum(-1) + d[:, None]
    best = torch.minimum(sampled, value.min(1).values)
    return best.detach()


def all_bounds(net, lo, hi, C, d):
    return {
        "ibp": ibp_rows(net, lo[None], hi[None], C, d)[0],
        "crown": crown.crown_rows(net, lo, hi, C, d),
        "alpha": crown.crown_rows(net, lo, hi, C, d, alpha=True, steps=15),
        "lp": lp.lp_rows(net, lo, hi, C, d),
        "lp_ibp": lp.lp_rows(net, lo, hi, C, d, intermediate="ibp"),
    }


@pytest.mark.parametrize(("name", "net"), CASES, ids=[c[0] for c in CASES])
def test_every_bound_is_below_sampled_and_attacked_points(name, net):
    for seed in range(2):
        lo, hi, C, d = random_problem(net, seed)
        truth = attacked_min(net, lo, hi, C, d)
        for method, value in all_bounds(net, lo, hi, C, d).items():
            assert (value <= truth + 1e-9).all(), (method, value, truth)


@pytest.mark.parametrize(("name", "net"), CASES, ids=[c[0] for c in CASES])
def test_tightness_order_lp_crown_ibp(name, net):
    lo, hi, C, d = random_problem(net, 7)
    b = all_bounds(net, lo, hi, C, d)
    assert (b["crown"] >= b["ibp"] - 1e-5).all()
    registered = bound("crown", net, Box(lo.reshape(net.input_shape), hi.reshape(net.input_shape)),
                       prop=_prop(C, d)).lower  # fmt: skip
    assert (registered >= b["ibp"] - 1e-9).all() and (registered >= b["crown"] - 1e-9).all()
    assert (b["alpha"] >= b["crown"] - 1e-9).all()
    assert (b["lp"] >= b["crown"] - 1e-9).all() and (b["lp"] >= b["ibp"] - 1e-9).all()
    assert (b["lp_ibp"] >= b["ibp"] - 1e-9).all()


def _prop(C, d):
    from stalwart.certify import OutputProperty

    return OutputProperty([(C[i : i + 1], d[i : i + 1]) for i in range(len(C))])


def test_lp_and_crown_are_strictly_tighter_somewhere():
    gains = {"crown": 0.0, "lp": 0.0, "alpha": 0.0, "refine": 0.0}
    for seed in range(4):
        net = mlp_net(seed)
        lo, hi, C, d = random_problem(net, seed, width=0.5)
        b = all_bounds(net, lo, hi, C, d)
        gains["crown"] += float((b["crown"] - b["ibp"]).sum())
        gains["alpha"] += float((b["alpha"] - b["crown"]).sum())
        gains["lp"] += float((b["lp"] - b["crown"]).sum())
        refined = lp.lp_rows(net, lo, hi, C, d, refine=True)
        assert (refined >= b["lp"] - 1e-9).all()
        gains["refine"] += float((refined - b["lp"]).sum())
    assert all(g > 1e-3 for g in gains.values()), gains


@pytest.mark.parametrize("seed", range(5))
def test_lp_below_milp_optimum_below_sampled_minimum(seed):
    net = mlp_net(seed, (3, 8, 8, 3))
    lo, hi, C, d = random_problem(net, seed, width=0.5)
    optimum = milp_optimum(net, lo, hi, C, d)
    truth = attacked_min(net, lo, hi, C, d)
    b = all_bounds(net, lo, hi, C, d)
    assert (optimum <= truth + 1e-6).all()
    assert (truth - optimum < 1e-2).all()  # the attack gets close to the exact minimum
    for method, value in b.items():
        assert (value <= optimum + 1e-6).all(), method


@pytest.mark.parametrize(("name", "net"), CASES[:8:2] + CASES[-2:], ids=lambda c: str(c)[:8])
def test_intermediate_bounds_contain_sampled_activations_and_batch(name, net):
    lo, hi, _, _ = random_problem(net, 3)
    bounds = crown.crown_layer_bounds(net, lo, hi)
    interval = layer_bounds(net, lo[None], hi[None])
    x = lo + torch.rand(3000, lo.numel(), dtype=D) * (hi - lo)
    for (low, high), (il, iu), z in zip(bounds, interval, net.activations(x), strict=True):
        assert (z >= low - 1e-9).all() and (z <= high + 1e-9).all()
        assert (low >= il[0] - 1e-12).all() and (high <= iu[0] + 1e-12).all()
    lo2, hi2, _, _ = random_problem(net, 4)
    batched = crown.crown_layer_bounds(net, torch.stack([lo, lo2]), torch.stack([hi, hi2]))
    for (bl, bu), (low, high) in zip(batched, bounds, strict=True):
        assert torch.allclose(bl[0], low) and torch.allclose(bu[0], high)


def test_single_relu_by_hand():
    # f(x) = relu(x) on [-1, 2]: CROWN's adaptive lower line is h ≥ x (u > -l), so its bound
    # is -1; the upper chord 2(x + 1)/3 gives 2; α-CROWN finds the slope 0 and the exact 0.
    net = from_ops([Dense(torch.ones(1, 1, dtype=D), torch.zeros(1, dtype=D)), "relu",
                    Dense(torch.ones(1, 1, dtype=D), torch.zeros(1, dtype=D))], (1,))  # fmt: skip
    lo, hi = torch.tensor([-1.0], dtype=D), torch.tensor([2.0], dtype=D)
    C, zero = torch.tensor([[1.0], [-1.0]], dtype=D), torch.zeros(2, dtype=D)
    plain = crown.crown_rows(net, lo, hi, C, zero)
    assert torch.allclose(plain, torch.tensor([-1.0, -2.0], dtype=D))
    optimised = crown.crown_rows(net, lo, hi, C, zero, alpha=True, steps=30, lr=0.2)
    assert torch.allclose(optimised, torch.tensor([0.0, -2.0], dtype=D), atol=1e-9)
    assert torch.allclose(lp.lp_rows(net, lo, hi, C, zero), torch.tensor([0.0, -2.0], dtype=D))


def test_crown_is_differentiable_in_parameters():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 2))
    net = from_module(model, (3,))
    lo, hi = torch.zeros(2, 3), torch.full((2, 3), 0.5)
    value = crown.crown_rows(net, lo, hi, torch.tensor([[1.0, -1.0]]), torch.zeros(1))
    value.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_registry_options_and_float32():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.rand(1, 2, 3)
    box = Box(x - 0.1, x + 0.1)
    plain = bound("crown", model, box, margin_of=0)
    tuned = bound("crown+alpha", model, box, margin_of=0, steps=5)
    exact = bound("lp", model, box, margin_of=0, intermediate="ibp", refine=True)
    fast = bound("crown", model, box, margin_of=0, dtype=torch.float32)
    assert plain.lower.dtype == torch.float64 and plain.lower.shape == (2,)
    assert fast.lower.dtype == torch.float32 and (fast.lower <= plain.lower).all()
    assert (tuned.lower >= plain.lower - 1e-12).all() and (exact.lower.isfinite()).all()
    with pytest.raises(ConfigError, match="'step'.*did you mean 'steps'"):
        bound("crown+alpha", model, box, margin_of=0, step=5)
    with pytest.raises(ConfigError, match="crown\\+alpha"):
        bound("crown", model, box, margin_of=0, alpha=True)
    with pytest.raises(ConfigError, match="intermediate"):
        bound("lp", model, box, margin_of=0, intermediate="sdp")


def test_lp_falls_back_to_a_sound_bound_when_highs_fails(monkeypatch):
    net = mlp_net(2)
    lo, hi, C, d = random_problem(net, 2)

    class Failed:
        status, message = 4, "numerical difficulties"

    monkeypatch.setattr(lp, "linprog", lambda *a, **k: Failed())
    value = lp.lp_rows(net, lo, hi, C, d)
    expected = torch.maximum(crown.crown_rows(net, lo, hi, C, d),
                             ibp_rows(net, lo[None], hi[None], C, d)[0])  # fmt: skip
    assert torch.allclose(value, expected)


def test_lp_dual_value_is_sound_for_any_multipliers():
    # Perturbed multipliers must still give a bound below the LP optimum.
    net = mlp_net(3)
    lo, hi, C, _ = random_problem(net, 3)
    bounds = crown.crown_layer_bounds(net, lo, hi)
    enc = lp.encode(net, lo, hi, bounds)
    c = C[0].numpy() @ enc.out_matrix
    from scipy.optimize import linprog

    result = linprog(c, A_ub=enc.A, b_ub=enc.b, bounds=list(zip(enc.lower, enc.upper, strict=True)))
    exact = lp.dual_value(enc, c, result)
    assert abs(exact - result.fun) < 1e-6
    result.ineqlin.marginals = result.ineqlin.marginals * 0.7 + 0.1  # some now of wrong sign
    assert lp.dual_value(enc, c, result) <= result.fun + 1e-9


@pytest.mark.parametrize("sizes", [(4, 12, 12, 3), (5, 12, 12, 12, 3)])
def test_layer_bounds_in_pairs_equal_the_plain_backward_pass_of_both_rows(sizes):
    # Layer bounds bound a unit's ±e_k rows together (half the work through the first ReLU,
    # products only over the units that can be non-zero); it must be the same relaxation.
    for seed in range(3):
        net = mlp_net(seed, sizes).detach(dtype=torch.float64)
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(3, sizes[0], generator=g, dtype=torch.float64)
        lo, hi = x - 0.3, x + 0.3
        bounds = crown.crown_layer_bounds(net, lo, hi, intersect_ibp=False)
        inactive = sum(int((ub <= 0).sum()) for _, ub in bounds[:-1])
        assert inactive > 0  # the products skip some units
        for depth in range(1, len(net.layers)):
            eye = torch.eye(net.layers[depth].out_features, dtype=torch.float64)
            plain = crown.backward_bound(net, depth, lo, hi, torch.cat([eye, -eye]), None, bounds)
            paired = crown._pair_bound(net, depth, lo, hi, eye, bounds)
            torch.testing.assert_close(paired, plain, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_alpha_optimised_layer_bounds_are_within_crowns_and_hold_on_sampled_points(seed):
    net = mlp_net(seed, (5, 16, 16, 16, 3)).detach(dtype=torch.float64)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 5, generator=g, dtype=torch.float64)
    lo, hi = x - 0.4, x + 0.4
    plain = crown.crown_layer_bounds(net, lo, hi)
    tight = crown.alpha_layer_bounds(net, lo, hi, steps=20, lr=0.1)
    narrowed = []
    for (tl, tu), (pl, pu) in zip(tight, plain, strict=True):
        assert bool((tl >= pl - 1e-12).all() and (tu <= pu + 1e-12).all())
        narrowed.append(float((pu - pl - (tu - tl)).sum()))
    assert narrowed[0] == 0 and min(narrowed[1:]) > 1e-3  # the deep layers get tighter
    points = lo + (hi - lo) * torch.rand(2000, *lo.shape, generator=g, dtype=torch.float64)
    h = points
    for i, layer in enumerate(net.layers):
        z = layer.forward(h.reshape(-1, h.shape[-1])).reshape(*h.shape[:-1], -1)
        lb, ub = tight[i]
        assert bool((z >= lb - 1e-9).all() and (z <= ub + 1e-9).all())
        h = z.relu()
