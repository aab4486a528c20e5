"""What adapted models inherit: which failures models share, and how much beyond chance.

The foundation-models report (Bommasani et al., "On the Opportunities and Risks of Foundation
Models", arXiv 2108.07258, §5.6 on homogenization) warns that every model adapted from one
foundation model may inherit its defects: the same inputs break them all, whatever the task
or the adaptation. This module measures that. Each model's failures under one perturbation
(the RobEn typo family, real codespell misspellings, a topic shift) are recorded on a shared
*probe set* of texts, so that models of different tasks are compared on the same inputs; two
models inherit a defect together where they fail on the same probes more often than their own
failure rates would make them by chance.

A model *fails* on a probe under a perturbation in one of two senses (``KINDS``):

- ``flip``: its prediction on the perturbed probe differs from its prediction on the clean
  probe. Needs no labels, so it compares models of different tasks (a sentiment model and a
  rating model on the same tweets).
- ``error``: its prediction on the perturbed probe is wrong. Needs the probe's label in the
  model's task.

The statistics of two failure sets A and B, on the ``n`` probes both were measured on, with
``a`` and ``b`` failures each and ``k`` probes failed by both (``Overlap``):

- failure rates ``a / n`` and ``b / n``; the joint rate ``k / n``;
- Jaccard index ``k / (a + b − k)``: the share of probes failed by either that both fail
  (undefined, NaN, where neither fails on any probe);
- the expected joint rate under independence ``(a / n)(b / n)``: how often both would fail if
  their failures were unrelated;
- the rate beyond chance, ``k / n − (a / n)(b / n)``, and the lift ``(k / n) / ((a / n)(b / n))``
  (NaN where either never fails): 0 and 1 for unrelated failures, above for shared ones;
- the one-sided exact p-value ``P(X ≥ k)`` for ``X`` hypergeometric (``n`` probes, ``a``
  failures of A, ``b`` probes drawn for B): the chance of at least this much overlap if B's
  ``b`` failures fell on probes at random (Fisher's exact test, one-sided).

On disk, many failure sets are one ``failures.npz`` (``save_failures`` / ``load_failures``):
a JSON header, tagged with ``FORMAT`` and ``VERSION``, lists each set's description, and two
arrays per set hold its probe ids and failures. It loads with ``allow_pickle=False``: reading
a file never runs code.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stalwart.errors import DataError, DataMissingError, closest, shorten
from stalwart.npz import read_npz

KINDS = ("flip", "error")
"""What counts as a failure: a changed prediction (``flip``) or a wrong one (``error``)."""
FILE_NAME = "failures.npz"
"""The name of a failures file; ``find_failure_files`` looks for it under a folder."""
FORMAT = "stalwart.failures"
"""The format tag in every failures file's header."""
VERSION = 1
"""The version of the failures format this code writes and reads."""
_DESCRIPTION = ("model", "perturbation", "kind", "task", "adaptation", "encoder", "probe_set")
_REWRITE = "write it again with the experiment that measured it, or move it out of the folder"


def _name(value: Any, field: str, where: str, optional: bool = False) -> str | None:
    if optional and value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        allowed = "None (trained from scratch) or " if optional else ""
        raise DataError(
            f"{where}: {field} must be {allowed}a non-empty string; got {shorten(value)}"
        )
    return value


