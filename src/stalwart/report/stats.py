"""Mean ± standard deviation over seeds, the one way every table summarises repeated runs.

``statistics.fmean`` and ``statistics.stdev`` are exact up to the final rounding (they sum
exactly), so a summary does not depend on the order runs finished in.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable


def mean_std(values: Iterable[float]) -> dict[str, float]:
    """``{"mean": …, "std": …}`` of ``values``: the sample standard deviation, 0 for one value."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_std needs at least one value")
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def percent_cell(stat: dict[str, float], digits: int = 1) -> str:
    """``"85.1 ± 2.6"``: a mean ± std of fractions, in percent."""
    if math.isnan(stat["mean"]):
        return "-"
    return f"{100 * stat['mean']:.{digits}f} ± {100 * stat['std']:.{digits}f}"


def percent(value: float | None, digits: int = 1) -> str:
    """``"85.1"``: a fraction in percent; ``-`` for a missing or undefined value."""
    return "-" if value is None or value != value else f"{100 * value:.{digits}f}"
