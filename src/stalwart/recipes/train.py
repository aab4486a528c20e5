"""``fit`` by name: any registered method, one-stage (a loss) or multi-stage (a recipe).

The engine's ``fit`` takes a ``Method`` object and knows no names; this is the floor where
names are resolved, because it is the lowest one that sees both the one-stage methods and the
recipes built on ``fit``. ``stalwart.fit`` is this function.

It also runs every adaptation strategy (``adaptation=`` ``"ft"``, ``"lp"``, ``"lp-ft"``,
``"lora"``) with every one-stage method. ``lp``, ``ft`` and ``lora`` compose with multi-stage
methods too (each of their stages trains that way); ``lp-ft``, itself two stages, does not
(``stalwart.recipes.lp_ft`` says why) and is refused with them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from stalwart.config import TrainConfig
from stalwart.data.core import Splits
from stalwart.data.samplers import Sampler
from stalwart.engine.adaptation import add_lora
from stalwart.engine.evaluators import Evaluator
from stalwart.engine.fit import FitResult, resolve_train_config
from stalwart.engine.fit import fit as engine_fit
from stalwart.engine.method import Method
from stalwart.errors import ConfigError
from stalwart.methods.catalog import METHODS, build, method_info
from stalwart.recipes.lp_ft import check_lp_ft_method, lp_ft
from stalwart.recipes.stage import StageContext


def fit(
    model: nn.Module,
    method: Method | str,
    data: Splits,
    cfg: TrainConfig | None = None,
    *,
    method_params: dict[str, Any] | None = None,
    sampler: Sampler | None = None,
    evaluator: Evaluator | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    **overrides: Any,
) -> FitResult:
    """Train ``model`` with ``method`` on ``data.train``, selecting by validation metrics.

    Args:
        model: the network to train; it ends with the selected weights.
        method: a ``Method`` object or a registered name (``"erm"``, ``"group_dro"``, or a
            multi-stage recipe such as ``"jtt"``, which trains fresh copies of ``model`` as it
            was when passed, one per stage).
        data: train, val and test splits; val drives selection, test is never touched.
        cfg: training settings; keyword ``overrides`` (``epochs=10, lr=1e-3``) update it.
        method_params: the named method's hyperparameters (``{"step_size": 0.01}``).
        sampler: the epoch's visiting order (one-stage methods only).
        evaluator: what validation measures; ``select`` names one of its keys.
        run_dir: where metrics and checkpoints go (stages of a recipe under ``stages/``).
        resume: continue from ``run_dir``'s last checkpoint (recipes always resume stages).
        on_epoch_end: called with each epoch's record (of every stage).
        **overrides: ``TrainConfig`` fields, e.g. ``epochs=10, lr=1e-3``, or
            ``adaptation="lp-ft"`` (see ``stalwart.engine.adaptation``): ``lp-ft`` probes the
            head, then fine-tunes, writing the probe under ``run_dir/stages/`` and always
            resuming both stages, as recipes do.

    Raises:
        ConfigError: an unknown method or setting, parameters given with a ``Method`` object,
            or ``lp-ft`` with a multi-stage method.
    """
    if not isinstance(method, str) and method_params:
        raise ConfigError("method_params go with a method name, not a Method object")
    cfg = resolve_train_config(cfg, overrides)
    params = method_params or {}
    if cfg.adaptation.strategy == "lp-ft":
        check_lp_ft_method(method)
        context = _context(model, data, cfg, run_dir, on_epoch_end, evaluator)
        return _into(model, lp_ft(context, method, params, sampler=sampler))
    if not isinstance(method, str):
        return engine_fit(
            model, method, data, cfg, sampler=sampler, evaluator=evaluator, run_dir=run_dir,
            resume=resume, on_epoch_end=on_epoch_end,
        )  # fmt: skip
    if not method_info(method).staged:
        return engine_fit(
            model, build(method, data.train, **params), data, cfg, sampler=sampler,
            evaluator=evaluator, run_dir=run_dir, resume=resume, on_epoch_end=on_epoch_end,
        )  # fmt: skip
    if sampler is not None:
        raise ConfigError(f"method {method!r} is a multi-stage recipe; it chooses its own sampler")
    result = METHODS.build(
        method, _context(model, data, cfg, run_dir, on_epoch_end, evaluator), **params
    )
    if cfg.adaptation.strategy == "lora":
        add_lora(model, cfg.adaptation, seed=cfg.seed)  # where the trained adapters go
    return _into(model, result)


def _context(
    model: nn.Module,
    data: Splits,
    cfg: TrainConfig,
    run_dir: str | Path | None,
    on_epoch_end: Callable[[dict[str, Any]], None] | None,
    evaluator: Evaluator | None,
) -> StageContext:
    """A recipe's context whose stages each start from a copy of ``model`` as it is now."""
    initial = copy.deepcopy(model)
    return StageContext(
        data, lambda: copy.deepcopy(initial), cfg, run_dir=run_dir, on_epoch_end=on_epoch_end,
        evaluator=evaluator,
    )  # fmt: skip


def _into(model: nn.Module, result: FitResult) -> FitResult:
    """``result`` with its weights loaded into the caller's ``model``, which it then holds."""
    model.load_state_dict(result.model.state_dict())
    result.model = model
    return result


def run_method(name: str, params: dict[str, Any], context: StageContext) -> FitResult:
    """Train ``context``'s model with the registered method ``name`` into ``context.run_dir``."""
    if context.train.adaptation.strategy == "lp-ft":
        return lp_ft(context, name, params)
    if method_info(name).staged:
        return METHODS.build(name, context, **params)
    return engine_fit(
        context.build_model(), build(name, context.splits.train, **params), context.splits,
        context.train, run_dir=context.run_dir, resume=True, on_epoch_end=context.on_epoch_end,
        evaluator=context.evaluator,
    )  # fmt: skip