@dataclass(frozen=True, eq=False)
class FailureSet:
    """Where one model fails under one perturbation, on the probes of a shared probe set.

    Args:
        model: the model's name, unique among the models compared (e.g. ``tweets/minilm/probe``).
        perturbation: what was done to the probes (e.g. ``typo:internal_edit``, ``codespell``,
            ``topic``).
        kind: ``flip`` (the prediction changed) or ``error`` (the prediction is wrong).
        probe_ids: int64 ids of the probes measured, each once.
        failed: bool, True where the model failed on that probe.
        task: the task the model was trained for (e.g. ``tweets``, ``drug_reviews``).
        adaptation: how it was trained (e.g. ``linear_probe``, ``fine_tune``, ``scratch``).
        encoder: the pretrained encoder it was adapted from, or None for a model trained from
            scratch.
        probe_set: the name of the probe texts the ids index; only sets on the same probe set
            are compared.

    The arrays are stored as read-only copies.

    Raises:
        DataError: an empty name, an unknown kind, arrays of different lengths, no probes,
            ``failed`` not boolean, ``probe_ids`` not integers, or a repeated probe id.
    """

    model: str
    perturbation: str
    kind: str
    probe_ids: np.ndarray
    failed: np.ndarray
    task: str
    adaptation: str
    encoder: str | None = None
    probe_set: str = "probe"

    def __post_init__(self) -> None:
        where = f"failure set of model {shorten(self.model)}"
        for field in ("model", "perturbation", "task", "adaptation", "probe_set"):
            _name(getattr(self, field), field, where)
        _name(self.encoder, "encoder", where, optional=True)
        where = f"failure set of model {self.model!r} under {self.perturbation!r}"
        if self.kind not in KINDS:
            raise DataError(
                f"{where}: unknown kind {shorten(self.kind)}{closest(str(self.kind), KINDS)}; "
                f"choose from {list(KINDS)}"
            )
        ids = np.asarray(self.probe_ids)
        failed = np.asarray(self.failed)
        if ids.ndim != 1 or failed.ndim != 1:
            raise DataError(
                f"{where}: probe_ids and failed must be 1-D; got shapes {ids.shape} and "
                f"{failed.shape}"
            )
        if len(ids) != len(failed):
            raise DataError(
                f"{where}: {len(ids)} probe ids but {len(failed)} failure flags; they need one "
                "flag per probe"
            )
        if len(ids) == 0:
            raise DataError(f"{where}: no probes; a failure set needs at least one")
        if not np.issubdtype(ids.dtype, np.integer):
            raise DataError(f"{where}: probe_ids must be integers; got dtype {ids.dtype}")
        if failed.dtype != np.bool_:
            raise DataError(
                f"{where}: failed must hold booleans (True where the model failed); got dtype "
                f"{failed.dtype}"
            )
        ids = ids.astype(np.int64)
        unique, counts = np.unique(ids, return_counts=True)
        if len(unique) != len(ids):
            repeated = unique[counts > 1]
            raise DataError(
                f"{where}: {len(repeated)} probe ids appear more than once (first: "
                f"{int(repeated[0])}); each probe is measured once"
            )
        ids, failed = ids.copy(), failed.copy()
        ids.setflags(write=False)
        failed.setflags(write=False)
        object.__setattr__(self, "probe_ids", ids)
        object.__setattr__(self, "failed", failed)

    def __len__(self) -> int:
        return len(self.probe_ids)

    @property
    def pretrained(self) -> bool:
        """Whether the model was adapted from a pretrained encoder (not trained from scratch)."""
        return self.encoder is not None

    @property
    def failures(self) -> int:
        """The number of probes the model failed on."""
        return int(self.failed.sum())

    @property
    def rate(self) -> float:
        """The failure rate: the share of probes the model failed on."""
        return self.failures / len(self)

    @property
    def key(self) -> tuple[str, str, str]:
        """``(model, perturbation, kind)``: what a collection of sets holds at most once."""
        return (self.model, self.perturbation, self.kind)

    def description(self) -> dict[str, Any]:
        """Everything but the arrays, as a JSON-ready dict."""
        return {field: getattr(self, field) for field in _DESCRIPTION}

    def __repr__(self) -> str:
        source = self.encoder if self.pretrained else "scratch"
        return (
            f"FailureSet({self.model!r}, {self.perturbation!r}, {self.kind}, "
            f"{self.failures}/{len(self)} failed, task={self.task!r}, "
            f"adaptation={self.adaptation!r}, from {source})"
        )


