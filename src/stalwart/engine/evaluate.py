"""Predictions and per-group metrics of a model on a grouped dataset."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stalwart.data.core import GroupedDataset
from stalwart.data.loader import iterate_batches
from stalwart.engine.device import autocast_for, resolve_device
from stalwart.metrics.group import GroupMetrics, group_metrics


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    dataset: GroupedDataset,
    *,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
    precision: str = "auto",
) -> Tensor:
    """Logits of ``model`` on every example of ``dataset``, in order, on the CPU, in fp32."""
    device = resolve_device("auto") if device is None else torch.device(device)
    autocast = autocast_for(device, precision)
    was_training = model.training
    model.eval()
    try:
        chunks = []
        for batch in iterate_batches(dataset, batch_size):
            with autocast():
                chunks.append(model(batch.x.to(device, non_blocking=True)).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0, dataset.n_classes)


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
