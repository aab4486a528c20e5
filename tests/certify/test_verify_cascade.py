import json

import numpy as np
import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from stalwart.certify import (
    Box,
    Dense,
    LinfBall,
    Network,
    OutputProperty,
    bound,
    from_module,
    from_ops,
)
from stalwart.certify.complete import milp_optimum
from stalwart.certify.ibp import ibp_rows
from stalwart.certify.onnx_io import save_onnx
from stalwart.certify.verify import COMPLETE_MAX_UNSTABLE, DEFAULT_BOUNDS, verify
from stalwart.certify.vnnlib import read_counterexample, read_result, robustness_vnnlib
from stalwart.cli import app
from stalwart.errors import ConfigError

runner = CliRunner()
F64 = torch.float64


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
        assert prop.violated_by(net.detach(dtype=torch.float64)(verdict.counterexample))
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


def identity_gap_net(n_inputs: int) -> Network:
    """``y_0 = 0.2 + relu(x_0) − relu(−x_0) − (relu(x_0 + 2) − 2)``, which is 0.2 everywhere.

    The triangle relaxation lets ``relu(x_0) − relu(−x_0)`` fall 0.5 below ``x_0`` at ``x_0 =
    0``, so on ``x_0 ∈ [−1, 1]`` IBP, CROWN, α-CROWN and the LP all find a negative lower bound
    for ``y_0 − y_1`` (``y_1 = 0``) although the margin is 0.2: only a complete search proves it.
    """
    first = torch.zeros(3, n_inputs, dtype=F64)
    first[:, 0] = torch.tensor([1.0, -1.0, 1.0], dtype=F64)
    hidden = Dense(first, torch.tensor([0.0, 0.0, 2.0], dtype=F64))
    out = Dense(torch.tensor([[1.0, -1.0, -1.0], [0.0, 0.0, 0.0]], dtype=F64),
                torch.tensor([2.2, 0.0], dtype=F64))  # fmt: skip
    return from_ops([hidden, "relu", out], (n_inputs,))


def spike_net(n_inputs: int, at: float = 0.731, width: float = 1e-3) -> Network:
    """``y_0 = 1 − 2000 relu(w − |x_0 − a|)``, ``y_1 = 0``: below ``y_1`` only where
    ``|x_0 − a| < w/2``, a sliver no gradient leads to (the gradient is zero elsewhere)."""
    first = torch.zeros(2, n_inputs, dtype=F64)
    first[:, 0] = torch.tensor([1.0, -1.0], dtype=F64)
    layers = [
        Dense(first, torch.tensor([-at, at], dtype=F64)),
        "relu",
        Dense(torch.tensor([[-1.0, -1.0]], dtype=F64), torch.tensor([width], dtype=F64)),
        "relu",
        Dense(torch.tensor([[-2000.0], [0.0]], dtype=F64), torch.tensor([1.0, 0.0], dtype=F64)),
    ]
    return from_ops(layers, (n_inputs,))


def gap_box(n_inputs):
    lower = torch.zeros(n_inputs, dtype=F64)
    upper = torch.ones(n_inputs, dtype=F64)
    lower[0] = -1.0
    return Box(lower, upper)


def test_the_gap_network_is_what_it_claims():
    net = identity_gap_net(20)
    box = gap_box(20)
    prop = OutputProperty.margin(0, 2, dtype=F64)
    C, d, _ = prop.stacked()
    assert float(milp_optimum(net, box.lower, box.upper, C, d)[0]) == pytest.approx(0.2)
    for name in DEFAULT_BOUNDS:
        assert float(bound(name, net, box, prop=prop).lower[0]) < 0, name


@pytest.mark.parametrize(
    ("n_inputs", "complete", "decided_by"),
    [(20, "auto", "bab+beta"), (3, "auto", "input"), (20, "milp", "milp"), (20, "bab", "bab"),
     (20, "bab+beta", "bab+beta"), (3, "input", "input")],
)  # fmt: skip
def test_only_the_complete_stage_can_prove_it(n_inputs, complete, decided_by):
    net = identity_gap_net(n_inputs)
    prop = OutputProperty.margin(0, 2, dtype=F64)
    verdict = verify(net, [(gap_box(n_inputs), prop)], timeout=30, complete=complete)
    assert verdict.status == "holds" and verdict.decided_by == decided_by, verdict.log
    # Every bound ran and failed first, in order.
    assert [line.split()[2] for line in verdict.log[: len(DEFAULT_BOUNDS)]] == list(DEFAULT_BOUNDS)
    unproven = verify(net, [(gap_box(n_inputs), prop)], timeout=30, complete="none")
    assert unproven.status == "unknown" and unproven.decided_by == ""


