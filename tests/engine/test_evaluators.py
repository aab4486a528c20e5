"""Pluggable evaluation in fit: the evaluator's keys, selection by any of them, either way."""

import pytest
import torch

from stalwart import models
from stalwart.data import GroupedDataset, Splits
from stalwart.engine import GroupClassification, Ranking, fit
from stalwart.engine.evaluators import Evaluator
from stalwart.errors import ConfigError
from stalwart.methods import ERM

SETTINGS = dict(epochs=4, batch_size=16, lr=0.05, optimizer="sgd", progress=False)


class Scripted(Evaluator):
    """Reports a scripted value per epoch, so the selected epoch is known in advance."""

    def __init__(self, values, direction):
        self.values, self.calls = list(values), 0
        self.selectable = {"score": direction}

    def __call__(self, model, dataset, **_):
        self.calls += 1
        return {"score": self.values[self.calls - 1]}


def model_for(splits):
    torch.manual_seed(0)
    return models.build("mlp", splits.train, hidden=[8])


@pytest.mark.parametrize("direction, best", [("max", 3), ("min", 2)])
def test_fit_selects_the_epoch_the_evaluator_scores_best(tiny_splits, direction, best):
    evaluator = Scripted([0.5, 0.1, 0.9, 0.3], direction)
    result = fit(model_for(tiny_splits), ERM(), tiny_splits, evaluator=evaluator,
                 select="score", **SETTINGS)  # fmt: skip
    assert evaluator.calls == 4
    assert result.best_epoch == best
    assert result.history[best - 1]["val"] == {"score": evaluator.values[best - 1]}
    assert result.best_val_metrics["score"] == evaluator.values[best - 1]


def test_select_must_name_a_key_of_the_evaluator(tiny_splits):
    with pytest.raises(ConfigError, match=r"'auroc'.*choose from \['worst_group_accuracy'"):
        fit(model_for(tiny_splits), ERM(), tiny_splits, select="auroc", **SETTINGS)
    with pytest.raises(ConfigError, match="did you mean 'auroc'"):
        fit(model_for(tiny_splits), ERM(), tiny_splits, evaluator=Ranking(), select="aurco",
            **SETTINGS)  # fmt: skip


def test_classification_loss_is_selected_downwards(tiny_splits):
    result = fit(model_for(tiny_splits), ERM(), tiny_splits, select="loss", **SETTINGS)
    losses = [record["val"]["loss"] for record in result.history]
    assert result.best_epoch == 1 + losses.index(min(losses))
    assert GroupClassification().score({"loss": 2.0}, "loss") < GroupClassification().score(
        {"loss": 1.0}, "loss"
    )


def test_ranking_evaluator_measures_auroc_of_the_positive_logit():
    # A fixed "model" whose class-1 logit is the first input coordinate.
    x = torch.tensor([[0.1], [0.4], [0.35], [0.8]])
    y = torch.tensor([0, 0, 1, 1])
    data = GroupedDataset(x, y, y, n_classes=2, group_names=["normal", "anomaly"])
    model = torch.nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.0], [1.0]]))
    metrics = Ranking(positive_label=1)(model, data)
    assert metrics["auroc"] == pytest.approx(0.75)  # 3 of the 4 (anomaly, normal) pairs ordered
    assert metrics["positives"] == 2


def test_ranking_selects_by_auroc_in_fit():
    g = torch.Generator().manual_seed(0)

    def make(n):
        y = torch.randint(0, 2, (n,), generator=g)
        x = torch.randn(n, 4, generator=g) + 1.5 * y[:, None].float()
        return GroupedDataset(x, y, y, n_classes=2, group_names=["0", "1"])

    splits = Splits(make(96), make(48), make(48))
    result = fit(model_for(splits), ERM(), splits, evaluator=Ranking(), select="auroc", **SETTINGS)
    scores = [record["val"]["auroc"] for record in result.history]
    assert result.best_epoch == 1 + scores.index(max(scores))
    assert max(scores) > 0.8
