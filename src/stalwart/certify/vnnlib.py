"""Read and write VNN-LIB properties and VNN-COMP result files.

VNN-LIB (the property format of VNN-COMP; Brix et al., arXiv:2301.05815) is a subset of
SMT-LIB: inputs ``X_i`` and outputs ``Y_j`` are declared with ``(declare-const X_0 Real)``, and
``(assert …)`` statements, conjoined, describe the inputs and the *unsafe* outputs. A property
is violated ("sat") when some input in the box reaches an unsafe output, and holds ("unsat")
when none does. That is exactly our :class:`~stalwart.certify.spec.OutputProperty` convention:
each conjunction of output constraints becomes rows ``C y + d`` that are all ``≤ 0`` in the
unsafe region; ``(>= Y_0 Y_5)`` (unsafe when ``Y_0 ≥ Y_5``) becomes the row ``Y_5 − Y_0 ≤ 0``.

Formulas are brought to disjunctive normal form. Constraints on single inputs become the box;
a disjunct that carries its own input bounds (VNN-COMP 2022 files write
``(assert (or (and (<= X_0 …) … (>= Y_0 Y_1)) (and …)))``) gives its own instance, so
:func:`parse_vnnlib` returns a list of :class:`VnnInstance`, one per distinct input box.

Numbers are read exactly (as fractions), so each box is known as written: ``box`` holds the
nearest floats, ``outer`` the smallest float64 box containing the written one (what bounds must
cover for ``holds``) and ``inner`` the largest float64 box inside it (where a counterexample
must lie for ``violated``). ``0.643`` is not a float: its nearest float32 lies above it, and a
counterexample there would be outside the property's box.

Result files (:func:`write_result`) follow the VNN-COMP 2022 convention: the first line is
``sat`` (the property is violated; the 2021 word was ``violated``), ``unsat`` (it holds; 2021:
``holds``), ``unknown``, ``timeout`` or ``error``; a ``sat`` answer is followed by the
counterexample ``((X_0 …) … (Y_0 …))``.
"""

from __future__ import annotations

import gzip
import itertools
import math
import re
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from stalwart.certify.rounding import inward, outward
from stalwart.certify.spec import Box, LinfBall, OutputProperty
from stalwart.errors import ConfigError
from stalwart.io import atomic_write_text

# VNN-COMP 2022 answer words, and the 2021 words that mean the same.
RESULT_STATUSES = ("sat", "unsat", "unknown", "timeout", "error")
STATUS_ALIASES = {"violated": "sat", "holds": "unsat"}

# More disjuncts than this after expanding to DNF is a property we cannot treat disjunct by
# disjunct anyway; stop with a clear message instead of exhausting memory.
MAX_DISJUNCTS = 100_000

_IGNORED_COMMANDS = {"set-logic", "set-info", "set-option", "check-sat", "get-model", "exit"}
_COMPARISONS = {"<=", ">=", "<", ">", "="}
_VARIABLE = re.compile(r"([XY])_(\d+)\Z")
_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_COMMENT = re.compile(r";[^\n]*")

# An S-expression with the line it starts on: (atom text | list of S-expressions, line).
_Sexp = tuple["str | list[_Sexp]", int]
# A linear expression: coefficients by variable ("X", i) / ("Y", j), and a constant, exact.
_Linear = tuple[dict[tuple[str, int], Fraction], Fraction]


@dataclass(frozen=True)
class _InputBound:
    index: int
    upper: bool
    value: Fraction
    line: int


@dataclass(frozen=True)
class _OutputRow:
    """``Σ coeffs[j] Y_j + const ≤ 0`` in the unsafe region."""

    coeffs: tuple[tuple[int, Fraction], ...]
    const: Fraction
    line: int


_Atom = _InputBound | _OutputRow


