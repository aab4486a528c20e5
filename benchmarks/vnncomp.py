"""VNN-COMP categories end to end: stalwart's verifier against the published 2022 answers.

Runs every instance of each chosen category of the VNN-COMP 2022 benchmarks
(``ChristopherBrix/vnncomp2022_benchmarks``) as the competition did: ``stalwart verify NET PROP
--timeout T`` in a fresh process per instance, with the per-instance timeout ``T`` of the
category's ``instances.csv`` (times ``--timeout-scale``), start-up included in the time, killed
``--kill-after`` seconds past ``T``; an answer that arrives after ``T`` counts as a timeout.
Neither the benchmark files nor the results ship with stalwart; the script takes their paths.

Published answer of an instance: the answer (sat or unsat) that every 2022 tool reporting sat or
unsat agrees on, read from ``RESULTS_DIR/<tool>/<category>/results.csv``
(``ChristopherBrix/vnncomp2022_results``; rows ``category,onnx,vnnlib,prepare s,result,run s``).
No such tool: the instance is unreferenced; tools disagreeing: it is disputed, unless a tool's
counterexample file (``<tool>/<category>/<net>_<prop>.counterexample.gz``) checks out in
onnxruntime, which settles it as sat, as the competition's scoring did. Unreferenced and
disputed answers are counted apart from solved and wrong.

A ``violated`` (sat) answer counts only with its counterexample checked independently of
stalwart's own network code: the ONNX file is run in onnxruntime on the counterexample's input.
Floating-point margins of that check:

* the input, as written in the result file (float64), must lie inside one of the property's
  boxes as written, with no tolerance (stalwart searches the largest float64 box inside the
  written one); onnxruntime then runs it in the network's input type (float32 for every 2022
  network), as the competition's checker does, which moves it by at most half a float32 ulp;
* onnxruntime's outputs must be within 1e-4 (L∞) of the outputs the result file claims, and
  must reach the unsafe region of that box up to 1e-4 per constraint: the competition's
  tolerance (``COUNTEREXAMPLE_TOL`` in its scoring code), applied to onnxruntime's outputs
  rather than the claimed ones. The CSV keeps the margin (the largest constraint value of the
  best disjunct; ≤ 0 means violated with no tolerance at all).

An unchecked or failing counterexample counts as wrong, and so does a checked one that
contradicts an unsat published answer (to be looked at by hand). Each instance is one row of
``--out`` as soon as it finishes, and a later run with the same ``--out`` skips instances
already there with the same timeout, so a long suite can be stopped and resumed.

    python benchmarks/vnncomp.py BENCH_DIR RESULTS_DIR [--categories mnist_fc,acasxu]
        [--limit N] [--timeout-scale 1] [--out vnncomp.csv] [--jobs 1]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stalwart.errors import ConfigError

# The competition's counterexample tolerance (vnncomp2022_results/SCORING/settings.py).
CE_TOLERANCE = 1e-4
ANSWERS = ("sat", "unsat")
# Words some 2021-era tools wrote for the same answers.
ALIASES = {"violated": "sat", "holds": "unsat"}
COLUMNS = (
    "category",
    "onnx",
    "vnnlib",
    "timeout",
    "answer",
    "seconds",
    "ce_check",
    "ce_margin",
    "reference",
    "outcome",
    "note",
)
OUTCOMES = ("solved", "unknown", "wrong", "disputed", "unreferenced")
DEFAULT_TOOLS = "alpha_beta_crown,nnenum,mn_bab,verinet"


@dataclass(frozen=True)
class Instance:
    """One row of a category's ``instances.csv``: files relative to the category folder."""

    category: str
    onnx: str
    vnnlib: str
    timeout: float

    @property
    def key(self) -> tuple[str, str, str]:
        return self.category, self.onnx, self.vnnlib


# -- benchmark files ---------------------------------------------------------------------------


