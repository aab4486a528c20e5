"""SDP-FO (arXiv 2010.11645) against independent references on tiny networks.

References written here: the exact minimum of a row by a big-M MILP (scipy/HiGHS), the primal
SDP of Raghunathan et al. 2018 (arXiv 1811.01057) solved by cvxpy/SCS, autograd derivatives of
the Lagrangian, a dense eigensolver, sampled and attacked inputs.
"""

from __future__ import annotations

import math

import cvxpy as cp
import numpy as np
import pytest
import torch
from scipy.optimize import Bounds, LinearConstraint, milp

from stalwart.certify import sdp
from stalwart.certify.bounds import bound
from stalwart.certify.ibp import ibp_rows, layer_bounds
from stalwart.certify.network import Conv, Dense, Network, Scale, from_ops
from stalwart.certify.spec import Box
from stalwart.errors import ConfigError

F64 = torch.float64


def tiny_net(sizes: list[int], seed: int) -> Network:
    g = torch.Generator().manual_seed(seed)
    layers = [
        Dense(torch.randn(o, i, generator=g, dtype=F64), torch.randn(o, generator=g, dtype=F64))
        for i, o in zip(sizes, sizes[1:], strict=False)
    ]
    return Network(layers, (sizes[0],))


def box_around(n: int, seed: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, generator=torch.Generator().manual_seed(100 + seed), dtype=F64)
    return x - eps, x + eps


MARGINS = (torch.tensor([[1.0, -1.0, 0.0], [1.0, 0.0, -1.0]], dtype=F64), torch.zeros(2, dtype=F64))


def _hidden_pre_bounds(net: Network, lower, upper) -> list[tuple[np.ndarray, np.ndarray]]:
    hidden = Network(net.layers[:-1], net.input_shape)
    return [
        (lo[0].numpy(), hi[0].numpy()) for lo, hi in layer_bounds(hidden, lower[None], upper[None])
    ]


def exact_min(net: Network, lower, upper, c, d) -> float:
    """min of c·f(x) + d over the box: big-M MILP on IBP pre-activation bounds (exact)."""
    weights = [(layer.weight.numpy(), layer.bias.numpy()) for layer in net.layers]
    pre = _hidden_pre_bounds(net, lower, upper)
    n0 = lower.numel()
    sizes = [n0] + [2 * len(b) for _, b in weights[:-1]]
    nv = sum(sizes)
    lb, ub = list(lower.numpy()), list(upper.numpy())
    integrality = [0] * n0
    rows, rl, ru = [], [], []
    x_index, start = np.arange(n0), n0
    for (W, b), (pl, pu) in zip(weights[:-1], pre, strict=True):
        k = len(b)
        z, delta = np.arange(start, start + k), np.arange(start + k, start + 2 * k)
        start += 2 * k
        lb += [0.0] * 2 * k
        ub += list(np.maximum(pu, 0.0)) + [1.0] * k
        integrality += [0] * k + [1] * k
        for i in range(k):
            base = np.zeros(nv)
            base[z[i]] = 1.0
            base[x_index] -= W[i]
            rows.append(base.copy()), rl.append(b[i]), ru.append(np.inf)  # z ≥ Wx + b
            upper_row = base.copy()
            upper_row[delta[i]] = -pl[i]  # z ≤ Wx + b − l(1 − δ)
            rows.append(upper_row), rl.append(-np.inf), ru.append(b[i] - pl[i])
            on = np.zeros(nv)
            on[z[i]], on[delta[i]] = 1.0, -max(pu[i], 0.0)  # z ≤ u δ
            rows.append(on), rl.append(-np.inf), ru.append(0.0)
        x_index = z
    W, b = weights[-1]
    objective = np.zeros(nv)
    objective[x_index] = c.numpy() @ W
    result = milp(
        objective,
        constraints=LinearConstraint(np.array(rows), rl, ru),
        integrality=integrality,
        bounds=Bounds(lb, ub),
    )
    assert result.success
    return float(result.fun + c.numpy() @ b + float(d))


