"""stalwart: machine learning that holds up.

>>> from stalwart import data, models, fit, evaluate
>>> splits = data.load("dominoes", spurious_correlation=0.95, seed=0)
>>> model = models.build("cnn", splits.train)
>>> result = fit(model, "erm", splits, epochs=10, lr=1e-3, select="worst_group_accuracy")
>>> print(evaluate(result.model, splits.test))
"""

from stalwart import attacks, data, methods, metrics, models
from stalwart.config import RunConfig, TrainConfig
from stalwart.engine import FitResult, evaluate, fit

__version__ = "0.1.0"

__all__ = [
    "FitResult",
    "RunConfig",
    "TrainConfig",
    "__version__",
    "attacks",
    "data",
    "evaluate",
    "fit",
    "methods",
    "metrics",
    "models",
]
