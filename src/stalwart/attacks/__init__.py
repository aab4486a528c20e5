"""Adversarial attacks (FGSM, PGD under L∞ and L2, Square) and robust accuracy, per group.

Every gradient attack runs on one projected-gradient core (``core.py``: a ``Budget``, an
objective, a projection, a step rule); attacks are registered in ``ATTACKS`` by name.
"""

from stalwart.attacks.catalog import ATTACKS, AttackInfo
from stalwart.attacks.core import (
    NORMS,
    Annulus,
    Box,
    Budget,
    Chain,
    CrossEntropy,
    L2Ball,
    LinfBall,
    MarginRows,
    NegativeBCE,
    Objective,
    SearchResult,
    TradesKL,
    gaussian_start,
    normalized_step,
    projected_gradient,
    sign_step,
    uniform_ball_start,
)
from stalwart.attacks.pgd import fgsm, pgd
from stalwart.attacks.robust import (
    RobustEvaluation,
    attack_names,
    check_attack_settings,
    robust_accuracy,
)
from stalwart.attacks.square import square_attack

__all__ = [
    "ATTACKS",
    "NORMS",
    "Annulus",
    "AttackInfo",
    "Box",
    "Budget",
    "Chain",
    "CrossEntropy",
    "L2Ball",
    "LinfBall",
    "MarginRows",
    "NegativeBCE",
    "Objective",
    "RobustEvaluation",
    "SearchResult",
    "TradesKL",
    "attack_names",
    "check_attack_settings",
    "fgsm",
    "gaussian_start",
    "normalized_step",
    "pgd",
    "projected_gradient",
    "robust_accuracy",
    "sign_step",
    "square_attack",
    "uniform_ball_start",
]
