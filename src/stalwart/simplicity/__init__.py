"""Simplicity bias: which input block a trained model relies on (Shah et al., arXiv 2006.07710).

>>> from stalwart import data, simplicity
>>> splits = data.load("lms", slabs=5, dim=50, n_train=100_000, seed=0)
>>> report = simplicity.randomized_auc(model, splits.test)   # the data's blocks: simple, complex
>>> report.randomized["simple"].auc                            # ≈ 0.5 under extreme simplicity bias
>>> simplicity.universal_perturbation(model, splits.test, eps=0.5).share   # budget per block

- ``randomized``: standard, S-randomized and Sᶜ-randomized AUC and accuracy for any model and
  any dataset that declares input blocks (``stalwart.data.blocks``); per-coordinate accuracy.
- ``uap``: a universal adversarial perturbation and the share of its budget on each block.

The slab datasets (LMS-5, MS-(5,7), L̂MS-7, MS-7) are the ``lms`` and ``ms`` data sources;
``stalwart.data.sources.slabs.NAMED_DATASETS`` gives the parameters of each.
"""

from stalwart.simplicity.randomized import (
    RandomizedReport,
    Scores,
    agreeing_subset,
    coordinate_accuracy,
    randomized_auc,
    resolve_blocks,
    scores,
)
from stalwart.simplicity.uap import UniversalPerturbation, universal_perturbation

__all__ = [
    "RandomizedReport",
    "Scores",
    "UniversalPerturbation",
    "agreeing_subset",
    "coordinate_accuracy",
    "randomized_auc",
    "resolve_blocks",
    "scores",
    "universal_perturbation",
]
