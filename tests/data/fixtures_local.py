"""Tiny local copies of Waterbirds, CelebA, MultiNLI and CivilComments in their standard layouts.

Each writer creates a folder with the real file names and columns, holding ``per_group``
examples of every group in every split, and returns what it wrote as a DataFrame with one row
per example in file order (columns ``split``, ``y``, ``group`` and dataset-specific ones), so
tests can check the loaders against it. Images are solid colours (JPEG stores them almost
exactly): red encodes the label, green the attribute and blue the row, so a test can tell that
every image landed on its own row.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

SPLITS = (0, 1, 2)
SPLIT_NAMES = {0: "train", 1: "val", 2: "test"}

# the 40 attributes in file order (Blond_Hair is the 10th, Male the 21st)
CELEBA_ATTRIBUTES = [
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
]  # fmt: skip

IDENTITIES = ("male", "female", "LGBTQ", "christian", "muslim", "other_religions", "black", "white")


def colour(y: int, attribute: int, row: int) -> tuple[int, int, int]:
    """The solid colour of the image of ``row``: red from y, green from the attribute."""
    return 30 + 180 * y, 30 + 180 * attribute, (7 * row) % 256


def _solid_jpeg(path: Path, rgb: tuple[int, int, int], size: tuple[int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, rgb).save(path, format="JPEG", quality=95)


def _cells(n_classes: int, per_group: int):
    """(split, y, attribute) for every example, grouped by split, shuffled within it."""
    rng = np.random.default_rng(0)
    for split in SPLITS:
        cells = [(y, a) for y in range(n_classes) for a in (0, 1) for _ in range(per_group)]
        for k in rng.permutation(len(cells)):
            yield split, *cells[k]


def write_waterbirds(folder: Path, per_group: int = 8, image_size=(20, 16)) -> pd.DataFrame:
    """``metadata.csv`` and JPEGs in species folders, as in waterbird_complete95_forest2water2."""
    rows = []
    for row, (split, y, place) in enumerate(_cells(2, per_group)):
        species = "001.Black_footed_Albatross" if y else "010.Red_winged_Blackbird"
        filename = f"{species}/{species.split('.')[1]}_{row:04d}_{100 + row}.jpg"
        _solid_jpeg(folder / filename, colour(y, place, row), image_size)
        background = "o/ocean" if place else "b/bamboo_forest"
        rows.append({
            "img_id": row + 1, "img_filename": filename, "y": y, "split": split,
            "place": place, "place_filename": f"/{background}/{row:08d}.jpg",
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.to_csv(folder / "metadata.csv", index=False)
    return frame.assign(group=2 * frame["y"] + frame["place"], attribute=frame["place"])


def write_celeba(
    folder: Path,
    per_group: int = 8,
    image_size=(18, 22),
    official: bool = False,
    kaggle_nested: bool = True,
) -> pd.DataFrame:
    """Kaggle CSVs (or the official .txt files) and aligned-face JPEGs."""
    rng = np.random.default_rng(1)
    images = folder / "img_align_celeba"
    if kaggle_nested:
        images = images / "img_align_celeba"
    rows = []
    for row, (split, y, male) in enumerate(_cells(2, per_group)):
        image_id = f"{row + 1:06d}.jpg"
        _solid_jpeg(images / image_id, colour(y, male, row), image_size)
        values = rng.choice([-1, 1], size=len(CELEBA_ATTRIBUTES))
        values[CELEBA_ATTRIBUTES.index("Blond_Hair")] = 1 if y else -1
        values[CELEBA_ATTRIBUTES.index("Male")] = 1 if male else -1
        attributes = dict(zip(CELEBA_ATTRIBUTES, values.tolist(), strict=True))
        rows.append({"image_id": image_id, **attributes, "partition": split})
    frame = pd.DataFrame(rows)
    attributes = frame[["image_id", *CELEBA_ATTRIBUTES]]
    if official:
        lines = [str(len(frame)), " ".join(CELEBA_ATTRIBUTES)]
        for record in attributes.itertuples(index=False):
            lines.append(record[0] + " " + " ".join(f"{v:2d}" for v in record[1:]))
        (folder / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
        partition = [f"{i} {p}" for i, p in zip(frame["image_id"], frame["partition"], strict=True)]
        (folder / "list_eval_partition.txt").write_text("\n".join(partition) + "\n")
    else:
        attributes.to_csv(folder / "list_attr_celeba.csv", index=False)
        frame[["image_id", "partition"]].to_csv(folder / "list_eval_partition.csv", index=False)
    y = (frame["Blond_Hair"] == 1).astype(int)
    male = (frame["Male"] == 1).astype(int)
    return frame.assign(split=frame["partition"], y=y, attribute=male, group=2 * y + male)


MNLI_LABELS = ("contradiction", "entailment", "neutral")
_NEGATED = ("Nobody saw the {n} boats.", "The {n} dogs never sleep!", "There is no {n}th cat.")
_PLAIN = (
    'The "{n} boats" sailed.',
    "Several dogs sleep {n} hours.",
    "A {n}th cat is nothing-like.",
)


def write_multinli(folder: Path, per_group: int = 8, negation_column: bool = True) -> pd.DataFrame:
    """``metadata_random.csv`` (group DRO) and GLUE ``train/dev_matched/dev_mismatched.tsv``.

    Examples are spread over the three TSVs in order and the metadata ``split`` is a random
    re-split, as in group DRO. ``nothing-like`` is not a negation once punctuation is removed
    (it becomes ``nothinglike``), and an unbalanced quote tests the unquoted TSV reading.
    """
    cells = list(_cells(3, per_group))
    rng = np.random.default_rng(2)
    rng.shuffle(cells)  # the metadata split is a random re-split of the pooled TSV rows
    rows = []
    for row, (split, y, negation) in enumerate(cells):
        templates = _NEGATED if negation else _PLAIN
        rows.append({
            "sentence1": f"Premise {row} about {MNLI_LABELS[y]} things, \"quoted",
            "sentence2": templates[row % 3].format(n=row),
            "gold_label": MNLI_LABELS[y], "y": y, "attribute": negation, "split": split,
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    n = len(frame)
    bounds = {
        "train.tsv": (0, n // 2),
        "dev_matched.tsv": (n // 2, 3 * n // 4),
        "dev_mismatched.tsv": (3 * n // 4, n),
    }
    parses = ["sentence1_binary_parse", "sentence2_binary_parse"]
    parses += ["sentence1_parse", "sentence2_parse"]
    for name, (start, stop) in bounds.items():
        labels = ["label1"] if name == "train.tsv" else [f"label{k}" for k in range(1, 6)]
        header = ["index", "promptID", "pairID", "genre", *parses, "sentence1", "sentence2"]
        header += [*labels, "gold_label"]
        with open(folder / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(
                handle, delimiter="\t", quoting=csv.QUOTE_NONE, quotechar=None, lineterminator="\n"
            )
            writer.writerow(header)
            for k in range(start, stop):
                record = frame.iloc[k]
                ids = [k - start, 1000 + k, f"{1000 + k}e", "fiction"]
                texts = [
                    "( a )",
                    "( b )",
                    "(ROOT a)",
                    "(ROOT b)",
                    record.sentence1,
                    record.sentence2,
                ]
                writer.writerow(
                    [*ids, *texts, *[record.gold_label] * len(labels), record.gold_label]
                )
    metadata = pd.DataFrame({"gold_label": frame["y"], "split": frame["split"]})
    if negation_column:
        metadata.insert(1, "sentence2_has_negation", frame["attribute"])
    # group DRO keeps the pandas index of the pooled jsonl rows, with gaps where '-' rows fell
    metadata.index = np.arange(n) + 5 * (np.arange(n) >= n // 2)
    metadata.to_csv(folder / "metadata_random.csv")
    return frame.assign(group=2 * frame["y"] + frame["attribute"])


def write_civilcomments(folder: Path, per_group: int = 8) -> pd.DataFrame:
    """WILDS ``all_data_with_identities.csv`` with fractional scores and missing identities."""
    # one cycle over the identities per (split, label): every identity meets both labels
    cycles = {}
    rows = []
    for row, (split, y, any_identity) in enumerate(_cells(2, per_group)):
        scores = dict.fromkeys(IDENTITIES, 0.0)
        if any_identity:
            cycle = cycles.setdefault((split, y), itertools.cycle(range(len(IDENTITIES))))
            first = next(cycle)
            scores[IDENTITIES[first]] = 0.5 if row % 2 else 0.8  # 0.5 counts as mentioned
            if row % 3 == 0:  # overlapping identities: one comment in two evaluation groups
                scores[IDENTITIES[(first + 3) % len(IDENTITIES)]] = 0.6
        elif row % 4 == 1:
            scores[IDENTITIES[row % len(IDENTITIES)]] = 0.3  # below the threshold
        elif row % 4 == 2:
            scores = dict.fromkeys(IDENTITIES, np.nan)  # identities not annotated
        text = f"comment {row} " + ("you idiot" if y else "thanks, nice")
        toxicity = (0.5 if row % 2 else 0.9) if y else 0.1 * (row % 5)
        rows.append({
            "id": 239000 + row, "comment_text": text, "split": SPLIT_NAMES[split],
            "toxicity": toxicity, "severe_toxicity": 0.0, "obscene": 0.0, "sexual_explicit": 0.0,
            "identity_attack": 0.0, "insult": 0.0, "threat": 0.0, **scores,
            "identity_any": 1.0 if any_identity else 0.0,
            "y": y, "attribute": any_identity, "split_id": split,
        })  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.loc[frame.index[0], "comment_text"] = np.nan  # an empty comment
    written = frame.drop(columns=["y", "attribute", "split_id"])
    written.to_csv(folder / "all_data_with_identities.csv")  # WILDS keeps a leading index column
    return frame.assign(split=frame["split_id"], group=2 * frame["y"] + frame["attribute"])


WRITERS = {
    "waterbirds": write_waterbirds,
    "celeba": write_celeba,
    "multinli": write_multinli,
    "civilcomments": write_civilcomments,
}


def write_local_copy(name: str, folder: Path, **options) -> pd.DataFrame:
    """Write the fixture copy of ``name`` into ``folder`` (created) and return what it holds."""
    folder.mkdir(parents=True, exist_ok=True)
    return WRITERS[name](folder, **options)
