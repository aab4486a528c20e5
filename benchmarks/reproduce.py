"""Re-run the recorded commands of docs/results.md and report which figures moved.

    python benchmarks/reproduce.py --fast              # the quick blocks (about 30 s)
    python benchmarks/reproduce.py --all               # every block that can run here (hours)
    python benchmarks/reproduce.py --only demo         # one block, and the blocks it needs
    python benchmarks/reproduce.py --list              # the blocks and their tiers
    python benchmarks/reproduce.py --all --exact       # same machine: every figure must match

Annotations. Every fenced block of docs/results.md that holds commands (lines starting with
``$ ``) carries one HTML comment on the line just above its opening fence:

    <!-- reproduce: fast name=compare_toy_spurious ignore="gap closed" -->
    <!-- reproduce: slow name=demo ignore="gap closed" -->
    <!-- reproduce: slow name=gradient_masking needs=rst_fashion_mnist -->
    <!-- reproduce: skip name=gpu_certify reason="needs a CUDA GPU" -->

The first word is the tier: ``fast`` (a minute or less on 2 cores; the default test suite runs
these), ``slow`` (minutes to hours; ``make reproduce`` runs every fast and slow block), or
``skip`` (never run; ``reason`` says why). Then ``key=value`` pairs (quote values with spaces):

    name=ID        required, unique: how --only and needs= refer to the block
    tolerance=X    how far a figure printed without a spread may move (default 0)
    ignore=REGEX   figures whose column header or row label (in a table), or the words just
                   before them (on a line), match REGEX are not compared: derived figures, or
                   ones that describe the machine rather than the result ("threads")
    needs=ID[,ID]  run those blocks first, in the same scratch folder (this block reads their runs)
    reason=TEXT    why a skip block is not run (required with skip)

Below each ``$ COMMAND`` line, the lines up to the next command or the closing fence are the
output it printed (a line that starts with spaces and ``#`` continues the command's comment).
Recorded output may be a selection of what the command prints, and its table may be drawn
differently (Markdown pipes, rich box characters, or aligned columns): figures are matched by
place, not by layout.

Matching. In a table, a figure's place is its row label (first cell), its column header and
its order within the cell; in any other line, the line's text with every number blanked out,
the line's order among lines of that text, and the figure's order on the line. A recorded
figure with no counterpart in the new output is reported as missing. Text cells of a table
(``yes``, ``no``, ``-``) are compared as text.

What counts as a move. A figure printed as ``m ± s`` (a mean and its standard deviation over
seeds) may move by its recorded spread ``s`` (at least one unit in its last printed digit,
since ``s`` itself was rounded); any other figure by the block's ``tolerance``. Timings are
never compared: numbers followed by a time unit (``s``, ``ms``, ``min``, ``examples/s``,
``ms/step``...), in a column headed by one (``s / point``, ``s/epoch``, ``dense s``), or named
a ratio or speed (the timing benchmarks' ratios). With ``--exact`` every compared figure,
spreads included, must be identical: the check that runs are bit-for-bit deterministic on the
machine that recorded them.

Commands run one after another in a scratch folder holding links to ``examples/`` and
``benchmarks/``, so they write their ``runs/`` there and never touch (or reuse) a run of this
checkout; ``python`` and ``stalwart`` are those of the interpreter running this script, and
``COLUMNS`` is 200 so rich tables are not wrapped. ``--scratch DIR`` runs in DIR and keeps it;
a run already finished there is reused rather than trained again, so an interrupted ``--all``
resumes where it stopped. The exit status is 0 when no figure moved
beyond its spread and every command succeeded, 1 otherwise, 2 for a malformed annotation.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from stalwart.errors import ConfigError, closest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results.md"
LINKED = ("examples", "benchmarks")
TIERS = ("fast", "slow", "skip")
SKIPPED = ("timing", "ignored")  # statuses of figures that are not compared
KEYS = ("name", "tolerance", "ignore", "needs", "reason")

ANNOTATION = re.compile(r"^\s*<!--\s*reproduce:(?P<body>.*?)-->\s*$")
# A number starts after a separator (so "PGD-20", "seed0", "×5" and "2.13.0" are not figures)
# and is not followed by more digits.
NUMBER = re.compile(r"(?<![^\s(\[|:=,;<>~])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?!\.?\d)")
SPREAD_SIGN = re.compile(r"\s*±\s*")
UNIT_GLUED = re.compile(r"[^\s|,;()\[\]]*")
UNIT_WORD = re.compile(r" ([A-Za-z][A-Za-z/]*)")
TIMING_UNIT = re.compile(r"(?:s|ms|sec|secs|seconds?|min|mins|minutes?|examples/s|m?s/\w+)")
TIMING_LABEL = re.compile(
    r"\bratio\b|\bspeed\b|examples/s\b|\bm?s/\w|\bseconds?\b"
    r"|(?:^|[\s(])(?:s|ms|min)(?:\s*/|\s+per\b|\s*$)",
    re.IGNORECASE,
)
BOX = str.maketrans({c: "|" for c in "│┃║"})
RULE = re.compile(r"^[\s|+:\-─━═┏┓┗┛┡┩└┘├┤┼╇┳┻┴┬╭╮╰╯╞╡╪]*$")
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
CELLS = re.compile(r"\S+(?: \S+)*")  # runs of text separated by two or more spaces


# ---------------------------------------------------------------------------------------------
# docs/results.md → blocks


@dataclass(frozen=True)
class Annotation:
    """What the comment above a block says: its tier and how to compare its figures."""

    tier: str
    name: str
    tolerance: float = 0.0
    ignore: re.Pattern[str] | None = None
    needs: tuple[str, ...] = ()
    reason: str = ""


@dataclass
class Command:
    """One ``$ COMMAND`` line and the output recorded under it."""

    text: str
    recorded: list[str] = field(default_factory=list)


@dataclass
class Block:
    """A fenced block of recorded commands, with its annotation."""

    annotation: Annotation
    commands: list[Command]
    line: int  # of the opening fence, 1-based


def parse_annotation(body: str, where: str) -> Annotation:
    """Read ``TIER key=value ...`` (the inside of ``<!-- reproduce: ... -->``)."""
    try:
        words = shlex.split(body)
    except ValueError as error:
        raise ConfigError(f"{where}: cannot read the reproduce annotation ({error})") from None
    if not words or words[0] not in TIERS:
        raise ConfigError(
            f"{where}: a reproduce annotation starts with its tier, one of {list(TIERS)}; "
            f"got {words[0] if words else 'nothing'!r}"
        )
    settings: dict[str, str] = {}
    for word in words[1:]:
        key, sign, value = word.partition("=")
        if not sign or key not in KEYS:
            raise ConfigError(
                f"{where}: unknown reproduce setting {word!r}{closest(key, KEYS)}; "
                f"write key=value with a key from {list(KEYS)}"
            )
        settings[key] = value
    tier = words[0]
    name = settings.get("name", "")
    if not re.fullmatch(r"[\w.-]+", name):
        raise ConfigError(f"{where}: a reproduce annotation needs name=ID (letters, digits, _ . -)")
    try:
        tolerance = float(settings.get("tolerance", "0"))
    except ValueError:
        tolerance = -1.0
    if not tolerance >= 0:  # also rejects nan
        raise ConfigError(f"{where}: tolerance must be a number ≥ 0; got {settings['tolerance']!r}")
    try:
        ignore = re.compile(settings["ignore"], re.IGNORECASE) if "ignore" in settings else None
    except re.error as error:
        raise ConfigError(
            f"{where}: ignore={settings['ignore']!r} is not a regular expression ({error})"
        ) from None
    if tier == "skip" and not settings.get("reason"):
        raise ConfigError(f'{where}: a skip block needs reason="..." saying why it is not run')
    needs = tuple(n for n in settings.get("needs", "").split(",") if n)
    return Annotation(tier, name, tolerance, ignore, needs, settings.get("reason", ""))


def parse_results(text: str, source: str = "docs/results.md") -> list[Block]:
    """The annotated command blocks of a results page, in page order.

    Raises:
        ConfigError: a command block without an annotation, an annotation not followed by a
            block, a malformed annotation, a repeated name, or needs= naming no block.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    pending: tuple[Annotation, int] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        match = ANNOTATION.match(line)
        if match:
            if pending:
                raise ConfigError(f"{source}:{pending[1]}: annotation not followed by a block")
            pending = (parse_annotation(match["body"], f"{source}:{i + 1}"), i + 1)
        elif line.lstrip().startswith("```"):
            start = i
            i += 1
            body = []
            while i < len(lines) and not lines[i].lstrip().startswith("```"):
                body.append(lines[i])
                i += 1
            commands = _commands(body)
            if commands and pending is None:
                raise ConfigError(
                    f"{source}:{start + 1}: this block records commands but has no annotation; "
                    "add <!-- reproduce: fast|slow|skip name=ID ... --> on the line above it"
                )
            if pending:
                if not commands:
                    raise ConfigError(
                        f"{source}:{pending[1]}: annotation above a block without '$ ' commands"
                    )
                blocks.append(Block(pending[0], commands, start + 1))
                pending = None
        elif pending and line.strip():
            raise ConfigError(f"{source}:{pending[1]}: annotation not followed by a block")
        i += 1
    if pending:
        raise ConfigError(f"{source}:{pending[1]}: annotation not followed by a block")
    _check_names(blocks, source)
    return blocks