@dataclass(eq=False)
class VnnInstance:
    """One verification problem: an input box and the unsafe outputs to rule out over it.

    Attributes:
        box: the inputs, flat, of shape ``(n_inputs,)``, each bound the nearest float to the
            number written; see :meth:`box_for` for a network whose input shape is an image.
        prop: the unsafe output region.
        outer: the smallest box of floats that contains the box as written (for bounds).
        inner: the largest box of floats inside the box as written (for counterexamples).
    """

    box: Box
    prop: OutputProperty
    outer: Box | None = None
    inner: Box | None = None

    def __post_init__(self) -> None:
        self.outer = self.outer if self.outer is not None else self.box
        self.inner = self.inner if self.inner is not None else self.box

    def box_for(self, input_shape: Sequence[int], which: str = "nearest") -> Box:
        """The box reshaped to a network's ``input_shape`` (VNN-LIB numbers inputs flat, C order).

        Args:
            input_shape: the network's input shape.
            which: ``"nearest"`` (:attr:`box`), ``"outer"`` or ``"inner"``.

        Raises:
            ConfigError: if the shape has a different number of elements.
        """
        box = {"nearest": self.box, "outer": self.outer, "inner": self.inner}[which]
        shape = tuple(int(s) for s in input_shape)
        if math.prod(shape) != box.lower.numel():
            raise ConfigError(
                f"the property has {box.lower.numel()} inputs but the input shape {shape} "
                f"has {math.prod(shape)}"
            )
        return Box(box.lower.reshape(shape), box.upper.reshape(shape))


