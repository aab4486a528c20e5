"""A run under audit: where it is, what it is called in the report, and its loaded model.

Three kinds of run are audited (``RUN_KINDS``): a classification run directory
(``config.yaml``, loaded with ``stalwart.experiments.run.load_run``); a text model, a trained
RobEn cell of a ``kind: roben`` run (``cell.json`` and ``classifier/``, loaded with
``stalwart.text.experiment.load_cell``); and a one-class detector, a cell of a ``kind: anomaly``
run (``cells/DATASET/DETECTOR/seedK.json``, the record of one fit: its split, detector,
parameters and seed, loaded with ``stalwart.experiments.kinds.anomaly.load_cell``). A check
says which kinds it applies to (``CheckInfo.applies_to``); the others get it as *not
applicable*, with the reason.

The run is loaded once and shared by its checks. A run that cannot be loaded (no config, no
saved model, a corrupt checkpoint) keeps the reason, and every check of it reports that reason
instead of a figure.
"""

from __future__ import annotations

import math
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stalwart.errors import StalwartError


@dataclass(frozen=True)
class RunKind:
    """What the report says about one kind of run.

    Attributes:
        checked: the kind, as a check for it describes it (plural).
        this_is: a run of the kind, as a check not for it describes it.
        how: how to audit a run of the kind.
    """

    checked: str
    this_is: str
    how: str


RUN_KINDS = {
    "classification": RunKind(
        "classification runs (a run directory with config.yaml)",
        "a classification run",
        "audit a run directory of `stalwart run` (config.yaml and checkpoints/)",
    ),
    "text": RunKind(
        "text models (a trained RobEn cell: cell.json and classifier/)",
        "a text model (a RobEn cell): its robustness to typos is the typos section's",
        "audit a cell of a `kind: roben` run (ROOT/cells/DATASET-DEFENSE-MODEL-seedK), or its ROOT",
    ),
    "one_class": RunKind(
        "one-class detectors (a cell of a `kind: anomaly` run: cells/DATASET/DETECTOR/seedK.json)",
        "a one-class detector (a cell of a `kind: anomaly` run): its AUROC on held-out "
        "anomalies is the one-class section's",
        "audit a cell of a `kind: anomaly` run (ROOT/cells/DATASET/DETECTOR/seedK.json), or its "
        "ROOT",
    ),
}
"""The kinds of run the audit knows, by name (``AuditedRun.kind``)."""


def not_applicable_reason(kind: str, applies_to: tuple[str, ...]) -> str:
    """Why a check for the kinds ``applies_to`` says nothing about a run of ``kind``."""
    wanted = " and ".join(RUN_KINDS[k].checked for k in applies_to)
    how = "; or ".join(RUN_KINDS[k].how for k in applies_to)
    return f"this check is for {wanted}; this is {RUN_KINDS[kind].this_is}. To apply it, {how}"


def is_text_cell(path: Path) -> bool:
    """Whether ``path`` is a RobEn cell folder (it holds ``cell.json``)."""
    return (path / "cell.json").is_file()


def is_one_class_cell(path: Path) -> bool:
    """Whether ``path`` is the record of a one-class cell (``kind: anomaly``'s ``seedK.json``)."""
    from stalwart.experiments.kinds.anomaly import is_cell_record

    return path.is_file() and path.suffix == ".json" and is_cell_record(path)


