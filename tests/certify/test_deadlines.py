"""Time-outs are wall-clock promises (issue 9, item 15): every stage checks one deadline, an
iterative bound stops early with a sound answer, a solver gets the time left as its limit, and
the command line counts its own start-up."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

import stalwart.cli.certify as cli_certify
from stalwart.certify import Box, OutputProperty, bound, from_module
from stalwart.certify.crown import crown_layer_bounds, crown_rows
from stalwart.certify.deadline import Deadline, Expired
from stalwart.certify.ibp import ibp_rows
from stalwart.certify.lp import lp_rows
from stalwart.certify.sdp import sdp_rows
from stalwart.certify.verify import verify

F64 = torch.float64


def mlp(seed, sizes):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(sizes, sizes[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return from_module(nn.Sequential(*layers[:-1]), (sizes[0],)).detach(dtype=F64)


def problem(net, eps, seed=0):
    x = torch.rand(net.in_features, generator=torch.Generator().manual_seed(seed), dtype=F64)
    prop = OutputProperty.margin(int(net(x).argmax()), net.out_features, dtype=F64)
    C, d, _ = prop.stacked()
    return x - eps, x + eps, C, d, prop


def test_a_passed_deadline_stops_each_stage_with_a_sound_answer():
    net = mlp(0, (6, 30, 30, 4))
    lo, hi, C, d, _ = problem(net, 0.2)
    gone = Deadline(-1.0)
    with pytest.raises(Expired):
        crown_layer_bounds(net, lo, hi, deadline=gone)
    bounds = crown_layer_bounds(net, lo, hi)
    plain = crown_rows(net, lo, hi, C, d, bounds=[(a[None], b[None]) for a, b in bounds])
    # α-CROWN out of time returns plain CROWN; the LP, its CROWN/IBP fallback; SDP-FO, IBP.
    stopped = crown_rows(net, lo, hi, C, d, alpha=True, steps=50,
                         bounds=[(a[None], b[None]) for a, b in bounds], deadline=gone)  # fmt: skip
    torch.testing.assert_close(stopped, plain)
    solved = lp_rows(net, lo, hi, C, d, bounds=bounds)
    fallback = lp_rows(net, lo, hi, C, d, bounds=bounds, deadline=gone)
    ibp = ibp_rows(net, lo[None], hi[None], C, d)[0]
    torch.testing.assert_close(fallback, torch.maximum(plain, ibp))
    assert (solved > fallback + 1e-6).any()  # the LP had something to add
    rows, sound = sdp_rows(net, lo, hi, C, d, steps=50, deadline=gone)
    assert sound and torch.allclose(rows, ibp)


def test_verify_keeps_its_time_out():
    # 600 ReLUs and a wide box: the LP and the MILP would each run far longer than 1.5 s.
    net = mlp(1, (40, 300, 300, 10))
    lo, hi, _, _, prop = problem(net, 0.3)
    started = time.perf_counter()
    verdict = verify(net, [(Box(lo, hi), prop)], timeout=1.5, complete="milp", attack_restarts=0)
    elapsed = time.perf_counter() - started
    assert verdict.status == "unknown"
    assert elapsed < 1.5 + 1.0, (elapsed, verdict.log)


def test_the_command_counts_its_start_up_and_keeps_a_margin(tmp_path, monkeypatch):
    from stalwart.certify.onnx_io import save_onnx
    from stalwart.certify.vnnlib import read_result, robustness_vnnlib

    net = mlp(2, (3, 8, 3))
    save_onnx(net, tmp_path / "n.onnx")
    x = torch.full((3,), 0.5, dtype=F64)
    (tmp_path / "p.vnnlib").write_text(robustness_vnnlib(x, 0.01, int(net(x).argmax()), 3))
    assert cli_certify._startup_seconds() == 0.0  # called in-process: nothing before it
    assert 0 < cli_certify.timeout_margin(30) < 3 and cli_certify.timeout_margin(1) < 0.5
    # A process that has already used up its time answers unknown at once.
    monkeypatch.setattr(cli_certify, "_startup_seconds", lambda: 100.0)
    result = cli_certify_invoke("verify", tmp_path / "n.onnx", tmp_path / "p.vnnlib",
                                "--timeout", "30", "--result", tmp_path / "r.txt")  # fmt: skip
    assert result.exit_code == 0 and result.stdout.strip() == "unknown"
    assert "start-up" in result.stderr
    assert read_result(tmp_path / "r.txt")[0] == "unknown"
    monkeypatch.setattr(cli_certify, "_startup_seconds", lambda: 0.0)
    result = cli_certify_invoke("verify", tmp_path / "n.onnx", tmp_path / "p.vnnlib",
                                "--timeout", "30")  # fmt: skip
    assert result.stdout.strip() == "holds"


def cli_certify_invoke(*args):
    from typer.testing import CliRunner

    from stalwart.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_bound_passes_the_deadline_to_iterative_bounds():
    net = mlp(3, (5, 20, 20, 3))
    lo, hi, _, _, prop = problem(net, 0.2)
    box = Box(lo, hi)
    started = time.perf_counter()
    result = bound("sdp", net, box, prop=prop, steps=100_000, deadline=Deadline(0.5))
    assert time.perf_counter() - started < 3.0 and result.sound
    assert (result.lower >= bound("ibp", net, box, prop=prop).lower - 1e-9).all()