class _Parser:
    """Tokenises, reads S-expressions and turns assertions into DNF over bounds and rows."""

    def __init__(self, text: str, where: str) -> None:
        self.text = text
        self.where = where
        self.declared: dict[tuple[str, int], int] = {}

    def error(self, line: int | None, why: str) -> ConfigError:
        at = f", line {line}" if line is not None else ""
        return ConfigError(f"{self.where}{at}: {why}")

    # -- reading ------------------------------------------------------------------------------

    def sexps(self) -> list[_Sexp]:
        # Blank out comments keeping offsets, so token positions still give line numbers.
        text = _COMMENT.sub(lambda m: " " * len(m.group()), self.text)
        line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
        stack: list[tuple[list[_Sexp], int]] = []
        top: list[_Sexp] = []
        for match in _TOKEN.finditer(text):
            token = match.group()
            line = bisect_right(line_starts, match.start())
            if token == "(":
                stack.append(([], line))
            elif token == ")":
                if not stack:
                    raise self.error(line, "unbalanced parentheses: ')' closes nothing")
                items, start = stack.pop()
                (stack[-1][0] if stack else top).append((items, start))
            elif stack:
                stack[-1][0].append((token, line))
            else:
                raise self.error(line, f"{token!r} stands outside any parenthesised command")
        if stack:
            raise self.error(stack[-1][1], "unbalanced parentheses: this '(' is never closed")
        return top

    def variable(self, name: str, line: int) -> tuple[str, int] | None:
        match = _VARIABLE.match(name)
        return (match.group(1), int(match.group(2))) if match else None

    def declare(self, sexp: _Sexp) -> None:
        items, line = sexp
        assert isinstance(items, list)
        head = items[0][0]
        # (declare-const X_0 Real) or the SMT-LIB long form (declare-fun X_0 () Real)
        parts = [i[0] for i in items[1:]]
        if head == "declare-fun" and len(parts) == 3 and parts[1] == []:
            parts = [parts[0], parts[2]]
        if len(parts) != 2 or not all(isinstance(p, str) for p in parts):
            raise self.error(line, f"malformed declaration; write ({head} X_0 Real)")
        name, sort = parts
        var = self.variable(name, line)  # type: ignore[arg-type]
        if var is None:
            raise self.error(
                line, f"variable {name!r}: VNN-LIB names inputs X_0, X_1, … and outputs Y_0, …"
            )
        if sort != "Real":
            raise self.error(line, f"variable {name!r} has sort {sort!r}; only Real is supported")
        self.declared.setdefault(var, line)

    # -- terms and formulas -------------------------------------------------------------------

    def linear(self, sexp: _Sexp) -> _Linear:
        value, line = sexp
        if isinstance(value, str):
            if value in ("X", "Y") or value[:2] in ("X_", "Y_"):
                var = self.variable(value, line)
                if var is None or var not in self.declared:
                    raise self.error(line, f"undeclared variable {value!r}")
                return {var: Fraction(1)}, Fraction(0)
            try:
                number = float(value)
            except ValueError:
                raise self.error(line, f"unknown symbol {value!r} in a linear term") from None
            if not math.isfinite(number):
                raise self.error(line, f"number {value!r} is not finite")
            return {}, _exact(value, number)
        if not value or not isinstance(value[0][0], str):
            raise self.error(line, "expected a term such as X_0, 0.5 or (+ …)")
        op, args = value[0][0], [self.linear(a) for a in value[1:]]
        if not args:
            raise self.error(line, f"({op}) needs arguments")
        if op == "+":
            return _combine(args, [1] * len(args))
        if op == "-":
            if len(args) == 1:
                return _combine(args, [-1])
            return _combine(args, [1] + [-1] * (len(args) - 1))
        if op in ("*", "/"):
            variable = [i for i, (coeffs, _) in enumerate(args) if coeffs]
            if len(variable) > 1 or (op == "/" and variable and variable != [0]):
                raise self.error(line, f"nonlinear term ({op} …): only constants may multiply")
            factor = Fraction(1)
            for i, (_, const) in enumerate(args):
                if i in variable:
                    continue
                if op == "/" and i > 0:
                    if const == 0:
                        raise self.error(line, "division by zero")
                    factor /= const
                else:
                    factor *= const
            if not variable:
                return {}, factor
            coeffs, const = args[variable[0]]
            return {v: c * factor for v, c in coeffs.items()}, const * factor
        raise self.error(line, f"unsupported operator {op!r} in a linear term; use + - * /")

    def dnf(self, sexp: _Sexp) -> list[list[_Atom]]:
        """The formula as a list of conjunctions (an empty list is ``false``)."""
        value, line = sexp
        if isinstance(value, str):
            if value == "true":
                return [[]]
            if value == "false":
                return []
            raise self.error(line, f"expected a constraint, got {value!r}")
        if not value or not isinstance(value[0][0], str):
            raise self.error(line, "expected a constraint such as (<= X_0 1.0)")
        op, args = value[0][0], value[1:]
        if op == "and":
            terms: list[list[_Atom]] = [[]]
            for arg in args:
                terms = self.product(terms, self.dnf(arg), line)
            return terms
        if op == "or":
            return [term for arg in args for term in self.dnf(arg)]
        if op in _COMPARISONS:
            if len(args) < 2:
                raise self.error(line, f"({op} …) needs two or more terms")
            terms = [[]]
            sides = [self.linear(a) for a in args]
            for a, b in itertools.pairwise(sides):
                # Strict and non-strict agree up to a set of measure zero; verifiers treat
                # both as non-strict, and so do we.
                if op in ("<=", "<"):
                    parts = [self.atom(_combine([a, b], [1, -1]), line)]
                elif op in (">=", ">"):
                    parts = [self.atom(_combine([b, a], [1, -1]), line)]
                else:
                    parts = [
                        self.atom(_combine([a, b], [1, -1]), line),
                        self.atom(_combine([b, a], [1, -1]), line),
                    ]
                for part in parts:
                    terms = self.product(terms, part, line)
            return terms
        raise self.error(
            line, f"unsupported connective {op!r}; VNN-LIB properties use and, or, <=, >=, <, >, ="
        )

    def product(
        self, left: list[list[_Atom]], right: list[list[_Atom]], line: int
    ) -> list[list[_Atom]]:
        if len(left) == 1 and len(right) == 1:
            # The common case (a conjunction of bounds): extend in place, linear not quadratic.
            # ``left`` is always a list this parser built for the conjunction at hand.
            left[0].extend(right[0])
            return left
        if len(left) * len(right) > MAX_DISJUNCTS:
            raise self.error(
                line, f"the formula expands to more than {MAX_DISJUNCTS} disjuncts in DNF"
            )
        return [a + b for a in left for b in right]

    def atom(self, expr: _Linear, line: int) -> list[list[_Atom]]:
        """``expr ≤ 0`` as a DNF: ``[[atom]]``, ``[[]]`` when always true, ``[]`` when never."""
        coeffs, const = expr
        coeffs = {v: c for v, c in coeffs.items() if c != 0}
        kinds = {kind for kind, _ in coeffs}
        if not kinds:
            return [[]] if const <= 0 else []
        if kinds == {"X", "Y"}:
            raise self.error(line, "a constraint mixing inputs X and outputs Y is not supported")
        if kinds == {"X"}:
            if len(coeffs) > 1:
                names = ", ".join(f"X_{i}" for _, i in sorted(coeffs))
                raise self.error(
                    line,
                    f"a linear constraint between inputs ({names}) is not supported; inputs "
                    "take bounds of their own, such as (<= X_0 0.5)",
                )
            (((_, index), c),) = coeffs.items()
            return [[_InputBound(index, c > 0, -const / c, line)]]
        return [[_OutputRow(tuple((j, c) for (_, j), c in sorted(coeffs.items())), const, line)]]

    # -- the whole file -----------------------------------------------------------------------

    def count(self, kind: str, given: int | None, meaning: str) -> int:
        indices = sorted(i for k, i in self.declared if k == kind)
        n = len(indices)
        if indices != list(range(n)):
            missing = min(set(range(n + 1)) - set(indices))
            raise self.error(
                None,
                f"{meaning} must be numbered {kind}_0 … {kind}_{n - 1}; {kind}_{missing} "
                "is not declared",
            )
        if n == 0:
            raise self.error(None, f"declares no {meaning} {kind}_i")
        if given is not None and n != given:
            raise self.error(
                None,
                f"declares {n} {meaning} ({kind}_0 … {kind}_{n - 1}) but the network has {given}",
            )
        return n

    def parse(
        self, n_inputs: int | None, n_outputs: int | None, dtype: torch.dtype
    ) -> list[VnnInstance]:
        commands = self.sexps()
        if not commands:
            raise self.error(None, "the file is empty: no declarations and no assertions")
        asserts: list[_Sexp] = []
        for sexp in commands:
            items, line = sexp
            if isinstance(items, str) or not items or not isinstance(items[0][0], str):
                raise self.error(line, "expected a command such as (assert …)")
            head = items[0][0]
            if head in ("declare-const", "declare-fun"):
                self.declare(sexp)
            elif head == "assert":
                if len(items) != 2:
                    raise self.error(line, "assert takes exactly one formula")
                asserts.append(items[1])
            elif head not in _IGNORED_COMMANDS:
                raise self.error(line, f"unknown command {head!r}")
        n_in = self.count("X", n_inputs, "inputs")
        n_out = self.count("Y", n_outputs, "outputs")
        if not asserts:
            raise self.error(None, "the file declares variables but asserts nothing")

        # Single-conjunction assertions (every input bound of a typical file) are shared by all
        # disjuncts; only the genuine disjunctions are multiplied out.
        shared: list[_Atom] = []
        choices: list[list[list[_Atom]]] = []
        for formula in asserts:
            terms = self.dnf(formula)
            if not terms:
                raise self.error(formula[1], "this assertion can never hold")
            if len(terms) == 1:
                shared.extend(terms[0])
            else:
                choices.append(terms)
        if math.prod(len(c) for c in choices) > MAX_DISJUNCTS:
            raise self.error(None, f"the property has more than {MAX_DISJUNCTS} disjuncts in DNF")
        if not any(isinstance(a, _OutputRow) for a in shared) and not any(
            isinstance(a, _OutputRow) for c in choices for t in c for a in t
        ):
            raise self.error(None, "the file constrains no output Y_j: nothing is unsafe")

        base = _BoxBuilder(n_in)
        for atom in shared:
            if isinstance(atom, _InputBound):
                base.add(atom)
        shared_rows = [a for a in shared if isinstance(a, _OutputRow)]
        groups: dict[tuple, tuple[_BoxBuilder, list[tuple[Tensor, Tensor]]]] = {}
        for combination in itertools.product(*choices):
            term = [atom for part in combination for atom in part]
            box = base.copy()
            for atom in term:
                if isinstance(atom, _InputBound):
                    box.add(atom)
            rows = shared_rows + [a for a in term if isinstance(a, _OutputRow)]
            C = torch.zeros(len(rows), n_out, dtype=dtype)
            d = torch.zeros(len(rows), dtype=dtype)
            for r, row in enumerate(rows):
                for j, c in row.coeffs:
                    C[r, j] = float(c)
                d[r] = float(row.const)
            groups.setdefault(box.key(), (box, []))[1].append((C, d))
        instances = []
        for box, disjuncts in groups.values():
            lower, upper = box.check(self)
            nearest, outer, inner = _boxes(lower, upper, dtype)
            instances.append(VnnInstance(nearest, OutputProperty(disjuncts), outer, inner))
        return instances


