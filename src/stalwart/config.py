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
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from stalwart.errors import MAX_QUOTED, ConfigError, closest, shorten

MAX_YAML_VALUES = 100_000
"""The most values (scalars, lists and mappings) a YAML document may expand to through aliases."""

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _YamlLoader(yaml.SafeLoader):
    """A safe loader with YAML 1.2 numbers, no duplicate keys and bounded alias expansion.

    - PyYAML follows YAML 1.1, which reads ``1e-3`` as a string; this loader reads a float.
    - PyYAML keeps the last of two equal keys (``lr: 0.5`` then ``lr: 0.001``) without a word;
      this loader refuses the mapping and names both lines.
    - An alias (``*name``) repeats the value its anchor names, so a 1 KB document can expand to
      billions of values (an "alias bomb"). PyYAML builds such a document as a shared graph,
      cheaply, but every later walk over it (validation, error messages) pays the expanded
      size. This loader counts the expanded size first and refuses more than
      ``MAX_YAML_VALUES``, and refuses an alias inside its own anchor (a cycle).
    """

    source = "config"

    def construct_document(self, node: yaml.Node) -> Any:
        if _expanded_size(node, MAX_YAML_VALUES, self.source) > MAX_YAML_VALUES:
            raise ConfigError(
                f"{self.source}: the YAML expands to more than {MAX_YAML_VALUES:,} values "
                "(each alias *name repeats the whole value its anchor &name marks); a config "
                "this large is refused: write the values out or use fewer aliases"
            )
        return super().construct_document(node)

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        # Checked as written, before merge keys (<<) are flattened in: a key merged in may be
        # overridden, as YAML specifies, but a key written twice is a mistake.
        node = super().compose_mapping_node(anchor)
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in first_line:
                earlier = first_line[key]
                where = (
                    f"twice on line {line}" if earlier == line else f"at lines {earlier} and {line}"
                )
                raise ConfigError(
                    f"{self.source}: duplicate key {shorten(key)} {where}; YAML would "
                    "silently keep the last one, so remove one of them"
                )
            first_line[key] = line
        return node


def _expanded_size(root: yaml.Node, limit: int, source: str) -> int:
    """The number of values ``root`` expands to, counting an aliased value at every use.

    Each distinct node is sized once (memoised by identity), and the count stops growing past
    ``limit``, so the walk costs the document's size, not its expansion.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            raise ConfigError(
                f"{source}: line {node.start_mark.line + 1}: an alias refers to the value that "
                "contains it, which would expand forever; remove the recursive alias"
            )
        open_nodes.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                break
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    return size(root)


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def read_yaml(text: str, source: str = "config") -> Any:
    """Parse YAML safely (no code runs), reading ``1e-3`` as a float.

    Raises:
        ConfigError: a duplicate key (both lines named), a document that expands through
            aliases to more than ``MAX_YAML_VALUES`` values, a recursive alias, or nesting
            deeper than Python can follow. Each message starts with ``source``.
        yaml.YAMLError: the text is not YAML.
    """
    loader = _YamlLoader(text)
    loader.source = source
    try:
        return loader.get_single_data()
    except RecursionError:
        raise ConfigError(f"{source}: the YAML is nested too deeply to read; flatten it") from None
    finally:
        loader.dispose()


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_EPOCHS = 1_000_000
MAX_BATCH = 2**24
MAX_SEED = 2**32 - 1
"""Seeds go to NumPy's legacy ``RandomState`` through scikit-learn, which takes [0, 2**32)."""
MAX_STEPS = 2**40
"""The most optimiser steps a count of steps (``warmup_steps``) may name."""


