"""Exact certification over the typo family, the beam-search attack, and their order."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
import torch

from stalwart.data.text import TextSplit
from stalwart.errors import ConfigError, DataError
from stalwart.text import Encoding, IdentityEncoding, TypoFamily
from stalwart.text import scores as scores_module
from stalwart.text.attack import beam_search_attack, candidates, check_bound
from stalwart.text.certify import certify, count_encodings
from stalwart.text.perturb import random_typos, real_misspellings, typo_augment


def _split(texts: list[str], labels: list[int]) -> TextSplit:
    classes = tuple(f"class {k}" for k in range(max(2, max(labels) + 1)))
    return TextSplit(tuple(texts), np.array(labels), np.zeros(len(texts), dtype=np.int64),
                     classes, ("all",), "toy")  # fmt: skip


def _sentences(encoding: Encoding, n: int, length: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = [*encoding.vocabulary.words, "zzyzx", "moive"]
    return [" ".join(rng.choice(words) for _ in range(length)) for _ in range(n)]


def _labelled(classifier, texts: list[str]) -> TextSplit:
    """Texts labelled with the classifier's own clean prediction, so each starts correct."""
    encoded = [classifier.encoder.encode_tokens(t.split()) for t in texts]
    labels = classifier.logits(encoded).argmax(1).tolist()
    return _split(texts, labels)


def _brute_force_robust(classifier, text: str, label: int, family: TypoFamily) -> bool:
    """Right on every combination of raw typos (the definition certification must match)."""
    options = [sorted(family.typos(t)) for t in text.split()]
    combos = [list(c) for c in itertools.product(*options)]
    encoded = [classifier.encoder.encode_tokens(c) for c in combos]
    return bool((classifier.logits(encoded).argmax(1) == label).all())


@pytest.mark.parametrize("model", ["bag", "max"])
def test_certificate_equals_brute_force_over_every_raw_typo(
    aggclust: Encoding, toy_models, model: str
) -> None:
    # Two short words, one of them unstable (a typo moves it to another cluster, or an OOV
    # word onto a vocabulary word's typo): the raw typo family is small enough to try it all.
    rng = random.Random(1)
    short = [w for w in aggclust.vocabulary.words if len(w) <= 3]
    unstable = ["pin", "bst", "fln", "gd"]
    assert all(len(aggclust.reachable(w)) > 1 for w in unstable)
    texts = [f"{rng.choice(unstable)} {rng.choice(short)}" for _ in range(24)]
    classifier = toy_models[model](aggclust, seed=3)
    data = _labelled(classifier, texts)
    found = certify(classifier, data)
    expected = [_brute_force_robust(classifier, t, int(y), aggclust.family)
                for t, y in zip(data.texts, data.y, strict=True)]  # fmt: skip
    np.testing.assert_array_equal(found.robust, expected)
    assert 0 < found.robust.sum() < len(texts)  # both outcomes occur: the test can fail


def test_additive_bound_agrees_with_enumeration(toy_models, aggclust: Encoding) -> None:
    BagClassifier, _MaxClassifier = toy_models["bag"], toy_models["max"]
    texts = _sentences(aggclust, 60, 5, seed=2)
    exact = BagClassifier(aggclust, n_classes=3, seed=5)
    data = _labelled(exact, texts)
    enumerate_only = BagClassifier(aggclust, n_classes=3, seed=5, additive=False)
    fast, slow = certify(exact, data), certify(enumerate_only, data, cap=10**9)
    assert fast.exact_additive and not slow.exact_additive
    np.testing.assert_array_equal(fast.robust, slow.robust)
    np.testing.assert_array_equal(fast.correct, slow.correct)
    assert 0 < fast.robust.sum() < len(texts)


