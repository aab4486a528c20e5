"""Multi-stage recipes (JTT, DFR, RST) and ``fit`` by method name.

A recipe composes ``fit`` calls (train, use the result, train again) and registers in the one
method registry with ``staged=True``; ``fit`` here takes any registered name, one-stage or
multi-stage, and is what ``stalwart.fit`` is.
"""

from stalwart.recipes import dfr as _dfr  # noqa: F401  (registers "dfr")
from stalwart.recipes import jtt as _jtt  # noqa: F401  (registers "jtt")
from stalwart.recipes import rst as _rst  # noqa: F401  (registers "rst")
from stalwart.recipes.stage import StageContext, final_stage, locked, shared_stage
from stalwart.recipes.train import fit, run_method

__all__ = ["StageContext", "final_stage", "fit", "locked", "run_method", "shared_stage"]
