import math

import numpy as np
import pytest
import torch

from stalwart import fit, models
from stalwart.data import Batch, GroupedDataset
from stalwart.data.samplers import balanced, repeat_positions, subsample_to_smallest
from stalwart.errors import ConfigError
from stalwart.experiments.configs import parse_config
from stalwart.experiments.run import run
from stalwart.methods import build, method_info
from stalwart.methods.group_dro import group_mean_losses
from stalwart.models.heads import write_linear_head
from stalwart.recipes.dfr import balanced_subset
from stalwart.recipes.jtt import error_set


class FixedLosses(torch.nn.Module):
    """A 'model' whose cross-entropy per example is set by its logits."""

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits


def two_group_data(counts=(30, 10)):
    groups = torch.cat([torch.full((c,), g) for g, c in enumerate(counts)])
    return GroupedDataset(
        torch.zeros(len(groups), 1),
        torch.zeros(len(groups)),
        groups,
        n_classes=2,
        group_names=["a", "b"],
    )


def test_group_dro_weights_by_hand():
    """q ∝ q·exp(η·L_g): with η = 1, losses (1, 0) and q = (½, ½), q becomes (e, 1)/(e + 1)."""
    method = build("group_dro", two_group_data(), step_size=1.0)
    # Group a: two examples of loss exactly 1 (logit gap chosen so CE = 1); group b: loss 0.
    gap = math.log(math.e - 1)  # CE of class 0 with logits (0, gap) is log(1 + e^gap) = 1
    logits = torch.tensor([[0.0, gap], [0.0, gap], [100.0, 0.0]], dtype=torch.float64)
    batch = Batch(
        torch.zeros(3, 1),
        torch.zeros(3, dtype=torch.long),
        torch.tensor([0, 0, 1]),
        torch.arange(3),
    )
    loss = method.loss(FixedLosses(logits.float()), batch)
    expected_q = torch.tensor([math.e, 1.0]) / (math.e + 1)
    assert torch.allclose(method.q.float(), expected_q, atol=1e-5)
    assert loss.item() == pytest.approx(expected_q[0].item() * 1.0, abs=1e-4)
    # A second, identical step multiplies again: q ∝ (e², 1).
    method.loss(FixedLosses(logits.float()), batch)
    assert torch.allclose(
        method.q.float(), torch.tensor([math.e**2, 1]) / (math.e**2 + 1), atol=1e-5
    )


def test_group_dro_weights_in_fit_follow_the_cumulative_group_losses(tiny_splits):
    """Algorithm 1 unrolled: from uniform q, q_T ∝ exp(η · Σ_t L_g,t) over fit's steps.

    The group losses are recomputed here, in float64 with numpy, from the model as each step
    finds it; the groups that lost most must end with the most weight.
    """
    step_size = 0.05
    method = build("group_dro", tiny_splits.train, step_size=step_size)
    cumulative = np.zeros(tiny_splits.train.n_groups)
    original = method.loss

    def recording_loss(model, batch):
        with torch.no_grad():
            logits = model(batch.x).double().numpy()
        y, g = batch.y.numpy(), batch.group.numpy()
        shifted = logits - logits.max(axis=1, keepdims=True)
        losses = np.log(np.exp(shifted).sum(axis=1)) - shifted[np.arange(len(y)), y]
        counts = np.bincount(g, minlength=len(cumulative))
        sums = np.bincount(g, weights=losses, minlength=len(cumulative))
        cumulative[:] += np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
        return original(model, batch)

    method.loss = recording_loss
    torch.manual_seed(0)
    model = models.build("linear", tiny_splits.train)
    fit(model, method, tiny_splits, epochs=3, batch_size=16, lr=0.05, optimizer="sgd",
        progress=False)  # fmt: skip
    expected = np.exp(step_size * (cumulative - cumulative.max()))
    expected /= expected.sum()
    assert expected.max() / expected.min() > 1.2  # the weights did move apart
    np.testing.assert_allclose(method.q.numpy(), expected, rtol=1e-4)


