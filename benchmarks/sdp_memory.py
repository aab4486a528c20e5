"""SDP-FO's matrix-free iteration against building the dense SDP matrix: memory and time.

For MLPs ``784-w-w-10`` (and deeper ``784-w-w-w-w-10``) with random weights and an L∞ box of
ε = 0.05 around a random image, each measurement runs in a fresh process:

* **SDP-FO**: ``steps`` optimisation steps of ``stalwart.certify.sdp`` (each one Lanczos run of
  ``--lanczos`` matrix-vector products, one differentiable product, an Adam update); time per
  step and the peak extra memory of those steps.
* **dense**: the ``N × N`` matrix ``diag(κ) − M(λ)`` built from ``N`` products in float64 and its
  exact smallest eigenvalue (what a sound final certificate costs); skipped when ``N² · 8``
  bytes exceed ``--dense-cap-mib``, in which case the table shows that extrapolated size.

Memory on CPU is the growth of the process's peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs`` just before the measured part, so imports, the network's weights and
the interval bounds are excluded); glibc returns large freed blocks to the system, so this
tracks the tensors alive at the peak, plus allocator slack of about a MiB (small rows are noise
at that level). On CUDA it is ``torch.cuda.max_memory_allocated`` above the allocation before
the measured part. The weights themselves (quadratic in width for an MLP) are not counted:
both methods need them.

    python benchmarks/sdp_memory.py [--device cpu|cuda] [--steps 5] [--lanczos 30] [--rows 1]
        [--widths 64 128 256 512 1024] [--dense-cap-mib 4096] [--threads 1]

With ``--rows 9`` every margin row of a point is optimised as one batch (how
``stalwart certify`` runs SDP-FO): the "s/step" column is then one step of all nine.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

MIB = 2**20


class AllocatedBytes(TorchDispatchMode):
    """Sums the bytes of every new tensor an operation returns (views and in-place excluded)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {
            t.untyped_storage().data_ptr()
            for t in tree_flatten((args, kwargs))[0]
            if isinstance(t, torch.Tensor)
        }
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                self.total += t.untyped_storage().nbytes()
        return out


def _peak_reset(device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _rss_kib("VmRSS") * 1024


def _peak_bytes(device: str, base: float) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    return _rss_kib("VmHWM") * 1024 - base


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))


def worker(args: argparse.Namespace) -> None:
    """One measurement in this process; prints a JSON line."""
    from stalwart.certify import sdp
    from stalwart.certify.network import Dense, Network

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sizes = [784, *([args.width] * args.depth), 10]
    layers = [
        Dense(torch.randn(o, i) / i**0.5, torch.randn(o) * 0.1)
        for i, o in zip(sizes, sizes[1:], strict=False)
    ]
    net = Network(layers, (784,)).detach(device=args.device)
    x = torch.rand(784, device=args.device)
    lower, upper = (x - 0.05).clamp(0, 1), (x + 0.05).clamp(0, 1)
    # The margins of label 0 against the others: ``--rows`` of them, optimised as one batch.
    C = torch.zeros(args.rows, 10, device=args.device)
    C[:, 0] = 1.0
    C[torch.arange(args.rows), 1 + torch.arange(args.rows) % 9] = -1.0
    boxes = sdp.activation_boxes(net, lower, upper)
    problem = sdp.rows_problem(net, boxes, C, torch.zeros(args.rows, device=args.device))
    result = {"n": problem.n}
    if args.method == "sdpfo":
        generator = torch.Generator().manual_seed(0)
        with torch.enable_grad():  # warm-up: allocator pools
            sdp.optimise_rows(
                problem, steps=2, lr=1.0, lanczos_iters=args.lanczos, generator=generator
            )
        base = _peak_reset(args.device)
        start = time.perf_counter()
        with torch.enable_grad():
            sdp.optimise_rows(
                problem, steps=args.steps, lr=1.0, lanczos_iters=args.lanczos, generator=generator
            )
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        result["seconds"] = (time.perf_counter() - start) / args.steps
        result["bytes"] = _peak_bytes(args.device, base)
        counter = AllocatedBytes()
        with counter, torch.enable_grad():
            sdp.optimise_rows(
                problem, steps=1, lr=1.0, lanczos_iters=args.lanczos, generator=generator
            )
        result["allocated"] = counter.total
    else:
        problem64 = problem.select([0]).to(torch.float64)  # one row's matrix
        duals = sdp.ibp_duals(problem64)
        torch.linalg.eigvalsh(torch.eye(4, dtype=torch.float64, device=args.device))  # warm-up
        base = _peak_reset(args.device)
        start = time.perf_counter()
        _, g = sdp.constant_and_gradient(problem64, duals)
        torch.linalg.eigvalsh(sdp.dense_a(problem64, duals, g))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        result["seconds"] = time.perf_counter() - start
        result["bytes"] = _peak_bytes(args.device, base)
    print(json.dumps(result))


def measure(args: argparse.Namespace, width: int, depth: int, method: str) -> dict:
    command = [
        sys.executable, __file__, "--worker", "--method", method, "--width", str(width),
        "--depth", str(depth), "--device", args.device, "--steps", str(args.steps),
        "--lanczos", str(args.lanczos), "--threads", str(args.threads), "--rows", str(args.rows),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--lanczos", type=int, default=30)
    parser.add_argument("--rows", type=int, default=1, help="margin rows per batch (1-9)")
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--dense-cap-mib", type=float, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", default="sdpfo", help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, default=64, help=argparse.SUPPRESS)
    parser.add_argument("--depth", type=int, default=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    print(
        f"device {args.device}, {args.threads} thread(s), Lanczos {args.lanczos} iterations, "
        f"mean over {args.steps} SDP-FO steps of {args.rows} row(s) batched"
    )
    header = (
        f"{'network':>24} {'N':>6} {'FO alloc/step MiB':>17} {'FO peak MiB':>11} {'s/step':>8} "
        f"{'dense N²·8 MiB':>15} "
        f"{'dense MiB':>10} {'dense s':>8} {'mem ratio':>10} {'time ratio':>10}"
    )
    print(header)
    for depth in args.depths:
        for width in args.widths:
            name = "-".join(["784", *[str(width)] * depth, "10"])
            fo = measure(args, width, depth, "sdpfo")
            n = fo["n"]
            theory = n * n * 8 / MIB
            if theory <= args.dense_cap_mib:
                dense = measure(args, width, depth, "dense")
                dense_mib, dense_s = f"{dense['bytes'] / MIB:10.1f}", f"{dense['seconds']:8.2f}"
                ratio = dense["bytes"] / max(fo["bytes"], fo["allocated"])
                mem_ratio, time_ratio = (
                    f"{ratio:9.0f}x",
                    f"{dense['seconds'] / fo['seconds']:9.0f}x",
                )
            else:
                dense_mib, dense_s = f"{'skipped':>10}", f"{'-':>8}"
                mem_ratio = f"{theory * MIB / max(fo['bytes'], fo['allocated']):8.0f}x*"
                time_ratio = f"{'-':>10}"
            print(
                f"{name:>24} {n:6d} {fo['allocated'] / MIB:17.2f} {fo['bytes'] / MIB:11.1f} "
                f"{fo['seconds']:8.4f} "
                f"{theory:15.1f} {dense_mib} {dense_s} {mem_ratio} {time_ratio}"
            )
    print(
        "FO alloc/step: bytes of all tensors one SDP-FO step creates (an upper bound on its extra "
        "live memory); mem ratio: dense peak over the larger of FO alloc/step and FO peak; "
        "* = from the extrapolated N²·8 bytes."
    )


if __name__ == "__main__":
    main()
