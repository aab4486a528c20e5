"""Training time of DROCC per ODDS dataset, against PyOD's Deep SVDD and a bare PyTorch loop.

On each dataset's seed-0 split, in this process, with one thread:

- ``drocc``: ``stalwart.anomaly.DROCC`` with the settings of ``examples/anomaly_odds.yaml``
  (30 epochs, 5 of warm-up, 20 ascent steps, batch 128), trained through ``engine.fit``;
- ``bare``: the same algorithm as a bare PyTorch loop (the reference trainer's structure: BCE,
  Gaussian start, normalised ascent, projection every 10 steps, the same epochs and learning
  rate drops), without validation, selection or records: the engine's overhead;
- ``pyod_deep_svdd``: PyOD 3.6.7's DeepSVDD at 50 epochs, as in the ODDS example (batch 32).

Prints seconds and the ratios drocc / bare ("ratio bare") and drocc / pyod_deep_svdd ("ratio
pyod") per dataset, median of
``--repeats`` alternating runs.

    python benchmarks/anomaly_speed.py [--folder ../shared/data/odds] [--datasets a,b] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from stalwart.anomaly import DROCC
from stalwart.anomaly.pyod_reference import build_pyod
from stalwart.data.one_class import odds
from stalwart.data.sources.odds import odds_names

SETTINGS = {"epochs": 30, "warmup_epochs": 5, "ascent_steps": 20, "batch_size": 128}


def bare_drocc(x: np.ndarray, radius: float, seed: int) -> float:
    """The DROCC training loop written plainly; returns its seconds."""
    torch.manual_seed(seed)
    data = torch.from_numpy((x - x.mean(0)) / np.where(x.std(0) > 1e-12, x.std(0), 1.0))
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 1))  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)  # as stalwart builds it
    epochs, warmup, steps = SETTINGS["epochs"], SETTINGS["warmup_epochs"], SETTINGS["ascent_steps"]
    started = time.perf_counter()
    for epoch in range(epochs):
        drocc_epoch = epoch - warmup
        if drocc_epoch >= 0:
            drops = drocc_epoch // max(1, round(0.3 * (epochs - warmup)))
            for group in optimizer.param_groups:
                group["lr"] = 1e-3 * 0.1**drops
        for batch in data[torch.randperm(len(data))].split(SETTINGS["batch_size"]):
            logits = model(batch).squeeze(1)
            loss = F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
            if epoch >= warmup:
                adversarial = (batch + torch.randn_like(batch)).detach()
                for step in range(steps):
                    adversarial.requires_grad_(True)
                    out = model(adversarial).squeeze(1)
                    ascent = F.binary_cross_entropy_with_logits(out, torch.zeros_like(out))
                    (gradient,) = torch.autograd.grad(ascent, adversarial)
                    norm = gradient.norm(dim=1, keepdim=True).clamp(min=1e-12)
                    adversarial = (adversarial + 0.001 * gradient / norm).detach()
                    if (step + 1) % 10 == 0:
                        h = adversarial - batch
                        length = h.norm(dim=1, keepdim=True)
                        h = h * length.clamp(radius, 2 * radius) / length.clamp(min=1e-12)
                        adversarial = batch + h
                out = model(adversarial).squeeze(1)
                loss = loss + F.binary_cross_entropy_with_logits(out, torch.zeros_like(out))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started


def timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def time_dataset(x: np.ndarray, repeats: int) -> dict[str, float]:
    """Median seconds of the three trainers on ``x``, alternating their order over repeats."""
    detector = DROCC(random_state=0, **SETTINGS)
    detector.fit(x)  # warm-up, and the radius the bare loop uses too
    runs = [
        ("drocc", lambda: timed(lambda: detector.fit(x))),
        ("bare", lambda: bare_drocc(x, detector.radius_, seed=0)),
        ("pyod", lambda: timed(lambda: build_pyod("pyod_deep_svdd", seed=0,
                                                  n_features=x.shape[1], epochs=50).fit(x))),
    ]  # fmt: skip
    times: dict[str, list[float]] = {key: [] for key, _ in runs}
    for repeat in range(repeats):
        for key, run in runs if repeat % 2 == 0 else runs[::-1]:
            times[key].append(run())
    return {key: statistics.median(values) for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", default="../shared/data/odds")
    parser.add_argument("--datasets", default="", help="comma-separated (default: every file)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = [n for n in args.datasets.split(",") if n] or odds_names(args.folder)
    build_pyod("pyod_deep_svdd", seed=0, n_features=3, epochs=1).fit(
        np.random.default_rng(0).normal(size=(64, 3))
    )  # warm-up: first-call costs inside torch and PyOD
    print(f"{'dataset':<12} {'n':>6} {'d':>4} {'drocc s':>8} {'bare s':>7} {'pyod svdd s':>11}"
          f" {'ratio bare':>10} {'ratio pyod':>10}")  # fmt: skip
    ratios_bare, ratios_pyod = [], []
    for name in names:
        x = odds(name, seed=0, folder=args.folder).train_x
        median = time_dataset(x, args.repeats)
        ratios_bare.append(median["drocc"] / median["bare"])
        ratios_pyod.append(median["drocc"] / median["pyod"])
        print(f"{name:<12} {len(x):>6} {x.shape[1]:>4} {median['drocc']:>8.2f} "
              f"{median['bare']:>7.2f} {median['pyod']:>11.2f} {ratios_bare[-1]:>10.2f} "
              f"{ratios_pyod[-1]:>10.2f}", flush=True)  # fmt: skip
    print(f"median ratio over {len(names)} datasets: drocc/bare "
          f"{statistics.median(ratios_bare):.2f}, drocc/pyod_deep_svdd "
          f"{statistics.median(ratios_pyod):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