def test_group_dro_generalization_adjustment_uses_training_counts():
    method = build(
        "group_dro", two_group_data((100, 4)), step_size=1.0, generalization_adjustment=2.0
    )
    assert torch.allclose(method.adjustment, torch.tensor([2 / 10, 2 / 2], dtype=torch.float64))
    batch = Batch(
        torch.zeros(2, 1), torch.zeros(2, dtype=torch.long), torch.tensor([0, 1]), torch.arange(2)
    )
    method.loss(FixedLosses(torch.tensor([[50.0, 0.0], [50.0, 0.0]])), batch)  # both losses ≈ 0
    expected = torch.exp(torch.tensor([0.2, 1.0]))
    assert torch.allclose(method.q.float(), expected / expected.sum(), atol=1e-5)


@pytest.mark.parametrize(
    "name, group_labels",
    [("erm", "no"), ("jtt", "no"), ("group_dro", "yes"), ("subg", "yes"), ("rwg", "yes"),
     ("dfr", "validation set"), ("suby", "no"), ("rwy", "no"), ("cvar_dro", "no")],
)  # fmt: skip
def test_registry_records_which_methods_train_on_group_labels(name, group_labels):
    """The demo's table reports this column: what each method reads while training."""
    assert method_info(name).group_labels == group_labels


def test_group_dro_weights_are_a_saved_buffer():
    method = build("group_dro", two_group_data())
    assert "q" in method.state_dict() and not list(method.parameters())


def test_group_mean_losses_ignores_absent_groups():
    means, counts = group_mean_losses(torch.tensor([1.0, 3.0, 5.0]), torch.tensor([0, 0, 2]), 3)
    assert means.tolist() == [2.0, 0.0, 5.0] and counts.tolist() == [2, 0, 1]


def test_group_dro_rejects_bad_step_size():
    with pytest.raises(ConfigError, match="step_size must be positive; got 0"):
        build("group_dro", two_group_data(), step_size=0.0)


def test_jtt_multiplicity_each_error_appears_upweight_times():
    errors = torch.tensor([1, 4])
    sampler = repeat_positions(errors, times=5, size=6)
    order = sampler(two_group_data((3, 3)), torch.Generator().manual_seed(0))
    counts = torch.bincount(order, minlength=6).tolist()
    assert counts == [1, 5, 1, 1, 5, 1]
    assert len(order) == 6 + 2 * 4


def test_jtt_error_set_is_exactly_the_misclassified_training_examples():
    x = torch.tensor([[1.0], [-1.0], [2.0], [-3.0]])
    dataset = GroupedDataset(
        x,
        torch.tensor([1, 1, 0, 0]),
        torch.tensor([0, 1, 0, 1]),
        n_classes=2,
        group_names=["a", "b"],
    )
    model = torch.nn.Linear(1, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[-1.0], [1.0]]))  # predicts 1 where x > 0
        model.bias.zero_()
    assert error_set(model, dataset).tolist() == [1, 2]


def test_subg_subsamples_every_group_to_the_smallest():
    groups = torch.tensor([0] * 50 + [1] * 7 + [2] * 20 + [3] * 9)
    kept = subsample_to_smallest(groups, seed=0)
    assert torch.bincount(groups[kept]).tolist() == [7, 7, 7, 7]
    assert len(set(kept.tolist())) == 28
    assert torch.equal(kept, subsample_to_smallest(groups, seed=0))
    assert not torch.equal(kept, subsample_to_smallest(groups, seed=1))


def test_rwg_draws_groups_equally_often():
    groups = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)
    dataset = GroupedDataset(
        torch.zeros(1000, 1), torch.zeros(1000), groups, n_classes=2, group_names=["a", "b", "c"]
    )
    order = balanced(groups)(dataset, torch.Generator().manual_seed(0))
    shares = torch.bincount(groups[order], minlength=3).float() / len(order)
    assert len(order) == 1000
    assert torch.allclose(shares, torch.full((3,), 1 / 3), atol=0.05)


