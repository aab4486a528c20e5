"""Raw texts with labels and groups: the data type text encoders and text classifiers read.

``GroupedDataset`` holds tensors; a text model must see the words themselves (RobEn's encodings,
typo attacks and tokenizers all work on strings), so text data stays text until a model turns
it into numbers. A ``TextSplit`` is one split: texts (and, for sentence-pair tasks, a second
text per example), integer labels and group ids, with readable names for both. ``TextSplits``
holds train, validation and test plus named extra evaluation sets, as ``Splits`` does.

The text data loaders live in ``stalwart.data.sources`` (``tweets``, ``drug_reviews``,
``glue``, ``english_words``, ``codespell``). Each registers itself in ``TEXT_DATASETS`` with the
data packages it reads, which is how ``stalwart datasets`` lists them. Their splits come from
``stratified_split`` and ``stratified_sample``: seeded, and stratified so that every stratum
(a label, or a label × group cell) keeps its share in every split.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stalwart.data.splitting import check_fraction
from stalwart.errors import ConfigError, DataError, shorten


@dataclass(frozen=True)
class TextSplit:
    """Raw texts with labels and groups: what text encoders and text classifiers read.

    Args:
        texts: one string per example.
        y: int64 class labels in ``[0, len(class_names))``.
        group: int64 group ids in ``[0, len(group_names))``.
        class_names: one readable name per class.
        group_names: one readable name per group.
        name: a label used in messages and reports, e.g. ``"tweets/train"``.
        texts_b: the second sentence of each example for pair tasks (MRPC, RTE, QNLI, MNLI,
            QQP); None for single-text tasks.

    Lists are accepted for ``texts`` and ``texts_b`` and stored as tuples; labels and group ids
    are stored as int64 arrays.

    Raises:
        DataError: no examples, fields of different lengths, a text that is not a string,
            labels or group ids that are not whole numbers or lie out of range, or empty or
            repeated class or group names. The message names the field and the first bad
            example.
    """

    texts: tuple[str, ...]
    y: np.ndarray
    group: np.ndarray
    class_names: tuple[str, ...]
    group_names: tuple[str, ...]
    name: str = "text"
    texts_b: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # Frozen: normalise through object.__setattr__, once, before anything reads the fields.
        set_field = object.__setattr__
        set_field(self, "texts", _as_texts(self.texts, "texts", self.name))
        if self.texts_b is not None:
            set_field(self, "texts_b", _as_texts(self.texts_b, "texts_b", self.name))
        set_field(self, "class_names", _as_names(self.class_names, "class_names", self.name))
        set_field(self, "group_names", _as_names(self.group_names, "group_names", self.name))
        n = len(self.texts)
        if n == 0:
            raise DataError(
                f"{self.name}: no examples; a text split needs at least one (an empty split, or "
                "a selection that matched nothing, would train or evaluate on nothing)"
            )
        set_field(self, "y", _as_ids(self.y, "y", self.name, n, len(self.class_names)))
        set_field(self, "group", _as_ids(self.group, "group", self.name, n, len(self.group_names)))
        if self.texts_b is not None and len(self.texts_b) != n:
            raise DataError(
                f"{self.name}: texts_b has {len(self.texts_b)} entries but texts has {n}; a pair "
                "task needs one second sentence per example"
            )

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def n_classes(self) -> int:
        """The number of classes (labels present or not)."""
        return len(self.class_names)

    @property
    def n_groups(self) -> int:
        """The number of groups (present or not)."""
        return len(self.group_names)

    @property
    def is_pair(self) -> bool:
        """Whether each example is a pair of texts (``texts_b`` is set)."""
        return self.texts_b is not None

    def group_counts(self) -> np.ndarray:
        """The number of examples in each group, int64 of length ``n_groups``."""
        return np.bincount(self.group, minlength=self.n_groups).astype(np.int64)

    def class_counts(self) -> np.ndarray:
        """The number of examples of each class, int64 of length ``n_classes``."""
        return np.bincount(self.y, minlength=self.n_classes).astype(np.int64)

    def subset(self, positions: Sequence[int] | np.ndarray, name: str | None = None) -> TextSplit:
        """The examples at ``positions`` (integer positions, in the order given).

        Raises:
            DataError: a position is not an integer or lies outside ``[0, len(self))``.
        """
        chosen = np.asarray(positions)
        if chosen.size == 0:
            chosen = chosen.astype(np.int64)
        if chosen.ndim != 1 or not np.issubdtype(chosen.dtype, np.integer):
            raise DataError(
                f"{self.name}: subset positions must be a 1-D sequence of integers; got an "
                f"array of dtype {chosen.dtype} and shape {chosen.shape}"
            )
        bad = (chosen < 0) | (chosen >= len(self))
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{self.name}: {int(bad.sum())} subset positions lie outside [0, {len(self)}) "
                f"(entry {first} is {int(chosen[first])})"
            )
        return TextSplit(
            texts=tuple(self.texts[i] for i in chosen),
            y=self.y[chosen],
            group=self.group[chosen],
            class_names=self.class_names,
            group_names=self.group_names,
            name=self.name if name is None else name,
            texts_b=None if self.texts_b is None else tuple(self.texts_b[i] for i in chosen),
        )

    def __repr__(self) -> str:
        groups = ", ".join(
            f"{g}={c}" for g, c in zip(self.group_names, self.group_counts().tolist(), strict=True)
        )
        pair = ", pairs" if self.is_pair else ""
        return (
            f"TextSplit({self.name!r}, n={len(self)}{pair}, classes={list(self.class_names)}, "
            f"groups: {groups})"
        )


@dataclass(frozen=True)
class TextSplits:
    """Train, validation and test text splits, plus named extra evaluation sets.

    Raises:
        DataError: the splits disagree on their class names, their group names, or on whether
            they hold sentence pairs; a model trained on one could not be scored on another.
    """

    train: TextSplit
    val: TextSplit
    test: TextSplit
    extra: Mapping[str, TextSplit] = field(default_factory=dict)

    def __post_init__(self) -> None:
        reference = self.train
        for split_name, split in self.evaluation_sets().items():
            for attribute in ("class_names", "group_names", "is_pair"):
                if getattr(split, attribute) != getattr(reference, attribute):
                    raise DataError(
                        f"text splits disagree on {attribute}: train has "
                        f"{shorten(getattr(reference, attribute))} but {split_name} has "
                        f"{shorten(getattr(split, attribute))}"
                    )

    def evaluation_sets(self) -> dict[str, TextSplit]:
        """Every split a model is scored on: ``{"val", "test", **extra}``."""
        return {"val": self.val, "test": self.test, **self.extra}


def _as_texts(values: Any, field_name: str, name: str) -> tuple[str, ...]:
    if isinstance(values, str):  # a lone string would become a tuple of characters
        raise DataError(f"{name}: {field_name} must be a sequence of strings, not one string")
    texts = tuple(values)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(
                f"{name}: {field_name} must hold strings; example {i} is "
                f"{type(text).__name__} {shorten(text)}"
            )
    return texts


def _as_names(values: Any, field_name: str, name: str) -> tuple[str, ...]:
    names = _as_texts(values, field_name, name)
    if not names:
        raise DataError(f"{name}: {field_name} is empty; it needs at least one name")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"{name}: {field_name} repeats {repeated}; each name must be unique")
    return names


def _as_ids(values: Any, field_name: str, name: str, n: int, limit: int) -> np.ndarray:
    """Integer ids as int64, one per example, in ``[0, limit)``; floats must be whole."""
    ids = np.asarray(values)
    if ids.ndim != 1 or len(ids) != n:
        raise DataError(
            f"{name}: {field_name} has shape {ids.shape} but texts has {n} entries; it needs one "
            "entry per example"
        )
    if ids.dtype == bool or not (
        np.issubdtype(ids.dtype, np.integer) or np.issubdtype(ids.dtype, np.floating)
    ):
        raise DataError(f"{name}: {field_name} must hold integers; got dtype {ids.dtype}")
    if np.issubdtype(ids.dtype, np.floating):
        bad = ~np.isfinite(ids) | (ids != np.round(ids))
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{name}: {int(bad.sum())} entries of {field_name} are NaN, infinite or not "
                f"whole numbers (first at example {first}: {ids[first]}); they must be integers"
            )
    ids = ids.astype(np.int64)
    bad = (ids < 0) | (ids >= limit)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        names = "class_names" if field_name == "y" else "group_names"
        raise DataError(
            f"{name}: {int(bad.sum())} entries of {field_name} lie outside [0, {limit}) "
            f"(example {first} has {int(ids[first])}); {names} has {limit} names"
        )
    return ids


def stratified_split(
    strata: Sequence[Any] | np.ndarray, fraction: float, seed: int | Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Split positions ``0..n-1`` into (kept, split off), ``fraction`` of each stratum split off.

    Each stratum gives ``fraction`` of its members, rounded so that the split-off part has
    ``round(fraction·n)`` examples in all (at least 1, and at least 1 kept): every stratum
    gets the floor of its share and the largest remainders get one more. Unlike scikit-learn's
    ``train_test_split``, a stratum with a single member is allowed (it stays on the side its
    rounding gives). Members are drawn by ``numpy.random.default_rng(seed)``.

    Args:
        strata: one stratum key per example (a label, or a label × group code).
        fraction: the share to split off, strictly between 0 and 1.
        seed: the seed, or a sequence of ints (e.g. ``(seed, stage)``).

    Returns:
        The kept and the split-off positions, each sorted.

    Raises:
        ConfigError: ``fraction`` is not strictly between 0 and 1, or fewer than 2 examples.
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"a split fraction must lie strictly between 0 and 1; got {fraction}")
    n = len(strata)
    if n < 2:
        raise ConfigError(f"cannot split {n} example(s) in two; at least 2 are needed")
    n_off = min(max(1, round(fraction * n)), n - 1)
    off = _stratified_choice(np.asarray(strata), n_off, seed)
    kept = np.setdiff1d(np.arange(n), off, assume_unique=True)
    return kept, off


def stratified_sample(
    strata: Sequence[Any] | np.ndarray, size: int, seed: int | Sequence[int]
) -> np.ndarray:
    """``size`` positions of ``0..n-1`` (all of them if ``size >= n``), stratified, sorted.

    The same proportional allocation as ``stratified_split``: used to cap a dataset for a
    quick run without changing its label or group mix.
    """
    n = len(strata)
    if size >= n:
        return np.arange(n)
    if size < 1:
        raise ConfigError(f"a sample needs at least 1 example; got size {size}")
    return _stratified_choice(np.asarray(strata), size, seed)


def _stratified_choice(strata: np.ndarray, count: int, seed: int | Sequence[int]) -> np.ndarray:
    """``count`` positions chosen stratum by stratum in proportion to the strata sizes."""
    _, inverse, sizes = np.unique(strata, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    quota = count * sizes / len(strata)
    taken = np.floor(quota).astype(np.int64)
    remainder = np.where(taken < sizes, quota - taken, -np.inf)  # a full stratum takes no more
    # A stable sort keeps ties in stratum order, so the allocation never depends on the seed.
    for k in np.argsort(-remainder, kind="stable")[: count - int(taken.sum())]:
        taken[k] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.choice(np.flatnonzero(inverse == k), size=int(t), replace=False)
        for k, t in enumerate(taken)
        if t > 0
    ]
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


FIXED_SEED = 0
"""The seed of the parts of a split that stay the same for every ``seed``: the test set and the
``max_examples`` cap, so that runs with different seeds are scored on the same examples (as the
tabular sources do)."""


def split_pool(
    pool: TextSplit,
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    max_examples: int | None = None,
    extra: Mapping[str, TextSplit] | None = None,
) -> TextSplits:
    """Train, validation and test splits of one pool of examples, stratified by label × group.

    The test set (``test_fraction`` of the pool) is the same for every ``seed``; the validation
    set (``val_fraction`` of the pool) is drawn from the rest by ``seed``. With
    ``max_examples`` the pool is first cut to a stratified subset of that size, also the same for
    every ``seed``.

    Raises:
        ConfigError: a fraction outside (0, 1), fractions adding up to 1 or more, or
            ``max_examples`` below 1.
    """
    check_fraction("val_fraction", val_fraction)
    check_fraction("test_fraction", test_fraction)
    if val_fraction + test_fraction >= 1.0:
        raise ConfigError(
            f"val_fraction + test_fraction must be below 1 to leave training examples; got "
            f"{val_fraction} + {test_fraction}"
        )
    positions = cap_pool(pool, max_examples)
    strata = _strata(pool)
    rest, test = stratified_split(strata[positions], test_fraction, (FIXED_SEED, 1))
    rest, test = positions[rest], positions[test]
    train, val = stratified_split(strata[rest], val_fraction / (1.0 - test_fraction), (seed, 2))
    return TextSplits(
        train=pool.subset(rest[train], name=f"{pool.name}/train"),
        val=pool.subset(rest[val], name=f"{pool.name}/val"),
        test=pool.subset(test, name=f"{pool.name}/test"),
        extra=dict(extra or {}),
    )


def split_validation(
    pool: TextSplit, *, seed: int, val_fraction: float
) -> tuple[TextSplit, TextSplit]:
    """(train, validation) from one pool: ``val_fraction`` of it, stratified, drawn by ``seed``.

    Raises:
        ConfigError: ``val_fraction`` outside (0, 1).
    """
    check_fraction("val_fraction", val_fraction)
    train, val = stratified_split(_strata(pool), val_fraction, (seed, 2))
    return (
        pool.subset(train, name=f"{pool.name}/train"),
        pool.subset(val, name=f"{pool.name}/val"),
    )


def cap_pool(pool: TextSplit, max_examples: int | None) -> np.ndarray:
    """Positions of a stratified subset of at most ``max_examples`` examples (all if None).

    The subset is the same for every seed (``FIXED_SEED``), so that capped runs with different
    seeds still share their test examples.

    Raises:
        ConfigError: ``max_examples`` below 1.
    """
    if max_examples is None:
        return np.arange(len(pool))
    if max_examples < 1:
        raise ConfigError(f"max_examples must be at least 1 or None; got {max_examples}")
    return stratified_sample(_strata(pool), max_examples, (FIXED_SEED, 0))


def _strata(split: TextSplit) -> np.ndarray:
    return split.y * split.n_groups + split.group


@dataclass(frozen=True)
class TextDataset:
    """A text data loader as ``stalwart datasets`` lists it.

    Args:
        name: the loader's name, e.g. ``"tweets"``.
        loader: the function that loads it.
        summary: one line on what it holds.
        needs: the data packages (``stalwart.data.packages``) it reads.
        local_copy: for data read from a user's own copy: a function returning whether the copy
            is present and a one-line note (where it was found, or where to put it).
    """

    name: str
    loader: Callable[..., Any]
    summary: str
    needs: tuple[str, ...] = ()
    local_copy: Callable[[], tuple[bool, str]] | None = None


TEXT_DATASETS: dict[str, TextDataset] = {}
"""Every text data loader, by name, filled in as the loader modules are imported."""


def register_text_dataset(
    name: str,
    summary: str,
    *,
    needs: tuple[str, ...] = (),
    local_copy: Callable[[], tuple[bool, str]] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator that lists a text data loader in ``TEXT_DATASETS``."""

    def add(loader: Callable[..., Any]) -> Callable[..., Any]:
        if name in TEXT_DATASETS:
            raise ValueError(f"text dataset {name!r} is registered twice")
        TEXT_DATASETS[name] = TextDataset(name, loader, summary, needs, local_copy)
        return loader

    return add