def padded_gap_net(n_inputs: int, extra: int = COMPLETE_MAX_UNSTABLE + 10) -> Network:
    """:func:`identity_gap_net` with ``extra`` unstable units that the outputs ignore: the
    shape of mnist_fc for the cascade (many inputs, more unstable ReLUs than the MILP takes)."""
    gap = identity_gap_net(n_inputs)
    g = torch.Generator().manual_seed(0)
    first = torch.cat([gap.layers[0].weight, torch.zeros(extra, n_inputs, dtype=F64)])
    first[3:, 1:] = torch.randn(extra, n_inputs - 1, generator=g, dtype=F64)
    bias = torch.cat([gap.layers[0].bias, -first[3:, 1:].sum(1) / 2])  # zero at the centre
    out = torch.cat([gap.layers[1].weight, torch.zeros(2, extra, dtype=F64)], dim=1)
    return from_ops([Dense(first, bias), "relu", Dense(out, gap.layers[1].bias)], (n_inputs,))


def test_many_unstable_relus_are_left_to_beta_branch_and_bound():
    net = padded_gap_net(20)
    prop = OutputProperty.margin(0, 2, dtype=F64)
    box = gap_box(20)
    C, d, _ = prop.stacked()
    assert float(milp_optimum(net, box.lower, box.upper, C, d)[0]) == pytest.approx(0.2)
    verdict = verify(net, [(box, prop)], timeout=30)
    assert verdict.status == "holds" and verdict.decided_by == "bab+beta", verdict.log
    assert verdict.log[-1].startswith("instance 0: bab+beta says holds"), verdict.log
    # Asked for, the MILP declines so many binaries rather than start what cannot finish.
    refused = verify(net, [(box, prop)], timeout=30, complete="milp")
    assert refused.status == "unknown", refused.log
    assert "unstable ReLUs, too many for milp" in refused.log[-1], refused.log


@pytest.mark.parametrize(
    ("n_inputs", "complete"), [(20, "auto"), (20, "bab"), (20, "bab+beta"), (3, "input")]
)
def test_a_counterexample_the_attack_misses_is_found_by_the_complete_stage(n_inputs, complete):
    net = spike_net(n_inputs)
    prop = OutputProperty.margin(0, 2, dtype=F64)
    box = Box(torch.zeros(n_inputs, dtype=F64), torch.ones(n_inputs, dtype=F64))
    attack_only = verify(net, [(box, prop)], timeout=30, complete="none")
    assert attack_only.status == "unknown", attack_only.log  # the attack cannot see the spike
    verdict = verify(net, [(box, prop)], timeout=30, complete=complete)
    expected = {"auto": "bab+beta"}.get(complete, complete)
    assert verdict.status == "violated" and verdict.decided_by == expected, verdict.log
    x = verdict.counterexample
    assert abs(float(x[0]) - 0.731) < 5e-4 and box.contains(x, tol=0)
    assert float(verdict.output[0]) < 0 == float(verdict.output[1])


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


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("certify")
    config = {
        "name": "cert", "data": {"name": "digits"}, "model": {"name": "mlp", "hidden": [32]},
        "train": {"epochs": 8, "optimizer": "adam", "lr": 3e-3, "progress": False,
                  "select": "last"},
        "out": str(root / "run"),
    }  # fmt: skip
    (root / "c.yaml").write_text(yaml.safe_dump(config))
    result = invoke("run", root / "c.yaml")
    assert result.exit_code == 0, result.output
    return root / "run"