@dataclass
class AuditedRun:
    """One run and, once loaded, its config, splits and model.

    For a classification run: its ``RunConfig``, ``Splits`` and selected model. For a text
    model (``kind == "text"``): its ``Cell`` (``stalwart.text.experiment``), ``TextSplits`` and
    trained text classifier. For a one-class cell (``kind == "one_class"``): its ``Cell``
    (``stalwart.anomaly.benchmark``), ``OneClassData`` and ``record`` (the figures the run
    measured); the anomaly run keeps records, not fitted detectors, so ``model`` stays None and
    the check fits the detector again from the record.
    """

    label: str
    path: Path
    config: Any = None
    splits: Any = None
    model: Any = None
    record: Any = None
    error: str = ""
    load_seconds: float = 0.0
    _tried: bool = field(default=False, repr=False)

    def load(self) -> bool:
        """Load the run (once); False, with ``error`` set, when it cannot be loaded."""
        if not self._tried:
            self._tried = True
            started = time.perf_counter()
            try:
                if self.kind == "text":
                    from stalwart.text.experiment import load_cell

                    self.config, self.model, self.splits = load_cell(self.path)
                elif self.kind == "one_class":
                    from stalwart.experiments.kinds.anomaly import load_cell as load_one_class

                    self.config, self.record, self.splits = load_one_class(self.path)
                else:
                    from stalwart.experiments.run import load_run

                    self.config, self.splits, self.model = load_run(self.path)
            except StalwartError as error:
                self.error = str(error)
            except Exception as error:  # a config of another kind, a model that breaks...
                self.error = f"{type(error).__name__}: {error}"
            self.load_seconds = time.perf_counter() - started
        return not self.error

    @property
    def kind(self) -> str:
        """The key of ``RUN_KINDS``: ``text``, ``one_class`` or ``classification``."""
        if is_text_cell(self.path):
            return "text"
        return "one_class" if is_one_class_cell(self.path) else "classification"

    @property
    def quoted(self) -> str:
        """The run directory as a shell word, for the commands the report prints."""
        return shlex.quote(str(self.path))

    @property
    def finished(self) -> bool:
        """Whether the run wrote its ``summary.json`` (a RobEn cell: ``results.json``).

        A one-class cell's record is written only once it has finished.
        """
        if self.kind == "one_class":
            return True
        return (self.path / ("results.json" if self.kind == "text" else "summary.json")).is_file()

    def trained_eps(self) -> tuple[float, str] | None:
        """The L∞ ε the run's method trained the model to resist, with the method's name.

        For adversarial and certified training (``pgd_at``, ``trades``, ``ibp``, ``rst``): the
        method's ``eps`` as configured, else its default; None for other methods, and for
        training against another norm.
        """
        import inspect

        import stalwart.recipes  # noqa: F401  (registers the multi-stage methods too)
        from stalwart.methods.catalog import METHODS

        method = getattr(self.config, "method", None)
        if method is None or method.name not in METHODS:
            return None
        defaults = {
            name: parameter.default
            for name, parameter in inspect.signature(METHODS.get(method.name)).parameters.items()
            if parameter.default is not inspect.Parameter.empty
        }
        params = {**defaults, **method.params}
        eps, norm = params.get("eps"), str(params.get("norm", "linf")).lower()
        if isinstance(eps, bool) or not isinstance(eps, int | float) or eps <= 0:
            return None
        return (float(eps), method.name) if norm in ("linf", "inf") else None

    def input_range(self) -> tuple[float, float]:
        """The valid input range attacks and bounds stay in.

        Images in ``[0, 1]`` keep that range; other data (standardised features, Gaussian
        toys) has no natural box, so the smallest box with two decimals that holds every
        training and test input stands in for it, and the commands the report prints pass it
        as ``--lower``/``--upper``.
        """
        low = min(float(self.splits.train.x.min()), float(self.splits.test.x.min()))
        high = max(float(self.splits.train.x.max()), float(self.splits.test.x.max()))
        if low >= 0.0 and high <= 1.0:
            return 0.0, 1.0
        return math.floor(low * 100) / 100, math.ceil(high * 100) / 100


def range_options(lower: float, upper: float) -> str:
    """`` --lower L --upper U`` unless the range is the commands' default ``[0, 1]``."""
    # "=" keeps a negative bound from reading as an option of its own.
    return "" if (lower, upper) == (0.0, 1.0) else f" --lower={lower:g} --upper={upper:g}"
