"""Adapting one foundation model many ways: tasks × adaptations × seeds, and what they inherit.

A pretrained encoder (all-MiniLM-L6-v2, model ``minilm``) is adapted to each task by linear
probing (``lp``), full fine-tuning (``ft``), LP-FT (``lp-ft``, Kumar et al., arXiv 2202.10054,
reported to beat fine-tuning out of distribution) and LoRA (``lora``, Hu et al., arXiv
2106.09685); ``scratch`` trains a model from random weights on the same data and token ids
(``scratch:``, by default a convolutional text classifier, ``text_cnn``; ``minilm`` is
MiniLM's architecture, which a few hundred examples leave at the majority class), the
reference against which inheritance is measured (homogenization, Bommasani et al., arXiv
2108.07258, §5.6). Each cell is measured in distribution (the test split), out of distribution
(the held-out topics or conditions, ``extra["ood"]``), under typos of the RobEn family (Jones
et al., arXiv 2005.01229) and under real misspellings (codespell); and it records where it
fails on one shared *probe set* of texts, so that ``stalwart inherit`` can tell which failures
the adapted models share, across tasks and adaptations, beyond chance.

    kind: adapt
    tasks:
      - {name: tweets, dataset: tweets_by_topic, train_groups: [airline], max_examples: 800}
    adaptations: [lp, ft, lp-ft, lora, scratch]
    method: erm                              # or {name: group_dro, step_size: 0.01}
    max_length: 32                           # MiniLM tokens per text
    train: {epochs: 3}                       # TrainConfig settings for every cell
    per_adaptation: {lp: {lr: 0.01}, lp-ft: {lp_lr: 0.01}}
    evaluate: {examples: 300}                # test and ood examples measured
    probe: {task: tweets, split: test, examples: 200}
    perturbations: [typo, codespell, ood]    # and attack: RobEn's beam-search typo attack
    typo: {family: internal_edit, rate: 1.0}
    attack: {examples: 100, beam_width: 5}   # test texts attacked (the typo family's typos)
    upstream_fix: {build: {vocab: 100000, gamma: 0.3}}   # or {encoding: PATH}
    scratch: {name: text_cnn, channels: 64}  # the from-scratch model (vocab: MiniLM's)
    seeds: [0, 1, 2]

Every text reaches the model through RobEn's tokenisation (lowercase ASCII words, digit runs
and symbols, joined by spaces), so that a perturbed text differs from its clean one by the
perturbation only; with ``upstream_fix`` the extra cells ``ADAPTATION+roben`` read the RobEn
encoding of that text instead (every word replaced by its cluster's representative), a fix
applied once, upstream of the encoder, for every task. Perturbations are drawn once per text
(``perturbation_seed``), so every model sees the same perturbed probes. ``attack`` is the
adversarial counterpart of ``typo``: RobEn's beam-search attack (``stalwart.text.attack``) with
the same family, on the first ``attack.examples`` measured test texts, through the trained
model (behind the fix, through the encoding too), so attacked accuracy is measured before and
after the fix on the same texts.

Each cell is a folder ``ROOT/cells/TASK-ADAPTATION-seedK/`` holding ``cell.json`` (what it is),
``metrics.jsonl`` (its training epochs), ``results.json`` and ``failures.npz``; a finished cell
with the same settings is reused. Models are not saved: MiniLM's weights are 90 MB a cell.
"""

from __future__ import annotations

import functools
import json
import random
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from stalwart.config import ComponentConfig, NamedConfig, StrictModel
from stalwart.errors import ConfigError, closest
from stalwart.experiments.cells import finished_cell, run_cells
from stalwart.experiments.executors import Executor
from stalwart.experiments.kinds import Reporter, register_kind
from stalwart.io import atomic_write_text, write_json
from stalwart.report import ResultTable, mean_std, percent_cell
from stalwart.shift.inherit import FILE_NAME as FAILURES

SCHEMA = 1
ADAPTATIONS = ("lp", "ft", "lp-ft", "lora", "scratch")
"""How the encoder is adapted; ``scratch`` trains the ``scratch:`` model from random weights."""
ENCODER_MODEL = "minilm"
"""The registered model every adaptation but ``scratch`` starts from."""
SCRATCH_MODELS = ("text_cnn", "text_gru", "bag_of_tokens", "minilm")
"""Models that read MiniLM's token ids from random weights (``minilm`` without pretraining)."""
DATASETS = ("tweets_by_topic", "drug_reviews_by_condition")
"""Text sources with a held-out shift (``extra["ood"]``) that a task may name."""
PERTURBATIONS = ("typo", "codespell", "ood", "attack")
DEFAULT_PERTURBATIONS = ["typo", "codespell", "ood"]
"""Measured unless ``perturbations:`` says otherwise; the attack is asked for by name (it costs
hundreds of model queries a text)."""
ENCODER = "all-MiniLM-L6-v2"
"""The pretrained encoder every adapted model comes from (``encoder`` of its failure sets)."""
FIX = "roben"
"""The suffix of cells whose text passes through the upstream fix: ``lp+roben``."""
METRICS = ("id_accuracy", "ood_accuracy", "typo_accuracy", "codespell_accuracy", "attack_accuracy")
DEFAULT_TRAIN: dict[str, Any] = {
    "epochs": 3,
    "batch_size": 16,
    "eval_batch_size": 256,
    "optimizer": "adamw",
    "lr": 1e-4,
    "select": "accuracy",
}
"""Training settings every cell starts from; ``train:`` overrides them."""
DEFAULT_PER_ADAPTATION: dict[str, dict[str, Any]] = {
    "lp": {"lr": 1e-2},
    "lp-ft": {"lp_lr": 1e-2},
    "lora": {"lr": 1e-3, "lr_groups": {"head": 10.0}},
    "scratch": {"lr": 1e-3, "epochs": 10},
}
"""Learning rates that suit each adaptation: a head alone takes a far larger step than a
fine-tuned encoder, and LoRA's adapters a larger one too (its head ten times theirs); a
small model from scratch takes more epochs at a larger rate. ``per_adaptation:`` overrides them."""
_FIXED_TRAIN = {"seed", "adaptation"}  # from seeds: and adaptations:
_STRATEGY_SETTINGS = {"lp-ft": "lp_", "lora": "lora_"}