def benchmark_root(bench_dir: Path) -> Path:
    """The folder holding one subfolder per category (the repository's ``benchmarks/``)."""
    if not bench_dir.is_dir():
        raise ConfigError(f"BENCH_DIR {str(bench_dir)!r} is not a folder")
    for root in (bench_dir, bench_dir / "benchmarks"):
        if any(root.glob("*/instances.csv")):
            return root
    raise ConfigError(
        f"no category folder with an instances.csv under {str(bench_dir)!r}; pass the "
        "benchmarks/ folder of vnncomp2022_benchmarks (or the repository itself)"
    )


def read_instances(root: Path, category: str) -> list[Instance]:
    """The instances of ``category`` in the order of its ``instances.csv``."""
    path = root / category / "instances.csv"
    if not path.is_file():
        found = sorted(p.parent.name for p in root.glob("*/instances.csv"))
        raise ConfigError(f"no category {category!r} in {str(root)!r}; found: {found}")
    instances = []
    with path.open(newline="") as handle:
        for line, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip():
                continue
            try:
                onnx, vnnlib, timeout = (cell.strip() for cell in row)
                seconds = float(timeout)
            except ValueError:
                raise ConfigError(
                    f"{path}, line {line}: expected onnx/NET.onnx,vnnlib/PROP.vnnlib,TIMEOUT; "
                    f"got {','.join(row)!r}"
                ) from None
            instances.append(Instance(category, _plain(onnx), _plain(vnnlib), seconds))
    return instances


def _plain(path: str) -> str:
    """A benchmark path as a key: relative to its category folder, without ``./`` or ``.gz``."""
    path = path.strip().replace("\\", "/").removesuffix(".gz")
    while path.startswith("./"):
        path = path[2:]
    return path


def local_file(root: Path, category: str, name: str, cache: Path) -> Path:
    """The file as the verifier gets it: plain, gunzipped into ``cache`` when it ships as .gz.

    The competition's tools read unzipped files; decompressing here keeps that out of the time.
    """
    plain = root / category / name
    if plain.is_file():
        return plain
    packed = plain.with_name(plain.name + ".gz")
    if not packed.is_file():
        raise ConfigError(
            f"{category}/instances.csv names {name!r}, but neither {plain} nor {packed} exists"
        )
    target = cache / category / name
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
        partial.write_bytes(gzip.decompress(packed.read_bytes()))
        os.replace(partial, target)
    return target


# -- published answers -------------------------------------------------------------------------


def _answer_word(word: str) -> str:
    word = word.strip().lower()
    return ALIASES.get(word, word)


def published_answers(results_dir: Path, category: str) -> dict[str, dict[tuple, str]]:
    """Each 2022 tool's answers in ``category``: ``{tool: {(onnx, vnnlib): word}}``.

    Reads ``<tool>/<category>/results.csv`` (or the tool's ``results.csv`` of all categories
    when there is no per-category file). Every word is kept as written (lowercase; ``holds`` /
    ``violated`` become ``unsat`` / ``sat``); only ``sat`` and ``unsat`` count as answers.
    """
    if not results_dir.is_dir():
        raise ConfigError(f"RESULTS_DIR {str(results_dir)!r} is not a folder")
    table: dict[str, dict[tuple, str]] = {}
    for tool_dir in sorted(p for p in results_dir.iterdir() if p.is_dir()):
        path = tool_dir / category / "results.csv"
        if not path.is_file():
            path = tool_dir / "results.csv"
            if not path.is_file():
                continue
        answers: dict[tuple, str] = {}
        with path.open(newline="") as handle:
            for row in csv.reader(handle):
                if len(row) < 5 or row[0].strip() != category:
                    continue
                onnx, vnnlib = (_relative(row[i], category) for i in (1, 2))
                answers[(onnx, vnnlib)] = _answer_word(row[4])
        if answers:
            table[tool_dir.name] = answers
    return table


