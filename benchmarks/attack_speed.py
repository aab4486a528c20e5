"""PGD examples per second: stalwart against torchattacks, same model, budget and inputs.

A CNN trained for two epochs on Fashion-MNIST is attacked on 2,000 test images with L∞ PGD
(ε = 0.1, 40 steps of 0.01, random start), in this process, alternating the two over repeats.
stalwart is timed twice: as used (per-example early stopping) and with every step run, which
is what torchattacks does. Robust accuracy is printed for each, to show the attacks agree.

    python benchmarks/attack_speed.py [--repeats 3] [--n 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torchattacks

from stalwart import data, fit, models
from stalwart.attacks import pgd

EPS, STEPS, ALPHA = 0.1, 40, 0.01


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()

    splits = data.load("fashion_mnist", seed=0)
    torch.manual_seed(0)
    model = models.build("cnn", splits.train)
    fit(model, "erm", splits, epochs=2, lr=1e-3, progress=False, select="last")
    model.eval()
    x, y = splits.test.x[: args.n], splits.test.y[: args.n]
    reference = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)

    runs = {
        "torchattacks": lambda: reference(x, y),
        "stalwart": lambda: pgd(model, x, y, eps=EPS, steps=STEPS, step_size=ALPHA),
        "stalwart, all steps": lambda: pgd(
            model, x, y, eps=EPS, steps=STEPS, step_size=ALPHA, early_stop=False
        ),
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    accuracy: dict[str, float] = {}
    for repeat in range(args.repeats):
        for name in runs if repeat % 2 == 0 else list(reversed(runs)):
            started = time.perf_counter()
            adversarial = runs[name]()
            seconds[name].append(time.perf_counter() - started)
            with torch.no_grad():
                accuracy[name] = (model(adversarial).argmax(1) == y).float().mean().item()

    with torch.no_grad():
        clean = (model(x).argmax(1) == y).float().mean().item()
    base = statistics.median(seconds["torchattacks"])
    print(
        f"fashion_mnist test n={args.n}, cnn, clean accuracy {100 * clean:.1f}%, L∞ PGD "
        f"eps {EPS}, {STEPS} steps of {ALPHA}; torch threads {torch.get_num_threads()}, "
        f"median of {args.repeats}"
    )
    for name in runs:
        median = statistics.median(seconds[name])
        print(
            f"{name:<20} {args.n / median:8.1f} examples/s  robust accuracy "
            f"{100 * accuracy[name]:5.1f}%  speed ratio vs torchattacks {base / median:.2f}"
        )


if __name__ == "__main__":
    main()
