"""CVaR DRO's objective: the mean of the ⌈α·B⌉ largest per-example losses of the batch."""

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from stalwart.data import Batch, GroupedDataset
from stalwart.methods import build


class FixedLogits(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits


def unlabelled_train(n):
    return GroupedDataset(
        torch.zeros(n, 1), torch.zeros(n), torch.zeros(n), n_classes=3, group_names=["all"]
    )


def batch_of(logits, labels):
    n = len(labels)
    return Batch(torch.zeros(n, 1), labels, torch.zeros(n, dtype=torch.long), torch.arange(n))


def cross_entropies(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """−log softmax(logits)[y], row by row, in float64 (no torch)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_normaliser = np.log(np.exp(shifted).sum(axis=1))
    return log_normaliser - shifted[np.arange(len(labels)), labels]


@pytest.mark.parametrize(
    "alpha, n",
    # 0.07·100 and 0.14·50 are 7.000000000000001 in floating point: ⌈α·B⌉ is still 7.
    [(0.05, 10), (0.1, 10), (0.25, 10), (0.3, 10), (1.0, 10), (0.07, 100), (0.14, 50), (0.55, 100)],
)
def test_cvar_loss_is_the_mean_of_the_largest_losses(alpha, n):
    method = build("cvar_dro", unlabelled_train(n), alpha=alpha)
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(n, 3))
    labels = rng.integers(0, 3, size=n)
    loss = method.loss(
        FixedLogits(torch.from_numpy(logits)), batch_of(logits, torch.from_numpy(labels))
    )
    # ⌈α·B⌉ in exact arithmetic, with α as written in decimal.
    k = max(1, math.ceil(Fraction(str(alpha)) * n))
    largest = np.sort(cross_entropies(logits, labels))[::-1][:k]
    assert loss.item() == pytest.approx(largest.mean(), rel=1e-9)


def test_cvar_at_alpha_one_is_the_mean_loss():
    logits = torch.tensor([[0.0, 1.0], [2.0, 0.0], [0.0, 0.0], [1.0, 3.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    loss = build("cvar_dro", unlabelled_train(4), alpha=1.0).loss(
        FixedLogits(logits), batch_of(logits, labels)
    )
    assert loss.item() == pytest.approx(cross_entropies(logits.numpy(), labels.numpy()).mean())
