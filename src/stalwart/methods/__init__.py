"""Training methods: each returns a loss; the engine steps."""

from __future__ import annotations

from typing import Any

from stalwart.data.core import GroupedDataset
from stalwart.methods.adversarial import TRADES, PGDAdversarialTraining
from stalwart.methods.base import Method
from stalwart.methods.catalog import METHODS, STAGED, all_method_names, registry_of
from stalwart.methods.cvar_dro import CVaRDRO
from stalwart.methods.erm import ERM
from stalwart.methods.group_dro import GroupDRO
from stalwart.methods.rebalancing import Rebalanced
from stalwart.methods.stages import StageContext

__all__ = [
    "ERM",
    "METHODS",
    "STAGED",
    "CVaRDRO",
    "GroupDRO",
    "Method",
    "PGDAdversarialTraining",
    "Rebalanced",
    "TRADES",
    "StageContext",
    "all_method_names",
    "build",
    "registry_of",
]


def build(name: str, train: GroupedDataset, **params: Any) -> Method:
    """Build the method ``name`` for training on ``train``."""
    return METHODS.build(name, train, **params)


# Staged methods compose fit(), which imports this package: register them last.
from stalwart.methods import certified as _certified  # noqa: E402, F401
from stalwart.methods import dfr as _dfr  # noqa: E402, F401
from stalwart.methods import jtt as _jtt  # noqa: E402, F401
from stalwart.methods import rst as _rst  # noqa: E402, F401