@pytest.mark.parametrize("budget", [1, 2])
def test_word_budget_agrees_between_additive_and_enumeration(
    toy_models, aggclust: Encoding, budget: int
) -> None:
    BagClassifier, _MaxClassifier = toy_models["bag"], toy_models["max"]
    texts = _sentences(aggclust, 60, 5, seed=4)
    exact = BagClassifier(aggclust, n_classes=2, seed=7)
    data = _labelled(exact, texts)
    slow = BagClassifier(aggclust, n_classes=2, seed=7, additive=False)
    a = certify(exact, data, max_words=budget)
    b = certify(slow, data, max_words=budget, cap=10**9)
    np.testing.assert_array_equal(a.robust, b.robust)
    unlimited = certify(exact, data)
    assert (unlimited.robust <= a.robust).all()  # a smaller budget never certifies less


def test_count_encodings_with_and_without_a_budget() -> None:
    assert count_encodings([3, 1, 4], None) == 12
    # at most one change: 1 + 2 + 0 + 3; at most two: + 2·3
    assert count_encodings([3, 1, 4], 1) == 6
    assert count_encodings([3, 1, 4], 2) == 12
    assert count_encodings([3, 1, 4], 5) == 12


def test_examples_past_the_cap_count_as_not_robust(toy_models, aggclust: Encoding) -> None:
    _BagClassifier, MaxClassifier = toy_models["bag"], toy_models["max"]
    texts = _sentences(aggclust, 30, 6, seed=5)
    classifier = MaxClassifier(aggclust, seed=1)
    data = _labelled(classifier, texts)
    full = certify(classifier, data, cap=10**9)
    capped = certify(classifier, data, cap=2)
    assert capped.n_capped == int((full.encodings > 2).sum()) > 0
    assert not capped.robust[capped.capped].any()
    np.testing.assert_array_equal(capped.robust[~capped.capped], full.robust[~capped.capped])


def test_a_raw_token_model_is_certified_exactly_when_additive(
    toy_models, family: TypoFamily
) -> None:
    BagClassifier, _MaxClassifier = toy_models["bag"], toy_models["max"]
    classifier = BagClassifier(IdentityEncoding(family), seed=2)
    data = _labelled(classifier, ["the cat", "a good film", "it was bad"])
    found = certify(classifier, data)
    assert found.exact_additive and found.encodings.min() > 100  # hundreds of raw typos


@pytest.mark.parametrize("encoder_kind", ["aggclust", "identity"])
def test_certified_never_above_attacked(toy_models, aggclust: Encoding, encoder_kind: str) -> None:
    BagClassifier, _MaxClassifier = toy_models["bag"], toy_models["max"]
    encoder = aggclust if encoder_kind == "aggclust" else IdentityEncoding(aggclust.family)
    classifier = BagClassifier(encoder, seed=11)
    data = _labelled(classifier, _sentences(aggclust, 80, 4, seed=6))
    attacked = beam_search_attack(classifier, data, kind="all")
    certified = certify(classifier, data)
    check_bound(certified.robust, attacked.survived)
    assert certified.robust_accuracy <= attacked.attacked_accuracy <= 1.0
    assert attacked.attacked_accuracy < 1.0  # the attack finds something


def test_check_bound_raises_on_an_unsound_certificate() -> None:
    with pytest.raises(AssertionError, match="unsound"):
        check_bound(np.array([True, False]), np.array([False, False]))


def test_the_attack_finds_a_flip_when_one_typo_flips_the_label(family: TypoFamily) -> None:
    class Keyword:
        """Positive iff the token 'good' is present: deleting its 'o' flips it."""

        encoder = IdentityEncoding(family)

        def logits(self, encoded, batch_size=512):
            return torch.tensor([[0.0, 1.0] if "good" in ts else [1.0, 0.0] for ts in encoded])

    data = _split(["a good film", "the good plot"], [1, 1])
    found = beam_search_attack(Keyword(), data)
    assert not found.survived.any()
    assert all("good" not in tokens for tokens in found.adversarial)
    assert all(q > 1 for q in found.queries)