def _strategy(adaptation: str) -> str:
    """The ``AdaptationConfig`` strategy of an adaptation (``scratch`` trains fully)."""
    return "ft" if adaptation == "scratch" else adaptation


def _adaptation_settings(adaptation: str) -> set[str]:
    """The ``AdaptationConfig`` settings that belong to ``adaptation`` (``lp_*``, ``lora_*``)."""
    from stalwart.config import AdaptationConfig

    prefix = _STRATEGY_SETTINGS.get(adaptation)
    return {k for k in AdaptationConfig.model_fields if prefix and k.startswith(prefix)}


def _train_fields() -> set[str]:
    from stalwart.config import TrainConfig

    return set(TrainConfig.model_fields) - _FIXED_TRAIN


def _check_choice(value: str, choices: Sequence[str], what: str) -> str:
    if value not in choices:
        raise ConfigError(
            f"unknown {what} {value!r}{closest(value, choices)}; choose from {list(choices)}"
        )
    return value


def _check_dataset(dataset: str, what: str) -> str:
    """``dataset`` if it is one of ``DATASETS``; the plain sources point to their shifted ones."""
    shifted = {"tweets": "tweets_by_topic", "drug_reviews": "drug_reviews_by_condition"}
    if dataset in shifted:
        raise ConfigError(
            f"unknown {what} {dataset!r} (did you mean {shifted[dataset]!r}? a task needs groups "
            f"held out as its shift); choose from {list(DATASETS)}"
        )
    return _check_choice(dataset, DATASETS, what)


class TaskSettings(StrictModel):
    """One task: a text source with a held-out shift, trained on some of its groups."""

    name: str = Field(description="the task's name, part of cell folders and model names")
    dataset: str = Field(description="tweets_by_topic or drug_reviews_by_condition")
    train_groups: list[str] = Field(
        min_length=1, description="topics (tweets) or conditions (drug reviews) trained on"
    )
    max_examples: int | None = Field(
        None, ge=10, description="at most this many in-distribution and this many ood examples"
    )

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*", name):
            raise ConfigError(
                "a task's name is part of folder and model names: letters, digits and _ . + - "
                "only, not starting with . + or -"
            )
        return name

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, dataset: str) -> str:
        return _check_dataset(dataset, "task dataset")

    @model_validator(mode="after")
    def _known_topics(self) -> TaskSettings:
        if self.dataset == "tweets_by_topic":  # conditions are checked against the data
            from stalwart.data.sources.tweets import TOPICS

            for topic in self.train_groups:
                _check_choice(topic, TOPICS, "tweet topic")
        return self

    def spec(self) -> dict[str, Any]:
        """What decides the task's texts: dataset, train groups, cap."""
        return {
            "dataset": self.dataset,
            "train_groups": list(self.train_groups),
            "max_examples": self.max_examples,
        }


class ProbeSettings(StrictModel):
    """The shared probe set: texts every model is measured on, whatever its task."""

    task: str | None = Field(None, description="a task of this config whose texts are probed")
    dataset: str | None = Field(None, description="or the texts of another task: its dataset")
    train_groups: list[str] | None = Field(None, description="... its train groups")
    max_examples: int | None = Field(None, ge=10, description="... and its cap")
    split: Literal["test", "ood"] = "test"
    examples: int | None = Field(300, ge=1, description="probes (None: the whole split)")

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, dataset: str | None) -> str | None:
        return None if dataset is None else _check_dataset(dataset, "probe dataset")

    @model_validator(mode="after")
    def _one_source(self) -> ProbeSettings:
        own = {"dataset": self.dataset, "train_groups": self.train_groups,
               "max_examples": self.max_examples}  # fmt: skip
        if self.task is not None and any(v is not None for v in own.values()):
            raise ConfigError(
                "give either task (a task of this config) or dataset and train_groups "
                "(the texts of a task defined elsewhere), not both"
            )
        if self.task is None and (self.dataset is None or not self.train_groups):
            raise ConfigError(
                "name a task of this config (task: NAME), or the texts of another task "
                "(dataset: ..., train_groups: [...])"
            )
        return self


class EvaluateSettings(StrictModel):
    """How much of each evaluation set is measured."""

    examples: int | None = Field(
        300, ge=1, description="test and ood examples measured (None: all); the same subset "
        "for every cell"
    )  # fmt: skip


class TypoSettings(StrictModel):
    """The ``typo`` perturbation: random typos of a RobEn family."""

    family: Literal["internal_edit", "keyboard"] = "internal_edit"
    rate: float = Field(
        1.0, gt=0, le=1, description="the chance that each perturbable word gets one typo"
    )

    def name(self) -> str:
        """The perturbation's name in failure sets: ``typo:internal_edit`` (``@0.5``)."""
        return f"typo:{self.family}" + ("" if self.rate == 1 else f"@{self.rate:g}")


class AttackSettings(StrictModel):
    """The ``attack`` perturbation: RobEn's beam-search attack with the ``typo`` family."""

    examples: int | None = Field(
        100, ge=1, description="the first this many measured test texts are attacked (None: all)"
    )
    beam_width: int = Field(5, ge=1, description="sentences kept after each word")
    budget: int | None = Field(None, ge=1, description="at most this many words changed")


class BuildSettings(StrictModel):
    """A RobEn encoding built (once) for the upstream fix."""

    vocab: int = Field(100_000, ge=1, description="most frequent English words clustered")
    word_list: str = Field("huge", description="Debian word list: small, large or huge")
    method: Literal["agglomerative", "connected_components"] = "agglomerative"
    gamma: float = Field(0.3, ge=0, le=1, description="AggClust's weight of fidelity")
    family: Literal["internal_edit", "keyboard"] = "internal_edit"


