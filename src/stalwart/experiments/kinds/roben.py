"""RobEn's comparison: defenses × classifiers × seeds on text, clean / attacked / certified.

Jones et al. (arXiv 2005.01229, Table 2): the same classifier trained on raw tokens
(``standard``), on raw tokens with random-typo copies (``augmentation``), and on the RobEn
encodings ``connected_components`` (ConnComp) and ``agglomerative`` (AggClust); each measured
on clean test text, under the beam-search typo attack, with the exact certificate, and on real
misspellings from codespell.

    kind: roben
    datasets: [tweets, drug_reviews]        # or glue:SST-2 (a local GLUE copy)
    defenses: [standard, augmentation, connected_components, agglomerative]
    models: [bag]                           # bag, cnn, gru, minilm
    encoding: {vocab: 100000, gamma: 0.3}   # built once into ROOT/encodings/, then reused
    train: {epochs: 10, lr: 0.01}
    evaluate: {examples: 1000}              # test examples attacked and certified
    seeds: [0, 1, 2]

Each cell is a folder ``ROOT/cells/DATASET-DEFENSE-MODEL-seedK/`` (``stalwart text certify``
and ``stalwart text attack`` read it); a finished cell with the same settings is reused. While
a cell runs, its ``progress.log`` says which stage it is in and, every minute of the attack,
how many examples' attacks have finished. A cell that is killed resumes when run again: from
its trained classifier, and its attack from ``attack_checkpoint.npz`` (the scores of every
sentence tried, written every five minutes), giving the results of an uninterrupted run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from stalwart.config import NamedConfig, StrictModel
from stalwart.experiments.cells import finished_cell, run_cells
from stalwart.experiments.executors import Executor
from stalwart.experiments.kinds import Reporter, register_kind
from stalwart.io import atomic_write_text, write_json
from stalwart.report import ResultTable, mean_std, percent_cell

SCHEMA = 1
AUGMENT_MIN_COUNT = 2
PROGRESS_FILE = "progress.log"  # in each cell's folder while it runs
ATTACK_CHECKPOINT = "attack_checkpoint.npz"  # scores an interrupted attack resumes from
METRICS = ("clean_accuracy", "attacked_accuracy", "certified_accuracy", "codespell_accuracy")


class EncodingSettings(StrictModel):
    """The RobEn encodings the encoded defenses use."""

    vocab: int = Field(100_000, ge=1, description="most frequent English words clustered")
    word_list: str = Field("huge", description="Debian word list: small, large or huge")
    gamma: float = Field(0.3, ge=0, le=1, description="AggClust's weight of fidelity")
    family: Literal["internal_edit", "keyboard"] = "internal_edit"


class EvaluateSettings(StrictModel):
    """How each cell is measured."""

    examples: int | None = Field(1000, ge=1, description="test examples (None: all)")
    cap: int = Field(10_000, ge=1, description="encodings enumerated per example at most")
    beam_width: int = Field(5, ge=1)
    budget: int | None = Field(None, ge=1, description="words the adversary may change")
    codespell: bool = Field(True, description="also measure real misspellings")


class RobenConfig(NamedConfig):
    """Defenses × classifiers × seeds on text datasets."""

    kind: Literal["roben"]
    name: str = "roben"
    datasets: list[str] = Field(default=["tweets"], min_length=1)
    data_folder: str | None = Field(None, description="a local GLUE copy (glue:TASK)")
    max_examples: int | None = Field(None, ge=10, description="cap on examples per dataset")
    defenses: list[str] = Field(
        default=["standard", "augmentation", "connected_components", "agglomerative"],
        min_length=1,
    )
    models: list[str] = Field(default=["bag"], min_length=1)
    encoding: EncodingSettings = EncodingSettings()
    encodings_folder: str | None = Field(
        None, description="where encodings are built or reused (default ROOT/encodings)"
    )
    train: dict[str, Any] = Field(default_factory=dict, description="fit_text_classifier's")
    evaluate: EvaluateSettings = EvaluateSettings()
    augment_copies: int = Field(4, ge=1, description="random-typo copies (augmentation)")
    seeds: list[int] = Field(default=[0, 1, 2], min_length=1)
    workers: int = Field(1, ge=1, description="parallel worker processes")
    out: str | None = None

    @field_validator("defenses")
    @classmethod
    def _known_defenses(cls, defenses: list[str]) -> list[str]:
        from stalwart.text.experiment import check_defense

        return [check_defense(d) for d in defenses]

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: list[str]) -> list[str]:
        from stalwart.errors import ConfigError, closest
        from stalwart.text.training import CHOICES

        for model in models:
            if model not in CHOICES:
                raise ConfigError(
                    f"unknown text classifier {model!r}{closest(model, CHOICES)}; choose from "
                    f"{list(CHOICES)}"
                )
        return models

    @field_validator("train")
    @classmethod
    def _known_train_settings(cls, train: dict[str, Any]) -> dict[str, Any]:
        import inspect

        from stalwart.config import TrainConfig
        from stalwart.errors import ConfigError, closest
        from stalwart.text.training import fit_text_classifier

        fixed = {"train_encoded", "train_split", "val_encoded", "val_split", "encoder", "model",
                 "seed", "train", "featurizer", "run_dir"}  # fmt: skip
        allowed = (set(inspect.signature(fit_text_classifier).parameters) - fixed) | (
            set(TrainConfig.model_fields) - {"seed"}
        )
        for key in train:
            if key not in allowed:
                raise ConfigError(
                    f"unknown train setting {key!r}{closest(key, allowed)}; choose from "
                    f"{sorted(allowed)} (the seed comes from seeds:)"
                )
        return train

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, datasets: list[str]) -> list[str]:
        from stalwart.errors import ConfigError, closest
        from stalwart.text.experiment import DATASETS

        for name in datasets:
            if name not in ("tweets", "drug_reviews") and not name.startswith("glue:"):
                raise ConfigError(
                    f"unknown text dataset {name!r}{closest(name, DATASETS)}; choose from "
                    f"{list(DATASETS)}"
                )
        return datasets

    def root(self) -> Path:
        """The experiment's directory."""
        return Path(self.out) if self.out else Path("runs") / self.name