def _relative(path: str, category: str) -> str:
    """``./benchmarks/acasxu/onnx/x.onnx`` → ``onnx/x.onnx``, as ``instances.csv`` writes it."""
    path = _plain(path)
    marker = f"benchmarks/{category}/"
    return path.split(marker, 1)[1] if marker in path else path


def reference(answers: dict[str, dict[tuple, str]], key: tuple[str, str]) -> str:
    """``sat`` / ``unsat`` when every tool answering agrees, ``disputed``, or ``none``."""
    given = {table[key] for table in answers.values() if table.get(key) in ANSWERS}
    if not given:
        return "none"
    return given.pop() if len(given) == 1 else "disputed"


def settled(
    answers: dict[str, dict[tuple, str]],
    key: tuple[str, str],
    results_dir: Path,
    category: str,
    onnx: Path,
    vnnlib: Path,
) -> str:
    """A disputed instance settled as the competition did: ``sat`` when a tool's counterexample
    file checks out in onnxruntime (inputs within 1e-4 of the box, as its checker allows),
    else still ``disputed``.

    The files are ``<tool>/<category>/<net>_<prop>.counterexample[.gz]`` in RESULTS_DIR.
    """
    from stalwart.certify.vnnlib import read_counterexample

    stem = f"{Path(key[0]).stem}_{Path(key[1]).stem}.counterexample"
    for tool, table in answers.items():
        if table.get(key) != "sat":
            continue
        for path in (results_dir / tool / category / name for name in (stem + ".gz", stem)):
            if not path.is_file():
                continue
            try:
                x, y = read_counterexample(path)
            except ConfigError:
                continue
            if check_counterexample(onnx, vnnlib, x, y, input_tolerance=CE_TOLERANCE)[0] == "ok":
                return "sat"
    return "disputed"


def tool_solved(
    answers: dict[tuple, str], keys: list[tuple[str, str]], references: dict[tuple, str]
) -> int:
    """How many of ``keys`` a tool answered as the published answer says."""
    return sum(1 for key in keys if answers.get(key) in ANSWERS and answers[key] == references[key])


# -- running and checking ----------------------------------------------------------------------


def run_verifier(
    command: list[str],
    onnx: Path,
    vnnlib: Path,
    timeout: float,
    kill_after: float,
    extra: list[str],
) -> tuple[str, float, object, object, str]:
    """One instance in a fresh process: ``(answer, seconds, x, y, note)``.

    ``answer`` is ``sat``, ``unsat``, ``unknown``, ``error`` or ``timeout`` (killed, or answered
    after ``timeout``); ``x`` and ``y`` are the counterexample of a ``sat`` answer, if written.
    """
    from stalwart.certify.vnnlib import read_result

    with tempfile.TemporaryDirectory(prefix="vnncomp-") as scratch:
        result = Path(scratch) / "result.txt"
        argv = [
            *command,
            "verify",
            str(onnx),
            str(vnnlib),
            "--timeout",
            f"{timeout:g}",
            "--result",
            str(result),
            *extra,
        ]
        started = time.perf_counter()
        # A session of its own, so that a kill takes the verifier's children with it.
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            _, stderr = process.communicate(timeout=timeout + kill_after)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return "timeout", time.perf_counter() - started, None, None, "killed"
        seconds = time.perf_counter() - started
        last = stderr.strip().splitlines()[-1][:200] if stderr.strip() else ""
        if not result.is_file():
            return "error", seconds, None, None, f"exit {process.returncode}, no result: {last}"
        try:
            answer, x, y = read_result(result)
        except ConfigError as error:
            return "error", seconds, None, None, f"unreadable result file: {error}"[:200]
        if seconds > timeout:
            return "timeout", seconds, None, None, f"answered {answer} after the timeout"
        return answer, seconds, x, y, last if answer == "error" else ""