@dataclass(frozen=True, eq=False)
class Overlap:
    """How much two failure sets overlap on the probes both were measured on.

    Attributes:
        first, second: the two failure sets.
        n: the number of probes both were measured on.
        first_failures, second_failures: failures of each on those probes (``a``, ``b``).
        both: probes failed by both (``k``).

    The statistics (the module docstring defines them) are properties of these counts.
    """

    first: FailureSet
    second: FailureSet
    n: int
    first_failures: int
    second_failures: int
    both: int

    def __post_init__(self) -> None:
        a, b, k, n = self.first_failures, self.second_failures, self.both, self.n
        if n < 1 or not 0 <= k <= min(a, b) or a + b - k > n:
            raise DataError(
                f"impossible overlap counts: {n} probes, {a} and {b} failures, {k} shared"
            )

    @property
    def first_rate(self) -> float:
        """The first set's failure rate on the shared probes, ``a / n``."""
        return self.first_failures / self.n

    @property
    def second_rate(self) -> float:
        """The second set's failure rate on the shared probes, ``b / n``."""
        return self.second_failures / self.n

    @property
    def joint_rate(self) -> float:
        """The share of shared probes failed by both, ``k / n``."""
        return self.both / self.n

    @property
    def union(self) -> int:
        """Probes failed by either, ``a + b − k``."""
        return self.first_failures + self.second_failures - self.both

    @property
    def jaccard(self) -> float:
        """``k / (a + b − k)``; NaN where neither set fails on any shared probe."""
        return self.both / self.union if self.union else math.nan

    @property
    def expected_joint_rate(self) -> float:
        """The joint rate if the two sets failed independently, ``(a / n)(b / n)``."""
        return self.first_rate * self.second_rate

    @property
    def beyond_chance(self) -> float:
        """The joint rate beyond independence, ``k / n − (a / n)(b / n)``."""
        return self.joint_rate - self.expected_joint_rate

    @property
    def lift(self) -> float:
        """Observed over expected joint rate; NaN where either set never fails."""
        expected = self.expected_joint_rate
        return self.joint_rate / expected if expected > 0 else math.nan

    @property
    def p_value(self) -> float:
        """``P(X ≥ k)``, ``X ~ Hypergeometric(n, a, b)``: at least this overlap by chance."""
        from scipy.stats import hypergeom

        sf = hypergeom.sf(self.both - 1, self.n, self.first_failures, self.second_failures)
        return float(min(1.0, max(0.0, sf)))

    @property
    def same_task(self) -> bool:
        """Whether both models were trained for the same task."""
        return self.first.task == self.second.task

    @property
    def relation(self) -> str:
        """Where the two models come from, one of ``RELATIONS``."""
        first, second = self.first.encoder, self.second.encoder
        if first is not None and second is not None:
            return SAME_ENCODER if first == second else OTHER_ENCODERS
        return BOTH_SCRATCH if first is None and second is None else WITH_SCRATCH

    def to_dict(self) -> dict[str, Any]:
        """Both sets' descriptions, the counts and every statistic (NaN as None), for JSON."""
        out: dict[str, Any] = {
            **{f"first_{k}": v for k, v in self.first.description().items()},
            **{f"second_{k}": v for k, v in self.second.description().items()},
            "relation": self.relation,
            "same_task": self.same_task,
            "n": self.n,
            "first_failures": self.first_failures,
            "second_failures": self.second_failures,
            "both": self.both,
        }
        for name in STATISTICS:
            value = float(getattr(self, name))
            out[name] = None if math.isnan(value) else value
        return out


STATISTICS = ("first_rate", "second_rate", "joint_rate", "jaccard", "expected_joint_rate",
              "beyond_chance", "lift", "p_value")  # fmt: skip
