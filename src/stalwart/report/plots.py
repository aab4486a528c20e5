"""Plots of results, written atomically as PNG (or kept as PNG bytes for an HTML report)."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from stalwart.io import atomic_write_bytes


def pyplot() -> Any:
    """Matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path, dpi: int = 120) -> None:
    """Write ``figure`` to ``path`` as PNG, atomically, and close it."""
    atomic_write_bytes(path, lambda handle: figure.savefig(handle, format="png", dpi=dpi))
    pyplot().close(figure)


def figure_png(figure: Any, dpi: int = 100) -> bytes:
    """``figure`` as PNG bytes (to embed in a page), then closed.

    The PNG's creation-time metadata is left out, so the same figure gives the same bytes.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    pyplot().close(figure)
    return buffer.getvalue()


def accuracy_bars_png(
    bars: Mapping[str, float],
    *,
    colors: Sequence[str] | None = None,
    title: str = "",
    ylabel: str = "accuracy (%)",
) -> bytes:
    """One bar per named accuracy (a fraction, drawn in %), as PNG bytes for a report."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(max(5.0, 0.8 * len(bars) + 2), 3.2))
    axes.bar(list(bars), [100 * v for v in bars.values()], color=colors)
    axes.set_ylabel(ylabel)
    axes.set_ylim(0, 100)
    if title:
        axes.set_title(title)
    axes.grid(axis="y", alpha=0.3)
    if len(bars) > 5:  # long rows of names overlap unless tilted
        axes.tick_params(axis="x", labelrotation=30)
    figure.tight_layout()
    return figure_png(figure)


def per_group_bars(
    groups: Sequence[str],
    series: Mapping[str, Sequence[Mapping[str, float]]],
    path: Path,
    *,
    title: str = "",
    ylabel: str = "test accuracy (%)",
) -> None:
    """A grouped bar chart: one cluster per group, one bar per series (mean, std error bars).

    Args:
        groups: the group names (x axis).
        series: for each label (a method), one ``{"mean", "std"}`` fraction per group.
        path: the PNG to write.
        title: the chart's title.
        ylabel: the y axis label (values are shown in percent).
    """
    save_figure(per_group_figure(groups, series, title=title, ylabel=ylabel), path)


def per_group_figure(
    groups: Sequence[str],
    series: Mapping[str, Sequence[Mapping[str, float]]],
    *,
    title: str = "",
    ylabel: str = "test accuracy (%)",
) -> Any:
    """The figure of :func:`per_group_bars`, not yet written anywhere."""
    plt = pyplot()
    width = 0.8 / len(series)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.6 * len(groups) + 2), 4.0))
    for k, (label, stats) in enumerate(series.items()):
        positions = [g + (k - (len(series) - 1) / 2) * width for g in range(len(groups))]
        means = [100 * s["mean"] for s in stats]
        errors = [100 * s["std"] for s in stats]
        means = [0.0 if math.isnan(m) else m for m in means]
        axes.bar(positions, means, width, yerr=errors, label=label, capsize=2)
    axes.set_xticks(range(len(groups)), groups)
    axes.set_ylabel(ylabel)
    axes.set_ylim(0, 100)
    axes.set_title(title or "per-group test accuracy")
    axes.legend(ncol=min(len(series), 6), fontsize="small", loc="upper center",
                bbox_to_anchor=(0.5, -0.1), frameon=False)  # fmt: skip
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return figure
