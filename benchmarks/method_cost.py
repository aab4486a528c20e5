"""Per-epoch and per-example training cost of group DRO and JTT's stage 2, against ERM.

All three train the same CNN on the same dominoes data with the same batch size in this
process; each is timed by ``fit``'s own per-epoch training seconds (validation excluded),
alternating the methods over repeats. JTT's stage 2 visits more examples per epoch than ERM
(every example once plus λ − 1 extra copies of each error), so its per-epoch cost is reported
beside its per-example cost. The error set comes from a one-epoch ERM model, as in the demo.

    python benchmarks/method_cost.py [--repeats 3] [--upweight 20]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from stalwart import data, fit, models
from stalwart.data.samplers import repeat_positions
from stalwart.methods import build
from stalwart.recipes.jtt import error_set

SETTINGS = dict(epochs=1, batch_size=128, lr=1e-3, optimizer="adam", progress=False, select="last")


def timed(splits, method, sampler=None, seed=0):
    torch.manual_seed(seed)
    model = models.build("cnn", splits.train, width=16)
    result = fit(model, method, splits, sampler=sampler, seed=seed, **SETTINGS)
    record = result.history[0]
    order = (sampler or method.sampler(seed) or (lambda d, g: torch.arange(len(d))))(
        splits.train, torch.Generator().manual_seed(0)
    )
    return record["train_seconds"], len(order)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--upweight", type=int, default=20)
    args = parser.parse_args()

    splits = data.load("dominoes", seed=0)
    torch.manual_seed(0)
    identifier = fit(models.build("cnn", splits.train, width=16), "erm", splits, **SETTINGS).model
    errors = error_set(identifier, splits.train)
    jtt_sampler = repeat_positions(errors, args.upweight, len(splits.train))

    runs = {
        "erm": lambda: timed(splits, build("erm", splits.train)),
        "group_dro": lambda: timed(splits, build("group_dro", splits.train)),
        "jtt stage 2": lambda: timed(splits, build("erm", splits.train), jtt_sampler),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    sizes: dict[str, int] = {}
    timed(splits, build("erm", splits.train))  # warm-up
    for repeat in range(args.repeats):
        names = list(runs) if repeat % 2 == 0 else list(reversed(runs))
        for name in names:
            seconds, size = runs[name]()
            times[name].append(seconds)
            sizes[name] = size

    erm_epoch = statistics.median(times["erm"])
    erm_example = erm_epoch / sizes["erm"]
    print(
        f"dominoes n={len(splits.train)}, cnn width 16, batch 128, torch threads "
        f"{torch.get_num_threads()}, median of {args.repeats}; JTT error set {len(errors)}, "
        f"upweight {args.upweight}"
    )
    header = ("method", "examples/epoch", "s/epoch", "epoch ratio", "per-example ratio")
    print(f"{header[0]:<12} {header[1]:>15} {header[2]:>9} {header[3]:>12} {header[4]:>18}")
    for name in runs:
        epoch = statistics.median(times[name])
        print(
            f"{name:<12} {sizes[name]:>15} {epoch:>9.2f} {epoch / erm_epoch:>12.3f} "
            f"{epoch / sizes[name] / erm_example:>18.3f}"
        )


if __name__ == "__main__":
    main()