def primal_sdp(net: Network, lower, upper, c, d) -> float:
    """Raghunathan et al.'s SDP: P = [[1, xᵀ], [x, X]] ⪰ 0 over inputs and activations."""
    weights = [(layer.weight.numpy(), layer.bias.numpy()) for layer in net.layers]
    pre = _hidden_pre_bounds(net, lower, upper)
    boxes = [(lower.numpy(), upper.numpy())] + [
        (np.maximum(a, 0), np.maximum(b, 0)) for a, b in pre
    ]
    sizes = [len(lo) for lo, _ in boxes]
    offsets = np.cumsum([1, *sizes])
    spans = [slice(offsets[i], offsets[i + 1]) for i in range(len(sizes))]
    P = cp.Variable((offsets[-1], offsets[-1]), symmetric=True)
    constraints = [P >> 0, P[0, 0] == 1]
    for j, (W, b) in enumerate(weights[:-1]):
        x, z = P[0, spans[j]], P[0, spans[j + 1]]
        constraints += [
            z >= 0,
            z >= W @ x + b,
            cp.diag(P[spans[j + 1], spans[j + 1]])
            == cp.diag(W @ P[spans[j], spans[j + 1]]) + cp.multiply(b, z),
        ]
    for span, (lo, hi) in zip(spans, boxes, strict=True):
        constraints.append(cp.diag(P[span, span]) <= cp.multiply(lo + hi, P[0, span]) - lo * hi)
    W, b = weights[-1]
    cn = c.numpy()
    problem = cp.Problem(cp.Minimize((cn @ W) @ P[0, spans[-1]] + cn @ b + float(d)), constraints)
    problem.solve(solver=cp.SCS, eps=1e-8, max_iters=100_000)
    assert problem.status == cp.OPTIMAL
    return float(problem.value)


def attacked_min(net: Network, lower, upper, c, d, seed: int = 0) -> float:
    """Smallest row value found by sampling and sign-gradient descent inside the box."""
    g = torch.Generator().manual_seed(seed)
    x = lower + (upper - lower) * torch.rand(256, lower.numel(), generator=g, dtype=F64)
    best = float((net(x) @ c + d).min())
    x.requires_grad_(True)
    for _ in range(50):
        value = net(x) @ c + d
        (grad,) = torch.autograd.grad(value.sum(), x)
        with torch.no_grad():
            x -= 0.05 * (upper - lower) * grad.sign()
            x.copy_(torch.maximum(torch.minimum(x, upper), lower))
        best = min(best, float(value.detach().min()))
    return min(best, float((net(x.detach()) @ c + d).min()))


def test_ibp_initialisation_reproduces_ibp():
    net = tiny_net([5, 8, 8, 3], seed=1)
    lower, upper = box_around(5, 1, 0.3)
    C, d = MARGINS
    expected = ibp_rows(net, lower[None], upper[None], C, d)[0]
    problem = sdp.rows_problem(net, sdp.activation_boxes(net, lower, upper), C, d)
    values = -sdp.exact_upper(problem, sdp.ibp_duals(problem)) * problem.scale
    torch.testing.assert_close(values, expected, atol=1e-4, rtol=0)
    rows, sound = sdp.sdp_rows(net, lower, upper, C, d, steps=0)
    assert sound
    torch.testing.assert_close(rows, expected, atol=1e-4, rtol=0)
    # The same through the registry, in float32: below IBP by at most its rounding allowance.
    result = bound("sdp", net, Box(lower, upper), margin_of=0, dtype=torch.float32, steps=0,
                   intermediate="ibp")  # fmt: skip
    assert result.sound and result.method == "sdp"
    assert (result.lower.double() <= expected).all()
    torch.testing.assert_close(result.lower.double(), expected, atol=1e-3, rtol=0)


