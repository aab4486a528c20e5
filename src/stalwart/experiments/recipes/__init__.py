"""Recipes shipped with the package: YAML run configs, runnable by name."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from stalwart.errors import ConfigError, closest


def recipes() -> list[str]:
    """Names of the shipped recipes."""
    return sorted(
        p.name.removesuffix(".yaml") for p in files(__name__).iterdir() if p.name.endswith(".yaml")
    )


def recipe_path(name: str) -> Path:
    """The YAML file of recipe ``name``."""
    if name not in recipes():
        raise ConfigError(
            f"unknown recipe {name!r}{closest(name, recipes())}; choose from {recipes()}"
        )
    return Path(str(files(__name__) / f"{name}.yaml"))
