"""A testbed on disk: many models, each one's outputs on every evaluation set, and the labels.

A testbed (``kind: testbed``) trains a zoo of models on one in-distribution training set and
evaluates every model on the ID validation and test sets and on every shifted set, as the
model testbeds behind accuracy on the line do (arXiv 2107.04649; imagenet-testbed keeps one row
per model and one column per evaluation setting). Its folder::

    TESTBED/
      config.yaml          the testbed's config
      labels.npz           labels of every evaluation set, one array per set name
      models/ID/           one folder per model (a run directory for a neural network)
        outputs.npz        SET.predictions, SET.confidence, SET.negative_entropy per set;
                           written last and atomically: a model is finished when it exists
        model.json         what the model is: family, settings, seconds
      models.csv           one row per finished model: id, family, settings (for reading)
      accuracies.csv       one row per finished model, one column per evaluation set

``Testbed`` reads it back: accuracies for ``fit_line``, a ``ModelPool`` for the label-free
predictors. Outputs, not accuracies, are the source of truth: accuracies are recomputed from
outputs and labels, so an edited CSV cannot disagree with what the models did.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from stalwart.errors import DataError, DataMissingError, closest, shorten
from stalwart.io import atomic_write_bytes, write_json
from stalwart.npz import read_npz
from stalwart.shift.outputs import Outputs
from stalwart.shift.predictors import ModelPool

if TYPE_CHECKING:
    import pandas as pd

FIELDS = ("predictions", "confidence", "negative_entropy")
OUTPUTS = "outputs.npz"
LABELS = "labels.npz"
MODEL_INFO = "model.json"


def _save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(path, lambda handle: handle.write(buffer.getvalue()))


def _load_npz(
    path: Path, remedy: str = "delete it to evaluate that model again"
) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, or a DataError that names it and says ``remedy``."""
    return read_npz(path, "stalwart array file", remedy)


def write_outputs(model_dir: Path, outputs: Mapping[str, Outputs], info: Mapping[str, Any]) -> None:
    """Save one model's outputs on every evaluation set, and what the model is.

    ``model.json`` is written first and ``outputs.npz`` last, so a model with outputs is whole.
    """
    arrays = {
        f"{name}.{field}": getattr(out, field) for name, out in outputs.items() for field in FIELDS
    }
    write_json(model_dir / MODEL_INFO, dict(info))
    _save_npz(model_dir / OUTPUTS, arrays)


def read_outputs(model_dir: Path) -> dict[str, Outputs]:
    """One model's outputs, by evaluation set."""
    arrays = _load_npz(model_dir / OUTPUTS)
    sets = sorted({key.rsplit(".", 1)[0] for key in arrays})
    try:
        return {s: Outputs(*(arrays[f"{s}.{field}"] for field in FIELDS)) for s in sets}
    except KeyError as missing:
        raise DataError(
            f"{model_dir / OUTPUTS} lacks {missing}; delete it to evaluate again"
        ) from None
    except DataError as error:
        # Outputs' own check (lengths, finite scores) does not know which file it read.
        raise DataError(f"{model_dir / OUTPUTS}: {error}; delete it to evaluate again") from None


def write_labels(testbed: Path, labels: Mapping[str, np.ndarray]) -> None:
    """Save the labels of every evaluation set (shared by all models)."""
    _save_npz(testbed / LABELS, {name: np.asarray(y, dtype=np.int64) for name, y in labels.items()})


def is_finished(model_dir: Path) -> bool:
    """Whether a model's outputs have been written (the last step of evaluating it)."""
    return (model_dir / OUTPUTS).is_file()


class Testbed:
    """A testbed folder, read back: models, their outputs, the labels, accuracies and pools."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not (self.path / LABELS).is_file():
            raise DataMissingError(
                f"{self.path} is not a testbed folder (no {LABELS}); run a `kind: testbed` "
                "config first, or give a CSV of accuracies"
            )
        self.labels = _load_npz(
            self.path / LABELS, "delete it and run the testbed again to write the labels"
        )
        model_dirs = sorted(p for p in (self.path / "models").glob("*") if is_finished(p))
        if not model_dirs:
            raise DataMissingError(f"{self.path} has no finished models yet; run the testbed")
        self._dirs = {p.name: p for p in model_dirs}

    @property
    def models(self) -> list[str]:
        """Finished models, by id."""
        return list(self._dirs)

    @property
    def sets(self) -> list[str]:
        """Evaluation sets: ``val``, ``test`` and every shift."""
        return list(self.labels)

    def check_set(self, name: str) -> str:
        """``name`` if it is an evaluation set of this testbed, else an error listing them."""
        if name not in self.labels:
            raise DataError(
                f"testbed {self.path} has no evaluation set {name!r}{closest(name, self.sets)}; "
                f"its sets: {shorten(self.sets)}"
            )
        return name

    @cached_property
    def _outputs(self) -> dict[str, dict[str, Outputs]]:
        return {model: read_outputs(path) for model, path in self._dirs.items()}

    def outputs(self, model: str, set_name: str) -> Outputs:
        """One model's outputs on one evaluation set."""
        self.check_set(set_name)
        if model not in self._dirs:
            raise DataError(f"testbed has no finished model {model!r}{closest(model, self.models)}")
        found = self._outputs[model]
        if set_name not in found:
            raise DataError(f"model {model!r} was not evaluated on {set_name!r}; delete its "
                            f"{OUTPUTS} and run the testbed again")  # fmt: skip
        return found[set_name]

    def info(self, model: str) -> dict[str, Any]:
        """What ``model`` is (family, settings, seconds), from its ``model.json``."""
        return json.loads((self._dirs[model] / MODEL_INFO).read_text())

    def accuracies(self) -> pd.DataFrame:
        """One row per model (the index), one column per evaluation set: fractions."""
        import pandas as pd

        rows = {
            model: {s: self.outputs(model, s).accuracy(self.labels[s]) for s in self.sets}
            for model in self.models
        }
        return pd.DataFrame.from_dict(rows, orient="index")[self.sets].rename_axis("model")

    def family_models(self, families: Sequence[str] | None = None) -> list[str]:
        """The finished models of ``families`` (all of them for None), by id.

        Raises:
            DataError: a family with no finished model here (the testbed's families listed).
        """
        if families is None:
            return self.models
        found = {model: self.info(model)["family"] for model in self.models}
        present = sorted(set(found.values()))
        for family in families:
            if family not in present:
                raise DataError(
                    f"testbed {self.path} has no finished {family!r} model"
                    f"{closest(family, present)}; its families: {present}"
                )
        return [model for model, family in found.items() if family in families]

    def pool(self, id_set: str, ood_set: str, models: Sequence[str] | None = None) -> ModelPool:
        """The outputs of ``models`` (default: all) on a labelled ID set and a shifted set."""
        self.check_set(id_set)
        self.check_set(ood_set)
        models = self.models if models is None else list(models)
        return ModelPool.from_mappings(
            {m: self.outputs(m, id_set) for m in models},
            self.labels[id_set],
            {m: self.outputs(m, ood_set) for m in models},
        )
