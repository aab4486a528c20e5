"""The model zoo of a testbed, as data: families and the values each of their settings takes.

Accuracy on the line (Miller et al., arXiv 2107.04649) is a statement about *many* models:
architectures, sizes, training-set sizes, training lengths and augmentations, plus classical
models, all trained on one in-distribution set. A testbed config lists that zoo::

    zoo:
      mlp:                       # a family
        hidden: [[64], [256], [256, 256]]
        train_size: [2000, 10000]
        epochs: [1, 3]
        augment: [none, flip]
      knn:
        n_neighbors: [1, 5, 25]
        train_size: [1000, 5000]
      forest:
        n_estimators: [10, 50]
        max_depth: [4, 8, null]
        sample: 4                # 4 seeded random points of the grid instead of all 6

Every listed key takes a list of values (a single value is read as a one-value list); the
family's models are the cartesian product of the lists, or, with ``sample: k``, k distinct
points of that product drawn without replacement with a seed made of the testbed's seed and
the family name (so adding a family leaves the draws of the others unchanged). Settings not
listed take the family's default (see the ``*Settings`` classes). ``seed`` is a setting like
any other (``seed: [0, 1, 2]`` trains three copies); unlisted, it is the testbed's seed.

Every model is a :class:`ModelSpec` with a stable short id: the family and a hash of every
setting, defaults included (``mlp-3f9c01a2b4``), so running the testbed again finds the models
it already finished, and a changed setting or default is a new model.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pydantic
from pydantic import Field

from stalwart.config import MAX_EPOCHS, MAX_SEED, StrictModel
from stalwart.errors import ConfigError, closest, shorten

AUGMENTATIONS = ("none", "flip", "shift", "flip_shift")
"""Offline augmentations: each adds one fixed, seeded, transformed copy of the training subset
(``flip``: mirrored left–right; ``shift``: translated by up to 2 pixels; ``flip_shift``: both
at once), so the engine trains on a plain dataset and resume stays exact."""


class _Common(StrictModel):
    """Settings of every family: how much of the training split it sees, and its seed."""

    train_size: int | None = Field(
        None, ge=2, description="a seeded subset of the training split; None: all of it"
    )
    seed: int = Field(0, ge=0, le=MAX_SEED)


class _Neural(_Common):
    """Settings of the networks trained by the engine (ERM, no model selection: the last epoch)."""

    epochs: int = Field(1, ge=1, le=MAX_EPOCHS)
    augment: Literal["none", "flip", "shift", "flip_shift"] = "none"
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    weight_decay: float = Field(0.0, ge=0)


class MLPSettings(_Neural):
    """``stalwart.models.mlp``: hidden widths, one entry per layer."""

    hidden: list[int] = Field(default=[256], min_length=1)
    dropout: float = Field(0.0, ge=0, lt=1)


class CNNSettings(_Neural):
    """``stalwart.models.cnn``: channels of the first block and number of blocks."""

    width: int = Field(32, ge=1)
    depth: int = Field(2, ge=1)
    head: Literal["average", "flatten"] = "average"


class ResNetSettings(_Neural):
    """``stalwart.models.resnet``: first-stage channels and ResNet depth."""

    width: int = Field(16, ge=1)
    depth: Literal[10, 18, 34] = 10


class LogisticSettings(_Common):
    """scikit-learn ``LogisticRegression`` on flattened inputs (inverse regularisation C)."""

    C: float = Field(1.0, gt=0)
    max_iter: int = Field(200, ge=1)


class KNNSettings(_Common):
    """scikit-learn ``KNeighborsClassifier`` on flattened inputs."""

    n_neighbors: int = Field(5, ge=1)
    weights: Literal["uniform", "distance"] = "uniform"


class ForestSettings(_Common):
    """scikit-learn ``RandomForestClassifier`` on flattened inputs."""

    n_estimators: int = Field(50, ge=1)
    max_depth: int | None = Field(None, ge=1)


class RandomFeaturesSettings(_Common):
    """Fixed random ReLU features (``stalwart.models.random_features``), then a logistic head."""

    n_features: int = Field(512, ge=1)
    C: float = Field(1.0, gt=0)
    max_iter: int = Field(200, ge=1)


FAMILIES: dict[str, type[_Common]] = {
    "mlp": MLPSettings,
    "cnn": CNNSettings,
    "resnet": ResNetSettings,
    "logistic": LogisticSettings,
    "knn": KNNSettings,
    "forest": ForestSettings,
    "random_features": RandomFeaturesSettings,
}
NEURAL = frozenset({"mlp", "cnn", "resnet"})
"""Families trained by the engine, in a run directory; the others are scikit-learn models."""

SAMPLE = "sample"


@dataclass(frozen=True)
class ModelSpec:
    """One model of the zoo: its family and every setting (defaults filled in)."""

    family: str
    settings: dict[str, Any]

    @property
    def id(self) -> str:
        """``family-<10 hex digits>``: stable across runs, machines and Python versions."""
        text = json.dumps({"family": self.family, **self.settings}, sort_keys=True)
        return f"{self.family}-{hashlib.sha256(text.encode()).hexdigest()[:10]}"

    @property
    def neural(self) -> bool:
        """Whether the engine trains it (an mlp, cnn or resnet)."""
        return self.family in NEURAL

    def label(self, keys: tuple[str, ...] | None = None) -> str:
        """``hidden=[256] train_size=2000``: the settings (or only ``keys``), for reading."""
        return " ".join(
            f"{key}={json.dumps(value)}"
            for key, value in self.settings.items()
            if keys is None or key in keys
        )


def _family_seed(seed: int, family: str) -> int:
    return int.from_bytes(hashlib.sha256(repr((seed, family)).encode()).digest()[:8], "little")


def _settings(family: str, point: dict[str, Any], seed: int) -> dict[str, Any]:
    """One point validated as ``family``'s settings, every default filled in."""
    settings_class = FAMILIES[family]
    try:
        validated = settings_class.model_validate({"seed": seed, **point})
    except pydantic.ValidationError as error:
        item = error.errors(include_url=False)[0]
        key = ".".join(str(part) for part in item["loc"])
        raise ConfigError(
            f"zoo.{family}.{key}: {item['msg']}; got {shorten(item.get('input'))}"
        ) from None
    return validated.model_dump(mode="json")