class FixSettings(StrictModel):
    """A RobEn encoding in front of the encoder: one fix applied upstream of every task.

    Without ``encoding`` or ``build`` there is no fix (the default).
    """

    encoding: str | None = Field(None, description="a saved RobEn encoding file")
    build: BuildSettings | None = Field(None, description="or build one (reused after)")
    encodings_folder: str | None = Field(
        None, description="where a built encoding lives (default ROOT/encodings)"
    )
    adaptations: list[str] | None = Field(
        None, min_length=1, description="which adaptations also run with the fix (None: all)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> FixSettings:
        if self.encoding is not None and self.build is not None:
            raise ConfigError(
                "give either encoding (a saved RobEn encoding) or build ({vocab: N, gamma: "
                "0.3}), not both"
            )
        if self.encoding is None and self.build is None:
            unused = [k for k in ("encodings_folder", "adaptations") if getattr(self, k)]
            if unused:
                raise ConfigError(
                    f"{unused[0]} applies to a fix, and there is none: add encoding: PATH or "
                    "build: {vocab: N}"
                )
        if self.encoding is not None and self.encodings_folder is not None:
            raise ConfigError("encodings_folder goes with build, not encoding")
        return self

    @property
    def enabled(self) -> bool:
        """Whether there is a fix (an encoding named or built)."""
        return self.encoding is not None or self.build is not None


class AdaptConfig(NamedConfig):
    """Tasks × adaptations of MiniLM × seeds; failures on a shared probe set."""

    kind: Literal["adapt"]
    name: str = "adapt"
    tasks: list[TaskSettings] = Field(min_length=1)
    adaptations: list[str] = Field(default=list(ADAPTATIONS), min_length=1)
    method: ComponentConfig = Field(
        ComponentConfig(name="erm"), description="a one-stage method: a name, or {name: ...}"
    )
    max_length: int = Field(32, ge=4, le=512, description="MiniLM tokens per text")
    train: dict[str, Any] = Field(
        default_factory=dict, description="TrainConfig settings over the kind's defaults"
    )
    per_adaptation: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="settings for one adaptation only: TrainConfig's, and lp_* (lp-ft) or "
        "lora_* (lora)",
    )
    evaluate: EvaluateSettings = EvaluateSettings()
    probe: ProbeSettings
    perturbations: list[str] = Field(default=DEFAULT_PERTURBATIONS, min_length=1)
    typo: TypoSettings = TypoSettings()
    attack: AttackSettings = AttackSettings()
    perturbation_seed: int = Field(0, ge=0, description="draws every perturbed text")
    upstream_fix: FixSettings = FixSettings()
    scratch: ComponentConfig = Field(
        ComponentConfig(name="text_cnn"),
        description="the model of adaptation scratch: text_cnn, text_gru, bag_of_tokens or "
        "minilm (its architecture, untrained), over MiniLM's token ids",
    )
    seeds: list[int] = Field(default=[0, 1, 2], min_length=1)
    workers: int = Field(1, ge=1, description="parallel worker processes")
    out: str | None = None

    @field_validator("method", "scratch", mode="before")
    @classmethod
    def _name_is_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("method")
    @classmethod
    def _one_stage_method(cls, method: ComponentConfig) -> ComponentConfig:
        import stalwart.recipes  # noqa: F401  (multi-stage recipes register as methods)
        from stalwart.methods import METHODS, method_info

        if method_info(method.name).staged:
            raise ConfigError(
                f"method {method.name!r} is a multi-stage recipe; kind adapt trains one-stage "
                "methods (a loss such as 'erm' or 'group_dro'), which every adaptation, LP-FT "
                "included, composes with"
            )
        METHODS.check_params(method.name, method.params)
        return method

    @field_validator("scratch")
    @classmethod
    def _scratch_model(cls, scratch: ComponentConfig) -> ComponentConfig:
        from stalwart.models import MODELS

        _check_choice(scratch.name, SCRATCH_MODELS, "scratch model")
        if "vocab_size" in scratch.params or "pretrained" in scratch.params:
            raise ConfigError(
                "scratch: the model reads MiniLM's token ids, so its vocabulary is MiniLM's, "
                "and it trains from random weights; leave out vocab_size and pretrained"
            )
        MODELS.check_params(scratch.name, scratch.params)
        return scratch

    @field_validator("adaptations", "perturbations")
    @classmethod
    def _known_names(cls, names: list[str], info: Any) -> list[str]:
        choices = ADAPTATIONS if info.field_name == "adaptations" else PERTURBATIONS
        what = "adaptation" if info.field_name == "adaptations" else "perturbation"
        for name in names:
            _check_choice(name, choices, what)
        if len(set(names)) != len(names):
            raise ConfigError(f"{info.field_name} repeats a name: {names}")
        return names

    @field_validator("train")
    @classmethod
    def _known_train_settings(cls, train: dict[str, Any]) -> dict[str, Any]:
        allowed = _train_fields()
        for key in train:
            if key not in allowed:
                where = (
                    " (the seed comes from seeds:)"
                    if key == "seed"
                    else " (adaptations: chooses it; per_adaptation: holds lp_* and lora_*)"
                    if key == "adaptation"
                    else ""
                )
                raise ConfigError(
                    f"unknown train setting {key!r}{closest(key, allowed)}; choose from "
                    f"{sorted(allowed)}{where}"
                )
        return train

    @field_validator("per_adaptation")
    @classmethod
    def _known_adaptation_settings(cls, found: dict[str, dict[str, Any]]) -> dict:
        for adaptation, settings in found.items():
            _check_choice(adaptation, ADAPTATIONS, "adaptation in per_adaptation")
            allowed = _train_fields() | _adaptation_settings(adaptation)
            for key in settings:
                if key not in allowed:
                    raise ConfigError(
                        f"unknown setting {key!r} for adaptation {adaptation!r}"
                        f"{closest(key, allowed)}; choose from {sorted(allowed)}"
                    )
        return found

    @model_validator(mode="after")
    def _consistent(self) -> AdaptConfig:
        names = [task.name for task in self.tasks]
        if len(set(names)) != len(names):
            raise ConfigError(f"tasks: every task needs its own name; got {names}")
        if self.probe.task is not None:
            _check_choice(self.probe.task, names, "probe task")
        for adaptation in self.per_adaptation:
            if adaptation not in self.adaptations:
                raise ConfigError(
                    f"per_adaptation sets {adaptation!r}, which is not in adaptations "
                    f"{self.adaptations}; add it there or remove its settings"
                )
        if "attack" in self.model_fields_set and "attack" not in self.perturbations:
            raise ConfigError(
                "attack: sets up the attack perturbation, which is not measured; add attack to "
                "perturbations: or remove attack:"
            )
        for adaptation in self.upstream_fix.adaptations or ():
            _check_choice(adaptation, self.adaptations, "upstream_fix adaptation")
        for adaptation in self.adaptations:  # every cell's settings, checked as TrainConfig
            train_config(train_settings(self, adaptation), adaptation, self.seeds[0])
        return self

    def probe_spec(self) -> dict[str, Any]:
        """The probe texts: their task's spec, ``split`` and ``examples``."""
        probe = self.probe
        if probe.task is not None:
            source = next(t for t in self.tasks if t.name == probe.task).spec()
        else:
            source = {"dataset": probe.dataset, "train_groups": list(probe.train_groups or ()),
                      "max_examples": probe.max_examples}  # fmt: skip
        return {**source, "split": probe.split, "examples": probe.examples}

    def fixed_adaptations(self) -> list[str]:
        """The adaptations that also run behind the upstream fix."""
        if not self.upstream_fix.enabled:
            return []
        return list(self.upstream_fix.adaptations or self.adaptations)

    def root(self) -> Path:
        """The experiment's directory."""
        return Path(self.out) if self.out else Path("runs") / self.name


