"""Linear and k-slab data of Shah et al., "The Pitfalls of Simplicity Bias" (arXiv 2006.07710).

Every coordinate lies in [−1, 1] and is drawn independently given the balanced label y ∈ {0, 1}:

- a **linear** coordinate: U[m, 1] for y = 1 and U[−1, −m] for y = 0 (margin m);
- a **k-slab** coordinate (k = 3, 5, 7): [−1, 1] cut into k slabs of width
  w = (2 − 2m(k − 1))/k separated by gaps of 2m; the centre slab belongs to y = 0 and the
  classes alternate outwards. A class picks among its slabs with the paper's probabilities
  (``SLAB_PROBABILITIES``: for k = 5, y = 0 lies in the centre slab w.p. 3/4 and in the outer
  ones w.p. 1/4; for k = 7, y = 1 lies in the inner slabs w.p. 7/8), a side with probability
  1/2, and a point uniformly in the slab.

A linear coordinate is the *simple* feature (one threshold) and k-slab coordinates are complex
(k − 1 thresholds); both predict the label perfectly. The datasets (d = 50 by default):

- ``lms``: one linear coordinate and d − 1 k-slab coordinates. LMS-5 is ``lms`` with
  ``slabs=5``; L̂MS-7 is ``slabs=7, corrupt_linear=0.1``: a tenth of the points have their
  linear coordinate redrawn from U[−m, m], so it predicts only about 95% of labels while the
  7-slab coordinates still predict all of them.
- ``ms``: one ``simple_slabs``-slab coordinate and d − 1 ``slabs``-slab coordinates. MS-(5,7)
  is ``ms`` with ``simple_slabs=5, slabs=7``; MS-7 is ``simple_slabs=7, slabs=7``.

Then the rows are multiplied by a random orthonormal W (``rotate=True``): x = z @ W, so no
single input coordinate is the simple feature. W and the blocks (``simple``: latent coordinate
0, ``complex``: the others) travel with every split as ``GroupedDataset.blocks`` so that the
diagnostics of ``stalwart.simplicity`` can undo the rotation.

Groups are 2·y + [the simple coordinate agrees with y], so a corrupted linear coordinate
(L̂MS-7) forms the minority groups and every worst-group metric applies unchanged.

Conventions, and how they relate to the reference code (harshays/simplicitybiaspitfalls,
``scripts/gendata.py``): the same margins, slab widths and slab probabilities, with width 1.
Labels here are exactly balanced (the reference draws each label with probability 1/2), and
the splits come from one seeded generator (train, val and test drawn apart, not sliced).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from stalwart.data.blocks import InputBlocks
from stalwart.data.catalog import register_source
from stalwart.data.core import GroupedDataset, Splits
from stalwart.errors import ConfigError

MARGIN = 0.1
"""The paper's margin m (``eff_margin`` 0.1 at width 1)."""

SLAB_COUNTS = (3, 5, 7)

SLAB_PROBABILITIES: dict[int, dict[int, tuple[float, ...]]] = {
    3: {0: (0.0, 1.0, 0.0), 1: (0.5, 0.0, 0.5)},
    5: {0: (0.125, 0.0, 0.75, 0.0, 0.125), 1: (0.0, 0.5, 0.0, 0.5, 0.0)},
    7: {
        0: (0.0, 0.25, 0.0, 0.5, 0.0, 0.25, 0.0),
        1: (0.0625, 0.0, 0.4375, 0.0, 0.4375, 0.0, 0.0625),
    },
}
"""k → class → probability of each slab, left to right (the reference's ``slab_p_vals``:
3/4 in the centre for 5 slabs, 7/8 inner for 7 slabs, sides chosen with probability 1/2)."""

NAMED_DATASETS: dict[str, tuple[str, dict[str, object]]] = {
    "LMS-5": ("lms", {"slabs": 5}),
    "MS-(5,7)": ("ms", {"simple_slabs": 5, "slabs": 7}),
    "L̂MS-7": ("lms", {"slabs": 7, "corrupt_linear": 0.1, "n_train": 40_000}),
    "MS-7": ("ms", {"simple_slabs": 7, "slabs": 7, "n_train": 40_000, "n_test": 10_000}),
}
"""The paper's datasets as (source, parameters): ``data.load(source, **parameters)``."""