def encoding_path(config: RobenConfig, method: str) -> Path:
    """Where the encoding of ``method`` with these settings lives under the root."""
    settings = config.encoding
    gamma = f"-gamma{settings.gamma:g}" if method == "agglomerative" else ""
    name = f"{method}-{settings.vocab}-{settings.word_list}-{settings.family}{gamma}.json"
    folder = config.encodings_folder or config.root() / "encodings"
    return Path(folder) / name


def build_encodings(config: RobenConfig, reporter: Reporter) -> dict[str, str]:
    """Build (or reuse) the encodings the encoded defenses need; their paths by defense."""
    from stalwart.data.sources.english_words import english_vocabulary
    from stalwart.errors import DataError
    from stalwart.text import Encoding, Vocabulary, build_encoding, typo_family
    from stalwart.text.experiment import ENCODED

    paths: dict[str, str] = {}
    settings = config.encoding
    vocabulary = None
    for method in (d for d in config.defenses if d in ENCODED):
        path = encoding_path(config, method)
        paths[method] = str(path)
        if path.exists():
            try:
                Encoding.load(path)
                reporter.note(f"encoding {method}: reusing {path}")
                continue
            except DataError as error:  # a damaged file is rebuilt, never trusted
                reporter.note(f"encoding {method}: rebuilding ({error})")
        if vocabulary is None:
            vocabulary = Vocabulary.from_words(
                *english_vocabulary(settings.vocab, settings.word_list)
            )
        encoding = build_encoding(
            vocabulary, family=typo_family(settings.family), method=method, gamma=settings.gamma
        )
        encoding.save(path)
        stats = encoding.stats
        reporter.note(
            f"encoding {method}: {stats['words']:,} words → {stats['clusters']:,} clusters "
            f"in {stats['seconds']:.0f} s"
        )
    return paths