def test_long_delete_short_all_candidates(family: TypoFamily) -> None:
    rng = random.Random(0)
    long = candidates("terrible", family, "long_delete_short_all", rng)
    assert set(long) == {"trrible", "teribl e".replace(" ", ""), "terible", "terrble",
                         "terrile", "terribe"}  # fmt: skip
    short = candidates("film", family, "long_delete_short_all", rng)
    assert len(short) == 4 and set(short) <= family.typos("film") - {"film"}
    assert candidates("a", family, "all", rng) == []


def test_attack_refuses_bad_settings(toy_models, aggclust: Encoding) -> None:
    BagClassifier, _MaxClassifier = toy_models["bag"], toy_models["max"]
    classifier = BagClassifier(aggclust)
    data = _split(["the film"], [0])
    with pytest.raises(ConfigError, match="beam_width"):
        beam_search_attack(classifier, data, beam_width=0)
    with pytest.raises(ConfigError, match="budget"):
        beam_search_attack(classifier, data, budget=0)
    with pytest.raises(ConfigError, match="candidate set"):
        beam_search_attack(classifier, data, kind="some")  # type: ignore[arg-type]


def test_augmentation_and_real_misspellings(family: TypoFamily) -> None:
    data = _split(["the movie was terrible", "a great film"], [0, 1])
    augmented = typo_augment(data, family, k=4, seed=0)
    assert len(augmented) == 10 and augmented.texts[:2] == data.texts
    for copy, original in zip(augmented.texts[2:], data.texts * 4, strict=True):
        assert all(
            t in family.typos(o) for t, o in zip(copy.split(), original.split(), strict=True)
        )
    assert random_typos(data, family, seed=1).texts != data.texts
    misspelled, changed = real_misspellings(data, {"terrible": ("terible",), "film": ("flim",)})
    assert misspelled.texts == ("the movie was terible", "a great flim")
    assert changed == pytest.approx(2 / 7)
    assert math.isclose(sum(len(t.split()) for t in data.texts), 7)


def test_the_attack_takes_the_same_path_with_additive_shortcuts(
    toy_models, aggclust: Encoding
) -> None:
    # The bag's attack swaps one contribution per trial instead of re-running the model; it
    # must find exactly what the full re-evaluation finds.
    bag = toy_models["bag"]
    fast, slow = bag(aggclust, seed=13), bag(aggclust, seed=13, additive=False)
    data = _labelled(fast, _sentences(aggclust, 60, 5, seed=9))
    a = beam_search_attack(fast, data, kind="all", seed=3)
    b = beam_search_attack(slow, data, kind="all", seed=3)
    np.testing.assert_array_equal(a.survived, b.survived)
    assert a.adversarial == b.adversarial
    assert 0 < a.survived.sum() < len(data)
    assert fast.calls == 2 * len(data)  # the labels and the clean pass: no trial reached it
    assert slow.calls > len(data)


def test_the_attack_scores_every_example_together_and_each_sentence_once(
    toy_models, aggclust: Encoding
) -> None:
    # A model that is not additive is queried once per round (one word of every example), and
    # never for a sentence it has scored: behind AggClust most typos encode as the word.
    model = toy_models["bag"](aggclust, seed=13, additive=False)
    data = _labelled(model, _sentences(aggclust, 60, 5, seed=9))
    calls: list[list[tuple[str, ...]]] = []
    scores = model.logits

    def logits(encoded, batch_size=512):
        calls.append([tuple(e) for e in encoded])
        return scores(encoded, batch_size)

    model.logits = logits
    found = beam_search_attack(model, data, kind="all", seed=3)
    assert 0 < found.survived.sum() < len(data)
    assert len(calls) <= 1 + 5  # the clean sentences, then one call per word position
    rows = [row for call in calls for row in call]
    assert len(rows) == len(set(rows))
    assert found.queries.sum() > 2 * len(rows)


