"""`stalwart shift`: accuracy on the line (arXiv 2107.04649) from a testbed or a CSV.

``stalwart shift fit`` fits one line per OOD setting and prints slope, bias (with bootstrap
intervals), R² and the models used; ``stalwart shift plot`` draws them. Both are thin over
``stalwart.shift.fits`` and ``stalwart.shift.plot``, imported when a command runs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stalwart.cli import app, console, friendly_errors
from stalwart.errors import ConfigError, closest

if TYPE_CHECKING:
    from stalwart.shift.line import Line, Prediction

shift_app = typer.Typer(
    help="Accuracy under distribution shift: fit and plot accuracy lines (arXiv 2107.04649).",
    no_args_is_help=True,
)
app.add_typer(shift_app, name="shift")

FORMATS = ("table", "json")

SourceArgument = Annotated[
    Path,
    typer.Argument(
        help="A testbed folder (kind: testbed) or a CSV/TSV file: one row per model, one "
        "column per evaluation setting."
    ),
]
IdOption = Annotated[
    str, typer.Option("--id", help="The in-distribution setting (x axis); a testbed's: test.")
]
OodOption = Annotated[
    list[str] | None,
    typer.Option(
        "--ood",
        help="An OOD setting (repeatable), or `all` (default): every setting but --id (and but "
        "a testbed's val and test).",
    ),
]
ScaleOption = Annotated[str, typer.Option(help="Axes of the fit: probit, logit or linear.")]
PercentOption = Annotated[
    bool, typer.Option("--percent", help="The CSV's accuracies (and --predict) are in percent.")
]
ModelColumnOption = Annotated[
    str | None, typer.Option(help="The CSV column of model names (default: `model`, or guessed).")
]
BootstrapOption = Annotated[int, typer.Option(help="Bootstrap refits per line (0: none).")]
SeedOption = Annotated[int, typer.Option(help="Seed of the bootstrap.")]
OutputOption = Annotated[Path, typer.Option("--output", "-o", help="The PNG to write.")]
FamilyOption = Annotated[
    list[str] | None,
    typer.Option(
        "--family",
        help="Only a testbed's models of this family (repeatable): mlp, cnn, resnet, logistic, "
        "knn, forest, random_features. Default: every model.",
    ),
]


def _table(
    source: Path, percent: bool, model_column: str | None, families: list[str] | None
) -> Any:
    from stalwart.shift.fits import read_accuracies

    return read_accuracies(
        source, percent=percent, model_column=model_column, families=families or None
    )


def _number(value: float) -> float | None:
    """A float for JSON: NaN (no bootstrap, say) as null."""
    return None if math.isnan(value) else float(value)


def _interval(low: float, high: float, digits: int = 3) -> str:
    if math.isnan(low):
        return "-"  # no bootstrap draws: no interval to show
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.2f}"


def _check_predict(values: list[float], percent: bool) -> list[float]:
    """``--predict`` values as fractions, or an error naming the one out of range."""
    top = 100.0 if percent else 1.0
    for value in values:
        if not 0 <= value <= top:
            hint = (
                "; it looks like a percentage: pass --percent, or give a fraction"
                if not percent and 1 < value <= 100
                else ""
            )
            raise ConfigError(f"--predict {value:g} is outside [0, {top:g}]{hint}")
    return [value / top for value in values]


def _print_table(
    lines: dict[str, Line],
    predictions: dict[str, list[Prediction]],
    title: str,
    id_setting: str,
) -> None:
    from stalwart.report import ResultTable

    level = next(iter(lines.values())).level
    # Each interval sits right of its estimate, so one short header serves both.
    ci = f"{100 * level:g}% CI"
    table = ResultTable(
        ["OOD setting", "slope", ci, "bias", ci, "R²", "models", "left out"], title=title
    )
    for name, line in lines.items():
        r2 = "-" if math.isnan(line.r2) else f"{line.r2:.3f}"
        table.add(
            name,
            f"{line.slope:.3f}",
            _interval(*line.interval_of("slope")),
            f"{line.bias:.3f}",
            _interval(*line.interval_of("bias")),
            r2,
            str(line.n),
            str(line.dropped),
        )
    console.print(table.rich())
    if not predictions:
        return
    table = ResultTable(
        ["OOD setting", f"{id_setting} acc %", "predicted OOD %", f"line band {100 * level:g}%",
         f"prediction interval {100 * level:g}%"],
        title="predicted OOD accuracy of a model with the given ID accuracy (%)",
    )  # fmt: skip
    for name, found in predictions.items():
        for p in found:
            table.add(
                name,
                _percent(p.id_acc),
                _percent(p.ood_acc),
                f"[{_percent(p.band[0])}, {_percent(p.band[1])}]"
                if not math.isnan(p.band[0])
                else "-",
                f"[{_percent(p.interval[0])}, {_percent(p.interval[1])}]",
            )
    console.print(table.rich())


def _json(
    source: str, id_setting: str, lines: dict[str, Line], predictions: dict[str, list[Prediction]]
) -> str:
    out: dict[str, Any] = {
        "source": source,
        "id": id_setting,
        "lines": {name: line.to_dict() for name, line in lines.items()},
    }
    if predictions:
        out["predictions"] = {
            name: [
                {
                    "id_acc": float(p.id_acc),
                    "ood_acc": _number(p.ood_acc),
                    "band": [_number(p.band[0]), _number(p.band[1])],
                    "interval": [_number(p.interval[0]), _number(p.interval[1])],
                    "level": float(p.level),
                }
                for p in found
            ]
            for name, found in predictions.items()
        }
    return json.dumps(out, indent=2, allow_nan=False)


@shift_app.command()
@friendly_errors
def fit(
    source: SourceArgument,
    id_setting: IdOption = "test",
    ood: OodOption = None,
    scale: ScaleOption = "probit",
    percent: PercentOption = False,
    model_column: ModelColumnOption = None,
    family: FamilyOption = None,
    bootstrap: BootstrapOption = 1000,
    seed: SeedOption = 0,
    predict: Annotated[
        list[float] | None,
        typer.Option(
            help="An ID accuracy to predict the OOD accuracy of (repeatable); percent with "
            "--percent."
        ),
    ] = None,
    format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """Fit OOD against ID accuracy across models, one line per OOD setting.

    Prints each line's slope and bias on the scaled axes (with bootstrap intervals), R², the
    models in the fit and those left out for a missing value (Miller et al., arXiv 2107.04649).
    """
    from stalwart.shift.fits import fit_lines
    from stalwart.shift.scaling import check_scale

    if format not in FORMATS:
        raise ConfigError(
            f"unknown format {format!r}{closest(format, FORMATS)}; choose from {list(FORMATS)}"
        )
    check_scale(scale)
    wanted = _check_predict(predict or [], percent)
    table = _table(source, percent, model_column, family)
    lines = fit_lines(table, id_setting, ood or "all", scale, bootstrap=bootstrap, seed=seed)
    predictions = {name: [line.predict(acc) for acc in wanted] for name, line in lines.items()}
    predictions = {name: found for name, found in predictions.items() if found}
    if format == "json":
        # For programs: plain stdout, never wrapped at the terminal's width.
        typer.echo(_json(table.source, id_setting, lines, predictions))
        return
    draws = f"{bootstrap} bootstrap draws, seed {seed}" if bootstrap else "no bootstrap"
    title = (
        f"accuracy lines, {scale} axes: OOD against {id_setting!r} in {table.source} "
        f"({len(table)} models; {draws})"
    )
    _print_table(lines, predictions, title, id_setting)


@shift_app.command()
@friendly_errors
def plot(
    source: SourceArgument,
    id_setting: IdOption = "test",
    ood: OodOption = None,
    scale: ScaleOption = "probit",
    percent: PercentOption = False,
    model_column: ModelColumnOption = None,
    family: FamilyOption = None,
    bootstrap: BootstrapOption = 1000,
    seed: SeedOption = 0,
    output: OutputOption = Path("lines.png"),
) -> None:
    """Draw the accuracy lines: one panel per OOD setting, on probit axes by default.

    Each panel shows the models, the fitted line with its bootstrap band, y = x dashed, and
    R², slope and bias (Miller et al., arXiv 2107.04649).
    """
    from stalwart.shift.plot import plot_lines
    from stalwart.shift.scaling import check_scale

    check_scale(scale)
    table = _table(source, percent, model_column, family)
    written = plot_lines(
        table, id_setting, ood or "all", scale, output, bootstrap=bootstrap, seed=seed
    )
    console.print(f"wrote {written}", highlight=False, soft_wrap=True)


@shift_app.command()
@friendly_errors
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A finished run: the model to predict for.")],
    testbed: Annotated[
        Path, typer.Option(help="A testbed folder (kind: testbed) trained on the same data.")
    ],
    unlabelled: Annotated[
        str, typer.Option(help="The testbed's shifted set to predict accuracy on.")
    ],
    method: Annotated[
        list[str] | None,
        typer.Option(help="A predictor (repeatable): naive, atc, doc, aline-s, aline-d (all)."),
    ] = None,
    id_set: Annotated[
        str, typer.Option("--id", help="The labelled in-distribution set the predictors read.")
    ] = "val",
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Also print the true accuracy (reads the shift's labels) and errors."
        ),
    ] = False,
) -> None:
    """Predict a model's accuracy on a shift without the shift's labels.

    The run's model is evaluated on the testbed's ID set and shifted set and joins the
    testbed's models: agreement on the line (ALine-S, ALine-D; Baek et al., arXiv 2206.13089)
    reads the pool's agreements, ATC and DoC the model's own confidences.
    """
    from stalwart.report import ResultTable
    from stalwart.shift.predictors import DEFAULT_PREDICTORS, PREDICTORS
    from stalwart.shift.testbed import run_pool
    from stalwart.shift.testbed_io import Testbed

    names = method or list(DEFAULT_PREDICTORS)
    for name in names:
        PREDICTORS.get(name)  # a wrong name lists the choices before any work
    pool, run_name = run_pool(run_dir, testbed, unlabelled, id_set)
    row = pool.names.index(run_name)
    truth = None
    if check:
        labels = Testbed(testbed).labels[unlabelled]
        truth = pool.ood_outputs[row].accuracy(labels)
    headers = ["predictor", f"predicted accuracy on {unlabelled} %"]
    headers += ["true %", "error (points)"] if check else []
    table = ResultTable(
        headers,
        title=f"{run_dir} on {unlabelled}, without its labels ({len(pool) - 1} testbed models; "
        f"ID set {id_set}: {100 * pool.id_accuracy()[row]:.2f}%)",
    )
    for name in names:
        value = float(PREDICTORS.build(name)(pool)[row])
        cells = [name, f"{100 * value:.2f}"]
        if truth is not None:
            cells += [f"{100 * truth:.2f}", f"{100 * (value - truth):+.2f}"]
        table.add(*cells)
    console.print(table.rich())


@shift_app.command()
@friendly_errors
def evaluate(
    testbed: Annotated[Path, typer.Argument(help="A testbed folder (kind: testbed).")],
    id_set: Annotated[
        str, typer.Option("--id", help="The labelled in-distribution set the predictors read.")
    ] = "val",
    ood: OodOption = None,
    method: Annotated[
        list[str] | None,
        typer.Option(help="A predictor (repeatable): naive, atc, doc, aline-s, aline-d (all)."),
    ] = None,
    family: FamilyOption = None,
    folds: Annotated[
        int, typer.Option(help="Folds of the labelled line, the supervised reference column.")
    ] = 5,
    format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
) -> None:
    """How well each label-free predictor predicts every testbed model's accuracy under shift.

    For each shift, every predictor predicts each model's accuracy from unlabelled shifted
    inputs (and the labelled ID set); the table gives the mean absolute error against the true
    accuracy, in points (ATC: Garg et al., arXiv 2201.04234; DoC: Guillory et al., arXiv
    2107.03315; ALine: Baek et al., arXiv 2206.13089). The last column is the reference that
    *does* read OOD labels: each model's accuracy read off the accuracy line (arXiv
    2107.04649) of the other models, fitted in ``--folds`` cross-validation folds.
    """
    import numpy as np

    from stalwart.report import ResultTable
    from stalwart.shift.fits import choose_ood_settings, read_accuracies
    from stalwart.shift.line import cross_validated_predictions
    from stalwart.shift.predictors import DEFAULT_PREDICTORS, evaluate_predictors
    from stalwart.shift.testbed_io import Testbed

    if format not in FORMATS:
        raise ConfigError(
            f"unknown format {format!r}{closest(format, FORMATS)}; choose from {list(FORMATS)}"
        )
    names = method or list(DEFAULT_PREDICTORS)
    bed = Testbed(testbed)
    bed.check_set(id_set)
    models = bed.family_models(family)
    table = read_accuracies(testbed)
    # `all` means the shifts: neither val nor test, whichever is the ID set here.
    shifts = [s for s in choose_ood_settings(table, "test", ood or "all") if s != id_set]
    accuracy = bed.accuracies().loc[models]
    pools = {shift: bed.pool(id_set, shift, models) for shift in shifts}
    truth = {shift: accuracy[shift].to_numpy() for shift in shifts}
    summary = evaluate_predictors(pools, truth, names)
    mae = summary.pivot(index="shift", columns="predictor", values="mean_absolute_error")
    mae = mae.loc[shifts, names]
    labelled = "labelled line"
    mae[labelled] = [
        np.abs(
            cross_validated_predictions(accuracy[id_set], truth[shift], folds=folds) - truth[shift]
        ).mean()
        for shift in shifts
    ]
    which = f"{len(models)} models" + (f" ({', '.join(family)})" if family else "")
    if format == "json":
        errors = {
            "id": id_set,
            "models": len(models),
            "families": family or None,
            "mean_absolute_error": mae.to_dict("index"),
        }
        typer.echo(json.dumps(errors, indent=2))
        return
    out = ResultTable(
        ["shift", "true acc %", *names, f"{labelled} ({folds}-fold, OOD labels)"],
        title=f"mean absolute error (points) predicting {which}' accuracy on each shift "
        f"without its labels; ID set {id_set}",
    )
    for shift in shifts:
        out.add(shift, f"{100 * truth[shift].mean():.1f}",
                *(f"{100 * mae.loc[shift, n]:.1f}" for n in [*names, labelled]))  # fmt: skip
    out.add("mean", "", *(f"{100 * mae[n].mean():.1f}" for n in [*names, labelled]))
    console.print(out.rich())