def _run_cell(task: tuple[Any, str]) -> dict[str, Any]:
    """Train and measure one cell (in a worker process) and record it."""
    from stalwart.data.sources.codespell import codespell_misspellings
    from stalwart.text.experiment import (
        evaluate_classifier,
        evaluation_subset,
        load_text_data,
        train_cell,
        trained_classifier,
    )

    cell, folder = task
    folder = Path(folder)
    log = _progress_log(folder / PROGRESS_FILE)
    # A cell killed after training resumes from its classifier, and its attack from the
    # checkpoint of scored sentences (a MiniLM attack on raw reviews runs for hours).
    classifier = trained_classifier(cell, folder)
    if classifier is None:
        log("training")
        classifier = train_cell(cell, folder, cache_dir=folder.parent.parent / "cache")
    checkpoint = folder / ATTACK_CHECKPOINT
    log(f"attacking{' (resuming from its checkpoint)' if checkpoint.exists() else ''}")
    splits = load_text_data(cell.dataset, cell.seed, **cell.data)
    settings = dict(cell.evaluate)
    test = evaluation_subset(splits.test, settings.pop("examples"))
    found = evaluate_classifier(
        classifier,
        test,
        cap=settings["cap"],
        beam_width=settings["beam_width"],
        budget=settings["budget"],
        seed=cell.seed,
        misspellings=codespell_misspellings() if settings["codespell"] else None,
        log=log,
        attack_checkpoint=checkpoint,
    )
    record = {"schema": SCHEMA, "cell": asdict(cell), **found}
    write_json(folder / "results.json", record)
    checkpoint.unlink(missing_ok=True)
    return record


def _progress_log(path: Path) -> Callable[[str], None]:
    """Append timestamped lines to ``path`` (``tail -f`` it while a long cell runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def log(line: str) -> None:
        with path.open("a") as file:
            file.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    return log


def _train_settings(config: RobenConfig, defense: str) -> dict[str, Any]:
    """``train:`` as written; augmentation keeps tokens seen at least twice unless it says.

    With ``min_count: 1`` every random typo of the augmented copies becomes a token of its own,
    learned from a single example: about half a million rows on tweets, against forty thousand
    for the clean text, all updated at every step. Seen fewer than twice, a typo is ``<unk>``.
    """
    train = dict(config.train)
    if defense == "augmentation":
        train.setdefault("min_count", AUGMENT_MIN_COUNT)
    return train


def cells(config: RobenConfig, encodings: dict[str, str]) -> list[Any]:
    """Every cell of the comparison, in table order."""
    from stalwart.text.experiment import Cell

    data = {"folder": config.data_folder, "max_examples": config.max_examples}
    return [
        Cell(
            dataset,
            defense,
            model,
            seed,
            encodings.get(defense),
            data,
            _train_settings(config, defense),
            config.evaluate.model_dump(),
            config.augment_copies,
        )  # fmt: skip
        for dataset in config.datasets
        for defense in config.defenses
        for model in config.models
        for seed in config.seeds
    ]


def _announce(found: dict[str, Any]) -> str:
    """One line for a finished cell: what it is and its accuracies."""
    cell = found["cell"]
    certified = found.get("certified_accuracy")
    return (
        f"{cell['dataset']} · {cell['defense']} · {cell['model']} · seed {cell['seed']}: "
        f"clean {found['clean_accuracy']:.3f}, attacked {found['attacked_accuracy']:.3f}"
        + ("" if certified is None else f", certified {certified:.3f}")
    )


def run_roben(
    config: RobenConfig, reporter: Reporter, executor: Executor | None = None
) -> dict[str, Any]:
    """Build the encodings, run (or reuse) every cell, write ``roben.json`` and ``roben.md``."""
    root = config.root()
    encodings = build_encodings(config, reporter)
    tasks, kept = [], []
    for cell in cells(config, encodings):
        folder = root / "cells" / cell.folder_name()
        tasks.append((cell, str(folder)))
        kept.append(finished_cell(folder, SCHEMA, asdict(cell)))
    records = run_cells(
        tasks, kept, _run_cell, reporter, _announce, workers=config.workers, executor=executor
    )
    summary = summarize(records)
    result = {"summary": summary, "records": records}
    write_json(root / "roben.json", result)
    # Each table under its title: which dataset, how many examples, the commonest class.
    markdown = "\n".join(f"{t.title}\n\n{t.markdown()}" for t in tables(summary))
    atomic_write_text(root / "roben.md", markdown)
    return result


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeds of every metric, per (dataset, defense, model)."""
    rows: dict[str, dict[str, Any]] = {}
    for record in records:
        cell = record["cell"]
        key = f"{cell['dataset']}|{cell['defense']}|{cell['model']}"
        row = {"dataset": cell["dataset"], "defense": cell["defense"], "model": cell["model"]}
        rows.setdefault(key, {**row, "records": []})["records"].append(record)
    out = []
    for row in rows.values():
        found = row.pop("records")
        stats = {
            metric: mean_std(r[metric] for r in found)
            for metric in (*METRICS, "capped", "attack_seconds", "certify_seconds")
            if all(metric in r for r in found)
        }
        extra = {"seeds": len(found), "examples": found[0]["examples"]}
        if all("majority_accuracy" in r for r in found):  # cells measured before lack it
            extra["majority_accuracy"] = found[0]["majority_accuracy"]  # same examples for all
        if "oov_words" in found[0]:
            extra |= {"oov_words": found[0]["oov_words"], "oov_unstable": found[0]["oov_unstable"]}
        out.append({**row, **extra, "stats": stats})
    return {"rows": out}


