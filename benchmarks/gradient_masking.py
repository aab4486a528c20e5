"""Gradient-masking checks on trained runs: the ε curve, attack effort, and a black-box attack.

For each run directory, the selected model is attacked on the first ``--n`` test points at
L∞ ε (default 0.1): robust accuracy over a grid of ε up to the full input range, PGD at the
base effort and at 5× the steps with 5 restarts, and Square Attack (black-box, 1,000 queries).
A robust accuracy that holds up only because gradients are uninformative shows as a black-box
attack doing better than PGD, or an ε curve that does not reach 0.

    python benchmarks/gradient_masking.py runs/rst_fashion_mnist/*/seed0 [--eps 0.1] [--n 500]
"""

from __future__ import annotations

import argparse

import torch

from stalwart.attacks.sanity import gradient_masking_checks
from stalwart.experiments.run import load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    print(f"L∞ ε = {args.eps}, first {args.n} test points; accuracies in %")
    print("| run | ε curve (ε: robust) | PGD-20 | PGD-100 ×5 | Square | clean | passed |")
    print("|---|---|---|---|---|---|---|")
    for run_dir in args.runs:
        _, splits, model = load_run(run_dir)
        test = splits.test.subset(torch.arange(min(args.n, len(splits.test))))
        report = gradient_masking_checks(model, test, eps=args.eps, queries=args.queries)
        curve = ", ".join(f"{e:g}: {100 * a:.1f}" for e, a in report.eps_curve.items())
        effort = list(report.effort.values())
        box = report.black_box
        failed = [name for name, ok in report.checks.items() if not ok]
        print(
            f"| {run_dir} | {curve} | {100 * effort[0]:.1f} | {100 * effort[1]:.1f} | "
            f"{100 * box['square']:.1f} | {100 * box['clean']:.1f} | "
            f"{'yes' if report.passed else 'no: ' + '; '.join(failed)} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