def _lagrangian(problem, duals, z_flat):
    """The Lagrangian of the batch's one row at ``z``, written out directly."""
    z = problem.split(z_flat)
    x = [m[0] + r[0] * zi for m, r, zi in zip(problem.centre, problem.radius, z, strict=True)]
    value = problem.objective[0] @ x[-1] + problem.offset[0]
    for j, layer in enumerate(problem.hidden):
        pre = layer.forward(x[j][None])[0]
        lam, mup, mum = duals.lam[j][0], duals.mu_plus[j][0], duals.mu_minus[j][0]
        value = value + lam @ (x[j + 1] * (pre - x[j + 1]))
        value = value + mup @ (x[j + 1] - pre) + mum @ x[j + 1]
    for nu, xi, lo, hi in zip(duals.nu, x, problem.lower, problem.upper, strict=True):
        value = value - nu[0] @ ((xi - lo[0]) * (xi - hi[0]))
    return value


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_closed_form_products_match_autograd(kind):
    g = torch.Generator().manual_seed(3)
    if kind == "dense":
        net = tiny_net([4, 6, 5, 3], seed=3)
        lower, upper = box_around(4, 3, 0.4)
    else:
        conv = Conv(
            torch.randn(2, 1, 3, 3, generator=g, dtype=F64),
            torch.randn(2, dtype=F64),
            (1, 5, 5),
            (2, 2),
            (1, 1),
        )
        scale = Scale(
            torch.rand(25, generator=g, dtype=F64) + 0.5, torch.randn(25, generator=g, dtype=F64)
        )
        dense = Dense(
            torch.randn(3, conv.out_features, generator=g, dtype=F64), torch.randn(3, dtype=F64)
        )
        net = from_ops([scale, "relu", conv, "relu", dense], (1, 5, 5))
        lower, upper = box_around(25, 3, 0.3)
    C, d = MARGINS
    problem = sdp.rows_problem(net, sdp.activation_boxes(net, lower, upper), C[:1], d[:1])
    duals = sdp.ibp_duals(problem)
    for t in duals.tensors():
        t.copy_(torch.rand(t.shape, generator=g, dtype=F64) - 0.3)
    zero = torch.zeros(problem.n - 1, dtype=F64)
    c, grad = sdp.constant_and_gradient(problem, duals)
    assert float(c[0]) == pytest.approx(float(_lagrangian(problem, duals, zero)), abs=1e-10)
    jac = torch.autograd.functional.jacobian(lambda z: _lagrangian(problem, duals, z), zero)
    torch.testing.assert_close(grad[0], jac)
    hess = torch.autograd.functional.hessian(lambda z: _lagrangian(problem, duals, z), zero)
    v = torch.randn(3, problem.n - 1, generator=g, dtype=F64)
    torch.testing.assert_close(sdp.hessian_product(problem, duals, v), v @ hess)


def test_lanczos_estimates_lambda_min_from_above():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(60, 60, generator=g, dtype=F64)
    a = (q + q.T) / 2
    exact = float(torch.linalg.eigvalsh(a)[0])
    start = torch.randn(1, 60, generator=g, dtype=F64)
    full, vec = sdp.lanczos_min(lambda u: u @ a, start, 60)
    assert float(full[0]) == pytest.approx(exact, abs=1e-8)
    assert float(vec[0] @ a @ vec[0]) == pytest.approx(exact, abs=1e-8)
    for k in (3, 10, 25):
        ritz, _ = sdp.lanczos_min(lambda u: u @ a, start, k)
        assert float(ritz[0]) >= exact - 1e-10


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sound_against_exact_minimum_and_attacks(seed):
    net = tiny_net([2, 4, 4, 3], seed)
    lower, upper = box_around(2, seed, 0.3)
    C, d = MARGINS
    rows, sound = sdp.sdp_rows(net, lower, upper, C, d, steps=300, lr=3.0)
    assert sound
    ibp = ibp_rows(net, lower[None], upper[None], C, d)[0]
    for i in range(len(C)):
        exact = exact_min(net, lower, upper, C[i], d[i])
        assert exact <= attacked_min(net, lower, upper, C[i], d[i]) + 1e-9
        assert float(rows[i]) <= exact + 1e-7
        assert float(rows[i]) >= float(ibp[i]) - 1e-9


@pytest.mark.parametrize("seed", [0, 4])
def test_close_to_primal_sdp_and_never_tighter(seed):
    net = tiny_net([2, 4, 4, 3], seed)
    lower, upper = box_around(2, seed, 0.3)
    C, d = MARGINS
    rows, sound = sdp.sdp_rows(net, lower, upper, C[:1], d[:1], steps=1000, lr=3.0)
    assert sound
    primal = primal_sdp(net, lower, upper, C[0], d[0])
    ibp = float(ibp_rows(net, lower[None], upper[None], C[:1], d[:1])[0, 0])
    scale = max(abs(primal), primal - ibp, 1e-3)
    assert float(rows[0]) <= primal + 1e-5 * scale  # tighter than the relaxation: unsound
    assert primal - float(rows[0]) <= 0.003 * scale


