"""What ``fit`` visits with each rebalancing method: the sampler used is the method's own.

Idrissi et al., arXiv 2110.14503: SUBY/RWY balance classes and read no group ids, SUBG/RWG
balance groups; group DRO (Sagawa et al., arXiv 1911.08731) samples groups equally often by
default. Every expectation below is counted from the examples ``fit`` actually fed the method.
"""

import pytest
import torch

from stalwart import fit, models
from stalwart.data import GroupedDataset, Splits
from stalwart.methods import build

# Groups (y, a): class balance and group balance differ, so a sampler balancing the wrong
# one is caught. Classes: 72 of y=0, 24 of y=1.
COUNTS = {(0, 0): 60, (0, 1): 12, (1, 0): 6, (1, 1): 18}
EPOCHS = 6


def imbalanced_splits():
    g = torch.Generator().manual_seed(0)
    labels, groups = [], []
    for group, ((y, _), count) in enumerate(COUNTS.items()):
        labels += [y] * count
        groups += [group] * count
    y, group = torch.tensor(labels), torch.tensor(groups)
    x = torch.randn(len(y), 2, generator=g) + y.view(-1, 1).float()
    names = [f"y={y}, a={a}" for y, a in COUNTS]
    train = GroupedDataset(x, y, group, n_classes=2, group_names=names)
    return Splits(train, train, train)


def visited(method, splits):
    """Dataset positions each epoch of ``fit`` handed to ``method.loss``, one tensor per epoch."""
    epochs, current = [], []
    original = method.loss

    def recording_loss(model, batch):
        current.append(batch.index.clone())
        return original(model, batch)

    def close_epoch(record):
        epochs.append(torch.cat(current))
        current.clear()

    method.loss = recording_loss
    torch.manual_seed(0)
    model = models.build("linear", splits.train)
    fit(model, method, splits, epochs=EPOCHS, batch_size=16, lr=0.05, optimizer="sgd",
        progress=False, on_epoch_end=close_epoch)  # fmt: skip
    return epochs


def shares(values, n_values):
    return torch.bincount(values, minlength=n_values).double() / len(values)


@pytest.mark.parametrize("name, balances", [("subg", "group"), ("suby", "y")])
def test_subsampling_visits_one_fixed_balanced_subset(name, balances):
    splits = imbalanced_splits()
    train = splits.train
    epochs = visited(build(name, train), splits)
    labels = getattr(train, balances)
    smallest = min(torch.bincount(labels).tolist())  # documented: every value cut to the rarest
    n_values = len(torch.unique(labels))
    first = epochs[0]
    assert len(first) == n_values * smallest == len(set(first.tolist()))
    assert torch.bincount(labels[first]).tolist() == [smallest] * n_values
    for epoch in epochs[1:]:  # drawn once, before training: the same examples every epoch
        assert sorted(epoch.tolist()) == sorted(first.tolist())
    if balances == "y":  # class balance only: group 1 (y=0, a=1) is not kept whole
        assert torch.bincount(train.group[first], minlength=4).tolist() != [6, 6, 6, 6]


@pytest.mark.parametrize(
    "name, params, balances",
    [("rwg", {}, "group"), ("rwy", {}, "y"), ("group_dro", {}, "group")],
)
def test_reweighting_samples_balanced_draws_per_epoch(name, params, balances):
    splits = imbalanced_splits()
    train = splits.train
    epochs = visited(build(name, train, **params), splits)
    assert all(len(epoch) == len(train) for epoch in epochs)  # one epoch: n draws
    drawn = torch.cat(epochs)
    labels = getattr(train, balances)
    n_values = len(torch.unique(labels))
    # 576 draws: a share's standard deviation is ≤ 0.021; unbalanced, the shares would be
    # (0.75, 0.25) over classes and (0.62, 0.12, 0.06, 0.19) over groups.
    uniform = torch.full((n_values,), 1 / n_values, dtype=torch.double)
    assert torch.allclose(shares(labels[drawn], n_values), uniform, atol=0.07)
    if balances == "y":
        # Within a class, groups keep their proportions: y=0 splits 60:12, y=1 splits 6:18.
        expected = torch.tensor([60 / 72, 12 / 72, 6 / 24, 18 / 24], dtype=torch.double) / 2
        assert torch.allclose(shares(train.group[drawn], 4), expected, atol=0.07)
    assert len(set(drawn.tolist())) > 0.8 * len(train)  # with replacement, from the whole set


def test_group_dro_without_balanced_sampling_visits_every_example_once():
    splits = imbalanced_splits()
    for epoch in visited(build("group_dro", splits.train, balanced_sampling=False), splits):
        assert sorted(epoch.tolist()) == list(range(len(splits.train)))
