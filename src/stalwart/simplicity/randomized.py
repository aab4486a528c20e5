"""Which input block does a trained model rely on? Randomized AUC and accuracy (arXiv 2006.07710).

Shah et al. ("The Pitfalls of Simplicity Bias in Neural Networks", arXiv 2006.07710, Sec. 4)
measure a model's reliance on a set S of input coordinates by *S-randomizing* the test set:
the coordinates in S are permuted across test rows with one shared permutation (after undoing
the data's rotation, which is redone after), so they keep their distribution but lose their
link to the label. Then:

- S-randomized AUC ≈ 0.5 means the model's output carries no information once S is
  randomized: it relies on S *exclusively*;
- Sᶜ-randomized AUC ≈ the standard AUC means it ignores everything outside S.

*Extreme simplicity bias* is both at once with S the simplest feature (the linear coordinate
of LMS-5, the MNIST half of dominoes). This module computes, for any model and any dataset
that declares its blocks (``GroupedDataset.blocks``), the standard scores and the scores with
each block randomized, and with each latent coordinate randomized alone.

AUC is that of the logit difference for two classes (the reference's ``get_binary_auc``), the
one-vs-rest macro average of the softmax for more; accuracy is top-1.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from stalwart.data.blocks import InputBlocks, randomize
from stalwart.data.core import GroupedDataset
from stalwart.engine.evaluate import logits_in_batches
from stalwart.errors import ConfigError, DataError

BlocksArg = None | Sequence[str] | Mapping[str, Iterable[int] | slice] | InputBlocks
"""Which blocks to randomize: the dataset's own (None), some of them by name, a mapping of
names to latent coordinate indices (the dataset's rotation still applies), or InputBlocks."""


@dataclass(frozen=True)
class Scores:
    """AUC and accuracy of a model on one version of a test set."""

    auc: float
    accuracy: float


@dataclass(frozen=True)
class RandomizedReport:
    """Scores on the test set as is and with each block randomized (means over ``repeats``).

    Attributes:
        standard: the scores on the unchanged test set.
        randomized: block name → scores with that block randomized (the paper's S-randomized).
        complement: block name → scores with everything *but* that block randomized (Sᶜ).
        repeats: permutations averaged per block.
        examples: test examples used.
    """

    standard: Scores
    randomized: dict[str, Scores]
    complement: dict[str, Scores]
    repeats: int
    examples: int

    def to_dict(self) -> dict[str, Any]:
        """Plain numbers, for JSON: ``{"standard": {...}, "randomized": {block: {...}}, ...}``."""
        return {
            "standard": vars(self.standard),
            "randomized": {name: vars(s) for name, s in self.randomized.items()},
            "complement": {name: vars(s) for name, s in self.complement.items()},
            "repeats": self.repeats,
            "examples": self.examples,
        }


def resolve_blocks(dataset: GroupedDataset, blocks: BlocksArg = None) -> InputBlocks:
    """The ``InputBlocks`` to randomize on ``dataset`` (see ``BlocksArg``).

    Raises:
        DataError: the dataset declares no blocks and none were given, a named block does not
            exist (the dataset's are listed), or indices fall outside the input.
    """
    declared = dataset.blocks
    if isinstance(blocks, InputBlocks):
        blocks.check(dataset.input_shape, dataset.name)
        return blocks
    if isinstance(blocks, Mapping):
        rotation = declared.rotation if declared is not None else None
        return InputBlocks.from_indices(dataset.input_shape, blocks, rotation)
    if declared is None:
        raise DataError(
            f"{dataset.name} declares no input blocks; give them, e.g. blocks={{'simple': [0], "
            f"'complex': range(1, {int(np.prod(dataset.input_shape))})}} (latent coordinate "
            "indices)"
        )
    if blocks is None:
        return declared
    if isinstance(blocks, str):
        blocks = [part for part in blocks.split(",") if part]
    masks = {name: declared.mask(name) for name in blocks}
    simple = declared.simple if declared.simple in masks else None
    return InputBlocks(masks, declared.rotation, simple, declared.agreeing_groups)


def agreeing_subset(dataset: GroupedDataset) -> GroupedDataset:
    """The examples of the groups in which every block predicts the label (``InputBlocks``).

    The whole dataset when its blocks name no such groups.

    Raises:
        DataError: none of the dataset's examples is in those groups.
    """
    blocks = dataset.blocks
    if blocks is None or blocks.agreeing_groups is None:
        return dataset
    keep = torch.isin(dataset.group, torch.tensor(blocks.agreeing_groups))
    if not keep.any():
        names = [dataset.group_names[g] for g in blocks.agreeing_groups]
        raise DataError(f"{dataset.name} has no example in the groups {names}")
    return dataset.subset(torch.nonzero(keep).flatten(), name=f"{dataset.name} (blocks agree)")


def logits_of(model: nn.Module, x: Tensor, batch_size: int = 4096) -> Tensor:
    """The model's outputs on ``x`` (``engine.evaluate.logits_in_batches``)."""
    return logits_in_batches(model, x, batch_size)


def scores(logits: Tensor, labels: Tensor) -> Scores:
    """AUC (logit difference for 2 classes, one-vs-rest softmax macro AUC for more) and accuracy.

    AUC is NaN when the labels hold a single class.
    """
    from sklearn.metrics import roc_auc_score

    y = labels.cpu().numpy()
    accuracy = float((logits.argmax(1).cpu().numpy() == y).mean())
    present = np.unique(y)
    if len(present) < 2:
        return Scores(float("nan"), accuracy)
    if logits.shape[1] == 2:
        auc = roc_auc_score(y, (logits[:, 1] - logits[:, 0]).numpy())
    else:
        probabilities = torch.softmax(logits, 1).numpy()
        if len(present) < logits.shape[1]:
            probabilities = probabilities[:, present] / probabilities[:, present].sum(
                1, keepdims=True
            )
        auc = roc_auc_score(y, probabilities, multi_class="ovr", labels=present)
    return Scores(float(auc), accuracy)


def _permutations(n: int, repeats: int, seed: int) -> list[Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randperm(n, generator=generator) for _ in range(repeats)]


def _mean(found: list[Scores]) -> Scores:
    return Scores(
        float(np.mean([s.auc for s in found])), float(np.mean([s.accuracy for s in found]))
    )


def randomized_auc(
    model: nn.Module,
    dataset: GroupedDataset,
    blocks: BlocksArg = None,
    *,
    repeats: int = 1,
    seed: int = 0,
    batch_size: int = 4096,
) -> RandomizedReport:
    """Standard, S-randomized and Sᶜ-randomized AUC and accuracy for each block S.

    Args:
        model: a trained classifier (put in eval mode while scoring, then restored).
        dataset: the test set; its ``blocks`` (and rotation) unless ``blocks`` says otherwise.
        blocks: see ``BlocksArg``.
        repeats: permutations per block, averaged (the paper uses one).
        seed: seed of the permutations; the same permutations serve every block.
        batch_size: examples per forward pass.

    Raises:
        DataError: see ``resolve_blocks``.
        ConfigError: ``repeats`` below 1.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"repeats must be a whole number ≥ 1; got {repeats!r}")
    chosen = resolve_blocks(dataset, blocks)
    x, y = dataset.x, dataset.y
    permutations = _permutations(len(x), repeats, seed)

    def randomized_scores(mask: Tensor) -> Scores:
        return _mean([
            scores(logits_of(model, randomize(x, chosen, mask, p), batch_size), y)
            for p in permutations
        ])  # fmt: skip

    return RandomizedReport(
        standard=scores(logits_of(model, x, batch_size), y),
        randomized={name: randomized_scores(chosen.mask(name)) for name in chosen.names},
        complement={name: randomized_scores(chosen.complement(name)) for name in chosen.names},
        repeats=repeats,
        examples=len(x),
    )


def coordinate_accuracy(
    model: nn.Module,
    dataset: GroupedDataset,
    *,
    seed: int = 0,
    batch_size: int = 4096,
) -> np.ndarray:
    """Accuracy with each latent coordinate randomized alone, one entry per coordinate.

    The paper's per-coordinate "randomized accuracy" (arXiv 2006.07710): a coordinate the model
    ignores leaves the accuracy unchanged; the one it relies on exclusively drops it to chance.
    Flat inputs only (an image has a coordinate per pixel: randomize regions with blocks).

    Raises:
        DataError: inputs that are not flat vectors.
    """
    if len(dataset.input_shape) != 1:
        raise DataError(
            f"per-coordinate randomized accuracy needs flat inputs; {dataset.name} has inputs "
            f"of shape {dataset.input_shape}: randomize regions with blocks instead"
        )
    (d,) = dataset.input_shape
    rotation = dataset.blocks.rotation if dataset.blocks is not None else None
    everything = InputBlocks({"all": torch.ones(d, dtype=torch.bool)}, rotation)
    (permutation,) = _permutations(len(dataset), 1, seed)
    found = np.empty(d)
    for coordinate in range(d):
        mask = torch.zeros(d, dtype=torch.bool)
        mask[coordinate] = True
        shuffled = randomize(dataset.x, everything, mask, permutation)
        found[coordinate] = scores(logits_of(model, shuffled, batch_size), dataset.y).accuracy
    return found
