"""Strict, typed configuration: the one place where YAML becomes objects.

Every section rejects unknown keys and suggests the closest valid one; every value is type
checked and range checked, and an error names the key, the rule and the value received.
The ``data``, ``model`` and ``method`` sections name a registry entry; their other keys are
that entry's parameters, checked against its signature by ``stalwart.experiments.configs``
(this module is a leaf: it imports no registry).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from stalwart.errors import ConfigError, closest


class _YamlLoader(yaml.SafeLoader):
    """YAML 1.2 numbers: PyYAML follows YAML 1.1, which reads ``1e-3`` as a string."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def read_yaml(text: str) -> Any:
    """Parse YAML safely (no code runs), reading ``1e-3`` as a float."""
    return yaml.load(text, Loader=_YamlLoader)  # noqa: S506  (a SafeLoader subclass)


class StrictModel(BaseModel):
    """A config section that forbids unknown keys and cannot be changed once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainConfig(StrictModel):
    """How ``fit`` trains: optimiser, schedule, epochs, selection, seed and device."""

    epochs: int = Field(10, ge=1, description="passes over the training data")
    batch_size: int = Field(128, ge=1)
    eval_batch_size: int = Field(1024, ge=1)
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD only")
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "step", "cosine"] = "constant"
    step_size: int = Field(30, ge=1, description="epochs between learning-rate drops (step)")
    gamma: float = Field(0.1, gt=0, le=1, description="learning-rate factor per drop (step)")
    select: str = Field(
        "worst_group_accuracy",
        pattern=r"^[a-z][a-z0-9_]*$",
        description="the validation metric that selects the epoch (a key the evaluator "
        "measures: worst_group_accuracy, accuracy, weighted_accuracy, loss, auroc, ...) or last",
    )
    seed: int = Field(0, ge=0, description="seeds initialisation, data order and data splits")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 autocast on CUDA, fp32 elsewhere"
    )
    progress: bool | None = Field(None, description="progress bar; None: only on a terminal")


class ComponentConfig(BaseModel):
    """A registry entry by ``name``; the other keys are its parameters."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @property
    def params(self) -> dict[str, Any]:
        """The entry's parameters (every key but ``name``)."""
        return dict(self.model_extra or {})


class RunConfig(StrictModel):
    """One training run: data, model, method, training settings and output folder.

    ``train.seed`` is the run's one seed; ``data.seed`` defaults to it.
    """

    kind: Literal["run"] = "run"
    name: str = "run"
    data: ComponentConfig
    model: ComponentConfig
    method: ComponentConfig = ComponentConfig(name="erm")
    train: TrainConfig = TrainConfig()
    out: str | None = Field(None, description="run directory; default runs/<name>")

    def run_dir(self) -> Path:
        """Where this run writes its results."""
        return Path(self.out) if self.out else Path("runs") / self.name

    def data_params(self) -> dict[str, Any]:
        """Parameters for the data source, with the run's seed unless one is given."""
        return {"seed": self.train.seed, **self.data.params}


def validate_run_config(raw: Any, source: str = "config") -> RunConfig:
    """Validate a mapping as a ``RunConfig`` (structure, types and ranges).

    The registry entries it names (data source, model, method) are checked one floor up, in
    ``stalwart.experiments.configs.parse_config``, where every registry is loaded.
    """
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping of keys to values; got {type(raw).__name__}"
        )
    try:
        return RunConfig.model_validate(raw)
    except pydantic.ValidationError as error:
        raise ConfigError(describe(error, source)) from None


def read_config_file(path: str | Path, overrides: list[str] = ()) -> dict[str, Any]:
    """The mapping in a YAML file, with ``key.sub=value`` overrides applied (not validated)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config {path}: {error.strerror}") from None
    try:
        raw = read_yaml(text) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    for override in overrides:
        apply_override(raw, override)
    return raw


def apply_override(raw: dict, override: str) -> None:
    """Set ``a.b=value`` in a nested dict; the value is parsed as YAML (``1e-3`` is a float)."""
    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set expects key=value, like train.lr=0.01; got {override!r}")
    try:
        value = read_yaml(text)
    except yaml.YAMLError:
        value = text
    set_key(raw, key, value)


def set_key(raw: dict, dotted: str, value: Any) -> None:
    """Set ``raw[a][b] = value`` for ``dotted = "a.b"``, creating sections as needed."""
    node = raw
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"cannot set {dotted}: {part!r} is a value, not a section")
        node = child
    node[leaf] = value


def describe(
    error: pydantic.ValidationError, source: str, root: type[BaseModel] | None = None
) -> str:
    """Readable lines for a pydantic error, with the closest valid key for unknown ones."""
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            section = _section_model(item["loc"][:-1], root or RunConfig)
            valid = list(section.model_fields) if section else []
            hint = closest(str(item["loc"][-1]), valid)
            lines.append(f"{source}: unknown key {location!r}{hint}; valid keys: {valid}")
        elif item["type"] == "missing":
            lines.append(f"{source}: missing required key {location!r}")
        else:
            lines.append(f"{source}: {location}: {item['msg']}; got {item.get('input')!r}")
    return "\n".join(lines)


def _section_model(path: tuple, model: type[BaseModel]) -> type[BaseModel] | None:
    for part in path:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model