class _BoxBuilder:
    """Tightest bounds per input (exact fractions), and the line that set each (for errors)."""

    def __init__(self, n: int) -> None:
        self.lower: list[Fraction | None] = [None] * n
        self.upper: list[Fraction | None] = [None] * n
        self.lower_line = [0] * n
        self.upper_line = [0] * n

    def copy(self) -> _BoxBuilder:
        other = _BoxBuilder.__new__(_BoxBuilder)
        other.lower, other.upper = list(self.lower), list(self.upper)
        other.lower_line, other.upper_line = list(self.lower_line), list(self.upper_line)
        return other

    def add(self, atom: _InputBound) -> None:
        i = atom.index
        if atom.upper:
            if self.upper[i] is None or atom.value < self.upper[i]:
                self.upper[i], self.upper_line[i] = atom.value, atom.line
        elif self.lower[i] is None or atom.value > self.lower[i]:
            self.lower[i], self.lower_line[i] = atom.value, atom.line

    def key(self) -> tuple:
        return (*self.lower, *self.upper)

    def check(self, parser: _Parser) -> tuple[list[Fraction], list[Fraction]]:
        for side, values in (("lower", self.lower), ("upper", self.upper)):
            missing = [i for i, v in enumerate(values) if v is None]
            if missing:
                names = ", ".join(f"X_{i}" for i in missing[:5])
                more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
                verb = "inputs {} have" if len(missing) > 1 else "input {} has"
                raise parser.error(
                    None,
                    f"{verb.format(names + more)} no {side} bound; every input needs both, "
                    "e.g. (assert (>= X_0 0.0)) and (assert (<= X_0 1.0))",
                )
        for i, (lo, hi) in enumerate(zip(self.lower, self.upper, strict=True)):
            if lo > hi:  # type: ignore[operator]
                raise parser.error(
                    max(self.lower_line[i], self.upper_line[i]),
                    f"input X_{i} has lower bound {float(lo)!r} (line {self.lower_line[i]}) "  # type: ignore[arg-type]
                    f"above its upper bound {float(hi)!r} (line {self.upper_line[i]})",  # type: ignore[arg-type]
                )
        return self.lower, self.upper  # type: ignore[return-value]


