"""Seeded, disjoint splits of a pool of examples."""

from __future__ import annotations

import numpy as np

from stalwart.errors import ConfigError


def check_fraction(name: str, value: float) -> None:
    """Raise ``ConfigError`` unless ``0 < value < 1``."""
    if not 0.0 < value < 1.0:
        raise ConfigError(f"{name} must lie strictly between 0 and 1; got {value}")


def split_off(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into (kept, split-off) positions, ``fraction`` of them split off."""
    order = np.random.default_rng(seed).permutation(n)
    n_off = max(1, round(fraction * n))
    return np.sort(order[n_off:]), np.sort(order[:n_off])


def exact_bernoulli(n: int, p: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` booleans, exactly ``round(p·n)`` of them true, in random order.

    Used to set how often a spurious attribute agrees with the label: exact counts give the
    configured correlation without sampling noise, so balanced splits are exactly balanced.
    """
    flags = np.zeros(n, dtype=bool)
    flags[: round(p * n)] = True
    return rng.permutation(flags)