def _commands(body: Sequence[str]) -> list[Command]:
    commands: list[Command] = []
    for line in body:
        if line.startswith("$ "):
            commands.append(Command(line[2:].strip()))
        elif commands and not commands[-1].recorded and re.match(r"^\s+#", line):
            continue  # the command's comment, carried on to the next line
        elif commands:
            commands[-1].recorded.append(line)
    return commands


def _check_names(blocks: Sequence[Block], source: str) -> None:
    names = Counter(b.annotation.name for b in blocks)
    repeated = [n for n, count in names.items() if count > 1]
    if repeated:
        raise ConfigError(f"{source}: reproduce names must be unique; repeated: {repeated}")
    for block in blocks:
        for need in block.annotation.needs:
            if need not in names:
                raise ConfigError(
                    f"{source}:{block.line}: needs={need!r} names no block{closest(need, names)}"
                )


# ---------------------------------------------------------------------------------------------
# printed output → figures by place


@dataclass(frozen=True)
class Figure:
    """A number (or a table's text cell) as printed, with the spread printed beside it."""

    text: str
    where: str  # for the report
    value: float | None = None  # None: a text cell, compared as text
    spread: float | None = None
    spread_text: str = ""
    decimals: int = 0
    skipped: str = ""  # "timing" or "ignored": not compared


