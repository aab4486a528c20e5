"""The registry of training methods.

Each entry is a function ``(train: GroupedDataset, *, hyperparameters) -> Method``: methods
that depend on the data (group counts, class counts) read them from the training set.
"""

from __future__ import annotations

from stalwart.methods.base import Method
from stalwart.registry import Registry

METHODS: Registry[Method] = Registry("method")