def _exact(token: str, number: float) -> Fraction:
    """The number a token writes, exactly.

    Its float instead when the token is too long to expand exactly (an exponent of five
    digits or more, or thousands of digits: 0, or as good as its float).
    """
    match = re.search(r"[eE][+-]?(\d+)$", token)
    if len(token) > 1000 or (match is not None and len(match.group(1)) > 4):
        return Fraction(number)
    try:
        return Fraction(token)
    except (ValueError, ZeroDivisionError):
        return Fraction(number)


def _rounded(values: Sequence[Fraction], direction: int) -> np.ndarray:
    """Each fraction as a float64: nearest (0), rounded down (−1) or up (+1)."""
    out = np.empty(len(values))
    for i, q in enumerate(values):
        f = float(q)
        if direction < 0 and Fraction(f) > q:
            f = math.nextafter(f, -math.inf)
        elif direction > 0 and Fraction(f) < q:
            f = math.nextafter(f, math.inf)
        out[i] = f
    return out


def _boxes(lower: Sequence[Fraction], upper: Sequence[Fraction], dtype) -> tuple[Box, Box, Box]:
    """The nearest, outer and inner boxes of ``dtype`` for the box as written."""
    f64 = torch.float64
    nearest = Box(torch.tensor(_rounded(lower, 0), dtype=dtype),
                  torch.tensor(_rounded(upper, 0), dtype=dtype))  # fmt: skip
    outer = Box(*outward(torch.tensor(_rounded(lower, -1), dtype=f64),
                         torch.tensor(_rounded(upper, 1), dtype=f64), dtype))  # fmt: skip
    lo, hi = inward(torch.tensor(_rounded(lower, 1), dtype=f64),
                    torch.tensor(_rounded(upper, -1), dtype=f64), dtype)  # fmt: skip
    # An interval narrower than a float holds no float: keep the nearest one there.
    empty = lo > hi
    lo, hi = torch.where(empty, nearest.lower, lo), torch.where(empty, nearest.upper, hi)
    return nearest, outer, Box(lo, hi)