"""The statistics of an ``Overlap``, in the order tables and files give them."""
SAME_ENCODER = "same encoder"
OTHER_ENCODERS = "different encoders"
WITH_SCRATCH = "adapted and scratch"
BOTH_SCRATCH = "both scratch"
RELATIONS = (SAME_ENCODER, OTHER_ENCODERS, WITH_SCRATCH, BOTH_SCRATCH)
"""How two models relate: adapted from one encoder, from two, or one or both from scratch."""


def overlap(first: FailureSet, second: FailureSet) -> Overlap:
    """The overlap of two failure sets on the probes both were measured on.

    Homogenization (arXiv 2108.07258): failures shared beyond chance by models adapted from
    one encoder are failures they inherit from it.

    Raises:
        DataError: the sets count failures in different senses (``kind``), were measured on
            different probe sets, or share no probe id.
    """
    names = f"{first.model!r} ({first.perturbation}) and {second.model!r} ({second.perturbation})"
    if first.kind != second.kind:
        raise DataError(
            f"cannot compare {names}: one counts {first.kind!r} failures, the other "
            f"{second.kind!r}; compare failures of one kind"
        )
    if first.probe_set != second.probe_set:
        raise DataError(
            f"cannot compare {names}: they were measured on different probe sets "
            f"({first.probe_set!r} and {second.probe_set!r}); overlap compares failures on "
            "the same inputs"
        )
    _, at_first, at_second = np.intersect1d(
        first.probe_ids, second.probe_ids, assume_unique=True, return_indices=True
    )
    if len(at_first) == 0:
        raise DataError(
            f"cannot compare {names}: they share no probe id (probe set {first.probe_set!r}); "
            "measure both on the same probes"
        )
    failed_first, failed_second = first.failed[at_first], second.failed[at_second]
    return Overlap(
        first,
        second,
        n=len(at_first),
        first_failures=int(failed_first.sum()),
        second_failures=int(failed_second.sum()),
        both=int((failed_first & failed_second).sum()),
    )


@dataclass(frozen=True, eq=False)
class OverlapMatrix:
    """The overlap of every pair of failure sets: ``cells[i][j]`` is ``overlap(sets[i], sets[j])``.

    Build it with ``overlap_matrix``; it is symmetric up to the order of each cell's two sets.
    """

    sets: tuple[FailureSet, ...]
    cells: tuple[tuple[Overlap, ...], ...]

    def __getitem__(self, position: tuple[int, int]) -> Overlap:
        i, j = position
        return self.cells[i][j]

    def pairs(self) -> list[Overlap]:
        """Each pair of distinct sets once (``i < j``), in order."""
        n = len(self.sets)
        return [self.cells[i][j] for i in range(n) for j in range(i + 1, n)]

    def values(self, statistic: str) -> np.ndarray:
        """One statistic of every cell as an (n, n) float array."""
        if statistic not in STATISTICS:
            raise DataError(
                f"unknown statistic {statistic!r}{closest(statistic, STATISTICS)}; choose from "
                f"{list(STATISTICS)}"
            )
        return np.array([[getattr(c, statistic) for c in row] for row in self.cells], dtype=float)


def overlap_matrix(sets: Sequence[FailureSet]) -> OverlapMatrix:
    """The overlap of every pair of ``sets`` (each with itself on the diagonal).

    Raises:
        DataError: no sets, a pair that cannot be compared (see ``overlap``).
    """
    sets = tuple(sets)
    if not sets:
        raise DataError("no failure sets to compare")
    upper = {
        (i, j): overlap(sets[i], sets[j]) for i in range(len(sets)) for j in range(i, len(sets))
    }

    def cell(i: int, j: int) -> Overlap:
        if i <= j:
            return upper[i, j]
        mirror = upper[j, i]  # the same counts, the sets in the other order
        return Overlap(sets[i], sets[j], mirror.n, mirror.second_failures,
                       mirror.first_failures, mirror.both)  # fmt: skip

    return OverlapMatrix(
        sets, tuple(tuple(cell(i, j) for j in range(len(sets))) for i in range(len(sets)))
    )


