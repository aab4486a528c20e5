"""Adaptation strategies (linear probe, LoRA) and the optimiser settings beside them.

Checked from outside: which weights and buffers moved, which parameters received gradients,
and the learning rate and gradient norm each optimiser step actually saw (through a global
optimiser step hook).
"""

import copy
import importlib.metadata
import re
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook
from transformers import BertConfig, BertModel

from stalwart import fit, models
from stalwart.config import TrainConfig
from stalwart.data import GroupedDataset, Splits
from stalwart.engine import fit as engine_fit
from stalwart.engine.adaptation import PEFT_VERSION, FeatureCache, merge_lora
from stalwart.engine.optim import build_optimizer
from stalwart.errors import ConfigError
from stalwart.methods import Method
from stalwart.methods.erm import ERM

SETTINGS = dict(epochs=2, batch_size=16, lr=0.05, optimizer="sgd", progress=False)
STEPS_PER_EPOCH = 64 // SETTINGS["batch_size"]  # tiny_splits.train holds 64 examples
ROOT = Path(__file__).resolve().parents[2]


def new_mlp(seed=0, hidden=(16,), batchnorm=False):
    torch.manual_seed(seed)
    model = models.build("mlp", ((1, 8, 8), 2), hidden=list(hidden), dropout=0.1)
    if batchnorm:  # running statistics: buffers that move in train mode, even when frozen
        model.body.append(nn.BatchNorm1d(hidden[-1]))
    return model


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def body_and_head(before, after):
    """(keys that changed outside the head, whether the head changed)."""
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    return {k for k in changed if not k.startswith("head.")}, any(
        k.startswith("head.") for k in changed
    )


class TrainModeERM(ERM):
    """ERM that switches the whole model to train mode before every loss, as attacks may."""

    def loss(self, model, batch):
        model.train()
        return super().loss(model, batch)


class ScaledERM(Method):
    """Cross-entropy times a large factor: gradients far beyond any clipping threshold."""

    def loss(self, model, batch):
        return 100.0 * F.cross_entropy(model(batch.x), batch.y)


@pytest.fixture
def step_hook():
    """Calls ``record(optimizer)`` before every optimiser step while the test runs."""
    handles = []

    def install(record):
        handles.append(
            register_optimizer_step_pre_hook(lambda optimizer, args, kwargs: record(optimizer))
        )

    yield install
    for handle in handles:
        handle.remove()


# ---------------------------------------------------------------- linear probe


@pytest.mark.parametrize("method", ["erm", TrainModeERM()], ids=["erm", "method-sets-train"])
def test_linear_probe_leaves_the_body_bit_identical_and_trains_the_head(tiny_splits, method):
    model = new_mlp(batchnorm=True)
    before = state(model)
    result = fit(model, method, tiny_splits, adaptation="lp", **SETTINGS)
    body_changed, head_changed = body_and_head(before, state(result.model))
    # BatchNorm's running_mean, running_var and num_batches_tracked included.
    assert body_changed == set()
    assert head_changed
    # The flags are given back: the same model can be fine-tuned next.
    assert all(p.requires_grad for p in model.parameters())


def test_full_fine_tuning_moves_the_body(tiny_splits):
    model = new_mlp(batchnorm=True)
    before = state(model)
    fit(model, "erm", tiny_splits, adaptation="ft", **SETTINGS)
    body_changed, head_changed = body_and_head(before, state(model))
    assert {"body.1.weight", "body.4.running_mean"} <= body_changed and head_changed


def test_adaptation_needs_a_head(tiny_splits):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 2))
    with pytest.raises(ConfigError, match="attribute `head`; Sequential has no `head`"):
        fit(model, "erm", tiny_splits, adaptation="lp", **SETTINGS)


