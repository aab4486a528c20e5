"""``benchmarks/gpu_engine.py`` runs end to end (on the CPU, tiny), so it has not rotted when a
GPU is lent: the figures themselves come from the device machine (docs/results.md)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("gpu_engine", ROOT / "benchmarks" / "gpu_engine.py")
gpu_engine = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_engine)


def test_the_benchmark_prints_one_row_per_size(monkeypatch, capsys):
    argv = ["gpu_engine.py", "--device", "cpu", "--width", "4", "--depth", "10", "--images",
            "32", "--batch-size", "16", "--epochs", "1", "--sizes", "dominoes"]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    gpu_engine.main()
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| domin")]
    (row,) = rows
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[1] == "plain"  # the CPU's loading mode
    bare, ours, ratio = (float(c.replace(",", "")) for c in cells[2:5])
    assert bare > 0 and ours > 0
    assert abs(ratio - ours / bare) < 0.02 * ratio + 0.002  # the ratio of the two printed rates


def test_peaks_are_found_by_the_cards_name():
    assert gpu_engine.peak_tflops("NVIDIA H200", None) == 989.0
    assert gpu_engine.peak_tflops("NVIDIA A100-SXM4-80GB", None) == 312.0
    assert gpu_engine.peak_tflops("Some New Card", None) is None
    assert gpu_engine.peak_tflops("Some New Card", 500.0) == 500.0


def test_step_flops_count_forward_and_backward():
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(10, 5), torch.nn.Linear(5, 3))
    b = 4
    forward = 2 * b * (10 * 5 + 5 * 3)
    weight_gradients = forward
    input_gradients = 2 * b * 5 * 3  # the second layer's; the data needs none
    expected = forward + weight_gradients + input_gradients
    assert gpu_engine.step_flops(model, (10,), b, torch.device("cpu")) == expected
