"""One accuracy line per shift, from a testbed folder or a table of accuracies (arXiv 2107.04649).

Miller et al. ("Accuracy on the Line", arXiv 2107.04649) fit one line per shifted evaluation
setting, always against the same in-distribution (ID) setting, over the same pool of models.
``read_accuracies`` turns what a user has (a testbed folder written by ``kind: testbed``, a CSV
or TSV file, a DataFrame) into one ``AccuracyTable``; ``choose_ood_settings`` resolves the OOD
settings asked for (``"all"`` is every setting except the ID one); ``fit_lines`` fits a
``Line`` to each. The command line (``stalwart shift fit``, ``stalwart shift plot``) and
``stalwart.shift.plot`` are thin over these.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from stalwart.errors import ConfigError, DataError
from stalwart.shift.line import Line, fit_line
from stalwart.shift.scaling import check_scale
from stalwart.shift.table import AccuracyTable, read_accuracy_table

if TYPE_CHECKING:
    import pandas as pd

ALL = "all"
"""The OOD setting name meaning every setting except the ID one (unless a setting is so named)."""
IN_DISTRIBUTION = ("val", "test")
"""A testbed's in-distribution evaluation sets; ``all`` leaves them out."""


def read_accuracies(
    source: str | os.PathLike[str] | pd.DataFrame | AccuracyTable,
    *,
    percent: bool = False,
    model_column: str | None = None,
    families: Sequence[str] | None = None,
) -> AccuracyTable:
    """The accuracies in ``source``: one row per model, one column per evaluation setting.

    Args:
        source: a testbed folder (it holds ``labels.npz``; accuracies are recomputed from the
            models' outputs by ``stalwart.shift.testbed_io.Testbed``), a CSV or TSV file or a
            DataFrame (read by ``read_accuracy_table``), or an ``AccuracyTable`` (returned as is).
        percent: a CSV's or DataFrame's values are percentages in [0, 100].
        model_column: the column of a CSV or DataFrame holding model names.
        families: only the models of these families (a testbed's ``mlp``, ``cnn``, ...); the
            table records every model's family either way.

    Raises:
        DataError: the source is missing, or not a testbed, or its cells are wrong, or a
            family has no finished model in the testbed.
        DataMissingError: a folder that is not a testbed, or one with no finished models.
        ConfigError: ``percent`` or ``model_column`` given for a testbed, ``families`` for
            anything else.
    """
    path = Path(source) if isinstance(source, str | os.PathLike) else None
    if families is not None and (path is None or not path.is_dir()):
        raise ConfigError(
            "--family (families) selects models of a testbed folder, whose models.json name "
            f"their family; {source if path else type(source).__name__} is a table"
        )
    if isinstance(source, AccuracyTable):
        return source
    if not isinstance(source, str | os.PathLike):
        return read_accuracy_table(source, percent=percent, model_column=model_column)
    path = Path(source)
    if path.is_dir():
        # A testbed stores outputs, not a table: its accuracies are fractions by construction
        # and its models are named by their folders, so these options have nothing to act on.
        if percent:
            raise ConfigError(
                f"--percent (percent=True) is for CSV tables; the testbed {path} computes its "
                "accuracies as fractions from the models' outputs"
            )
        if model_column is not None:
            raise ConfigError(
                f"--model-column (model_column) is for CSV tables; the testbed {path} names "
                "its models by their folders"
            )
        from stalwart.shift.testbed_io import Testbed

        bed = Testbed(path)
        models = bed.family_models(families)
        table = read_accuracy_table(bed.accuracies().loc[models])
        chosen = f" ({', '.join(families)})" if families else ""
        # val and test are the testbed's in-distribution sets, not shifts to fit.
        return dataclasses.replace(
            table, source=f"testbed {path}{chosen}", in_distribution=IN_DISTRIBUTION,
            families=tuple(bed.info(model)["family"] for model in table.models),
        )  # fmt: skip
    if not path.exists():
        raise DataError(
            f"{path} does not exist; give a testbed folder (with labels.npz) or a CSV file of "
            "accuracies, one row per model and one column per evaluation setting"
        )
    return read_accuracy_table(path, percent=percent, model_column=model_column)


def choose_ood_settings(
    table: AccuracyTable, id_setting: str, requested: str | Sequence[str]
) -> list[str]:
    """The OOD settings to fit against ``id_setting``, in the order asked, without repeats.

    ``"all"`` stands for every setting of the table except ``id_setting`` and the table's
    in-distribution settings (a testbed's ``val`` and ``test``), in table order (unless the
    table has a setting of that name, which then means itself).

    Raises:
        DataError: a setting is not in the table (the message lists the table's settings and
            suggests the closest), or ``"all"`` leaves nothing to fit.
        ConfigError: nothing was asked for, or the ID setting was also given as OOD.
    """
    table.column(id_setting)  # raises, listing the settings, when the ID setting is unknown
    names = [requested] if isinstance(requested, str) else list(requested)
    if not names:
        raise ConfigError("give at least one OOD setting (--ood SET, repeatable, or --ood all)")
    chosen: list[str] = []
    for name in names:
        if name == ALL and ALL not in table.settings:
            skip = {id_setting, *table.in_distribution}
            expanded = [s for s in table.settings if s not in skip]
            if not expanded:
                raise DataError(
                    f"{table.source} has no evaluation setting besides the ID setting "
                    f"{id_setting!r}; an accuracy line needs a second one"
                )
        else:
            table.column(name)
            if name == id_setting:
                raise ConfigError(
                    f"OOD setting {name!r} is the ID setting; a line of a setting against itself "
                    "is y = x. Choose another --ood, or --ood all"
                )
            expanded = [name]
        chosen += [s for s in expanded if s not in chosen]
    return chosen


def fit_lines(
    table: AccuracyTable,
    id_setting: str,
    ood_settings: str | Sequence[str] = ALL,
    scale: str = "probit",
    *,
    bootstrap: int = 1000,
    seed: int | None = 0,
    level: float = 0.95,
) -> dict[str, Line]:
    """One accuracy line per OOD setting, against ``id_setting`` (Miller et al., 2107.04649).

    Each line is ``fit_line`` on the models with both accuracies; a model missing one is left
    out of that line only and counted in its ``Line.dropped``. Every line uses the same seed,
    so each is the one ``fit_line`` gives for that pair alone.

    Args:
        table: the accuracies (``read_accuracies``).
        id_setting: the in-distribution setting, the x axis.
        ood_settings: one setting, several, or ``"all"``: see ``choose_ood_settings``.
        scale: ``"probit"``, ``"logit"`` or ``"linear"``.
        bootstrap: bootstrap refits per line (0 for none).
        seed: seed of each line's bootstrap.
        level: coverage of the bootstrap intervals and prediction intervals.

    Returns:
        The lines by OOD setting, in the order of ``choose_ood_settings``.

    Raises:
        DataError: an unknown setting, or a pair that cannot be fitted (fewer than 3 models
            with both values, one ID accuracy for all); the message names the pair.
        ConfigError: an unknown scale, or a bad ``bootstrap`` or ``level``.
    """
    scale = check_scale(scale)  # before any fit, so a typo costs no bootstrap
    lines: dict[str, Line] = {}
    for name in choose_ood_settings(table, id_setting, ood_settings):
        id_acc, ood_acc = table.pair(id_setting, name)
        try:
            lines[name] = fit_line(
                id_acc, ood_acc, scale, bootstrap=bootstrap, seed=seed, level=level
            )
        except DataError as error:
            raise DataError(
                f"{table.source}: cannot fit {name!r} against {id_setting!r}: {error}"
            ) from None
    return lines
