"""Robust self-training (RST): adversarial robustness without giving up standard accuracy.

Raghunathan, Xie, Yang, Duchi and Liang, "Understanding and Mitigating the Tradeoff Between
Robustness and Accuracy", ICML 2020 (arXiv 2002.10716); the semi-supervised recipe of
Carmon, Raghunathan, Schmidt, Liang and Duchi, NeurIPS 2019 (arXiv 1905.13736).

1. Train a standard (ERM) model on the labelled set.
2. Pseudo-label the unlabelled pool (``Splits.unlabelled``) with it.
3. Train a fresh model on labelled plus pseudo-labelled data with
   ``(1 − β)·L_nat + β·L_rob``, where each term averages labelled and pseudo-labelled examples
   with weights ``1 − w`` and ``w``:
   ``L = [(1 − w)·Σ_lab ℓ + w·Σ_unlab ℓ] / [(1 − w)·n_lab + w·n_unlab]`` (per batch),
   with ``w_n = 0.9`` for the natural term and ``w_r = 0.5`` for the robust one, as in the
   reference code (p-lambda/robust_tradeoff). ``L_rob`` is the cross-entropy at the PGD point
   (RST+PGD, ``robust_loss: pgd``) or TRADES' ``KL(f(x) ‖ f(x'))`` (RST+TRADES).

Half of each batch is drawn from the pseudo-labelled pool in expectation
(``unlabelled_fraction``), as the reference's ``unsup_fraction = 0.5``. The standard model of
stage 1 depends only on the data, the model and the training settings, so RST+PGD and
RST+TRADES runs on the same labelled set share it.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stalwart.data.core import Batch, GroupedDataset, Splits
from stalwart.data.samplers import weighted
from stalwart.engine.evaluate import predict_logits
from stalwart.engine.fit import FitResult
from stalwart.engine.method import Method
from stalwart.errors import ConfigError
from stalwart.io import write_json
from stalwart.methods.adversarial import pgd_at, trades
from stalwart.methods.catalog import register_method
from stalwart.methods.erm import ERM
from stalwart.recipes.stage import StageContext, final_stage, shared_stage


def weighted_mean(values: Tensor, unlabelled: Tensor, weight: float) -> Tensor:
    """``[(1 − w)·Σ_lab v + w·Σ_unlab v] / [(1 − w)·n_lab + w·n_unlab]``."""
    weights = torch.where(unlabelled, weight, 1.0 - weight).to(values.dtype)
    total = weights.sum()
    # All weight on a part absent from this batch: fall back to the plain mean.
    return (weights * values).sum() / total if total > 0 else values.mean()


class RobustSelfTraining(Method):
    """The RST loss on a batch mixing labelled and pseudo-labelled examples.

    Examples with ``index >= n_labelled`` are the pseudo-labelled ones (see
    :func:`with_pseudo_labels`).
    """

    def __init__(self, robust: Method, robust_loss: str, beta: float, natural_weight: float,
                 robust_weight: float, n_labelled: int) -> None:  # fmt: skip
        super().__init__()
        self.n_labelled = n_labelled
        self.robust, self.robust_loss = robust, robust_loss
        self.beta, self.natural_weight, self.robust_weight = beta, natural_weight, robust_weight

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """``(1 − β)·L_nat + β·L_rob`` with the labelled/unlabelled weights."""
        unlabelled = batch.index >= self.n_labelled
        if self.robust_loss == "pgd":
            adversarial = self.robust.adversarial(model, batch.x, batch.y)
        else:
            adversarial = self.robust.adversarial(model, batch.x)
        logits = model(batch.x)
        adversarial_logits = model(adversarial)
        natural = F.cross_entropy(logits, batch.y, reduction="none")
        if self.robust_loss == "pgd":
            robust = F.cross_entropy(adversarial_logits, batch.y, reduction="none")
        else:  # KL(p(x) ‖ p(x')) per example
            robust = F.kl_div(
                F.log_softmax(adversarial_logits, dim=1), F.softmax(logits, dim=1),
                reduction="none",
            ).sum(dim=1)  # fmt: skip
        return (1 - self.beta) * weighted_mean(natural, unlabelled, self.natural_weight) + (
            self.beta * weighted_mean(robust, unlabelled, self.robust_weight)
        )


def pseudo_label(model: nn.Module, inputs: Tensor, n_classes: int, batch_size: int) -> Tensor:
    """The model's predicted class for each unlabelled input."""
    zeros = torch.zeros(len(inputs), dtype=torch.long)
    pool = GroupedDataset(
        inputs, zeros, zeros, n_classes=n_classes, group_names=["unlabelled"], name="unlabelled"
    )
    return predict_logits(model, pool, batch_size=batch_size).argmax(dim=1)