def check_counterexample(
    onnx: Path, vnnlib: Path, x, y, input_tolerance: float = 0.0
) -> tuple[str, float | None]:
    """``("ok", margin)`` when onnxruntime confirms the counterexample, else ``(why, margin)``.

    See the module docstring for the margins; ``input_tolerance`` widens the box (0 for our
    answers; the competition's 1e-4 for the 2022 tools' files, which write float32 inputs
    such as 0.014999999664723873 for a bound 0.015). ``margin`` is the largest constraint value
    of the best unsafe disjunct on onnxruntime's outputs (≤ 0: violated without tolerance).
    """
    import torch

    from stalwart.certify.onnx_io import check_with_onnxruntime
    from stalwart.certify.vnnlib import parse_vnnlib

    if x is None or y is None:
        return "no counterexample in the result file", None
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    try:
        out = np.asarray(check_with_onnxruntime(onnx, x), dtype=np.float64).reshape(-1)
    except (ConfigError, RuntimeError, ValueError) as error:  # onnxruntime raises its own
        return f"onnxruntime could not run it: {error}"[:200], None
    if out.shape != y.shape:
        return f"{y.size} outputs claimed, the network has {out.size}", None
    gap = float(np.max(np.abs(out - y)))
    if gap > CE_TOLERANCE:
        return f"onnxruntime's outputs differ from the claimed ones by {gap:.3g}", None
    best = None
    # float64 keeps the file's decimals; the inner box holds exactly the float64 points inside
    # the box as written.
    for instance in parse_vnnlib(vnnlib, dtype=torch.float64):
        box = instance.inner if input_tolerance == 0 else instance.box
        lower = box.lower.reshape(-1).numpy() - input_tolerance
        upper = box.upper.reshape(-1).numpy() + input_tolerance
        if lower.shape != x.shape:
            return f"{x.size} inputs given, the property has {lower.size}", None
        if not (np.all(lower <= x) and np.all(x <= upper)):
            continue
        for C, d in instance.prop.disjuncts:
            margin = float(np.max(C.numpy() @ out + d.numpy()))
            best = margin if best is None else min(best, margin)
    if best is None:
        return "the input lies outside every box of the property", None
    if best > CE_TOLERANCE:
        return f"the outputs miss the unsafe region by {best:.3g}", best
    return "ok", best


def outcome(answer: str, ce_check: str, ref: str) -> str:
    """``solved``, ``unknown``, ``wrong``, ``disputed`` or ``unreferenced`` for one instance.

    A ``sat`` answer is solved or wrong by its counterexample check alone when the published
    answer is disputed or missing (a checked counterexample settles it, as in the competition),
    and wrong also when it contradicts a published ``unsat`` (to be looked at by hand).
    """
    if answer not in ANSWERS:
        return "unknown"
    if answer == "sat":
        if ce_check != "ok":
            return "wrong"
        return "solved" if ref in ("sat", "disputed", "none") else "wrong"
    if ref == "disputed":
        return "disputed"
    if ref == "none":
        return "unreferenced"
    return "solved" if answer == ref else "wrong"


# -- the per-instance CSV ----------------------------------------------------------------------


def read_done(path: Path) -> dict[tuple[str, str, str], dict[str, str]]:
    """Rows already in ``--out`` by instance (the last one wins)."""
    if not path.is_file() or path.stat().st_size == 0:
        return {}
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ConfigError(
                f"{str(path)!r} is not a results file of this script (its columns are "
                f"{reader.fieldnames}); pass another --out"
            )
        return {(r["category"], r["onnx"], r["vnnlib"]): r for r in reader}


class RowWriter:
    """Appends finished rows to ``--out`` one at a time (thread-safe), header first if new."""

    def __init__(self, path: Path) -> None:
        fresh = not path.is_file() or path.stat().st_size == 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = path.open("a", newline="")
        self.writer = csv.DictWriter(self.handle, fieldnames=COLUMNS)
        self.lock = threading.Lock()
        if fresh:
            self.writer.writeheader()
            self.handle.flush()

    def write(self, row: dict[str, str]) -> None:
        with self.lock:
            self.writer.writerow(row)
            self.handle.flush()  # a killed suite keeps every finished instance

    def close(self) -> None:
        self.handle.close()