def test_engine_fit_refuses_the_two_stage_strategy(tiny_splits):
    with pytest.raises(ConfigError, match="'lp-ft' is two stages.*stalwart.fit"):
        engine_fit(new_mlp(), ERM(), tiny_splits, adaptation="lp-ft", **SETTINGS)


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"adaptation": "probe"}, r"adaptation.strategy: Input should be 'ft', 'lp', 'lp-ft'"),
        (
            {"adaptation": {"strategy": "lp", "lp_epochs": 2}},
            "lp_epochs applies to strategy 'lp-ft' only; the strategy is 'lp'",
        ),  # fmt: skip
        ({"adaptation": {"strategy": "ft", "lora_r": 4}}, "lora_r applies to strategy 'lora'"),
        ({"adaptation": {"strategy": "lora", "lora_rank": 4}}, "did you mean 'lora_r'"),
        ({"adaptation": {"strategy": "lora", "lora_targets": []}}, "lora_targets"),
        ({"adaptation": {"strategy": "lp-ft", "lp_lr": 0.0}}, "lp_lr: .*greater than 0"),
        ({"lr_groups": {"head": 0.0}}, "each multiplier must be > 0"),
        ({"lr_groups": {"head/": 2.0}}, "parameter-name prefix"),
        ({"warmup_steps": -1}, r"0 <= warmup_steps"),
        ({"clip_grad_norm": 0.0}, r"0 < clip_grad_norm"),
    ],
)
def test_bad_adaptation_and_optimiser_settings_are_named(tiny_splits, setting, message):
    with pytest.raises(ConfigError, match=message):
        fit(new_mlp(), "erm", tiny_splits, **{**SETTINGS, **setting})


def test_the_strategy_name_is_shorthand_for_its_section():
    assert TrainConfig(adaptation="lp-ft") == TrainConfig(adaptation={"strategy": "lp-ft"})
    assert TrainConfig().adaptation.strategy == "ft"


# ---------------------------------------------------------------- learning-rate groups


