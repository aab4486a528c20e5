"""Building RobEn encodings: time and peak memory of ours against a dense per-component AggClust.

For the ``n`` most frequent English words (``english_vocabulary(n)``, Debian word list ``huge``
ranked by wordfreq), each configuration runs in a fresh worker process with one thread:

- ``words``: the worker's imports and reading the words, nothing built: the floor under every
  peak below (stalwart's imports pull in torch);
- ``connected_components``: ``build_encoding(..., method="connected_components")``;
- ``agglomerative``: ``build_encoding(..., method="agglomerative", gamma=--gamma)``;
- ``dense``: the same typo graph (``stalwart.text.graph.typo_graph``), then AggClust the way
  RobEn's reference code (ejones313/roben, ``agglom_clusters.py``) does it, written here: per
  connected component, dense n_c × n_c matrices (one-hot cluster memberships, the "dominates"
  matrix W of which clusters each word's typos reach, the allowed pairs), and after every merge a
  full rescan of all allowed pairs for the most negative ΔΦ. This version is kinder than the
  reference: each rescan is vectorised with numpy, one-hot distances to a centroid use their
  closed form (the reference takes an n_c-dimensional norm per word per pair) and its matrices
  are boolean (the reference's are float64). So "dense/ours" understates the gain over the
  reference code itself.

Columns: ``seconds`` is the build's wall time inside the worker (typo graph included, imports
and reading the words excluded). ``peak MiB`` is the worker's peak resident set since it started
(``VmHWM`` of ``/proc/self/status``, read by the worker at its end), ``build MiB`` how far the
build raised it above the resident set just before the build (the high-water mark is reset
there through ``/proc/self/clear_refs``): the imports alone take a few hundred MiB, which would
hide the builds' own memory. ``clusters`` is the number of clusters; ``dense/ours`` the ratios of
the dense row to ``agglomerative`` (seconds and build MiB) where both finished; ``same`` whether
they found the same partition. A worker past ``--budget`` seconds of build time stops itself
(SIGALRM) and reports ``> budget`` with its memory so far; one that does not stop is killed a
minute later and its peak is then ``ru_maxrss`` from ``os.wait4``. (That figure also counts the
parent's resident set at the fork, which is why the parent never loads the words itself: a
separate process writes them to a temporary folder for the workers.)

    python benchmarks/roben_build.py [--sizes 10000 50000 100000] [--budget 600] [--gamma 0.3]
    python benchmarks/roben_build.py --quick     # 2,000 and 5,000 words, a 120 s budget
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

METHODS = ("words", "connected_components", "agglomerative", "dense")
KILL_GRACE_S = 60  # after the budget, for a worker stuck in one long numpy call
CHUNK = 1 << 22  # elements of the (pairs × words) tables one rescan step may hold


class OverBudget(Exception):
    """Raised in a worker by SIGALRM when the build runs past its budget."""


# --- the dense per-component AggClust ---------------------------------------------------------


def dense_agglomerative(graph, frequencies: np.ndarray, gamma: float) -> np.ndarray:
    """AggClust with dense matrices per component and a full rescan per merge.

    Returns:
        Each word's cluster, numbered in order of first appearance.
    """
    from scipy import sparse

    rho = np.asarray(frequencies, dtype=np.float64) / np.sum(frequencies)
    n = len(rho)
    shared = graph.shared.tocsr()
    # W: word w's typos (w itself included) reach word o; the reference's compute_W.
    dominates = (
        graph.reaches + sparse.identity(n, dtype=graph.reaches.dtype, format="csr")
    ).tocsr()
    components = graph.components()
    order = np.argsort(components, kind="stable")
    labels = np.arange(n)
    for words in np.split(order, np.flatnonzero(np.diff(components[order])) + 1):
        if len(words) == 1:
            continue
        local = _dense_component(
            shared[words][:, words].toarray() > 0,
            dominates[words][:, words].toarray() > 0,
            rho[words],
            gamma,
        )
        labels[words] = words[local]
    return canonical(labels)


def _dense_component(shared, dominates, rho, gamma) -> np.ndarray:
    """Greedy merges on one component; returns each word's slot (its cluster's first word)."""
    n = len(rho)
    member = np.eye(n, dtype=bool)  # member[c, w]: word w is in the cluster of slot c
    reached = dominates.T.copy()  # reached[c, w]: some typo of w lands in cluster c
    allowed = shared.copy()  # clusters joined by a shared-typo edge
    while True:
        a, b = np.nonzero(np.triu(allowed, 1))
        if a.size == 0:
            break
        fid = _fidelity_rows(member, rho)
        change = np.empty(a.size)
        step = max(1, CHUNK // n)
        for i in range(0, a.size, step):
            pa, pb = a[i : i + step], b[i : i + step]
            merged = _fidelity_rows(member[pa] | member[pb], rho)
            both = (reached[pa] & reached[pb]) @ rho  # words whose typos reach both
            change[i : i + step] = gamma * (merged - fid[pa] - fid[pb]) - (1 - gamma) * both
        k = int(np.argmin(change))  # the first minimum: the pair of lowest slots on a tie
        if change[k] >= 0:
            break
        keep, gone = a[k], b[k]
        member[keep] |= member[gone]
        reached[keep] |= reached[gone]
        allowed[keep] |= allowed[gone]
        allowed[:, keep] |= allowed[:, gone]
        member[gone] = reached[gone] = allowed[gone] = allowed[:, gone] = False
        allowed[keep, keep] = False
    slot = np.arange(n)
    for c in np.flatnonzero(member.any(axis=1)):
        slot[member[c]] = c
    return slot


def _fidelity_rows(rows: np.ndarray, rho: np.ndarray) -> np.ndarray:
    """Each row's cluster's Σ ρ(w)·‖e_w − μ‖ (one-hot e_w, μ the ρ-weighted centroid)."""
    weights = rows * rho
    mass = weights.sum(axis=1, keepdims=True)
    mu = weights / np.where(mass > 0, mass, 1.0)
    square = (mu**2).sum(axis=1, keepdims=True)
    # ‖e_w − μ‖² = (1 − μ_w)² + Σ_{j≠w} μ_j²
    return (weights * np.sqrt(np.maximum(0.0, (1 - mu) ** 2 + square - mu**2))).sum(axis=1)


def canonical(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 0, 1, ... in order of first appearance: equal iff same partition."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inverse]


# --- one configuration, in a worker process ---------------------------------------------------


def worker(args: argparse.Namespace) -> None:
    """Build one configuration; print a JSON line (status, seconds, clusters)."""
    from stalwart.text.build import build_encoding

    if "torch" in sys.modules:  # stalwart imports it; keep it to one thread like numpy
        sys.modules["torch"].set_num_threads(1)
    folder = Path(args.data)
    words = folder.joinpath("words.txt").read_text().split("\n")
    frequencies = np.load(folder / "frequencies.npy")
    result: dict = {"status": "done", "seconds": 0.0, "clusters": None}

    def over_budget(signum, frame):
        raise OverBudget

    signal.signal(signal.SIGALRM, over_budget)
    imports_peak = _status_kib("VmHWM")
    base = _reset_peak()
    signal.setitimer(signal.ITIMER_REAL, args.budget)
    start = time.perf_counter()
    try:
        if args.method in ("connected_components", "agglomerative"):
            encoding = build_encoding(words, frequencies, method=args.method, gamma=args.gamma)
            labels = encoding.clusters
        elif args.method == "dense":
            from stalwart.text.graph import typo_graph
            from stalwart.text.typos import TypoFamily
            from stalwart.text.vocabulary import Vocabulary

            vocabulary = Vocabulary.from_words(words, frequencies)
            graph = typo_graph(vocabulary, TypoFamily.internal_edit())
            labels = dense_agglomerative(graph, vocabulary.frequencies, args.gamma)
        else:  # "words": the floor, nothing built
            labels = None
        signal.setitimer(signal.ITIMER_REAL, 0)
        result["seconds"] = time.perf_counter() - start
        if labels is not None:
            result["clusters"] = int(labels.max()) + 1
            np.save(args.labels, canonical(labels))
    except OverBudget:
        result.update(status="budget", seconds=time.perf_counter() - start)
    peak = _status_kib("VmHWM")
    result["peak_mib"] = max(imports_peak, peak) / 1024
    result["build_mib"] = None if base is None else (peak - base) / 1024
    print(json.dumps(result), flush=True)


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return int(re.search(rf"{field}:\s+(\d+)", f.read()).group(1))


def _reset_peak() -> int | None:
    """Reset VmHWM to the current resident set and return that (KiB); None if not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return _status_kib("VmRSS")


