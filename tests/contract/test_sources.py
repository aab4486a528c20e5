"""The contract every registered data source keeps, run over the whole registry.

A new source is covered as soon as it is registered: it must load with its defaults, give
consistent train/val/test splits, be a pure function of its seed, and train a model.

Sources that read a user's own copy (``LOCAL_COPY``: Waterbirds, CelebA, MultiNLI,
CivilComments) cannot load with their defaults here; they run the same battery on tiny copies
written in their standard layouts (tests/data/fixtures_local.py), passed as ``root``. Their
splits are fixed by the dataset's own metadata, so for them the seed must change nothing.
"""

import importlib.util
import sys
from functools import cache
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stalwart import data, models
from stalwart.data import Batch, GroupedDataset, Splits, iterate_batches
from stalwart.data.sources.local_copies import LOCAL_COPY

SPLITS = ("train", "val", "test")
LOCAL_ROOTS: dict[str, str] = {}


def _fixture_writers():
    """tests/data/fixtures_local.py, imported by path (test folders are not packages)."""
    if "fixtures_local" in sys.modules:
        return sys.modules["fixtures_local"]
    path = Path(__file__).resolve().parents[1] / "data" / "fixtures_local.py"
    spec = importlib.util.spec_from_file_location("fixtures_local", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fixtures_local"] = module
    spec.loader.exec_module(module)
    return module


def params(name: str) -> dict:
    """Extra parameters a source needs here: the fixture folder of a local-copy source."""
    return {"root": LOCAL_ROOTS[name]} if name in LOCAL_COPY else {}


def sources():
    return [
        pytest.param(name, marks=pytest.mark.data(*data.REQUIRES[name]))
        for name in data.SOURCES.names()
    ]


@cache
def default_splits(name: str) -> Splits:
    return data.load(name, **params(name))


@pytest.fixture(scope="module", autouse=True)
def _free_cached_splits(tmp_path_factory):
    writers = _fixture_writers()
    for name in sorted(LOCAL_COPY):
        folder = tmp_path_factory.mktemp("local_copies") / name
        writers.write_local_copy(name, folder, per_group=12)  # 48+ examples: 3 batches of 16
        LOCAL_ROOTS[name] = str(folder)
    yield
    default_splits.cache_clear()
    LOCAL_ROOTS.clear()


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
    again = data.load(name, seed=0, **params(name))
    for split in SPLITS:
        a, b = getattr(first, split), getattr(again, split)
        for field in ("x", "y", "group", "index"):
            assert torch.equal(getattr(a, field), getattr(b, field)), f"{split}.{field}"
    other = data.load(name, seed=1, **params(name))
    assert other.train.input_shape == first.train.input_shape
    if name in LOCAL_COPY:  # the dataset's own metadata fixes the splits
        assert torch.equal(other.train.index, first.train.index), "seed changed a fixed split"
        return
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


@pytest.mark.parametrize("name", sources())
def test_declared_input_blocks_fit_every_split(name):
    splits = default_splits(name)
    blocks = splits.train.blocks
    for split, ds in {"train": splits.train, **splits.evaluation_sets()}.items():
        assert (ds.blocks is None) == (blocks is None), split
        if blocks is not None:
            assert ds.blocks.input_shape == ds.input_shape, split
            assert ds.blocks.names == blocks.names, split
            if blocks.rotation is not None:
                assert torch.equal(ds.blocks.rotation, blocks.rotation), split