def test_strictly_better_than_ibp_where_ibp_is_loose():
    net = tiny_net([2, 4, 4, 3], seed=0)
    lower, upper = box_around(2, 0, 0.3)
    C, d = MARGINS
    rows, _ = sdp.sdp_rows(net, lower, upper, C[:1], d[:1], steps=300, lr=3.0)
    ibp = float(ibp_rows(net, lower[None], upper[None], C[:1], d[:1])[0, 0])
    exact = exact_min(net, lower, upper, C[0], d[0])
    assert exact - ibp > 0.02  # IBP is loose here
    assert float(rows[0]) - ibp > 0.5 * (exact - ibp)


def test_large_n_is_an_estimate_and_cuda_free_defaults():
    net = tiny_net([6, 10, 10, 3], seed=5)
    lower, upper = box_around(6, 5, 0.2)
    C, d = MARGINS
    rows, sound = sdp.sdp_rows(net, lower, upper, C, d, steps=20, lanczos_iters=8,
                               exact_max_n=5, proof_max_n=5)  # fmt: skip
    assert not sound
    assert rows.shape == (2,) and rows.dtype == F64
    result = bound("sdp", net, Box(lower, upper), margin_of=1, steps=5, exact_max_n=5,
                   proof_max_n=5)  # fmt: skip
    assert not result.sound


def test_above_the_exact_size_a_cholesky_proves_the_estimate(monkeypatch):
    # N = 23 treated as too large for an eigendecomposition (exact_max_n = 5): 8 Lanczos
    # iterations estimate λ_min during the optimisation, a Cholesky proof ends it.
    monkeypatch.setattr(sdp, "DENSE_MAX_N", 0)
    net = tiny_net([2, 10, 10, 3], seed=5)
    lower, upper = box_around(2, 5, 0.3)
    C, d = MARGINS
    options = dict(steps=200, lr=3.0, lanczos_iters=8)
    proven, sound = sdp.sdp_rows(net, lower, upper, C, d, exact_max_n=5, **options)
    estimate, _ = sdp.sdp_rows(net, lower, upper, C, d, exact_max_n=5, proof_max_n=5, **options)
    exact, _ = sdp.sdp_rows(net, lower, upper, C, d, **options)
    ibp = ibp_rows(net, lower[None], upper[None], C, d)[0]
    assert sound
    for i in range(len(C)):
        assert float(proven[i]) <= exact_min(net, lower, upper, C[i], d[i]) + 1e-7
        assert float(proven[i]) <= float(estimate[i])  # the estimate, loosened until proven
        assert float(proven[i]) > float(ibp[i]) + 0.5 * (float(exact[i]) - float(ibp[i]))


def test_pre_bounds_are_used_and_checked():
    net = tiny_net([3, 6, 6, 3], seed=6)
    lower, upper = box_around(3, 6, 0.3)
    C, d = MARGINS
    pre = layer_bounds(net, lower[None], upper[None])
    same, _ = sdp.sdp_rows(net, lower, upper, C, d, steps=0, pre_bounds=pre)
    torch.testing.assert_close(same, sdp.sdp_rows(net, lower, upper, C, d, steps=0)[0])
    # Narrower second-layer bounds (not sound, only to see that they are used) move the bound.
    shrunk = [pre[0], ((pre[1][0] + pre[1][1]) / 2 - 0.01, (pre[1][0] + pre[1][1]) / 2 + 0.01)]
    tighter, _ = sdp.sdp_rows(net, lower, upper, C, d, steps=0, pre_bounds=shrunk)
    assert not torch.allclose(tighter, same)
    with pytest.raises(ConfigError, match="pre_bounds"):
        sdp.sdp_rows(net, lower, upper, C, d, pre_bounds=pre[:1])
    with pytest.raises(ConfigError, match="steps"):
        sdp.sdp_rows(net, lower, upper, C, d, steps=-1)