def train_settings(config: AdaptConfig, adaptation: str) -> dict[str, Any]:
    """The cell's training settings, each layer over the one before.

    The kind's defaults, ``train:``, the kind's defaults for the adaptation, then
    ``per_adaptation:``: ``train: {lr: ...}`` is fine-tuning's learning rate, and the probe,
    LoRA and scratch keep theirs unless ``per_adaptation:`` changes them.
    """
    return {
        **DEFAULT_TRAIN,
        **config.train,
        **DEFAULT_PER_ADAPTATION.get(adaptation, {}),
        **config.per_adaptation.get(adaptation, {}),
    }


def train_config(settings: dict[str, Any], adaptation: str, seed: int) -> Any:
    """``settings`` of ``adaptation`` as a validated ``TrainConfig`` for ``seed``.

    Raises:
        ConfigError: a value out of range or of the wrong type.
    """
    import pydantic

    from stalwart.config import AdaptationConfig, TrainConfig, describe

    own = _adaptation_settings(adaptation)
    try:
        return TrainConfig(
            **{k: v for k, v in settings.items() if k not in own},
            seed=seed,
            adaptation=AdaptationConfig(
                strategy=_strategy(adaptation), **{k: v for k, v in settings.items() if k in own}
            ),
        )
    except pydantic.ValidationError as error:
        where = f"the training settings of adaptation {adaptation!r} (train: and per_adaptation:)"
        raise ConfigError(describe(error, where, TrainConfig)) from None


# ---------------------------------------------------------------------------------------------
# Cells


@dataclass(frozen=True)
class Cell:
    """What one cell trains and measures (everything that decides its results)."""

    experiment: str
    task: dict[str, Any]  # name, dataset, train_groups, max_examples
    adaptation: str
    seed: int
    fix: str | None  # the RobEn encoding file in front of the encoder, if any
    model: dict[str, Any] = field(default_factory=dict)  # name, params (pretrained: minilm)
    method: dict[str, Any] = field(default_factory=dict)  # name, params
    max_length: int = 32
    train: dict[str, Any] = field(default_factory=dict)
    evaluate: dict[str, Any] = field(default_factory=dict)
    probe: dict[str, Any] = field(default_factory=dict)
    perturbations: list[str] = field(default_factory=list)
    typo: dict[str, Any] = field(default_factory=dict)
    perturbation_seed: int = 0
    attack: dict[str, Any] | None = None  # AttackSettings, where the attack is measured

    def spec(self) -> dict[str, Any]:
        """The cell as ``cell.json`` and its record hold it (``attack`` only where measured)."""
        found = asdict(self)
        if self.attack is None:
            del found["attack"]
        return found

    @property
    def label(self) -> str:
        """The adaptation as tables and failure sets name it: ``lp``, ``lp+roben``."""
        return self.adaptation + (f"+{FIX}" if self.fix else "")

    def folder_name(self) -> str:
        """``TASK-ADAPTATION-seedK``, a plain folder name."""
        return f"{self.task['name']}-{self.label}-seed{self.seed}"

    def model_name(self) -> str:
        """The model's name in failure sets, unique across experiments."""
        return f"{self.experiment}/{self.task['name']}/{self.label}/seed{self.seed}"


def cells(config: AdaptConfig, encoding: str | None) -> list[Cell]:
    """Every cell of the experiment, in table order (fixed cells after their adaptation)."""
    common = {
        "method": {"name": config.method.name, "params": config.method.params},
        "max_length": config.max_length,
        "evaluate": config.evaluate.model_dump(),
        "probe": config.probe_spec(),
        "perturbations": list(config.perturbations),
        "typo": config.typo.model_dump(),
        "perturbation_seed": config.perturbation_seed,
        "attack": config.attack.model_dump() if "attack" in config.perturbations else None,
    }
    fixed = config.fixed_adaptations()
    out = []
    for task in config.tasks:
        for adaptation in config.adaptations:
            for fix in (None, encoding) if adaptation in fixed else (None,):
                for seed in config.seeds:
                    out.append(
                        Cell(
                            config.name,
                            {"name": task.name, **task.spec()},
                            adaptation,
                            seed,
                            fix,
                            model=model_spec(config, adaptation),
                            train=train_settings(config, adaptation),
                            **common,
                        )  # fmt: skip
                    )
    return out


