import contextlib
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stalwart import fit, models
from stalwart.config import TrainConfig
from stalwart.engine import TrainingDiverged, evaluate
from stalwart.engine.device import autocast_for
from stalwart.errors import CheckpointError, ConfigError
from stalwart.methods import Method

SETTINGS = dict(epochs=4, batch_size=16, lr=0.05, optimizer="sgd", progress=False)


def new_model(seed=0, **params):
    torch.manual_seed(seed)
    return models.build("mlp", ((1, 8, 8), 2), hidden=[16], dropout=0.1, **params)


def without_time(history):
    return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in history]


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fit_learns_and_selects_by_worst_group(tiny_splits):
    result = fit(new_model(), "erm", tiny_splits, **SETTINGS)
    worst = [r["val"]["worst_group_accuracy"] for r in result.history]
    assert result.best_epoch == 1 + worst.index(max(worst))
    assert evaluate(result.model, tiny_splits.train).accuracy > 0.9
    assert result.best_val.worst_group_accuracy == max(worst)


def test_select_last_keeps_final_epoch(tiny_splits):
    result = fit(new_model(), "erm", tiny_splits, select="last", **SETTINGS)
    assert result.best_epoch == SETTINGS["epochs"]


def test_same_seed_same_result_bit_for_bit(tiny_splits):
    a = fit(new_model(), "erm", tiny_splits, seed=3, **SETTINGS)
    b = fit(new_model(), "erm", tiny_splits, seed=3, **SETTINGS)
    c = fit(new_model(), "erm", tiny_splits, seed=4, **SETTINGS)
    assert same_weights(a.model, b.model)
    assert without_time(a.history) == without_time(b.history)
    assert not same_weights(a.model, c.model)


class Interrupt(Exception):
    pass


# Warmup over 10 steps outlasts the 8 steps of the 2 epochs before the interruption: the
# resumed run must continue the ramp at step 9, not start it again.
OPTIMISER_STATE = {"warmup_steps": 10, "clip_grad_norm": 0.5, "lr_groups": {"head": 3.0}}


@pytest.mark.parametrize(
    "extra", [{}, OPTIMISER_STATE, {"adaptation": "lp"}], ids=["plain", "warmup-clip-groups", "lp"]
)
def test_resume_after_interruption_matches_uninterrupted_run(tiny_splits, tmp_path, extra):
    settings = {**SETTINGS, "schedule": "cosine", "select": "worst_group_accuracy", **extra}
    full = fit(new_model(), "erm", tiny_splits, run_dir=tmp_path / "full", **settings)

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(
            new_model(),
            "erm",
            tiny_splits,
            run_dir=tmp_path / "cut",
            on_epoch_end=stop_after_two,
            **settings,
        )
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    # A different initialisation proves the weights come from the checkpoint.
    resumed = fit(
        new_model(seed=9), "erm", tiny_splits, run_dir=tmp_path / "cut", resume=True, **settings
    )
    assert same_weights(full.model, resumed.model)
    assert resumed.best_epoch == full.best_epoch
    assert without_time(resumed.history) == without_time(full.history)
    on_disk = [
        json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    ]
    assert without_time(on_disk) == without_time(full.history)


def test_settings_added_later_keep_the_fingerprints_of_earlier_configs():
    """Checkpoints, stage folders and config.yaml files hold dumps of TrainConfig."""
    earlier = ["epochs", "batch_size", "eval_batch_size", "optimizer", "lr", "momentum",
               "weight_decay", "schedule", "step_size", "gamma", "select", "seed", "device",
               "precision", "progress"]  # fmt: skip
    assert list(TrainConfig().model_dump()) == earlier
    assert list(TrainConfig(warmup_steps=0, lr_groups={}, adaptation="ft").model_dump()) == earlier
    changed = TrainConfig(warmup_steps=3, adaptation="lp").model_dump(mode="json")
    assert changed["warmup_steps"] == 3 and changed["adaptation"]["strategy"] == "lp"
    assert TrainConfig.model_validate(changed) == TrainConfig(warmup_steps=3, adaptation="lp")


def test_a_checkpoint_from_before_the_step_count_resumes(tiny_splits, tmp_path):
    def stop_after_two(record):
        if record["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(new_model(), "erm", tiny_splits, run_dir=tmp_path, on_epoch_end=stop_after_two,
            **SETTINGS)  # fmt: skip
    last = tmp_path / "checkpoints" / "last.pt"
    checkpoint = torch.load(last, weights_only=True)
    assert checkpoint.pop("optimizer_steps") == 2 * STEPS_PER_EPOCH
    torch.save(checkpoint, last)  # as written before warmup existed
    resumed = fit(new_model(seed=9), "erm", tiny_splits, run_dir=tmp_path, resume=True, **SETTINGS)
    full = fit(new_model(), "erm", tiny_splits, **SETTINGS)
    assert same_weights(full.model, resumed.model)


