"""The synthetic spurious-correlation data of Sagawa et al. 2020 (arXiv 2005.04345).

Labels y and spurious attributes a are ±1; the four groups are (y, a). An input is
``[x_core, x_spurious, x_noise]`` with ``x_core ~ N(y·1, σ²_core I)``, ``x_spurious ~
N(a·1, σ²_spu I)`` and ``x_noise ~ N(0, σ²_noise/d_noise I)``. In training, each majority group
(y = a) holds ``n/2·p_maj`` examples and each minority group ``n/2·(1−p_maj)``; validation and
test are balanced. The defaults are the paper's random-features setting (Sec. 4): n = 3000,
p_maj = 0.9, 100 core dimensions of variance 100, 100 spurious dimensions of variance 1.
The explicit-memorization setting (Sec. 5) is ``core_dim=1, core_variance=1, spurious_dim=1,
spurious_variance=0.01, noise_dim=N``.
"""

from __future__ import annotations

import numpy as np
import torch

from stalwart.data.catalog import register_source
from stalwart.data.core import GroupedDataset, Splits
from stalwart.errors import ConfigError

GROUP_NAMES = ["y=0, a=0", "y=0, a=1", "y=1, a=0", "y=1, a=1"]


def _sample(
    counts: dict[tuple[int, int], int], rng: np.random.Generator, dims: tuple[int, int, int],
    variances: tuple[float, float, float], split: str,
) -> GroupedDataset:  # fmt: skip
    core_dim, spurious_dim, noise_dim = dims
    core_var, spurious_var, noise_var = variances
    parts, labels, groups = [], [], []
    for (y, a), count in counts.items():
        y_sign, a_sign = 2 * y - 1, 2 * a - 1
        core = rng.normal(y_sign, np.sqrt(core_var), size=(count, core_dim))
        spurious = rng.normal(a_sign, np.sqrt(spurious_var), size=(count, spurious_dim))
        noise = rng.normal(0.0, np.sqrt(noise_var / max(noise_dim, 1)), size=(count, noise_dim))
        parts.append(np.concatenate([core, spurious, noise], axis=1))
        labels.append(np.full(count, y))
        groups.append(np.full(count, 2 * y + a))
    order = rng.permutation(sum(counts.values()))
    return GroupedDataset(
        torch.from_numpy(np.concatenate(parts)[order].astype(np.float32)),
        torch.from_numpy(np.concatenate(labels)[order]),
        torch.from_numpy(np.concatenate(groups)[order]),
        n_classes=2, group_names=GROUP_NAMES, name=f"toy_spurious/{split}",
    )  # fmt: skip


def _balanced(n: int) -> dict[tuple[int, int], int]:
    return {(y, a): n // 4 for y in (0, 1) for a in (0, 1)}


@register_source("toy_spurious")
def toy_spurious(
    *,
    n: int = 3000,
    majority_fraction: float = 0.9,
    core_dim: int = 100,
    core_variance: float = 100.0,
    spurious_dim: int = 100,
    spurious_variance: float = 1.0,
    noise_dim: int = 0,
    noise_variance: float = 1.0,
    n_val: int = 600,
    n_test: int = 3000,
    seed: int = 0,
) -> Splits:
    """Gaussian core, spurious and noise features with a majority fraction (arXiv 2005.04345)."""
    if not 0.5 <= majority_fraction < 1.0:
        raise ConfigError(f"majority_fraction must lie in [0.5, 1); got {majority_fraction}")
    for key, value in {"n": n, "n_val": n_val, "n_test": n_test}.items():
        if value < 4:
            raise ConfigError(f"{key} must be at least 4 (one example per group); got {value}")
    for key, value in {"core_dim": core_dim, "spurious_dim": spurious_dim}.items():
        if value < 1:
            raise ConfigError(f"{key} must be at least 1; got {value}")
    if noise_dim < 0 or min(core_variance, spurious_variance, noise_variance) <= 0:
        raise ConfigError("noise_dim must be >= 0 and every variance positive")
    majority, minority = round(n / 2 * majority_fraction), round(n / 2 * (1 - majority_fraction))
    train_counts = {(0, 0): majority, (1, 1): majority, (0, 1): minority, (1, 0): minority}
    rng = np.random.default_rng(seed)
    dims = (core_dim, spurious_dim, noise_dim)
    variances = (core_variance, spurious_variance, noise_variance)
    return Splits(
        train=_sample(train_counts, rng, dims, variances, "train"),
        val=_sample(_balanced(n_val), rng, dims, variances, "val"),
        test=_sample(_balanced(n_test), rng, dims, variances, "test"),
    )
