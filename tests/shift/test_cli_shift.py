"""`stalwart shift fit` and `stalwart shift plot`: the printed lines are fit_line's lines."""

from __future__ import annotations

import json

import pytest
from tests.bad_input.conftest import expect_clean_error, invoke
from tests.shift.test_testbed_io import build_testbed

from stalwart.shift import testbed_io
from stalwart.shift.fits import choose_ood_settings
from stalwart.shift.line import fit_line
from stalwart.shift.table import read_accuracy_table

# Eight models; `sketch` is missing for one of them, so its line leaves one model out.
CSV = """\
model,val,v2,sketch
a,0.62,0.48,0.22
b,0.70,0.55,0.30
c,0.75,0.61,0.31
d,0.80,0.66,
e,0.85,0.73,0.40
f,0.88,0.77,0.41
g,0.90,0.80,0.45
h,0.93,0.84,0.47
"""
SETTINGS = ("v2", "sketch")
BOOTSTRAP = ("--bootstrap", "200", "--seed", "3")


@pytest.fixture
def csv_path(tmp_path):
    path = tmp_path / "accuracies.csv"
    path.write_text(CSV)
    return path


def expected_line(path, ood, **options):
    table = read_accuracy_table(path, percent=options.pop("percent", False))
    id_acc, ood_acc = table.pair("val", ood)
    return fit_line(id_acc, ood_acc, options.pop("scale", "probit"), bootstrap=200, seed=3)


