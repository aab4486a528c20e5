"""One RobEn comparison cell: a defense, a classifier and a seed on one text dataset.

The paper's comparison (Jones et al., arXiv 2005.01229, Table 2) trains the same classifier
four ways and measures each on clean text, under the beam-search typo attack, and, where the
model sees only encodings, with the exact certificate:

- ``standard``: raw tokens, plain training;
- ``augmentation``: raw tokens, trained on each example plus ``k`` random-typo copies;
- ``connected_components`` (ConnComp) and ``agglomerative`` (AggClust): the model sees only
  the RobEn encoding of the text.

A cell's folder holds ``cell.json`` (what it is), ``classifier/`` (the trained model) and
``results.json``; ``stalwart text certify`` and ``stalwart text attack`` read it back.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from stalwart.data.text import TextSplit, TextSplits
from stalwart.errors import ConfigError, DataError, StalwartError, closest
from stalwart.io import write_json
from stalwart.text.attack import beam_search_attack, check_bound
from stalwart.text.certify import (
    DEFAULT_CAP,
    certify,
    majority_share,
    predicted_classes,
    split_tokens,
)
from stalwart.text.encoding import Encoding, IdentityEncoding, TokenEncoder
from stalwart.text.perturb import real_misspellings, typo_augment
from stalwart.text.typos import TypoFamily

DEFENSES = ("standard", "augmentation", "connected_components", "agglomerative")
ENCODED = ("connected_components", "agglomerative")
DATASETS = ("tweets", "drug_reviews", "glue:TASK")
PROGRESS_SECONDS = 60.0  # between the attack's progress lines
CELL_FILE = "cell.json"


def load_text_data(
    dataset: str, seed: int, *, folder: str | None = None, max_examples: int | None = None
) -> TextSplits:
    """The splits of ``tweets``, ``drug_reviews`` or ``glue:TASK`` (a local GLUE copy)."""
    family, _, task = dataset.partition(":")
    if dataset == "tweets":
        from stalwart.data.sources.tweets import tweets

        return tweets(seed, max_examples=max_examples)
    if dataset == "drug_reviews":
        from stalwart.data.sources.drug_reviews import drug_reviews

        return drug_reviews(seed)
    if family == "glue" and task:
        from stalwart.data.sources.glue import glue

        return glue(task, folder, seed=seed, max_examples=max_examples)
    raise ConfigError(
        f"unknown text dataset {dataset!r}{closest(dataset, DATASETS)}; choose from "
        f"{list(DATASETS)}"
    )


def check_defense(defense: str) -> str:
    """``defense`` if it is one of ``DEFENSES``; else an error listing them."""
    if defense not in DEFENSES:
        raise ConfigError(
            f"unknown defense {defense!r}{closest(defense, DEFENSES)}; choose from {list(DEFENSES)}"
        )
    return defense


@dataclass(frozen=True)
class Cell:
    """What one cell trains and measures (everything that decides its results)."""

    dataset: str
    defense: str
    model: str
    seed: int
    encoding: str | None = None  # the encoding file, for the encoded defenses
    data: dict[str, Any] = field(default_factory=dict)  # folder, max_examples
    train: dict[str, Any] = field(default_factory=dict)  # fit_text_classifier's settings
    evaluate: dict[str, Any] = field(default_factory=dict)  # examples, cap, beam_width, ...
    augment_copies: int = 4

    def folder_name(self) -> str:
        """``DATASET-DEFENSE-MODEL-seedK``, a plain folder name."""
        return f"{self.dataset.replace(':', '-')}-{self.defense}-{self.model}-seed{self.seed}"


def cell_encoder(cell: Cell, family: TypoFamily | None = None) -> TokenEncoder:
    """The cell's encoder: its saved RobEn encoding, or the identity for raw-token defenses."""
    if cell.defense in ENCODED:
        if cell.encoding is None:
            raise ConfigError(f"defense {cell.defense!r} needs an encoding file")
        return Encoding.load(cell.encoding)
    return IdentityEncoding(family)


