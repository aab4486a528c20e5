"""Floating point: float64 certificates by default, float32 ones with a rigorous allowance,
boxes rounded the safe way, and counterexamples checked alone in float64 inside the box as
written (issue 9, items 14 and 16)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from stalwart.certify import Box, Dense, LinfBall, OutputProperty, bound, from_module, from_ops
from stalwart.certify.complete import _Checker, milp_optimum, search
from stalwart.certify.crown import crown_rows
from stalwart.certify.ibp import ibp_rows
from stalwart.certify.onnx_io import save_onnx
from stalwart.certify.rounding import inward, outward, round_down, rows_with_error, violates
from stalwart.certify.vnnlib import parse_vnnlib, read_counterexample
from stalwart.cli import app

F32, F64 = torch.float32, torch.float64


def large_weight_mlp(seed: int, scale: float = 20.0):
    """4-8-31-44-50-7 with weights ``scale`` times the usual: the shape of issue 9, item 14."""
    torch.manual_seed(seed)
    sizes = [4, 8, 31, 44, 50, 7]
    layers = []
    for a, b in zip(sizes, sizes[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return from_module(model, (4,)).detach()


def truth_at_milp_points(net, box, prop):
    C, d, _ = prop.stacked()
    _, points = milp_optimum(net, box.lower, box.upper, C, d, with_points=True)
    values = net.detach(dtype=F64)(points) @ C.T + d
    return values.diagonal()


def test_float32_bounds_overshoot_without_the_allowance_and_not_with_it():
    overshoots = 0
    for seed in range(4):
        net = large_weight_mlp(seed)
        x = torch.rand(4, generator=torch.Generator().manual_seed(seed))
        box = LinfBall(x, 1e-3)
        prop = OutputProperty.margin(int(net(x).argmax()), 7, dtype=F64)
        truth = truth_at_milp_points(net, box, prop)
        C, d, _ = prop.to(F32).stacked()
        lo, hi = outward(box.lower, box.upper, F32)
        naive = crown_rows(net, lo, hi, C, d).double()
        overshoots += int((naive > truth).any())
        safe = crown_rows(net, lo, hi, C, d, rounding=True).double()
        assert (safe <= truth).all(), (seed, (safe - truth).max())
        assert (ibp_rows(net, lo[None], hi[None], C, d, rounding=True)[0].double() <= truth).all()
        for name in ("crown", "crown+alpha", "lp"):
            fast = bound(name, net, box, prop=prop, dtype=F32).lower.double()
            exact = bound(name, net, box, prop=prop).lower  # float64 by default
            assert exact.dtype == F64
            assert (fast <= truth).all() and (exact <= truth + 1e-9 * truth.abs()).all(), name
            # The allowance costs some tightness, not all of it.
            assert (exact - fast <= 0.05 * (truth.abs() + 1)).all(), name
    assert overshoots >= 1  # the case the allowance exists for does occur here


def test_boxes_round_outward_for_bounds_and_inward_for_counterexamples():
    lower = torch.tensor([0.1, 0.643, -0.3, 0.5], dtype=F64)
    upper = torch.tensor([0.643, 0.7, 0.3, 0.5], dtype=F64)
    lo, hi = outward(lower, upper, F32)
    assert (lo.double() <= lower).all() and (hi.double() >= upper).all()
    assert (lo.double() < lower).any() and (hi.double() > upper).any()  # some did round
    lo, hi = inward(lower, upper, F32)
    assert (lo.double() >= lower).all() and (hi.double() <= upper).all()
    ball = LinfBall(torch.tensor([0.3, 0.7]), 0.1)
    exact_lo = [Fraction(float(np.float32(v))) - Fraction("0.1") for v in (0.3, 0.7)]
    assert all(Fraction(float(v)) <= q for v, q in zip(ball.lower, exact_lo, strict=True))


def test_numbers_computed_in_float64_are_rounded_down_into_float32():
    values = [0.1, 1 / 3, -2 / 3, 0.31765876063628196, 1e-40, 5.0]
    down = round_down(values, F32)
    exact = torch.tensor(values, dtype=F64)
    assert (down.double() <= exact).all()
    # And by no more than one float32 step: the next float32 up is above the value.
    assert (torch.nextafter(down, torch.full_like(down, torch.inf)).double() > exact).all()
    assert float(down[-1]) == 5.0  # exact values stay as they are


def test_vnnlib_boxes_as_written():
    text = """(declare-const X_0 Real)
