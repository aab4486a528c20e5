"""LP-FT (Kumar et al., arXiv 2202.10054) as the recipe runs it, checked from outside.

Each stage's ``fit`` call is recorded with the weights it started from and ended with, so the
hand-over (fine-tuning starts from the probed head and the body the probe left untouched) is
checked on the models themselves.
"""

import json
from types import SimpleNamespace

import pytest
import torch
from tests.conftest import toy_run

from stalwart import data, fit, models
from stalwart.errors import ConfigError
from stalwart.experiments.configs import parse_config
from stalwart.experiments.run import run
from stalwart.methods.erm import ERM
from stalwart.recipes import lp_ft as lp_ft_module

SETTINGS = dict(epochs=2, batch_size=16, lr=0.05, optimizer="sgd", progress=False)


def new_model(seed=0):
    torch.manual_seed(seed)
    return models.build("mlp", ((1, 8, 8), 2), hidden=[16], dropout=0.1)


def state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same(a, b, part=""):
    keys = [k for k in a if k.startswith(part)]
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in keys)


def without_time(history):
    return [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in history]


@pytest.fixture
def stages(monkeypatch):
    """Every ``fit`` call of the recipe: its adaptation, settings, start and end weights."""
    calls = []
    real_fit = lp_ft_module.fit

    def recording(model, method, data, cfg, **kwargs):
        start = state(model)
        result = real_fit(model, method, data, cfg, **kwargs)
        calls.append(SimpleNamespace(
            strategy=cfg.adaptation.strategy, cfg=cfg, method=method, start=start,
            end=state(result.model), result=result,
        ))  # fmt: skip
        return result

    monkeypatch.setattr(lp_ft_module, "fit", recording)
    return calls


def test_fine_tuning_starts_from_the_probed_head(tiny_splits, stages):
    model = new_model()
    initial = state(model)
    adaptation = {"strategy": "lp-ft", "lp_epochs": 3, "lp_lr": 0.2}
    result = fit(model, "erm", tiny_splits, adaptation=adaptation, **SETTINGS)

    probe, finetune = stages
    assert (probe.strategy, finetune.strategy) == ("lp", "ft")
    # Stage 1 probes the model as passed: the body stays bit-identical, the head moves.
    assert same(probe.start, initial)
    assert same(probe.end, initial, "body.") and not same(probe.end, initial, "head.")
    assert [r["lr"] for r in probe.result.history] == [0.2, 0.2, 0.2]
    # Stage 2 starts from exactly the probed model, then moves the body too.
    assert same(finetune.start, probe.end)
    assert not same(finetune.end, initial, "body.")
    assert [r["lr"] for r in finetune.result.history] == [0.05, 0.05]
    # The caller's model ends as the fine-tuned one.
    assert result.model is model and same(state(model), finetune.end)
    assert result.history == finetune.result.history


def test_each_stage_trains_a_fresh_copy_of_a_method_object(tiny_splits, stages):
    method = ERM()
    fit(new_model(), method, tiny_splits, adaptation="lp-ft", **SETTINGS)
    probe, finetune = stages
    assert len({id(method), id(probe.method), id(finetune.method)}) == 3


def test_group_dro_with_lp_ft_as_the_issue_writes_it(tiny_splits, stages):
    model = new_model()
    before = state(model)
    result = fit(model, "group_dro", tiny_splits, adaptation="lp-ft", epochs=3, progress=False)
    assert [type(s.method).__name__ for s in stages] == ["GroupDRO", "GroupDRO"]
    assert len(result.history) == 3 and len(stages[0].result.history) == 3  # lp_epochs: epochs
    assert not same(state(model), before, "body.")


class Interrupt(Exception):
    pass


def stop_at_record(n):
    """An ``on_epoch_end`` that raises at the ``n``-th epoch record, counted over all stages."""
    seen = []

    def callback(record):
        seen.append(record)
        if len(seen) == n:
            raise Interrupt

    return callback