@dataclass
class _Number:
    start: int
    end: int  # including a glued unit ("12x", "0.53s", "90%")
    text: str
    unit: str
    unit_end: int  # past a unit written after a space ("54.0 examples/s")
    spread_text: str = ""


def _numbers(text: str, start: int = 0) -> list[_Number]:
    found: list[_Number] = []
    for match in NUMBER.finditer(text, start):
        glued = UNIT_GLUED.match(text, match.end())
        unit, end = glued.group(), glued.end()  # type: ignore[union-attr]
        unit_end = end
        if not unit:
            word = UNIT_WORD.match(text, match.end())
            unit, unit_end = (word.group(1), word.end()) if word else ("", end)
        previous = found[-1] if found else None
        if (
            previous
            and not previous.spread_text
            and SPREAD_SIGN.fullmatch(text[previous.end : match.start()])
        ):
            previous.spread_text = match.group()  # "m ± s": one figure and its spread
            previous.end, previous.unit_end = end, unit_end
            continue
        found.append(_Number(match.start(), end, match.group(), unit.rstrip(".:;,"), unit_end))
    return found


def _norm(text: str) -> str:
    """A label or header as matched: symbols and case and spacing do not count."""
    return " ".join(re.sub(r"[^\w\s,.:=/+-]", " ", text).split()).lower()


def _skip_reason(context: str, unit: str, ignore: re.Pattern[str] | None) -> str:
    if TIMING_UNIT.fullmatch(unit) or TIMING_LABEL.search(context):
        return "timing"
    if ignore is not None and ignore.search(context):
        return "ignored"
    return ""


