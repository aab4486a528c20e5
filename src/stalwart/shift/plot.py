"""Accuracy lines drawn: OOD against ID accuracy per shift, on probit axes (arXiv 2107.04649).

The figures of Miller et al. ("Accuracy on the Line", arXiv 2107.04649) show each model as a
point (ID accuracy across, OOD accuracy up) on probit-scaled axes labelled in accuracy, the
fitted line with its bootstrap confidence band, and y = x for reference (a model on y = x
loses nothing under the shift). ``line_figure`` draws one such panel per OOD setting in a
grid; ``plot_lines`` writes it as a PNG.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stalwart.shift.fits import fit_lines, read_accuracies
from stalwart.shift.line import Line
from stalwart.shift.scaling import Scale, check_scale, to_accuracy, to_scale

if TYPE_CHECKING:
    import pandas as pd

    from stalwart.shift.table import AccuracyTable

# Tick candidates in percent, finest first: a panel takes the finest set that puts at most
# MAX_TICKS in its range. On probit axes ticks bunch up near 0 and 100, so the coarse sets keep
# the tails sparse (1, 10 ... 90, 99) where the fine ones would overprint.
_TICK_SETS = (
    (0.1, 0.5, 1, 2, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95,
     98, 99, 99.5, 99.9),
    (0.1, 1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.9),
    (0.1, 1, 10, 30, 50, 70, 90, 99, 99.9),
    (0.1, 1, 10, 50, 90, 99, 99.9),
)  # fmt: skip
MAX_TICKS = 7
FAMILY_COLOURS = ("tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
                  "tab:olive", "tab:cyan", "tab:gray")  # fmt: skip
"""Point colours of a testbed's model families (the fitted line is tab:blue)."""
# Space around the points, as a fraction of their spread on the scaled axis.
_MARGIN = 0.08


def _limits(values: np.ndarray) -> tuple[float, float]:
    """An axis range around ``values`` (scaled), never empty."""
    low, high = float(np.min(values)), float(np.max(values))
    pad = _MARGIN * (high - low) if high > low else 0.1
    return low - pad, high + pad


def _ticks(low: float, high: float, scale: Scale) -> tuple[list[float], list[str]]:
    """Tick positions on the scaled axis within [low, high], and their labels in percent."""
    if scale == "linear":
        # Linear axes are accuracies already: evenly spaced percent ticks.
        step = next(s for s in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25) if (high - low) / s <= MAX_TICKS)
        first = math.ceil(low / step) * step
        positions = [float(v) for v in np.arange(first, high + 1e-12, step)]
        return positions, [f"{100 * p:g}" for p in positions]
    chosen: list[float] = []
    for candidates in _TICK_SETS:
        chosen = [p for p in candidates if low <= float(to_scale(p / 100, scale)) <= high]
        if len(chosen) <= MAX_TICKS:
            break
    if len(chosen) < 2:
        # A narrow range (all models within a few tenths of a percent) falls between the
        # candidates: label its ends and middle instead.
        positions = [float(p) for p in np.linspace(low, high, 3)]
        return positions, [f"{100 * float(to_accuracy(p, scale)):.3g}" for p in positions]
    return [float(to_scale(p / 100, scale)) for p in chosen], [f"{p:g}" for p in chosen]


def _panel(
    axes: Any,
    line: Line,
    id_acc: np.ndarray,
    ood_acc: np.ndarray,
    title: str,
    families: Sequence[str] | None = None,
) -> None:
    """One OOD setting: points, the fitted line and its band, y = x, ticks in percent.

    Points are coloured by model family when the families are known.
    """
    scale = line.scale
    keep = ~(np.isnan(id_acc) | np.isnan(ood_acc))
    x, y = to_scale(id_acc[keep], scale), to_scale(ood_acc[keep], scale)
    x_low, x_high = _limits(x)
    y_low, y_high = _limits(y)
    grid = np.linspace(x_low, x_high, 200)
    if len(line.draws):
        # Line.predict's band, computed on the line's own scale: the percentile interval of
        # the bootstrap lines at each x. Mapping through accuracies and back would clip it
        # at the probit ε and, on linear axes, at 0 and 1, where the panel's margin may reach.
        alpha = (1 - line.level) / 2
        draws = line.draws[:, :1] * grid[None, :] + line.draws[:, 1:]
        lower, upper = np.quantile(draws, [alpha, 1 - alpha], axis=0)
        axes.fill_between(grid, lower, upper, color="tab:blue", alpha=0.2, linewidth=0,
                          label=f"{100 * line.level:g}% bootstrap band")  # fmt: skip
    axes.plot(grid, line.slope * grid + line.bias, color="tab:blue", linewidth=1.5, label="fit")
    # y = x over the panel's whole width; set_ylim below cuts it where it leaves the panel.
    axes.plot(grid, grid, color="0.4", linestyle="--", linewidth=1, label="y = x")
    if families is None:
        axes.scatter(x, y, s=14, color="tab:orange", edgecolors="black", linewidths=0.3,
                     zorder=3, label="models")  # fmt: skip
    else:
        kept = np.asarray(families, dtype=object)[keep]
        for n, family in enumerate(sorted(set(families))):
            mine = kept == family
            axes.scatter(x[mine], y[mine], s=14, color=FAMILY_COLOURS[n % len(FAMILY_COLOURS)],
                         edgecolors="black", linewidths=0.3, zorder=3, label=family)  # fmt: skip
    axes.set_xlim(x_low, x_high)
    axes.set_ylim(y_low, y_high)
    axes.set_xticks(*_ticks(x_low, x_high, scale))
    axes.set_yticks(*_ticks(y_low, y_high, scale))
    axes.set_title(title, fontsize="medium")
    axes.grid(alpha=0.3)


