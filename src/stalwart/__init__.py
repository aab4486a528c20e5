"""stalwart: machine learning that holds up.

>>> from stalwart import data, models, fit, evaluate
>>> splits = data.load("dominoes", spurious_correlation=0.95, seed=0)
>>> model = models.build("cnn", splits.train)
>>> result = fit(model, "erm", splits, epochs=10, lr=1e-3, select="worst_group_accuracy")
>>> print(evaluate(result.model, splits.test))

Subpackages load on first use (PEP 562), so ``import stalwart.certify`` pays for the verifier
alone, not for every method, pandas and scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name → (module, attribute or None for the module itself)
_LAZY = {
    "attacks": ("stalwart.attacks", None),
    "certify": ("stalwart.certify", None),
    "data": ("stalwart.data", None),
    "engine": ("stalwart.engine", None),
    "experiments": ("stalwart.experiments", None),
    "methods": ("stalwart.methods", None),
    "metrics": ("stalwart.metrics", None),
    "models": ("stalwart.models", None),
    "recipes": ("stalwart.recipes", None),
    "report": ("stalwart.report", None),
    "evaluate": ("stalwart.engine.evaluate", "evaluate"),
    "FitResult": ("stalwart.engine.fit", "FitResult"),
    "fit": ("stalwart.recipes.train", "fit"),
    "RunConfig": ("stalwart.config", "RunConfig"),
    "TrainConfig": ("stalwart.config", "TrainConfig"),
}

__all__ = [
    "FitResult",
    "RunConfig",
    "TrainConfig",
    "__version__",
    "attacks",
    "certify",
    "data",
    "engine",
    "evaluate",
    "experiments",
    "fit",
    "methods",
    "metrics",
    "models",
    "recipes",
    "report",
]


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'stalwart' has no attribute {name!r}") from None
    value = importlib.import_module(module)
    if attribute is not None:
        value = getattr(value, attribute)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


if TYPE_CHECKING:  # for type checkers and editors; nothing is imported at run time
    from stalwart import (
        attacks,
        certify,
        data,
        engine,
        experiments,
        methods,
        metrics,
        models,
        recipes,
        report,
    )
    from stalwart.config import RunConfig, TrainConfig
    from stalwart.engine.evaluate import evaluate
    from stalwart.engine.fit import FitResult
    from stalwart.recipes.train import fit