def expand_family(family: str, grid: Any, seed: int = 0) -> list[ModelSpec]:
    """The models of one family: the product of its lists, or ``sample`` seeded draws of it.

    Raises:
        ConfigError: an unknown family or setting (the closest is suggested), a setting's value
            of the wrong type or out of range, a value repeated in a list, an empty list, or a
            ``sample`` that is not a positive integer. The message names ``zoo.FAMILY.KEY``.
    """
    if family not in FAMILIES:
        raise ConfigError(
            f"zoo: unknown model family {family!r}{closest(family, FAMILIES)}; "
            f"choose from {list(FAMILIES)}"
        )
    if grid is None:
        grid = {}  # `knn:` alone: one model with every default
    if not isinstance(grid, dict):
        raise ConfigError(
            f"zoo.{family}: expected a mapping of settings to lists of values; got {shorten(grid)}"
        )
    grid = dict(grid)
    sample = grid.pop(SAMPLE, None)
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int)
                               or sample < 1):  # fmt: skip
        raise ConfigError(f"zoo.{family}.{SAMPLE}: must be a positive integer; got {sample!r}")
    fields = FAMILIES[family].model_fields
    values: dict[str, list[Any]] = {}
    for key, listed in grid.items():
        if key not in fields:
            raise ConfigError(
                f"zoo.{family}: unknown setting {key!r}{closest(str(key), [*fields, SAMPLE])}; "
                f"its settings are {sorted(fields)} and {SAMPLE!r}"
            )
        # A list is the values to try, except for `hidden`, whose one value is itself a list.
        one_value = not isinstance(listed, list) or (
            key == "hidden" and listed and not isinstance(listed[0], list)
        )
        listed = [listed] if one_value else listed
        if not listed:
            raise ConfigError(f"zoo.{family}.{key}: an empty list of values")
        repeated = [v for n, v in enumerate(listed) if v in listed[:n]]
        if repeated:
            raise ConfigError(f"zoo.{family}.{key}: values must not repeat; {repeated} do")
        values[key] = listed
    keys = list(values)
    points = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values.values())]
    if sample is not None and sample < len(points):
        rng = np.random.default_rng(_family_seed(seed, family))
        chosen = np.sort(rng.choice(len(points), size=sample, replace=False))
        points = [points[int(n)] for n in chosen]
    return [ModelSpec(family, _settings(family, point, seed)) for point in points]


def expand_zoo(zoo: Any, seed: int = 0) -> list[ModelSpec]:
    """Every model of a zoo (family → settings → values), in the config's order.

    Args:
        zoo: the ``zoo`` mapping of a testbed config.
        seed: the testbed's seed: each model's ``seed`` unless its family lists one, and the
            seed of the ``sample`` draws.

    Raises:
        ConfigError: see :func:`expand_family`; also an empty zoo.
    """
    if not isinstance(zoo, dict) or not zoo:
        raise ConfigError(
            f"zoo: expected a mapping of model families to their settings (families: "
            f"{list(FAMILIES)}); got {shorten(zoo)}"
        )
    return [spec for family, grid in zoo.items() for spec in expand_family(family, grid, seed)]
