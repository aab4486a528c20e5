"""Reading experiment configs: run configs with their registry entries checked, and any kind.

``parse_config`` validates one training run and checks the data source, model and method it
names against their registries (this is the floor where every registry is loaded).
``parse_experiment`` dispatches on the ``kind`` key to the config class the kind declares in
``stalwart.experiments.kinds`` (default: ``run``).
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


def parse_experiment(raw: dict[str, Any], source: str = "config") -> Any:
    """Validate ``raw`` as the config class of the kind its ``kind`` key names (default: run).

    Every kind is declared in ``stalwart.experiments.kinds`` with its config class.
    """
    from stalwart.experiments.kinds import kinds

    name = raw.get("kind", "run")
    if name == "run":
        return parse_config(raw, source)
    registry = kinds()
    if not isinstance(name, str) or name not in registry:
        choices = registry.names()
        raise ConfigError(
            f"{source}: unknown kind {name!r}{closest(str(name), choices)}; choose from {choices}"
        )
    config_class = registry.get(name)().config
    try:
        config = config_class.model_validate(raw)
    except pydantic.ValidationError as error:
        raise ConfigError(describe(error, source, config_class)) from None
    if hasattr(config, "validate_runs"):
        config.validate_runs()
    return config


def load_experiment(path: str | Path, overrides: list[str] = ()) -> Any:
    """Read, override and validate an experiment config of any kind."""
    return parse_experiment(read_config_file(path, overrides), str(path))
