"""Predictions and per-group metrics of a model on a grouped dataset.

Outputs are checked to be finite: a NaN logit makes ``argmax`` return an arbitrary class and
the loss NaN, which would turn into a plausible-looking accuracy. The check costs one pass over
the logits, nothing over the inputs unless a logit is bad.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stalwart.data.core import GroupedDataset
from stalwart.data.loader import iterate_batches
from stalwart.engine.device import autocast_for, model_device, resolve_device
from stalwart.engine.distributed import World, gather_shards, shard
from stalwart.errors import DataError
from stalwart.metrics.group import GroupMetrics, group_metrics

_SHARDED: ContextVar[World | None] = ContextVar("stalwart_sharded_evaluation", default=None)


@contextmanager
def sharded_evaluation(place: World) -> Iterator[None]:
    """Inside, ``predict_logits`` shares its work among the ranks of ``place``.

    Each rank computes the logits of its shard of the dataset and every rank gets all of them,
    in order (``distributed.gather_shards``). Every rank must evaluate the same dataset inside
    (a collective would wait forever for a rank that does not): ``fit``'s per-epoch validation,
    which every rank runs.
    """
    token = _SHARDED.set(place if place.parallel else None)
    try:
        yield
    finally:
        _SHARDED.reset(token)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    dataset: GroupedDataset,
    *,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
    precision: str = "auto",
) -> Tensor:
    """Logits of ``model`` on every example of ``dataset``, in order, on the CPU, in fp32.

    Raises:
        DataError: a logit is NaN or infinite; the message names the dataset, the first such
            example, and whether its input or the model is to blame.
    """
    device = resolve_device("auto") if device is None else torch.device(device)
    place = _SHARDED.get()
    own = dataset if place is None else dataset.subset(shard(torch.arange(len(dataset)), place))
    autocast = autocast_for(device, precision)
    was_training = model.training
    model.eval()
    try:
        chunks = []
        for batch in iterate_batches(own, batch_size):
            with autocast():
                chunks.append(model(batch.x.to(device, non_blocking=True)).float().cpu())
    finally:
        model.train(was_training)
    logits = torch.cat(chunks) if chunks else torch.empty(0, dataset.n_classes)
    if place is not None:
        logits = gather_shards(logits, len(dataset), place)
    check_finite_outputs(logits, dataset, precision)
    return logits


@torch.no_grad()
def logits_in_batches(model: nn.Module, x: Tensor, batch_size: int = 1024) -> Tensor:
    """Outputs of ``model`` on raw inputs ``x`` (no dataset), as float32 on the CPU.

    In eval mode (restored after), without gradients, in batches, on the model's own device:
    for diagnostics that transform inputs first (randomized blocks, shifted sets) and load a
    model where it was.
    """
    device = model_device(model)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            parts = [model(x[start : start + batch_size].to(device)).float().cpu()
                     for start in range(0, len(x), batch_size)]  # fmt: skip
    finally:
        model.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0)


def check_finite_outputs(logits: Tensor, dataset: GroupedDataset, precision: str = "auto") -> None:
    """Raise ``DataError`` if any of ``logits`` (one row per example of ``dataset``) is not finite.

    ``GroupedDataset`` checks its inputs when built, so a NaN input here was written into the
    tensors afterwards; finite inputs with NaN outputs mean the model itself has gone bad.
    """
    finite = torch.isfinite(logits).reshape(len(logits), -1).all(dim=1)
    if bool(finite.all()):
        return
    bad = torch.nonzero(~finite).flatten()
    first = int(bad[0])
    where = f"first at position {first}, index {int(dataset.index[first])}"
    inputs = dataset.x
    if inputs.is_floating_point():
        bad_inputs = ~torch.isfinite(inputs.reshape(len(inputs), -1)).all(dim=1)
        if bool(bad_inputs.any()):
            first_input = int(torch.nonzero(bad_inputs)[0])
            raise DataError(
                f"{dataset.name}: the inputs of {int(bad_inputs.sum())} examples contain NaN or "
                f"infinite values (first at position {first_input}, index "
                f"{int(dataset.index[first_input])}), so the model's outputs are not finite. "
                "They were written into the dataset after it was built (building checks them); "
                "clean them and build the dataset again"
            )
    raise DataError(
        f"{dataset.name}: the model's outputs are NaN or infinite on {len(bad)} of "
        f"{len(logits)} examples ({where}) although the inputs are finite: the model's "
        "weights have diverged (lower the learning rate) or overflowed at precision "
        f"{precision!r}; check them with torch.isfinite"
    )


def evaluate(
    model: nn.Module,
    dataset: GroupedDataset,
    *,
    weights_from: GroupedDataset | None = None,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
    precision: str = "auto",
) -> GroupMetrics:
    """Average, per-group and worst-group accuracy (and mean cross-entropy) of ``model``.

    Args:
        model: a classifier returning logits.
        dataset: the examples to evaluate on.
        weights_from: a dataset (usually the training set) whose group proportions weight the
            ``weighted_accuracy``; without it that field is None.
        batch_size: examples per forward pass.
        device: where to compute; default: where the model's parameters are.
        precision: ``auto`` (bf16 on CUDA), ``fp32`` or ``bf16``.
    """
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    logits = predict_logits(
        model, dataset, batch_size=batch_size, device=device, precision=precision
    )
    loss = F.cross_entropy(logits, dataset.y.cpu()).item() if len(dataset) else float("nan")
    return group_metrics(
        logits.argmax(dim=1),
        dataset.y.cpu(),
        dataset.group.cpu(),
        dataset.group_names,
        reference_counts=None if weights_from is None else weights_from.group_counts(),
        loss=loss,
    )
