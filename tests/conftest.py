"""Shared fixtures: tiny synthetic grouped data, and gating of tests on offline data packages.

A test that needs a data package is marked ``@pytest.mark.data("mnist", ...)``. Where the
package is missing it is skipped with the install command as the reason, except under CI
(``CI`` set), where `make test` installs every package first and a missing one is a failure.
"""

from __future__ import annotations

import os

import pytest
import torch

from stalwart.data import GroupedDataset, Splits
from stalwart.data.packages import package
from stalwart.errors import DataMissingError

# One torch thread per test process: `make test` runs two processes on two cores, and two
# threads each would oversubscribe them (small networks then run 10-50x slower). Commands the
# tests start as subprocesses keep torch's default, as a user's would.
torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker in item.iter_markers("data"):
            for name in marker.args:
                if os.environ.get("CI"):
                    continue  # the test runs and fails with the install command in its error
                try:
                    package(name).require()
                except DataMissingError as error:
                    item.add_marker(pytest.mark.skip(reason=str(error)))


# A run config on small synthetic data (toy_spurious): a run trains in a second or two.
TOY_RUN = {
    "name": "toy",
    "data": {"name": "toy_spurious", "n": 200, "n_val": 80, "n_test": 80, "core_dim": 5,
             "spurious_dim": 5},
    "model": {"name": "mlp", "hidden": [16]},
    "train": {"epochs": 2, "batch_size": 32, "progress": False},
}  # fmt: skip


def toy_run(**train: object) -> dict:
    """``TOY_RUN`` with some training settings changed."""
    return {**TOY_RUN, "train": {**TOY_RUN["train"], **train}}


def make_grouped(n: int = 64, shape=(1, 8, 8), n_classes: int = 2, seed: int = 0, name="tiny"):
    """A small dataset whose label is visible in the inputs, with 4 groups (label × attribute)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, n_classes, (n,), generator=g)
    attribute = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, *shape, generator=g) + y.view(-1, *[1] * len(shape)).float()
    names = [f"y={c}, a={a}" for c in range(n_classes) for a in (0, 1)]
    return GroupedDataset(
        x, y, 2 * y + attribute, n_classes=n_classes, group_names=names, name=name
    )


@pytest.fixture
def tiny_splits() -> Splits:
    return Splits(
        train=make_grouped(64, seed=0, name="tiny/train"),
        val=make_grouped(32, seed=1, name="tiny/val"),
        test=make_grouped(32, seed=2, name="tiny/test"),
    )