def _figure(number: _Number, where: str, context: str, ignore: re.Pattern[str] | None) -> Figure:
    decimals = len(number.text.partition(".")[2]) if "e" not in number.text.lower() else 0
    return Figure(
        text=number.text + (f" ± {number.spread_text}" if number.spread_text else ""),
        where=where,
        value=float(number.text),
        spread=float(number.spread_text) if number.spread_text else None,
        spread_text=number.spread_text,
        decimals=decimals,
        skipped=_skip_reason(context, number.unit, ignore),
    )


def _clean(output: str) -> list[str]:
    """Output lines with colours stripped, box borders as ``|``, and rule lines dropped."""
    lines = []
    for raw in output.splitlines():
        line = ANSI.sub("", raw).translate(BOX).rstrip()
        if line and RULE.match(line):
            continue  # ┏━━┳━━┓, |---|---|, section rules: they neither hold nor end a table
        lines.append(line)
    return lines


def _is_pipe_row(line: str) -> bool:
    stripped = line.strip()
    return len(stripped) > 1 and stripped.startswith("|") and stripped.endswith("|")


def _is_aligned_header(lines: Sequence[str], i: int) -> bool:
    line = lines[i]
    if _is_pipe_row(line) or NUMBER.search(line) or not re.search(r"[A-Za-z]", line):
        return False
    if not (line.startswith("  ") or len(CELLS.findall(line)) >= 2):
        return False
    following = lines[i + 1] if i + 1 < len(lines) else ""
    return _is_aligned_row(following)


def _is_aligned_row(line: str) -> bool:
    return (
        bool(line.strip())
        and not _is_pipe_row(line)
        and bool(NUMBER.search(line))
        and (len(CELLS.findall(line)) >= 2)
    )


Key = tuple


def figures(output: str, ignore: re.Pattern[str] | None = None) -> dict[Key, Figure]:
    """Every figure of ``output``, keyed by its place (see the module docstring).

    A pipe table's figures are keyed both by column header and by column number, so a
    recorded table printed without its header row still finds its figures.
    """
    lines = _clean(output)
    found: dict[Key, Figure] = {}
    labels: Counter[str] = Counter()
    skeletons: Counter[str] = Counter()
    i = 0
    while i < len(lines):
        if _is_pipe_row(lines[i]):
            j = i
            while j < len(lines) and _is_pipe_row(lines[j]):
                j += 1
            _pipe_table(lines[i:j], labels, ignore, found)
            i = j
        elif _is_aligned_header(lines, i):
            j = i + 1
            while j < len(lines) and _is_aligned_row(lines[j]):
                j += 1
            _aligned_table(lines[i], lines[i + 1 : j], labels, ignore, found)
            i = j
        else:
            _free_line(lines[i], skeletons, ignore, found)
            i += 1
    return found


def _split_pipes(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip()[1:-1].split("|")]


def _is_figure(cell: str) -> bool:
    """A cell that holds a figure, not a column name: a number with at most a unit beside it.

    "95% CI" and "PGD-20" name columns; "0.550", "[0.531, 0.563]", "+0.009", "3 min" are figures.
    """
    if not NUMBER.search(cell):
        return False
    words = re.findall(r"[A-Za-z]\w*", NUMBER.sub(" ", cell))
    return all(TIMING_UNIT.fullmatch(word) for word in words)


def _pipe_table(
    rows: Sequence[str],
    labels: Counter[str],
    ignore: re.Pattern[str] | None,
    found: dict[Key, Figure],
) -> None:
    cells = [_split_pipes(row) for row in rows]
    header: list[str] = []
    while cells and not any(_is_figure(c) for c in cells[0][1:]):
        row = cells.pop(0)  # a header may span lines (rich wraps long headers): join them
        header = [f"{a} {b}".strip() for a, b in zip(header or [""] * len(row), row, strict=False)]
    for row in cells:
        label = _norm(row[0])
        labels[label] += 1
        occurrence = labels[label]
        for column, cell in enumerate(row[1:], start=1):
            name = header[column] if column < len(header) else ""
            context = f"{row[0]} {name}"
            shown = f"{row[0]} · {name or f'column {column + 1}'}"
            keys = [("column", label, occurrence, column)]
            if name:
                keys.insert(0, ("cell", label, occurrence, _norm(name)))
            numbers = _numbers(cell)
            if not numbers and cell:
                figure = Figure(cell, shown, skipped=_skip_reason(context, "", ignore))
                for key in keys:
                    found.setdefault((*key, 0), figure)
            for k, number in enumerate(numbers):
                where = shown + (f" (figure {k + 1})" if len(numbers) > 1 else "")
                figure = _figure(number, where, context, ignore)
                for key in keys:
                    found.setdefault((*key, k), figure)


