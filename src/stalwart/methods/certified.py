"""IBP certified training: cross-entropy on the clean logits and on IBP's worst-case logits.

Gowal, Dvijotham, Stanforth, Bunel, Qin, Uesato, Arandjelović, Mann and Kohli, "On the
Effectiveness of Interval Bound Propagation for Training Verifiably Robust Models", 2018
(arXiv 1810.12715). The loss is ``κ·CE(f(x), y) + (1 − κ)·CE(ẑ(x, ε), y)`` where ``ẑ_j`` is
IBP's upper bound on ``f_j(x') − f_y(x')`` over the ε-ball (``ẑ_y = 0``): the logits of the
worst case, bounded through the margin rows ``e_y − e_j`` with the last layer elided, which is
tighter than bounding the logits separately.

Training starts from a small ε: it grows linearly to its target over ``ramp_steps``
optimisation steps (the paper's warm-up). The step count is a registered buffer, so it is
saved in checkpoints and a resumed run continues the same schedule. The model is converted
with :func:`stalwart.certify.from_module` at every step; the converted layers share the
model's parameters, so the gradient of the bound reaches them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stalwart.attacks.pgd import check_budget
from stalwart.certify.ibp import ibp_rows
from stalwart.certify.network import from_module
from stalwart.data.core import Batch, GroupedDataset
from stalwart.engine.method import Method
from stalwart.errors import ConfigError
from stalwart.methods.catalog import register_method


def margin_rows(y: Tensor, n_classes: int, dtype: torch.dtype) -> Tensor:
    """Per-example rows ``e_y − e_j`` for every class ``j``, shape ``(batch, n, n)``."""
    eye = torch.eye(n_classes, dtype=dtype, device=y.device)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)


def ibp_worst_logits(
    model: nn.Module, x: Tensor, y: Tensor, eps: float, lower: float, upper: float
) -> Tensor:
    """IBP upper bounds on ``f_j(x') − f_y(x')`` over the clipped ε-ball, ``(batch, classes)``.

    The ball is clipped to ``[lower, upper]`` but always keeps its centre, so an input outside
    the domain is not moved.

    Raises:
        ConfigError: if the model has a layer that cannot be bounded, naming it.
    """
    net = from_module(model, tuple(x.shape[1:]))
    flat = x.flatten(1)
    low = torch.minimum((flat - eps).clamp(min=lower), flat)
    high = torch.maximum((flat + eps).clamp(max=upper), flat)
    C = margin_rows(y, net.out_features, flat.dtype)
    d = torch.zeros(C.shape[:2], dtype=flat.dtype, device=flat.device)
    return -ibp_rows(net, low, high, C, d)


class IBPTraining(Method):
    """``κ·CE(f(x), y) + (1 − κ)·CE(IBP worst-case logits, y)`` with an ε warm-up."""

    def __init__(
        self, eps: float, kappa: float, lower: float, upper: float, ramp_steps: int
    ) -> None:
        super().__init__()
        self.eps, self.kappa, self.lower, self.upper = eps, kappa, lower, upper
        self.ramp_steps = ramp_steps
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def current_eps(self) -> float:
        """ε at this step of the warm-up."""
        if self.ramp_steps <= 0:
            return self.eps
        return self.eps * min(1.0, float(self.steps) / self.ramp_steps)

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """The mixed clean and worst-case cross-entropy; counts a step when training."""
        eps = self.current_eps()
        worst = ibp_worst_logits(model, batch.x, batch.y, eps, self.lower, self.upper)
        clean = model(batch.x)
        if model.training:
            self.steps += 1
        return self.kappa * F.cross_entropy(clean, batch.y) + (1 - self.kappa) * (
            F.cross_entropy(worst, batch.y)
        )


@register_method("ibp", group_labels="no")
def ibp(
    train: GroupedDataset,
    *,
    eps: float = 0.1,
    kappa: float = 0.5,
    lower: float = 0.0,
    upper: float = 1.0,
    ramp_steps: int = 0,
) -> IBPTraining:
    """IBP certified training (Gowal et al.) with an L∞ ball of radius ``eps``.

    Args:
        train: the training set (unused: the loss needs no statistics of the data).
        eps: radius of the L∞ ball, in the data's own units.
        kappa: weight of the clean cross-entropy, in ``[0, 1]``.
        lower: smallest valid input value.
        upper: largest valid input value.
        ramp_steps: optimisation steps over which ε grows linearly from 0 (0: no warm-up).
    """
    check_budget(eps, "linf", lower, upper)
    if not 0.0 <= kappa <= 1.0:
        raise ConfigError(f"method 'ibp': kappa must lie in [0, 1]; got {kappa}")
    if ramp_steps < 0:
        raise ConfigError(f"method 'ibp': ramp_steps must be >= 0; got {ramp_steps}")
    return IBPTraining(eps, kappa, lower, upper, ramp_steps)
