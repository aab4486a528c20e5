"""Runs: a config in, a run directory out; recipes reproduce each paper's experiments."""

from stalwart.experiments.recipes import recipe_path, recipes
from stalwart.experiments.run import RunSummary, run

__all__ = ["RunSummary", "recipe_path", "recipes", "run"]
