"""CVaR DRO: the mean loss of the worst α-fraction of each batch, a group-free DRO baseline.

Levy, Carmon, Duchi and Sidford, "Large-Scale Methods for Distributionally Robust
Optimization", NeurIPS 2020 (arXiv 2010.05893); used as a baseline without group labels in
JTT (arXiv 2107.09044, "CVaR DRO"). The batch estimate averages the ⌈α·B⌉ largest losses.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from stalwart.data.core import Batch, GroupedDataset
from stalwart.engine.method import Method
from stalwart.errors import ConfigError
from stalwart.methods.catalog import register_method


class CVaRDRO(Method):
    """Average of the top-α fraction of per-example losses in the batch."""

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """Mean of the ⌈α·B⌉ largest cross-entropies of the batch."""
        losses = F.cross_entropy(model(batch.x), batch.y, reduction="none")
        # Rounded first: 0.07 · 100 is 7.000000000000001 in floating point, and ⌈·⌉ of it 8.
        k = max(1, math.ceil(round(self.alpha * len(losses), 9)))
        return losses.topk(k).values.mean()


@register_method("cvar_dro", group_labels="no")
def cvar_dro(train: GroupedDataset, *, alpha: float = 0.1) -> CVaRDRO:
    """CVaR DRO at level α (α = 1 is ERM)."""
    if not 0 < alpha <= 1:
        raise ConfigError(f"method 'cvar_dro': alpha must lie in (0, 1]; got {alpha}")
    return CVaRDRO(alpha)
