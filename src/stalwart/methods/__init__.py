"""One-stage training methods: each returns a loss; the engine steps.

Multi-stage recipes (JTT, DFR, RST) live one floor up in ``stalwart.recipes`` and register in
the same ``METHODS`` registry; ``stalwart.fit`` resolves a name to either.
"""

from __future__ import annotations

from stalwart.engine.method import Method
from stalwart.methods import certified as _certified  # noqa: F401  (registers "ibp")
from stalwart.methods.adversarial import TRADES, PGDAdversarialTraining
from stalwart.methods.catalog import METHODS, MethodInfo, build, method_info, register_method
from stalwart.methods.cvar_dro import CVaRDRO
from stalwart.methods.erm import ERM
from stalwart.methods.group_dro import GroupDRO
from stalwart.methods.rebalancing import Rebalanced

__all__ = [
    "ERM",
    "METHODS",
    "TRADES",
    "CVaRDRO",
    "GroupDRO",
    "Method",
    "MethodInfo",
    "PGDAdversarialTraining",
    "Rebalanced",
    "build",
    "method_info",
    "register_method",
]