@dataclass(frozen=True, eq=False)
class GroupedMatrix:
    """Mean overlap between groups of models, e.g. one task and adaptation over its seeds.

    Attributes:
        labels: the groups, in order of first appearance in the matrix.
        sizes: how many models each group holds.
        pairs: ``pairs[g, h]``, the number of pairs of distinct models, one from each group
            (within a group, each pair once).
        jaccard: the mean Jaccard index of those pairs where it is defined (NaN if none).
        beyond_chance: the mean joint rate beyond chance (NaN where there is no pair: the
            diagonal of a group of one model).
    """

    labels: tuple[str, ...]
    sizes: tuple[int, ...]
    pairs: np.ndarray
    jaccard: np.ndarray
    beyond_chance: np.ndarray


def grouped_matrix(matrix: OverlapMatrix, label: Callable[[FailureSet], str]) -> GroupedMatrix:
    """``matrix`` averaged over the models of each group that ``label`` names.

    Every pair of distinct models counts once, in the cell of its two groups; a set paired
    with itself (the diagonal of ``matrix``) never counts, so a group's own cell is the
    overlap between its seeds.
    """
    labels = list(dict.fromkeys(label(s) for s in matrix.sets))
    of = [labels.index(label(s)) for s in matrix.sets]
    g = len(labels)
    jaccard: list[list[list[float]]] = [[[] for _ in range(g)] for _ in range(g)]
    beyond: list[list[list[float]]] = [[[] for _ in range(g)] for _ in range(g)]
    for i in range(len(matrix.sets)):
        for j in range(i + 1, len(matrix.sets)):
            pair = matrix[i, j]
            for a, b in {(of[i], of[j]), (of[j], of[i])}:
                jaccard[a][b].append(pair.jaccard)
                beyond[a][b].append(pair.beyond_chance)
    return GroupedMatrix(
        tuple(labels),
        tuple(of.count(k) for k in range(g)),
        np.array([[len(cell) for cell in row] for row in beyond], dtype=np.int64),
        np.array([[_nanmean(cell) for cell in row] for row in jaccard]),
        np.array([[_nanmean(cell) for cell in row] for row in beyond]),
    )


@dataclass(frozen=True)
class PairGroup:
    """Mean overlap of the pairs of one perturbation, one relation, same task or across tasks.

    Attributes:
        perturbation: the perturbation (``A × B`` for pairs under two).
        kind: ``flip`` or ``error``.
        relation: one of ``RELATIONS``.
        same_task: whether the pairs' two models share a task.
        pairs: the number of pairs.
        mean_jaccard: the mean Jaccard index over the pairs where it is defined (NaN if none).
        mean_beyond_chance: the mean rate beyond chance.
        mean_lift: the mean lift over the pairs where it is defined (NaN if none).
    """

    perturbation: str
    kind: str
    relation: str
    same_task: bool
    pairs: int
    mean_jaccard: float
    mean_beyond_chance: float
    mean_lift: float

    def to_dict(self) -> dict[str, Any]:
        """The fields, NaN as None, for JSON."""
        out = dict(self.__dict__)
        for name in ("mean_jaccard", "mean_beyond_chance", "mean_lift"):
            out[name] = None if math.isnan(out[name]) else float(out[name])
        return out


def _nanmean(values: list[float]) -> float:
    defined = [v for v in values if not math.isnan(v)]
    return float(np.mean(defined)) if defined else math.nan


