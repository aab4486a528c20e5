"""How loose the root's layer bounds are on a VNN-COMP instance: CROWN, α-CROWN, sampled.

For each hidden layer of an ONNX network over a VNN-LIB box: the units unstable under CROWN
(``crown_layer_bounds``) and under the α-optimised bounds that bab+beta starts from
(``alpha_layer_bounds``, 20 steps), the mean width of CROWN's bounds, and the mean span of the
pre-activations over uniformly sampled inputs (a lower bound on the true width: uniform points
in a box of many inputs stay far from its worst corners). A tool for reading why branch and
bound stalls on a network (docs/results.md, mnist_fc).

    python benchmarks/layer_bounds.py NETWORK.onnx PROPERTY.vnnlib [--samples 20000]
"""

from __future__ import annotations

import argparse
import time

import torch

from stalwart.certify.crown import alpha_layer_bounds, crown_layer_bounds
from stalwart.certify.onnx_io import load_onnx
from stalwart.certify.vnnlib import parse_vnnlib


def unstable(bounds) -> list[int]:
    return [int(((lb < 0) & (ub > 0)).sum()) for lb, ub in bounds]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("network")
    parser.add_argument("property")
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--alpha-steps", type=int, default=20)
    args = parser.parse_args()
    f64 = torch.float64
    net = load_onnx(args.network, dtype=f64).detach(dtype=f64)
    instance = parse_vnnlib(args.property, n_inputs=net.in_features,
                            n_outputs=net.out_features, dtype=f64)[0]  # fmt: skip
    box = instance.box_for(net.input_shape, "outer")
    lo, hi = box.lower.reshape(-1), box.upper.reshape(-1)
    start = time.perf_counter()
    plain = crown_layer_bounds(net, lo, hi)[:-1]
    crown_s = time.perf_counter() - start
    start = time.perf_counter()
    tight = alpha_layer_bounds(net, lo, hi, steps=args.alpha_steps)[:-1]
    alpha_s = time.perf_counter() - start
    generator = torch.Generator().manual_seed(0)
    h = lo + (hi - lo) * torch.rand(args.samples, lo.numel(), generator=generator, dtype=f64)
    spans = []
    with torch.no_grad():
        for layer in net.layers[:-1]:
            z = layer.forward(h)
            spans.append(float((z.max(0).values - z.min(0).values).mean()))
            h = z.relu()
    print(f"CROWN {crown_s:.2f} s, α-CROWN ({args.alpha_steps} steps per layer) {alpha_s:.2f} s")
    print("layer  width  unstable CROWN  unstable α  CROWN width  sampled span")
    rows = zip(net.hidden_sizes, unstable(plain), unstable(tight), plain, spans, strict=True)
    for i, (width, n_plain, n_tight, (lb, ub), span) in enumerate(rows, start=1):
        mean = float((ub - lb).mean())
        print(f"{i:5d} {width:6d} {n_plain:15d} {n_tight:11d} {mean:12.2f} {span:13.2f}")


if __name__ == "__main__":
    main()