def _aligned_table(
    header: str,
    rows: Sequence[str],
    labels: Counter[str],
    ignore: re.Pattern[str] | None,
    found: dict[Key, Figure],
) -> None:
    # Columns are aligned, often right-aligned under single-space-separated headers: a
    # figure's header is the header text above it, from the end of the previous cell to its
    # own end (stretched to the end of the header word it stops in).
    for row in rows:
        first = CELLS.search(row)
        label_text = first.group() if first else ""
        label = _norm(label_text)
        labels[label] += 1
        occurrence = labels[label]
        previous = first.end() if first else 0
        per_column: Counter[str] = Counter()
        for number in _numbers(row, previous):
            while (  # a header word over the end of the previous cell belongs to that cell
                0 < previous < len(header)
                and not header[previous].isspace()
                and not header[previous - 1].isspace()
            ):
                previous += 1
            end = number.end
            while end < len(header) and not header[end].isspace():
                end += 1
            name = header[previous:end].strip()
            previous = max(end, number.end)
            column = _norm(name)
            k = per_column[column]
            per_column[column] += 1
            where = f"{label_text} · {name}" + (f" (figure {k + 1})" if k else "")
            found.setdefault(
                ("cell", label, occurrence, column, k),
                _figure(number, where, f"{label_text} {name}", ignore),
            )


def _free_line(
    line: str, skeletons: Counter[str], ignore: re.Pattern[str] | None, found: dict[Key, Figure]
) -> None:
    numbers = _numbers(line)
    if not numbers:
        return
    parts, previous = [], 0
    for number in numbers:
        parts += [line[previous : number.start], "#"]
        previous = number.end
    parts.append(line[previous:])
    skeleton = " ".join("".join(parts).split())
    skeletons[skeleton] += 1
    previous = 0
    for k, number in enumerate(numbers):
        where = f"{line[: number.start]}[{line[number.start : number.end]}]{line[number.end :]}"
        context = line[previous : number.start]
        previous = number.unit_end
        found[("line", skeleton, skeletons[skeleton], k)] = _figure(
            number, _shorten(where.strip()), context, ignore
        )


def _shorten(text: str, width: int = 90) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------------------------------------
# recorded against new


@dataclass(frozen=True)
class Comparison:
    """One recorded figure against the new one."""

    recorded: Figure
    new: Figure | None
    allowed: float
    status: str  # identical, within, moved, missing, changed (text)

    @property
    def failed(self) -> bool:
        return self.status in ("moved", "missing", "changed")

    def describe(self) -> str:
        if self.new is None:
            return f"{self.recorded.where}: {self.recorded.text} → not found in the new output"
        line = f"{self.recorded.where}: {self.recorded.text} → {self.new.text}"
        if self.recorded.value is not None and self.new.value is not None:
            delta = self.new.value - self.recorded.value
            digits = max(self.recorded.decimals, self.new.decimals, 1)
            line += f"  (Δ {delta:+.{digits}f}, allowed {self.allowed:g})"
        return line


def compare(
    recorded: dict[Key, Figure],
    new: dict[Key, Figure],
    tolerance: float = 0.0,
    exact: bool = False,
) -> list[Comparison]:
    """Each recorded figure against the new figure in its place.

    A figure printed as ``m ± s`` may move by ``s`` (at least one unit in the last printed
    digit); any other by ``tolerance``; with ``exact``, none may move, spreads included. A
    timing or ignored figure (as seen on either side: a recorded table may lack the header
    that names a column of seconds) gets the status ``timing`` or ``ignored``.
    """
    results, seen = [], set()
    for key, old in recorded.items():
        if id(old) in seen:
            continue  # the same figure under its column-number key: its first key decides
        seen.add(id(old))
        match = new.get(key)
        skipped = old.skipped or (match.skipped if match is not None else "")
        if skipped:
            results.append(Comparison(old, match, 0.0, skipped))
        elif old.value is None:
            same = match is not None and match.text == old.text
            status = "identical" if same else ("missing" if match is None else "changed")
            results.append(Comparison(old, match, 0.0, status))
        elif match is None or match.value is None:
            results.append(Comparison(old, None, 0.0, "missing"))
        else:
            if exact:
                allowed = 0.0
            elif old.spread is not None:
                allowed = max(old.spread, 10.0**-old.decimals)
            else:
                allowed = tolerance
            delta = abs(match.value - old.value)
            if delta == 0 and (not exact or match.spread_text == old.spread_text):
                status = "identical"
            elif delta <= allowed * (1 + 1e-9) and not exact:
                status = "within"
            else:
                status = "moved"
            results.append(Comparison(old, match, allowed, status))
    return results


