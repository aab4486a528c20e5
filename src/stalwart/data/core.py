"""Grouped datasets: the one data type every method, metric and evaluation reads.

A group is a (class, attribute) cell such as (label, colour). Groups come from the data, never
from hard-coded counts, and every example carries its index so that error sets (JTT) and
per-example bookkeeping stay exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor
from torch.utils.data import Dataset

from stalwart.errors import DataError

if TYPE_CHECKING:
    from stalwart.data.blocks import InputBlocks


class Batch(NamedTuple):
    """What every loader yields: inputs, labels, group ids and dataset indices."""

    x: Tensor
    y: Tensor
    group: Tensor
    index: Tensor

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Move every field to ``device``."""
        return Batch(*(t.to(device, non_blocking=non_blocking) for t in self))


class GroupedDataset(Dataset):
    """Tensors of inputs, labels and group ids, with names for classes and groups.

    Args:
        x: inputs, first dimension the example.
        y: integer class labels in ``[0, n_classes)``.
        group: integer group ids in ``[0, len(group_names))``.
        n_classes: number of classes (may exceed the labels present).
        group_names: one readable name per group, e.g. ``"coat, digit 0"``.
        index: the id of each example in its source split; defaults to ``arange(len(y))``.
        class_names: optional readable class names.
        name: a label used in messages and reports.
        blocks: named parts of the inputs (``stalwart.data.blocks.InputBlocks``) for the
            diagnostics that randomize one part; kept by ``subset``.

    Raises:
        DataError: on no examples, NaN or infinite inputs, labels or group ids out of range,
            fields of different lengths, or blocks of another input shape. The message says
            which field and which example.
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        group: Tensor,
        *,
        n_classes: int,
        group_names: Sequence[str],
        index: Tensor | None = None,
        class_names: Sequence[str] | None = None,
        name: str = "dataset",
        blocks: InputBlocks | None = None,
    ) -> None:
        self.name = name
        self.blocks = blocks
        self.x = torch.as_tensor(x)
        self.y = _as_ids(y, "label", name)
        self.group = _as_ids(group, "group id", name)
        self.index = torch.arange(len(self.y)) if index is None else _as_ids(index, "index", name)
        self.n_classes = int(n_classes)
        self.group_names = list(group_names)
        self.class_names = list(class_names) if class_names is not None else None
        self._validate()

    @property
    def n_groups(self) -> int:
        """Number of groups (including groups with no examples in this split)."""
        return len(self.group_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input, without the example dimension."""
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> Batch:
        return Batch(self.x[i], self.y[i], self.group[i], self.index[i])

    def take(self, positions: Tensor) -> Batch:
        """Return the examples at ``positions`` as one batch (fast path used by loaders)."""
        return Batch(
            self.x[positions], self.y[positions], self.group[positions], self.index[positions]
        )

    def group_counts(self) -> Tensor:
        """Number of examples in each group, zeros included."""
        return torch.bincount(self.group, minlength=self.n_groups)

    def class_counts(self) -> Tensor:
        """Number of examples of each class, zeros included."""
        return torch.bincount(self.y, minlength=self.n_classes)

    def subset(self, positions: Sequence[int] | Tensor, name: str | None = None) -> GroupedDataset:
        """The examples at ``positions`` (their original ``index`` is kept)."""
        positions = torch.as_tensor(positions, dtype=torch.long)
        return GroupedDataset(
            self.x[positions],
            self.y[positions],
            self.group[positions],
            n_classes=self.n_classes,
            group_names=self.group_names,
            index=self.index[positions],
            class_names=self.class_names,
            name=name or self.name,
            blocks=self.blocks,
        )

    def to(self, device: torch.device | str) -> GroupedDataset:
        """The same dataset with its tensors on ``device`` (no validation re-run)."""
        moved = object.__new__(GroupedDataset)
        moved.__dict__.update(self.__dict__)
        moved.x, moved.y = self.x.to(device), self.y.to(device)
        moved.group, moved.index = self.group.to(device), self.index.to(device)
        return moved

    def __repr__(self) -> str:
        counts = self.group_counts().tolist()
        groups = ", ".join(f"{n}={c}" for n, c in zip(self.group_names, counts, strict=True))
        return (
            f"GroupedDataset({self.name!r}, n={len(self)}, input_shape={self.input_shape}, "
            f"n_classes={self.n_classes}, groups: {groups})"
        )

    def _validate(self) -> None:
        n = len(self.y)
        if n == 0:
            raise DataError(
                f"{self.name}: no examples; a dataset needs at least one (an empty split, or a "
                "selection that matched nothing, would train or evaluate on nothing)"
            )
        for field_name in ("x", "group", "index"):
            if len(getattr(self, field_name)) != n:
                raise DataError(
                    f"{self.name}: {field_name} has {len(getattr(self, field_name))} entries but "
                    f"y has {n}; every field needs one entry per example"
                )
        if self.x.is_floating_point():
            bad = ~torch.isfinite(self.x.reshape(n, -1)).all(dim=1)
            if bad.any():
                first = int(torch.nonzero(bad)[0])
                raise DataError(
                    f"{self.name}: {int(bad.sum())} inputs contain NaN or infinite values "
                    f"(first at example {first}); clean or drop them before building the dataset"
                )
        _check_range(self.name, "label", self.y, self.n_classes, "n_classes")
        _check_range(self.name, "group id", self.group, self.n_groups, "len(group_names)")
        if self.blocks is not None:
            self.blocks.check(self.input_shape, self.name)


def _as_ids(values: Tensor, what: str, name: str) -> Tensor:
    """Integer ids as int64; float ids must be whole numbers (NaN is not silently cast)."""
    values = torch.as_tensor(values)
    if values.is_floating_point():
        bad = ~torch.isfinite(values) | (values != values.round())
        if bad.any():
            first = int(torch.nonzero(bad.reshape(-1))[0])
            raise DataError(
                f"{name}: {int(bad.sum())} {what}s are NaN, infinite or not whole numbers "
                f"(first at example {first}: {values.reshape(-1)[first].item()}); {what}s must be "
                "integers"
            )
    return values.long()


def _check_range(name: str, what: str, values: Tensor, limit: int, limit_name: str) -> None:
    if limit <= 0:
        raise DataError(f"{name}: {limit_name} must be positive; got {limit}")
    bad = (values < 0) | (values >= limit)
    if bad.any():
        first = int(torch.nonzero(bad)[0])
        raise DataError(
            f"{name}: {int(bad.sum())} {what}s lie outside [0, {limit}) "
            f"(example {first} has {int(values[first])}); {limit_name} is {limit}"
        )


@dataclass(frozen=True)
class Splits:
    """Train, validation and test sets, plus named extra evaluation sets."""

    train: GroupedDataset
    val: GroupedDataset
    test: GroupedDataset
    extra: Mapping[str, GroupedDataset] = field(default_factory=dict)
    # Inputs without labels (semi-supervised methods such as RST pseudo-label them).
    unlabelled: Tensor | None = None

    def evaluation_sets(self) -> dict[str, GroupedDataset]:
        """Every set except train, by name: ``val``, ``test`` and the extras."""
        return {"val": self.val, "test": self.test, **self.extra}

    def __repr__(self) -> str:
        parts = [
            f"  {k}: {v!r}" for k, v in {"train": self.train, **self.evaluation_sets()}.items()
        ]
        if self.unlabelled is not None:
            parts.append(f"  unlabelled: {len(self.unlabelled)} inputs")
        return "Splits(\n" + "\n".join(parts) + "\n)"