def prepare(args: argparse.Namespace) -> None:
    """Write the ``--size`` most frequent words and their frequencies into ``--data``."""
    from stalwart.data.sources.english_words import english_vocabulary

    words, frequencies = english_vocabulary(args.size, args.word_list)
    Path(args.data, "words.txt").write_text("\n".join(words))
    np.save(Path(args.data, "frequencies.npy"), frequencies)


def measure(args: argparse.Namespace, folder: Path, method: str) -> dict:
    """Run one worker; its JSON result, with its labels loaded if it finished."""
    labels = folder / f"{method}.npy"
    command = [
        sys.executable, __file__, "--worker", "--method", method, "--data", str(folder),
        "--gamma", str(args.gamma), "--budget", str(args.budget), "--labels", str(labels),
    ]  # fmt: skip
    threads = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    out = folder / f"{method}.out"
    with open(out, "w") as stdout:
        process = subprocess.Popen(command, stdout=stdout, env={**os.environ, **threads})
    # Reap it ourselves with wait4: should it have to be killed, its rusage is then this one
    # process's, not the running maximum over all children that RUSAGE_CHILDREN would give.
    # Imports take a few seconds on top of the budget, hence the grace.
    deadline = time.monotonic() + args.budget + KILL_GRACE_S
    killed = False
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            process.kill()
            killed = True
            pid, status, usage = os.wait4(process.pid, 0)
            break
        time.sleep(0.1)
    process.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not reap it again
    lines = out.read_text().strip().splitlines()
    result = json.loads(lines[-1]) if lines and process.returncode == 0 else {}
    if not result:
        result = {"status": "budget" if killed else "failed",
                  "seconds": float("nan"), "clusters": None, "build_mib": None,
                  "peak_mib": usage.ru_maxrss / 1024}  # fmt: skip
    result["labels"] = np.load(labels) if labels.exists() and result["status"] == "done" else None
    return result