# -- the command -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench_dir", type=Path, help="vnncomp2022_benchmarks (or its benchmarks/)")
    parser.add_argument("results_dir", type=Path, help="a checkout of vnncomp2022_results")
    parser.add_argument("--categories", default="mnist_fc,acasxu")
    parser.add_argument("--limit", type=int, default=None, help="first N instances per category")
    parser.add_argument(
        "--timeout-scale",
        type=float,
        default=1.0,
        help="multiply every instances.csv timeout by this",
    )
    parser.add_argument(
        "--kill-after",
        type=float,
        default=2.0,
        help="seconds past the timeout before the verifier is killed",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("vnncomp.csv"),
        help="per-instance CSV; instances already in it are skipped",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="where .gz files are unzipped (default: beside --out)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="instances run side by side")
    parser.add_argument("--tools", default=DEFAULT_TOOLS, help="2022 tools to compare with")
    parser.add_argument(
        "--verifier",
        default=f"{shlex.quote(sys.executable)} -m stalwart",
        help="the command whose `verify` subcommand is run",
    )
    parser.add_argument(
        "--verify-args", default="", help='more arguments for verify, e.g. "--bounds ibp,crown"'
    )
    args = parser.parse_args(argv)
    if not args.timeout_scale > 0:
        parser.error(f"--timeout-scale must be > 0; got {args.timeout_scale}")
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit must be >= 1 (instances per category); got {args.limit}")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1; got {args.jobs}")
    if args.kill_after < 0:
        parser.error(f"--kill-after must be >= 0 seconds; got {args.kill_after}")
    return args


def main(argv: list[str] | None = None) -> dict[str, Counter]:
    """Run, check and print; returns each category's outcome counts (for tests)."""
    args = parse_args(argv)
    try:
        return _main(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def _main(args: argparse.Namespace) -> dict[str, Counter]:
    import torch

    root = benchmark_root(args.bench_dir)
    categories = [c.strip() for c in args.categories.split(",") if c.strip()]
    if not categories:
        raise ConfigError("--categories is empty; name one or more, e.g. mnist_fc,acasxu")
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    cache = args.cache if args.cache is not None else args.out.parent / "vnncomp_files"
    command, extra = shlex.split(args.verifier), shlex.split(args.verify_args)
    plan = {c: read_instances(root, c)[: args.limit] for c in categories}
    answers = {c: published_answers(args.results_dir, c) for c in categories}
    for c in categories:
        missing = [t for t in tools if t not in answers[c]]
        if missing:
            raise ConfigError(
                f"no {c} results of {missing} in {str(args.results_dir)!r}; "
                f"tools found: {sorted(answers[c])}"
            )
    done = read_done(args.out)
    references: dict[tuple, str] = {}
    for category, instances in plan.items():
        for inst in instances:
            key = (inst.onnx, inst.vnnlib)
            ref = reference(answers[category], key)
            if ref == "disputed":
                onnx = local_file(root, category, inst.onnx, cache)
                vnnlib = local_file(root, category, inst.vnnlib, cache)
                ref = settled(answers[category], key, args.results_dir, category, onnx, vnnlib)
            references[inst.key] = ref

    print(
        f"{platform.machine()}, {os.cpu_count()} cores (load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}), torch {torch.__version__}, "
        f"timeouts x{args.timeout_scale:g}, {args.jobs} job(s), verifier: {args.verifier} verify "
        f"{args.verify_args}".rstrip()
    )
    writer = RowWriter(args.out)
    rows: dict[tuple, dict[str, str]] = {}
    todo = []
    for instances in plan.values():
        for inst in instances:
            timeout = f"{inst.timeout * args.timeout_scale:g}"
            old = done.get(inst.key)
            if old is not None and old["timeout"] == timeout:
                rows[inst.key] = old
            else:
                todo.append((inst, timeout))
    reused = len(rows)

    def one(item: tuple[Instance, str]) -> None:
        inst, timeout = item
        onnx = local_file(root, inst.category, inst.onnx, cache)
        vnnlib = local_file(root, inst.category, inst.vnnlib, cache)
        answer, seconds, x, y, note = run_verifier(
            command, onnx, vnnlib, float(timeout), args.kill_after, extra
        )
        check, margin = ("", None)
        if answer == "sat":
            check, margin = check_counterexample(onnx, vnnlib, x, y)
        row = dict(
            category=inst.category,
            onnx=inst.onnx,
            vnnlib=inst.vnnlib,
            timeout=timeout,
            answer=answer,
            seconds=f"{seconds:.2f}",
            ce_check=check,
            ce_margin="" if margin is None else f"{margin:.3g}",
            reference="",
            outcome="",
            note=note,
        )
        ref = references[inst.key]
        row.update(reference=ref, outcome=outcome(answer, check, ref))
        writer.write(row)
        rows[inst.key] = row
        print(
            f"  {inst.category} {inst.onnx} {inst.vnnlib}: {answer} in {seconds:.1f}s "
            f"(T={timeout}s), {row['outcome']}" + (f" [{check}]" if check else ""),
            flush=True,
        )

    try:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(one, todo))
    finally:
        writer.close()
    print(f"{len(todo)} instance(s) run, {reused} taken from {args.out}")
    return summarize(plan, rows, answers, references, tools)


