"""Simplicity-bias diagnostics of a run directory: which input block its model relies on.

``diagnose_run`` loads a run's selected model and test split (``load_run``) and computes the
randomized AUC and accuracy of each input block (``stalwart.simplicity.randomized_auc``;
Shah et al., arXiv 2006.07710), optionally a universal adversarial perturbation and the share
of its budget on each block, beside the run's own worst-group accuracy. The result is cached
in the run directory as ``simplicity.json``, keyed by the options, so asking again is instant.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from stalwart.errors import CheckpointError
from stalwart.experiments.run import load_run
from stalwart.io import write_json

RESULT = "simplicity.json"
SCHEMA = 3
"""Version of what ``simplicity.json`` holds: a cache of another version is recomputed."""
MAX_COORDINATES = 256
"""Widest flat input whose every coordinate is randomized in turn (one pass each)."""


def diagnose_run(
    run_dir: str | Path,
    blocks: Sequence[str] | None = None,
    *,
    repeats: int = 1,
    seed: int = 0,
    uap_eps: float | None = None,
    uap_per_class: bool = True,
    uap_steps: int = 200,
    split: str = "test",
    agreeing: bool = True,
) -> dict[str, Any]:
    """The diagnostics of one run (see the module docstring), read from cache when present.

    Args:
        run_dir: a finished (or interrupted, with a saved model) run directory.
        blocks: block names of the run's data (default: all it declares).
        repeats: permutations per block, averaged.
        seed: seed of the permutations and of the UAP's minibatches.
        uap_eps: the ℓ2 budget of a universal perturbation (None: no UAP).
        uap_per_class: one perturbation per class (see ``universal_perturbation``).
        uap_steps: ascent steps of the UAP.
        split: ``test`` or ``val``.
        agreeing: randomize blocks on the examples where every block predicts the label
            (``InputBlocks.agreeing_groups``, e.g. dominoes whose digit agrees with the
            garment), as the paper's datasets are; accuracy and worst-group accuracy are still
            those of the whole split.

    Returns:
        ``{"options", "blocks", "simple", "report", "uap", "coordinate_accuracy", "accuracy",
        "worst_group_accuracy"}``; ``coordinate_accuracy`` (accuracy with each latent coordinate
        randomized alone) for flat inputs of at most ``MAX_COORDINATES`` coordinates.

    Raises:
        CheckpointError: no saved model in ``run_dir``.
        DataError: the run's data declares no blocks, or a named block does not exist.
    """
    from stalwart import simplicity
    from stalwart.metrics.group import group_metrics
    from stalwart.simplicity.randomized import logits_of

    run_dir = Path(run_dir)
    options = {
        "blocks": list(blocks) if blocks is not None else None, "repeats": repeats, "seed": seed,
        "uap_eps": uap_eps, "uap_per_class": uap_per_class, "uap_steps": uap_steps,
        "split": split, "agreeing": agreeing, "schema": SCHEMA,
    }  # fmt: skip
    cached = run_dir / RESULT
    if cached.is_file():
        try:
            found = json.loads(cached.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            found = None  # a damaged cache is recomputed, never trusted
        if isinstance(found, dict) and found.get("options") == options:
            return found
    _, splits, model = load_run(run_dir)
    whole = {"test": splits.test, "val": splits.val}[split]
    dataset = simplicity.agreeing_subset(whole) if agreeing else whole
    report = simplicity.randomized_auc(model, dataset, blocks, repeats=repeats, seed=seed)
    chosen = simplicity.resolve_blocks(dataset, blocks)
    uap = None
    if uap_eps is not None:
        found_uap = simplicity.universal_perturbation(
            model, dataset, uap_eps, steps=uap_steps, per_class=uap_per_class, blocks=blocks,
            seed=seed,
        )  # fmt: skip
        uap = {
            "eps": found_uap.eps, "per_class": uap_per_class,
            "perturbed_accuracy": found_uap.perturbed_accuracy, "share": found_uap.share,
        }  # fmt: skip
    # The paper's per-coordinate randomized accuracy, for flat inputs of modest width.
    coordinates = (
        simplicity.coordinate_accuracy(model, dataset, seed=seed).tolist()
        if len(dataset.input_shape) == 1 and dataset.input_shape[0] <= MAX_COORDINATES
        else None
    )
    predictions = logits_of(model, whole.x).argmax(1)
    metrics = group_metrics(predictions, whole.y, whole.group, whole.group_names)
    result = {
        "options": options,
        "blocks": list(chosen.names),
        "simple": chosen.simple,
        "report": report.to_dict(),
        "uap": uap,
        "coordinate_accuracy": coordinates,
        "accuracy": metrics.accuracy,
        "worst_group_accuracy": metrics.worst_group_accuracy,
    }
    try:
        write_json(cached, result)
    except OSError as error:
        raise CheckpointError(
            f"cannot write {cached} ({error}); is the run folder writable?"
        ) from None
    return result
