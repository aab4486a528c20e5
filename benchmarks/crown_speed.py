"""CROWN bounds per second: stalwart against auto_LiRPA, same MLP, inputs and margin rows.

A randomly initialised 784-256-256-10 MLP (rescaled so that the bounds are neither trivially
stable nor vacuous) is bounded on a batch of L∞ balls with the margin rows ``y_label − y_j``
of every other class, by stalwart's CROWN (``crown_layer_bounds`` + ``crown_rows``) and by
auto_LiRPA's ``compute_bounds(method="backward")``, alternating the two over repeats in this
process. Both use CROWN's adaptive lower slopes, so the bounds should agree to rounding: the
largest difference is printed as a correctness check, beside the speed ratio.

auto_LiRPA is not on PyPI; install it from a local copy of its repository with
``pip install --no-deps <copy>`` plus ``appdirs graphviz pyyaml tqdm packaging``. Without it the
script says so and exits 0.

    python benchmarks/crown_speed.py [--repeats 5] [--batch 16] [--eps 0.02] [--dtype float32]
        [--alpha-steps 20] [--alpha-lr 0.5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import torch
from torch import nn

from stalwart.certify import from_module
from stalwart.certify.crown import crown_layer_bounds, crown_rows


def build_model(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
        nn.Linear(256, 10),
    )  # fmt: skip
    return model.eval()


def margin_spec(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``(batch, n − 1, n)`` rows ``e_label − e_j`` for every ``j ≠ label``."""
    eye = torch.eye(n_classes)
    rows = eye[labels].unsqueeze(1) - eye.unsqueeze(0)
    keep = torch.ones(len(labels), n_classes, dtype=torch.bool)
    keep[torch.arange(len(labels)), labels] = False
    return rows[keep].reshape(len(labels), n_classes - 1, n_classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--eps", type=float, default=0.02)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--alpha-steps", type=int, default=20)
    parser.add_argument("--alpha-lr", type=float, default=0.5)
    args = parser.parse_args()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from auto_LiRPA import BoundedModule, BoundedTensor, PerturbationLpNorm
    except ImportError:
        print("auto_LiRPA is not installed; skipping the CROWN comparison (see the docstring).")
        sys.exit(0)

    dtype = getattr(torch, args.dtype)
    model = build_model(0).to(dtype)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(args.batch, 1, 28, 28, generator=g).to(dtype)
    with torch.no_grad():
        labels = model(x).argmax(1)
    C = margin_spec(labels, 10).to(dtype)
    lower, upper = (x - args.eps).clamp(0, 1), (x + args.eps).clamp(0, 1)

    net = from_module(model, (1, 28, 28)).detach()
    flat_lo, flat_hi = lower.flatten(1), upper.flatten(1)
    zero = torch.zeros(C.shape[:2], dtype=dtype)

    def ours(intersect_ibp: bool = False, rounding: bool = False) -> torch.Tensor:
        with torch.no_grad():
            bounds = crown_layer_bounds(net, flat_lo, flat_hi, intersect_ibp=intersect_ibp,
                                        rounding=rounding)  # fmt: skip
            return crown_rows(net, flat_lo, flat_hi, C, zero, bounds=bounds, rounding=rounding)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bounded = BoundedModule(model, torch.zeros_like(x[:1]), device="cpu", verbose=0)
    ptb = PerturbationLpNorm(norm=float("inf"), x_L=lower, x_U=upper)
    inputs = BoundedTensor(x, ptb)

    def theirs() -> torch.Tensor:
        with torch.no_grad():
            lb, _ = bounded.compute_bounds(x=(inputs,), C=C, method="backward", bound_upper=False)
        return lb

    # α-CROWN on both sides: ``alpha_steps`` Adam steps at rate ``alpha_lr`` on the lower slopes
    # of every output row, with the intermediate bounds fixed at CROWN's. auto_LiRPA's
    # "CROWN-Optimized" also optimises the intermediate layers' slopes (tighter, several times
    # the work) unless it is handed the intermediate bounds, so it gets CROWN's (its own
    # backward pass, timed). It also decays its rate by 0.98 a step: close bounds, not equal.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimized = BoundedModule(
            model, torch.zeros_like(x[:1]), device="cpu", verbose=0,
            bound_opts={"optimize_bound_args": {"iteration": args.alpha_steps,
                                                "lr_alpha": args.alpha_lr}},
        )  # fmt: skip

    def theirs_alpha() -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.no_grad():
                optimized.compute_bounds(x=(inputs,), C=C, method="backward", bound_upper=False)
            fixed = {
                node.inputs[0].name: (node.inputs[0].lower, node.inputs[0].upper)
                for node in optimized.nodes()
                if type(node).__name__ == "BoundRelu"
            }
            lb, _ = optimized.compute_bounds(x=(inputs,), C=C, method="CROWN-Optimized",
                                             bound_upper=False, interm_bounds=fixed)  # fmt: skip
        return lb.detach()

    def ours_alpha() -> torch.Tensor:
        with torch.no_grad():
            bounds = crown_layer_bounds(net, flat_lo, flat_hi, intersect_ibp=False)
        return crown_rows(net, flat_lo, flat_hi, C, zero, bounds=bounds, alpha=True,
                          steps=args.alpha_steps, lr=args.alpha_lr).detach()  # fmt: skip

    # "stalwart": the same relaxation as auto_LiRPA; "stalwart, default": intermediate bounds
    # intersected with IBP, and CROWN run only for the units IBP leaves unstable; "stalwart,
    # rounding": the default plus the rigorous rounding allowance that makes a float32 bound a
    # certificate (what `bound(..., dtype=torch.float32)` computes).
    runs = {
        "auto_LiRPA": theirs,
        "stalwart": ours,
        "stalwart, default": lambda: ours(True),
        "stalwart, rounding": lambda: ours(True, rounding=True),
        "auto_LiRPA α-CROWN": theirs_alpha,
        "stalwart α-CROWN": ours_alpha,
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    results: dict[str, torch.Tensor] = {}
    for name in runs:  # warm-up: first calls build caches
        results[name] = runs[name]()
    for repeat in range(args.repeats):
        for name in runs if repeat % 2 == 0 else list(reversed(runs)):
            started = time.perf_counter()
            results[name] = runs[name]()
            seconds[name].append(time.perf_counter() - started)

    ours_s, theirs_s = (
        statistics.median(seconds["stalwart"]),
        statistics.median(seconds["auto_LiRPA"]),
    )
    difference = (results["stalwart"] - results["auto_LiRPA"]).abs().max().item()
    scale = results["auto_LiRPA"].abs().max().item()
    print(f"network 784-256-256-10, {args.batch} L∞ balls of eps {args.eps}, 9 margin rows each, "
          f"{args.dtype}, torch threads {torch.get_num_threads()}")  # fmt: skip
    print(f"auto_LiRPA CROWN: {theirs_s * 1000:8.1f} ms (median of {args.repeats})")
    print(f"stalwart CROWN:   {ours_s * 1000:8.1f} ms")
    default_s = statistics.median(seconds["stalwart, default"])
    print(f"stalwart CROWN, default (IBP-intersected): {default_s * 1000:8.1f} ms")
    rounding_s = statistics.median(seconds["stalwart, rounding"])
    print(f"stalwart CROWN, default + rounding allowance: {rounding_s * 1000:8.1f} ms")
    print(f"speed ratio (auto_LiRPA time / stalwart time): {theirs_s / ours_s:.2f}; "
          f"default: {theirs_s / default_s:.2f}")  # fmt: skip
    cost = (results["stalwart, default"] - results["stalwart, rounding"]).abs().max().item()
    print(f"largest rounding allowance: {cost:.3g} (bounds up to {scale:.3g} in size)")
    print(f"max |bound difference|: {difference:.2e} (largest |bound| {scale:.2e})")
    gain = (results["stalwart, default"] - results["stalwart"]).mean().item()
    print(f"mean gain from intersecting intermediate bounds with IBP: {gain:.2e}")
    theirs_a, ours_a = (statistics.median(seconds[f"{who} α-CROWN"])
                        for who in ("auto_LiRPA", "stalwart"))  # fmt: skip
    print(f"α-CROWN, {args.alpha_steps} steps at rate {args.alpha_lr}: auto_LiRPA "
          f"{theirs_a * 1000:.1f} ms, stalwart {ours_a * 1000:.1f} ms, speed ratio "
          f"{theirs_a / ours_a:.2f}")  # fmt: skip
    for who in ("auto_LiRPA", "stalwart"):
        value = results[f"{who} α-CROWN"]
        print(
            f"  {who} α-CROWN mean bound {value.mean().item():.5f} "
            f"(CROWN {results['auto_LiRPA'].mean().item():.5f})"
        )


if __name__ == "__main__":
    main()
