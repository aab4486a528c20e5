"""Just Train Twice (Liu et al., arXiv 2107.09044) as the recipe runs it, checked from outside.

The error set is recomputed from the identification stage's saved model; the λ rule is counted
from the examples the second stage's ``fit`` actually fed its loss.
"""

import json
from collections import Counter

import torch

from stalwart import fit, models
from stalwart.data import GroupedDataset, Splits
from stalwart.recipes import jtt as jtt_module

UPWEIGHT = 3
IDENTIFICATION_EPOCHS = 2
SETTINGS = dict(epochs=2, batch_size=16, lr=0.05, optimizer="sgd", progress=False)


def overlapping(n, seed):
    """Two classes one standard deviation apart: any linear model errs on a good share."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    attribute = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) + torch.stack([y, attribute], 1).float()
    names = [f"y={c}, a={a}" for c in (0, 1) for a in (0, 1)]
    return GroupedDataset(x, y, 2 * y + attribute, n_classes=2, group_names=names)


class RecordingERM(jtt_module.ERM):
    """ERM that keeps the dataset indices of every batch, one list per epoch-sized chunk."""

    instances: list["RecordingERM"] = []

    def __init__(self):
        super().__init__()
        self.seen = []
        RecordingERM.instances.append(self)

    def loss(self, model, batch):
        self.seen.append(batch.index.clone())
        return super().loss(model, batch)


def test_jtt_error_set_and_upweighting(tmp_path, monkeypatch):
    splits = Splits(overlapping(96, 0), overlapping(48, 1), overlapping(48, 2))
    train = splits.train
    RecordingERM.instances = []
    monkeypatch.setattr(jtt_module, "ERM", RecordingERM)
    torch.manual_seed(0)
    fit(
        models.build("linear", train), "jtt", splits, run_dir=tmp_path / "run",
        method_params={"identification_epochs": IDENTIFICATION_EPOCHS, "upweight": UPWEIGHT},
        **SETTINGS,
    )  # fmt: skip
    record = json.loads((tmp_path / "run" / "error_set.json").read_text())

    # The identification stage: T epochs, its last epoch's model (no selection).
    stage = tmp_path / "run" / record["identification_dir"]
    lines = (stage / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
    identifier = models.build("linear", train)
    state = torch.load(stage / "checkpoints" / "last.pt", weights_only=True)
    identifier.load_state_dict(state["model"])
    with torch.no_grad():
        wrong = (identifier(train.x).argmax(1) != train.y).nonzero().flatten().tolist()
    assert 0 < len(wrong) < len(train)

    per_group = Counter(train.group_names[train.group[i]] for i in wrong)
    sizes = Counter(train.group_names[g] for g in train.group.tolist())
    assert record["upweight"] == UPWEIGHT
    assert record["size"] == len(wrong)
    assert record["per_group"] == {name: per_group[name] for name in train.group_names}
    assert record["share_of_group"] == {
        name: per_group[name] / sizes[name] for name in train.group_names
    }

    # Stage 2: in each epoch, an error example is visited λ times, every other example once.
    identification, final = RecordingERM.instances
    visits = torch.cat(final.seen)
    steps_per_epoch = len(final.seen) // SETTINGS["epochs"]
    first_epoch = torch.cat(final.seen[:steps_per_epoch])
    expected = torch.ones(len(train), dtype=torch.long)
    expected[wrong] = UPWEIGHT
    assert torch.bincount(first_epoch, minlength=len(train)).tolist() == expected.tolist()
    assert torch.bincount(visits, minlength=len(train)).tolist() == (2 * expected).tolist()
    # The identification stage itself saw plain ERM: every example once per epoch.
    assert torch.bincount(torch.cat(identification.seen)).tolist() == [2] * len(train)
