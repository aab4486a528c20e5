"""Checks that a robust accuracy is not an artefact of gradient masking.

The checklist of Athalye, Carlini and Wagner (ICML 2018, arXiv 1802.00420) and Carlini et al.,
"On Evaluating Adversarial Robustness" (arXiv 1902.06705), as measurements:

1. robust accuracy falls as ε grows, and reaches 0 once ε spans the input range;
2. more PGD steps and more restarts never raise it;
3. a black-box attack (Square Attack) that never reads gradients does not find many more
   adversarial points than PGD does.

Each check reports its numbers and whether it passed; ``passed`` is all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import nn

from stalwart.attacks.robust import robust_accuracy
from stalwart.data.core import GroupedDataset


@dataclass
class MaskingReport:
    """The numbers behind each check and whether it passed."""

    eps_curve: dict[float, float] = field(default_factory=dict)
    effort: dict[str, float] = field(default_factory=dict)
    black_box: dict[str, float] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Whether every check passed."""
        return all(self.checks.values())


def gradient_masking_checks(
    model: nn.Module,
    dataset: GroupedDataset,
    *,
    eps: float,
    eps_grid: Sequence[float] | None = None,
    steps: int = 20,
    restarts: int = 1,
    queries: int = 1000,
    lower: float = 0.0,
    upper: float = 1.0,
    tolerance: float = 0.02,
    seed: int = 0,
) -> MaskingReport:
    """Run the three checks at budget ``eps`` (L∞) on ``dataset``.

    Args:
        model: the classifier under test.
        dataset: the points attacked (a few hundred suffice).
        eps: the budget the robust accuracy is claimed at.
        eps_grid: budgets for the ε curve; default ``0, ε/2, ε, 2ε, 4ε`` and the full range.
        steps: PGD steps at the base effort (the stronger effort uses 5× steps, 5 restarts).
        restarts: PGD restarts at the base effort.
        queries: Square Attack queries per example.
        lower: smallest valid input value.
        upper: largest valid input value.
        tolerance: slack for sampling noise when comparing accuracies.
        seed: seeds the attacks.
    """
    span = upper - lower
    grid = sorted(set(eps_grid or [0.0, eps / 2, eps, min(2 * eps, span), min(4 * eps, span),
                                   span]))  # fmt: skip
    common = dict(lower=lower, upper=upper, seed=seed)
    report = MaskingReport()
    for e in grid:
        result = robust_accuracy(model, dataset, eps=e, steps=steps, restarts=restarts, **common)
        report.eps_curve[e] = result.robust.accuracy
    curve = list(report.eps_curve.values())
    report.checks["falls as eps grows"] = all(
        b <= a + tolerance for a, b in zip(curve, curve[1:], strict=False)
    )
    report.checks["reaches 0 at the full range"] = curve[-1] <= tolerance

    base = report.eps_curve.get(eps)
    if base is None:
        base = robust_accuracy(model, dataset, eps=eps, steps=steps, restarts=restarts, **common)
        base = base.robust.accuracy
    stronger = robust_accuracy(
        model, dataset, eps=eps, steps=5 * steps, restarts=max(5, restarts), **common
    ).robust.accuracy
    report.effort = {"base": base, "5x steps, 5 restarts": stronger}
    report.checks["more effort never helps the model"] = stronger <= base + tolerance

    evaluation = robust_accuracy(
        model, dataset, attack="square", eps=eps, queries=queries, **common
    )
    report.black_box = {
        "clean": evaluation.clean.accuracy,
        "square": evaluation.robust.accuracy,
        "pgd (strongest)": min(base, stronger),
    }
    # Black-box finding many more points than PGD means PGD's gradients are unreliable.
    report.checks["black-box finds no more than PGD"] = (
        evaluation.robust.accuracy >= min(base, stronger) - tolerance
    )
    return report