def test_resume_drops_a_metrics_line_written_after_the_last_checkpoint(tiny_splits, tmp_path):
    def stop_after_two(record):
        if record["epoch"] == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(
            new_model(),
            "erm",
            tiny_splits,
            run_dir=tmp_path,
            on_epoch_end=stop_after_two,
            **SETTINGS,
        )
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"epoch": 3, "train_loss": 1.0}\n{"epo')
    result = fit(new_model(), "erm", tiny_splits, run_dir=tmp_path, resume=True, **SETTINGS)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]


def test_existing_run_is_not_overwritten_without_resume(tiny_splits, tmp_path):
    fit(new_model(), "erm", tiny_splits, run_dir=tmp_path, **{**SETTINGS, "epochs": 1})
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(CheckpointError, match="already holds"):
        fit(new_model(), "erm", tiny_splits, run_dir=tmp_path, **SETTINGS)
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before


def test_resume_with_other_settings_is_refused(tiny_splits, tmp_path):
    fit(new_model(), "erm", tiny_splits, run_dir=tmp_path, **{**SETTINGS, "epochs": 1})
    with pytest.raises(CheckpointError, match="lr"):
        fit(
            new_model(),
            "erm",
            tiny_splits,
            run_dir=tmp_path,
            resume=True,
            **{**SETTINGS, "lr": 0.5},
        )


def test_corrupt_checkpoint_gives_clear_error(tiny_splits, tmp_path):
    fit(new_model(), "erm", tiny_splits, run_dir=tmp_path, **SETTINGS)
    last = tmp_path / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="corrupt"):
        fit(new_model(), "erm", tiny_splits, run_dir=tmp_path, resume=True, **SETTINGS)


def test_checkpoint_of_another_model_gives_clear_error(tiny_splits, tmp_path):
    fit(new_model(), "erm", tiny_splits, run_dir=tmp_path, **SETTINGS)
    torch.manual_seed(0)
    other = models.build("mlp", ((1, 8, 8), 2), hidden=[32])
    with pytest.raises(CheckpointError, match="does not match this model"):
        fit(other, "erm", tiny_splits, run_dir=tmp_path, resume=True, **SETTINGS)


class DivergesLater(Method):
    """Cross-entropy until ``bad_steps`` (1-based step numbers), where the loss is ``bad``.

    With ``detached`` the bad value is added as a constant: the reported loss is non-finite
    but the gradient, and so the weights, stay those of plain cross-entropy; the next batches
    are finite again.
    """

    def __init__(self, bad_steps, bad=float("nan"), detached=False):
        super().__init__()
        self.bad_steps, self.bad, self.detached = set(bad_steps), bad, detached
        self.step = 0

    def loss(self, model, batch):
        self.step += 1
        loss = F.cross_entropy(model(batch.x), batch.y)
        if self.step not in self.bad_steps:
            return loss
        return loss + torch.tensor(self.bad) if self.detached else loss * self.bad


STEPS_PER_EPOCH = 64 // SETTINGS["batch_size"]  # tiny_splits.train holds 64 examples


def test_diverging_run_keeps_the_last_good_checkpoint_and_resumes_from_it(tiny_splits, tmp_path):
    # NaN from the first step of epoch 3 on: epochs 1 and 2 are plain ERM.
    method = DivergesLater(range(2 * STEPS_PER_EPOCH + 1, 10 * STEPS_PER_EPOCH))
    model = new_model()
    weights_after = {}

    def remember(record):
        weights_after[record["epoch"]] = {k: v.clone() for k, v in model.state_dict().items()}

    with pytest.raises(TrainingDiverged, match="in epoch 3; lower the learning rate"):
        fit(model, method, tiny_splits, run_dir=tmp_path, on_epoch_end=remember, **SETTINGS)
    assert not all(torch.isfinite(p).all() for p in model.parameters())  # NaN reached the model
    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    assert last["epoch"] == 2
    assert all(torch.equal(last["model"][k], weights_after[2][k]) for k in weights_after[2])
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]

    # Resuming with a finite loss ends exactly where an uninterrupted ERM run ends.
    resumed = fit(new_model(seed=9), "erm", tiny_splits, run_dir=tmp_path, resume=True, **SETTINGS)
    full = fit(new_model(), "erm", tiny_splits, **SETTINGS)
    assert same_weights(full.model, resumed.model)
    assert without_time(resumed.history) == without_time(full.history)


@pytest.mark.parametrize(
    "bad, detached",
    [(float("nan"), False), (float("nan"), True), (float("inf"), True), (-float("inf"), True)],
)
def test_a_non_finite_loss_in_any_batch_stops_training(tiny_splits, bad, detached):
    # One bad batch, the second of epoch 1; with `detached`, every other batch stays finite.
    method = DivergesLater([2], bad=bad, detached=detached)
    with pytest.raises(TrainingDiverged, match=r"became (nan|inf|-inf) in epoch 1"):
        fit(new_model(), method, tiny_splits, **SETTINGS)
    assert method.step == STEPS_PER_EPOCH  # it stopped at the end of that epoch