def _combine(terms: Sequence[_Linear], weights: Sequence[int]) -> _Linear:
    coeffs: dict[tuple[str, int], Fraction] = {}
    const = Fraction(0)
    for (c, k), w in zip(terms, weights, strict=True):
        for v, x in c.items():
            coeffs[v] = coeffs.get(v, Fraction(0)) + w * x
        const += w * k
    return coeffs, const


def _read_text(source: str | Path) -> tuple[str, str]:
    """The text and a name for messages; a one-line string with no '(' is taken as a path."""
    if isinstance(source, str) and ("(" in source or "\n" in source or not source.strip()):
        return source, "VNN-LIB text"
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"VNN-LIB file {str(path)!r} does not exist")
    try:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        return data.decode(), f"VNN-LIB file {str(path)!r}"
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read VNN-LIB file {str(path)!r}: {error}") from error


def parse_vnnlib(
    source: str | Path,
    *,
    n_inputs: int | None = None,
    n_outputs: int | None = None,
    dtype: torch.dtype = torch.float64,
) -> list[VnnInstance]:
    """Read a VNN-LIB property (VNN-COMP, arXiv:2301.05815) into verification instances.

    Understands ``declare-const`` / ``declare-fun`` of ``X_i`` and ``Y_j``, ``;`` comments,
    top-level ``assert`` (conjoined), ``and`` / ``or`` nested to any depth, comparisons
    ``<= >= < > =`` (strict ones read as non-strict, as verifiers do; chains allowed), and
    linear terms built from variables, numbers (``-0.5``, ``1e-3``), ``+``, ``-``, ``*`` and
    ``/`` by constants. ``.gz`` files are decompressed.

    Args:
        source: VNN-LIB text, or a path to a file (a one-line string without ``(`` is a
            path).
        n_inputs: the network's number of inputs, to check the declarations against.
        n_outputs: the network's number of outputs, likewise.
        dtype: dtype of the boxes and property rows (float64 keeps the file's decimals).

    Returns:
        One instance per distinct input box; its property is the union of the output
        conjunctions that come with that box. Most files give exactly one instance.

    Raises:
        ConfigError: naming the line for unbalanced parentheses, undeclared or misnamed
            variables, nonlinear terms, constraints mixing inputs and outputs, or constraints
            between several inputs; and for an input without a lower or upper bound, an
            empty box, variable counts that disagree with ``n_inputs`` / ``n_outputs``, or an
            empty file.
    """
    text, where = _read_text(source)
    try:
        return _Parser(text, where).parse(n_inputs, n_outputs, dtype)
    except RecursionError as error:
        raise ConfigError(f"{where}: terms are nested too deeply to read") from error


# --------------------------------------------------------------------------------------------
# Writing properties


def _number(value: float) -> str:
    # repr is the shortest string that reads back to the same float.
    return repr(float(value))


