"""Adversarial attacks (FGSM, PGD under L∞ and L2, Square) and robust accuracy, per group."""

from stalwart.attacks.pgd import NORMS, fgsm, pgd
from stalwart.attacks.robust import ATTACKS, RobustEvaluation, robust_accuracy
from stalwart.attacks.square import square_attack

__all__ = [
    "ATTACKS",
    "NORMS",
    "RobustEvaluation",
    "fgsm",
    "pgd",
    "robust_accuracy",
    "square_attack",
]
