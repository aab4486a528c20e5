"""Optimisers, parameter groups, learning-rate schedules and the optimiser step.

The learning rate of a step is ``lr × group multiplier × per-epoch schedule × warmup``:

- ``lr_groups`` gives parameters whose names start with a prefix their own multiplier (a new
  head often wants a larger learning rate than a pretrained body); each becomes one parameter
  group, holding its multiplier as ``lr_scale``.
- the per-epoch schedule (constant, step, cosine) scales every group alike;
- warmup ramps the first ``warmup_steps`` optimiser steps linearly, step ``s`` (from 1) at
  ``s / warmup_steps`` of the scheduled rate. It is applied around each step and taken off
  again, so the per-epoch schedule, whose step and cosine forms read the current rate, never
  sees it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from stalwart.config import TrainConfig
from stalwart.errors import ConfigError, closest


def build_optimizer(
    parameters: nn.Module | Iterable[nn.Parameter], cfg: TrainConfig
) -> torch.optim.Optimizer:
    """SGD with momentum, Adam (L2 penalty) or AdamW (decoupled decay).

    Args:
        parameters: the model (its trainable parameters, grouped by ``cfg.lr_groups``), or
            the parameters themselves (then ``cfg.lr_groups`` must be empty).
        cfg: the training settings.

    Raises:
        ConfigError: a prefix of ``cfg.lr_groups`` matches no parameter (the message lists the
            model's top-level prefixes), or ``lr_groups`` without a model to read names from.
        ValueError: nothing is trainable.
    """
    if isinstance(parameters, nn.Module):
        groups = parameter_groups(parameters, cfg)
    elif cfg.lr_groups:
        raise ConfigError("lr_groups select parameters by name: pass the model, not parameters")
    else:
        groups = [{"params": [p for p in parameters if p.requires_grad]}]
        groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("the model has no trainable parameters")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    optimizer = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return optimizer(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=_fusable(groups))


def _fusable(groups: list[dict]) -> bool | None:
    """True where PyTorch's fused Adam kernel applies: dense float tensors on CPU or CUDA.

    The fused kernel computes Adam's update (the same formula) in one pass per tensor instead of
    a dozen elementwise operations: three to four times faster on a large embedding table on
    CPU, where the optimiser step dominated training (a 145k-row bag of tokens). None (PyTorch's
    default choice) elsewhere.
    """
    parameters = [p for group in groups for p in group["params"]]
    fusable = all(
        p.is_floating_point() and not p.is_sparse and p.device.type in ("cpu", "cuda")
        for p in parameters
    )
    return True if fusable else None


def parameter_groups(model: nn.Module, cfg: TrainConfig) -> list[dict]:
    """The model's trainable parameters, one group per ``lr_groups`` prefix in use.

    A parameter joins the group of the longest prefix that matches its name at a dot
    boundary (``head`` matches ``head.weight``, not ``header.weight``); parameters no prefix
    matches form the first group, at ``lr``. Without ``lr_groups`` there is one plain group,
    exactly as before the setting existed. Groups of frozen parameters only are left out, so
    the same ``lr_groups`` serve a linear probe and full fine-tuning.

    Raises:
        ConfigError: a prefix matches no parameter name (frozen ones included).
    """
    named = list(model.named_parameters())
    if not cfg.lr_groups:
        trainable = [p for _, p in named if p.requires_grad]
        return [{"params": trainable}] if trainable else []
    names = [name for name, _ in named]
    for prefix in cfg.lr_groups:
        if not any(_matches(name, prefix) for name in names):
            top = sorted({name.partition(".")[0] for name in names})
            raise ConfigError(
                f"lr_groups: prefix {prefix!r} matches no parameter of "
                f"{type(model).__name__}{closest(prefix, top)}; its top-level prefixes are "
                f"{top[:50]}"
            )
    by_prefix: dict[str, list[nn.Parameter]] = {"": []}
    for name, parameter in named:
        if not parameter.requires_grad:
            continue
        matching = [prefix for prefix in cfg.lr_groups if _matches(name, prefix)]
        by_prefix.setdefault(max(matching, key=len, default=""), []).append(parameter)
    return [
        {
            "params": params,
            "lr": cfg.lr * cfg.lr_groups.get(prefix, 1.0),
            "lr_scale": cfg.lr_groups.get(prefix, 1.0),
            "prefix": prefix,
        }
        for prefix, params in by_prefix.items()
        if params
    ]


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def base_lr(optimizer: torch.optim.Optimizer) -> float:
    """The scheduled learning rate before group multipliers (what ``metrics.jsonl`` records)."""
    group = optimizer.param_groups[0]
    return group["lr"] / group.get("lr_scale", 1.0)


def build_schedule(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    """A schedule stepped once per epoch: constant, step decay, or cosine to zero."""
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def warmup_factor(step: int, warmup_steps: int) -> float:
    """The warmup's factor at optimiser step ``step`` (from 1): ``step / warmup_steps``, then 1."""
    return 1.0 if step >= warmup_steps else step / warmup_steps


def optimizer_step(optimizer: torch.optim.Optimizer, cfg: TrainConfig, step: int) -> None:
    """Clip the gradient, then take optimiser step number ``step`` (from 1) with warmup.

    The gradient of all trained parameters together is scaled to global L2 norm at most
    ``cfg.clip_grad_norm``. Warmup scales each group's rate for this step only.
    """
    if cfg.clip_grad_norm is not None:
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        nn.utils.clip_grad_norm_(parameters, cfg.clip_grad_norm)
    factor = warmup_factor(step, cfg.warmup_steps)
    if factor == 1.0:
        optimizer.step()
        return
    scheduled = [group["lr"] for group in optimizer.param_groups]
    for group, lr in zip(optimizer.param_groups, scheduled, strict=True):
        group["lr"] = lr * factor
    try:
        optimizer.step()
    finally:
        for group, lr in zip(optimizer.param_groups, scheduled, strict=True):
            group["lr"] = lr
