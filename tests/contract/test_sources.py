"""The contract every registered data source keeps, run over the whole registry.

A new source is covered as soon as it is registered: it must load with its defaults, give
consistent train/val/test splits, be a pure function of its seed, and train a model.
"""

from functools import cache

import pytest
import torch
import torch.nn.functional as F

from stalwart import data, models
from stalwart.data import Batch, GroupedDataset, Splits, iterate_batches

SPLITS = ("train", "val", "test")


def sources():
    return [
        pytest.param(name, marks=pytest.mark.data(*data.REQUIRES[name]))
        for name in data.SOURCES.names()
    ]


@cache
def default_splits(name: str) -> Splits:
    return data.load(name)


@pytest.fixture(scope="module", autouse=True)
def _free_cached_splits():
    yield
    default_splits.cache_clear()


def test_registry_is_not_empty_and_requires_is_complete():
    names = data.SOURCES.names()
    assert {"toy_spurious", "digits"} <= set(names)
    for name in names:
        assert name in data.REQUIRES
        for package in data.REQUIRES[name]:
            assert package in data.PACKAGES


@pytest.mark.parametrize("name", sources())
def test_splits_are_consistent(name):
    splits = default_splits(name)
    assert isinstance(splits, Splits)
    reference = splits.train
    for split in SPLITS:
        ds = getattr(splits, split)
        assert isinstance(ds, GroupedDataset), split
        assert len(ds) > 0, split
        assert ds.input_shape == reference.input_shape, split
        assert ds.n_classes == reference.n_classes >= 2, split
        assert ds.group_names == reference.group_names, split
        assert len(ds.x) == len(ds.y) == len(ds.group) == len(ds.index)
        assert ds.x.dtype == torch.float32, split
    for name_, extra in splits.extra.items():
        assert isinstance(extra, GroupedDataset) and len(extra) > 0, name_
        assert extra.input_shape == reference.input_shape


@pytest.mark.parametrize("name", sources())
def test_values_in_range(name):
    splits = default_splits(name)
    for split, ds in {"train": splits.train, **splits.evaluation_sets()}.items():
        assert ds.y.min() >= 0 and ds.y.max() < ds.n_classes, split
        assert ds.group.min() >= 0 and ds.group.max() < ds.n_groups, split
        assert torch.isfinite(ds.x).all(), split
        assert len(torch.unique(ds.index)) == len(ds), f"{split}: duplicate example indices"
        assert ds.group_counts().sum() == len(ds)


@pytest.mark.parametrize("name", sources())
def test_every_split_has_every_class(name):
    splits = default_splits(name)
    for split in SPLITS:
        counts = getattr(splits, split).class_counts()
        assert len(counts) == splits.train.n_classes
        assert (counts > 0).all(), f"{split} lacks classes: {counts.tolist()}"


@pytest.mark.parametrize("name", sources())
def test_first_batch_is_well_formed(name):
    train = default_splits(name).train
    batch = next(iterate_batches(train, 16))
    assert isinstance(batch, Batch)
    size = min(16, len(train))
    assert batch.x.shape == (size, *train.input_shape)
    assert batch.x.dtype.is_floating_point
    for field in ("y", "group", "index"):
        tensor = getattr(batch, field)
        assert tensor.shape == (size,), field
        assert tensor.dtype == torch.long, field
    assert torch.equal(batch.y, train.y[:size])


@pytest.mark.parametrize("name", sources())
def test_pure_function_of_seed(name):
    first = default_splits(name)
    again = data.load(name, seed=0)
    for split in SPLITS:
        a, b = getattr(first, split), getattr(again, split)
        for field in ("x", "y", "group", "index"):
            assert torch.equal(getattr(a, field), getattr(b, field)), f"{split}.{field}"
    other = data.load(name, seed=1)
    assert other.train.input_shape == first.train.input_shape
    same_size = len(other.train) == len(first.train)
    assert not (same_size and torch.equal(other.train.x, first.train.x)), "seed has no effect"


@pytest.mark.parametrize("name", sources())
def test_three_training_steps(name):
    train = default_splits(name).train
    torch.manual_seed(0)
    model = models.build("mlp", train)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    before = [p.detach().clone() for p in model.parameters()]
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))
    batches = iterate_batches(train, 16, order)
    for _ in range(3):
        batch = next(batches)
        logits = model(batch.x)
        assert logits.shape == (len(batch.y), train.n_classes)
        loss = F.cross_entropy(logits, batch.y)
        assert torch.isfinite(loss), loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = list(model.parameters())
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, after, strict=True))
