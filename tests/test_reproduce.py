"""benchmarks/reproduce.py: the annotations of docs/results.md, the figure aligner, the runner.

The last test runs the fast blocks of docs/results.md for real (about 30 s on 2 cores).
"""

from __future__ import annotations

import importlib.util
import io
import re
import sys
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from stalwart.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("reproduce", ROOT / "benchmarks" / "reproduce.py")
reproduce = importlib.util.module_from_spec(_spec)
sys.modules["reproduce"] = reproduce  # dataclasses look their module up while being built
_spec.loader.exec_module(reproduce)

PAGE = """# Results

<!-- reproduce: fast name=first tolerance=0.5 ignore="gap closed" -->
```
$ stalwart run a.yaml      # a comment
  # (the comment, continued)
| method | worst % | gap closed |
|---|---|---|
| erm | 40.0 ± 2.0 | 0% |
```

Prose with a block that records no command:

```
restarts 1: clean 91.2%
```

<!-- reproduce: skip name=third reason="needs a GPU" -->
```
$ python gpu.py
speed 1.0
```

<!-- reproduce: slow name=second needs=first -->
```
$ stalwart certify runs/a
$ stalwart certify runs/a --more
| clean | 96.0 | |
```
"""


def statuses(recorded: str, new: str, **settings) -> dict[str, str]:
    ignore = settings.pop("ignore", None)
    old = reproduce.figures(recorded, ignore)
    results = reproduce.compare(old, reproduce.figures(new, ignore), **settings)
    return {c.recorded.where: c.status for c in results}


# ---------------------------------------------------------------------------------------------
# annotations


def test_parse_reads_tiers_settings_commands_and_their_recorded_output():
    blocks = reproduce.parse_results(PAGE)
    assert [b.annotation.name for b in blocks] == ["first", "third", "second"]
    first, third, second = blocks
    assert (first.annotation.tier, first.annotation.tolerance) == ("fast", 0.5)
    assert first.annotation.ignore.search("Gap Closed")
    assert first.commands[0].text == "stalwart run a.yaml      # a comment"
    assert first.commands[0].recorded[0] == "| method | worst % | gap closed |"
    assert len(first.commands[0].recorded) == 3
    assert (third.annotation.tier, third.annotation.reason) == ("skip", "needs a GPU")
    assert second.annotation.needs == ("first",)
    assert [c.recorded for c in second.commands] == [[], ["| clean | 96.0 | |"]]


@pytest.mark.parametrize(
    ("page", "mentions"),
    [
        ("```\n$ stalwart demo\n```\n", ["1", "no annotation", "<!-- reproduce:"]),
        ("<!-- reproduce: quick name=a -->\n```\n$ x\n```\n", ["'quick'", "fast", "skip"]),
        ("<!-- reproduce: fast name=a tolerence=1 -->\n```\n$ x\n```\n", ["did you mean"]),
        ("<!-- reproduce: fast tolerance=1 -->\n```\n$ x\n```\n", ["name=ID"]),
        ("<!-- reproduce: fast name=a tolerance=-1 -->\n```\n$ x\n```\n", ["'-1'", "≥ 0"]),
        ("<!-- reproduce: skip name=a -->\n```\n$ x\n```\n", ["reason"]),
        ("<!-- reproduce: fast name=a ignore=( -->\n```\n$ x\n```\n", ["ignore", "regular"]),
        ("<!-- reproduce: fast name=a -->\ntext\n```\n$ x\n```\n", ["not followed by a block"]),
        ("<!-- reproduce: fast name=a -->\n```\nno command\n```\n", ["without '$ '"]),
        (
            "<!-- reproduce: fast name=a -->\n```\n$ x\n```\n"
            "<!-- reproduce: fast name=a -->\n```\n$ y\n```\n",
            ["unique", "'a'"],
        ),
        ("<!-- reproduce: fast name=a needs=b -->\n```\n$ x\n```\n", ["needs='b'"]),
    ],
)
def test_malformed_annotations_are_clear_errors(page, mentions):
    with pytest.raises(ConfigError) as error:
        reproduce.parse_results(page, "page.md")
    for text in mentions:
        assert text in str(error.value)