def summarize(pairs: Iterable[Overlap]) -> list[PairGroup]:
    """Mean Jaccard, rate beyond chance and lift per perturbation, relation and task match.

    The contrast that measures homogenization (arXiv 2108.07258): pairs of models adapted from
    the *same encoder* against pairs involving a model trained from scratch on the same data.
    If the adapted models inherit their encoder's failures, the same-encoder pairs overlap
    beyond chance even across tasks, more than pairs with a scratch model do.

    Args:
        pairs: overlaps of distinct models, e.g. ``overlap_matrix(sets).pairs()``; a pair of a
            set with itself is left out.

    Returns:
        One group per (perturbation, kind, relation, same task) present, ordered by
        perturbation, then ``RELATIONS`` order, same task before across tasks.
    """
    groups: dict[tuple[str, str, str, bool], list[Overlap]] = {}
    for pair in pairs:
        if pair.first is pair.second or pair.first.key == pair.second.key:
            continue
        a, b = pair.first.perturbation, pair.second.perturbation
        perturbation = a if a == b else f"{a} × {b}"
        key = (perturbation, pair.first.kind, pair.relation, pair.same_task)
        groups.setdefault(key, []).append(pair)
    order = sorted(groups, key=lambda k: (k[0], k[1], RELATIONS.index(k[2]), not k[3]))
    return [
        PairGroup(
            *key,
            pairs=len(groups[key]),
            mean_jaccard=_nanmean([p.jaccard for p in groups[key]]),
            mean_beyond_chance=_nanmean([p.beyond_chance for p in groups[key]]),
            mean_lift=_nanmean([p.lift for p in groups[key]]),
        )
        for key in order
    ]


# --- the file ------------------------------------------------------------------------------


def check_unique(sets: Iterable[FailureSet], where: str = "the failure sets") -> list[FailureSet]:
    """``sets`` as a list, if no (model, perturbation, kind) repeats and each model is one model.

    A model's task, adaptation and encoder must agree across its sets: two descriptions of one
    name would be two models sharing a name.

    Raises:
        DataError: a repeated (model, perturbation, kind), or a model described two ways.
    """
    seen: dict[tuple[str, str, str], FailureSet] = {}
    models: dict[str, tuple[str, str, str | None]] = {}
    out = list(sets)
    for s in out:
        if s.key in seen:
            raise DataError(
                f"{where} hold model {s.model!r} under {s.perturbation!r} ({s.kind}) twice; "
                "give each model a unique name"
            )
        seen[s.key] = s
        about = (s.task, s.adaptation, s.encoder)
        if models.setdefault(s.model, about) != about:
            raise DataError(
                f"{where} describe model {s.model!r} two ways: task, adaptation, encoder "
                f"{models[s.model]} and {about}; give each model a unique name"
            )
    return out


def save_failures(path: Path | str, sets: Sequence[FailureSet]) -> Path:
    """Write ``sets`` to one failures file (``failures.npz``), atomically.

    Raises:
        DataError: no sets, or a repeated (model, perturbation, kind) (see ``check_unique``).
        CheckpointError: the file cannot be written.
    """
    from stalwart.io import atomic_write_bytes  # loads torch: only when writing

    path = Path(path)
    sets = check_unique(sets, f"the failure sets for {path}")
    if not sets:
        raise DataError(f"no failure sets to write to {path}")
    header = {
        "format": FORMAT,
        "version": VERSION,
        "sets": [s.description() for s in sets],
    }
    arrays: dict[str, np.ndarray] = {"header": np.array(json.dumps(header))}
    for i, s in enumerate(sets):
        arrays[f"{i}.probe_ids"] = s.probe_ids
        arrays[f"{i}.failed"] = s.failed
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, lambda handle: handle.write(buffer.getvalue()))
    return path


