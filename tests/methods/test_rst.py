import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stalwart import data, models
from stalwart.config import TrainConfig
from stalwart.data.sources.images import ImagePool, classification_splits
from stalwart.errors import ConfigError, DataError
from stalwart.experiments.configs import parse_experiment
from stalwart.experiments.kinds.robustness import robustness
from stalwart.methods import METHODS
from stalwart.recipes.rst import RobustSelfTraining, weighted_mean, with_pseudo_labels
from stalwart.recipes.stage import StageContext


def fake_pool(n_train=300, n_test=50, seed=0):
    rng = np.random.default_rng(seed)
    return ImagePool(
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test),
    )


def test_labelled_set_and_unlabelled_pool_are_disjoint_and_sized():
    pool = fake_pool()
    splits = classification_splits(
        pool,
        tuple("abcdefghij"),
        name="fake",
        seed=0,
        val_fraction=0.1,
        labelled=50,
        unlabelled=200,
    )
    assert len(splits.train) == 50 and splits.unlabelled.shape == (200, 1, 28, 28)
    train_images = {bytes(img.numpy()) for img in splits.train.x}
    pool_images = {bytes(img.numpy()) for img in splits.unlabelled}
    val_images = {bytes(img.numpy()) for img in splits.val.x}
    assert not train_images & pool_images and not pool_images & val_images


@pytest.mark.parametrize(
    "params, message",
    [
        ({"labelled": 50, "unlabelled": 1000}, "only 270 remain after validation"),
        ({"labelled": 0}, "labelled must be a positive number"),
        ({"unlabelled": -1}, "unlabelled must be >= 0"),
    ],
)
def test_impossible_pools_are_refused_with_the_numbers(params, message):
    with pytest.raises(DataError, match=message):
        classification_splits(fake_pool(), tuple("abcdefghij"), name="fake", seed=0,
                              val_fraction=0.1, **params)  # fmt: skip


def test_weighted_mean_follows_the_reference_formula():
    values = torch.tensor([1.0, 2.0, 3.0, 10.0])
    unlabelled = torch.tensor([False, False, True, True])
    expected = (0.1 * (1 + 2) + 0.9 * (3 + 10)) / (0.1 * 2 + 0.9 * 2)
    assert weighted_mean(values, unlabelled, 0.9).item() == pytest.approx(expected)
    # Only labelled examples in the batch: the plain mean, whatever the weight.
    assert weighted_mean(values[:2], unlabelled[:2], 1.0).item() == pytest.approx(1.5)


def digits_with_pool(labelled=200, pool=400):
    splits = data.load("digits", seed=0)
    train = splits.train
    keep = torch.arange(labelled)
    return data.Splits(
        train.subset(keep), splits.val, splits.test, unlabelled=train.x[labelled : labelled + pool]
    )


def test_rst_loss_with_beta_zero_is_the_weighted_natural_loss():
    pooled = digits_with_pool()
    splits = with_pseudo_labels(pooled, torch.zeros(len(pooled.unlabelled), dtype=torch.long))
    model = models.build("mlp", splits.train, hidden=[16])
    from stalwart.methods.adversarial import trades

    robust = trades(splits.train, eps=0.1, steps=2)
    method = RobustSelfTraining(robust, "trades", 0.0, 0.9, 0.5, n_labelled=200)
    batch = splits.train.take(torch.tensor([0, 1, 300, 500]))
    per_example = F.cross_entropy(model(batch.x), batch.y, reduction="none")
    expected = (0.1 * per_example[:2].sum() + 0.9 * per_example[2:].sum()) / (0.2 + 1.8)
    assert method.loss(model, batch).item() == pytest.approx(expected.item(), rel=1e-5)


