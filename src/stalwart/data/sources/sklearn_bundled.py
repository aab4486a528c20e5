"""Datasets bundled with scikit-learn (no download): the 8×8 digits."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits

from stalwart.data.catalog import register_source
from stalwart.data.core import GroupedDataset, Splits
from stalwart.data.splitting import check_fraction, split_off

TEST_FRACTION = 0.2


@register_source("digits")
def digits(*, seed: int = 0, val_fraction: float = 0.15) -> Splits:
    """scikit-learn's 1,797 8×8 digits, 10 classes, one group per class.

    A fixed 20% (the same for every seed) is the test set; validation is carved from the rest
    by ``seed``. Pixel values 0–16 are scaled to [0, 1].
    """
    check_fraction("val_fraction", val_fraction)
    bunch = load_digits()
    x = torch.from_numpy((bunch.images / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    pool, test = split_off(len(y), TEST_FRACTION, seed=0)
    train, val = split_off(len(pool), val_fraction, seed)
    names = [str(k) for k in range(10)]

    def make(positions: np.ndarray, split: str) -> GroupedDataset:
        p = torch.from_numpy(positions)
        return GroupedDataset(
            x[p], y[p], y[p], n_classes=10, group_names=names, class_names=names,
            index=p, name=f"digits/{split}",
        )  # fmt: skip

    return Splits(
        train=make(pool[train], "train"), val=make(pool[val], "val"), test=make(test, "test")
    )