def test_the_attack_reports_its_progress_round_by_round(toy_models, aggclust: Encoding) -> None:
    model = toy_models["bag"](aggclust, seed=13, additive=False)
    data = _labelled(model, _sentences(aggclust, 60, 5, seed=9))
    heard: list[tuple[int, int]] = []
    found = beam_search_attack(model, data, kind="all", seed=3,
                               progress=lambda *seen: heard.append(seen))  # fmt: skip
    attacked = int(found.correct.sum())
    assert heard[-1] == (attacked, attacked)  # every attack finished at the end
    assert {total for _, total in heard} == {attacked}
    finished = [done for done, _ in heard]
    assert finished == sorted(finished) and finished[0] < attacked  # one line per round
    assert 2 <= len(heard) <= 1 + 5


class _Killed(Exception):
    """The process dying in the middle of an attack."""


def _counted(model, kill_after: int | None = None) -> list[int]:
    """Count the sentences of each call of ``model.logits``; raise at call ``kill_after + 1``."""
    calls: list[int] = []
    logits = model.logits

    def counting(encoded, batch_size=512):
        if kill_after is not None and len(calls) >= kill_after:
            raise _Killed
        calls.append(len(encoded))
        return logits(encoded, batch_size)

    model.logits = counting
    return calls


def _same(a, b) -> None:
    np.testing.assert_array_equal(a.survived, b.survived)
    np.testing.assert_array_equal(a.queries, b.queries)
    assert a.adversarial == b.adversarial


def test_an_interrupted_attack_resumes_from_its_checkpoint(
    toy_models, aggclust: Encoding, tmp_path, monkeypatch
) -> None:
    """Killed after two rounds, the attack run again replays them from the checkpoint (no
    sentence scored twice) and ends where an uninterrupted run ends."""
    monkeypatch.setattr(scores_module, "SAVE_EVERY_SECONDS", 0.0)  # a checkpoint every round
    bag = toy_models["bag"]
    texts = _sentences(aggclust, 60, 5, seed=9)
    model = bag(aggclust, seed=13, additive=False)
    data = _labelled(model, texts)
    reference_calls = _counted(model)
    reference = beam_search_attack(model, data, kind="all", seed=3)
    assert len(reference_calls) >= 4 and 0 < reference.survived.sum() < len(data)
    checkpoint = tmp_path / "attack.npz"

    killed = bag(aggclust, seed=13, additive=False)
    _counted(killed, kill_after=3)  # the clean sentences, then two rounds
    with pytest.raises(_Killed):
        beam_search_attack(killed, data, kind="all", seed=3, checkpoint=checkpoint)
    assert checkpoint.exists()

    resumed = bag(aggclust, seed=13, additive=False)
    resumed_calls = _counted(resumed)
    _same(beam_search_attack(resumed, data, kind="all", seed=3, checkpoint=checkpoint), reference)
    # Only the clean pass and the rounds after the two saved ones reached the model.
    assert resumed_calls == [reference_calls[0], *reference_calls[3:]]

    # Another classifier's attack ignores the file (its fingerprint differs) and replaces it.
    other = bag(aggclust, seed=14, additive=False)
    other_data = _labelled(other, texts)
    other_calls = _counted(other)
    alone = beam_search_attack(other, other_data, kind="all", seed=3)
    alone_calls = list(other_calls)
    other_calls.clear()
    before = str(np.load(checkpoint)["fingerprint"])
    _same(beam_search_attack(other, other_data, kind="all", seed=3, checkpoint=checkpoint), alone)
    assert other_calls == alone_calls  # nothing was taken from the first classifier's scores
    assert str(np.load(checkpoint)["fingerprint"]) != before


def test_a_damaged_attack_checkpoint_is_named(toy_models, aggclust: Encoding, tmp_path) -> None:
    model = toy_models["bag"](aggclust, seed=13, additive=False)
    data = _labelled(model, _sentences(aggclust, 10, 5, seed=9))
    checkpoint = tmp_path / "attack.npz"
    checkpoint.write_bytes(b"not an npz file")
    with pytest.raises(DataError, match="not a readable attack checkpoint.*delete it"):
        beam_search_attack(model, data, kind="all", seed=3, checkpoint=checkpoint)