class StrictModel(BaseModel):
    """A config section that forbids unknown keys and cannot be changed once built.

    Values are checked strictly: a boolean, a string or a fractional float is not read as an
    integer (``epochs: true`` is refused, not taken as 1), and a float must be finite (``lr:
    1e400`` reads as infinity and is refused, as are ``.inf`` and ``.nan``). Every integer,
    also inside lists and mappings, must fit in 64 bits, the most any array or generator
    takes. Subclasses (the experiment kinds' configs) inherit all three rules.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _integers_fit_int64(cls, value: Any) -> Any:
        found = _int_out_of_range(value)
        if found is not None:
            where, number = found
            raise PydanticCustomError(
                "int64_range",
                "{where}must lie in the int64 range [-2**63, 2**63 - 1]; it is {number}",
                {"where": f"item {where} " if where else "", "number": shorten(number)},
            )
        return value


def _int_out_of_range(value: Any, where: str = "") -> tuple[str, int] | None:
    """The position and value of the first integer in ``value`` outside int64, if any."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (where, value) if not INT64_MIN <= value <= INT64_MAX else None
    if isinstance(value, dict):
        items = ((f"{where}.{k}" if where else str(k), v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    else:
        return None  # a nested config section checks its own fields
    for position, item in items:
        found = _int_out_of_range(item, position)
        if found is not None:
            return found
    return None


def check_plain_name(name: str, field: str = "name") -> str:
    """Return ``name`` if it can be one folder's name under ``runs/``; raise otherwise.

    A config's ``name`` becomes ``runs/<name>`` when no ``out`` is given; a name with a path
    separator, or ``..``, would put the run somewhere else entirely.

    Raises:
        ConfigError: (a ``ValueError``, so pydantic validators may call this too) ``name`` is
            empty, ``.`` or ``..``, or holds a slash, a backslash or a control character.
    """
    bad = (
        name in ("", ".", "..")
        or any(sep in name for sep in ("/", "\\"))
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    )
    if bad:
        raise ConfigError(
            f"{field} {shorten(name)} is not a plain name: it becomes the folder "
            f"runs/<{field}>, so it may not be empty, '.' or '..', or hold '/', '\\' or control "
            "characters; use a plain name such as 'erm_seed0', and set out: (or --out) to write "
            "elsewhere"
        )
    return name


class NamedConfig(StrictModel):
    """A config whose ``name`` becomes its folder, ``runs/<name>``, unless ``out`` is given.

    Subclasses declare ``name`` and ``out``; the name must then be a plain folder name, so that
    ``name: ../../somewhere`` cannot write outside ``runs/``.
    """

    @model_validator(mode="after")
    def _name_is_a_plain_folder_name(self) -> NamedConfig:
        if not getattr(self, "out", None):
            check_plain_name(self.name)
        return self


ADAPTATION_STRATEGIES = ("ft", "lp", "lp-ft", "lora")
"""How ``fit`` adapts a model: see ``AdaptationConfig`` and ``stalwart.engine.adaptation``."""

_MODULE_NAME = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$"


class AdaptationConfig(StrictModel):
    """Which parameters of a (pretrained) model ``fit`` trains, and how.

    The model's ``head`` attribute is its linear output layer; everything else is the body.

    - ``ft``: full fine-tuning, every parameter trains (the default, and what ``fit`` always did).
    - ``lp``: linear probe, only the head trains; the body is frozen and kept in eval mode.
    - ``lp-ft``: a linear probe for ``lp_epochs`` at ``lp_lr``, then full fine-tuning from the
      probed head (Kumar et al., arXiv 2202.10054); two stages, run by ``stalwart.fit``.
    - ``lora``: low-rank adapters of rank ``lora_r`` on the body's Linear layers named by
      ``lora_targets`` train with the head; the body's own weights stay frozen (Hu et al.,
      arXiv 2106.09685), through PyPI ``peft``.

    A ``lp_*`` setting is refused unless the strategy is ``lp-ft``, a ``lora_*`` one unless it is
    ``lora``: a setting that would be ignored is more likely a mistake than a choice.
    """

    strategy: Literal["ft", "lp", "lp-ft", "lora"] = "ft"
    lp_epochs: int | None = Field(
        None, ge=1, le=MAX_EPOCHS, description="lp-ft: epochs of the probe (None: epochs)"
    )
    lp_lr: float | None = Field(
        None, gt=0, description="lp-ft: learning rate of the probe (None: lr)"
    )
    lora_r: int = Field(8, ge=1, le=4096, description="lora: rank of each adapter")
    lora_alpha: float = Field(
        16.0, gt=0, description="lora: the adapter's output is scaled by lora_alpha / lora_r"
    )
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="lora: dropout on the adapter input")
    lora_targets: list[str] = Field(
        ["query", "value"],
        min_length=1,
        max_length=1000,
        description="lora: the body's Linear layers to adapt, by name or dotted name suffix "
        "(default: BERT's attention query and value projections, as in Hu et al.)",
    )

    @field_validator("lora_targets")
    @classmethod
    def _targets_are_module_names(cls, targets: list[str]) -> list[str]:
        for target in targets:
            if not re.match(_MODULE_NAME, target):
                raise ValueError(
                    f"each target is a module name such as 'query' or 'attention.self.query'; "
                    f"{shorten(target)} is not"
                )
        return targets

    @model_validator(mode="after")
    def _settings_belong_to_the_strategy(self) -> AdaptationConfig:
        defaults = AdaptationConfig.model_fields
        for name, field in defaults.items():
            owner = (
                "lp-ft" if name.startswith("lp_") else "lora" if name.startswith("lora_") else None
            )
            if owner and owner != self.strategy and getattr(self, name) != field.default:
                raise ValueError(
                    f"{name} applies to strategy {owner!r} only; the strategy is "
                    f"{self.strategy!r}: remove {name} or set strategy: {owner}"
                )
        return self


# Settings TrainConfig gained after runs were recorded: at their defaults (today's behaviour)
# they are left out of dumps, so fingerprints, stage hashes and config.yaml files written
# before them still match.
_LATER_DEFAULTS: dict[str, Any] = {
    "lr_groups": {},
    "warmup_steps": 0,
    "clip_grad_norm": None,
    "adaptation": AdaptationConfig(),
    "loading": "auto",
    "channels_last": None,
    "compile": False,
}


class TrainConfig(StrictModel):
    """How ``fit`` trains: optimiser, schedule, epochs, selection, seed and device.

    ``lr_groups``, ``warmup_steps``, ``clip_grad_norm``, ``adaptation``, ``loading``,
    ``channels_last`` and ``compile`` are left out of ``model_dump`` while they hold their
    defaults, so configs and checkpoints written before these settings existed keep their
    fingerprints.
    """

    epochs: int = Field(10, ge=1, le=MAX_EPOCHS, description="passes over the training data")
    batch_size: int = Field(128, ge=1, le=MAX_BATCH)
    eval_batch_size: int = Field(1024, ge=1, le=MAX_BATCH)
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD only")
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["constant", "step", "cosine"] = "constant"
    step_size: int = Field(
        30, ge=1, le=MAX_EPOCHS, description="epochs between learning-rate drops (step)"
    )
    gamma: float = Field(0.1, gt=0, le=1, description="learning-rate factor per drop (step)")
    select: str = Field(
        "worst_group_accuracy",
        pattern=r"^[a-z][a-z0-9_]*$",
        description="the validation metric that selects the epoch (a key the evaluator "
        "measures: worst_group_accuracy, accuracy, weighted_accuracy, loss, auroc, ...) or last",
    )
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="seeds initialisation, data order and data splits"
    )
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 autocast on CUDA, fp32 elsewhere"
    )
    progress: bool | None = Field(None, description="progress bar; None: only on a terminal")
    lr_groups: dict[str, float] = Field(
        default_factory=dict,
        max_length=1000,
        description="learning-rate multipliers by parameter-name prefix, e.g. {head: 10.0}; "
        "the longest matching prefix wins, other parameters keep lr",
    )
    warmup_steps: int = Field(
        0, ge=0, le=MAX_STEPS, description="optimiser steps of linear learning-rate warmup"
    )
    clip_grad_norm: float | None = Field(
        None, gt=0, description="clip the gradient's global L2 norm to this before each step"
    )
    adaptation: AdaptationConfig = Field(
        AdaptationConfig(),
        description="which parameters train: ft, lp, lp-ft or lora (a strategy name, or a "
        "section with its settings)",
    )

    loading: Literal["auto", "resident", "prefetch", "plain"] = Field(
        "auto",
        description="how batches reach the device: resident (the training data kept on the "
        "device), prefetch (gathered ahead into pinned memory by a thread), plain; auto: "
        "resident on a GPU when the data fits, prefetch when not, plain on the CPU",
    )
    channels_last: bool | None = Field(
        None,
        description="train image models in channels-last memory format; None: on CUDA for "
        "models with 2-D convolutions",
    )
    compile: bool = Field(
        False, description="train through torch.compile(model) (compiles on the first steps)"
    )

    @field_validator("adaptation", mode="before")
    @classmethod
    def _strategy_name_is_shorthand(cls, value: Any) -> Any:
        return {"strategy": value} if isinstance(value, str) else value

    @field_validator("lr_groups")
    @classmethod
    def _lr_groups_are_prefixes_and_positive(cls, groups: dict[str, float]) -> dict[str, float]:
        for prefix, factor in groups.items():
            if not re.match(_MODULE_NAME, prefix):
                raise ValueError(
                    "each key is a parameter-name prefix such as 'head' or 'encoder.layer'; "
                    f"{shorten(prefix)} is not"
                )
            if not factor > 0:
                raise ValueError(
                    f"each multiplier must be > 0 (to freeze parameters, use adaptation); "
                    f"{prefix!r} has {shorten(factor)}"
                )
        return groups

    @model_serializer(mode="wrap")
    def _later_settings_at_default_left_out(
        self, handler: SerializerFunctionWrapHandler
    ) -> dict[str, Any]:
        dumped = handler(self)
        for name, default in _LATER_DEFAULTS.items():
            if name in dumped and getattr(self, name) == default:
                del dumped[name]
        return dumped


