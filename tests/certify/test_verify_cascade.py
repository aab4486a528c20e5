import json

import numpy as np
import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from stalwart.certify import LinfBall, OutputProperty, from_module
from stalwart.certify.complete import milp_optimum
from stalwart.certify.onnx_io import save_onnx
from stalwart.certify.verify import verify
from stalwart.certify.vnnlib import read_counterexample, read_result, robustness_vnnlib
from stalwart.cli import app
from stalwart.errors import ConfigError

runner = CliRunner()


def small_net(seed, widths=(4, 12, 12, 3)):
    torch.manual_seed(seed)
    layers = []
    for a, b in zip(widths, widths[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return from_module(nn.Sequential(*layers[:-1]), (widths[0],))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("eps", [0.02, 0.1, 0.3])
def test_cascade_agrees_with_the_exact_optimum_and_checks_counterexamples(seed, eps):
    net = small_net(seed)
    x = torch.rand(4, generator=torch.Generator().manual_seed(seed))
    label = int(net(x).argmax())
    box = LinfBall(x, eps)
    prop = OutputProperty.margin(label, 3)
    verdict = verify(net, [(box, prop)], timeout=30)
    C, d, _ = prop.stacked()
    exact = milp_optimum(net, box.lower, box.upper, C, d)
    if verdict.status == "violated":
        assert box.contains(verdict.counterexample)
        assert prop.violated_by(net(verdict.counterexample))
        assert float(exact.min()) <= 1e-6
    else:
        assert verdict.status == "holds"  # small enough for the complete search
        assert float(exact.min()) > 0


def test_a_tiny_timeout_gives_unknown_never_holds():
    net = small_net(0)
    x = torch.full((4,), 0.5)
    prop = OutputProperty.margin(int(net(x).argmax()), 3)
    verdict = verify(net, [(LinfBall(x, 0.05), prop)], timeout=1e-9)
    assert verdict.status == "unknown"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"timeout": 0}, "timeout must be > 0"),
        ({"timeout": 1, "bounds": ["ibpp"]}, "unknown bound 'ibpp'"),
        ({"timeout": 1, "complete": "smt"}, "complete must be"),
    ],
)
def test_bad_verify_arguments(kwargs, message):
    net = small_net(0)
    x = torch.full((4,), 0.5)
    with pytest.raises(ConfigError, match=message):
        verify(net, [(LinfBall(x, 0.05), OutputProperty.margin(0, 3))], **kwargs)


@pytest.fixture
def onnx_case(tmp_path):
    net = small_net(1)
    save_onnx(net, tmp_path / "net.onnx")
    x = torch.full((4,), 0.5)
    label = int(net(x).argmax())
    for name, eps in (("tight", 0.001), ("loose", 0.45)):
        (tmp_path / f"{name}.vnnlib").write_text(robustness_vnnlib(x, eps, label, 3))
    return net, tmp_path


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_verify_command_holds_and_violated_with_a_checked_counterexample(onnx_case):
    net, root = onnx_case
    holds = invoke("verify", root / "net.onnx", root / "tight.vnnlib", "--timeout", "20")
    assert holds.exit_code == 0 and holds.stdout.strip() == "holds"
    files = ["--counterexample", root / "ce.txt", "--result", root / "result.txt"]
    violated = invoke("verify", root / "net.onnx", root / "loose.vnnlib", "--timeout", "20", *files)
    assert violated.exit_code == 0 and violated.stdout.strip() == "violated"
    x, y = read_counterexample(root / "ce.txt")
    out = net(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    assert np.allclose(out, y, atol=1e-5)
    assert np.all(np.abs(x - 0.5) <= 0.45 + 1e-6)
    status, _, _ = read_result(root / "result.txt")
    assert status == "sat"


@pytest.mark.parametrize(
    "broken, message",
    [
        ("vnnlib", "unbalanced"),
        ("onnx", "does not parse"),
        ("shape", "inputs"),
        ("unbounded", "bound"),
    ],
)
def test_verify_command_on_bad_input_says_unknown_and_exits_2(onnx_case, broken, message):
    net, root = onnx_case
    prop = root / "tight.vnnlib"
    text = prop.read_text()
    if broken == "vnnlib":
        prop.write_text(text + "\n(assert (<= X_0 1.0)")
    elif broken == "onnx":
        (root / "net.onnx").write_bytes(b"not an onnx file")
    elif broken == "shape":
        prop.write_text(text.replace("(declare-const X_3 Real)", "(declare-const X_3 Real)\n"
                                     "(declare-const X_4 Real)"))  # fmt: skip
    else:
        prop.write_text("\n".join(line for line in text.splitlines() if "X_2" not in line
                                  or "declare" in line))  # fmt: skip
    result = invoke("verify", root / "net.onnx", prop, "--timeout", "5")
    assert result.exit_code == 2
    assert result.stdout.strip() == "unknown"
    assert message in " ".join(result.stderr.split())  # rich wraps long lines


def test_verify_command_refuses_a_zero_timeout(onnx_case):
    _, root = onnx_case
    result = invoke("verify", root / "net.onnx", root / "tight.vnnlib", "--timeout", "0")
    assert result.exit_code == 2 and result.stdout.strip() == "unknown"


def test_certify_command_orders_the_bounds_and_never_contradicts_pgd(tmp_path):
    config = {
        "name": "cert", "data": {"name": "digits"}, "model": {"name": "mlp", "hidden": [32]},
        "train": {"epochs": 8, "optimizer": "adam", "lr": 3e-3, "progress": False,
                  "select": "last"},
        "out": str(tmp_path / "run"),
    }  # fmt: skip
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    assert invoke("run", tmp_path / "c.yaml").exit_code == 0
    result = runner.invoke(
        app, ["certify", str(tmp_path / "run"), "--eps", "0.02", "--bounds", "ibp,crown,lp",
              "--examples", "30"], env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "certified: lp" in result.stdout and "PGD (upper bound)" in result.stdout
    table = json.loads((tmp_path / "run" / "certified_eps0.02_ibp_crown_lp.json").read_text())
    rows = table["bounds"]
    assert rows["ibp"]["certified"] <= rows["crown"]["certified"] <= rows["lp"]["certified"]
    assert rows["lp"]["certified"] <= table["pgd"] <= table["clean"]
    assert rows["lp"]["certified"] > 0
    assert table["contradictions"] == 0
    bad = invoke("certify", tmp_path / "run", "--eps", "2.0")
    assert bad.exit_code == 2 and "exceeds" in " ".join(bad.stderr.split())