def line_figure(
    table_or_frame: AccuracyTable | pd.DataFrame | str | os.PathLike[str],
    id_setting: str,
    ood_settings: str | Sequence[str],
    scale: str = "probit",
    *,
    bootstrap: int = 1000,
    seed: int | None = 0,
    level: float = 0.95,
) -> Any:
    """A matplotlib Figure with one panel per OOD setting (Miller et al., arXiv 2107.04649).

    Each panel: the models as points (ID accuracy across, OOD accuracy up) on ``scale`` axes
    labelled in accuracy percent, the line ``fit_lines`` fits, its bootstrap band shaded,
    y = x dashed, and the OOD setting, R², slope and bias in the title. Models missing either
    accuracy are left out of the panel, as they are out of the fit.

    Args:
        table_or_frame: an ``AccuracyTable``, a DataFrame, a CSV path or a testbed folder
            (anything ``read_accuracies`` reads, with its defaults).
        id_setting: the in-distribution setting (the x axis of every panel).
        ood_settings: one setting, several, or ``"all"`` (every setting but ``id_setting``).
        scale: ``"probit"`` (the paper's axes), ``"logit"`` or ``"linear"``.
        bootstrap: bootstrap refits per line, for the band (0: no band).
        seed: seed of the bootstrap.
        level: coverage of the band.

    Returns:
        The Figure; its first axes are the panels, in the order of the OOD settings.
    """
    from stalwart.report.plots import pyplot

    scale = check_scale(scale)
    table = read_accuracies(table_or_frame)
    lines = fit_lines(
        table, id_setting, ood_settings, scale, bootstrap=bootstrap, seed=seed, level=level
    )
    count = len(lines)
    columns = count if count <= 3 else math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    plt = pyplot()
    figure, grid = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.4 * rows + 0.4),
                                squeeze=False)  # fmt: skip
    panels = grid.ravel()
    for axes in panels[count:]:
        figure.delaxes(axes)  # an unused cell of the grid is left blank, not an empty frame
    id_acc = table.column(id_setting)
    for axes, (name, line) in zip(panels, lines.items(), strict=False):
        left = f", {line.dropped} left out" if line.dropped else ""
        title = (
            f"{name}\nR² {line.r2:.3f}  slope {line.slope:.2f}  bias {line.bias:+.2f}"
            f"\n({line.n} models{left})"
        )
        _panel(axes, line, id_acc, table.column(name), title, table.families)
    for axes in panels[:count]:
        axes.set_xlabel(f"{id_setting} accuracy (%)", fontsize="small")
    for axes in grid[:, 0]:
        if axes in panels[:count]:
            axes.set_ylabel("OOD accuracy (%)", fontsize="small")
    panels[0].legend(fontsize="x-small", loc="upper left")
    figure.suptitle(f"accuracy on the line ({scale} axes): {table.source}", fontsize="medium")
    figure.tight_layout()
    return figure


def plot_lines(
    table_or_frame: AccuracyTable | pd.DataFrame | str | os.PathLike[str],
    id_setting: str,
    ood_settings: str | Sequence[str],
    scale: str,
    path: str | os.PathLike[str],
    *,
    bootstrap: int = 1000,
    seed: int | None = 0,
    level: float = 0.95,
    dpi: int = 120,
) -> Path:
    """Write ``line_figure``'s grid of accuracy lines as a PNG (arXiv 2107.04649).

    Args:
        table_or_frame: as for ``line_figure``.
        id_setting: the in-distribution setting (x axis).
        ood_settings: one setting, several, or ``"all"``.
        scale: ``"probit"``, ``"logit"`` or ``"linear"``.
        path: the PNG to write (atomically; its folder is created).
        bootstrap: bootstrap refits per line, for the band (0: no band).
        seed: seed of the bootstrap.
        level: coverage of the band.
        dpi: resolution of the PNG.

    Returns:
        ``path``, as a Path.
    """
    from stalwart.report.plots import save_figure

    figure = line_figure(
        table_or_frame, id_setting, ood_settings, scale,
        bootstrap=bootstrap, seed=seed, level=level,
    )  # fmt: skip
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(figure, out, dpi=dpi)
    return out
