"""RobEn encodings: what a word and its typos encode to, stability, saving, and bad input."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from stalwart.errors import ConfigError, DataError
from stalwart.text import OOV, Encoding, TypoFamily, Vocabulary, build_encoding, tokenize


def test_every_typo_of_every_word_encodes_to_an_encoding_the_certifier_enumerates(
    aggclust: Encoding,
) -> None:
    # The property exact certification rests on: reachable(w) holds encode(t) for all t in B(w).
    words = [*aggclust.vocabulary.words, "moive", "zzyzx", "filmm"]
    reach = aggclust.reachable_many(words)
    for word in words:
        for typo in aggclust.family.typos(word):
            assert aggclust.encode_token(typo) in reach[word], (word, typo)


def test_connected_components_are_perfectly_stable(conncomp: Encoding) -> None:
    reach = conncomp.reachable_many(conncomp.vocabulary.words)
    assert all(len(reach[w]) == 1 for w in conncomp.vocabulary.words)
    assert conncomp.stats["stability"] == pytest.approx(1.0)


def test_aggclust_splits_components_and_trades_stability_for_fidelity(
    aggclust: Encoding, conncomp: Encoding
) -> None:
    assert aggclust.n_clusters > conncomp.n_clusters
    assert aggclust.stats["fidelity"] < conncomp.stats["fidelity"]
    assert aggclust.stats["stability"] >= conncomp.stats["stability"]


def test_a_typo_maps_to_its_most_frequent_word_and_a_word_to_itself(aggclust: Encoding) -> None:
    index = aggclust.vocabulary.index
    # "bet" is not a word here: a typo of best (substitute) ... and of bat, bed, but, bit.
    owners = [w for w in aggclust.vocabulary.words if "bet" in aggclust.family.typos(w)]
    assert aggclust.owner("bet") == min(index[w] for w in owners)
    # "bat" is a typo of "but" (more frequent) yet a vocabulary word: it stays its own owner.
    assert "bat" in aggclust.family.typos("but")
    assert aggclust.owner("bat") == index["bat"]
    cluster_rep = aggclust.representatives[aggclust.clusters[index["bat"]]]
    assert aggclust.encode_token("bat") == cluster_rep


def test_unknown_words_are_oov_and_non_words_pass_through(aggclust: Encoding) -> None:
    assert aggclust.encode_token("zzyzx") == OOV
    assert aggclust.encode("The film, 10/10!").split() == [
        aggclust.encode_token("the"), aggclust.encode_token("film"), ",", "10", "/", "10", "!"
    ]  # fmt: skip
    unknown, unstable = aggclust.oov_instability(["zzyzx", "filmx", "the", "10"])
    assert unknown == 2  # "filmx" is no typo of a vocabulary word (last letter differs)
    assert 0 <= unstable <= unknown


def test_oov_words_can_be_unstable_as_the_paper_says(aggclust: Encoding) -> None:
    unknown, unstable = aggclust.oov_instability(["thhhe"])
    assert unknown == 1 and unstable == 1  # deleting an h reaches "thhe", a typo of "the"


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_save_and_load_round_trip(aggclust: Encoding, tmp_path, suffix: str) -> None:
    path = aggclust.save(tmp_path / f"enc{suffix}")
    loaded = Encoding.load(path, vocabulary=aggclust.vocabulary)
    assert loaded.vocabulary.words == aggclust.vocabulary.words
    np.testing.assert_array_equal(loaded.clusters, aggclust.clusters)
    assert loaded.family == aggclust.family and loaded.gamma == aggclust.gamma
    text = "the moive was terible but fun"
    assert loaded.encode(text) == aggclust.encode(text)


def test_a_damaged_or_foreign_encoding_file_is_refused(aggclust: Encoding, tmp_path) -> None:
    path = aggclust.save(tmp_path / "enc.json")
    values = json.loads(path.read_text())
    values["words"][0] = "tho"  # edited by hand: the checksum no longer matches
    path.write_text(json.dumps(values))
    with pytest.raises(DataError, match="checksum"):
        Encoding.load(path)
    path.write_text("{not json")
    with pytest.raises(DataError, match="not a readable encoding"):
        Encoding.load(path)
    path.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(DataError, match="not a stalwart RobEn encoding"):
        Encoding.load(path)
    with pytest.raises(DataError, match="no encoding file"):
        Encoding.load(tmp_path / "missing.json")
    other = Vocabulary.from_words(["the", "movie"], [2.0, 1.0])
    good = aggclust.save(tmp_path / "good.json")
    with pytest.raises(DataError, match="another vocabulary"):
        Encoding.load(good, vocabulary=other)


def test_newer_format_versions_are_refused(aggclust: Encoding, tmp_path) -> None:
    path = aggclust.save(tmp_path / "enc.json")
    values = json.loads(path.read_text())
    values["version"] = 99
    path.write_text(json.dumps(values))
    with pytest.raises(DataError, match="version 99"):
        Encoding.load(path)


@pytest.mark.parametrize(
    ("words", "frequencies", "message"),
    [
        ([], [], "empty"),
        (["the", "movie", "the"], [3, 2, 1], "twice"),
        (["the", "café"], [2, 1], "lowercase ASCII"),
        (["the", "Movie"], [2, 1], "lowercase ASCII"),
        (["the", "movie"], [2, 0], "finite and positive"),
        (["the", "movie"], [2, float("nan")], "finite and positive"),
        (["the", "movie"], [2], "frequencies"),
    ],
)
def test_bad_vocabularies_get_a_clear_message(words, frequencies, message: str) -> None:
    with pytest.raises(DataError, match=message):
        build_encoding(words, frequencies)


@pytest.mark.parametrize("gamma", [-0.1, 1.5, float("nan"), "0.3", True])
def test_gamma_outside_zero_one_is_refused(vocabulary: Vocabulary, gamma) -> None:
    with pytest.raises(ConfigError, match=r"gamma must be a number in \[0, 1\]"):
        build_encoding(vocabulary, gamma=gamma)


def test_unknown_method_lists_the_choices(vocabulary: Vocabulary) -> None:
    with pytest.raises(ConfigError, match="did you mean 'agglomerative'"):
        build_encoding(vocabulary, method="agglomerate")  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "   \n", "🙂🙂"])
def test_empty_text_gets_a_clear_message(aggclust: Encoding, text: str) -> None:
    with pytest.raises(DataError, match="holds no word to encode"):
        aggclust.encode(text)


def test_non_ascii_letters_are_folded_and_other_characters_dropped() -> None:
    assert tokenize("Café NAÏVE 🙂 résumé's") == ["cafe", "naive", "resume", "'", "s"]
    with pytest.raises(DataError, match="must be a string"):
        tokenize(None)  # type: ignore[arg-type]


def test_the_encoding_of_a_sentence_is_one_of_its_enumerated_encodings(
    aggclust: Encoding,
) -> None:
    rng = random.Random(0)
    family = TypoFamily.internal_edit()
    for _ in range(50):
        tokens = rng.sample(aggclust.vocabulary.words, 4)
        typo = [rng.choice(sorted(family.typos(t))) for t in tokens]
        reach = aggclust.reachable_many(tokens)
        encoded = aggclust.encode_tokens(typo)
        assert all(e in reach[t] for e, t in zip(encoded, tokens, strict=True))
