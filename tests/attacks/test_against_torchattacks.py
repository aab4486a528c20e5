"""Our PGD is at least as strong as an independent implementation (torchattacks, test-only)."""

import pytest
import torch
import torchattacks

from stalwart import data, fit, models
from stalwart.attacks import robust_accuracy


@pytest.mark.data("mnist")
def test_pgd_robust_accuracy_is_within_a_point_of_torchattacks_or_lower():
    splits = data.load("mnist", seed=0)
    torch.manual_seed(0)
    model = models.build("mlp", splits.train, hidden=[128])
    fit(model, "erm", splits, epochs=3, lr=1e-3, progress=False, select="last")
    model.eval()
    test = splits.test.subset(range(1000))
    eps, steps, alpha = 0.05, 20, 0.005
    ours = robust_accuracy(model, test, eps=eps, steps=steps, step_size=alpha, restarts=1).accuracy
    reference = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    torch.manual_seed(0)
    adversarial = reference(test.x, test.y)
    with torch.no_grad():
        theirs = (model(adversarial).argmax(1) == test.y).float().mean().item()
    assert 0.05 < theirs < 0.95  # a budget where the comparison means something
    assert ours <= theirs + 0.01, (ours, theirs)