def test_certify_command_orders_the_bounds_and_never_contradicts_pgd(trained_run):
    result = runner.invoke(
        app, ["certify", str(trained_run), "--eps", "0.02", "--bounds", "ibp,crown,lp",
              "--examples", "30"], env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "certified: lp" in result.stdout and "PGD (upper bound)" in result.stdout
    table = json.loads((trained_run / "certified_eps0.02_ibp_crown_lp.json").read_text())
    rows = table["bounds"]
    assert rows["ibp"]["certified"] <= rows["crown"]["certified"] <= rows["lp"]["certified"]
    assert rows["lp"]["certified"] <= table["pgd"] <= table["clean"]
    assert rows["lp"]["certified"] > 0
    assert table["contradictions"] == 0
    bad = invoke("certify", trained_run, "--eps", "2.0")
    assert bad.exit_code == 2 and "--eps must be in [0, 1]" in " ".join(bad.stderr.split())


def test_certify_with_sdp_against_the_exact_margins(trained_run):
    """SDP-FO's certified count lies between IBP's and the exact (MILP) robust count.

    At ε = 0.08 PGD cannot break one of the first six points that the MILP shows is not
    robust, so a bound that certified whatever PGD leaves standing would exceed the exact
    count here.
    """
    from stalwart.experiments.run import load_run

    n, eps = 6, 0.08
    result = runner.invoke(
        app, ["certify", str(trained_run), "--eps", str(eps), "--bounds", "ibp,sdp",
              "--examples", str(n), "--option", "sdp.steps=10"], env={"COLUMNS": "200"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "certified: sdp" in result.stdout
    table = json.loads((trained_run / "certified_eps0.08_ibp_sdp.json").read_text())
    _, splits, model = load_run(trained_run)
    test = splits.evaluation_sets()["test"]
    net = from_module(model.eval(), tuple(test.x.shape[1:])).detach(dtype=F64)
    exact_robust = ibp_certified = 0
    for x, y in zip(test.x[:n], test.y[:n], strict=True):
        box = LinfBall(x.double(), eps)
        lo, hi = box.lower.reshape(1, -1), box.upper.reshape(1, -1)
        prop = OutputProperty.margin(int(y), net.out_features, dtype=F64)
        C, d, _ = prop.stacked()
        exact_robust += int(bool((milp_optimum(net, box.lower, box.upper, C, d) > 0).all()))
        ibp_certified += int(bool((ibp_rows(net, lo, hi, C, d) > 0).all()))
    sdp = round(table["bounds"]["sdp"]["certified"] * n)
    assert round(table["bounds"]["ibp"]["certified"] * n) == ibp_certified
    assert exact_robust < round(table["pgd"] * n), "premise: PGD misses a non-robust point"
    assert ibp_certified <= sdp <= exact_robust, table
    assert table["bounds"]["sdp"]["estimated"] == 0  # N = 97: every number is a certificate


@pytest.fixture
def gap_files(tmp_path):
    """The gap network (only complete search proves it) and the spike (only complete search
    finds its counterexample), as ONNX and VNN-LIB files."""
    from stalwart.certify.vnnlib import vnnlib_text

    prop = OutputProperty.margin(0, 2, dtype=F64)
    save_onnx(identity_gap_net(20), tmp_path / "gap.onnx")
    (tmp_path / "gap.vnnlib").write_text(vnnlib_text(gap_box(20), prop))
    save_onnx(spike_net(20), tmp_path / "spike.onnx")
    unit = Box(torch.zeros(20, dtype=F64), torch.ones(20, dtype=F64))
    (tmp_path / "spike.vnnlib").write_text(vnnlib_text(unit, prop))
    return tmp_path


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--bounds", "ibp", "--complete", "none"], "unknown"),
        (["--bounds", "lp", "--complete", "none"], "unknown"),
        (["--bounds", "crown+alpha", "--option", "crown+alpha.steps=3", "--complete", "none"],
         "unknown"),
        (["--bounds", "ibp", "--complete", "milp"], "holds"),
        (["--bounds", "ibp", "--complete", "bab"], "holds"),
        (["--bounds", "ibp", "--complete", "input"], "holds"),
        (["--complete", "milp", "--dtype", "float32"], "holds"),
    ],
)  # fmt: skip
def test_verify_command_bounds_and_complete_options(gap_files, options, expected):
    result = invoke("verify", gap_files / "gap.onnx", gap_files / "gap.vnnlib", "--timeout", "60",
                    "--verbose", *options)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == expected, result.output
    bounds = options[options.index("--bounds") + 1] if "--bounds" in options else "ibp"
    assert f"instance 0: {bounds} lowest row" in result.stderr
    if expected == "holds":
        method = options[options.index("--complete") + 1]
        assert f"proved by {method}" in result.stderr


def test_verify_command_counterexample_goes_beside_the_result_file(gap_files, monkeypatch):
    monkeypatch.chdir(gap_files)
    out = gap_files / "out"
    out.mkdir()
    before = set(gap_files.iterdir())
    result = invoke("verify", "spike.onnx", "spike.vnnlib", "--timeout", "60", "--complete",
                    "milp", "--result", out / "result.txt")  # fmt: skip
    assert result.exit_code == 0 and result.stdout.strip() == "violated", result.output
    assert set(gap_files.iterdir()) == before  # nothing new in the current directory
    x, y = read_counterexample(out / "spike.counterexample")
    assert abs(x[0] - 0.731) < 5e-4 and y[0] < y[1]
    status, x_again, _ = read_result(out / "result.txt")
    assert status == "sat" and np.array_equal(x, x_again)
    # Without --result or --counterexample nothing is written, and the command says how.
    quiet = invoke("verify", "spike.onnx", "spike.vnnlib", "--timeout", "60", "--complete", "milp")
    assert quiet.stdout.strip() == "violated" and "--counterexample" in quiet.stderr
    assert set(gap_files.iterdir()) == before
