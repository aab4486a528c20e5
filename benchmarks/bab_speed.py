"""Branch and bound over ReLU splits: one LP per subdomain (``bab``) against batched β-CROWN
(``bab+beta``), on the same robustness properties in this process.

A 64-32-32-10 MLP is trained for a few seconds on scikit-learn's bundled 8×8 digits (inputs
scaled to [0, 1]); properties are L∞ balls around test digits it classifies correctly, with
the radius 15% past the largest that α-CROWN alone proves (found by doubling from ``--eps``
and bisecting), so the complete search has work to do and the answer can go either way. Each
property is searched by both methods with no attack first, alternating which goes first; the
table gives the answer, the wall time and the number of subdomains bounded, and the last line
the ratio of the total times.

    python benchmarks/bab_speed.py [--instances 6] [--timeout 20] [--eps 0.01]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import time

import torch
from torch import nn

from stalwart.certify import Box, LinfBall, OutputProperty, bound, from_module
from stalwart.certify.complete import search

METHODS = ("bab", "bab+beta")


def trained_mlp(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A 64-32-32-10 MLP trained on 1500 digits; returns it with the held-out digits."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    torch.manual_seed(seed)
    order = torch.randperm(len(x))
    train, test = order[:1500], order[1500:]
    model = nn.Sequential(
        nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10)
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(x[train]), y[train]).backward()
        optimiser.step()
    return model.eval(), x[test], y[test]


def subdomains(detail: str) -> str:
    """The number of subdomains a search's detail reports ('-' when it bounded none)."""
    found = re.search(r"(\d+) subdomains?", detail)
    return found.group(1) if found else "1" if "subdomain" in detail else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=20.0)
    parser.add_argument("--eps", type=float, default=0.01)
    args = parser.parse_args()
    print(
        f"{platform.machine()}, {os.cpu_count()} cores (load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}), torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}"
    )
    started = time.perf_counter()
    model, xs, ys = trained_mlp()
    net = from_module(model, (64,)).detach(dtype=torch.float64)
    accuracy = float((model(xs).argmax(1) == ys).float().mean())
    trained = time.perf_counter() - started
    print(f"MLP 64-32-32-10 on sklearn digits, held-out accuracy {accuracy:.3f} "
          f"(trained in {trained:.1f}s); timeout {args.timeout:g}s each")  # fmt: skip

    problems: list[tuple[int, float, Box, OutputProperty]] = []
    for i in range(len(xs)):
        if len(problems) >= args.instances:
            break
        x, label = xs[i].double(), int(ys[i])
        if int(net(x[None]).argmax()) != label:
            continue
        prop = OutputProperty.margin(label, 10, dtype=torch.float64)

        def proved(eps: float, x=x, prop=prop) -> bool:
            return bound("crown+alpha", net, LinfBall(x, eps), prop=prop).certified

        # Bisect for the largest radius α-CROWN proves, then step 15% past it: the complete
        # search has work there, and the answer can go either way.
        low, high = 0.0, args.eps
        while proved(high) and high < 0.5:
            low, high = high, 2 * high
        for _ in range(6):
            middle = (low + high) / 2
            low, high = (middle, high) if proved(middle) else (low, middle)
        eps = 1.15 * high
        problems.append((i, eps, LinfBall(x, eps), prop))

    header = f"{'digit':>5} {'eps':>6} | " + " | ".join(
        f"{m:>8} {'answer':>8} {'s':>6} {'domains':>7}" for m in METHODS
    )
    print(header)
    totals = dict.fromkeys(METHODS, 0.0)
    for k, (i, eps, box, prop) in enumerate(problems):
        cells = {}
        for method in METHODS if k % 2 == 0 else METHODS[::-1]:
            result = search(net, box, prop, timeout=args.timeout, method=method,
                            attack_restarts=0)  # fmt: skip
            totals[method] += result.seconds
            cells[method] = (
                f"{'':>8} {result.status:>8} {result.seconds:6.2f} {subdomains(result.detail):>7}"
            )
        print(f"{i:>5} {eps:6.3f} | " + " | ".join(cells[m] for m in METHODS))
    print(
        f"total seconds: bab {totals['bab']:.1f}, bab+beta {totals['bab+beta']:.1f}; "
        f"ratio bab / bab+beta = {totals['bab'] / max(totals['bab+beta'], 1e-9):.2f} "
        "(unknown counts at its time-out)"
    )


if __name__ == "__main__":
    main()
