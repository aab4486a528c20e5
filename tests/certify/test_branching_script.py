"""benchmarks/branching.py on a small mnist_fc-shaped instance that needs branching: one row
per setting, the same complete answer from each, the first setting the baseline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from vnn_fixtures import mnist_fc_onnx, mnist_fc_vnnlib

from stalwart.certify.onnx_io import load_onnx

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "branching.py"


def branching():
    spec = importlib.util.spec_from_file_location("branching_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_setting_decides_the_instance_and_the_first_is_the_baseline(tmp_path, capsys):
    onnx_path = mnist_fc_onnx(tmp_path / "net.onnx", input_shape=(1, 1, 6, 6), widths=(24, 24, 16))
    net = load_onnx(onnx_path, dtype=torch.float64).detach(dtype=torch.float64)
    x = np.random.default_rng(3).random(36)
    label = int(net(torch.tensor(x).reshape(1, -1)).argmax())
    prop = tmp_path / "prop.vnnlib"
    prop.write_text(mnist_fc_vnnlib(x, 0.03, label))  # holds, but not at the root
    script = branching()
    script.main([str(onnx_path), str(prop), "--candidates", "1,3", "--timeout", "60"])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.split()[0].isdigit()]
    assert [r[0] for r in rows] == ["1", "3"], out
    assert [r[1] for r in rows] == ["holds", "holds"], out
    assert all(int(r[2]) > 1 for r in rows), out  # branch and bound had to split
    assert rows[0][4] == "1.00", out
    with pytest.raises(SystemExit) as exit_:
        script.main([str(onnx_path), str(prop), "--candidates", "0"])
    assert exit_.value.code == 2
    assert "--candidates needs counts >= 1" in capsys.readouterr().err