def test_a_finite_loss_does_not_stop_training(tiny_splits):
    method = DivergesLater([])
    result = fit(new_model(), method, tiny_splits, **SETTINGS)
    assert len(result.history) == SETTINGS["epochs"]


def test_unknown_or_invalid_setting_is_named(tiny_splits):
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        fit(new_model(), "erm", tiny_splits, epoch=3)
    with pytest.raises(ConfigError, match="lr"):
        fit(new_model(), "erm", tiny_splits, lr=-1.0)
    with pytest.raises(ConfigError, match="unknown method 'ermm'.*choose from"):
        fit(new_model(), "ermm", tiny_splits)


@pytest.mark.parametrize(
    "schedule, expected",
    [("constant", [0.1, 0.1, 0.1, 0.1]), ("step", [0.1, 0.1, 0.01, 0.01])],
)
def test_learning_rate_schedules(tiny_splits, schedule, expected):
    cfg = TrainConfig(**{**SETTINGS, "lr": 0.1, "schedule": schedule, "step_size": 2})
    result = fit(new_model(), "erm", tiny_splits, cfg)
    assert [round(r["lr"], 6) for r in result.history] == expected


def test_cosine_schedule_decreases(tiny_splits):
    result = fit(new_model(), "erm", tiny_splits, schedule="cosine", **SETTINGS)
    lrs = [r["lr"] for r in result.history]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] > lrs[-1]


def test_adam_and_weight_decay_train(tiny_splits):
    for optimizer in ("adam", "adamw"):
        result = fit(
            new_model(),
            "erm",
            tiny_splits,
            **{**SETTINGS, "optimizer": optimizer, "lr": 0.01, "weight_decay": 1e-3},
        )
        assert all(r["train_loss"] == r["train_loss"] for r in result.history)


def test_model_without_trainable_parameters_is_rejected(tiny_splits):
    frozen = new_model()
    for p in frozen.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(frozen, "erm", tiny_splits, **SETTINGS)


class RecordsPrecision(Method):
    """Cross-entropy that notes the dtype of the logits each training step computed."""

    def __init__(self):
        super().__init__()
        self.dtypes = set()

    def loss(self, model, batch):
        logits = model(batch.x)
        self.dtypes.add(logits.dtype)
        return F.cross_entropy(logits.float(), batch.y)


@pytest.mark.parametrize(
    "precision, dtype", [("bf16", torch.bfloat16), ("fp32", torch.float32), ("auto", torch.float32)]
)
def test_precision_decides_the_autocast_of_cpu_training_steps(tiny_splits, precision, dtype):
    """bf16 asked for on the CPU is honoured (autocast); ``auto`` keeps fp32 there."""
    method = RecordsPrecision()
    result = fit(new_model(), method, tiny_splits, device="cpu", precision=precision,
                 **{**SETTINGS, "epochs": 2})  # fmt: skip
    assert method.dtypes == {dtype}
    assert next(result.model.parameters()).dtype == torch.float32  # the weights stay fp32
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


@pytest.mark.parametrize(
    "device, precision, entered",
    [("cuda", "auto", [("cuda", torch.bfloat16)]), ("cuda", "bf16", [("cuda", torch.bfloat16)]),
     ("cuda", "fp32", []), ("cpu", "auto", []), ("cpu", "bf16", [("cpu", torch.bfloat16)])],
)  # fmt: skip
def test_autocast_for_enters_bf16_autocast_where_documented(
    monkeypatch, device, precision, entered
):
    """``auto`` means bf16 autocast on CUDA; checked without a GPU by recording torch.autocast."""
    calls = []

    @contextlib.contextmanager
    def recording_autocast(device_type, dtype=None, **kwargs):
        calls.append((device_type, dtype))
        yield

    monkeypatch.setattr(torch, "autocast", recording_autocast)
    with autocast_for(torch.device(device), precision)():
        pass
    assert calls == entered


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_training_runs_in_bf16_autocast(tiny_splits):
    method = RecordsPrecision()
    result = fit(new_model(), method, tiny_splits, device="cuda", **SETTINGS)
    assert next(result.model.parameters()).is_cuda
    assert method.dtypes == {torch.bfloat16}


def test_evaluate_matches_manual_count(tiny_splits):
    model = new_model()
    metrics = evaluate(model, tiny_splits.test, weights_from=tiny_splits.train)
    with torch.no_grad():
        model.eval()
        predictions = model(tiny_splits.test.x).argmax(1)
    assert metrics.accuracy == pytest.approx(
        (predictions == tiny_splits.test.y).float().mean().item()
    )
    assert sum(metrics.group_counts) == len(tiny_splits.test)
    assert metrics.weighted_accuracy is not None
    assert isinstance(model, nn.Module)