def model_spec(config: AdaptConfig, adaptation: str) -> dict[str, Any]:
    """The cell's model: the pretrained encoder, or for ``scratch`` the ``scratch:`` model."""
    if adaptation == "scratch":
        return {"name": config.scratch.name, "params": config.scratch.params}
    return {"name": ENCODER_MODEL, "params": {}}


def load_task(spec: dict[str, Any], seed: int) -> Any:
    """The ``TextSplits`` of a task (or probe) spec, capped at its ``max_examples``.

    ``tweets_by_topic`` caps itself (in-distribution pool, then ood); drug reviews are capped
    here the same way: each in-distribution split in proportion, ood on its own, every subset
    stratified and the same for every seed.

    Raises:
        ConfigError: an unknown topic or condition (the choices listed).
    """
    from stalwart.data.text import TextSplits, cap_pool

    if spec["dataset"] == "tweets_by_topic":
        from stalwart.data.sources.tweets import tweets_by_topic

        return tweets_by_topic(spec["train_groups"], seed, max_examples=spec["max_examples"])
    from stalwart.data.sources.drug_reviews import drug_reviews_by_condition

    splits = drug_reviews_by_condition(spec["train_groups"], seed)
    cap = spec["max_examples"]
    inside = {"train": splits.train, "val": splits.val, "test": splits.test}
    total = sum(len(s) for s in inside.values())
    if cap is None or total <= cap and len(splits.extra["ood"]) <= cap:
        return splits
    share = min(1.0, cap / total)
    capped = {k: s.subset(cap_pool(s, max(1, int(len(s) * share)))) for k, s in inside.items()}
    ood = splits.extra["ood"]
    return TextSplits(**capped, extra={"ood": ood.subset(cap_pool(ood, cap))})


def evaluation_positions(n: int, examples: int | None) -> np.ndarray:
    """Sorted positions of at most ``examples`` of ``n`` examples, the same for every cell."""
    if examples is None or examples >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).permutation(n)[:examples])


def probe_set_name(probe: dict[str, Any]) -> str:
    """The name of the probe texts: ``tweets_by_topic:airline:800/test`` (ids: positions)."""
    cap = "" if probe["max_examples"] is None else f":{probe['max_examples']}"
    return f"{probe['dataset']}:{'+'.join(probe['train_groups'])}{cap}/{probe['split']}"


def _tokens(text: str) -> list[str]:
    """RobEn's tokens of ``text``; none for a text without any (emoji only, say)."""
    from stalwart.errors import DataError
    from stalwart.text import tokenize

    try:
        return tokenize(text)
    except DataError:
        return []


@functools.lru_cache(maxsize=1 << 16)
def _typo_options(family: Any, word: str) -> tuple[str, ...]:
    return tuple(sorted(family.typos(word) - {word}))


class Perturber:
    """Perturbed tokens of a text: each text's draw is fixed by the text and the seed."""

    def __init__(self, typo: dict[str, Any], seed: int, misspellings: dict | None) -> None:
        from stalwart.text import typo_family

        self.family = typo_family(typo["family"])
        self.rate = typo["rate"]
        self.seed = seed
        self.misspellings = misspellings or {}

    def __call__(self, tokens: list[str], perturbation: str, text: str) -> list[str]:
        """``tokens`` (of ``text``) under ``typo`` or ``codespell``."""
        rng = random.Random(f"{self.seed}:{perturbation}:{text}")
        out = list(tokens)
        if perturbation == "codespell":
            for i, token in enumerate(tokens):
                options = self.misspellings.get(token)
                if options:
                    out[i] = rng.choice(options)
            return out
        positions = [i for i, token in enumerate(tokens) if _typo_options(self.family, token)]
        if self.family.max_words is not None and len(positions) > self.family.max_words:
            positions = sorted(rng.sample(positions, self.family.max_words))
        for i in positions:
            if rng.random() < self.rate:
                out[i] = rng.choice(_typo_options(self.family, tokens[i]))
        return out


class TextView:
    """What the model reads of a text: its RobEn tokens, or their RobEn encoding (the fix)."""

    def __init__(self, perturber: Perturber, encoding: Any = None) -> None:
        self.perturber = perturber
        self.encoding = encoding
        self._memo: dict[tuple[str, str], tuple[str, int]] = {}

    def __call__(self, text: str, perturbation: str = "clean") -> str:
        """The model's input for ``text``, clean or under ``perturbation``."""
        return self._view(text, perturbation)[0]

    def changed(self, text: str, perturbation: str) -> int:
        """How many words ``perturbation`` changes in ``text``."""
        return self._view(text, perturbation)[1]

    def _view(self, text: str, perturbation: str) -> tuple[str, int]:
        key = (text, perturbation)
        if key not in self._memo:
            tokens = _tokens(text)
            perturbed = tokens
            if perturbation != "clean":
                perturbed = self.perturber(tokens, perturbation, text)
            changed = sum(a != b for a, b in zip(tokens, perturbed, strict=True))
            if self.encoding is not None:
                perturbed = self.encoding.encode_tokens(perturbed)
            self._memo[key] = (" ".join(perturbed), changed)
        return self._memo[key]

    def split(self, split: Any, perturbation: str = "clean") -> Any:
        """``split`` (a ``TextSplit``) with every text as the model reads it."""
        from stalwart.data.text import TextSplit

        return TextSplit(
            tuple(self(t, perturbation) for t in split.texts), split.y, split.group,
            split.class_names, split.group_names, split.name,
        )  # fmt: skip


