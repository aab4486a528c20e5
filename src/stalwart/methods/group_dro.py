"""Group DRO: minimise the worst group's loss by online mirror ascent over group weights.

Sagawa, Koh, Hashimoto and Liang, "Distributionally Robust Neural Networks for Group Shifts",
ICLR 2020 (arXiv 1911.08731), Algorithm 1. Each step computes the mean loss ``L_g`` of every
group in the batch, raises the weights of lossy groups,

    q_g ← q_g · exp(η · (L_g + C/√n_g)),   q ← q / Σ q,

and returns ``Σ_g q_g L_g`` with the updated weights. ``C/√n_g`` is the generalisation
adjustment (``n_g`` the group's training count); as in the reference code, it is added only
when C > 0. Groups absent from a batch have ``L_g = 0``. With ``balanced_sampling`` every
group is drawn equally often (the reference's ``--reweight_groups``, used in its commands).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stalwart.data.core import Batch, GroupedDataset
from stalwart.data.samplers import Sampler, balanced
from stalwart.engine.distributed import World, sum_across, world
from stalwart.engine.method import Method
from stalwart.errors import ConfigError
from stalwart.methods.catalog import register_method


def group_mean_losses(losses: Tensor, groups: Tensor, n_groups: int) -> tuple[Tensor, Tensor]:
    """Mean loss of each group (0 where a group has no example) and the per-group counts."""
    sums = torch.zeros(n_groups, dtype=losses.dtype, device=losses.device)
    sums = sums.scatter_add(0, groups, losses)
    counts = torch.bincount(groups, minlength=n_groups)
    return sums / counts.clamp(min=1).to(losses.dtype), counts


class GroupDRO(Method):
    """Online group DRO; the group weights ``q`` are a buffer, saved with checkpoints.

    Data-parallel (``"share"``): every rank updates ``q`` with the group losses of the whole
    batch (its per-group loss sums and counts summed across ranks), so ``q`` is the same on
    every rank and the same as in one process; each rank returns its share of ``Σ_g q_g L_g``.
    """

    data_parallel = "share"

    def __init__(
        self,
        train_groups: Tensor,
        n_groups: int,
        *,
        step_size: float = 0.01,
        generalization_adjustment: float = 0.0,
        balanced_sampling: bool = True,
    ) -> None:
        super().__init__()
        counts = torch.bincount(train_groups, minlength=n_groups).double()
        self.step_size = step_size
        self.balanced_sampling = balanced_sampling
        self._train_groups = train_groups
        self.register_buffer("q", torch.full((n_groups,), 1.0 / n_groups, dtype=torch.float64))
        adjustment = generalization_adjustment / counts.clamp(min=1).sqrt()
        self.register_buffer(
            "adjustment", adjustment if generalization_adjustment > 0 else 0 * adjustment
        )

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """The q-weighted sum of group mean losses, after updating q with this batch."""
        losses = F.cross_entropy(model(batch.x), batch.y, reduction="none")
        place = world()
        if place.parallel:
            return self._share_of_loss(losses.float(), batch.group, place)
        group_losses, _ = group_mean_losses(losses.float(), batch.group, len(self.q))
        self._update_weights(group_losses)
        return group_losses @ self.q.to(group_losses.dtype)

    def _update_weights(self, group_losses: Tensor) -> None:
        with torch.no_grad():
            self.q.mul_(torch.exp(self.step_size * (group_losses.double() + self.adjustment)))
            self.q.div_(self.q.sum())

    def _share_of_loss(self, losses: Tensor, groups: Tensor, place: World) -> Tensor:
        """This rank's share of the batch's loss, after ``q`` is updated with the whole batch.

        Summed over ranks, ``Σ_g q_g S_g^r / N_g`` (S_g^r: this rank's loss sum of group g,
        N_g: the batch's count of it) is ``Σ_g q_g L_g`` of the whole batch.
        """
        n_groups = len(self.q)
        sums = torch.zeros(n_groups, dtype=losses.dtype, device=losses.device)
        sums = sums.scatter_add(0, groups, losses)
        counts = torch.bincount(groups, minlength=n_groups).to(losses.dtype)
        with torch.no_grad():
            totals = sum_across(torch.stack([sums.detach(), counts]), place)
        whole = totals[1].clamp(min=1)
        self._update_weights(totals[0] / whole)
        return (sums / whole) @ self.q.to(losses.dtype)

    def sampler(self, seed: int) -> Sampler | None:
        """Group-balanced sampling if asked for, else plain shuffling."""
        return balanced(self._train_groups) if self.balanced_sampling else None


@register_method("group_dro", group_labels="yes")
def group_dro(
    train: GroupedDataset,
    *,
    step_size: float = 0.01,
    generalization_adjustment: float = 0.0,
    balanced_sampling: bool = True,
) -> GroupDRO:
    """Group DRO with step size η, adjustment C and optional group-balanced sampling."""
    if step_size <= 0:
        raise ConfigError(f"method 'group_dro': step_size must be positive; got {step_size}")
    if generalization_adjustment < 0:
        raise ConfigError(
            "method 'group_dro': generalization_adjustment must be >= 0; "
            f"got {generalization_adjustment}"
        )
    return GroupDRO(
        train.group, train.n_groups, step_size=step_size,
        generalization_adjustment=generalization_adjustment, balanced_sampling=balanced_sampling,
    )  # fmt: skip
