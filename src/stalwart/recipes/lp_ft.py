"""LP-FT: a linear probe, then full fine-tuning that starts from the probed head.

Kumar, Raghunathan, Jones, Ma and Liang, "Fine-Tuning can Distort Pretrained Features and
Underperform Out-of-Distribution", ICLR 2022 (arXiv 2202.10054). Fine-tuning a pretrained
model from a random head moves the features most while the head is still bad, and moves
them only for the directions the training data spans, which distorts the features of
inputs unlike the training data; starting from a head already fit to the frozen features
keeps the features nearer their pretrained values.

1. Probe: train only ``model.head`` (adaptation ``lp``: body frozen and in eval mode) for
   ``adaptation.lp_epochs`` epochs (default: ``epochs``) at ``adaptation.lp_lr`` (default:
   ``lr``), selecting its epoch by the run's ``select``, as every stage does.
2. Fine-tune: a copy of the probed model (the probed head, the body it was probed on, which
   the probe left bit-identical) trains fully (adaptation ``ft``) for ``epochs`` at ``lr``,
   into the run's own directory.

Both stages train with the run's method: ``lp-ft`` with ``group_dro`` is a group-DRO probe,
then group-DRO fine-tuning. Each stage gets a fresh method object, so state a method keeps
(group DRO's group weights) starts over in the second stage, as in two separate ``fit`` calls.
Every other setting (optimiser, schedule, warmup, clipping, ``lr_groups``) applies to both.

The probe is a stage like JTT's identification model: trained under a lock in a directory
named by a hash of everything it depends on (``StageContext.stage_dir``) and resumed from its
checkpoints, so an interrupted LP-FT run resumes where it stopped and ends as an
uninterrupted one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from stalwart.config import AdaptationConfig, TrainConfig
from stalwart.data.samplers import Sampler
from stalwart.engine.fit import FitResult, fit
from stalwart.engine.method import Method
from stalwart.errors import ConfigError
from stalwart.io import write_json
from stalwart.methods.catalog import build, method_info
from stalwart.recipes.stage import StageContext, locked

PROBE_STAGE = "lp-ft-probe"


def probe_config(train: TrainConfig) -> TrainConfig:
    """The probe stage's settings: ``lp`` for ``lp_epochs`` at ``lp_lr``."""
    adaptation = train.adaptation
    return train.model_copy(
        update={
            "epochs": adaptation.lp_epochs or train.epochs,
            "lr": adaptation.lp_lr or train.lr,
            "adaptation": AdaptationConfig(strategy="lp"),
        }
    )


def finetune_config(train: TrainConfig) -> TrainConfig:
    """The fine-tuning stage's settings: the run's, with adaptation ``ft``."""
    return train.model_copy(update={"adaptation": AdaptationConfig()})


def check_lp_ft_method(method: Method | str) -> None:
    """Refuse a multi-stage method: LP-FT composes one-stage methods (losses) only.

    Raises:
        ConfigError: ``method`` names a multi-stage recipe (JTT, DFR, RST).
    """
    if isinstance(method, str) and method_info(method).staged:
        raise ConfigError(
            f"adaptation 'lp-ft' trains a one-stage method (a loss such as 'erm' or "
            f"'group_dro') twice, probe then fine-tuning; {method!r} is itself a multi-stage "
            "recipe, whose stages would each need their own probe. Use adaptation 'lp', 'ft' "
            f"or 'lora' with {method!r} (every stage then trains that way)"
        )


def lp_ft(
    context: StageContext,
    method: Method | str,
    method_params: dict[str, Any] | None = None,
    *,
    sampler: Sampler | None = None,
) -> FitResult:
    """Probe, then fine-tune from the probed head; return the fine-tuning stage's result.

    Args:
        context: data, model factory, training settings (with ``adaptation.strategy ==
            "lp-ft"``) and directories; the run's own directory receives stage 2.
        method: a one-stage method's registered name, or a ``Method`` object (each stage
            trains a fresh deep copy of it as passed).
        method_params: the named method's hyperparameters.
        sampler: the visiting order of both stages (default: the method's own).

    Raises:
        ConfigError: a multi-stage method, or settings that do not fit the model.
    """
    check_lp_ft_method(method)
    if context.train.adaptation.strategy != "lp-ft":
        raise ConfigError(
            f"lp_ft needs adaptation 'lp-ft'; got {context.train.adaptation.strategy!r}"
        )
    make_method = _method_factory(method, method_params or {}, context)
    probe_cfg = probe_config(context.train)
    # The method is part of what the probe depends on: runs sharing a stage folder must not
    # share a group-DRO probe with an ERM run.
    identity = {**context.identity, "method": _method_identity(method, method_params or {})}
    directory = replace(context, identity=identity).stage_dir(PROBE_STAGE, probe_cfg)
    with locked(directory):
        probe = fit(
            context.build_model(), make_method(), context.splits, probe_cfg, sampler=sampler,
            run_dir=directory, resume=True, on_epoch_end=context.on_epoch_end,
            evaluator=context.evaluator,
        )  # fmt: skip
    if context.writes:  # rank 0 alone under torchrun
        write_json(
            context.run_dir / "lp_ft.json",
            {
                "probe_dir": directory,
                "probe_epochs": probe_cfg.epochs,
                "probe_lr": probe_cfg.lr,
                "probe_best_epoch": probe.best_epoch,
            },
        )
    return fit(
        copy.deepcopy(probe.model), make_method(), context.splits,
        finetune_config(context.train), sampler=sampler, run_dir=context.run_dir, resume=True,
        on_epoch_end=context.on_epoch_end, evaluator=context.evaluator,
    )  # fmt: skip


def _method_factory(
    method: Method | str, params: dict[str, Any], context: StageContext
) -> Callable[[], Method]:
    if isinstance(method, str):
        build(method, context.splits.train, **params)  # a bad name or parameter fails now
        return lambda: build(method, context.splits.train, **params)
    if params:
        raise ConfigError("method_params go with a method name, not a Method object")
    initial = copy.deepcopy(method)
    return lambda: copy.deepcopy(initial)


def _method_identity(method: Method | str, params: dict[str, Any]) -> dict[str, Any]:
    if isinstance(method, str):
        return {"name": method, "params": repr(sorted(params.items()))}
    return {"class": f"{type(method).__module__}.{type(method).__qualname__}"}
