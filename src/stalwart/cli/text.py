"""`stalwart text`: robust encodings against typos (RobEn, arXiv 2005.01229).

``build-encoding`` clusters a vocabulary into a RobEn encoding (with a progress bar);
``encode`` shows what a model would see; ``evaluate`` sets a trained cell's clean accuracy of a
``kind: roben`` run (``ROOT/cells/...``) beside a constant classifier's; ``certify`` and ``attack``
measure its robustness exactly, or with the beam-search attack. All are thin over
``stalwart.text``, imported when a command runs.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from stalwart.cli import app as root_app
from stalwart.cli import console, errors, friendly_errors

text_app = typer.Typer(
    help="Robust encodings against adversarial typos (RobEn, arXiv 2005.01229).",
    no_args_is_help=True,
)
root_app.add_typer(text_app, name="text")

CellArgument = Annotated[
    Path,
    typer.Argument(
        help="A trained cell (ROOT/cells/DATASET-DEFENSE-MODEL-seedK of a `kind: roben` run), "
        "or the run's ROOT for every cell."
    ),
]
ExamplesOption = Annotated[
    int | None, typer.Option(help="Test examples measured (default: all of the test split).")
]
SplitOption = Annotated[str, typer.Option(help="The split measured: test, val or an extra set.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@text_app.command("build-encoding")
@friendly_errors
def build_encoding_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="The .json or .npz to write.")],
    vocab: Annotated[int, typer.Option(help="How many of the most frequent words.")] = 100_000,
    gamma: Annotated[float, typer.Option(help="AggClust's weight of fidelity, in [0, 1].")] = 0.3,
    method: Annotated[
        str, typer.Option(help="agglomerative (AggClust) or connected_components (ConnComp).")
    ] = "agglomerative",
    family: Annotated[str, typer.Option(help="Typo family: internal_edit or keyboard.")] = (
        "internal_edit"
    ),
    word_list: Annotated[
        str, typer.Option(help="Debian word list ranked by wordfreq: small, large or huge.")
    ] = "huge",
) -> None:
    """Cluster the most frequent English words into a RobEn encoding."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from stalwart.data.sources.english_words import english_vocabulary
    from stalwart.text import Vocabulary, build_encoding, typo_family

    vocabulary = Vocabulary.from_words(*english_vocabulary(vocab, word_list))
    chosen = typo_family(family)
    with Progress(
        "{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=not console.is_terminal,
    ) as progress:  # fmt: skip
        tasks: dict[str, Any] = {}

        def advance(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done)

        encoding = build_encoding(
            vocabulary, family=chosen, method=method, gamma=gamma, progress=advance
        )  # type: ignore[arg-type]
    encoding.save(output)
    stats = encoding.stats
    console.print(
        f"{stats['words']:,} words → {stats['clusters']:,} clusters ({method}, "
        f"{stats['components']:,} components, {stats['typos']:,} typos) in "
        f"{stats['seconds']:.1f} s; stability {stats['stability']:.4f}, fidelity "
        f"{stats['fidelity']:.4f}; written {output}",
        highlight=False,
        soft_wrap=True,
    )


@text_app.command("encode")
@friendly_errors
def encode_command(
    encoding: Annotated[Path, typer.Argument(help="An encoding file (build-encoding).")],
    text: Annotated[str, typer.Argument(help="The text to encode.")],
    reachable: Annotated[
        bool, typer.Option(help="Also list every encoding a typo of each word can reach.")
    ] = False,
) -> None:
    """Print the encoding of TEXT (what a RobEn model sees)."""
    from stalwart.text import Encoding, tokenize

    loaded = Encoding.load(encoding)
    tokens = tokenize(text)
    console.print(" ".join(loaded.encode_tokens(tokens)), highlight=False, soft_wrap=True)
    if reachable:
        reach = loaded.reachable_many(tokens)
        for token in dict.fromkeys(tokens):
            console.print(f"  {token}: {sorted(reach[token])}", highlight=False, soft_wrap=True)


def _cells(path: Path) -> list[Path]:
    """The cell folders at ``path``: itself, or every cell of a run root."""
    if (path / "cell.json").exists():
        return [path]
    found = sorted(p.parent for p in (path / "cells").glob("*/cell.json"))
    if not found:
        from stalwart.errors import DataError

        raise DataError(
            f"{path} holds no trained RobEn cell: give ROOT/cells/<cell> or the ROOT of a "
            "`kind: roben` run"
        )
    return found


def _measured_split(cell_dir: Path, split: str, examples: int | None) -> tuple[Any, Any, Any]:
    from stalwart.errors import ConfigError
    from stalwart.text.experiment import evaluation_subset, load_cell

    cell, classifier, splits = load_cell(cell_dir)
    sets = {"train": splits.train, **splits.evaluation_sets()}
    if split not in sets:
        raise ConfigError(f"unknown split {split!r}; choose from {sorted(sets)}")
    return cell, classifier, evaluation_subset(sets[split], examples)