def tables(summary: dict[str, Any]) -> list[ResultTable]:
    """One table per dataset: defenses × models, accuracies in percent (mean ± std)."""
    out = []
    for dataset in dict.fromkeys(r["dataset"] for r in summary["rows"]):
        rows = [r for r in summary["rows"] if r["dataset"] == dataset]
        table = ResultTable(
            ["defense", "model", "clean", "attacked", "certified", "codespell",
             "capped", "seeds"],
            title=f"{dataset}: accuracy (%) on {rows[0]['examples']} test examples"
            f"{_majority_note(rows)}, mean ± std over seeds; certified = right on every typo "
            "of the family",
        )  # fmt: skip
        for row in rows:
            stats = row["stats"]
            cells = [percent_cell(stats[m]) if m in stats else "-" for m in METRICS]
            capped = stats.get("capped")
            capped_cell = "-" if capped is None else f"{capped['mean']:.0f}"
            table.add(row["defense"], row["model"], *cells, capped_cell, str(row["seeds"]))
        out.append(table)
    return out


def _majority_note(rows: list[dict[str, Any]]) -> str:
    """`` (the commonest class: 70.0%)`` when every row measured it, else nothing."""
    if not all("majority_accuracy" in r for r in rows):
        return ""
    return f" (the commonest class: {100 * rows[0]['majority_accuracy']:.1f}%)"


def render(config: RobenConfig, result: dict[str, Any]) -> list[Any]:
    """The tables, then where they were written."""
    found = [table.rich() for table in tables(result["summary"])]
    return [*found, f"written: {config.root() / 'roben.md'}"]


def describe(config: RobenConfig) -> str:
    """``name: D datasets × K defenses × M models × S seeds → ROOT``."""
    return (
        f"[bold]{config.name}[/]: {len(config.datasets)} datasets × {len(config.defenses)} "
        f"defenses × {len(config.models)} models × {len(config.seeds)} seeds → {config.root()}"
    )


KIND = register_kind("roben", config=RobenConfig, run=run_roben, render=render, describe=describe)