(declare-const Y_0 Real)
(assert (>= X_0 0.1))
(assert (<= X_0 0.643))
(assert (>= Y_0 0.6))
"""
    (inst,) = parse_vnnlib(text)
    written = (Fraction("0.1"), Fraction("0.643"))
    assert Fraction(float(inst.inner.lower[0])) >= written[0]
    assert Fraction(float(inst.inner.upper[0])) <= written[1]
    assert Fraction(float(inst.outer.lower[0])) <= written[0]
    assert Fraction(float(inst.outer.upper[0])) >= written[1]
    # 0.643's nearest double lies above 0.643: only the inner box keeps it out.
    assert Fraction(float(inst.box.upper[0])) > written[1]
    (single,) = parse_vnnlib(text, dtype=F32)
    assert Fraction(float(single.inner.upper[0])) <= written[1]
    assert Fraction(float(single.outer.upper[0])) >= written[1]


def identity(n_inputs=1):
    return from_ops([Dense(torch.eye(1, n_inputs), torch.zeros(1))], (n_inputs,))


def test_a_point_violating_only_in_float32_is_never_a_counterexample():
    # Unsafe: y ≥ 0.3, with y = x. Just below 0.3 float32 rounds x up to 0.3 and "violates".
    net = identity()
    prop = OutputProperty([(torch.tensor([[-1.0]], dtype=F64), torch.tensor([0.3], dtype=F64))])
    x = torch.tensor([0.3 - 1e-12], dtype=F64)
    assert prop.to(F32).violated_by(net(x.float()))  # what a float32 check concludes
    assert not violates(net, x, prop.disjuncts)
    checker = _Checker(net, prop, torch.zeros(1, dtype=F64), x)
    assert checker.check(x[None].float()) is None and checker.check(x[None]) is None
    box = Box(torch.zeros(1, dtype=F64), x)
    for method in ("milp", "bab", "bab+beta", "input"):
        answer = search(net, box, prop, timeout=10, method=method, dtype=F32)
        assert answer.status != "violated" and answer.counterexample is None, method
    # A point inside by more than its rounding allowance counts; one exactly on the boundary
    # cannot be told from one a rounding outside, and does not.
    assert violates(net, torch.tensor([0.3 + 1e-12], dtype=F64), prop.disjuncts)
    assert not violates(net, torch.tensor([0.3], dtype=F64), prop.disjuncts)
    exact = net.detach(dtype=F64)
    rows, error = rows_with_error(exact, torch.tensor([[0.3]], dtype=F64), *prop.disjuncts[0])
    assert float(rows[0, 0]) == 0.0 and 0 < float(error[0, 0]) < 1e-14


def test_verify_counterexample_lies_in_the_box_as_written(tmp_path):
    # y = x on [0.1, 0.643], unsafe y ≥ 0.6: the attack pushes x to the upper end, which must
    # stay at or below 0.643 as written (its nearest float32 and float64 are above it).
    save_onnx(identity(), tmp_path / "id.onnx")
    (tmp_path / "p.vnnlib").write_text(
        "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n"
        "(assert (>= X_0 0.1))\n(assert (<= X_0 0.643))\n(assert (>= Y_0 0.6))\n"
    )
    for dtype in ("float64", "float32"):
        out = tmp_path / f"{dtype}.txt"
        result = CliRunner().invoke(app, ["verify", str(tmp_path / "id.onnx"),
                                          str(tmp_path / "p.vnnlib"), "--dtype", dtype,
                                          "--counterexample", str(out)])  # fmt: skip
        assert result.stdout.strip() == "violated", result.output
        x, y = read_counterexample(out)
        assert Fraction("0.6") <= Fraction(float(x[0])) <= Fraction("0.643"), x[0]
        assert y[0] == x[0]


def test_float32_intermediate_boxes_contain_the_exact_ones():
    """Every box a float32 bound builds on (IBP's and CROWN's layer bounds, SDP-FO's activation
    boxes) contains the one the same computation gives in float64, rounding and all."""
    from stalwart.certify import sdp
    from stalwart.certify.crown import crown_layer_bounds
    from stalwart.certify.ibp import layer_bounds

    for seed in range(3):
        net = large_weight_mlp(seed, scale=8.0)
        x = torch.rand(4, generator=torch.Generator().manual_seed(seed))
        box = LinfBall(x, 0.01)
        lo, hi = outward(box.lower, box.upper, F32)
        exact = net.detach(dtype=F64)
        pairs = [
            (layer_bounds(net, lo[None], hi[None], rounding=True),
             layer_bounds(exact, lo.double()[None], hi.double()[None])),
            (crown_layer_bounds(net, lo, hi, rounding=True),
             crown_layer_bounds(exact, lo.double(), hi.double())),
            (sdp.activation_boxes(net, lo, hi, rounding=True),
             sdp.activation_boxes(exact, lo.double(), hi.double())),
        ]  # fmt: skip
        for fast, slow in pairs:
            for (a, b), (c, e) in zip(fast, slow, strict=True):
                assert (a.double() <= c).all() and (b.double() >= e).all(), seed


def test_the_rounding_bound_carries_an_early_layers_error_through_the_later_ones():
    """y = 10⁸·x₁ − 10⁸·x₂ then y again: in float32 the first layer's cancellation loses
    units of y that the last layer alone, computing on a small y, cannot account for."""
    first = Dense(torch.tensor([[1e8, -1e8]], dtype=F64), torch.zeros(1, dtype=F64))
    second = Dense(torch.ones(1, 1, dtype=F64), torch.zeros(1, dtype=F64))
    net = from_ops([first, second], (2,))
    x = torch.tensor([[1.0 + 2**-20, 1.0 + 2**-21 + 2**-23]], dtype=F64)
    C, d = torch.ones(1, 1, dtype=F64), torch.zeros(1, dtype=F64)
    exact, _ = rows_with_error(net, x, C, d)
    rows, error = rows_with_error(net.detach(dtype=F32), x.float(), C.float(), d.float())
    miss = abs(float(rows[0, 0]) - float(exact[0, 0]))
    assert miss > 1.0  # the cancellation really costs units here
    assert miss <= float(error[0, 0])


class _Seen(Exception):
    """Raised by a spy inside an entry point: the TF32 flags as the call saw them."""


def _tiny_case():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    net = from_module(model, (3,)).detach()
    box = LinfBall(torch.full((3,), 0.5), 0.01)
    prop = OutputProperty.margin(0, 2)
    return model, net, box, prop


def _entry_points():
    from stalwart.certify import accuracy, bounds, complete, verify
    from stalwart.data.core import GroupedDataset

    model, net, box, prop = _tiny_case()
    zeros = torch.zeros(4, dtype=torch.long)
    data = GroupedDataset(torch.rand(4, 3), zeros, zeros, n_classes=2, group_names=["all"])
    return {
        "bound": (bounds, lambda: bounds.bound("crown", net, box, prop=prop, dtype=F32)),
        "search": (complete, lambda: complete.search(net, box, prop, timeout=5, dtype=F32)),
        "verify": (verify, lambda: verify.verify(net, [(box, prop)], timeout=5, dtype=F32)),
        "certified_accuracy": (
            accuracy,
            lambda: accuracy.certified_accuracy(model, data, eps=0.01, dtype=F32, examples=2),
        ),
    }


@pytest.mark.parametrize("name", ["bound", "search", "verify", "certified_accuracy"])
def test_every_entry_point_computes_in_ieee_float32_and_restores_the_flags(name, monkeypatch):
    """TF32 (cuDNN's default on CUDA) would round 8,192 times coarser than the allowances
    assume: each entry point turns it off while it runs, and puts the user's flags back."""
    module, call = _entry_points()[name]
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn

    def spy(dtype):
        raise _Seen(matmul.allow_tf32, cudnn.allow_tf32)

    monkeypatch.setattr(module, "check_float", spy)
    # Not monkeypatch.setattr: these flags are properties of PyTorch's backend modules.
    saved = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = True
    try:
        with pytest.raises(_Seen) as seen:
            call()
        assert seen.value.args == (False, False)
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (True, True)
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved
