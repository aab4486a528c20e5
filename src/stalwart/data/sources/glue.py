"""GLUE classification tasks (SST-2, MRPC, RTE, QNLI, MNLI, QQP) from a user's local copy.

GLUE's data cannot ship with stalwart (each task has its own license), so ``glue`` reads the
standard layout that GLUE's ``download_glue_data.py`` writes (and that BERT, the group DRO code
and most papers read):

    <folder>/<TASK>/train.tsv
    <folder>/<TASK>/dev.tsv              (MNLI: dev_matched.tsv; dev_mismatched.tsv optional)

``<folder>`` defaults to ``$STALWART_DATA/glue``; a folder that holds a task's files directly is
accepted too. The files are tab-separated with a header row and no quoting (GLUE's TSVs hold
unbalanced quote characters, so they are split on tabs only, as GLUE's own processors do).
Columns are found by their official names in the header:

=======  ================================  ==============  ===================================
task     text column(s)                    label column    labels, in class order
=======  ================================  ==============  ===================================
SST-2    sentence                          label           0 negative, 1 positive
MRPC     #1 String, #2 String              Quality         0 not_equivalent, 1 equivalent
RTE      sentence1, sentence2              label           entailment, not_entailment
QNLI     question, sentence                label           entailment, not_entailment
MNLI     sentence1, sentence2              gold_label      contradiction, entailment, neutral
QQP      question1, question2              is_duplicate    0 not_duplicate, 1 duplicate
=======  ================================  ==============  ===================================

(MNLI's class order is the one ``stalwart.data.sources.multinli`` uses.) A UTF-8 byte-order mark
at the start of a file (MRPC's files carry one) is ignored. Rows with fewer fields than the
columns read need are skipped with a warning that counts them, as the GLUE loader of Hugging
Face ``datasets`` skips such corrupted rows; rows whose text is empty or whitespace-only are
dropped and counted in the same warning. A label outside the task's labels is an error.

Splits: ``train.tsv`` gives train and validation (``val_fraction`` of it, stratified by label,
drawn by ``seed``); the dev file gives test, because GLUE's own test labels are not public. For
MNLI, ``dev_mismatched.tsv``, when present, is ``extra["mismatched"]``. One group per class
(group names are the class names), so worst-group accuracy is worst-class accuracy.
"""

from __future__ import annotations

import csv
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stalwart.data.sources.local_copies import check_max_examples
from stalwart.data.storage import check_data_home, data_home
from stalwart.data.text import (
    TextSplit,
    TextSplits,
    cap_pool,
    register_text_dataset,
    split_validation,
)
from stalwart.errors import ConfigError, DataError, DataMissingError, closest

OBTAIN = (
    "GLUE's download_glue_data.py (github.com/nyu-mll/GLUE-baselines) or gluebenchmark.com/tasks"
)


@dataclass(frozen=True)
class GlueTask:
    """How one GLUE task's TSV files are read."""

    name: str
    text_columns: tuple[str, ...]
    label_column: str
    labels: tuple[str, ...]
    class_names: tuple[str, ...]
    test_file: str = "dev.tsv"
    extra_files: tuple[tuple[str, str], ...] = ()

    @property
    def is_pair(self) -> bool:
        """Whether each example is a pair of texts."""
        return len(self.text_columns) == 2


_ENTAILMENT = ("entailment", "not_entailment")
GLUE_TASKS: dict[str, GlueTask] = {
    task.name: task
    for task in (
        GlueTask("SST-2", ("sentence",), "label", ("0", "1"), ("negative", "positive")),
        GlueTask(
            "MRPC",
            ("#1 String", "#2 String"),
            "Quality",
            ("0", "1"),
            ("not_equivalent", "equivalent"),
        ),  # fmt: skip
        GlueTask("RTE", ("sentence1", "sentence2"), "label", _ENTAILMENT, _ENTAILMENT),
        GlueTask("QNLI", ("question", "sentence"), "label", _ENTAILMENT, _ENTAILMENT),
        GlueTask(
            "MNLI",
            ("sentence1", "sentence2"),
            "gold_label",
            ("contradiction", "entailment", "neutral"),
            ("contradiction", "entailment", "neutral"),
            test_file="dev_matched.tsv",
            extra_files=(("mismatched", "dev_mismatched.tsv"),),
        ),  # fmt: skip
        GlueTask(
            "QQP",
            ("question1", "question2"),
            "is_duplicate",
            ("0", "1"),
            ("not_duplicate", "duplicate"),
        ),  # fmt: skip
    )
}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def glue_task(task: str) -> GlueTask:
    """The task called ``task`` (case, dashes and underscores ignored: ``sst2`` is SST-2).

    Raises:
        ConfigError: an unknown task; the message lists the tasks.
    """
    for name, spec in GLUE_TASKS.items():
        if _key(name) == _key(str(task)):
            return spec
    raise ConfigError(
        f"unknown GLUE task {task!r}{closest(str(task), GLUE_TASKS)}; choose from "
        f"{list(GLUE_TASKS)}"
    )


def default_folder() -> Path:
    """Where GLUE is looked for when no folder is given: ``$STALWART_DATA/glue``."""
    return data_home() / "glue"


def layout(spec: GlueTask) -> str:
    """The expected layout of one task's files, for messages."""
    files = ["train.tsv", spec.test_file] + [f"{f} (optional)" for _, f in spec.extra_files]
    return (
        f"<folder>/{spec.name}/ holding {', '.join(files)}: tab-separated, unquoted, with a "
        f"header row naming {', '.join(spec.text_columns)} and {spec.label_column}"
    )


def find_task_folder(spec: GlueTask, folder: str | Path | None) -> Path:
    """The folder holding the task's train and dev files.

    Raises:
        DataMissingError: a file is missing; the message names it, where it was looked for,
            and the expected layout.
        DataError: no folder is given and ``$STALWART_DATA`` is a file.
    """
    if folder is None:
        check_data_home()  # "$STALWART_DATA is a file" says more than "folder not found"
    base = Path(folder).expanduser() if folder is not None else default_folder()
    needed = ("train.tsv", spec.test_file)
    candidates = (base / spec.name, base)
    for candidate in candidates:
        if all((candidate / name).is_file() for name in needed):
            return candidate
    task_folder = base / spec.name
    missing = [str(task_folder / n) for n in needed if not (task_folder / n).is_file()]
    where = "" if base.is_dir() else f" (the folder {base} does not exist)"
    raise DataMissingError(
        f"GLUE {spec.name}: missing {' and '.join(missing)}{where}. GLUE cannot ship with "
        f"stalwart and is read from your own copy.\nExpected layout: {layout(spec)}, where "
        f"<folder> is the folder passed to glue() or $STALWART_DATA/glue ({default_folder()}).\n"
        f"Get it with {OBTAIN}."
    )


def read_glue_file(path: Path, spec: GlueTask) -> tuple[list[list[str]], list[str], int]:
    """(texts per text column, labels, rows skipped) of one GLUE TSV.

    Raises:
        DataError: the file is empty, lacks a column, holds a label outside the task's labels,
            or is not UTF-8.
    """
    columns = (*spec.text_columns, spec.label_column)
    texts: list[list[str]] = [[] for _ in spec.text_columns]
    labels: list[str] = []
    skipped = 0
    try:
        # utf-8-sig: MRPC's files start with a byte-order mark that would hide "Quality".
        with open(path, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path} is empty; it needs a header row and one row per example")
            header = [name.strip() for name in header]
            missing = [c for c in columns if c not in header]
            if missing:
                raise DataError(
                    f"{path} lacks the column(s) {missing} of GLUE {spec.name}; its header is "
                    f"{header[:20]}. Expected: {layout(spec)}"
                )
            where = [header.index(c) for c in columns]
            needed = max(where) + 1
            allowed = set(spec.labels)
            for line_number, row in enumerate(reader, start=2):
                if len(row) < needed:
                    skipped += 1
                    continue
                values = [row[i] for i in where]
                if any(not value.strip() for value in values[:-1]):
                    skipped += 1
                    continue
                label = values[-1].strip()
                if label not in allowed:
                    raise DataError(
                        f"{path}, line {line_number}: {spec.label_column} is {label!r}; GLUE "
                        f"{spec.name} labels are {list(spec.labels)}"
                    )
                for column_texts, value in zip(texts, values[:-1], strict=True):
                    column_texts.append(value)
                labels.append(label)
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not UTF-8 text: {error}") from None
    return texts, labels, skipped