def recorded_figures(block: Block) -> list[dict[Key, Figure]]:
    """The figures recorded under each command of ``block``."""
    ignore = block.annotation.ignore
    return [figures("\n".join(c.recorded), ignore) for c in block.commands]


# ---------------------------------------------------------------------------------------------
# running


def select(blocks: Sequence[Block], tiers: Iterable[str], only: Sequence[str]) -> list[Block]:
    """The blocks to run, in page order: those of ``tiers``, or ``only`` and what they need."""
    by_name = {b.annotation.name: b for b in blocks}
    if only:
        wanted: set[str] = set()
        for name in only:
            if name not in by_name:
                raise ConfigError(
                    f"--only {name!r} names no block of the results page{closest(name, by_name)}; "
                    "see --list"
                )
            stack = [name]
            while stack:
                current = stack.pop()
                if current not in wanted:
                    wanted.add(current)
                    stack.extend(by_name[current].annotation.needs)
        return [b for b in blocks if b.annotation.name in wanted]
    tiers = set(tiers)
    chosen = {b.annotation.name for b in blocks if b.annotation.tier in tiers}
    changed = True
    while changed:  # a chosen block pulls in the blocks it needs
        changed = False
        for block in blocks:
            if block.annotation.name in chosen:
                for need in block.annotation.needs:
                    if need not in chosen:
                        chosen.add(need)
                        changed = True
    return [b for b in blocks if b.annotation.name in chosen]


def prepare_scratch(scratch: Path, root: Path = ROOT) -> None:
    """Link the folders the commands read (recipes, benchmark scripts) into ``scratch``."""
    scratch.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        target = scratch / name
        if not target.exists() and (root / name).exists():
            try:
                target.symlink_to(root / name, target_is_directory=True)
            except OSError:  # no symlinks on this file system: a copy reads the same
                shutil.copytree(root / name, target)


def command_environment() -> dict[str, str]:
    """This interpreter's ``python`` and ``stalwart`` first on PATH; wide, colourless tables."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(COLUMNS="200", NO_COLOR="1", TERM="dumb", PYTHONIOENCODING="utf-8")
    return env


@dataclass
class BlockReport:
    """What one block's run gave: its comparisons, and any command that failed."""

    block: Block
    comparisons: list[Comparison] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return bool(self.failures) or any(c.failed for c in self.comparisons)