def test_the_results_page_annotates_every_command_block():
    blocks = reproduce.parse_results((ROOT / "docs" / "results.md").read_text(encoding="utf-8"))
    tiers = {b.annotation.name: b.annotation.tier for b in blocks}
    assert tiers["compare_toy_spurious"] == tiers["rst_linear"] == "fast"
    assert tiers["demo"] == tiers["erm_dominoes"] == "slow"
    assert all(b.annotation.reason for b in blocks if b.annotation.tier == "skip")
    names = [b.annotation.name for b in reproduce.select(blocks, ("fast",), [])]
    assert names == ["compare_toy_spurious", "rst_linear"]


def test_only_runs_a_block_with_the_blocks_it_needs():
    blocks = reproduce.parse_results(PAGE)
    assert [b.annotation.name for b in reproduce.select(blocks, (), ["second"])] == [
        "first",
        "second",
    ]
    assert [b.annotation.name for b in reproduce.select(blocks, ("slow",), [])] == [
        "first",
        "second",
    ]
    with pytest.raises(ConfigError, match="did you mean 'second'"):
        reproduce.select(blocks, (), ["secnd"])


# ---------------------------------------------------------------------------------------------
# aligning and comparing figures

RECORDED = """| method | test avg % | test worst % | seeds |
|---|---|---|---|
| erm | 71.1 ± 1.4 | 39.9 ± 3.7 | 3 |
| jtt | 85.9 ± 1.7 | 80.8 ± 2.2 | 3 |
"""


def test_a_figure_that_moves_beyond_its_spread_is_reported_and_one_within_is_not():
    new = RECORDED.replace("39.9 ± 3.7", "42.0 ± 3.0").replace("80.8 ± 2.2", "77.9 ± 2.0")
    result = statuses(RECORDED, new)
    assert result["erm · test worst %"] == "within"  # 2.1 ≤ 3.7
    assert result["jtt · test worst %"] == "moved"  # 2.9 > 2.2, though < the new spread
    assert result["erm · test avg %"] == result["jtt · seeds"] == "identical"


def test_a_spread_printed_as_zero_still_allows_a_unit_in_the_last_digit():
    recorded = "| method | avg % |\n| erm | 85.8 ± 0.0 |\n| dro | 85.8 ± 0.0 |"
    new = "| method | avg % |\n| erm | 85.9 ± 0.0 |\n| dro | 86.0 ± 0.0 |"
    assert statuses(recorded, new) == {"erm · avg %": "within", "dro · avg %": "moved"}


def test_figures_without_a_spread_move_by_the_block_tolerance():
    recorded, new = "dominoes n=10800, error set 1402", "dominoes n=10800, error set 1403"
    assert set(statuses(recorded, new).values()) == {"identical", "moved"}
    assert set(statuses(recorded, new, tolerance=1.0).values()) == {"identical", "within"}


def test_exact_mode_allows_no_move_not_even_of_a_spread():
    new = RECORDED.replace("39.9 ± 3.7", "39.9 ± 3.6").replace("80.8 ± 2.2", "81.0 ± 2.2")
    result = statuses(RECORDED, new, exact=True)
    assert result["erm · test worst %"] == result["jtt · test worst %"] == "moved"
    assert result["erm · test avg %"] == "identical"


