"""The one registry of training methods, one-stage and multi-stage alike.

Every entry carries a :class:`MethodInfo`. One-stage methods (this package) register
factories ``(train: GroupedDataset, *, hyperparameters) -> Method``: a loss for ``fit``.
Multi-stage recipes (``stalwart.recipes``: JTT, DFR, RST) register, with ``staged=True``,
functions ``(context: StageContext, *, hyperparameters) -> FitResult`` that compose ``fit``
calls. Names are resolved one floor up (``stalwart.recipes.fit``), where both kinds are loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from stalwart.data.core import GroupedDataset
from stalwart.engine.method import Method
from stalwart.errors import ConfigError
from stalwart.registry import Registry

GroupLabels = Literal["no", "yes", "validation set"]


@dataclass(frozen=True)
class MethodInfo:
    """What the registry records about every method.

    Attributes:
        group_labels: whether training reads group ids: ``"no"``, ``"yes"``, or only those of
            the ``"validation set"`` (DFR). Every method may use validation groups to select
            its epoch; this is about training.
        staged: a multi-stage recipe composing several ``fit`` calls, rather than a loss.
        reuses: a method whose finished run, with the same data, model and training settings,
            this one starts from (DFR retrains the last layer of an ``"erm"`` run), so that a
            comparison can hand it that run instead of training it again.
    """

    group_labels: GroupLabels
    staged: bool = False
    reuses: str | None = None


METHODS: Registry[Any] = Registry("method", info_type=MethodInfo)


def register_method(
    name: str, *, group_labels: GroupLabels, staged: bool = False, reuses: str | None = None
):
    """Decorator adding a method factory (or a staged recipe) to ``METHODS``."""
    return METHODS.register(name, MethodInfo(group_labels, staged, reuses))


def method_info(name: str) -> MethodInfo:
    """The registry's record of ``name``; a wrong name lists every method."""
    return METHODS.info(name)


def build(name: str, train: GroupedDataset, **params: Any) -> Method:
    """Build the one-stage method ``name`` (a loss) for training on ``train``.

    Raises:
        ConfigError: an unknown name, a bad parameter, or a multi-stage recipe, which is not a
            loss (run it through ``stalwart.fit`` or a run config).
    """
    if method_info(name).staged:
        raise ConfigError(
            f"method {name!r} is a multi-stage recipe, not a loss: train it with "
            f"stalwart.fit(model, {name!r}, splits, ...) or a run config"
        )
    return METHODS.build(name, train, **params)
