"""Deep Feature Reweighting (DFR): retrain only the last layer on group-balanced held-out data.

Kirichenko, Izmailov and Wilson, "Last Layer Re-Training is Sufficient for Robustness to
Spurious Correlations", ICLR 2023 (arXiv 2204.02937), the DFR^Tr_Val variant:

1. Train ERM (the base); freeze it and take penultimate features (``model.features``).
2. Standardise the validation features; fit ℓ1-regularised logistic regression (liblinear;
   saga's multinomial model for more than two classes) on
   group-balanced subsets of the validation set. The inverse strength C is tuned on one half
   of the validation set and scored by worst-group accuracy on the other half.
3. Refit with the chosen C on ``refits`` fresh group-balanced subsets of the whole validation
   set, average the coefficients and intercepts, and write them into the model's head (the
   standardisation folded in), so the result is an ordinary model.

Training groups are not used; validation group labels are, for balancing and tuning. The
validation set then trained the head, so report test metrics for DFR, not validation ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from torch import nn

from stalwart.data.core import GroupedDataset
from stalwart.data.loader import iterate_batches
from stalwart.data.samplers import balanced_subsample, numpy_choice
from stalwart.engine.fit import FitResult
from stalwart.errors import ConfigError
from stalwart.io import CHECKPOINT_FORMAT, save_checkpoint, write_json
from stalwart.methods.catalog import register_method
from stalwart.methods.erm import ERM
from stalwart.metrics.group import group_accuracy, worst_group_accuracy
from stalwart.models.heads import write_linear_head
from stalwart.recipes.stage import StageContext, shared_stage

DEFAULT_C_GRID = (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)


@torch.no_grad()
def penultimate_features(
    model: nn.Module, dataset: GroupedDataset, batch_size: int = 1024
) -> np.ndarray:
    """``model.features`` of every example, as a float64 array."""
    model.eval()
    device = next(model.parameters()).device
    chunks = [
        model.features(b.x.to(device)).double().cpu() for b in iterate_batches(dataset, batch_size)
    ]
    return torch.cat(chunks).numpy()


def balanced_subset(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Positions of a random subset holding every present group as often as the rarest one."""
    return balanced_subsample(torch.from_numpy(groups), numpy_choice(rng)).numpy()


def _fit_head(features: np.ndarray, labels: np.ndarray, c: float, seed: int) -> LogisticRegression:
    # l1_ratio=1 is the pure ℓ1 penalty (scikit-learn ≥ 1.8 spells it this way). liblinear, the
    # reference's solver, fits two classes only; with more, saga fits the multinomial ℓ1 model
    # (on standardised features, as here, it converges in a few hundred passes).
    binary = len(np.unique(labels)) <= 2
    solver = "liblinear" if binary else "saga"
    return LogisticRegression(
        l1_ratio=1.0, C=c, solver=solver, max_iter=100 if binary else 2000, random_state=seed
    ).fit(features, labels)


def _worst_group(
    model: LogisticRegression, x: np.ndarray, y: np.ndarray, g: np.ndarray, n_groups: int
) -> float:
    per_group, _ = group_accuracy(
        torch.from_numpy(model.predict(x)), torch.from_numpy(y), torch.from_numpy(g), n_groups
    )
    return worst_group_accuracy(per_group)


# Validation groups balance and tune the new head; it starts from a finished ERM run if given.
@register_method("dfr", group_labels="validation set", staged=True, reuses="erm")
def dfr(
    context: StageContext,
    *,
    c_grid: tuple[float, ...] = DEFAULT_C_GRID,
    refits: int = 20,
) -> FitResult:
    """DFR^Tr_Val: ERM base, then an ℓ1 logistic head fit on group-balanced validation data."""
    if refits < 1 or not c_grid or min(c_grid) <= 0:
        raise ConfigError(
            f"method 'dfr': refits must be >= 1 and c_grid positive; got {refits}, {c_grid}"
        )
    base, base_dir = shared_stage(context, "dfr-base", ERM(), context.train, reuse="erm")
    model, val = base.model, context.splits.val
    features = penultimate_features(model, val, context.train.eval_batch_size)
    labels, groups = val.y.cpu().numpy(), val.group.cpu().numpy()
    if len(np.unique(labels)) < 2:
        raise ConfigError("method 'dfr' needs at least two classes in the validation set")
    scaler = StandardScaler().fit(features)
    x = scaler.transform(features)
    rng = np.random.default_rng(context.train.seed)

    halves = np.array_split(rng.permutation(len(labels)), 2)
    scores = {}
    for c in c_grid:
        tune = halves[0][balanced_subset(groups[halves[0]], rng)]
        head = _fit_head(x[tune], labels[tune], c, context.train.seed)
        scores[c] = _worst_group(
            head, x[halves[1]], labels[halves[1]], groups[halves[1]], val.n_groups
        )
    best_c = max(c_grid, key=lambda c: (scores[c], -c))  # ties: the stronger penalty

    coefs, intercepts, classes = [], [], None
    for _ in range(refits):
        chosen = balanced_subset(groups, rng)
        head = _fit_head(x[chosen], labels[chosen], best_c, context.train.seed)
        coefs.append(head.coef_)
        intercepts.append(head.intercept_)
        classes = head.classes_
    if model.head.bias is None:
        raise ConfigError("method 'dfr' needs a head with a bias")
    write_linear_head(
        model.head, np.mean(coefs, axis=0), np.mean(intercepts, axis=0), classes,
        mean=scaler.mean_, scale=scaler.scale_,
    )  # fmt: skip

    if context.writes:  # rank 0 alone under torchrun
        # The retrained model is this run's model: save it as the run's selected checkpoint.
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        save_checkpoint(
            context.run_dir / "checkpoints" / "best.pt",
            {"format": CHECKPOINT_FORMAT, "model": state},
        )
        record: dict[str, Any] = {"base_dir": base_dir, "c": best_c, "refits": refits}
        write_json(
            context.run_dir / "dfr.json", {**record, "held_out_worst_group_accuracy": scores}
        )
    return FitResult(model, base.method, base.best_epoch, base.history, context.run_dir)