def _row_text(row: Tensor, const: float) -> str:
    """One row ``Σ c_j Y_j + const ≤ 0`` as a VNN-LIB comparison."""
    nonzero = [(j, float(c)) for j, c in enumerate(row.tolist()) if c != 0]
    if const == 0 and len(nonzero) == 2 and sorted(c for _, c in nonzero) == [-1.0, 1.0]:
        plus = next(j for j, c in nonzero if c > 0)
        minus = next(j for j, c in nonzero if c < 0)
        return f"(>= Y_{minus} Y_{plus})"
    terms = [f"Y_{j}" if c == 1 else f"(* {_number(c)} Y_{j})" for j, c in nonzero]
    lhs = terms[0] if len(terms) == 1 else f"(+ {' '.join(terms)})" if terms else "0.0"
    return f"(<= {lhs} {_number(-const)})"


def vnnlib_text(box: Box, prop: OutputProperty, *, comment: str | None = None) -> str:
    """A property as VNN-LIB text: the box's bounds and the unsafe region as a disjunction."""
    lower = box.lower.detach().cpu().double().reshape(-1)
    upper = box.upper.detach().cpu().double().reshape(-1)
    n_out = prop.n_outputs
    lines = [f"; {line}" for line in (comment or "").splitlines()]
    lines += [f"(declare-const X_{i} Real)" for i in range(len(lower))]
    lines += [""] + [f"(declare-const Y_{j} Real)" for j in range(n_out)]
    lines += ["", "; Input constraints:"]
    for i, (lo, hi) in enumerate(zip(lower.tolist(), upper.tolist(), strict=True)):
        lines.append(f"(assert (<= X_{i} {_number(hi)}))")
        lines.append(f"(assert (>= X_{i} {_number(lo)}))")
    lines += ["", "; Unsafe outputs:", "(assert (or"]
    for C, d in prop.disjuncts:
        C, d = C.detach().cpu().double(), d.detach().cpu().double()
        rows = " ".join(_row_text(C[r], float(d[r])) for r in range(len(C)))
        lines.append(f"    (and {rows})" if rows else "    true")
    lines.append("))")
    return "\n".join(lines) + "\n"


def write_vnnlib(
    path: str | Path, box: Box, prop: OutputProperty, *, comment: str | None = None
) -> Path:
    """Write a property as a VNN-LIB file (atomically) that :func:`parse_vnnlib` reads back."""
    path = Path(path)
    atomic_write_text(path, vnnlib_text(box, prop, comment=comment))
    return path


def robustness_vnnlib(
    x: Tensor | np.ndarray | Sequence[float],
    eps: float,
    label: int,
    n_outputs: int,
    lower: float = 0.0,
    upper: float = 1.0,
) -> str:
    """The mnist_fc-style local robustness property as VNN-LIB text.

    The box is the L∞ ball of radius ``eps`` around ``x`` clipped to ``[lower, upper]``; the
    unsafe region is ``(or (and (>= Y_j Y_label)) …)`` over every other class ``j``.
    """
    x = torch.as_tensor(np.asarray(x, dtype=np.float64)).reshape(-1)
    box = LinfBall(x, eps, lower, upper)
    prop = OutputProperty.margin(label, n_outputs, dtype=torch.float64)
    return vnnlib_text(box, prop, comment=f"Robustness of label {label} at eps = {eps!r}")


# --------------------------------------------------------------------------------------------
# Counterexamples and result files


def _values(v: Tensor | np.ndarray | Iterable[float]) -> list[float]:
    if isinstance(v, Tensor):
        v = v.detach().cpu().double()
    return [float(a) for a in np.asarray(v, dtype=np.float64).reshape(-1)]


def counterexample_text(x: Tensor | np.ndarray, y: Tensor | np.ndarray) -> str:
    """``((X_0 v)`` … ``(Y_0 v) …)``, one pair a line, every number at full precision."""
    pairs = [f"(X_{i} {_number(v)})" for i, v in enumerate(_values(x))]
    pairs += [f"(Y_{j} {_number(v)})" for j, v in enumerate(_values(y))]
    return "(" + "\n ".join(pairs) + ")\n"