def test_lr_groups_give_each_prefix_its_learning_rate():
    model = new_mlp(hidden=(16, 8))  # body.1 and body.4 are Linear (a Dropout between)
    cfg = TrainConfig(lr=0.1, lr_groups={"body": 2.0, "body.4": 0.5})
    optimizer = build_optimizer(model, cfg)
    name = {id(p): n for n, p in model.named_parameters()}
    got = {name[id(p)]: g["lr"] for g in optimizer.param_groups for p in g["params"]}
    # The longest prefix wins; parameters no prefix matches keep lr.
    assert got == pytest.approx({
        "body.1.weight": 0.2, "body.1.bias": 0.2, "body.4.weight": 0.05, "body.4.bias": 0.05,
        "head.weight": 0.1, "head.bias": 0.1,
    })  # fmt: skip


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_adam_takes_the_fused_kernel_and_steps_as_the_plain_one_does(optimizer):
    """The fused kernel: Adam's update in one pass (the optimiser step of a large embedding
    table dominated training on CPU); the same update as PyTorch's default loop."""
    fused, plain = new_mlp().eval(), new_mlp().eval()  # no dropout: the same forward
    cfg = TrainConfig(optimizer=optimizer, lr=0.01, weight_decay=0.1)
    built = build_optimizer(fused, cfg)
    assert built.defaults["fused"] is True
    reference = type(built)(plain.parameters(), lr=0.01, weight_decay=0.1)
    x = torch.randn(8, 1, 8, 8)
    for _ in range(3):
        for model, opt in ((fused, built), (plain, reference)):
            opt.zero_grad()
            model(x).square().mean().backward()
            opt.step()
    for a, b in zip(fused.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_prefix_matches_whole_name_parts_only():
    with pytest.raises(ConfigError, match=r"'bod' matches no parameter of MLP \(did you mean "
                       r"'body'\?\); its top-level prefixes are \['body', 'head'\]"):  # fmt: skip
        build_optimizer(new_mlp(), TrainConfig(lr_groups={"bod": 2.0}))


def test_lr_groups_hold_in_every_step_of_fit(tiny_splits, step_hook):
    seen = []
    step_hook(lambda opt: seen.append({g["prefix"]: g["lr"] for g in opt.param_groups}))
    result = fit(new_mlp(), "erm", tiny_splits, lr_groups={"head": 10.0}, **SETTINGS)
    assert len(seen) == SETTINGS["epochs"] * STEPS_PER_EPOCH
    assert all(lrs == pytest.approx({"": 0.05, "head": 0.5}) for lrs in seen)
    assert [r["lr"] for r in result.history] == [0.05, 0.05]  # the base rate is recorded


# ---------------------------------------------------------------- warmup and clipping


def test_warmup_ramps_the_rate_over_steps_under_the_epoch_schedule(tiny_splits, step_hook):
    seen = []
    step_hook(lambda opt: seen.append(opt.param_groups[0]["lr"]))
    result = fit(
        new_mlp(), "erm", tiny_splits, warmup_steps=6, schedule="step", step_size=1, gamma=0.5,
        **SETTINGS,
    )  # fmt: skip
    # Epoch 1 at 0.05, epoch 2 at 0.025 (the step schedule); steps 1..6 ramp by s / 6.
    expected = [0.05 * s / 6 for s in (1, 2, 3, 4)] + [0.025 * 5 / 6, 0.025, 0.025, 0.025]
    assert seen == pytest.approx(expected)
    assert [r["lr"] for r in result.history] == pytest.approx([0.05, 0.025])


@pytest.mark.parametrize("clip", [None, 0.5])
def test_clipping_bounds_the_gradient_norm_each_step_sees(tiny_splits, step_hook, clip):
    norms = []

    def record(optimizer):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"]]
        norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    step_hook(record)
    fit(new_mlp(), ScaledERM(), tiny_splits, clip_grad_norm=clip, **{**SETTINGS, "lr": 1e-4})
    if clip is None:
        assert max(norms) > 10  # what clipping has to bound
    else:
        assert max(norms) <= clip * (1 + 1e-5)


# ---------------------------------------------------------------- LoRA


class TinyBert(nn.Module):
    """A two-layer BERT with random weights (no download) and a linear head on [CLS]."""

    def __init__(self, vocab=20, hidden=16, n_classes=2):
        super().__init__()
        config = BertConfig(
            vocab_size=vocab, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=32, max_position_embeddings=16,
        )  # fmt: skip
        self.encoder = BertModel(config, add_pooling_layer=False)
        self.head = nn.Linear(hidden, n_classes)

    def features(self, x):
        return self.encoder(input_ids=x).last_hidden_state[:, 0]

    def forward(self, x):
        return self.head(self.features(x))


def new_bert(seed=0):
    torch.manual_seed(seed)
    return TinyBert()


def token_data(n, seed):
    """Token sequences whose second token gives the label away; 4 groups."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    attribute = torch.randint(0, 2, (n,), generator=g)
    x = torch.randint(4, 20, (n, 6), generator=g)
    x[:, 0], x[:, 1] = 1, 2 + y
    names = [f"y={c}, a={a}" for c in (0, 1) for a in (0, 1)]
    return GroupedDataset(x, y, 2 * y + attribute, n_classes=2, group_names=names)


@pytest.fixture
def token_splits():
    return Splits(token_data(64, 0), token_data(32, 1), token_data(32, 2))


LORA = {"strategy": "lora", "lora_r": 4, "lora_alpha": 8.0}
ADAPTED = {
    f"encoder.encoder.layer.{i}.attention.self.{k}" for i in (0, 1) for k in ("query", "value")
}


def test_a_probe_computes_each_inputs_features_once_and_learns_the_same_head(
    token_splits, monkeypatch
):
    settings = {**SETTINGS, "epochs": 3, "adaptation": "lp"}
    caches = []
    real_init = FeatureCache.__init__

    def recording_init(self, features):
        real_init(self, features)
        caches.append(self)

    monkeypatch.setattr(FeatureCache, "__init__", recording_init)
    cached = fit(new_bert(), "erm", token_splits, **settings).model
    distinct = {row.numpy().tobytes() for row in torch.cat([token_splits.train.x,
                                                            token_splits.val.x])}  # fmt: skip
    assert [cache.computed for cache in caches] == [len(distinct)]  # not 3 epochs' worth
    assert "features" not in vars(cached)  # the class's method again after fit

    monkeypatch.setattr(FeatureCache, "__call__", lambda self, x: self.features(x))
    uncached = fit(new_bert(), "erm", token_splits, **settings).model
    torch.testing.assert_close(cached.head.weight, uncached.head.weight, rtol=1e-5, atol=1e-6)


def test_lora_trains_only_the_adapters_and_the_head(token_splits):
    model = new_bert()
    before = {name: (p, p.detach().clone()) for name, p in model.named_parameters()}
    fit(model, "erm", token_splits, adaptation=LORA, **SETTINGS)

    names = dict(model.named_parameters())
    adapters = [n for n in names if "lora_" in n]
    assert {n.partition(".lora_")[0] for n in adapters} == ADAPTED  # query and value only
    # Every weight the model had keeps its value, the targeted Linear layers' included (peft
    # moved them, as the same Parameter objects, under base_layer); the head alone trained.
    for name, (parameter, initial) in before.items():
        assert torch.equal(parameter, initial) != name.startswith("head."), name
        assert any(parameter is p for p in names.values()), name
    for name, parameter in names.items():
        assert (parameter.grad is not None) == ("lora_" in name or name.startswith("head.")), name
    assert all(names[n].abs().sum() > 0 for n in adapters if "lora_B" in n)  # B starts at 0
    assert all(p.requires_grad for p in model.parameters())  # flags given back


def test_merged_adapters_compute_what_the_adapted_model_computes(token_splits):
    model = new_bert()
    fit(model, "erm", token_splits, adaptation=LORA, **SETTINGS)
    merged = merge_lora(copy.deepcopy(model))
    assert merged.state_dict().keys() == new_bert().state_dict().keys()
    model.eval()
    merged.eval()
    with torch.no_grad():
        x = token_splits.test.x
        torch.testing.assert_close(merged(x), model(x), rtol=1e-5, atol=1e-5)


def test_lora_resume_after_interruption_matches_uninterrupted_run(token_splits, tmp_path):
    settings = {**SETTINGS, "epochs": 3, "adaptation": {**LORA, "lora_dropout": 0.1}}
    full = fit(new_bert(), "erm", token_splits, run_dir=tmp_path / "full", **settings)

    class Interrupt(Exception):
        pass

    def stop_after_one(record):
        if record["epoch"] == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(new_bert(), "erm", token_splits, run_dir=tmp_path / "cut",
            on_epoch_end=stop_after_one, **settings)  # fmt: skip
    resumed = fit(new_bert(seed=9), "erm", token_splits, run_dir=tmp_path / "cut", resume=True,
                  **settings)  # fmt: skip
    a, b = state(full.model), state(resumed.model)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_lora_composes_with_a_multi_stage_method(token_splits):
    model = new_bert()
    before = state(model)
    result = fit(model, "jtt", token_splits, adaptation=LORA, **SETTINGS,
                 method_params={"identification_epochs": 1, "upweight": 2})  # fmt: skip
    assert result.model is model
    after = model.state_dict()
    assert any("lora_B" in k for k in after)  # the caller's model received the adapters
    for key, value in before.items():  # and its own weights are untouched, except the head
        moved = key.replace(".query.", ".query.base_layer.").replace(
            ".value.", ".value.base_layer."
        )
        assert torch.equal(after[moved], value) != key.startswith("head."), key


@pytest.mark.parametrize("targets", [["keyy"], ["head"]])
def test_a_lora_target_that_names_no_body_linear_layer_is_refused(token_splits, targets):
    with pytest.raises(ConfigError, match=rf"{targets[0]!r} names no Linear layer of TinyBert's "
                       r"body.*'query'.*head, which trains fully"):  # fmt: skip
        fit(new_bert(), "erm", token_splits,
            adaptation={**LORA, "lora_targets": targets}, **SETTINGS)  # fmt: skip


def test_missing_peft_gives_the_install_command(token_splits, monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` now raises ImportError
    with pytest.raises(ConfigError) as caught:
        fit(new_bert(), "erm", token_splits, adaptation=LORA, **SETTINGS)
    assert f'pip install "stalwart[text]"  (or: pip install peft=={PEFT_VERSION})' in str(
        caught.value
    )
    assert "adaptation 'lora' needs peft" in str(caught.value)


def test_the_install_command_names_the_pinned_peft():
    # The `text` extra pins it, and the setup (`make test`, `make demo`) installs that extra.
    text_extra = re.search(r"^text = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.M | re.S)
    assert f'"peft=={PEFT_VERSION}"' in text_extra.group(1)
    assert re.search(r"\.\[[a-z,]*\btext\b", (ROOT / "Makefile").read_text())
    assert importlib.metadata.version("peft") == PEFT_VERSION