class Predictor:
    """A trained model's logits for model inputs (texts), each distinct token-id row computed once.

    Texts that tokenise alike (they differ past ``max_length``, say) share one row; new rows go
    through the model shortest first, so each batch is cut to a short longest row.
    """

    def __init__(self, model: Any, max_length: int, batch_size: int) -> None:
        from stalwart.data.tokenized import minilm_tokenizer

        self.model = model
        self.max_length = max_length
        self.batch_size = batch_size
        self.tokenizer = minilm_tokenizer()
        self._memo: dict[bytes, np.ndarray] = {}

    def logits(self, inputs: Sequence[str]) -> np.ndarray:
        """Logits ``(len(inputs), classes)``, float64."""
        import torch

        from stalwart.data.tokenized import tokenize_texts
        from stalwart.engine.evaluate import logits_in_batches
        from stalwart.errors import DataError

        ids = tokenize_texts(self.tokenizer, list(inputs), max_length=self.max_length)
        keys = [row.tobytes() for row in ids]
        new = {key: row for key, row in zip(keys, ids, strict=True) if key not in self._memo}
        if new:
            rows = sorted(new.items(), key=lambda item: int(np.count_nonzero(item[1])))
            batch = torch.from_numpy(np.stack([row for _, row in rows]))
            logits = logits_in_batches(self.model, batch, self.batch_size).double()
            if not bool(torch.isfinite(logits).all()):
                raise DataError(
                    "the trained model's outputs are NaN or infinite: its weights diverged "
                    "(lower the learning rate)"
                )
            self._memo.update(zip((key for key, _ in rows), logits.numpy(), strict=True))
        if not keys:
            return np.zeros((0, 0))
        return np.stack([self._memo[key] for key in keys])

    def __call__(self, inputs: Sequence[str]) -> np.ndarray:
        """The predicted class of each input."""
        return self.logits(inputs).argmax(axis=1) if len(inputs) else np.zeros(0, np.int64)


class AttackedModel:
    """A trained cell's model as ``beam_search_attack`` sees it: token lists in, logits out.

    Args:
        predictor: the model's ``Predictor``.
        encoder: what stands in front of the model: the RobEn encoding behind the fix, else
            ``IdentityEncoding`` (the tokens as they are).
    """

    def __init__(self, predictor: Predictor, encoder: Any) -> None:
        self.predictor = predictor
        self.encoder = encoder

    def logits(self, encoded: Sequence[Sequence[str]], batch_size: int = 512) -> np.ndarray:
        """Logits of each encoded token list, read as the joined text (as ``TextView`` gives)."""
        return self.predictor.logits([" ".join(tokens) for tokens in encoded])


def _attack(cell: Cell, predict: Predictor, encoding: Any, test: Any) -> dict[str, Any]:
    """Accuracy under RobEn's beam-search attack on the first ``attack.examples`` test texts.

    Texts without a word (emoji only) have nothing to attack and are left out.
    """
    from stalwart.text import IdentityEncoding, typo_family
    from stalwart.text.attack import beam_search_attack

    settings = cell.attack or {}
    family = typo_family(cell.typo["family"])
    wordy = [i for i, text in enumerate(test.texts) if _tokens(text)]
    attacked = test.subset(np.array(wordy[: settings.get("examples") or len(wordy)]))
    model = AttackedModel(predict, encoding if encoding is not None else IdentityEncoding(family))
    started = time.perf_counter()
    found = beam_search_attack(
        model, attacked, family=family, budget=settings.get("budget"),
        beam_width=settings.get("beam_width", 5), seed=cell.perturbation_seed,
    )  # fmt: skip
    return {
        "examples": len(attacked),
        "attack_accuracy": found.attacked_accuracy,
        "attack_clean_accuracy": float(found.correct.mean()),
        "attack_queries": float(found.queries.mean()),
        "attack_seconds": round(time.perf_counter() - started, 2),
    }


def _accuracy(predicted: np.ndarray, y: np.ndarray) -> float:
    return float((predicted == y).mean())


def _group_accuracy(correct: np.ndarray, split: Any) -> dict[str, float]:
    """Accuracy per group of ``split`` that has examples."""
    return {
        name: float(correct[split.group == g].mean())
        for g, name in enumerate(split.group_names)
        if (split.group == g).any()
    }


def _perturbation_names(cell: Cell) -> dict[str, str]:
    """Each measured perturbation of ``typo``/``codespell`` and its name in failure sets."""
    names = {"typo": TypoSettings(**cell.typo).name(), "codespell": "codespell"}
    return {p: names[p] for p in cell.perturbations if p in names}


def _train(cell: Cell, splits: Any, view: TextView, test: Any, cache: Path) -> Any:
    """Tokenise (cached) and train the cell's model through ``stalwart.fit``."""
    import torch

    from stalwart import models
    from stalwart.data.text import TextSplits
    from stalwart.data.tokenized import minilm_tokenizer, tokenize_splits
    from stalwart.recipes.train import fit

    texts = TextSplits(view.split(splits.train), view.split(splits.val), view.split(test))
    data = tokenize_splits(texts, max_length=cell.max_length, cache_folder=cache)
    torch.manual_seed(cell.seed)  # the head's (and, from scratch, every layer's) initial weights
    name, params = cell.model["name"], dict(cell.model["params"])
    if name == ENCODER_MODEL:
        params["pretrained"] = cell.adaptation != "scratch"
    else:  # a model of its own over MiniLM's token ids
        params["vocab_size"] = len(minilm_tokenizer())
    model = models.build(name, ((cell.max_length,), splits.train.n_classes), **params)
    train = train_config(cell.train, cell.adaptation, cell.seed)
    return fit(model, cell.method["name"], data, train, method_params=cell.method["params"])