def write_counterexample(path: str | Path, x: Tensor | np.ndarray, y: Tensor | np.ndarray) -> Path:
    """Write a counterexample (inputs ``x``, outputs ``y``) in the VNN-COMP format."""
    path = Path(path)
    atomic_write_text(path, counterexample_text(x, y))
    return path


def normalize_status(status: str) -> str:
    """The VNN-COMP 2022 word for a status: ``violated → sat``, ``holds → unsat``.

    Raises:
        ConfigError: for a word that is neither a status nor an alias.
    """
    word = status.strip().lower()
    word = STATUS_ALIASES.get(word, word)
    if word not in RESULT_STATUSES:
        raise ConfigError(
            f"unknown verification status {status!r}; choose from "
            f"{list(RESULT_STATUSES) + list(STATUS_ALIASES)}"
        )
    return word


def write_result(
    path: str | Path,
    status: str,
    x: Tensor | np.ndarray | None = None,
    y: Tensor | np.ndarray | None = None,
) -> Path:
    """Write a VNN-COMP result file: the status word, then the counterexample when ``sat``.

    Mapping (VNN-COMP 2022): ``sat`` = property violated (a counterexample exists; the 2021
    word ``violated`` is accepted), ``unsat`` = property holds (2021: ``holds``), plus
    ``unknown``, ``timeout`` and ``error``. VNN-COMP 2022 scores a ``sat`` answer only with a
    counterexample, so give ``x`` and ``y`` with it.

    Raises:
        ConfigError: for an unknown status, or a counterexample with a status other than sat.
    """
    word = normalize_status(status)
    if (x is None) != (y is None):
        raise ConfigError("a counterexample needs both the input x and the output y")
    text = word + "\n"
    if x is not None:
        if word != "sat":
            raise ConfigError(f"a counterexample only goes with status 'sat', not {word!r}")
        text += counterexample_text(x, y)  # type: ignore[arg-type]
    path = Path(path)
    atomic_write_text(path, text)
    return path


def read_counterexample(source: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``((X_0 v) … (Y_0 v) …)`` back into float64 arrays ``(x, y)``.

    Raises:
        ConfigError: for malformed text or variables that are not numbered consecutively.
    """
    text, where = _read_text(source)
    parser = _Parser(text, where)
    sexps = parser.sexps()
    if len(sexps) != 1 or isinstance(sexps[0][0], str):
        raise parser.error(None, "a counterexample is one list ((X_0 v) … (Y_0 v) …)")
    values: dict[str, dict[int, float]] = {"X": {}, "Y": {}}
    for pair, line in sexps[0][0]:  # type: ignore[misc]
        if isinstance(pair, str) or len(pair) != 2 or not isinstance(pair[0][0], str):
            raise parser.error(line, "each entry is (NAME value)")
        var = parser.variable(pair[0][0], line)
        if var is None:
            raise parser.error(line, f"{pair[0][0]!r} is not an X_i or Y_j variable")
        coeffs, number = parser.linear(pair[1])
        if coeffs:
            raise parser.error(line, "a counterexample value must be a number")
        values[var[0]][var[1]] = float(number)
    arrays = []
    for kind in ("X", "Y"):
        found = values[kind]
        if sorted(found) != list(range(len(found))):
            raise parser.error(None, f"{kind} values are not numbered {kind}_0, {kind}_1, …")
        arrays.append(np.array([found[i] for i in range(len(found))], dtype=np.float64))
    return arrays[0], arrays[1]


def read_result(source: str | Path) -> tuple[str, np.ndarray | None, np.ndarray | None]:
    """Read a result file: the normalised status and, when present, the counterexample.

    2021 words (``holds``, ``violated``) come back as ``unsat`` / ``sat``.
    """
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"result file {str(path)!r} does not exist")
    text = path.read_text()
    first, _, rest = text.lstrip().partition("\n")
    status = normalize_status(first)
    if not rest.strip():
        return status, None, None
    x, y = read_counterexample(rest)
    return status, x, y
