"""Every registered method, one-stage or staged, trains on tiny data through the same engine."""

import json
import math

import pytest
import torch

from stalwart import fit, models
from stalwart.config import TrainConfig
from stalwart.data import Batch, GroupedDataset, Splits
from stalwart.methods import METHODS, Method, build, method_info
from stalwart.recipes import StageContext

ONE_STAGE = [name for name in METHODS.names() if not method_info(name).staged]
STAGED = [name for name in METHODS.names() if method_info(name).staged]

SETTINGS = dict(epochs=2, batch_size=16, lr=0.05, optimizer="sgd", progress=False)


@pytest.mark.parametrize("name", ONE_STAGE)
def test_one_stage_method_contract(name, tiny_splits):
    method = build(name, tiny_splits.train)
    assert isinstance(method, Method)
    torch.manual_seed(0)
    model = models.build("mlp", tiny_splits.train, hidden=[8])
    batch = Batch(
        *(
            t[:16]
            for t in (
                tiny_splits.train.x,
                tiny_splits.train.y,
                tiny_splits.train.group,
                tiny_splits.train.index,
            )
        )
    )
    loss = method.loss(model, batch)
    assert loss.ndim == 0 and math.isfinite(loss.item())
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    sampler = method.sampler(seed=0)
    if sampler is not None:
        order = sampler(tiny_splits.train, torch.Generator().manual_seed(0))
        assert (
            order.dtype == torch.long and order.min() >= 0 and order.max() < len(tiny_splits.train)
        )
    result = fit(model, method, tiny_splits, **SETTINGS)
    assert all(math.isfinite(r["train_loss"]) for r in result.history)
    assert method_info(name).group_labels in ("no", "yes")


@pytest.mark.parametrize("name", STAGED)
def test_staged_method_contract(name, tiny_splits, tmp_path):
    def build_model():
        torch.manual_seed(0)
        return models.build("mlp", tiny_splits.train, hidden=[8])

    splits = pooled_splits() if name == "rst" else tiny_splits
    context = StageContext(splits, build_model, TrainConfig(**SETTINGS), run_dir=tmp_path / "run")
    result = METHODS.build(name, context)
    assert result.model(tiny_splits.test.x).shape == (len(tiny_splits.test), 2)
    assert method_info(name).group_labels in ("no", "yes", "validation set")
    run = tmp_path / "run"
    selected = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert same_state(selected, result.model.state_dict())  # the run's model is what it returned
    if name == "dfr":
        check_dfr_retrained_only_the_head(run, result.model)
    else:
        assert (run / "checkpoints" / "last.pt").exists()
        record = {"jtt": "error_set.json", "rst": "pseudo_labels.json"}[name]
        assert (run / record).exists()


def same_state(a, b, skip=()):
    return a.keys() == b.keys() and all(
        torch.equal(a[k].cpu(), b[k].cpu()) for k in a if not k.startswith(skip)
    )


def check_dfr_retrained_only_the_head(run, model):
    """DFR keeps its ERM base's features and replaces only the last layer (arXiv 2204.02937)."""
    record = json.loads((run / "dfr.json").read_text())
    assert str(record["c"]) in record["held_out_worst_group_accuracy"]  # a C it tuned over
    base = torch.load(run / record["base_dir"] / "checkpoints" / "best.pt", weights_only=True)
    retrained = model.state_dict()
    assert same_state(base["model"], retrained, skip=("head.",))
    assert not torch.equal(base["model"]["head.weight"], retrained["head.weight"].cpu())


def pooled_splits():
    """Class-grouped inputs in [0, 1] with an unlabelled pool: what RST needs."""
    g = torch.Generator().manual_seed(0)

    def make(n):
        y = torch.randint(0, 2, (n,), generator=g)
        x = (0.3 * torch.rand(n, 1, 8, 8, generator=g) + 0.5 * y.view(-1, 1, 1, 1)).clamp(0, 1)
        return GroupedDataset(x, y, y, n_classes=2, group_names=["0", "1"])

    pool = make(48).x
    return Splits(make(64), make(32), make(32), unlabelled=pool)


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_parameter_is_keyword_only_with_a_default(name):
    for parameter in METHODS.parameters(name).values():
        assert parameter.default is not parameter.empty, f"{name}.{parameter.name} needs a default"
