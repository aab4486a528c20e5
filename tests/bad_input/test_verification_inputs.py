"""Bad `stalwart verify` and `stalwart certify` options: each is refused in one line that names
the option, its range and the value given. `verify` also prints ``unknown`` (never ``holds``)
and exits with status 2; `certify` refuses before loading the run directory."""

from __future__ import annotations

import pytest
import torch
from tests.bad_input.conftest import expect_clean_error, invoke
from torch import nn

from stalwart.certify import from_module
from stalwart.certify.onnx_io import save_onnx
from stalwart.certify.vnnlib import robustness_vnnlib

MISSING_RUN = "no-such-run-directory"
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
DEVICE_ROWS = [
    pytest.param(["--device", "tpu"], ["unknown device 'tpu'", "use auto, cpu, cuda"],
                 id="--device tpu"),
    pytest.param(["--device", "cuda"], ["device 'cuda' was asked for", "CUDA is not available"],
                 id="--device cuda", marks=NO_CUDA),
]  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A small ONNX network and a property it satisfies."""
    root = tmp_path_factory.mktemp("verify")
    torch.manual_seed(0)
    net = from_module(nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 3)), (3,))
    save_onnx(net, root / "net.onnx")
    x = torch.full((3,), 0.5)
    (root / "prop.vnnlib").write_text(robustness_vnnlib(x, 0.001, int(net(x).argmax()), 3))
    return root


VERIFY_ROWS = [
    # (options, what the message must name)
    (["--timeout", "0"], ["--timeout must be > 0 seconds", "got 0.0"]),
    (["--timeout", "-5"], ["--timeout must be > 0 seconds", "got -5.0"]),
    (["--timeout", "nan"], ["--timeout must be > 0 seconds", "got nan"]),
    (["--bounds", "ibpp"], ["unknown bound 'ibpp'", "did you mean 'ibp'"]),
    (["--bounds", ","], ["no bound given", "'crown+alpha'"]),
    (["--complete", "smt"], ["complete must be one of", "'bab'", "'smt'"]),
    (["--dtype", "float16"], ["--dtype must be one of ['float64', 'float32']", "'float16'"]),
    (["--option", "steps=3"], ["'steps=3' is not of the form BOUND.OPTION=VALUE"]),
    (["--option", "sdp.steps=3"], ["options are given for bound 'sdp'", "not among the bounds"]),
    (["--bounds", "sdp", "--option", "sdp.steps=-1"],
     ["option sdp.steps", "greater than or equal to 0", "'-1'"]),
    (["--bounds", "sdp", "--option", "sdp.lr=0"], ["option sdp.lr", "greater than 0"]),
    (["--bounds", "sdp", "--option", "sdp.steps=many"], ["option sdp.steps", "valid integer"]),
    (["--bounds", "crown", "--option", "crown.alpha=true"],
     ["bound 'crown' has no option 'alpha'", "use the bound 'crown+alpha'"]),
    (["--bounds", "lp", "--option", "lp.intermediate=sdp"],
     ["option lp.intermediate", "'crown' or 'ibp'"]),
    (["--bounds", "sdp", "--option", "sdp.deadline=1"],
     ["'deadline' is not an option of bound 'sdp'"]),
]  # fmt: skip


@pytest.mark.parametrize("options, mentions", [
    *(pytest.param(o, m, id=" ".join(o)) for o, m in VERIFY_ROWS), *DEVICE_ROWS])  # fmt: skip
def test_bad_verify_option_is_named(files, options, mentions):
    result = invoke("verify", files / "net.onnx", files / "prop.vnnlib", *options)
    expect_clean_error(result, mentions)
    assert result.stdout.strip() == "unknown"


def test_a_good_verify_command_passes(files):
    result = invoke("verify", files / "net.onnx", files / "prop.vnnlib", "--bounds", "ibp,sdp",
                    "--option", "sdp.steps=3", "--dtype", "float32", "--timeout", "30",
                    "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0 and result.stdout.strip() == "holds", result.output


CERTIFY_ROWS = [
    (["--examples", "0"], ["--examples must be >= 1", "got 0"]),
    (["--examples", "-3"], ["--examples must be >= 1", "got -3"]),
    (["--eps", "-0.1"], ["--eps must be in [0, 1]", "got -0.1"]),
    (["--eps", "nan"], ["--eps must be in [0, 1]", "got nan"]),
    (["--eps", "2"], ["--eps must be in [0, 1]", "got 2.0"]),
    (["--eps", "0.1", "--lower", "1", "--upper", "0"], ["finite --lower < --upper", "[1.0, 0.0]"]),
    (["--eps", "0.1", "--upper", "inf"], ["finite --lower < --upper", "inf"]),
    (["--sdp-steps", "-1", "--bounds", "sdp"], ["--sdp-steps must be >= 0", "got -1"]),
    (["--sdp-steps", "10"], ["options are given for bound 'sdp'", "not among the bounds"]),
    (["--bounds", "ibp,crwn"], ["unknown bound 'crwn'", "did you mean 'crown'"]),
    (["--dtype", "half"], ["--dtype must be one of", "'half'"]),
    (["--bounds", "crown+alpha", "--option", "crown+alpha.steps=-4"],
     ["option crown+alpha.steps", "greater than or equal to 0"]),
    (["--option", "lp"], ["'lp' is not of the form BOUND.OPTION=VALUE"]),
]  # fmt: skip


@pytest.mark.parametrize("options, mentions", [
    *(pytest.param(o, m, id=" ".join(o)) for o, m in CERTIFY_ROWS), *DEVICE_ROWS])  # fmt: skip
def test_bad_certify_option_is_named(options, mentions):
    if "--eps" not in options:
        options = ["--eps", "0.1", *options]
    expect_clean_error(invoke("certify", MISSING_RUN, *options), mentions)


def test_valid_certify_options_pass_on_to_the_run_directory():
    """The checks refuse only what is wrong: good options reach the run directory's error."""
    output = expect_clean_error(
        invoke("certify", MISSING_RUN, "--eps", "0.1", "--examples", "1", "--bounds",
               "ibp,crown+alpha,sdp", "--sdp-steps", "0", "--option", "crown+alpha.steps=2",
               "--dtype", "float32", "--device", "auto"),
    )  # fmt: skip
    assert MISSING_RUN in output
