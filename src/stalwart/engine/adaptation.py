"""Adaptation strategies: which parameters of a (pretrained) model ``fit`` trains.

Every stalwart model has a linear output layer as its ``head`` attribute and computes its
penultimate representation with ``features``; "the body" is every parameter and module that
is not in the head. ``TrainConfig.adaptation`` names the strategy:

- ``ft``, full fine-tuning: every parameter trains. This is what ``fit`` always did; the
  model is not touched.
- ``lp``, linear probing: only the head trains. The body is frozen (``requires_grad`` off)
  and held in eval mode on every call, so BatchNorm statistics and Dropout masks stay those of
  inference: the body leaves ``fit`` bit-identical, and the features the head learns on are
  the ones it will see at test time.
- ``lp-ft``, linear probing then fine-tuning (Kumar, Raghunathan, Jones, Ma and Liang,
  "Fine-Tuning can Distort Pretrained Features and Underperform Out-of-Distribution",
  ICLR 2022, arXiv 2202.10054): fine-tuning from a random head changes the features most
  where the head is worst, which distorts them away from the training distribution; starting
  from a probed head avoids that. It is two ``fit`` stages, so it is a recipe
  (``stalwart.recipes.lp_ft``); the engine runs each of its stages as ``lp`` and ``ft``.
- ``lora``, low-rank adaptation (Hu, Shen, Wallis, Allen-Zhu, Li, Wang, Wang and Chen,
  "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022, arXiv 2106.09685): each
  targeted Linear layer ``W`` of the body becomes ``W + (alpha / r)·B·A`` with ``A`` (r × in,
  random) and ``B`` (out × r, zeros, so training starts from the pretrained function); only
  ``A``, ``B`` and the head train, ``W`` stays frozen. Adapters come from PyPI ``peft``
  (``inject_adapter_in_model``, which works on any ``nn.Module``, not only Hugging Face
  models); the model keeps them after ``fit`` (``merge_lora`` folds them into ``W``).

``adapted`` applies a strategy for the length of one ``fit`` and afterwards gives every
parameter back the ``requires_grad`` it had (LoRA's adapters stay, trainable).
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from stalwart.config import AdaptationConfig
from stalwart.errors import ConfigError, closest

PEFT_VERSION = "0.21.2"
"""The peft release LoRA was checked against (the ``text`` extra pins it)."""

PEFT_INSTALL = f'pip install "stalwart[text]"  (or: pip install peft=={PEFT_VERSION})'

MAX_LISTED = 20
"""The most layer names an error message lists."""


def model_head(model: nn.Module, strategy: str) -> nn.Module:
    """``model.head``, the output layer that ``lp`` and ``lora`` train.

    Raises:
        ConfigError: the model has no ``head`` module with parameters.
    """
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Module) or next(head.parameters(), None) is None:
        raise ConfigError(
            f"adaptation {strategy!r} trains the model's head, its output layer, which a "
            f"stalwart model keeps as the attribute `head`; {type(model).__name__} has no "
            "`head` module with parameters"
        )
    return head


def body_modules(model: nn.Module, head: nn.Module) -> list[nn.Module]:
    """Every submodule of ``model`` outside ``head`` (the model itself excluded)."""
    in_head = {id(module) for module in head.modules()}
    return [m for m in model.modules() if m is not model and id(m) not in in_head]


def require_peft() -> types.ModuleType:
    """The ``peft`` module, or a ``ConfigError`` that gives the command installing it."""
    try:
        return importlib.import_module("peft")
    except ImportError as error:
        raise ConfigError(
            f"adaptation 'lora' needs peft, which cannot be imported ({error}); install it "
            f"with\n    {PEFT_INSTALL}"
        ) from None


def has_lora(model: nn.Module) -> bool:
    """Whether ``model`` already holds peft's adapter layers (checked without importing peft)."""
    return any(type(m).__module__.startswith("peft.") for m in model.modules())


def lora_target_names(model: nn.Module, head: nn.Module, targets: list[str]) -> list[str]:
    """Full names of the body's Linear layers that ``targets`` name (by dotted-name suffix).

    Raises:
        ConfigError: a target names no Linear layer of the body; the message lists them.
    """
    in_head = {id(module) for module in head.modules()}
    linears = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and id(module) not in in_head
    }
    chosen: list[str] = []
    for target in targets:
        found = [n for n in linears if n == target or n.endswith("." + target)]
        if not found:
            last = sorted({name.rpartition(".")[2] for name in linears})
            listed = last[:MAX_LISTED] + (["..."] if len(last) > MAX_LISTED else [])
            raise ConfigError(
                f"adaptation.lora_targets: {target!r} names no Linear layer of "
                f"{type(model).__name__}'s body{closest(target, last)}; its Linear layers are "
                f"named {listed} (the head, which trains fully, is not a target)"
            )
        chosen += [n for n in found if n not in chosen]
    return chosen


