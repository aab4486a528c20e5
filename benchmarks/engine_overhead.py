"""Examples per second of ``stalwart.fit`` against a bare hand-written PyTorch loop.

Both train the same CNN on the same dominoes images with the same batch size, optimiser and
number of epochs, in this process, alternating repeats so that drift hits both equally. The
bare loop does only what any loop must (shuffle, slice, forward, loss, backward, step); fit
adds per-epoch validation with per-group metrics (checkpoints are off). The ratio printed is
fit's throughput over the bare loop's, counting training time only: fit records each epoch's
training seconds apart from its validation, which is reported on its own.

    python benchmarks/engine_overhead.py [--repeats 3] [--epochs 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from stalwart import data, fit, models
from stalwart.engine.device import autocast_for, resolve_device


def bare_loop(model, train, epochs, batch_size, lr, device, seed):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)  # as stalwart builds it
    x, y = train.x.to(device), train.y.to(device)
    autocast = autocast_for(device)
    generator = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            with autocast():
                loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def stalwart_fit(model, splits, epochs, batch_size, lr, device, seed):
    result = fit(
        model,
        "erm",
        splits,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer="adam",
        seed=seed,
        device=str(device),
        progress=False,
        select="last",
    )
    training = sum(r["train_seconds"] for r in result.history)
    return training, sum(r["seconds"] for r in result.history) - training


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = resolve_device(args.device)
    splits = data.load("dominoes", seed=0)
    n = len(splits.train) * args.epochs
    bare_times, fit_times, val_times = [], [], []

    def run_bare(repeat):
        torch.manual_seed(repeat)
        model = models.build("cnn", splits.train).to(device)
        bare_times.append(
            bare_loop(model, splits.train, args.epochs, args.batch_size, 1e-3, device, repeat)
        )

    def run_fit(repeat):
        torch.manual_seed(repeat)
        model = models.build("cnn", splits.train)
        train_time, val_time = stalwart_fit(
            model, splits, args.epochs, args.batch_size, 1e-3, device, repeat
        )
        fit_times.append(train_time)
        val_times.append(val_time)

    run_bare(-1)  # warm-up: first calls pay for allocator and kernel set-up
    bare_times.clear()
    for repeat in range(args.repeats):
        # Alternate which side goes first so slow drift of the machine hits both alike.
        for side in (run_bare, run_fit) if repeat % 2 == 0 else (run_fit, run_bare):
            side(repeat)

    bare, ours = statistics.median(bare_times), statistics.median(fit_times)
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"
    print(
        f"device: {device} ({name}), torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    print(
        f"dominoes train n={len(splits.train)}, cnn, batch {args.batch_size}, "
        f"{args.epochs} epochs, median of {args.repeats}"
    )
    print(f"bare loop : {n / bare:9.1f} examples/s")
    print(
        f"stalwart  : {n / ours:9.1f} examples/s (training; validation took "
        f"{statistics.median(val_times) / args.epochs:.2f}s per epoch on top)"
    )
    print(f"ratio fit/bare: {bare / ours:.3f}")


if __name__ == "__main__":
    main()