def test_stop_at_failure_reports_the_rest_as_minus_infinity():
    net = tiny_net([5, 8, 8, 3], seed=1)
    lower, upper = box_around(5, 1, 0.3)
    C = torch.cat([MARGINS[0], -MARGINS[0]])  # a row and its negation: one must fail
    d = torch.zeros(4, dtype=F64)
    full, _ = sdp.sdp_rows(net, lower, upper, C, d, steps=20)
    stopped, sound = sdp.sdp_rows(net, lower, upper, C, d, steps=20, stop_at_failure=True)
    first_failure = int(torch.nonzero(full <= 0)[0])
    assert sound
    torch.testing.assert_close(stopped[: first_failure + 1], full[: first_failure + 1])
    assert torch.isinf(stopped[first_failure + 1 :]).all()


def test_a_network_without_hidden_layers_gets_its_exact_minimum():
    # One affine map: the minimum of a linear function over a box, by hand.
    g = torch.Generator().manual_seed(7)
    weight = torch.randn(3, 4, generator=g, dtype=F64)
    bias = torch.randn(3, generator=g, dtype=F64)
    net = Network([Dense(weight, bias)], (4,))
    lower, upper = box_around(4, 7, 0.3)
    C, d = MARGINS
    rows = C @ weight
    by_hand = (torch.minimum(rows * lower, rows * upper)).sum(1) + C @ bias + d
    for dtype in (F64, torch.float32):
        result = bound("sdp", net, Box(lower, upper), prop=_prop(C, d), dtype=dtype)
        assert result.sound
        assert (result.lower.double() <= by_hand + 1e-12).all()
        torch.testing.assert_close(result.lower.double(), by_hand, atol=1e-4, rtol=0)
    torch.testing.assert_close(sdp.sdp_rows(net, lower, upper, C, d)[0], by_hand)


def _prop(C, d):
    from stalwart.certify.spec import OutputProperty

    return OutputProperty([(C[i : i + 1], d[i : i + 1]) for i in range(len(C))])


def test_an_eigensolver_that_fails_never_crashes_and_stays_sound(monkeypatch):
    net = tiny_net([3, 5, 5, 3], seed=2)
    lower, upper = box_around(3, 2, 0.3)
    C, d = MARGINS
    ibp = ibp_rows(net, lower[None], upper[None], C, d)[0]
    exact = [exact_min(net, lower, upper, C[i], d[i]) for i in range(len(C))]
    real_eigh = torch.linalg.eigh
    calls = {"float32": 0, "float64": 0}

    def float32_fails(a, *args, **kwargs):
        calls[str(a.dtype).split(".")[-1]] += 1
        if a.dtype != F64:
            raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")
        return real_eigh(a, *args, **kwargs)

    monkeypatch.setattr(torch.linalg, "eigh", float32_fails)
    rows, sound = sdp.sdp_rows(net.detach(dtype=torch.float32), lower.float(), upper.float(),
                               C.float(), d.float(), steps=30, lr=3.0)  # fmt: skip
    assert calls["float32"] > 0 and calls["float64"] >= calls["float32"]  # retried in float64
    assert sound and (rows.double() <= torch.tensor(exact, dtype=F64) + 1e-6).all()

    def always_fails(a, *args, **kwargs):
        raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "eigh", always_fails)
    monkeypatch.setattr(torch.linalg, "eigvalsh", always_fails)
    rows, sound = sdp.sdp_rows(net, lower, upper, C, d, steps=30, lr=3.0)
    # Nothing certified beyond the interval bound, but nothing raised and nothing unsound.
    assert sound
    torch.testing.assert_close(rows, ibp)


def count_steps(monkeypatch) -> list[int]:
    """Counts SDP-FO's optimisation steps: one entry per row and step (rows are batched)."""
    calls = []
    original = sdp._dual_value

    def counted(problem, duals, vec):
        calls.extend([1] * problem.batch)
        return original(problem, duals, vec)

    monkeypatch.setattr(sdp, "_dual_value", counted)
    return calls


def test_a_row_stops_once_an_exact_eigenvalue_proves_it_and_stays_sound(monkeypatch):
    # IBP cannot prove this row (−0.57); 300 steps of SDP-FO reach about +0.39.
    net = tiny_net([2, 4, 4, 3], seed=4)
    lower, upper = box_around(2, 4, 0.1)
    C, d = MARGINS[0][:1], torch.full((1,), 0.5, dtype=F64)
    assert float(ibp_rows(net, lower[None], upper[None], C, d)[0, 0]) < 0
    steps = count_steps(monkeypatch)
    full, _ = sdp.sdp_rows(net, lower, upper, C, d, steps=300, lr=3.0)
    assert len(steps) == 300 and float(full[0]) > 0
    steps.clear()
    early, sound = sdp.sdp_rows(net, lower, upper, C, d, steps=300, lr=3.0,
                                stop_when_certified=True)  # fmt: skip
    assert sound and 0 < len(steps) < 300
    assert 0 < float(early[0]) <= float(full[0]) + 1e-9  # proven, not the tightest
    assert float(early[0]) <= exact_min(net, lower, upper, C[0], d[0]) + 1e-7


