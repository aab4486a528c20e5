"""Empirical risk minimisation: the mean cross-entropy over the batch (Vapnik, 1992)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from stalwart.data.core import Batch, GroupedDataset
from stalwart.engine.method import Method
from stalwart.methods.catalog import register_method


class ERM(Method):
    """Average cross-entropy, the baseline every robust method is measured against."""

    data_parallel = "mean"

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """Mean cross-entropy of ``model`` on ``batch``."""
        return F.cross_entropy(model(batch.x), batch.y)


@register_method("erm", group_labels="no")
def erm(train: GroupedDataset) -> ERM:
    """Build ERM (it needs nothing from the training data)."""
    return ERM()