def summarize(
    plan: dict[str, list[Instance]],
    rows: dict[tuple, dict[str, str]],
    answers: dict[str, dict[str, dict[tuple, str]]],
    references: dict[tuple, str],
    tools: list[str],
) -> dict[str, Counter]:
    """Print one line per category and list the wrong and disputed instances."""
    head = (
        f"{'category':<10} {'inst':>5} {'solved':>7} {'holds':>6} {'viol.':>6} "
        f"{'unknown':>8} {'wrong':>6} {'disputed':>9} {'unref.':>7} {'time s':>9}"
    )
    print(head + "".join(f" {t:>{max(len(t), 6)}}" for t in tools))
    counts: dict[str, Counter] = {}
    for category, instances in plan.items():
        got = [rows[i.key] for i in instances]
        # The published answer as RESULTS_DIR gives it now (a resumed row may predate it).
        for row, inst in zip(got, instances, strict=True):
            row["reference"] = references[inst.key]
            row["outcome"] = outcome(row["answer"], row["ce_check"], row["reference"])
        count = Counter(row["outcome"] for row in got)
        solved = [row for row in got if row["outcome"] == "solved"]
        count["holds"] = sum(row["answer"] == "unsat" for row in solved)
        count["violated"] = sum(row["answer"] == "sat" for row in solved)
        counts[category] = count
        seconds = sum(float(row["seconds"]) for row in got)
        keys = [(i.onnx, i.vnnlib) for i in instances]
        published = {(i.onnx, i.vnnlib): references[i.key] for i in instances}
        line = (
            f"{category:<10} {len(got):>5} {count['solved']:>7} {count['holds']:>6} "
            f"{count['violated']:>6} {count['unknown']:>8} {count['wrong']:>6} "
            f"{count['disputed']:>9} {count['unreferenced']:>7} {seconds:>9.1f}"
        )
        print(
            line
            + "".join(
                f" {tool_solved(answers[category][t], keys, published):>{max(len(t), 6)}}"
                for t in tools
            )
        )
    print("tools' columns: 2022 answers on the same instances that match the published answer")
    for row in rows.values():
        if row["outcome"] in ("wrong", "disputed"):
            why = f" ({row['ce_check']})" if row["ce_check"] not in ("", "ok") else ""
            print(
                f"{row['outcome']}: {row['category']} {row['onnx']} {row['vnnlib']}: answered "
                f"{row['answer']}, published {row['reference']}{why}"
            )
    return counts


if __name__ == "__main__":
    main()