def with_pseudo_labels(splits: Splits, labels: Tensor) -> Splits:
    """Splits whose training set is the labelled set followed by the pseudo-labelled pool.

    Example ``index`` tells the two apart (the pool comes after the ``len(train)`` labelled
    examples). Pools come with class-grouped data (groups are the classes), so a
    pseudo-labelled example's group is its pseudo-label.
    """
    train, pool = splits.train, splits.unlabelled
    combined = GroupedDataset(
        torch.cat([train.x, pool.to(train.x.dtype)]),
        torch.cat([train.y, labels.to(train.y.device)]),
        torch.cat([train.group, labels.to(train.group.device)]),
        n_classes=train.n_classes, group_names=train.group_names,
        class_names=train.class_names, name=f"{train.name}+pseudo-labelled",
        index=torch.arange(len(train) + len(pool)),
    )  # fmt: skip
    return Splits(combined, splits.val, splits.test, splits.extra)


# Pseudo-labels and labels only; the validation groups are the classes.
@register_method("rst", group_labels="no", staged=True)
def rst(
    context: StageContext,
    *,
    robust_loss: Literal["pgd", "trades"] = "trades",
    beta: float | None = None,
    unlabelled_natural_weight: float = 0.9,
    unlabelled_robust_weight: float = 0.5,
    unlabelled_fraction: float = 0.5,
    eps: float = 0.1,
    steps: int = 10,
    step_size: float | None = None,
    lower: float = 0.0,
    upper: float = 1.0,
    standard_epochs: int | None = None,
) -> FitResult:
    """Robust self-training: standard model → pseudo-labels → robust training on both.

    Args:
        context: data (with ``Splits.unlabelled``), model factory, training settings.
        robust_loss: ``pgd`` (RST+PGD) or ``trades`` (RST+TRADES).
        beta: weight of the robust term; default 0.5 for PGD (the reference) and 6/7 for
            TRADES (TRADES' β = 6 once the loss is rescaled to sum to one).
        unlabelled_natural_weight: ``w_n``, the pseudo-labelled share of the natural term.
        unlabelled_robust_weight: ``w_r``, the pseudo-labelled share of the robust term.
        unlabelled_fraction: expected share of pseudo-labelled examples in a batch.
        eps: L∞ budget in the data's units.
        steps: attack steps during training.
        step_size: attack step; default ``2.5·ε/steps``.
        lower: smallest valid input value.
        upper: largest valid input value.
        standard_epochs: epochs of the standard model (default: the run's).
    """
    pool = context.splits.unlabelled
    if pool is None or len(pool) == 0:
        raise ConfigError(
            "method 'rst' needs an unlabelled pool: set data.unlabelled (for example "
            "unlabelled: 20000 with labelled: 2000 on mnist or fashion_mnist)"
        )
    beta = (0.5 if robust_loss == "pgd" else 6 / 7) if beta is None else beta
    for name, value in [("beta", beta), ("unlabelled_natural_weight", unlabelled_natural_weight),
                        ("unlabelled_robust_weight", unlabelled_robust_weight)]:  # fmt: skip
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"method 'rst': {name} must lie in [0, 1]; got {value}")
    if not 0.0 < unlabelled_fraction < 1.0:
        raise ConfigError(
            f"method 'rst': unlabelled_fraction must lie in (0, 1); got {unlabelled_fraction}"
        )
    train = context.splits.train
    if train.n_groups != train.n_classes or not bool((train.group == train.y).all()):
        raise ConfigError(
            f"method 'rst': {train.name} has groups other than its classes; a pseudo-labelled "
            "example has no group, so RST runs on data grouped by class (mnist, fashion_mnist)"
        )
    if robust_loss == "pgd":
        robust = pgd_at(train, eps=eps, steps=steps, step_size=step_size, lower=lower, upper=upper)
    else:
        robust = trades(train, eps=eps, steps=steps, step_size=step_size, lower=lower, upper=upper)

    standard_cfg = context.train.model_copy(
        update={"epochs": standard_epochs or context.train.epochs}
    )
    standard, standard_dir = shared_stage(context, "rst-standard", ERM(), standard_cfg)
    labels = pseudo_label(standard.model, pool, train.n_classes, context.train.eval_batch_size)
    if context.writes:  # rank 0 alone under torchrun
        counts = torch.bincount(labels, minlength=train.n_classes).tolist()
        write_json(
            context.run_dir / "pseudo_labels.json",
            {"standard_model_dir": standard_dir, "pool": len(pool), "per_class": counts,
             # The standard model's val accuracy estimates the pseudo-labels' accuracy.
             "standard_val_accuracy": standard.best_val.accuracy},
        )  # fmt: skip
    combined = with_pseudo_labels(context.splits, labels)
    n_labelled, n_pool = len(train), len(pool)
    weights = torch.cat([
        torch.full((n_labelled,), (1 - unlabelled_fraction) / n_labelled, dtype=torch.float64),
        torch.full((n_pool,), unlabelled_fraction / n_pool, dtype=torch.float64),
    ])  # fmt: skip
    method = RobustSelfTraining(
        robust, robust_loss, beta, unlabelled_natural_weight, unlabelled_robust_weight, n_labelled
    )
    return final_stage(context, method, splits=combined, sampler=weighted(weights))