def evaluation_subset(split: TextSplit, examples: int | None) -> TextSplit:
    """At most ``examples`` test examples, the same for every seed and defense."""
    if examples is None or examples >= len(split):
        return split
    positions = np.sort(np.random.default_rng(0).permutation(len(split))[:examples])
    return split.subset(positions)


def train_cell(cell: Cell, folder: Path, cache_dir: Path | None = None) -> Any:
    """Train the cell's classifier, save it with ``cell.json`` under ``folder``, return it.

    ``cache_dir``: for ``minilm``, where the sentence embeddings of the dataset's clean text
    are kept per encoding, so that every seed and defense embeds each sentence once.
    """
    from stalwart.text.training import encode_split, fit_text_classifier

    # cell.json is written last, after the classifier: until then the folder holds no cell.
    (folder / CELL_FILE).unlink(missing_ok=True)
    splits = load_text_data(cell.dataset, cell.seed, **cell.data)
    encoder = cell_encoder(cell)
    train = splits.train
    if cell.defense == "augmentation":
        train = typo_augment(train, encoder.family, k=cell.augment_copies, seed=cell.seed)
    featurizer = None
    if cell.model == "minilm" and cache_dir is not None:
        from stalwart.text.sentence_encoder import MiniLMFeaturizer

        encoding = Path(cell.encoding).stem if cell.encoding else "raw"
        size = cell.data.get("max_examples") or "all"
        name = f"minilm-{cell.dataset.replace(':', '-')}-{size}-{encoding}.npz"
        featurizer = MiniLMFeaturizer(cache_dir / name)
    classifier = fit_text_classifier(
        encode_split(train, encoder), train,
        encode_split(splits.val, encoder), splits.val,
        encoder=encoder, model=cell.model, seed=cell.seed, featurizer=featurizer, **cell.train,
    )  # fmt: skip
    if featurizer is not None and cell.defense != "augmentation":
        # random-typo copies differ per seed: kept out of the shared file, which stays small
        featurizer.save_cache()
    classifier.save(folder / "classifier")
    write_json(folder / CELL_FILE, asdict(cell))
    return classifier


def trained_classifier(cell: Cell, folder: Path) -> Any | None:
    """The classifier an interrupted run of exactly ``cell`` trained in ``folder``, else None.

    ``train_cell`` removes ``cell.json`` before training and writes it after the classifier,
    so a matching ``cell.json`` means the classifier beside it is whole and is this cell's.
    """
    from stalwart.text.training import load_text_classifier

    try:
        saved = json.loads((folder / CELL_FILE).read_text())
    except (OSError, ValueError):
        return None
    if saved != json.loads(json.dumps(asdict(cell))):
        return None
    try:
        return load_text_classifier(folder / "classifier", cell_encoder(cell))
    except StalwartError:
        return None


def load_cell(folder: str | Path) -> tuple[Cell, Any, TextSplits]:
    """A trained cell: its settings, its classifier and its data splits.

    Raises:
        DataError: ``folder`` holds no trained cell (no ``cell.json`` or ``classifier/``).
    """
    from stalwart.text.training import load_text_classifier

    folder = Path(folder)
    if not (folder / CELL_FILE).is_file() or not (folder / "classifier").is_dir():
        raise DataError(
            f"{folder} is not a trained RobEn cell (it needs cell.json and classifier/); give "
            "a folder under ROOT/cells/ of a `kind: roben` run"
        )
    try:
        cell = Cell(**json.loads((folder / CELL_FILE).read_text()))
    except (OSError, ValueError, TypeError) as error:
        raise DataError(f"{folder / CELL_FILE} is damaged ({error}); run the cell again") from None
    cell = with_encoding_found(cell, folder)
    encoder = cell_encoder(cell)
    classifier = load_text_classifier(folder / "classifier", encoder)
    return cell, classifier, load_text_data(cell.dataset, cell.seed, **cell.data)


