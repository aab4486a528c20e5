"""Converting PyTorch models (issue 9, item 18): every supported module gives the same outputs
as the model, adjoint products are right, and a module that cannot be converted is named with
its position and the reason."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stalwart.certify import Box, Conv, Dense, OutputProperty, bound, from_module
from stalwart.certify.complete import milp_optimum
from stalwart.errors import ConfigError

F64 = torch.float64


def with_statistics(model: nn.Module, shape) -> nn.Module:
    """Give batch norms non-trivial running statistics, then switch to eval mode."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g, dtype=F64))
            m.running_var.copy_(torch.rand(m.num_features, generator=g, dtype=F64) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g, dtype=F64))
    return model.eval()


MODELS = {
    "relu_first_and_last": (lambda: nn.Sequential(nn.ReLU(), nn.Linear(5, 4), nn.ReLU()), (5,)),
    "no_hidden_layer": (lambda: nn.Sequential(nn.Linear(5, 3)), (5,)),
    "padding_same_odd": (lambda: nn.Sequential(nn.Conv2d(2, 3, 3, padding="same"), nn.ReLU(),
                                               nn.Flatten(), nn.Linear(75, 2)), (2, 5, 5)),
    "padding_same_even": (lambda: nn.Sequential(nn.Conv2d(2, 3, (2, 4), padding="same"),
                                                nn.ReLU(), nn.Flatten(), nn.Linear(75, 2)),
                          (2, 5, 5)),
    "dilation": (lambda: nn.Sequential(nn.Conv2d(2, 3, 3, dilation=2, padding=1), nn.ReLU(),
                                       nn.Flatten(), nn.Linear(27, 2)), (2, 5, 5)),
    "groups_and_stride": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, groups=2, stride=2),
                                                nn.ReLU(), nn.Flatten(), nn.Linear(16, 2)),
                          (2, 5, 5)),
    "batchnorm2d_avgpool": (lambda: nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2),
                                                  nn.ReLU(), nn.AvgPool2d(2, stride=1, padding=1),
                                                  nn.Flatten(), nn.Linear(32, 2)), (1, 5, 5)),
    "batchnorm1d": (lambda: nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(),
                                          nn.Linear(6, 2)), (4,)),
    "batchnorm1d_channels": (lambda: nn.Sequential(nn.BatchNorm1d(2), nn.Flatten(),
                                                   nn.Linear(6, 3), nn.ReLU(), nn.Linear(3, 2)),
                             (2, 3)),
    "unflatten": (lambda: nn.Sequential(nn.Linear(8, 18), nn.ReLU(), nn.Unflatten(1, (2, 3, 3)),
                                        nn.Conv2d(2, 2, 2), nn.ReLU(), nn.Flatten(),
                                        nn.Linear(8, 2)), (8,)),
}  # fmt: skip


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # PyTorch's note on even kernels
@pytest.mark.parametrize("name", list(MODELS))
def test_converted_network_matches_the_model(name):
    make, shape = MODELS[name]
    torch.manual_seed(1)
    model = with_statistics(make().to(F64), shape)
    net = from_module(model, shape)
    x = torch.rand(7, *shape, dtype=F64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x))
    for layer in net.layers:
        a = torch.randn(3, layer.in_features, dtype=F64)
        b = torch.randn(3, layer.out_features, dtype=F64)
        # backward is the transpose of the linear part; abs_backward of |W|.
        torch.testing.assert_close((layer.linear(a) * b).sum(), (a * layer.backward(b)).sum())
        torch.testing.assert_close(layer.abs_backward(b.abs()),
                                   b.abs() @ layer.dense_weight().abs())  # fmt: skip
    # And bounds are sound on it: none above the exact minimum of the margins.
    box = Box(x[0] - 0.1, x[0] + 0.1)
    label = int(net(x[0]).argmax())
    prop = OutputProperty.margin(label, net.out_features, dtype=F64)
    C, d, _ = prop.stacked()
    exact = milp_optimum(net, box.lower, box.upper, C, d)
    for method in ("ibp", "crown", "lp"):
        assert (bound(method, net, box, prop=prop).lower <= exact + 1e-7).all(), method


def test_convolutions_stay_convolutions():
    model = with_statistics(nn.Sequential(nn.Conv2d(1, 2, 3, padding="same"), nn.BatchNorm2d(2),
                                          nn.ReLU(), nn.AvgPool2d(2), nn.ReLU(), nn.Flatten(),
                                          nn.Linear(8, 2)).to(F64), (1, 4, 4))  # fmt: skip
    net = from_module(model, (1, 4, 4))
    # The batch norm folds into the convolution before it; the pooling is a grouped conv.
    assert [type(layer).__name__ for layer in net.layers] == ["Conv", "Conv", "Dense"]
    pool = net.layers[1]
    assert isinstance(pool, Conv) and pool.groups == 2 and pool.stride == (2, 2)


@pytest.mark.parametrize(
    ("model", "shape", "mentions"),
    [
        (nn.Sequential(nn.Linear(3, 4), nn.Tanh()), (3,), ["layer 1 (Tanh)", "supported:"]),
        (nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4).train()), (3,),
         ["layer 1 (BatchNorm1d)", "training mode", "model.eval()"]),
        (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")), (1, 4, 4),
         ["layer 0 (Conv2d)", "padding_mode 'reflect'"]),
        (nn.Sequential(nn.Conv2d(1, 2, 3)), (4,), ["layer 0 (Conv2d)", "(C, H, W)", "(4,)"]),
        (nn.Sequential(nn.Conv2d(1, 2, 5)), (1, 3, 3),
         ["layer 0 (Conv2d)", "kernel 5x5", "does not fit"]),
        (nn.Sequential(nn.AvgPool2d(2, padding=1, count_include_pad=False)), (1, 4, 4),
         ["layer 0 (AvgPool2d)", "count_include_pad"]),
        (nn.Sequential(nn.AvgPool2d(2, ceil_mode=True)), (1, 5, 5),
         ["layer 0 (AvgPool2d)", "ceil_mode"]),
        (nn.Sequential(nn.Linear(3, 2)), (2, 3), ["layer 0 (Linear)", "nn.Flatten"]),
        (nn.Sequential(nn.Sequential(nn.Linear(3, 3)), nn.Sequential(nn.ReLU(), nn.GELU())), (3,),
         ["layer 1.1 (GELU)"]),
    ],
)  # fmt: skip
def test_unsupported_modules_are_named_with_the_reason(model, shape, mentions):
    with pytest.raises(ConfigError) as error:
        from_module(model, shape)
    for text in mentions:
        assert text in str(error.value), (text, str(error.value))


def test_a_dense_backward_pass_over_each_boxs_support_equals_the_full_product():
    # CROWN's rows are zero on inactive units; a dense layer skips them box by box.
    g = torch.Generator().manual_seed(0)
    layer = Dense(torch.randn(40, 9, generator=g, dtype=torch.float64),
                  torch.randn(40, generator=g, dtype=torch.float64))  # fmt: skip
    for share in (0.1, 0.5, 0.9):  # the last is past the share where skipping pays
        support = torch.rand(4, 40, generator=g) < share
        support[0] = False  # a box with no support at all
        y = torch.randn(4, 64, 40, generator=g, dtype=torch.float64) * support.unsqueeze(1)
        torch.testing.assert_close(layer.backward_on(y, support), layer.backward(y),
                                   rtol=0, atol=1e-12)  # fmt: skip