class ComponentConfig(BaseModel):
    """A registry entry by ``name``; the other keys are its parameters."""

    model_config = ConfigDict(extra="allow", frozen=True)
    name: str

    @property
    def params(self) -> dict[str, Any]:
        """The entry's parameters (every key but ``name``)."""
        return dict(self.model_extra or {})


class RunConfig(NamedConfig):
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
        raw = read_yaml(text, str(path)) or {}
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
        value = read_yaml(text, f"--set {key}")
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


MAX_ERROR_LINES = 20
"""The most problems one error message lists (the count of the rest follows)."""


def describe(
    error: pydantic.ValidationError, source: str, root: type[BaseModel] | None = None
) -> str:
    """Readable lines for a pydantic error, with the closest valid key for unknown ones.

    Values are quoted by ``shorten`` (at most ``MAX_QUOTED`` characters), and at most
    ``MAX_ERROR_LINES`` problems are listed, so a huge value never makes a huge message.
    """
    lines = []
    items = error.errors(include_url=False)
    for item in items[:MAX_ERROR_LINES]:
        location = _location(item["loc"])
        if item["type"] == "extra_forbidden":
            section = _section_model(item["loc"][:-1], root or RunConfig)
            valid = list(section.model_fields) if section else []
            hint = closest(str(item["loc"][-1]), valid)
            lines.append(f"{source}: unknown key {location!r}{hint}; valid keys: {valid}")
        elif item["type"] == "missing":
            lines.append(f"{source}: missing required key {location!r}")
        elif not item["loc"]:  # a rule over the whole config: its message names the keys
            lines.append(f"{source}: {item['msg'].removeprefix('Value error, ')}")
        else:
            bounds = _range(item["loc"], root or RunConfig) if item["type"] in _BOUNDS else ""
            message = item["msg"].removeprefix("Value error, ")
            lines.append(
                f"{source}: {location}: {message}{bounds}; got {shorten(item.get('input'))}"
            )
    if len(items) > MAX_ERROR_LINES:
        lines.append(f"{source}: ... and {len(items) - MAX_ERROR_LINES} more problems")
    return "\n".join(lines)


_BOUNDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}


def _range(loc: tuple, root: type[BaseModel]) -> str:
    """`` (the range is 1 <= epochs <= 1000000)`` for a bounded field, else an empty string."""
    section = _section_model(loc[:-1], root)
    field = section.model_fields.get(str(loc[-1])) if section else None
    if field is None:
        return ""
    low = high = ""
    for rule in field.metadata:
        if getattr(rule, "ge", None) is not None:
            low = f"{rule.ge} <= "
        elif getattr(rule, "gt", None) is not None:
            low = f"{rule.gt} < "
        elif getattr(rule, "le", None) is not None:
            high = f" <= {rule.le}"
        elif getattr(rule, "lt", None) is not None:
            high = f" < {rule.lt}"
    return f" (the range is {low}{loc[-1]}{high})" if low or high else ""


def _location(loc: tuple) -> str:
    text = ".".join(str(part) for part in loc)
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 3] + "..."


def _section_model(path: tuple, model: type[BaseModel]) -> type[BaseModel] | None:
    for part in path:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model