def test_rst_trains_in_three_stages_and_records_pseudo_labels(tmp_path, monkeypatch):
    splits = digits_with_pool()
    n_labelled = len(splits.train)
    seen = []  # (index, label) of every example the robust stage trained on
    original = RobustSelfTraining.loss

    def recording_loss(self, model, batch):
        seen.append((batch.index.clone(), batch.y.clone()))
        return original(self, model, batch)

    monkeypatch.setattr(RobustSelfTraining, "loss", recording_loss)
    torch.manual_seed(0)
    context = StageContext(
        splits=splits, build_model=lambda: models.build("mlp", splits.train, hidden=[32]),
        train=TrainConfig(epochs=8, batch_size=64, optimizer="adam", lr=3e-3, select="last",
                          progress=False),
        run_dir=tmp_path / "run", shared_dir=tmp_path / "shared",
    )  # fmt: skip
    result = METHODS.build("rst", context, robust_loss="pgd", eps=0.1, steps=2)
    record = json.loads((tmp_path / "run" / "pseudo_labels.json").read_text())
    assert record["pool"] == len(splits.unlabelled) == sum(record["per_class"])
    assert record["standard_val_accuracy"] > 0.5
    assert len(list((tmp_path / "shared").glob("rst-standard-*"))) == 1
    assert result.best_val.accuracy > 0.3  # chance is 0.1; few steps at this size

    # The pseudo-labels are the standard model's predictions on the pool, recomputed here.
    standard = models.build("mlp", splits.train, hidden=[32])
    checkpoint = tmp_path / "run" / record["standard_model_dir"] / "checkpoints" / "best.pt"
    standard.load_state_dict(torch.load(checkpoint, weights_only=True)["model"])
    standard.eval()
    with torch.no_grad():
        predicted = standard(splits.unlabelled.float()).argmax(1)
    assert record["per_class"] == torch.bincount(predicted, minlength=10).tolist()
    index = torch.cat([i for i, _ in seen])
    labels = torch.cat([y for _, y in seen])
    from_pool = index >= n_labelled
    assert torch.equal(labels[from_pool], predicted[index[from_pool] - n_labelled])
    assert torch.equal(labels[~from_pool], splits.train.y[index[~from_pool]])
    # Half of each batch comes from the pool in expectation (unlabelled_fraction = 0.5).
    assert from_pool.float().mean().item() == pytest.approx(0.5, abs=0.03)


def test_rst_without_a_pool_says_how_to_get_one():
    splits = data.load("digits", seed=0)
    context = StageContext(
        splits=splits, build_model=lambda: models.build("linear", splits.train),
        train=TrainConfig(epochs=1, progress=False),
    )  # fmt: skip
    with pytest.raises(ConfigError, match="needs an unlabelled pool: set data.unlabelled"):
        METHODS.build("rst", context)


def test_robustness_experiment_trains_attacks_and_tabulates(tmp_path):
    raw = {
        "kind": "robustness", "name": "rob", "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [32]},
        "train": {"epochs": 3, "lr": 3e-3, "progress": False, "select": "last"},
        "methods": {"erm": {}, "pgd_at": {"eps": 0.1, "steps": 3}},
        "seeds": [0], "out": str(tmp_path / "rob"),
        "attack": {"eps": 0.1, "steps": 5, "restarts": 1, "examples": 60},
    }  # fmt: skip
    table = robustness(parse_experiment(raw))
    rows = table["methods"]
    assert set(rows) == {"erm", "pgd_at"}
    for row in rows.values():
        assert row["robust"]["mean"] <= row["clean"]["mean"]
        assert row["per_seed"][0]["n"] == 60
    assert "| pgd_at |" in (tmp_path / "rob" / "robustness.md").read_text()


@pytest.mark.parametrize(
    "attack, message",
    [
        ({"eps": -0.1}, "eps must be >= 0"),
        ({"eps": 0.1, "attacks": ["pgdd"]}, "unknown attack 'pgdd'"),
        ({"eps": 0.1, "norm": "l1"}, "norm"),
    ],
)
def test_robustness_config_rejects_a_bad_attack_before_training(tmp_path, attack, message):
    raw = {
        "kind": "robustness", "data": {"name": "digits"}, "model": {"name": "linear"},
        "methods": {"erm": {}}, "out": str(tmp_path / "x"), "attack": attack,
    }  # fmt: skip
    with pytest.raises(ConfigError, match=message):
        parse_experiment(raw)
    assert not (tmp_path / "x").exists()
