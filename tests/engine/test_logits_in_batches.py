"""Outputs on raw inputs, in batches, on the model's own device, with its mode restored."""

import torch
from torch import nn

from stalwart.engine.device import model_device
from stalwart.engine.evaluate import logits_in_batches


def test_batches_change_nothing_and_the_mode_is_restored():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.Dropout(0.5), nn.Linear(8, 3)).double()
    x = torch.randn(23, 5, dtype=torch.float64)
    model.train()
    found = logits_in_batches(model, x, batch_size=4)
    assert model.training  # restored
    model.eval()
    expected = model(x).float()
    torch.testing.assert_close(found, expected)  # eval mode: dropout off, every row once
    assert found.dtype == torch.float32 and found.device.type == "cpu"
    assert logits_in_batches(model, x[:0]).numel() == 0


def test_model_device():
    assert model_device(nn.Linear(2, 2)).type == "cpu"
    assert model_device(nn.ReLU()).type == "cpu"  # no parameters: the CPU