def add_lora(model: nn.Module, adaptation: AdaptationConfig, *, seed: int = 0) -> nn.Module:
    """Put LoRA adapters on the body's targeted Linear layers, in place; return ``model``.

    A model that already holds adapters (from an earlier ``fit``) keeps them as they are. The
    random initialisation of ``A`` draws from ``seed`` (the global random state is left as it
    was), so a run and its resumption build the same adapters.

    Raises:
        ConfigError: peft is not installed (with the install command), the model has no
            ``head``, or a target names no Linear layer of the body.
    """
    head = model_head(model, "lora")
    if has_lora(model):
        return model
    names = lora_target_names(model, head, adaptation.lora_targets)
    peft = require_peft()
    config = peft.LoraConfig(
        r=adaptation.lora_r,
        lora_alpha=adaptation.lora_alpha,
        lora_dropout=adaptation.lora_dropout,
        target_modules=names,
        bias="none",
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        peft.inject_adapter_in_model(config, model)
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA adapter into its Linear layer (``W += (alpha / r)·B·A``), in place.

    The result has the architecture and ``state_dict`` keys of the model before ``add_lora``,
    and computes what the adapted model computed (up to rounding).
    """
    if not has_lora(model):
        return model
    tuners = importlib.import_module("peft.tuners.tuners_utils")
    for name, module in list(model.named_modules()):
        if isinstance(module, tuners.BaseTunerLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.get_base_layer())
    return model


def _keep_in_eval_mode(module: nn.Module, args: object) -> None:
    module.training = False


class FeatureCache:
    """A linear probe's ``model.features``, computed once per distinct input row.

    Under ``lp`` the body is frozen and in eval mode, so its features are a fixed function of
    each input row: a pretrained transformer's forward pass, by far the cost of a probe,
    is paid once per example instead of once per example and epoch (validation included).
    Only integer inputs (token ids) are cached, keyed by their bytes; float inputs (images,
    which augmentations change from epoch to epoch) and inputs that need a gradient (an
    attack on the input) go through the body every time.
    """

    def __init__(self, features: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.features = features
        self.rows: dict[bytes, torch.Tensor] = {}
        self.computed = 0
        """How many rows went through the body (for tests and profiling)."""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """The body's features of ``x``, each row's computed once."""
        if x.is_floating_point() or x.is_complex() or x.requires_grad or x.ndim < 2:
            return self.features(x)
        keys = [row.tobytes() for row in x.detach().cpu().numpy()]
        missing = sorted({i for i, key in enumerate(keys) if key not in self.rows})
        if missing:
            with torch.no_grad():  # the body is frozen: no gradient flows into it anyway
                found = self.features(x[missing])
            for i, row in zip(missing, found, strict=True):
                self.rows.setdefault(keys[i], row)
            self.computed += len(missing)
        return torch.stack([self.rows[key] for key in keys])


@contextmanager
def adapted(
    model: nn.Module, adaptation: AdaptationConfig, *, seed: int = 0
) -> Iterator[nn.Module]:
    """Apply ``adaptation``'s strategy to ``model`` while one ``fit`` trains it.

    ``ft`` changes nothing. ``lp`` freezes the body and holds each body module in eval mode on
    every call (a forward pre-hook, so that code which switches the model to train mode,
    such as an attack inside a method, cannot switch the body back; the model's own top-level
    code is not a body module, and no registered model keeps train-mode behaviour there).
    Under ``lp`` the body's features of token-id inputs are computed once per distinct input
    (``FeatureCache``, set as the model's ``features`` until exit).
    ``lora`` adds adapters (``add_lora``) and freezes everything but them and the head. On
    exit every parameter that existed before gets its ``requires_grad`` back and the hooks are
    removed.

    Raises:
        ConfigError: ``lp-ft`` (two stages: run it through ``stalwart.fit``), a model without
            ``head``, or a LoRA setting that does not fit the model.
    """
    strategy = adaptation.strategy
    if strategy == "ft":
        yield model
        return
    if strategy == "lp-ft":
        raise ConfigError(
            "adaptation 'lp-ft' is two stages (a linear probe, then fine-tuning from the "
            "probed head); stalwart.fit and run configs run it, engine.fit trains one stage "
            "('lp' or 'ft')"
        )
    head = model_head(model, strategy)
    was_trainable = [(p, p.requires_grad) for p in model.parameters()]
    hooks = []
    cached = False
    try:
        if strategy == "lora":
            add_lora(model, adaptation, seed=seed)
            for name, parameter in model.named_parameters():
                parameter.requires_grad_("lora_" in name)
        else:  # lp
            for module in body_modules(model, head):
                hooks.append(module.register_forward_pre_hook(_keep_in_eval_mode))
            for parameter in model.parameters():
                parameter.requires_grad_(False)
            if callable(getattr(model, "features", None)):
                model.features = FeatureCache(model.features)  # shadows the method until exit
                cached = True
        for parameter in head.parameters():
            parameter.requires_grad_(True)
        yield model
    finally:
        if cached:
            del model.features  # the class's method again
        for hook in hooks:
            hook.remove()
        for parameter, trainable in was_trainable:
            parameter.requires_grad_(trainable)