def run_block(
    block: Block,
    scratch: Path,
    *,
    exact: bool = False,
    timeout: float | None = None,
    log=None,
) -> BlockReport:
    """Run each command of ``block`` in ``scratch`` and compare what it prints."""
    log = log or _say
    report = BlockReport(block)
    env = command_environment()
    for position, (command, old) in enumerate(
        zip(block.commands, recorded_figures(block), strict=True), start=1
    ):
        log(f"  $ {command.text}")
        start = time.perf_counter()
        try:
            done = subprocess.run(
                ["bash", "-c", command.text],
                cwd=scratch,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="replace",
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            report.failures.append(f"`{command.text}` ran past --timeout {timeout:g} s")
            break
        seconds = time.perf_counter() - start
        report.seconds += seconds
        output = done.stdout + "\n" + done.stderr
        (scratch / f"{block.annotation.name}.{position}.out").write_text(output)
        if done.returncode != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            report.failures.append(f"`{command.text}` exited {done.returncode}: {tail}")
            break
        report.comparisons += compare(
            old, figures(output, block.annotation.ignore), block.annotation.tolerance, exact
        )
        log(f"    ({seconds:.0f} s)")
    return report


def format_report(report: BlockReport, verbose: bool = False) -> list[str]:
    """Lines for one block: its counts, then every figure that moved or is missing."""
    counts = Counter(c.status for c in report.comparisons)
    parts = [f"{counts[s]} {s}" for s in ("identical", "within", "moved", "changed", "missing")
             if counts[s]]  # fmt: skip
    skipped = [f"{counts[s]} {s}" for s in SKIPPED if counts[s]]
    parts += [" and ".join(skipped) + " not compared"] if skipped else []
    head = "FAIL" if report.failures else "MOVED" if report.failed else "ok"
    lines = [f"{head:5} {report.block.annotation.name}: " + (", ".join(parts) or "no figures")]
    lines += [f"        {failure}" for failure in report.failures]
    for comparison in report.comparisons:
        if comparison.failed or (verbose and comparison.status == "within"):
            lines.append(f"      {comparison.status:>7}  {comparison.describe()}")
    return lines


def _say(*parts: object) -> None:
    print(*parts, flush=True)  # a long reproduction is watched through a pipe (make)


def machine() -> str:
    """The facts a floating-point result depends on, for the report's first line."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:  # the model name says more than the architecture where Linux gives it
        info = Path("/proc/cpuinfo").read_text()
        cpu = re.search(r"^model name\s*:\s*(.+)$", info, re.MULTILINE)[1]  # type: ignore[index]
    except (OSError, TypeError):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads by default)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen blocks and print the report; the exit status says whether any moved."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--fast", action="store_true", help="the fast blocks (the default)")
    chosen.add_argument("--all", action="store_true", help="every fast and slow block")
    chosen.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="this block and the blocks it needs (repeatable)")  # fmt: skip
    chosen.add_argument("--list", action="store_true", help="list the blocks and exit")
    parser.add_argument("--exact", action="store_true",
                        help="every figure must match as printed (same machine)")  # fmt: skip
    parser.add_argument("--results", type=Path, default=RESULTS, help="the results page")
    parser.add_argument("--scratch", type=Path, help="run here (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--timeout", type=float, help="seconds allowed per command")
    parser.add_argument("--verbose", action="store_true", help="also list moves within spread")
    args = parser.parse_args(argv)
    try:
        if not args.results.is_file():
            raise ConfigError(f"--results {args.results}: no such file")
        blocks = parse_results(args.results.read_text(encoding="utf-8"), str(args.results))
        if args.list:
            for block in blocks:
                a = block.annotation
                command = block.commands[0].text.partition(" #")[0].strip()
                more = f" (+{len(block.commands) - 1} more)" if len(block.commands) > 1 else ""
                needs = f"; needs {', '.join(a.needs)}" if a.needs else ""
                reason = f"; {a.reason}" if a.reason else ""
                print(f"{a.tier:5} {a.name:24} $ {command}{more}{needs}{reason}")
            return 0
        chosen_blocks = select(blocks, ("fast", "slow") if args.all else ("fast",), args.only)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="stalwart-reproduce-"))
    prepare_scratch(scratch)
    _say(f"reproducing {args.results} in {scratch}")
    _say(f"machine: {machine()}; COLUMNS=200; {'exact' if args.exact else 'within spreads'}")
    reports = []
    for block in chosen_blocks:
        if block.annotation.tier == "skip":
            _say(f"skip  {block.annotation.name}: {block.annotation.reason}")
            continue
        _say(f"{block.annotation.name} (docs line {block.line})")
        report = run_block(block, scratch, exact=args.exact, timeout=args.timeout)
        reports.append(report)
        _say("\n".join(format_report(report, args.verbose)))
    failed = [r.block.annotation.name for r in reports if r.failed]
    compared = sum(c.status not in SKIPPED for r in reports for c in r.comparisons)
    moved = sum(c.failed for r in reports for c in r.comparisons)
    print(
        f"\n{len(reports)} blocks, {compared} figures compared, {moved} moved beyond their "
        f"spread or missing" + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    if args.keep or failed:
        print(f"outputs kept in {scratch}")
    elif args.scratch is None:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