GROUP_NAMES = [
    "y=0, simple disagrees", "y=0, simple agrees", "y=1, simple disagrees", "y=1, simple agrees",
]  # fmt: skip
CLASS_NAMES = ["0", "1"]


def slab_width(slabs: int, margin: float = MARGIN) -> float:
    """Width of each of ``slabs`` slabs filling [−1, 1] with gaps of 2·margin between them."""
    return (2.0 - 2.0 * margin * (slabs - 1)) / slabs


def slab_edges(slabs: int, margin: float = MARGIN) -> np.ndarray:
    """``(slabs, 2)`` lower and upper ends of each slab, left to right."""
    width = slab_width(slabs, margin)
    lower = -1.0 + np.arange(slabs) * (width + 2 * margin)
    return np.column_stack([lower, lower + width])


def slab_classes(slabs: int) -> np.ndarray:
    """The class of each slab, left to right: the centre slab is class 0, then alternating."""
    return (np.abs(np.arange(slabs) - slabs // 2) % 2).astype(np.int64)


def slab_of(values: np.ndarray, slabs: int, margin: float = MARGIN) -> np.ndarray:
    """The slab each value lies in (−1 for a gap or outside [−1, 1])."""
    edges = slab_edges(slabs, margin)
    values = np.asarray(values, dtype=np.float64)[..., None]
    inside = (values >= edges[:, 0] - 1e-12) & (values <= edges[:, 1] + 1e-12)
    return np.where(inside.any(-1), inside.argmax(-1), -1)


def check_slab_parameters(slabs: int, margin: float, name: str = "slabs") -> None:
    """Raise ``ConfigError`` for a slab count other than 3, 5 or 7, or a margin too wide."""
    if isinstance(slabs, bool) or slabs not in SLAB_COUNTS:
        raise ConfigError(
            f"{name} must be one of {list(SLAB_COUNTS)} (an odd count with the paper's slab "
            f"probabilities); got {slabs!r}"
        )
    if not 0 < margin < 1 / (slabs - 1):
        raise ConfigError(
            f"margin must lie in (0, {1 / (slabs - 1):.4g}) for {slabs} slabs, so that the "
            f"slabs keep a positive width (gaps of 2·margin fill [−1, 1] at 1/(k−1)); "
            f"got {margin!r}"
        )


def sample_linear(y: np.ndarray, rng: np.random.Generator, margin: float = MARGIN) -> np.ndarray:
    """A linear coordinate: U[margin, 1] for y = 1, U[−1, −margin] for y = 0."""
    return (2 * y - 1) * rng.uniform(margin, 1.0, size=len(y))


def sample_slabs(
    y: np.ndarray, slabs: int, rng: np.random.Generator, margin: float = MARGIN
) -> np.ndarray:
    """A k-slab coordinate: each point in a slab of its class, chosen with the paper's odds."""
    edges = slab_edges(slabs, margin)
    chosen = np.empty(len(y), dtype=np.int64)
    for label in (0, 1):
        rows = np.flatnonzero(y == label)
        chosen[rows] = rng.choice(slabs, size=len(rows), p=SLAB_PROBABILITIES[slabs][label])
    return rng.uniform(edges[chosen, 0], edges[chosen, 1])


def orthonormal(dim: int, rng: np.random.Generator) -> np.ndarray:
    """A random orthonormal ``(dim, dim)`` matrix, uniform (Haar) over rotations and reflections."""
    q, r = np.linalg.qr(rng.normal(size=(dim, dim)))
    return q * np.sign(np.diag(r))  # the sign fix makes the draw uniform, not just orthonormal


def _labels(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n) % 2)


def _check_sizes(dim: int, **sizes: int) -> None:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ConfigError(
            f"dim must be at least 2 (one simple and one complex coordinate); got {dim!r}"
        )
    for key, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 4:
            raise ConfigError(f"{key} must be a whole number of at least 4 examples; got {value!r}")


def _splits(
    source: str,
    simple: str,
    complex_slabs: int,
    dim: int,
    margin: float,
    corrupt: float,
    sizes: tuple[int, int, int],
    rotate: bool,
    seed: int,
) -> Splits:
    """Draw train, val and test of a simple coordinate (linear or k-slab) and slab coordinates."""
    rng = np.random.default_rng([seed, dim, complex_slabs])
    rotation = orthonormal(dim, rng) if rotate else None
    blocks = InputBlocks.from_indices(
        (dim,), {"simple": [0], "complex": slice(1, dim)},
        None if rotation is None else torch.from_numpy(rotation).float(), simple="simple",
        agreeing_groups=(1, 3),
    )  # fmt: skip
    made = []
    for split, n in zip(("train", "val", "test"), sizes, strict=True):
        y = _labels(n, rng)
        z = np.empty((n, dim))
        if simple == "linear":
            z[:, 0] = sample_linear(y, rng, margin)
            corrupted = rng.random(n) < corrupt
            z[corrupted, 0] = rng.uniform(-margin, margin, size=int(corrupted.sum()))
            agrees = (z[:, 0] > 0) == (y == 1)
        else:
            simple_slabs = int(simple)
            z[:, 0] = sample_slabs(y, simple_slabs, rng, margin)
            agrees = slab_classes(simple_slabs)[slab_of(z[:, 0], simple_slabs, margin)] == y
        for column in range(1, dim):
            z[:, column] = sample_slabs(y, complex_slabs, rng, margin)
        x = z @ rotation if rotation is not None else z
        made.append(
            GroupedDataset(
                torch.from_numpy(x).float(),
                torch.from_numpy(y),
                torch.from_numpy(2 * y + agrees.astype(np.int64)),
                n_classes=2,
                group_names=GROUP_NAMES,
                class_names=CLASS_NAMES,
                name=f"{source}/{split}",
                blocks=blocks,
            )  # fmt: skip
        )
    return Splits(*made)


@register_source("lms")
def lms(
    *,
    slabs: Literal[3, 5, 7] = 5,
    dim: int = 50,
    corrupt_linear: float = 0.0,
    margin: float = MARGIN,
    n_train: int = 100_000,
    n_val: int = 5_000,
    n_test: int = 10_000,
    rotate: bool = True,
    seed: int = 0,
) -> Splits:
    """One linear and ``dim − 1`` k-slab coordinates, rotated (arXiv 2006.07710).

    LMS-5 is the default; L̂MS-7 is ``slabs=7, corrupt_linear=0.1, n_train=40_000``.
    """
    check_slab_parameters(slabs, margin)
    if not 0.0 <= corrupt_linear <= 1.0:
        raise ConfigError(f"corrupt_linear must be a fraction in [0, 1]; got {corrupt_linear!r}")
    _check_sizes(dim, n_train=n_train, n_val=n_val, n_test=n_test)
    return _splits(
        "lms", "linear", slabs, dim, margin, corrupt_linear, (n_train, n_val, n_test), rotate, seed
    )


@register_source("ms")
def ms(
    *,
    simple_slabs: Literal[3, 5, 7] = 5,
    slabs: Literal[3, 5, 7] = 7,
    dim: int = 50,
    margin: float = MARGIN,
    n_train: int = 100_000,
    n_val: int = 5_000,
    n_test: int = 50_000,
    rotate: bool = True,
    seed: int = 0,
) -> Splits:
    """One ``simple_slabs``-slab and ``dim − 1`` ``slabs``-slab coordinates, rotated (2006.07710).

    MS-(5,7) is the default; MS-7 is ``simple_slabs=7``.
    """
    check_slab_parameters(simple_slabs, margin, "simple_slabs")
    check_slab_parameters(slabs, margin)
    _check_sizes(dim, n_train=n_train, n_val=n_val, n_test=n_test)
    return _splits(
        "ms", str(simple_slabs), slabs, dim, margin, 0.0, (n_train, n_val, n_test), rotate, seed
    )
