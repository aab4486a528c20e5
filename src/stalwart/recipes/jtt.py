"""Just Train Twice (JTT): upweight the examples an ERM model gets wrong, then retrain.

Liu, Haghgoo, Chen, Raghunathan, Koh, Sagawa, Liang and Finn, "Just Train Twice: Improving
Group Robustness without Training Group Information", ICML 2021 (arXiv 2107.09044).

1. Identification: train ERM for T epochs (``identification_epochs``) and take the error set
   E = {i : f(x_i) ≠ y_i} on the training data.
2. Train a fresh model with ERM on the training data with E upsampled by λ (``upweight``).

The identification stage uses the run's training settings with ``epochs = T``, a constant
learning rate and the model of the last epoch (no selection), as the reference does.

Multiplicity: here an example of E appears **λ times** per epoch in total (every example once,
plus λ − 1 extra copies of each error), so λ = 1 is plain ERM. This follows BalancingGroups
and SpuCo; the authors' code (anniesch/jtt) appends λ extra copies, so an error appears
λ + 1 times there: their λ corresponds to our λ + 1. Group labels are not used for training;
validation groups select the model, as in the paper.

The identification stage depends only on the data, the model and T, not on λ: runs that
differ in λ alone share it (see ``StageContext.stage_dir``).
"""

from __future__ import annotations

from typing import Any

import torch

from stalwart.data.core import GroupedDataset
from stalwart.data.samplers import repeat_positions
from stalwart.engine.evaluate import predict_logits
from stalwart.engine.fit import FitResult
from stalwart.errors import ConfigError
from stalwart.io import write_json
from stalwart.methods.catalog import register_method
from stalwart.methods.erm import ERM
from stalwart.recipes.stage import StageContext, final_stage, shared_stage


def error_set(
    model: torch.nn.Module, train: GroupedDataset, batch_size: int = 1024
) -> torch.Tensor:
    """Positions in ``train`` of the examples ``model`` misclassifies."""
    predictions = predict_logits(model, train, batch_size=batch_size).argmax(dim=1)
    return torch.nonzero(predictions != train.y.cpu()).flatten()


def describe_error_set(errors: torch.Tensor, train: GroupedDataset) -> dict[str, Any]:
    """Size of the error set and its share of each group (how well it finds minorities)."""
    in_errors = torch.bincount(train.group[errors], minlength=train.n_groups)
    counts = train.group_counts()
    return {
        "size": len(errors),
        "per_group": dict(zip(train.group_names, in_errors.tolist(), strict=True)),
        "share_of_group": {
            name: (e / n if n else None)
            for name, e, n in zip(
                train.group_names, in_errors.tolist(), counts.tolist(), strict=True
            )
        },
    }


# Training reads no group ids; validation groups select the model, as in the paper.
@register_method("jtt", group_labels="no", staged=True)
def jtt(context: StageContext, *, identification_epochs: int = 1, upweight: int = 20) -> FitResult:
    """Just Train Twice: ERM for T epochs, then ERM with its errors appearing λ times.

    Args:
        context: data, model factory, training settings and directories.
        identification_epochs: T, the epochs of the identification model.
        upweight: λ, how many times each error example appears per epoch in stage 2.
    """
    if identification_epochs < 1:
        raise ConfigError(
            f"method 'jtt': identification_epochs must be >= 1; got {identification_epochs}"
        )
    if upweight < 1:
        raise ConfigError(f"method 'jtt': upweight must be >= 1; got {upweight}")
    stage1_cfg = context.train.model_copy(
        update={"epochs": identification_epochs, "select": "last", "schedule": "constant"}
    )
    identifier, stage1_dir = shared_stage(context, "jtt-identification", ERM(), stage1_cfg)
    train = context.splits.train
    errors = error_set(identifier.model, train, context.train.eval_batch_size)
    if context.writes:  # rank 0 alone under torchrun
        record = {"identification_dir": stage1_dir, "upweight": upweight}
        write_json(
            context.run_dir / "error_set.json", {**record, **describe_error_set(errors, train)}
        )
    return final_stage(context, ERM(), sampler=repeat_positions(errors, upweight, len(train)))