def with_encoding_found(cell: Cell, folder: Path) -> Cell:
    """``cell`` with its encoding path usable from here.

    A cell records its encoding file as the run was given it, often relative to the folder
    the run was started in (``runs/roben_tweets/encodings/...``). Read from elsewhere, that
    folder is found as the ancestor of the cell's own folder that holds the file.
    """
    path = Path(cell.encoding) if cell.encoding else None
    if path is None or path.is_absolute() or path.is_file():
        return cell
    for base in Path(folder).resolve().parents:
        if (base / path).is_file():
            return replace(cell, encoding=str(base / path))
    return cell


def _attack_progress(say: Callable[[str], None]) -> Callable[[int, int], None]:
    """The attack's ``progress`` hook: a line now and then, and one when it ends."""
    start = last = time.perf_counter()

    def progress(finished: int, total: int) -> None:
        nonlocal last
        now = time.perf_counter()
        if finished == total or now - last >= PROGRESS_SECONDS:
            last = now
            say(f"attack: {finished} of {total} attacks finished ({now - start:.0f} s)")

    return progress


def evaluate_classifier(
    classifier: Any,
    split: TextSplit,
    *,
    certify_examples: bool = True,
    cap: int = DEFAULT_CAP,
    beam_width: int = 5,
    budget: int | None = None,
    seed: int = 0,
    misspellings: dict[str, tuple[str, ...]] | None = None,
    log: Callable[[str], None] | None = None,
    attack_checkpoint: Path | None = None,
) -> dict[str, Any]:
    """Clean, attacked, certified and misspelled accuracy, and the commonest class's share.

    Accuracy on real misspellings is measured given ``misspellings``. Asserts certified <=
    attacked example by example: a certified example the attack breaks would mean an unsound
    certificate. ``log`` hears a line of progress at most every
    ``PROGRESS_SECONDS`` during the attack (which can take an hour on a transformer) and one
    after each stage. ``attack_checkpoint``: where the attack keeps its scores so that an
    interrupted evaluation resumes (``beam_search_attack``).
    """
    say = log or (lambda line: None)
    start = time.perf_counter()
    attacked = beam_search_attack(classifier, split, budget=budget, beam_width=beam_width,
                                  seed=seed, progress=_attack_progress(say),
                                  checkpoint=attack_checkpoint)  # fmt: skip
    attack_seconds = time.perf_counter() - start
    found: dict[str, Any] = {
        "examples": len(split),
        # What predicting the commonest class scores: a classifier near it may be robust only
        # because it hardly depends on its input.
        "majority_accuracy": majority_share(split),
        "clean_accuracy": float(attacked.correct.mean()),
        "attacked_accuracy": attacked.attacked_accuracy,
        "attack_queries": float(attacked.queries.mean()),
        "attack_seconds": round(attack_seconds, 2),
    }
    if certify_examples:
        start = time.perf_counter()
        certificate = certify(classifier, split, max_words=budget, cap=cap)
        check_bound(certificate.robust, attacked.survived)
        found |= {
            "certified_accuracy": certificate.robust_accuracy,
            "capped": certificate.n_capped,
            "certified_exactly_additive": certificate.exact_additive,
            "median_encodings": float(np.median(certificate.encodings)),
            "certify_seconds": round(time.perf_counter() - start, 2),
        }
        say(f"certified {certificate.robust_accuracy:.3f} in {found['certify_seconds']:.0f} s")
    if misspellings is not None:
        misspelled, changed = real_misspellings(split, misspellings, seed=seed)
        predictions = predicted_classes(classifier, misspelled)
        found |= {
            "codespell_accuracy": float((predictions == misspelled.y).mean()),
            "codespell_words_changed": changed,
        }
    encoder = classifier.encoder
    if isinstance(encoder, Encoding):
        unknown, unstable = encoder.oov_instability(t for ts in split_tokens(split) for t in ts)
        found |= {"oov_words": unknown, "oov_unstable": unstable}
    return found