def test_rows_that_are_never_proven_run_every_step_and_give_the_same_bound(monkeypatch):
    net = tiny_net([2, 4, 4, 3], seed=0)
    lower, upper = box_around(2, 0, 0.2)
    C, d = MARGINS
    full, _ = sdp.sdp_rows(net, lower, upper, C, d, steps=100, lr=3.0)
    steps = count_steps(monkeypatch)
    early, _ = sdp.sdp_rows(net, lower, upper, C, d, steps=100, lr=3.0, stop_when_certified=True)
    assert len(steps) == 200 and torch.equal(early, full)
    assert bool((full < 0).all())


def test_points_batched_together_get_the_bounds_each_gets_alone():
    # The dense eigenvalue path (N ≤ 256) is deterministic: a row's trajectory may not depend
    # on the other rows in its batch.
    net = tiny_net([3, 6, 6, 3], seed=8)
    C, d = MARGINS
    boxes = [box_around(3, seed, 0.25) for seed in (8, 9, 10)]
    alone = [sdp.sdp_rows(net, lo, hi, C, d, steps=60, lr=3.0)[0] for lo, hi in boxes]
    lower = torch.stack([lo for lo, _ in boxes])
    upper = torch.stack([hi for _, hi in boxes])
    together, sound = sdp.sdp_points(net, lower, upper, C.expand(3, -1, -1), d.expand(3, -1),
                                     steps=60, lr=3.0)  # fmt: skip
    assert sound and together.shape == (3, 2)
    torch.testing.assert_close(together, torch.stack(alone), rtol=0, atol=1e-6)
    ibp = ibp_rows(net, lower, upper, C, d)
    assert not torch.allclose(together, ibp, atol=1e-3)  # the optimisation moved the bounds


def test_a_cholesky_proves_exactly_the_bounds_the_eigenvalue_allows():
    net = tiny_net([3, 6, 6, 3], seed=2)
    lower, upper = box_around(3, 2, 0.3)
    C, d = MARGINS
    problem = sdp.rows_problem(net, sdp.activation_boxes(net, lower, upper), C, d)
    duals = sdp.ibp_duals(problem)
    g = torch.Generator().manual_seed(2)
    for t in duals.tensors():
        t.add_(0.3 * torch.rand(t.shape, generator=g, dtype=F64))  # some shift is needed
    exact = sdp.exact_upper(problem, duals)
    base = sdp.constant_and_gradient(problem, duals)[0] + 0.5 * duals.kappa.sum(-1)
    assert bool((exact > base + 1e-3).all())  # diag(κ) − M is not PSD: λ_min matters
    above = sdp.proven_upper(problem, duals, exact + 1e-6)
    torch.testing.assert_close(above, exact + 1e-6)  # proven, at the aim
    below = sdp.proven_upper(problem, duals, exact - 1e-6)
    assert bool(torch.isinf(below).all())  # a tighter bound than λ_min allows is never proven


def test_rows_that_leave_the_batch_leave_the_others_unchanged(monkeypatch):
    # Two points: one row is proven early and leaves; the other runs every step and ends with
    # the bound it reaches without proofs (its optimiser state followed it). In float64, so
    # that a batch's size cannot change the rounding of its products.
    monkeypatch.setattr(sdp, "OPTIMISE_DTYPE", F64)
    net = tiny_net([2, 4, 4, 3], seed=4)
    first, second = box_around(2, 4, 0.1), box_around(2, 0, 0.2)
    lower = torch.stack([first[0], second[0]])
    upper = torch.stack([first[1], second[1]])
    C2 = torch.cat([MARGINS[0][:1], MARGINS[0][:1]]).reshape(2, 1, 3)
    d2 = torch.tensor([[0.5], [-0.5]], dtype=F64)
    full, _ = sdp.sdp_points(net, lower, upper, C2, d2, steps=300, lr=3.0)
    assert float(full[0, 0]) > 0 > float(full[1, 0])
    steps = count_steps(monkeypatch)
    early, sound = sdp.sdp_points(net, lower, upper, C2, d2, steps=300, lr=3.0,
                                  stop_when_certified=True)  # fmt: skip
    assert sound and 300 < len(steps) < 600  # the first row left early, the second did not
    assert 0 < float(early[0, 0]) <= float(full[0, 0]) + 1e-9
    assert float(early[1, 0]) == pytest.approx(float(full[1, 0]), abs=1e-7)