def run_cell(cell: Cell, folder: Path, cache: Path) -> dict[str, Any]:
    """Train and measure one cell; write its ``results.json`` and ``failures.npz``."""
    from stalwart.shift.inherit import FailureSet, save_failures

    started, cpu_started = time.perf_counter(), time.process_time()
    write_json(folder / "cell.json", cell.spec())
    misspellings = None
    if "codespell" in cell.perturbations:
        from stalwart.data.sources.codespell import codespell_misspellings

        misspellings = codespell_misspellings()
    encoding = None
    if cell.fix is not None:
        from stalwart.text import Encoding

        encoding = Encoding.load(cell.fix)
    view = TextView(Perturber(cell.typo, cell.perturbation_seed, misspellings), encoding)
    splits = load_task(cell.task, cell.seed)
    examples = cell.evaluate["examples"]
    test = splits.test.subset(evaluation_positions(len(splits.test), examples))

    fit_started = time.perf_counter()
    result = _train(cell, splits, view, test, cache)
    train_seconds = time.perf_counter() - fit_started
    atomic_write_text(
        folder / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in result.history)
    )

    predict = Predictor(result.model, cell.max_length, cell.train["eval_batch_size"])
    perturbations = _perturbation_names(cell)
    found: dict[str, Any] = {
        "id_accuracy": _accuracy(predict([view(t) for t in test.texts]), test.y),
        "examples": {"train": len(splits.train), "val": len(splits.val), "test": len(test)},
    }
    words = sum(len(_tokens(t)) for t in test.texts)
    for perturbation in perturbations:
        inputs = [view(t, perturbation) for t in test.texts]
        found[f"{perturbation}_accuracy"] = _accuracy(predict(inputs), test.y)
        changed = sum(view.changed(t, perturbation) for t in test.texts)
        found[f"{perturbation}_words_changed"] = changed / max(words, 1)

    if cell.attack is not None:
        attack = _attack(cell, predict, encoding, test)
        found["examples"]["attack"] = attack.pop("examples")
        found |= attack

    description = {
        "model": cell.model_name(),
        "task": cell.task["name"],
        "adaptation": cell.label,
        "encoder": None if cell.adaptation == "scratch" else ENCODER,
    }
    sets = []
    if "ood" in cell.perturbations:
        full_ood = splits.extra["ood"]
        positions = evaluation_positions(len(full_ood), examples)
        ood = full_ood.subset(positions)
        wrong = predict([view(t) for t in ood.texts]) != ood.y
        found["ood_accuracy"] = float(1 - wrong.mean())
        found["ood_group_accuracy"] = _group_accuracy(~wrong, ood)
        found["examples"]["ood"] = len(ood)
        ood_probes = {**{k: cell.task[k] for k in ("dataset", "train_groups", "max_examples")},
                      "split": "ood"}  # fmt: skip
        sets.append(FailureSet(
            perturbation=f"ood:{cell.task['name']}", kind="error", probe_ids=positions,
            failed=wrong, probe_set=probe_set_name(ood_probes), **description,
        ))  # fmt: skip

    probe = cell.probe
    probe_split = load_task(probe, 0)
    probe_split = probe_split.test if probe["split"] == "test" else probe_split.extra["ood"]
    positions = evaluation_positions(len(probe_split), probe["examples"])
    probes = probe_split.subset(positions)
    own = all(probe[k] == cell.task[k] for k in ("dataset", "train_groups", "max_examples"))
    clean = predict([view(t) for t in probes.texts])
    flips: dict[str, float] = {}
    for perturbation, name in perturbations.items():
        perturbed = predict([view(t, perturbation) for t in probes.texts])
        kinds = {"flip": perturbed != clean} | ({"error": perturbed != probes.y} if own else {})
        for kind, failed in kinds.items():
            sets.append(FailureSet(
                perturbation=name, kind=kind, probe_ids=positions, failed=failed,
                probe_set=probe_set_name(probe), **description,
            ))  # fmt: skip
        flips[perturbation] = float(kinds["flip"].mean())
    found["examples"]["probe"] = len(probes)
    found["probe_flip_rate"] = flips
    save_failures(folder / FAILURES, sets)  # perturbations: holds at least one
    found |= {
        "parameters": sum(p.numel() for p in result.model.parameters()),
        "best_epoch": result.best_epoch,
        "train_seconds": round(train_seconds, 2),
        "seconds": round(time.perf_counter() - started, 2),
        "cpu_seconds": round(time.process_time() - cpu_started, 2),
    }
    record = {"schema": SCHEMA, "cell": cell.spec(), **found}
    write_json(folder / "results.json", record)
    return record


def _run_cell(task: tuple[Cell, str, str]) -> dict[str, Any]:
    """``run_cell`` in a worker process."""
    cell, folder, cache = task
    return run_cell(cell, Path(folder), Path(cache))


# ---------------------------------------------------------------------------------------------
# The upstream fix and the data, before any cell


def encoding_path(config: AdaptConfig) -> Path | None:
    """Where the upstream fix's encoding is read (or built); None without a fix."""
    fix = config.upstream_fix
    if not fix.enabled:
        return None
    if fix.encoding is not None:
        return Path(fix.encoding)
    build = fix.build
    assert build is not None  # FixSettings holds exactly one of encoding and build
    gamma = f"-gamma{build.gamma:g}" if build.method == "agglomerative" else ""
    name = f"{build.method}-{build.vocab}-{build.word_list}-{build.family}{gamma}.json"
    return Path(fix.encodings_folder or config.root() / "encodings") / name


def prepare_encoding(config: AdaptConfig, reporter: Reporter) -> str | None:
    """The upstream fix's encoding file, built if asked and missing (or damaged).

    Raises:
        DataError: a named encoding file that is missing or not a RobEn encoding.
    """
    from stalwart.errors import DataError
    from stalwart.text import Encoding

    path = encoding_path(config)
    if path is None:
        return None
    fix = config.upstream_fix
    if path.exists() or fix.build is None:
        try:
            Encoding.load(path)
            reporter.note(f"upstream fix: reusing the encoding {path}")
            return str(path)
        except (DataError, OSError) as error:
            if fix.build is None:
                raise DataError(f"upstream_fix: encoding {path}: {error}") from None
            reporter.note(f"upstream fix: rebuilding {path} ({error})")
    from stalwart.data.sources.english_words import english_vocabulary
    from stalwart.text import Vocabulary, build_encoding, typo_family

    build = fix.build
    vocabulary = Vocabulary.from_words(*english_vocabulary(build.vocab, build.word_list))
    encoding = build_encoding(
        vocabulary, family=typo_family(build.family), method=build.method, gamma=build.gamma
    )
    encoding.save(path)
    stats = encoding.stats
    reporter.note(
        f"upstream fix: {stats['words']:,} words → {stats['clusters']:,} clusters in "
        f"{stats['seconds']:.0f} s ({path})"
    )
    return str(path)


