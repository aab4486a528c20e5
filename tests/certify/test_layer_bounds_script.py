"""benchmarks/layer_bounds.py on a small mnist_fc-shaped network: one row per hidden layer,
α-optimised bounds never with more unstable units than CROWN's, sampled spans inside CROWN's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from vnn_fixtures import mnist_fc_onnx, mnist_fc_vnnlib

ROOT = Path(__file__).resolve().parents[2]


def test_the_table_has_a_row_per_hidden_layer_and_consistent_counts(tmp_path):
    onnx_path = mnist_fc_onnx(tmp_path / "net.onnx", input_shape=(1, 1, 6, 6), widths=(24, 24, 16))
    x = np.random.default_rng(0).random(36)
    prop = tmp_path / "prop.vnnlib"
    prop.write_text(mnist_fc_vnnlib(x, 0.1, 3))
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "layer_bounds.py"), str(onnx_path), str(prop),
         "--samples", "2000"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = [line.split() for line in out.splitlines() if line.split()[0].isdigit()]
    assert [int(r[0]) for r in rows] == [1, 2, 3] and [int(r[1]) for r in rows] == [24, 24, 16]
    for _, width, n_crown, n_alpha, crown_width, span in rows:
        assert 0 <= int(n_alpha) <= int(n_crown) <= int(width)
        assert 0 <= float(span) <= float(crown_width) + 1e-2
    assert int(rows[0][2]) > 0, out  # the case is not trivially stable
