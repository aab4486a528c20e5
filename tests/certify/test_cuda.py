"""The verifier on a GPU gives the CPU's answers, and float32 stays sound there (TF32 off).

Skipped without CUDA (CI has none); run on a GPU machine with
``python -m pytest tests/certify/test_cuda.py``.
"""

from __future__ import annotations

import pytest
import torch
from tests.certify.test_verify_cascade import identity_gap_net, small_net, spike_net
from torch import nn
from typer.testing import CliRunner

from stalwart.certify import Box, LinfBall, OutputProperty, bound, from_module
from stalwart.certify.accuracy import certified_accuracy
from stalwart.certify.onnx_io import save_onnx
from stalwart.certify.verify import verify
from stalwart.certify.vnnlib import robustness_vnnlib
from stalwart.cli import app
from stalwart.data.core import GroupedDataset

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
F32, F64 = torch.float32, torch.float64
CUDA = torch.device("cuda")


def large_weight_convnet(seed: int):
    """Two convolutions and a dense layer with weights 20 times the usual: float32 rounding
    that TF32 would multiply by 8,192 shows at this scale."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 3 * 3, 5),
    )  # fmt: skip
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(20.0)
    return from_module(model, (1, 8, 8)).detach()


@pytest.mark.parametrize("method", ["ibp", "crown", "crown+alpha", "lp"])
def test_float64_bounds_on_the_gpu_equal_the_cpu_ones(method):
    net = large_weight_convnet(0)
    x = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))
    prop = OutputProperty.margin(int(net(x[None]).argmax()), 5, dtype=F64)
    box = LinfBall(x, 0.01)
    cpu = bound(method, net, box, prop=prop).lower
    gpu = bound(method, net.detach(device=CUDA), box, prop=prop).lower
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_float32_bounds_on_the_gpu_stay_below_the_exact_arithmetic_ones(seed, method):
    """The float32 bound with its allowance lies under the same relaxation computed exactly
    (float64 stands in for it, 1e-16 away); with cuDNN's default TF32 it would not. The box is
    so small that every ReLU is stable, so both sides take the same relaxation and CROWN's is
    the exact minimum: nothing but rounding separates them."""
    torch.backends.cudnn.allow_tf32 = True  # PyTorch's default; bound() must turn it off
    net = large_weight_convnet(seed)
    x = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(seed))
    prop = OutputProperty.margin(int(net(x[None]).argmax()), 5, dtype=F64)
    box = LinfBall(x, 1e-5)
    exact = bound(method, net, box, prop=prop).lower
    fast = bound(method, net.detach(device=CUDA), box, prop=prop, dtype=F32).lower
    assert bool((fast.cpu().to(F64) <= exact + 1e-9).all()), (fast, exact)
    assert torch.backends.cudnn.allow_tf32  # the user's setting is back


@pytest.mark.parametrize("complete", ["auto", "bab+beta", "bab", "input"])
def test_verify_on_the_gpu_gives_the_cpu_answers(complete):
    n_inputs = 3 if complete == "input" else 20
    prop = OutputProperty.margin(0, 2, dtype=F64)
    box = Box(torch.zeros(n_inputs, dtype=F64), torch.ones(n_inputs, dtype=F64))
    gap_box = Box(box.lower.clone(), box.upper)
    gap_box.lower[0] = -1.0
    for net, where in ((identity_gap_net(n_inputs), gap_box), (spike_net(n_inputs), box)):
        cpu = verify(net, [(where, prop)], timeout=60, complete=complete)
        gpu = verify(net.detach(device=CUDA), [(where, prop)], timeout=60, complete=complete)
        assert (gpu.status, gpu.decided_by) == (cpu.status, cpu.decided_by), gpu.log
        if gpu.status == "violated":
            assert gpu.counterexample.device.type == "cpu" and where.contains(gpu.counterexample)
            assert float(gpu.output[0]) < 0 == float(gpu.output[1])


@pytest.mark.parametrize("seed", range(4))
def test_verify_on_the_gpu_on_random_networks(seed):
    net = small_net(seed)
    x = torch.rand(4, generator=torch.Generator().manual_seed(seed))
    prop = OutputProperty.margin(int(net(x).argmax()), 3)
    for eps in (0.02, 0.1, 0.3):
        cpu = verify(net, [(LinfBall(x, eps), prop)], timeout=30)
        gpu = verify(net.detach(device=CUDA), [(LinfBall(x, eps), prop)], timeout=30)
        assert gpu.status == cpu.status, (eps, gpu.log)


def test_certified_accuracy_of_a_model_on_the_gpu_equals_the_cpu_table():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3))
    x = torch.rand(12, 1, 4, 4)
    y = model(x).argmax(dim=1)
    zeros = torch.zeros(12, dtype=torch.long)
    data = GroupedDataset(x, y, zeros, n_classes=3, group_names=["all"])
    kwargs = {"eps": 0.02, "bounds": ["ibp", "crown", "lp"], "examples": 12}
    cpu = certified_accuracy(model, data, **kwargs)
    gpu = certified_accuracy(model.to(CUDA), data, **kwargs)
    assert gpu["clean"] == cpu["clean"] == 1.0
    for name in kwargs["bounds"]:
        assert gpu["bounds"][name]["certified"] == cpu["bounds"][name]["certified"], name
    assert gpu["contradictions"] == 0


def test_the_verify_command_on_the_gpu(tmp_path):
    net = small_net(1)
    save_onnx(net, tmp_path / "net.onnx")
    x = torch.full((4,), 0.5)
    label = int(net(x).argmax())
    runner = CliRunner()
    for name, eps, expected in (("tight", 0.001, "holds"), ("loose", 0.45, "violated")):
        (tmp_path / f"{name}.vnnlib").write_text(robustness_vnnlib(x, eps, label, 3))
        files = [str(tmp_path / "net.onnx"), str(tmp_path / f"{name}.vnnlib")]
        options = ["--timeout", "30", "--device", "cuda", "--counterexample", str(tmp_path / "ce")]
        result = runner.invoke(app, ["verify", *files, *options])
        assert result.exit_code == 0 and result.stdout.strip() == expected, result.output
