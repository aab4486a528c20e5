"""One entry point for every kind of experiment config, dispatched on its ``kind`` key.

- ``run`` (the default): one training run (``RunConfig``).
- ``compare``: methods × seeds on one dataset (``CompareConfig``).
- ``sweep``: a hyperparameter search with selection on validation (``SweepConfig``).
- ``overparam``: the model-size study of arXiv 2005.04345 (``OverparamConfig``).
- ``robustness``: a comparison on clean and adversarially robust accuracy
  (``RobustnessConfig``).
- ``rst_linear``: RST's linear-regression result of arXiv 2002.10716 (``RstLinearConfig``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic

from stalwart.config import RunConfig, describe, read_config_file, validate_run_config
from stalwart.data import SOURCES
from stalwart.errors import ConfigError, closest
from stalwart.methods import METHODS
from stalwart.models import MODELS
from stalwart.recipes import StageContext  # noqa: F401  (recipes register as methods)


def parse_config(raw: Any, source: str = "config") -> RunConfig:
    """Validate a mapping as a ``RunConfig`` and check the registry entries it names.

    Raises:
        ConfigError: an unknown key (with the closest valid one), a wrong type or range, or an
            unknown data source, model or method, or a parameter one of them does not take.
    """
    config = validate_run_config(raw, source)
    check_components(config, source)
    return config


def load_config(path: str | Path, overrides: list[str] = ()) -> RunConfig:
    """Read a YAML run config, apply ``key.sub=value`` overrides, validate.

    Raises:
        ConfigError: missing file, invalid YAML, unknown key, wrong type or value.
    """
    return parse_config(read_config_file(path, overrides), str(path))


def check_components(config: RunConfig, source: str) -> None:
    """Check the data source, model and method a run names, and their parameters."""
    registries = {"data": SOURCES, "model": MODELS, "method": METHODS}
    for section, registry in registries.items():
        component = getattr(config, section)
        try:
            registry.check_params(component.name, component.params)
        except ConfigError as error:
            raise ConfigError(f"{source}: {section}: {error}") from None


def _kinds() -> dict[str, Any]:
    from stalwart.experiments.compare import CompareConfig
    from stalwart.experiments.overparam import OverparamConfig
    from stalwart.experiments.robustness import RobustnessConfig
    from stalwart.experiments.rst_linear import RstLinearConfig
    from stalwart.experiments.sweep import SweepConfig

    return {
        "compare": CompareConfig, "sweep": SweepConfig, "overparam": OverparamConfig,
        "robustness": RobustnessConfig, "rst_linear": RstLinearConfig,
    }  # fmt: skip


def parse_experiment(raw: dict[str, Any], source: str = "config") -> Any:
    """Validate ``raw`` as the config class its ``kind`` names (default: a run)."""
    kind = raw.get("kind", "run")
    if kind == "run":
        return parse_config(raw, source)
    kinds = _kinds()
    if kind not in kinds:
        choices = ["run", *kinds]
        raise ConfigError(
            f"{source}: unknown kind {kind!r}{closest(str(kind), choices)}; choose from {choices}"
        )
    try:
        config = kinds[kind].model_validate(raw)
    except pydantic.ValidationError as error:
        raise ConfigError(describe(error, source, kinds[kind])) from None
    if hasattr(config, "validate_runs"):
        config.validate_runs()
    return config


def load_experiment(path: str | Path, overrides: list[str] = ()) -> Any:
    """Read, override and validate an experiment config of any kind."""
    return parse_experiment(read_config_file(path, overrides), str(path))