def test_resume_after_interruptions_in_either_stage_matches_uninterrupted_run(
    tiny_splits, tmp_path
):
    settings = {**SETTINGS, "adaptation": {"strategy": "lp-ft", "lp_epochs": 3}}
    full = fit(new_model(), "group_dro", tiny_splits, run_dir=tmp_path / "full", **settings)

    cut = tmp_path / "cut"
    with pytest.raises(Interrupt):  # in the probe, after its epoch 2 of 3
        fit(new_model(), "group_dro", tiny_splits, run_dir=cut, on_epoch_end=stop_at_record(2),
            **settings)  # fmt: skip
    assert not (cut / "checkpoints").exists()
    with pytest.raises(Interrupt):  # the probe's epoch 3, then fine-tuning's epoch 1
        fit(new_model(seed=5), "group_dro", tiny_splits, run_dir=cut,
            on_epoch_end=stop_at_record(2), **settings)  # fmt: skip
    assert len((cut / "metrics.jsonl").read_text().splitlines()) == 1
    # Other initial weights: what the resumed run ends with comes from its checkpoints.
    resumed = fit(new_model(seed=9), "group_dro", tiny_splits, run_dir=cut, **settings)

    assert same(state(full.model), state(resumed.model))
    assert resumed.best_epoch == full.best_epoch
    assert without_time(resumed.history) == without_time(full.history)
    record = json.loads((cut / "lp_ft.json").read_text())
    assert record["probe_epochs"] == 3 and record["probe_lr"] == SETTINGS["lr"]
    probe_lines = (cut / record["probe_dir"] / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in probe_lines] == [1, 2, 3]


@pytest.mark.parametrize("method", ["jtt", "dfr", "rst"])
def test_lp_ft_refuses_a_multi_stage_method(tiny_splits, tmp_path, method):
    with pytest.raises(ConfigError, match=rf"{method!r} is itself a multi-stage recipe.*Use "
                       rf"adaptation 'lp', 'ft' or 'lora' with {method!r}"):  # fmt: skip
        fit(new_model(), method, tiny_splits, adaptation="lp-ft", run_dir=tmp_path, **SETTINGS)
    assert list(tmp_path.iterdir()) == []


def test_a_linear_probe_composes_with_a_multi_stage_method(tiny_splits):
    model = new_model()
    before = state(model)
    fit(model, "jtt", tiny_splits, adaptation="lp", **SETTINGS,
        method_params={"identification_epochs": 1, "upweight": 2})  # fmt: skip
    assert same(state(model), before, "body.") and not same(state(model), before, "head.")


def test_a_run_config_takes_lp_ft(tmp_path):
    config = parse_config({**toy_run(adaptation="lp-ft"), "out": str(tmp_path / "run")})
    summary = run(config)
    assert summary.best_epoch >= 1
    record = json.loads((tmp_path / "run" / "lp_ft.json").read_text())
    assert record["probe_dir"].startswith(str(tmp_path / "run" / "stages" / "lp-ft-probe-"))
    # The probe trained the head only: its checkpoint's body is the run's initial body.
    probe = torch.load(f"{record['probe_dir']}/checkpoints/last.pt", weights_only=True)["model"]
    splits = data.load(config.data.name, **config.data_params())
    torch.manual_seed(config.train.seed)  # as the run builds its model
    initial = models.build(config.model.name, splits.train, **config.model.params).state_dict()
    assert same(probe, initial, "body.") and not same(probe, initial, "head.")


def test_a_run_config_refuses_lp_ft_with_a_multi_stage_method(tmp_path):
    raw = {**toy_run(adaptation="lp-ft"), "method": {"name": "jtt"}, "out": str(tmp_path / "r")}
    with pytest.raises(ConfigError, match="'jtt' is itself a multi-stage recipe"):
        run(parse_config(raw))
    assert not (tmp_path / "r").exists()