def fit_json(*args):
    result = invoke("shift", "fit", *args, *BOOTSTRAP, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def row(output: str, name: str) -> list[str]:
    """The cells of the table row that starts with ``name`` (first printed line of the row)."""
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if cells[0] == name:
            return cells
    raise AssertionError(f"no row {name!r} in:\n{output}")


def test_fit_prints_the_line_fit_line_gives(csv_path):
    result = invoke("shift", "fit", csv_path, "--id", "val", "--ood", "v2", "--ood", "sketch",
                    *BOOTSTRAP)  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in SETTINGS:
        line = expected_line(csv_path, name)
        cells = row(result.output, name)
        assert cells[1] == f"{line.slope:.3f}"
        assert cells[3] == f"{line.bias:.3f}"
        assert cells[5] == f"{line.r2:.3f}"
        assert cells[6:8] == [str(line.n), str(line.dropped)]
        # Intervals may wrap inside their cells on a narrow terminal: look for each bound.
        for value in (*line.interval_of("slope"), *line.interval_of("bias")):
            assert f"{value:.3f}" in result.output
    assert row(result.output, "sketch")[6:8] == ["7", "1"]
    assert "200 bootstrap draws, seed 3" in " ".join(result.output.split())


def test_json_is_line_to_dict_per_setting(csv_path):
    out = fit_json(csv_path, "--id", "val", "--ood", "v2", "--ood", "sketch", "--scale", "logit")
    assert out["id"] == "val" and out["source"] == str(csv_path)
    assert list(out["lines"]) == list(SETTINGS)
    for name in SETTINGS:
        assert out["lines"][name] == expected_line(csv_path, name, scale="logit").to_dict()
    assert "predictions" not in out


def test_ood_all_and_no_ood_fit_every_setting_but_the_id_one(csv_path):
    every = fit_json(csv_path, "--id", "val", "--ood", "all")
    assert list(every["lines"]) == ["v2", "sketch"]
    assert fit_json(csv_path, "--id", "val") == every
    assert list(fit_json(csv_path, "--id", "v2")["lines"]) == ["val", "sketch"]
    # Asked twice (once through `all`), fitted once.
    table = read_accuracy_table(csv_path)
    assert choose_ood_settings(table, "val", ["sketch", "all", "v2"]) == ["sketch", "v2"]
    assert list(fit_json(csv_path, "--id", "val", "--ood", "sketch", "--ood", "all")["lines"]) == [
        "sketch",
        "v2",
    ]


def test_percent_reads_the_same_table_in_percent(csv_path, tmp_path):
    table = read_accuracy_table(csv_path).frame * 100
    percent_path = tmp_path / "percent.csv"
    table.to_csv(percent_path, float_format="%.6g")
    in_fractions = fit_json(csv_path, "--id", "val", "--predict", "0.91")
    # With --percent the ID accuracy to predict is in percent too.
    in_percent = fit_json(percent_path, "--id", "val", "--percent", "--predict", "91")
    for name in SETTINGS:
        for key, value in in_fractions["lines"][name].items():
            expected = value if isinstance(value, str) else pytest.approx(value, abs=1e-9)
            assert in_percent["lines"][name][key] == expected, key
        for key, value in in_fractions["predictions"][name][0].items():
            assert in_percent["predictions"][name][0][key] == pytest.approx(value, abs=1e-9)
    # A small percentage stays a percentage: --predict 1 is an ID accuracy of 1%.
    one_percent = fit_json(percent_path, "--id", "val", "--percent", "--predict", "1")
    assert one_percent["predictions"]["v2"][0]["id_acc"] == pytest.approx(0.01)
    # Without --percent the same file is out of range, and the message says what to pass.
    expect_clean_error(
        invoke("shift", "fit", percent_path, "--id", "val"), ["'val'", "62", "--percent"]
    )


def test_predict_prints_band_and_interval(csv_path):
    out = fit_json(csv_path, "--id", "val", "--ood", "v2", "--predict", "0.91", "--predict", "0.6")
    line = expected_line(csv_path, "v2")
    for printed, acc in zip(out["predictions"]["v2"], (0.91, 0.6), strict=True):
        expected = line.predict(acc)
        assert printed["id_acc"] == acc
        assert printed["ood_acc"] == pytest.approx(float(expected.ood_acc), abs=1e-12)
        assert printed["band"] == pytest.approx([float(v) for v in expected.band], abs=1e-12)
        assert printed["interval"] == pytest.approx(
            [float(v) for v in expected.interval], abs=1e-12
        )
        assert printed["band"][0] < printed["ood_acc"] < printed["band"][1]
    table = invoke("shift", "fit", csv_path, "--id", "val", "--ood", "v2", "--predict", "0.91",
                   *BOOTSTRAP)  # fmt: skip
    assert table.exit_code == 0, table.output
    prediction = line.predict(0.91)
    cells = [c for c in table.output.split("│") if c.strip()]
    assert "91.00" in [c.strip() for c in cells]
    for value in (prediction.ood_acc, *prediction.band, *prediction.interval):
        assert f"{100 * value:.2f}" in table.output


def test_bad_predict_values_are_rejected(csv_path):
    expect_clean_error(
        invoke("shift", "fit", csv_path, "--id", "val", "--predict", "91"),
        ["--predict 91", "[0, 1]", "--percent"],
    )
    expect_clean_error(
        invoke("shift", "fit", csv_path, "--id", "val", "--predict", "-0.1"), ["--predict -0.1"]
    )


def one_line(result, mentions):
    output = expect_clean_error(result, mentions)
    assert len(output.strip().splitlines()) == 1, output
    assert output.startswith("error:"), output


def test_wrong_setting_names_list_the_settings(csv_path):
    one_line(
        invoke("shift", "fit", csv_path, "--id", "vall"),
        ["'vall' (did you mean 'val'?)", "['val', 'v2', 'sketch']"],
    )
    one_line(
        invoke("shift", "fit", csv_path, "--id", "val", "--ood", "skecth"),
        ["'skecth' (did you mean 'sketch'?)", "['val', 'v2', 'sketch']"],
    )
    one_line(invoke("shift", "fit", csv_path, "--id", "val", "--ood", "val"), ["is the ID setting"])
    one_line(invoke("shift", "plot", csv_path, "--id", "val", "--ood", "v3", "-o", "x.png"),
             ["'v3'", "['val', 'v2', 'sketch']"])  # fmt: skip


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        (CSV.replace("0.55", "abc"), ["line 3", "model 'b'", "column 'v2'", "'abc'"]),
        (CSV.replace("0.61", "1.5"), ["line 4", "model 'c'", "column 'v2'", "outside [0, 1]"]),
        (CSV.replace("0.45", "-0.2"), ["line 8", "column 'sketch'", "outside [0, 1]"]),
    ],
    ids=["non-numeric", "above-one", "negative"],
)
def test_bad_cells_name_the_row_and_column(tmp_path, text, mentions):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    one_line(invoke("shift", "fit", path, "--id", "val"), mentions)