def _print(rows: list[dict[str, Any]], columns: list[str], as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(rows))
        return
    table = Table(title_justify="left")
    for column in ["cell", *columns]:
        table.add_column(column, justify="left" if column == "cell" else "right")
    for row in rows:
        table.add_row(row["cell"], *(_cell_text(row[c]) for c in columns))
    console.print(table)


def _cell_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dict):
        return ", ".join(f"{key} {count}" for key, count in value.items())
    return str(value)


@text_app.command("evaluate")
@friendly_errors
def evaluate_command(
    cells: CellArgument,
    split: SplitOption = "test",
    examples: ExamplesOption = None,
    as_json: JsonOption = False,
) -> None:
    """Clean accuracy of trained cells beside the commonest class's share, and what they predict.

    A cell that gives (nearly) every example one class is as robust as a constant classifier:
    no typo moves it. Read `attacked` and `certified` beside `majority` and `predicted`.
    """
    import numpy as np

    from stalwart.text.certify import majority_share, predicted_classes

    rows = []
    for cell_dir in _cells(cells):
        _, classifier, data = _measured_split(cell_dir, split, examples)
        predicted = predicted_classes(classifier, data)
        counts = np.bincount(predicted, minlength=data.n_classes)
        rows.append({
            "cell": cell_dir.name, "examples": len(data),
            "clean": float((predicted == data.y).mean()), "majority": majority_share(data),
            "predicted": {str(name): int(n) for name, n in
                          zip(data.class_names, counts, strict=True)},
        })  # fmt: skip
    _print(rows, ["examples", "clean", "majority", "predicted"], as_json)


@text_app.command("certify")
@friendly_errors
def certify_command(
    cells: CellArgument,
    split: SplitOption = "test",
    examples: ExamplesOption = None,
    cap: Annotated[int, typer.Option(help="Encodings enumerated per example at most.")] = 10_000,
    budget: Annotated[
        int | None, typer.Option(help="At most this many perturbed words (default: every word).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Exact robust accuracy of trained cells over the whole typo family."""
    from stalwart.text.certify import certify

    rows = []
    for cell_dir in _cells(cells):
        _, classifier, data = _measured_split(cell_dir, split, examples)
        found = certify(classifier, data, max_words=budget, cap=cap)
        rows.append({
            "cell": cell_dir.name, "examples": len(data),
            "clean": found.clean_accuracy, "certified": found.robust_accuracy,
            "capped": found.n_capped,
            "method": "additive (exact)" if found.exact_additive else "enumeration",
        })  # fmt: skip
    _print(rows, ["examples", "clean", "certified", "capped", "method"], as_json)


def _with_progress_bar(description: str, attack: Any) -> Any:
    """``attack(progress=...)`` under a bar of the examples whose attack has ended.

    Shown on a terminal only; each round is one word of every example still standing.
    """
    from rich.progress import Progress

    with Progress(console=errors, transient=True, disable=not errors.is_terminal) as bar:
        task = bar.add_task(description, total=None)
        return attack(progress=lambda done, total: bar.update(task, completed=done, total=total))


@text_app.command("attack")
@friendly_errors
def attack_command(
    cells: CellArgument,
    budget: Annotated[
        int | None, typer.Option(help="At most this many words changed (default: every word).")
    ] = None,
    beam_width: Annotated[int, typer.Option(help="Sentences kept after each word.")] = 5,
    candidates: Annotated[
        str, typer.Option(help="long_delete_short_all (the paper's) or all typos.")
    ] = "long_delete_short_all",
    split: SplitOption = "test",
    examples: ExamplesOption = None,
    seed: Annotated[int, typer.Option(help="Seeds word order and sampled typos.")] = 0,
    show: Annotated[int, typer.Option(help="Print this many successful attacks.")] = 0,
    as_json: JsonOption = False,
) -> None:
    """Beam-search typo attack on trained cells (an upper bound on robust accuracy)."""
    from stalwart.text.attack import beam_search_attack
    from stalwart.text.certify import split_tokens

    rows = []
    for cell_dir in _cells(cells):
        _, classifier, data = _measured_split(cell_dir, split, examples)
        attack = partial(beam_search_attack, classifier, data, budget=budget,
                         beam_width=beam_width, kind=candidates, seed=seed)  # fmt: skip
        found = _with_progress_bar(f"attacking {cell_dir.name}", attack)
        rows.append({
            "cell": cell_dir.name, "examples": len(data), "clean": float(found.correct.mean()),
            "attacked": found.attacked_accuracy, "queries": float(found.queries.mean()),
        })  # fmt: skip
        broken = [i for i in range(len(data)) if found.correct[i] and not found.survived[i]]
        clean = split_tokens(data)
        for i in broken[:show]:
            console.print(f"  {' '.join(clean[i])}\n→ {' '.join(found.adversarial[i])}",
                          highlight=False, soft_wrap=True)  # fmt: skip
    _print(rows, ["examples", "clean", "attacked", "queries"], as_json)
