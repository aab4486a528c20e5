"""Import time of stalwart's subpackages, each in fresh interpreters, against their dependencies.

    python benchmarks/import_time.py                       # this checkout
    python benchmarks/import_time.py --before /tmp/old/src # and an older source tree, side by side

Each module is imported in a new interpreter ``--repeats`` times and the median is printed,
with how many stalwart modules the import loaded and whether pandas or scikit-learn came
along. The baseline row imports what the verifier needs from outside (torch, onnx, scipy):
the least ``import stalwart.certify`` can cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MODULES = ("stalwart.certify", "stalwart.attacks", "stalwart", "stalwart.experiments")
BASELINE = "torch, onnx, scipy.optimize, scipy.sparse"
PROBE = """
import json, sys, time
start = time.perf_counter()
import {module}
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds,
                   "stalwart": sum(m.split(".")[0] == "stalwart" for m in sys.modules),
                   "heavy": sorted({{"pandas", "sklearn"}} & set(sys.modules))}}))
"""


def measure(module: str, src: Path, repeats: int) -> dict:
    """Median seconds over ``repeats`` fresh interpreters, and what the import loaded."""
    runs = []
    for _ in range(repeats):
        env = {**os.environ, "PYTHONPATH": str(src)}
        done = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], env=env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        runs.append(json.loads(done.stdout))
    return {**runs[-1], "seconds": statistics.median(r["seconds"] for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="an older src/ tree to compare against")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    trees = {"before": args.before, "after": SRC} if args.before else {"now": SRC}
    print(f"median of {args.repeats} fresh interpreters; python {sys.version.split()[0]}")
    print(f"{'import':<44}" + "".join(f"{name:<34}" for name in trees))
    for module in (*MODULES, BASELINE):
        cells = []
        for src in trees.values():
            found = measure(module, src, args.repeats)
            extra = "+" + "+".join(found["heavy"]) if found["heavy"] else ""
            cells.append(f"{found['seconds']:6.2f} s {found['stalwart']:3d} mods {extra}")
        print(f"{module:<44}" + "".join(f"{cell:<34}" for cell in cells))


if __name__ == "__main__":
    main()
