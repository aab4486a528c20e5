"""The accuracy-line figure: one panel per shift, points, line, band, y = x, probit ticks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection, PolyCollection
from scipy.stats import norm

from stalwart.errors import DataError
from stalwart.report.plots import pyplot
from stalwart.shift.line import fit_line
from stalwart.shift.plot import line_figure, plot_lines

plt = pyplot()  # the file-only Agg backend

ID = np.array([0.60, 0.68, 0.74, 0.80, 0.85, 0.89, 0.93, 0.96])
FRAME = pd.DataFrame(
    {
        "test": ID,
        "noise": norm.cdf(0.8 * norm.ppf(ID) - 0.4) + [0.005, -0.005] * 4,
        "blur": norm.cdf(1.1 * norm.ppf(ID) - 0.2) + [0.01, -0.01] * 4,
        "digits": [0.3, 0.35, np.nan, 0.42, 0.47, 0.5, 0.55, 0.6],
    },
    index=pd.Index([f"m{k}" for k in range(len(ID))], name="model"),
)
OOD = ["noise", "blur", "digits"]


@pytest.fixture
def figure():
    figure = line_figure(FRAME, "test", OOD, "probit", bootstrap=100, seed=0)
    yield figure
    plt.close(figure)


def test_one_panel_per_ood_setting_with_its_line(figure):
    assert len(figure.axes) == len(OOD)
    for axes, name in zip(figure.axes, OOD, strict=True):
        keep = FRAME[name].notna()
        line = fit_line(FRAME["test"], FRAME[name], "probit", bootstrap=100, seed=0)
        # The models, at their probit-scaled accuracies.
        (points,) = [c for c in axes.collections if isinstance(c, PathCollection)]
        expected = np.column_stack([norm.ppf(FRAME["test"][keep]), norm.ppf(FRAME[name][keep])])
        np.testing.assert_allclose(points.get_offsets(), expected, rtol=1e-12)
        # The fitted line and y = x (dashed).
        fitted, diagonal = axes.get_lines()
        x, y = fitted.get_data()
        np.testing.assert_allclose(y, line.slope * x + line.bias, rtol=1e-12)
        np.testing.assert_array_equal(*diagonal.get_data())
        assert diagonal.get_linestyle() == "--" and fitted.get_linestyle() == "-"
        # The bootstrap band is shaded around the line.
        (band,) = [c for c in axes.collections if isinstance(c, PolyCollection)]
        vertices = band.get_paths()[0].vertices
        middle = x[len(x) // 2]  # a grid point: the band's lower and upper edges both pass it
        edges = vertices[vertices[:, 0] == middle, 1]
        assert len(edges) >= 2
        assert edges.min() < line.slope * middle + line.bias < edges.max()
        expected_band = line.predict(norm.cdf(middle)).band
        np.testing.assert_allclose(
            [edges.min(), edges.max()], norm.ppf(np.array(expected_band)), atol=1e-9
        )
        title = axes.get_title()
        assert name in title
        assert f"R² {line.r2:.3f}" in title
        assert f"slope {line.slope:.2f}" in title and f"bias {line.bias:+.2f}" in title
    assert (
        "1 left out" in figure.axes[2].get_title() and "left out" not in figure.axes[0].get_title()
    )


def test_probit_ticks_are_labelled_in_percent(figure):
    for axes in figure.axes:
        x_labels = [float(t.get_text()) for t in axes.get_xticklabels()]
        y_labels = [float(t.get_text()) for t in axes.get_yticklabels()]
        assert len(x_labels) >= 2 and len(y_labels) >= 2
        # A tick labelled p (percent) sits at Φ⁻¹(p / 100): the axes are probit, read as percent.
        np.testing.assert_allclose(axes.get_xticks(), norm.ppf(np.array(x_labels) / 100))
        np.testing.assert_allclose(axes.get_yticks(), norm.ppf(np.array(y_labels) / 100))
        # The axes hug the models (ticks never widen them), and every tick lies on them.
        (points,) = [c for c in axes.collections if isinstance(c, PathCollection)]
        offsets = points.get_offsets()
        for column, ticks, (low, high) in ((0, axes.get_xticks(), axes.get_xlim()),
                                           (1, axes.get_yticks(), axes.get_ylim())):  # fmt: skip
            spread = np.ptp(offsets[:, column])
            assert offsets[:, column].min() - 0.1 * spread < low < offsets[:, column].min()
            assert offsets[:, column].max() < high < offsets[:, column].max() + 0.1 * spread
            assert all(low <= t <= high for t in ticks)
    assert 90.0 in [float(t.get_text()) for t in figure.axes[0].get_xticklabels()]


def test_linear_axes_and_no_band_without_bootstrap():
    figure = line_figure(FRAME, "test", "noise", "linear", bootstrap=0)
    (axes,) = figure.axes
    assert not [c for c in axes.collections if isinstance(c, PolyCollection)]
    labels = [float(t.get_text()) for t in axes.get_xticklabels()]
    np.testing.assert_allclose(axes.get_xticks(), np.array(labels) / 100)
    plt.close(figure)


def test_all_settings_in_a_grid_and_the_png(tmp_path):
    path = plot_lines(FRAME, "test", "all", "probit", tmp_path / "out" / "lines.png",
                      bootstrap=50)  # fmt: skip
    assert path == tmp_path / "out" / "lines.png"
    image = plt.imread(path)
    height, width = image.shape[:2]
    assert width > 2 * height  # three panels side by side
    five = FRAME.assign(extra=FRAME["noise"], more=FRAME["blur"])
    figure = line_figure(five, "test", "all", bootstrap=0)
    assert len(figure.axes) == 5  # a 3 × 2 grid whose sixth cell is left blank
    assert [axes.get_title().split("\n")[0] for axes in figure.axes] == [*OOD, "extra", "more"]
    plt.close(figure)


def test_a_setting_that_cannot_be_fitted_is_named():
    frame = FRAME.assign(sparse=[0.5, np.nan, np.nan, np.nan, np.nan, np.nan, 0.6, np.nan])
    with pytest.raises(DataError, match="cannot fit 'sparse' against 'test'"):
        line_figure(frame, "test", "all", bootstrap=0)


def test_families_get_one_colour_and_legend_entry_each():
    from stalwart.shift.table import read_accuracy_table

    table = read_accuracy_table(FRAME)
    families = ("mlp", "knn") * 4
    table = type(table)(table.frame, table.source, families=families)
    figure = line_figure(table, "test", ["digits"], "probit", bootstrap=0)
    (axes,) = figure.axes
    points = [c for c in axes.collections if isinstance(c, PathCollection)]
    assert [p.get_label() for p in points] == ["knn", "mlp"]
    keep = FRAME["digits"].notna().to_numpy()
    for collection in points:
        mine = keep & (np.array(families) == collection.get_label())
        expected = np.column_stack([norm.ppf(FRAME["test"][mine]), norm.ppf(FRAME["digits"][mine])])
        np.testing.assert_allclose(collection.get_offsets(), expected, rtol=1e-12)
    colours = {tuple(p.get_facecolor()[0]) for p in points}
    assert len(colours) == 2
    plt.close(figure)