def test_timings_are_not_compared():
    recorded = """device: cpu, threads 2
bare loop :    1965.5 examples/s
stalwart  :    1882.4 examples/s (training; validation took 0.53s per epoch on top)
ratio fit/bare: 0.958
torchattacks   54.0 examples/s  robust accuracy   0.4%  speed ratio vs torchattacks 1.00
cuda: SDP-FO, 200 steps: 9.99 s per row (50.0 ms/step); bounds [-2.896, -2.663]
method        examples/epoch   s/epoch  epoch ratio
jtt stage 2            37438      6.54        3.500
|                        | accuracy % | s / point |
| certified: lp          |       77.0 |     1.302 |
"""
    new = (
        recorded.replace("1965.5", "2200.1").replace("1882.4", "1700.0").replace("0.53", "0.61")
        .replace("0.958", "1.083").replace("54.0", "61.2").replace("1.00", "1.10")
        .replace("9.99", "8.12").replace("50.0", "40.6").replace("6.54", "6.99")
        .replace("3.500", "3.499").replace("1.302", "2.000")
    )  # fmt: skip
    result = statuses(recorded, new)
    robust = (
        "torchattacks   54.0 examples/s  robust accuracy   [0.4%]  speed ratio vs torchattacks 1.00"
    )
    assert {k for k, v in result.items() if v != "timing"} == {
        "device: cpu, threads [2]",
        robust,
        "cuda: SDP-FO, [200] steps: 9.99 s per row (50.0 ms/step); bounds [-2.896, -2.663]",
        "cuda: SDP-FO, 200 steps: 9.99 s per row (50.0 ms/step); bounds [[-2.896], -2.663]",
        "cuda: SDP-FO, 200 steps: 9.99 s per row (50.0 ms/step); bounds [-2.896, [-2.663]]",
        "jtt stage 2 · examples/epoch",
        "certified: lp · accuracy %",
    }
    assert set(result.values()) == {"timing", "identical"}
    assert statuses(recorded, new.replace("0.4%", "0.6%"))[robust] == "moved"


def test_a_recorded_table_without_its_header_learns_timing_columns_from_the_new_output():
    recorded = "| clean | 97.0 | |\n| certified: ibp | 27.0 | 0.004 |"
    new = "| | accuracy % | s / point |\n| clean | 97.0 | |\n| certified: ibp | 27.0 | 0.009 |"
    assert statuses(recorded, new) == {
        "clean · column 2": "identical",
        "certified: ibp · column 2": "identical",
        "certified: ibp · column 3": "timing",
    }


def rich_group_table(values: dict[str, tuple[str, str]]) -> str:
    """What `stalwart run` prints: a box-drawn table with more columns than the docs kept."""
    table = Table(title="erm_dominoes: selected epoch 1 by val worst_group_accuracy")
    for column in ("group", "val n", "val acc %", "test n", "test acc %"):
        table.add_column(column, justify="left" if column == "group" else "right")
    for group, (val, test) in values.items():
        table.add_row(group, "294", val, "484", test)
    out = io.StringIO()
    Console(file=out, width=200).print(table)
    return "epoch   1  loss 0.4814  val acc 73.6%  worst group 49.0%  (125.8s)\n" + out.getvalue()


def test_tables_are_matched_by_row_and_column_whatever_their_layout():
    recorded = """                     val acc %   test acc %
coat, digit 0            89.1        90.3
worst group              49.0        46.9
"""
    same = rich_group_table({"coat, digit 0": ("89.1", "90.3"), "worst group": ("49.0", "46.9")})
    assert "┃" in same and "│" in same
    assert set(statuses(recorded, same).values()) == {"identical"}
    assert len(statuses(recorded, same)) == 4
    moved = rich_group_table({"coat, digit 0": ("89.1", "90.3"), "worst group": ("49.0", "44.0")})
    assert statuses(recorded, moved) == {
        "coat, digit 0 · val acc %": "identical",
        "coat, digit 0 · test acc": "identical",
        "worst group · val acc %": "identical",
        "worst group · test acc": "moved",
    }


def test_a_header_with_a_number_in_it_still_names_its_columns():
    recorded = (
        "| OOD setting | slope | bias | models |\n|---|---|---|---|\n| ood | 0.550 | 0.001 | 36 |"
    )
    table = Table()
    for column in ("OOD setting", "slope", "95% CI", "bias", "95% CI", "models"):
        table.add_column(column)
    table.add_row("ood", "0.550", "[0.531, 0.563]", "0.001", "[-0.013, 0.022]", "36")
    out = io.StringIO()
    Console(file=out, width=200).print(table)
    assert statuses(recorded, out.getvalue()) == {
        "ood · slope": "identical",
        "ood · bias": "identical",
        "ood · models": "identical",
    }


