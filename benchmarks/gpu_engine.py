"""GPU throughput: ``stalwart.fit`` against a bare PyTorch loop, and achieved TFLOP/s.

For stalwart's ResNet at two input sizes, dominoes' (1×56×28) and 224×224 RGB, both sides train
the same model on the same synthetic images with the same batch, optimiser (fused Adam), bf16
autocast and memory format (channels-last on CUDA), in this process:

- the bare loop keeps the images on the device and does only what any loop must (shuffle,
  index, forward, loss, backward, step);
- ``fit`` runs as a user runs it (``loading: auto``: the data resident on the device when it
  fits, else prefetched through pinned memory), with a one-batch validation set so that the
  per-epoch evaluation costs next to nothing; its training seconds are those it records.

Each side runs one epoch to warm up (cuDNN autotuning, ``torch.compile``'s compilation), then
``--epochs`` timed ones. Printed per size: examples/s of each, their ratio (goal ≥ 0.95), and
TFLOP/s of ``fit`` (FLOPs of one training step counted by ``torch.utils.flop_counter``) as a
share of the card's dense bf16 peak (goal ≥ 40 % at 224×224), with the card's name.

    python benchmarks/gpu_engine.py                          # on the GPU machine
    python benchmarks/gpu_engine.py --compile                # with torch.compile on both sides
    python benchmarks/gpu_engine.py --device cpu --sizes dominoes --width 8 --images 64 \\
        --batch-size 16 --epochs 1                           # a smoke run on the CPU
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from stalwart import fit, models
from stalwart.data.core import GroupedDataset, Splits
from stalwart.engine.device import autocast_for, resolve_device

SIZES = {"dominoes": (1, 56, 28), "224": (3, 224, 224)}
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0,
                    "A10": 125.0, "RTX 4090": 165.0, "V100": 125.0}  # fmt: skip
"""Dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, by name fragment
(V100 has no bf16: its fp16 peak)."""


def synthetic(shape: tuple[int, ...], n: int, classes: int, seed: int) -> GroupedDataset:
    """``n`` random images of ``shape`` with random labels (throughput does not read them)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    names = [str(c) for c in range(classes)]
    x = torch.rand(n, *shape, generator=g)
    return GroupedDataset(x, y, y, n_classes=classes, group_names=names, name="synthetic")


def bare_loop(model, train, epochs, batch_size, device, channels_last, compiled) -> float:
    """Seconds of ``epochs`` epochs of a hand-written loop (after one epoch of warm-up)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=device.type == "cuda")
    x, y = train.x.to(device), train.y.to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    step_model = torch.compile(model) if compiled else model
    autocast = autocast_for(device)
    generator = torch.Generator().manual_seed(0)

    def epoch() -> None:
        order = torch.randperm(len(y), generator=generator).to(device)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            with autocast():
                loss = F.cross_entropy(step_model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    epoch()
    _sync(device)
    started = time.perf_counter()
    for _ in range(epochs):
        epoch()
    _sync(device)
    return time.perf_counter() - started


def engine(model, splits, epochs, batch_size, device, compiled) -> tuple[float, str]:
    """Training seconds ``fit`` records for its last ``epochs`` epochs, and its loading mode."""
    from stalwart.engine.loading import choose_loading, dataset_bytes, free_memory

    result = fit(model, "erm", splits, epochs=epochs + 1, batch_size=batch_size, lr=1e-3,
                 optimizer="adam", device=str(device), progress=False, select="last",
                 compile=compiled)  # fmt: skip
    mode = choose_loading("auto", device, dataset_bytes(splits.train), free_memory(device))
    return sum(r["train_seconds"] for r in result.history[1:]), mode


def step_flops(model, shape, batch_size, device) -> int:
    """FLOPs of one training step (forward and backward) on a batch."""
    x = torch.rand(batch_size, *shape, device=device)
    y = torch.zeros(batch_size, dtype=torch.long, device=device)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def peak_tflops(name: str, given: float | None) -> float | None:
    if given is not None:
        return given
    return next((peak for key, peak in PEAK_BF16_TFLOPS.items() if key in name), None)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sizes", default="dominoes,224", help=f"of {list(SIZES)}")
    parser.add_argument("--width", type=int, default=64, help="ResNet channels of stage 1")
    parser.add_argument("--depth", type=int, default=18, choices=[10, 18, 34])
    parser.add_argument("--images", type=int, default=None, help="default: 40 batches")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after one warm-up")
    parser.add_argument("--compile", action="store_true", help="torch.compile on both sides")
    parser.add_argument(
        "--peak-tflops", type=float, default=None,
        help="the card's dense bf16 peak, if its name is not in the table",
    )  # fmt: skip
    args = parser.parse_args()

    device = resolve_device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"
    peak = peak_tflops(name, args.peak_tflops) if device.type == "cuda" else None
    print(f"device: {device} ({name}), torch {torch.__version__}, bf16 peak "
          f"{f'{peak:g} TFLOP/s' if peak else 'unknown'}; ResNet-{args.depth} width "
          f"{args.width}, batch {args.batch_size}, compile {args.compile}")  # fmt: skip
    print("| input | loading | bare ex/s | fit ex/s | fit / bare | fit TFLOP/s | of peak |")
    print("|---|---|---|---|---|---|---|")
    n = args.images or 40 * args.batch_size
    for size in args.sizes.split(","):
        shape = SIZES[size]
        train = synthetic(shape, n, 10, seed=0)
        val = synthetic(shape, args.batch_size, 10, seed=1)
        splits = Splits(train=train, val=val, test=val)
        channels_last = device.type == "cuda"  # fit's default there (convolutions)

        torch.manual_seed(0)
        model = models.build("resnet", train, width=args.width, depth=args.depth).to(device)
        if channels_last:
            model.to(memory_format=torch.channels_last)
        bare = bare_loop(model, train, args.epochs, args.batch_size, device, channels_last,
                         args.compile)  # fmt: skip
        torch.manual_seed(0)
        model = models.build("resnet", train, width=args.width, depth=args.depth)
        ours, mode = engine(model, splits, args.epochs, args.batch_size, device, args.compile)
        flops = step_flops(model.to(device), shape, args.batch_size, device)
        steps = args.epochs * -(-n // args.batch_size)
        tflops = flops * steps / ours / 1e12
        share = f"{100 * tflops / peak:.1f} %" if peak else "-"
        examples = args.epochs * n
        print(f"| {size} {shape} | {mode} | {examples / bare:,.0f} | {examples / ours:,.0f} | "
              f"{bare / ours:.3f} | {tflops:.3g} | {share} |")  # fmt: skip


if __name__ == "__main__":
    main()
