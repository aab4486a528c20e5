"""The registry of attacks: each registers under its name with what it supports.

An attack is a function ``attack(model, x, y, *, budget=..., ...) -> adversarial x``; its
other keyword parameters (``steps``, ``queries``, ``seed``...) are the settings it reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from stalwart.registry import Registry


@dataclass(frozen=True)
class AttackInfo:
    """What is known about an attack.

    Attributes:
        norms: the budgets' norms it implements.
        gradients: whether it reads the model's input gradients (white-box) or only its
            outputs (black-box, the check against gradient masking).
    """

    norms: tuple[str, ...]
    gradients: bool


ATTACKS: Registry = Registry("attack", info_type=AttackInfo)