def test_a_missing_figure_and_a_changed_text_cell_are_failures():
    recorded = (
        "| run | PGD-20 | passed |\n| pgd_at/seed0 | 54.4 | yes |\n| trades/seed0 | 63.8 | yes |"
    )
    new = "| run | PGD-20 | passed |\n| pgd_at/seed0 | 54.4 | no |"
    results = reproduce.compare(reproduce.figures(recorded), reproduce.figures(new))
    assert {c.recorded.where: c.status for c in results} == {
        "pgd_at/seed0 · PGD-20": "identical",
        "pgd_at/seed0 · passed": "changed",
        "trades/seed0 · PGD-20": "missing",
        "trades/seed0 · passed": "missing",
    }
    assert sum(c.failed for c in results) == 3


def test_ignore_skips_the_columns_it_names():
    import re

    recorded = "| method | worst % | gap closed |\n| jtt | 80.8 ± 2.2 | 90% |"
    new = "| method | worst % | gap closed |\n| jtt | 81.0 ± 7.5 | 93% |"
    assert statuses(recorded, new)["jtt · gap closed"] == "moved"
    assert statuses(recorded, new, ignore=re.compile("gap closed")) == {
        "jtt · worst %": "within",
        "jtt · gap closed": "ignored",
    }


# ---------------------------------------------------------------------------------------------
# running


def test_main_runs_each_block_in_a_scratch_folder_and_exits_1_when_a_figure_moved(tmp_path, capsys):
    page = tmp_path / "results.md"
    page.write_text(
        "<!-- reproduce: fast name=probe -->\n```\n"
        '$ mkdir -p runs/probe && echo "columns $COLUMNS, recipes $(ls examples | wc -l)"\n'
        f"columns 200, recipes {len(list((ROOT / 'examples').iterdir()))}\n```\n"
        "<!-- reproduce: slow name=score tolerance=0.1 -->\n"
        "```\n$ echo 'score 1.55'\nscore 1.5\n```\n"
    )
    scratch = tmp_path / "scratch"
    here = ["--results", str(page), "--scratch", str(scratch)]
    assert reproduce.main(["--fast", *here]) == 0
    assert (scratch / "runs" / "probe").is_dir()  # the command ran there, not in the checkout
    assert not (ROOT / "runs" / "probe").exists()
    assert "probe: 2 identical" in capsys.readouterr().out

    assert reproduce.main(["--only", "score", *here]) == 0  # 1.55 is within 0.1 of 1.5
    assert reproduce.main(["--all", "--exact", *here]) == 1
    out = capsys.readouterr().out
    assert "moved  score [1.5]: 1.5 → 1.55  (Δ +0.05, allowed 0)" in out
    assert "moved beyond their spread" in out


def test_main_reports_a_failing_command_and_a_malformed_page(tmp_path, capsys):
    page = tmp_path / "results.md"
    page.write_text("<!-- reproduce: fast name=broken -->\n```\n$ exit 3\nvalue 1\n```\n")
    assert reproduce.main(["--results", str(page), "--scratch", str(tmp_path / "s")]) == 1
    assert "exited 3" in capsys.readouterr().out
    page.write_text("```\n$ stalwart demo\n```\n")
    assert reproduce.main(["--results", str(page)]) == 2
    assert "no annotation" in capsys.readouterr().err


def test_the_fast_blocks_of_the_results_page_reproduce(tmp_path, capsys):
    status = reproduce.main(["--fast", "--scratch", str(tmp_path)])
    report = capsys.readouterr().out
    assert status == 0, report
    assert "moved" not in report.replace("moved beyond their spread", "")
    # Every figure compared (identical on the recording machine type, within tolerance elsewhere).
    assert re.search(r"compare_toy_spurious: (\d+ identical|.*within)", report), report
