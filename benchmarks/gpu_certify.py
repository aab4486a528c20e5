"""Bounds on CUDA: SDP-FO on a small convolutional network, CROWN and IBP on a batch of boxes.

The network is the "Wong-small" shape of the SDP-FO paper (arXiv 2010.11645):
Conv(16, 4×4, stride 2) → Conv(32, 4×4, stride 2) → FC100 → FC10 on 28×28 inputs, 5,588
activations, with random weights (no data travels to the GPU machine). SDP-FO runs a fixed
number of steps per margin row on each device, without the final exact check on CPU where
it would take minutes; CROWN and IBP bound ``--boxes`` L∞ boxes at once. Times are per row / per
batch, with the device synchronised.

    python benchmarks/gpu_certify.py [--steps 200] [--rows 2]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from stalwart.certify import LinfBall, OutputProperty, from_module
from stalwart.certify.crown import crown_layer_bounds
from stalwart.certify.ibp import layer_bounds
from stalwart.certify.sdp import sdp_rows


def wong_small() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 4, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 4, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
        nn.Linear(32 * 7 * 7, 100), nn.ReLU(), nn.Linear(100, 10),
    )  # fmt: skip


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rows", type=int, default=2)
    parser.add_argument("--eps", type=float, default=0.02)
    parser.add_argument("--boxes", type=int, default=8)
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if "cuda" in devices:
        print("GPU:", torch.cuda.get_device_name(), "| torch", torch.__version__)
    x = torch.rand(1, 28, 28, generator=torch.Generator().manual_seed(0))
    for device in devices:
        net = from_module(wong_small(), (1, 28, 28)).detach(device=device)
        label = int(net(x.to(device)).argmax())
        box = LinfBall(x, args.eps).to(device=device)
        lower, upper, _ = box.flat(net.input_shape)
        C, d, _ = OutputProperty.margin(label, 10).to(device=device).stacked()
        sdp_rows(net, lower[0], upper[0], C[:1], d[:1], steps=3, exact_max_n=0)  # warm up
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync(device)
        start = time.perf_counter()
        lows, sound = sdp_rows(net, lower[0], upper[0], C[: args.rows], d[: args.rows],
                               steps=args.steps, exact_max_n=0)  # fmt: skip
        sync(device)
        per_row = (time.perf_counter() - start) / args.rows
        memory = (
            f", peak {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
            if device == "cuda"
            else ""
        )
        print(f"{device}: SDP-FO N={net.n_activations + 1}, {args.steps} steps: {per_row:.2f} s "
              f"per row ({1000 * per_row / args.steps:.1f} ms/step){memory}; bounds "
              f"{[round(float(v), 3) for v in lows]} (estimate: {not sound})")  # fmt: skip
        batch = LinfBall(torch.rand(args.boxes, 1, 28, 28), args.eps).to(device=device)
        lo, hi, _ = batch.flat(net.input_shape)
        for name, fn in (("IBP", layer_bounds), ("CROWN", crown_layer_bounds)):
            fn(net, lo[:1], hi[:1])  # warm up
            sync(device)
            start = time.perf_counter()
            fn(net, lo, hi)
            sync(device)
            print(f"{device}: {name} layer bounds, {args.boxes} boxes: "
                  f"{1000 * (time.perf_counter() - start):.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