def test_a_hopeless_row_gives_up_its_whole_point_and_leaves_the_others_unchanged(monkeypatch):
    # Three points of two rows; the middle point's first row is 5 below zero everywhere
    # (hopeless), every other row holds with room to spare. With give_up the middle point's
    # two rows leave together at the second look; the others run every step, to the bounds
    # they reach without it (float64: a batch's size cannot change the rounding).
    monkeypatch.setattr(sdp, "OPTIMISE_DTYPE", F64)
    net = tiny_net([2, 4, 4, 3], seed=0)
    boxes = [box_around(2, seed, 0.2) for seed in (0, 1, 2)]
    lower = torch.stack([lo for lo, _ in boxes])
    upper = torch.stack([hi for _, hi in boxes])
    C = MARGINS[0].expand(3, -1, -1)
    d = torch.tensor([[9.0, 9.0], [-5.0, 9.0], [9.0, 9.0]], dtype=F64)
    steps = 200
    full, _ = sdp.sdp_points(net, lower, upper, C, d, steps=steps, lr=3.0)
    assert float(full[1, 0]) < 0 < float(full[[0, 2]].min())
    counted = count_steps(monkeypatch)
    quick, sound = sdp.sdp_points(net, lower, upper, C, d, steps=steps, lr=3.0, give_up=True)
    first_look = math.ceil(sdp.GIVE_UP_FROM * steps)
    assert sound and len(counted) == 4 * steps + 2 * (first_look + sdp.CHECK_EVERY + 1)
    torch.testing.assert_close(quick[[0, 2]], full[[0, 2]], rtol=0, atol=1e-9)
    assert float(quick[1, 0]) <= exact_min(net, lower[1], upper[1], C[1, 0], d[1, 0]) + 1e-7
    assert float(quick[1, 0]) <= float(full[1, 0]) + 1e-9  # fewer steps: a looser bound


def test_certified_accuracy_batches_points_and_agrees_with_one_point_at_a_time(monkeypatch):
    from torch import nn

    from stalwart.certify import accuracy
    from stalwart.certify.spec import LinfBall
    from stalwart.data.core import GroupedDataset

    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.rand(7, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(3)  # margins that ε = 0.2 makes hard: IBP certifies 2 of 7
        y = model(x).argmax(1)
    data = GroupedDataset(x, y, y, n_classes=3, group_names=["0", "1", "2"], name="points")
    # Every point robust to the attack, so every one is bounded; batches of 3 points (3, 3, 1).
    monkeypatch.setattr(accuracy, "pgd", lambda model, x, y, **kw: x)
    monkeypatch.setattr(accuracy, "SDP_POINTS", 3)
    monkeypatch.setattr(sdp, "OPTIMISE_DTYPE", F64)  # no rounding differences between batches
    options = {"steps": 40, "lr": 3.0}
    eps = 0.2
    seen = []
    table = accuracy.certified_accuracy(model, data, eps=eps, bounds=["ibp", "sdp"],
                                        examples=7, options={"sdp": options},
                                        on_example=seen.append)  # fmt: skip
    assert seen == list(range(7))
    one_at_a_time = [
        bound(
            "sdp",
            model,
            LinfBall(x[i], eps),
            margin_of=int(y[i]),
            stop_at_failure=True,
            stop_when_certified=True,
            **options,
        ).certified  # fmt: skip
        for i in range(7)
    ]
    certified = table["bounds"]["sdp"]["certified"]
    assert certified == pytest.approx(sum(one_at_a_time) / 7)
    assert 0 < sum(one_at_a_time) < 7  # some points certified, not all
    assert table["bounds"]["ibp"]["certified"] < certified
