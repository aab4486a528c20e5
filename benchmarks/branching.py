"""Which unit branch and bound splits: filtered smart branching against the intercept score.

Runs ``certify.search(method="bab+beta")`` on one VNN-COMP instance once per setting of
``branch_candidates`` (units tried per subdomain by ``beta_crown.strongest_splits``; 1 is the
highest intercept score with no trial passes), in this process, and prints the answer, the
subdomains bounded, the seconds and each setting's ratio to the first (docs/results.md,
mnist_fc). No attack runs first: the instance is meant to be one that holds.

    python benchmarks/branching.py NETWORK.onnx PROPERTY.vnnlib [--candidates 1,5,10]
        [--timeout 300]
"""

from __future__ import annotations

import argparse
import re

import torch

from stalwart.certify.complete import search
from stalwart.certify.onnx_io import load_onnx
from stalwart.certify.vnnlib import parse_vnnlib


def subdomains(detail: str) -> str:
    """The count in a search's detail (``closed N subdomains`` / ``N subdomains open``)."""
    found = re.search(r"(\d+) subdomains", detail)
    return found.group(1) if found else "-"


def main(argv: list[str] | None = None) -> list[tuple[int, str, str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("network")
    parser.add_argument("property")
    parser.add_argument("--candidates", default="1,5,10", help="settings, the first the baseline")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per setting")
    args = parser.parse_args(argv)
    settings = [int(c) for c in args.candidates.split(",") if c.strip()]
    if not settings or min(settings) < 1:
        parser.error(f"--candidates needs counts >= 1; got {args.candidates!r}")
    f64 = torch.float64
    net = load_onnx(args.network, dtype=f64).detach(dtype=f64)
    (instance,) = parse_vnnlib(args.property, n_inputs=net.in_features,
                               n_outputs=net.out_features, dtype=f64)[:1]  # fmt: skip
    box = instance.box_for(net.input_shape, "outer")
    inside = instance.box_for(net.input_shape, "inner")
    rows = []
    print("candidates  answer   subdomains  seconds  × first")
    for k in settings:
        found = search(net, box, instance.prop, timeout=args.timeout, method="bab+beta",
                       attack_restarts=0, inside=inside, branch_candidates=k)  # fmt: skip
        rows.append((k, found.status, subdomains(found.detail), found.seconds))
        ratio = found.seconds / rows[0][3]
        count = rows[-1][2]
        print(f"{k:>10}  {found.status:<7}  {count:>10}  {found.seconds:>7.1f}  {ratio:>7.2f}")
    return rows


if __name__ == "__main__":
    main()
