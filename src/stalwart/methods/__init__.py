"""Training methods: each returns a loss; the engine steps."""

from __future__ import annotations

from typing import Any

from stalwart.data.core import GroupedDataset
from stalwart.methods import erm as _erm  # noqa: F401  (importing registers the method)
from stalwart.methods.base import Method
from stalwart.methods.catalog import METHODS
from stalwart.methods.erm import ERM

__all__ = ["ERM", "METHODS", "Method", "build"]


def build(name: str, train: GroupedDataset, **params: Any) -> Method:
    """Build the method ``name`` for training on ``train``."""
    return METHODS.build(name, train, **params)