def test_bad_sources_and_options_are_clean_errors(csv_path, tmp_path):
    one_line(invoke("shift", "fit", tmp_path / "nope.csv", "--id", "val"),
             ["nope.csv does not exist", "testbed folder"])  # fmt: skip
    one_line(invoke("shift", "fit", tmp_path, "--id", "val"), ["is not a testbed folder"])
    one_line(invoke("shift", "fit", csv_path, "--id", "val", "--scale", "probti"),
             ["'probti' (did you mean 'probit'?)"])  # fmt: skip
    one_line(invoke("shift", "fit", csv_path, "--id", "val", "--format", "jsn"),
             ["'jsn' (did you mean 'json'?)"])  # fmt: skip
    one_line(invoke("shift", "fit", csv_path, "--id", "val", "--bootstrap", "-1"), ["bootstrap"])
    one_line(invoke("shift", "fit", csv_path, "--id", "val", "--model-column", "name"),
             ["no column 'name'"])  # fmt: skip
    # Too few models with both values: the message names the pair that cannot be fitted.
    short = tmp_path / "short.csv"
    short.write_text("model,val,v2\na,0.6,0.5\nb,0.7,\nc,0.8,0.7\n")
    one_line(invoke("shift", "fit", short, "--id", "val"),
             ["cannot fit 'v2' against 'val'", "at least 3 models", "1 left out"])  # fmt: skip


MODELS = tuple(f"model-{k}" for k in range(6))


def test_fit_on_a_testbed_folder(tmp_path):
    build_testbed(tmp_path, MODELS)
    out = fit_json(tmp_path, "--id", "test", "--ood", "all")
    assert out["source"] == f"testbed {tmp_path}"
    assert list(out["lines"]) == ["noise"]  # `all` is the shifts: val is in-distribution
    out = fit_json(tmp_path, "--id", "test", "--ood", "val", "--ood", "noise")
    frame = testbed_io.Testbed(tmp_path).accuracies()
    for name in ("val", "noise"):
        line = fit_line(frame["test"], frame[name], "probit", bootstrap=200, seed=3)
        assert out["lines"][name] == line.to_dict()
        assert out["lines"][name]["n"] == len(MODELS)
    table = invoke("shift", "fit", tmp_path, "--id", "test", "--ood", "noise", *BOOTSTRAP)
    assert table.exit_code == 0, table.output
    assert row(table.output, "noise")[6:8] == [str(len(MODELS)), "0"]
    one_line(invoke("shift", "fit", tmp_path, "--id", "test", "--ood", "noize"),
             ["'noize' (did you mean 'noise'?)", "'val', 'test', 'noise'"])  # fmt: skip
    one_line(invoke("shift", "fit", tmp_path, "--id", "test", "--percent"), ["--percent"])


def test_plot_writes_the_png(csv_path, tmp_path):
    out = tmp_path / "figures" / "lines.png"
    result = invoke("shift", "plot", csv_path, "--id", "val", "-o", out, "--bootstrap", "50")
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in " ".join(result.output.split())
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    build_testbed(tmp_path / "bed", MODELS)
    testbed_png = tmp_path / "bed.png"
    result = invoke("shift", "plot", tmp_path / "bed", "--id", "test", "--ood", "noise",
                    "-o", testbed_png, "--bootstrap", "0")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert testbed_png.stat().st_size > 1000


def test_shift_is_listed_in_help():
    result = invoke("--help")
    assert "shift" in result.output
    result = invoke("shift", "--help")
    assert result.exit_code == 0 and "fit" in result.output and "plot" in result.output