def _read_split(path: Path, spec: GlueTask, name: str) -> TextSplit:
    texts, labels, skipped = read_glue_file(path, spec)
    if skipped:
        warnings.warn(
            f"{path}: skipped {skipped} rows with missing fields or empty text", stacklevel=4
        )
    if not labels:
        raise DataError(f"{path} holds no usable examples (header only, or every row skipped)")
    ids = {label: k for k, label in enumerate(spec.labels)}
    y = np.array([ids[label] for label in labels], dtype=np.int64)
    return TextSplit(
        texts=tuple(texts[0]), y=y, group=y.copy(), class_names=spec.class_names,
        group_names=spec.class_names, name=name,
        texts_b=tuple(texts[1]) if spec.is_pair else None,
    )  # fmt: skip


def glue_copy_status() -> tuple[bool, str]:
    """Whether ``$STALWART_DATA/glue`` holds any task, and a one-line note for listings."""
    found = [
        name
        for name, spec in GLUE_TASKS.items()
        if all((default_folder() / name / f).is_file() for f in ("train.tsv", spec.test_file))
    ]
    if found:
        return True, f"GLUE tasks found in {default_folder()}: {', '.join(found)}"
    return False, (
        f"glue: local copy: put the task folders ({', '.join(GLUE_TASKS)}) in $STALWART_DATA/glue "
        f"({default_folder()}); get them with {OBTAIN}"
    )


@register_text_dataset(
    "glue",
    "GLUE SST-2, MRPC, RTE, QNLI, MNLI, QQP from your local copy; one group per class",
    local_copy=glue_copy_status,
)
def glue(
    task: str,
    folder: str | Path | None = None,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    max_examples: int | None = None,
) -> TextSplits:
    """One GLUE task from a local copy in the standard layout (see the module docstring).

    Args:
        task: ``SST-2``, ``MRPC``, ``RTE``, ``QNLI``, ``MNLI`` or ``QQP`` (case, dashes and
            underscores ignored).
        folder: the folder holding one subfolder per task (or one task's files); default
            ``$STALWART_DATA/glue``.
        seed: draws the validation set from train.tsv.
        val_fraction: the share of train.tsv for validation.
        max_examples: if set, at most this many examples of each file (train.tsv before the
            validation set is split off, the dev file, MNLI's mismatched file): a stratified
            subset, the same for every seed.

    Raises:
        ConfigError: an unknown task, ``val_fraction`` outside (0, 1), ``max_examples < 1``.
        DataMissingError: a file is missing; the message names it, where it was looked for and
            the expected layout.
        DataError: a file lacks a column, holds an unknown label or no usable rows.
    """
    spec = glue_task(task)
    check_max_examples(max_examples)  # before any file is read
    task_folder = find_task_folder(spec, folder)
    name = f"glue/{spec.name}"

    def read(file_name: str, split_name: str) -> TextSplit:
        split = _read_split(task_folder / file_name, spec, split_name)
        return split.subset(cap_pool(split, max_examples))

    train, val = split_validation(read("train.tsv", name), seed=seed, val_fraction=val_fraction)
    extra = {
        key: read(file_name, f"{name}/{key}")
        for key, file_name in spec.extra_files
        if (task_folder / file_name).is_file()
    }
    return TextSplits(train=train, val=val, test=read(spec.test_file, f"{name}/test"), extra=extra)