def test_dfr_balanced_subset_has_equal_groups():
    groups = np.array([0] * 40 + [1] * 5 + [2] * 12 + [3] * 5)
    chosen = balanced_subset(groups, np.random.default_rng(0))
    assert np.bincount(groups[chosen]).tolist() == [5, 5, 5, 5]
    assert len(np.unique(chosen)) == len(chosen)


def test_dfr_head_reproduces_the_regression_on_raw_features():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    features = rng.normal(3.0, 2.0, size=(200, 4))
    labels = (features[:, 0] + rng.normal(size=200) > 3).astype(int)
    scaler = StandardScaler().fit(features)
    regression = LogisticRegression().fit(scaler.transform(features), labels)
    head = torch.nn.Linear(4, 2)
    write_linear_head(
        head,
        regression.coef_,
        regression.intercept_,
        regression.classes_,
        mean=scaler.mean_,
        scale=scaler.scale_,
    )
    with torch.no_grad():
        predicted = head(torch.from_numpy(features).float()).argmax(1).numpy()
    assert (predicted == regression.predict(scaler.transform(features))).mean() > 0.99


TINY = dict(
    n=1000,
    majority_fraction=0.95,
    core_dim=2,
    core_variance=1.0,
    spurious_dim=2,
    spurious_variance=0.05,
    n_val=200,
    n_test=400,
)


RESULTS = {}


def worst_group(method, tmp_path, seed, **params):
    key = (method, seed, tuple(sorted(params.items())))
    if key in RESULTS:  # ERM is the baseline of every case: train it once
        return RESULTS[key]
    config = parse_config({
        "data": {"name": "toy_spurious", **TINY}, "model": {"name": "linear"},
        "method": {"name": method, **params},
        "train": {"epochs": 10, "batch_size": 32, "lr": 0.05, "optimizer": "sgd", "seed": seed,
                  "progress": False},
        "out": str(tmp_path / f"{method}-{seed}"),
    })  # fmt: skip
    RESULTS[key] = run(config).metrics["test"].worst_group_accuracy
    return RESULTS[key]


@pytest.mark.parametrize(
    "method, params, margin",
    [
        # Without balanced sampling, so that the win comes from the weights' updates: with
        # their sign flipped, worst-group accuracy falls far below ERM's.
        ("group_dro", {"step_size": 1.0, "balanced_sampling": False}, 0.05),
        ("subg", {}, 0.1),
        ("rwg", {}, 0.1),
        ("dfr", {}, 0.1),
        ("jtt", {"identification_epochs": 2, "upweight": 10}, 0.03),
    ],
)
def test_method_raises_worst_group_accuracy_over_erm(tmp_path, method, params, margin):
    """On a linear task with a 95% spurious feature, each method beats ERM's worst group."""
    erm = np.mean([worst_group("erm", tmp_path, seed) for seed in (0, 1)])
    ours = np.mean([worst_group(method, tmp_path, seed, **params) for seed in (0, 1)])
    assert ours > erm + margin, (ours, erm)


@pytest.mark.parametrize(
    "method, params, message",
    [
        ("jtt", {"upweight": 0}, "upweight must be >= 1; got 0"),
        ("jtt", {"identification_epochs": 0}, "identification_epochs must be >= 1; got 0"),
        ("dfr", {"refits": 0}, "refits must be >= 1"),
        ("cvar_dro", {"alpha": 1.5}, "alpha must lie in"),
        (
            "group_dro",
            {"generalization_adjustment": -1.0},
            "generalization_adjustment must be >= 0",
        ),
    ],
)
def test_invalid_method_parameters_are_named(tmp_path, method, params, message):
    with pytest.raises(ConfigError, match=message):
        worst_group(method, tmp_path, 0, **params)
    assert not (tmp_path / f"{method}-0").exists()  # a fixed config can run there next