# --- the table ---------------------------------------------------------------------------------


def machine() -> str:
    import scipy

    cpu = platform.processor() or platform.machine()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} cores (load average {load}), Python "
        f"{platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}; "
        "one thread per worker"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000, 100_000])
    parser.add_argument("--budget", type=float, default=600, help="seconds per configuration")
    parser.add_argument("--gamma", type=float, default=0.3)
    parser.add_argument("--word-list", default="huge")
    parser.add_argument("--quick", action="store_true", help="2,000 and 5,000 words, 120 s")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", default="agglomerative", help=argparse.SUPPRESS)
    parser.add_argument("--data", default="", help=argparse.SUPPRESS)
    parser.add_argument("--labels", default="", help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.prepare:
        prepare(args)
        return
    if args.quick:
        args.sizes, args.budget = [2_000, 5_000], min(args.budget, 120)

    print(machine())
    print(
        f"english_vocabulary(n, {args.word_list!r}), gamma {args.gamma}, budget "
        f"{args.budget:g} s per configuration; peak MiB = VmHWM of each worker, build MiB = "
        "its rise during the build"
    )
    header = (
        f"{'words':>7}  {'method':<21} {'seconds':>9} {'peak MiB':>9} {'build MiB':>9} "
        f"{'clusters':>9} {'dense/ours s':>12} {'dense/ours MiB':>14} {'same':>5}"
    )
    print(header, flush=True)
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="roben_build_") as tmp:
            folder = Path(tmp)
            subprocess.run(
                [sys.executable, __file__, "--prepare", "--size", str(size), "--data", tmp,
                 "--word-list", args.word_list],
                check=True,
            )  # fmt: skip
            results = {}
            for method in METHODS:
                r = results[method] = measure(args, folder, method)
                done = r["status"] == "done"
                seconds = f"{r['seconds']:9.2f}" if done else f"{'> budget':>9}"
                if r["status"] == "failed":
                    seconds = f"{'failed':>9}"
                clusters = f"{r['clusters']:9d}" if r["clusters"] is not None else f"{'-':>9}"
                build = f"{r['build_mib']:9.1f}" if r["build_mib"] is not None else f"{'-':>9}"
                extra = ""
                ours = results.get("agglomerative")
                if method == "dense" and done and ours and ours["status"] == "done":
                    same = np.array_equal(r["labels"], ours["labels"])
                    memory = (
                        f"{r['build_mib'] / ours['build_mib']:13.2f}x"
                        if r["build_mib"] and ours["build_mib"]
                        else f"{'-':>14}"
                    )
                    extra = (
                        f" {r['seconds'] / ours['seconds']:11.1f}x {memory}"
                        f" {'yes' if same else 'NO':>5}"
                    )
                print(
                    f"{size:7d}  {method:<21} {seconds} {r['peak_mib']:9.1f} {build} "
                    f"{clusters}{extra}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