def _header(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    raw = arrays.get("header")
    if raw is None or raw.ndim != 0 or raw.dtype.kind != "U":
        raise DataError(
            f"{path} is not a stalwart failures file (it has no text header); failures files "
            f"are written by stalwart.shift.inherit.save_failures; {_REWRITE}"
        )
    try:
        header = json.loads(str(raw.item()))
    except json.JSONDecodeError as error:
        raise DataError(f"{path} has a damaged header ({error}); {_REWRITE}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else None
        raise DataError(
            f"{path} is not a stalwart failures file (format {shorten(found)}, expected "
            f"{FORMAT!r}); {_REWRITE}"
        )
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DataError(f"{path} has a damaged header (version {shorten(version)}); {_REWRITE}")
    if version > VERSION:
        raise DataError(
            f"{path} is failures format version {version}, newer than this stalwart reads "
            f"(version {VERSION}); upgrade stalwart (pip install -U stalwart) to read it"
        )
    if not isinstance(header.get("sets"), list) or not header["sets"]:
        raise DataError(f"{path} has a damaged header (no list of sets); {_REWRITE}")
    return header


def load_failures(path: Path | str) -> list[FailureSet]:
    """The failure sets of one failures file.

    Loading never runs code: arrays load with ``allow_pickle=False`` and the header is JSON.

    Raises:
        DataMissingError: the file does not exist.
        DataError: the file is damaged, not a failures file, of a newer format version, or
            holds an invalid or repeated set; the message names the file and what to do.
    """
    path = Path(path)
    arrays = read_npz(path, "failures file", _REWRITE)
    header = _header(path, arrays)
    sets = []
    for i, entry in enumerate(header["sets"]):
        if not isinstance(entry, dict) or set(entry) != set(_DESCRIPTION):
            got = sorted(entry) if isinstance(entry, dict) else shorten(entry)
            raise DataError(
                f"{path} has a damaged header: set {i} should describe {list(_DESCRIPTION)}; "
                f"got {shorten(got)}; {_REWRITE}"
            )
        missing = [f"{i}.{a}" for a in ("probe_ids", "failed") if f"{i}.{a}" not in arrays]
        if missing:
            raise DataError(f"{path} lacks the arrays {missing} its header lists; {_REWRITE}")
        try:
            sets.append(
                FailureSet(
                    **entry, probe_ids=arrays[f"{i}.probe_ids"], failed=arrays[f"{i}.failed"]
                )
            )
        except DataError as error:
            raise DataError(f"{path}: {error}; {_REWRITE}") from None
    listed = {"header"} | {f"{i}.{a}" for i in range(len(sets)) for a in ("probe_ids", "failed")}
    extra = sorted(set(arrays) - listed)
    if extra:
        raise DataError(
            f"{path} holds arrays its header does not list ({shorten(extra)}); {_REWRITE}"
        )
    return check_unique(sets, str(path))


def find_failure_files(roots: Iterable[Path | str]) -> list[Path]:
    """Every ``failures.npz`` under ``roots`` (a root may be such a file), sorted, each once.

    Raises:
        DataMissingError: a root does not exist, or no failures file is found under any.
    """
    roots = [Path(r) for r in roots]
    if not roots:
        raise DataMissingError(f"no folder given; give one or more folders that hold {FILE_NAME}")
    found: list[Path] = []
    for root in roots:
        if not root.exists():
            raise DataMissingError(f"{root} does not exist; give a folder that holds {FILE_NAME}")
        if root.is_file():
            found.append(root)
        else:
            found += sorted(p for p in root.rglob(FILE_NAME) if p.is_file())
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        where = ", ".join(str(r) for r in roots)
        raise DataMissingError(
            f"no {FILE_NAME} under {where}; those files are written by the experiments that "
            "measure failures of adapted models (one per run folder)"
        )
    return unique


def read_failures(roots: Iterable[Path | str]) -> list[FailureSet]:
    """The failure sets of every failures file under ``roots``, checked to be distinct.

    Raises:
        DataMissingError: no failures file found (see ``find_failure_files``).
        DataError: a damaged file, or a model under one perturbation found twice.
    """
    files = find_failure_files(roots)
    sets: list[FailureSet] = []
    origin: dict[tuple[str, str, str], Path] = {}
    for path in files:
        for s in load_failures(path):
            if s.key in origin:
                raise DataError(
                    f"model {s.model!r} under {s.perturbation!r} ({s.kind}) is in both "
                    f"{origin[s.key]} and {path}; give each model a unique name, or pass only "
                    "one of them"
                )
            origin[s.key] = path
            sets.append(s)
    return check_unique(sets)
