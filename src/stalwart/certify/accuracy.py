"""Certified accuracy of a classifier under an L∞ budget, by several bounds side by side.

For each test point the margins ``f_y − f_j`` (``j ≠ y``) are bounded from below over the
clipped L∞ ball; the point is certified by a bound when every margin's lower bound is
positive and the bound is sound (SDP-FO reports an estimate, not a certificate, beyond the
size where its eigenvalue is computed exactly). PGD accuracy is reported beside them as the
upper bound every certified accuracy must stay under: a point PGD breaks cannot be certified,
so sound bounds are not even tried there, and a certified point that PGD breaks would be a
soundness bug (counted in ``contradictions``; it must be 0).

This is the table of Dathathri et al. (arXiv 2010.11645, Table 1) for our own models.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from stalwart.attacks.pgd import check_budget, pgd
from stalwart.certify.bounds import as_network, bound, check_bound_names, check_option_table
from stalwart.certify.network import Network
from stalwart.certify.rounding import check_float, ieee_float32
from stalwart.certify.sdp import sdp_points
from stalwart.certify.spec import LinfBall, OutputProperty
from stalwart.data.core import GroupedDataset
from stalwart.errors import ConfigError

SDP_POINTS = 16
"""Consecutive points whose SDP-FO rows are optimised as one batch (with float64 certificates):
a step's products are then matrix–matrix products shared by every row, most of SDP-FO's
speed on a CPU."""


@ieee_float32()
def certified_accuracy(
    model: nn.Module,
    dataset: GroupedDataset,
    *,
    eps: float,
    bounds: Sequence[str] = ("ibp", "crown", "lp"),
    examples: int = 100,
    lower: float = 0.0,
    upper: float = 1.0,
    options: dict[str, dict[str, Any]] | None = None,
    pgd_steps: int = 40,
    pgd_restarts: int = 5,
    on_example: Callable[[int], None] | None = None,
    dtype: torch.dtype = torch.float64,
) -> dict[str, Any]:
    """Clean, PGD and certified accuracy of ``model`` on the first ``examples`` points.

    Args:
        model: a classifier convertible to a certifiable network (Linear, Conv2d, ReLU, …);
            the data and every bound go to its device.
        dataset: inputs in ``[lower, upper]``.
        eps: the L∞ budget.
        bounds: bound names (``ibp``, ``crown``, ``crown+alpha``, ``lp``, ``sdp``).
        examples: how many points, from the start of the dataset (at least 1).
        lower: smallest valid input value.
        upper: largest valid input value.
        options: options per bound, by the bound's own names (``bound_options``), e.g.
            ``{"sdp": {"steps": 500}}``.
        pgd_steps: steps of the PGD upper bound.
        pgd_restarts: restarts of the PGD upper bound.
        on_example: called with the position after each point (progress bars).
        dtype: the dtype certificates are computed in: float64 (default), or float32 with
            rigorous rounding allowances (faster).

    Raises:
        ConfigError: ε outside the domain, ``examples`` below 1, an unknown bound or option,
            or a model that cannot be converted.
    """
    check_budget(eps, "linf", lower, upper)
    if isinstance(examples, bool) or not isinstance(examples, int) or examples < 1:
        raise ConfigError(f"examples must be an integer >= 1; got {examples!r}")
    if pgd_steps < 0 or pgd_restarts < 1:
        raise ConfigError(
            f"pgd_steps must be >= 0 and pgd_restarts >= 1; got {pgd_steps} and {pgd_restarts}"
        )
    check_float(dtype)
    bounds = list(bounds)
    check_bound_names(bounds)
    options = check_option_table(options, bounds)
    if "sdp" in bounds:
        # A point needs every margin positive, not its tightest bound: SDP-FO can stop at the
        # first row that fails, and stop each row once it is proven (rows are costly).
        defaults = {"stop_at_failure": True, "stop_when_certified": True}
        options["sdp"] = defaults | options.get("sdp", {})
    model = model.eval()
    n = min(examples, len(dataset))
    if n == 0:
        raise ConfigError("the dataset is empty: there is no point to certify")
    # Everything runs where the model is (``stalwart certify --device`` moves it).
    device = next(model.parameters(), torch.zeros(0)).device
    x, y = dataset.x[:n].to(device), dataset.y[:n].to(device)
    net = as_network(model, tuple(x.shape[1:])).detach(dtype=dtype)
    with torch.no_grad():
        correct = model(x).argmax(dim=1) == y
    adversarial = pgd(model, x, y, eps=eps, steps=pgd_steps, restarts=pgd_restarts,
                      lower=lower, upper=upper)  # fmt: skip
    with torch.no_grad():
        robust = correct & (model(adversarial).argmax(dim=1) == y)
    rows: dict[str, dict[str, Any]] = {
        name: {"certified": 0, "estimated": 0, "seconds": 0.0, "tried": 0} for name in bounds
    }
    contradictions = 0
    together = "sdp" in bounds and dtype == torch.float64
    for first in range(0, n, SDP_POINTS if together else 1):
        chunk = range(first, min(n, first + (SDP_POINTS if together else 1)))
        batch: list[int] = []  # this chunk's points whose SDP-FO rows are optimised together
        for i in chunk:
            if robust[i]:
                box = LinfBall(x[i], eps, lower, upper)
                for name in bounds:
                    if name == "sdp" and together:
                        batch.append(i)
                        continue
                    start = time.perf_counter()
                    result = bound(name, net, box, margin_of=int(y[i]), dtype=dtype,
                                   **options.get(name, {}))  # fmt: skip
                    _count(rows[name], time.perf_counter() - start, result.lower, result.sound)
            elif correct[i]:
                # PGD broke it: no sound bound may certify it. Check the cheapest one does not.
                box = LinfBall(x[i], eps, lower, upper)
                if bound("ibp", net, box, margin_of=int(y[i]), dtype=dtype).certified:
                    contradictions += 1
        if batch:
            start = time.perf_counter()
            margins, sound = _sdp_margins(net, x[batch], y[batch], eps, lower, upper,
                                          options["sdp"])  # fmt: skip
            seconds = (time.perf_counter() - start) / len(batch)
            for lows in margins:
                _count(rows["sdp"], seconds, lows, sound)
        if on_example is not None:
            for i in chunk:
                on_example(i)
    return {
        "eps": eps,
        "examples": n,
        "clean": float(correct.float().mean()),
        "pgd": float(robust.float().mean()),
        "contradictions": contradictions,
        "bounds": {
            name: {
                "certified": row["certified"] / n,
                "estimated": row["estimated"] / n,
                "seconds_per_point": row["seconds"] / max(row["tried"], 1),
            }
            for name, row in rows.items()
        },
    }


def _count(row: dict[str, Any], seconds: float, lows: torch.Tensor, sound: bool) -> None:
    """Add one point's bound (its margins' lower bounds) to a bound's tally."""
    row["seconds"] += seconds
    row["tried"] += 1
    positive = bool((lows > 0).all())
    row["certified" if sound else "estimated"] += int(positive)


def _sdp_margins(
    net: Network,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    lower: float,
    upper: float,
    options: dict[str, Any],
) -> tuple[torch.Tensor, bool]:
    """SDP-FO's lower bounds ``(points, rows)`` on several points' margins, in one batch.

    In float64, with CROWN's activation boxes unless the options say otherwise.
    """
    device = net.layers[0].bias.device
    boxes = [LinfBall(point, eps, lower, upper) for point in x]
    lows = torch.stack([box.lower.reshape(-1) for box in boxes]).to(device, torch.float64)
    highs = torch.stack([box.upper.reshape(-1) for box in boxes]).to(device, torch.float64)
    margins = [
        OutputProperty.margin(int(label), net.out_features, dtype=torch.float64).stacked()
        for label in y
    ]
    C = torch.stack([c for c, _, _ in margins]).to(device)
    d = torch.stack([d for _, d, _ in margins]).to(device)
    return sdp_points(net, lows, highs, C, d, **({"intermediate": "crown"} | options))