def check_data(config: AdaptConfig) -> None:
    """Load every task and the probe once, so a bad topic or condition fails before training.

    Raises:
        ConfigError: an unknown condition, or conditions that leave a split empty.
        DataMissingError: a data package is missing (the message gives the install command).
    """
    for task in config.tasks:
        try:
            load_task(task.spec(), config.seeds[0])
        except ConfigError as error:
            raise ConfigError(f"tasks: {task.name}: {error}") from None
    try:
        load_task(config.probe_spec(), 0)
    except ConfigError as error:
        raise ConfigError(f"probe: {error}") from None


def _announce(found: dict[str, Any]) -> str:
    """One line for a finished cell: its task, adaptation, seed and accuracies."""
    cell = found["cell"]
    label = cell["adaptation"] + (f"+{FIX}" if cell["fix"] else "")
    measured = ", ".join(
        f"{metric.removesuffix('_accuracy')} {found[metric]:.3f}"
        for metric in METRICS
        if metric in found
    )
    return (
        f"{cell['task']['name']} · {label} · seed {cell['seed']}: {measured} "
        f"({found['seconds']:.0f} s)"
    )


def run_adapt(
    config: AdaptConfig, reporter: Reporter, executor: Executor | None = None
) -> dict[str, Any]:
    """Run (or reuse) every cell; write ``adapt.json`` and ``adapt.md`` at the root."""
    check_data(config)
    encoding = prepare_encoding(config, reporter)
    root = config.root()
    cache = root / "cache"
    tasks, kept = [], []
    for cell in cells(config, encoding):
        folder = root / "cells" / cell.folder_name()
        tasks.append((cell, str(folder), str(cache)))
        kept.append(finished_cell(folder, SCHEMA, cell.spec(), FAILURES))
    records = run_cells(
        tasks, kept, _run_cell, reporter, _announce, workers=config.workers, executor=executor
    )
    summary = summarize(records)
    result = {"summary": summary, "records": records}
    write_json(root / "adapt.json", result)
    atomic_write_text(root / "adapt.md", "\n".join(t.markdown() for t in tables(summary)))
    return result


# ---------------------------------------------------------------------------------------------
# Summary and report


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean ± std over seeds of every metric, per (task, adaptation)."""
    rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        cell = record["cell"]
        label = cell["adaptation"] + (f"+{FIX}" if cell["fix"] else "")
        rows.setdefault((cell["task"]["name"], label), []).append(record)
    out = []
    for (task, label), found in rows.items():
        stats = {
            metric: mean_std(r[metric] for r in found)
            for metric in (*METRICS, "attack_clean_accuracy", "train_seconds", "seconds")
            if all(metric in r for r in found)
        }
        flips = {
            perturbation: mean_std(r["probe_flip_rate"][perturbation] for r in found)
            for perturbation in found[0]["probe_flip_rate"]
        }
        out.append(
            {"task": task, "adaptation": label, "seeds": len(found),
             "examples": found[0]["examples"], "stats": stats, "probe_flip_rate": flips}
        )  # fmt: skip
    return {"rows": out}


def tables(summary: dict[str, Any]) -> list[ResultTable]:
    """Accuracy per task × adaptation, then the flip rates on the shared probes.

    The ``attacked`` column, and beside it the clean accuracy on the same (attacked) texts,
    are there only when some cell measured the attack.
    """
    rows = summary["rows"]
    examples = rows[0]["examples"] if rows else {}
    metrics = [m for m in METRICS if m != "attack_accuracy"]
    attacked = any("attack_accuracy" in row["stats"] for row in rows)
    names = ["ID", "OOD", "typo", "codespell"]
    names += ["attacked", "clean (same texts)"] if attacked else []
    accuracy = ResultTable(
        ["task", "adaptation", *names, "train s", "seeds"],
        title="accuracy (%), mean ± std over seeds: ID on the test split, OOD on the held-out "
        "topics or conditions, typo and codespell on the perturbed test split"
        + (
            ", attacked under the beam-search typo attack on the first test texts, beside their "
            "clean accuracy"
            if attacked
            else ""
        ),
    )
    flips = ResultTable(
        ["task", "adaptation", "typo flips", "codespell flips", "probes"],
        title="predictions changed by the perturbation on the shared probe set (%)",
    )
    for row in rows:
        stats = row["stats"]
        measured = metrics + (["attack_accuracy", "attack_clean_accuracy"] if attacked else [])
        cells_ = [percent_cell(stats[m]) if m in stats else "-" for m in measured]
        seconds = stats.get("train_seconds")
        accuracy.add(
            row["task"], row["adaptation"], *cells_,
            "-" if seconds is None else f"{seconds['mean']:.0f}", str(row["seeds"]),
        )  # fmt: skip
        rates = row["probe_flip_rate"]
        flips.add(
            row["task"], row["adaptation"],
            *(percent_cell(rates[p]) if p in rates else "-" for p in ("typo", "codespell")),
            str(row["examples"].get("probe", examples.get("probe", "-"))),
        )  # fmt: skip
    return [accuracy, flips]


def render(config: AdaptConfig, result: dict[str, Any]) -> list[Any]:
    """The tables, then where they were written and how to compare failures."""
    found = [table.rich() for table in tables(result["summary"])]
    root = config.root()
    return [
        *found,
        f"written: {root / 'adapt.md'}; shared failures: stalwart inherit {root}",
    ]


def describe(config: AdaptConfig) -> str:
    """``name: T tasks × A adaptations (+F behind the fix) × S seeds → ROOT``."""
    fixed = config.fixed_adaptations()
    fix = f" (+{len(fixed)} behind the RobEn fix)" if fixed else ""
    return (
        f"[bold]{config.name}[/]: {len(config.tasks)} tasks × {len(config.adaptations)} "
        f"adaptations{fix} × {len(config.seeds)} seeds → {config.root()}"
    )


KIND = register_kind("adapt", config=AdaptConfig, run=run_adapt, render=render, describe=describe)
