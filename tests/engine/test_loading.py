"""How batches reach the device: every loading mode trains the same model; the speed settings.

The GPU paths (pinned memory, the resident copy on a CUDA device) run on the device machine
(``benchmarks/gpu_engine.py``); here every mode runs on the CPU, where the feeder does the same
bookkeeping (the prefetching thread, the resident copy), and ``auto`` is checked as a decision.
"""

from __future__ import annotations

import pytest
import torch
from tests.conftest import make_grouped

from stalwart import fit
from stalwart.config import TrainConfig
from stalwart.data.core import Splits
from stalwart.engine.fit import _fingerprint
from stalwart.engine.loading import (
    PREFETCH_DEPTH,
    RESIDENT_SHARE,
    Feeder,
    choose_loading,
    wants_channels_last,
)
from stalwart.errors import ConfigError
from stalwart.models import build as build_model

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def splits(n=96):
    data = make_grouped(n, shape=(1, 8, 8))
    return Splits(train=data, val=make_grouped(32, shape=(1, 8, 8), seed=1),
                  test=make_grouped(32, shape=(1, 8, 8), seed=2))  # fmt: skip


def train(**settings):
    torch.manual_seed(0)
    model = build_model("cnn", ((1, 8, 8), 2), width=4, depth=1)
    fit(model, "erm", splits(), epochs=2, batch_size=10, lr=1e-2, progress=False, seed=3,
        select="last", **settings)  # fmt: skip
    return model


@pytest.mark.parametrize("mode", ["resident", "prefetch"])
def test_every_loading_mode_trains_the_same_model(mode):
    plain = train(loading="plain")
    other = train(loading=mode)
    for (name, a), (_, b) in zip(plain.state_dict().items(), other.state_dict().items(),
                                 strict=True):  # fmt: skip
        assert torch.equal(a, b), name


def test_channels_last_trains_the_same_model_up_to_rounding():
    standard, channels_last = train(channels_last=False), train(channels_last=True)
    conv = next(p for p in channels_last.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(standard.state_dict().values(), channels_last.state_dict().values(),
                    strict=True):  # fmt: skip
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_compile_trains_through_the_compiled_model_and_checkpoints_the_model(monkeypatch, tmp_path):
    class Compiled(torch.nn.Module):  # what torch.compile returns: a module around the model
        def __init__(self, model):
            super().__init__()
            self._orig_mod, self.calls = model, 0

        def forward(self, x):
            self.calls += 1
            return self._orig_mod(x)

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model: compiled.append(Compiled(model)) or
                        compiled[-1])  # fmt: skip
    model = build_model("mlp", ((1, 8, 8), 2), hidden=[8])
    fit(model, "erm", splits(), epochs=1, batch_size=32, progress=False, compile=True,
        run_dir=tmp_path / "run")  # fmt: skip
    (wrapper,) = compiled
    assert wrapper._orig_mod is model and wrapper.calls == 3  # every training step
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert set(saved["model"]) == set(model.state_dict())  # no "_orig_mod." prefix


def test_speed_settings_leave_the_fingerprint_and_old_dumps_alone():
    plain = TrainConfig()
    fast = TrainConfig(loading="prefetch", channels_last=True, compile=True)
    assert _fingerprint(plain) == _fingerprint(fast)  # a run resumes across them
    assert not {"loading", "channels_last", "compile"} & set(plain.model_dump())
    with pytest.raises(ValueError, match="loading"):
        TrainConfig(loading="fast")


def test_auto_keeps_data_on_an_accelerator_when_it_fits_and_prefetches_when_not():
    free = 1000
    assert choose_loading("auto", CPU, 10, None) == "plain"
    assert choose_loading("auto", CUDA, int(RESIDENT_SHARE * free), free) == "resident"
    assert choose_loading("auto", CUDA, int(RESIDENT_SHARE * free) + 1, free) == "prefetch"
    assert choose_loading("auto", CUDA, 10, None) == "prefetch"
    assert choose_loading("plain", CUDA, 10, free) == "plain"
    with pytest.raises(ConfigError, match="loading must be one of"):
        choose_loading("fastest", CPU, 10, None)


def test_channels_last_by_default_only_for_convolutions_on_cuda():
    cnn = build_model("cnn", ((1, 8, 8), 2), width=4, depth=1)
    mlp = build_model("mlp", ((1, 8, 8), 2), hidden=[8])
    image, vector = torch.zeros(1, 8, 8), torch.zeros(64)
    assert wants_channels_last(None, cnn, image, CUDA)
    assert not wants_channels_last(None, cnn, image, CPU)
    assert not wants_channels_last(None, mlp, image, CUDA)
    assert not wants_channels_last(True, mlp, vector, CPU)  # not images: nothing to reorder
    assert wants_channels_last(True, mlp, image, CPU)


def test_prefetching_keeps_order_passes_empty_shares_and_raises_the_gather_error():
    data = make_grouped(40, shape=(3,))
    feeder = Feeder(data, CPU, "prefetch", channels_last=False)
    items = [(torch.arange(i, i + 4), i) for i in range(0, 40, 4)] + [(None, "empty")]
    out = list(feeder.feed(items))
    assert [tag for _, tag in out] == [tag for _, tag in items]
    assert out[-1][0] is None
    for (positions, _), (batch, _) in zip(items[:-1], out[:-1], strict=True):
        assert torch.equal(batch.index, data.index[positions])

    def broken():
        yield torch.arange(4), 0
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        list(feeder.feed(broken()))


def test_a_training_loop_that_stops_early_stops_the_prefetching_thread():
    import threading

    data = make_grouped(400, shape=(3,))
    feeder = Feeder(data, CPU, "prefetch", channels_last=False)
    stream = feeder.feed((torch.arange(i, i + 4), i) for i in range(0, 400, 4))
    next(stream)
    stream.close()  # a diverged loss ends the epoch half-way
    assert not any(t.name == "stalwart-prefetch" for t in threading.enumerate())
    assert PREFETCH_DEPTH < 100  # the thread was ahead by at most this many batches
