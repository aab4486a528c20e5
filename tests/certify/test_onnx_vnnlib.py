"""ONNX import/export and VNN-LIB reading/writing on VNN-COMP-shaped fixtures."""

from __future__ import annotations

import gzip
import time

import numpy as np
import onnxruntime
import pytest
import torch
from torch import nn
from vnn_fixtures import (
    ACAS_PROP3,
    ACAS_PROP6,
    MIXED_2022,
    GraphBuilder,
    acas_onnx,
    conv_onnx,
    mnist_fc_onnx,
    mnist_fc_vnnlib,
    normalised_matmul_onnx,
    residual_onnx,
    tf_style_onnx,
    two_input_onnx,
    unsupported_onnx,
    weight_first_onnx,
)

from stalwart.certify.bounds import bound
from stalwart.certify.network import Conv, Normalize, from_module
from stalwart.certify.onnx_io import check_with_onnxruntime, load_onnx, save_onnx
from stalwart.certify.spec import LinfBall, OutputProperty
from stalwart.certify.vnnlib import (
    counterexample_text,
    parse_vnnlib,
    read_counterexample,
    read_result,
    robustness_vnnlib,
    write_result,
    write_vnnlib,
)
from stalwart.errors import ConfigError


def ort_outputs(path, x: np.ndarray) -> np.ndarray:
    """onnxruntime on a batch, one input at a time (fixtures have a batch of 1 or none)."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    info = session.get_inputs()[0]
    batched = len(info.shape) == x.ndim  # else the model takes one unbatched input
    outs = [session.run(None, {info.name: xi[None] if batched else xi})[0] for xi in x]
    return np.stack([o.reshape(-1) for o in outs])


def assert_agrees(path, net, shape, n=16, low=0.0, high=1.0):
    rng = np.random.default_rng(0)
    x = rng.uniform(low, high, size=(n, *shape)).astype(np.float32)
    ours = net(torch.from_numpy(x).to(net.layers[0].bias.dtype)).numpy()
    np.testing.assert_allclose(ours, ort_outputs(path, x), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------
# ONNX import


def test_mnist_fc_like_image_input(tmp_path):
    path = mnist_fc_onnx(tmp_path / "mnist.onnx", input_shape=(1, 1, 28, 28))
    net = load_onnx(path)
    assert net.input_shape == (1, 28, 28)
    assert net.hidden_sizes == [32, 16] and net.out_features == 10
    assert_agrees(path, net, (1, 28, 28))


def test_mnist_fc_like_flat_input(tmp_path):
    path = mnist_fc_onnx(tmp_path / "mnist.onnx", input_shape=(1, 784), widths=(20,))
    net = load_onnx(path)
    assert net.input_shape == (784,)
    assert net.hidden_sizes == [20]
    assert_agrees(path, net, (784,))


def test_matmul_add_with_sub_div_normalisation(tmp_path):
    path = normalised_matmul_onnx(tmp_path / "norm.onnx")
    net = load_onnx(path)
    # Symbolic batch dropped; normalisation and the final Mul compose into the two layers.
    assert net.input_shape == (1, 6, 6)
    assert len(net.layers) == 2
    assert_agrees(path, net, (1, 6, 6))
    # The saved model takes a whole batch in onnxruntime through our replay helper.
    x = np.random.default_rng(1).uniform(size=(5, 1, 6, 6)).astype(np.float32)
    np.testing.assert_allclose(
        check_with_onnxruntime(path, x), net(torch.from_numpy(x)).numpy(), atol=1e-5
    )


def test_conv_with_batchnorm_and_shape_reshape(tmp_path):
    path = conv_onnx(tmp_path / "conv.onnx")
    net = load_onnx(path)
    assert net.input_shape == (2, 8, 8)
    # BatchNorm folds into the convolution, which stays a convolution.
    assert isinstance(net.layers[0], Conv)
    assert net.layers[0].out_shape == (4, 4, 4)
    assert net.hidden_sizes == [64, 16]
    assert_agrees(path, net, (2, 8, 8), low=-1.0)


def test_acas_like_network(tmp_path):
    path = acas_onnx(tmp_path / "acas.onnx")
    net = load_onnx(path, dtype=torch.float64)
    assert net.input_shape == (1, 1, 5)
    assert net.hidden_sizes == [8] * 6 and net.out_features == 5
    assert net.layers[0].bias.dtype == torch.float64
    assert_agrees(path, net, (1, 1, 5), low=-0.5, high=0.5)


@pytest.mark.parametrize("nhwc", [True, False])
def test_tf_style_transpose_pad_avgpool_and_output_relu(tmp_path, nhwc):
    path = tf_style_onnx(tmp_path / "tf.onnx", nhwc=nhwc)
    net = load_onnx(path)
    shape = (6, 6, 2) if nhwc else (2, 6, 6)
    assert net.input_shape == shape
    # Conv, pool + Gemm, then the padded Gemm, then the identity after the output ReLU.
    assert net.hidden_sizes == [108, 5, 4] and net.out_features == 4
    if not nhwc:
        # The Pad node became the convolution's own padding.
        assert isinstance(net.layers[0], Conv) and net.layers[0].padding == (1, 1)
    assert_agrees(path, net, shape, low=-1.0)
    assert (net(torch.randn(8, *shape)) >= 0).all()


def test_a_relu_on_the_raw_input_is_kept_exactly(tmp_path):
    from vnn_fixtures import GraphBuilder

    g = GraphBuilder(seed=5)
    h = g.node("Relu", ["input"])
    h = g.node("Gemm", [h, g.random(4, 3), g.random(4, scale=0.1)], transB=1)
    h = g.node("Relu", [h])
    h = g.node("Gemm", [h, g.random(2, 4), g.random(2, scale=0.1)], transB=1)
    path = g.save(tmp_path / "relu_first.onnx", "input", [1, 3], h, [1, 2])
    net = load_onnx(path)
    # An identity layer before the first ReLU keeps the canonical form exact on any input.
    assert net.hidden_sizes == [3, 4]
    assert_agrees(path, net, (3,), low=-1.0)


def test_weight_times_activation_on_a_rank_one_input(tmp_path):
    path = weight_first_onnx(tmp_path / "small.onnx")
    net = load_onnx(path)
    assert net.input_shape == (3,) and net.hidden_sizes == [4]
    assert_agrees(path, net, (3,), low=-1.0)


def test_gzipped_onnx(tmp_path):
    path = acas_onnx(tmp_path / "acas.onnx")
    gz = tmp_path / "acas.onnx.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    x = torch.rand(3, 1, 1, 5)
    torch.testing.assert_close(load_onnx(gz)(x), load_onnx(path)(x))


@pytest.mark.parametrize("op", ["Sigmoid", "MaxPool"])
def test_unsupported_operator_is_named(tmp_path, op):
    path = unsupported_onnx(tmp_path / "bad.onnx", op)
    with pytest.raises(ConfigError, match=rf"{op.lower()}_\d+.*\({op}\).*not supported.*Gemm"):
        load_onnx(path)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ConfigError, match="nothere.onnx.*does not exist"):
        load_onnx(tmp_path / "nothere.onnx")
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage\xff\xfe not a protobuf" * 10)
    with pytest.raises(ConfigError, match="corrupt.onnx.*does not parse"):
        load_onnx(corrupt)


def test_non_sequential_graphs_are_rejected(tmp_path):
    with pytest.raises(ConfigError, match="2 graph inputs"):
        load_onnx(two_input_onnx(tmp_path / "two.onnx"))
    with pytest.raises(ConfigError, match="sequential"):
        load_onnx(residual_onnx(tmp_path / "res.onnx"))


def test_asymmetric_conv_pads_are_rejected(tmp_path):
    g = GraphBuilder()
    h = g.node("Conv", ["input", g.random(2, 1, 3, 3)], kernel_shape=[3, 3], pads=[0, 0, 1, 1])
    path = g.save(tmp_path / "pads.onnx", "input", [1, 1, 6, 6], h, [1, 2, 5, 5])
    with pytest.raises(ConfigError, match=r"asymmetric pads \[0, 0, 1, 1\]"):
        load_onnx(path)


# ------------------------------------------------------------------------------------------
# ONNX export


def torch_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        Normalize([0.5, 0.4], [0.2, 0.3]),
        nn.Conv2d(2, 3, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(3, 4, 3, stride=1, padding=0),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16, 6),
        nn.ReLU(),
        nn.Linear(6, 3),
    )


@pytest.mark.parametrize("batch_dim", [True, False])
def test_save_load_round_trip_and_onnxruntime(tmp_path, batch_dim):
    net = from_module(torch_model(), (2, 8, 8)).detach()
    path = save_onnx(net, tmp_path / "net.onnx", batch_dim=batch_dim)
    again = load_onnx(path)
    assert again.input_shape == net.input_shape
    assert again.hidden_sizes == net.hidden_sizes
    x = torch.rand(7, 2, 8, 8)
    torch.testing.assert_close(again(x), net(x), atol=1e-5, rtol=1e-5)
    if batch_dim:
        replay = check_with_onnxruntime(path, x)
    else:
        replay = np.stack([check_with_onnxruntime(path, xi) for xi in x])
    np.testing.assert_allclose(replay, net(x).numpy(), atol=1e-5, rtol=1e-5)


def test_save_keeps_an_elementwise_scale_layer(tmp_path):
    # A network whose first layer is a Scale (no composition partner before a ReLU).
    model = nn.Sequential(Normalize([0.1], [2.0]), nn.ReLU(), nn.Flatten(), nn.Linear(9, 2))
    net = from_module(model, (1, 3, 3)).detach()
    path = save_onnx(net, tmp_path / "scale.onnx")
    x = torch.randn(4, 1, 3, 3)
    np.testing.assert_allclose(check_with_onnxruntime(path, x), net(x).numpy(), atol=1e-6)
    torch.testing.assert_close(load_onnx(path)(x), net(x))


def test_replay_rejects_wrong_size(tmp_path):
    path = acas_onnx(tmp_path / "acas.onnx")
    with pytest.raises(ConfigError, match="5 numbers"):
        check_with_onnxruntime(path, np.zeros(6))


# ------------------------------------------------------------------------------------------
# VNN-LIB reading


def test_mnist_fc_style_property_is_fast_and_correct():
    x = np.random.default_rng(0).uniform(size=784)
    text = mnist_fc_vnnlib(x, eps=0.03, label=7)
    start = time.perf_counter()
    (inst,) = parse_vnnlib(text, n_inputs=784, n_outputs=10)
    seconds = time.perf_counter() - start
    assert seconds < 2.0
    expected = LinfBall(torch.tensor(x), 0.03)
    torch.testing.assert_close(inst.box.lower, expected.lower, atol=1e-15, rtol=0)
    torch.testing.assert_close(inst.box.upper, expected.upper, atol=1e-15, rtol=0)
    assert len(inst.prop.disjuncts) == 9
    y = torch.zeros(10, dtype=torch.float64)
    y[7] = 1.0
    assert not inst.prop.violated_by(y)
    y[3] = 1.5
    assert inst.prop.violated_by(y)
    y[3] = 1.0  # a tie is unsafe: (>= Y_3 Y_7)
    assert inst.prop.violated_by(y)
    # The (>= Y_j Y_label) rows are exactly our margin rows.
    C, d, _ = inst.prop.stacked()
    C_margin, _, _ = OutputProperty.margin(7, 10, dtype=torch.float64).stacked()
    torch.testing.assert_close(C, C_margin)
    assert (d == 0).all()


def test_loaded_net_and_property_run_through_a_bound(tmp_path):
    net = load_onnx(mnist_fc_onnx(tmp_path / "m.onnx", widths=(8,)))
    x = torch.rand(1, 28, 28)
    label = int(net(x).argmax())
    (inst,) = parse_vnnlib(
        robustness_vnnlib(x, 0.001, label, 10), n_inputs=net.in_features, n_outputs=10
    )
    result = bound("ibp", net, inst.box_for(net.input_shape), prop=inst.prop)
    assert result.lower.shape == (9,)
    # The rows are the margins y_label − y_j; at the centre they lie above the lower bounds.
    y = net(x)
    margins = torch.stack([y[label] - y[j] for j in range(10) if j != label])
    assert (result.lower <= margins + 1e-5).all()
    assert (result.lower > margins - 0.5).all()  # and a 0.001 ball keeps them close


def test_acas_prop3_conjunction():
    (inst,) = parse_vnnlib(ACAS_PROP3, n_inputs=5, n_outputs=5)
    assert inst.box.lower[0].item() == -0.30353115613746867
    assert inst.box.upper[2].item() == 0.4999999999999671
    assert len(inst.prop.disjuncts) == 1
    C, d = inst.prop.disjuncts[0]
    assert C.shape == (4, 5)
    # (<= Y_0 Y_j): unsafe when Y_0 − Y_j ≤ 0.
    torch.testing.assert_close(C[0], torch.tensor([1.0, -1, 0, 0, 0], dtype=torch.float64))
    assert inst.prop.violated_by(torch.tensor([0.0, 1, 2, 3, 4]))
    assert not inst.prop.violated_by(torch.tensor([2.0, 1, 3, 4, 5]))


def test_acas_prop6_disjunction_gives_two_boxes():
    instances = parse_vnnlib(ACAS_PROP6)
    assert len(instances) == 2
    assert instances[0].box.lower[1].item() == 0.11140846
    assert instances[1].box.upper[1].item() == -0.11140846
    for inst in instances:
        assert len(inst.prop.disjuncts) == 4
        assert inst.prop.violated_by(torch.tensor([1.0, 0, 2, 3, 4]))  # COC not minimal
        assert not inst.prop.violated_by(torch.tensor([0.0, 1, 2, 3, 4]))


def test_2022_mixed_disjuncts_group_by_box():
    instances = parse_vnnlib(MIXED_2022, n_inputs=2, n_outputs=3)
    assert len(instances) == 2
    first, second = instances
    torch.testing.assert_close(first.box.lower, torch.tensor([0.0, -0.1], dtype=torch.float64))
    torch.testing.assert_close(first.box.upper, torch.tensor([0.5, 0.15], dtype=torch.float64))
    torch.testing.assert_close(second.box.lower, torch.tensor([0.5, -0.1], dtype=torch.float64))
    # The first and third disjuncts share a box: one instance with two unsafe regions.
    assert len(first.prop.disjuncts) == 2 and len(second.prop.disjuncts) == 1
    y = torch.tensor
    assert first.prop.violated_by(y([2.0, 1.0, 0.0]))  # Y_0 ≥ Y_1 and Y_0 ≥ Y_2
    assert not first.prop.violated_by(y([2.0, 1.0, 3.0]))
    assert first.prop.violated_by(y([0.0, -4.0, 3.0]))  # Y_1 ≤ −3.5
    C, d = first.prop.disjuncts[1]
    torch.testing.assert_close(C, torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64))
    assert d.item() == 3.5
    assert second.prop.violated_by(y([0.0, 1.0, 1.0])) and not second.prop.violated_by(
        y([0.0, 1.0, 0.5])
    )


def test_linear_terms_numbers_and_strict_comparisons():
    text = """
    (declare-const X_0 Real) (declare-fun X_1 () Real)
    (declare-const Y_0 Real) (declare-const Y_1 Real)
    (assert (<= 0.1 X_0))          ; a lower bound written the other way round
    (assert (< X_0 (- 0.5 0.25)))  ; strict reads as non-strict: upper 0.25
    (assert (>= (* 2 X_1) -1e-1))  ; X_1 ≥ −0.05
    (assert (<= (* -4 X_1) (- 0.4)))  ; −4 X_1 ≤ −0.4: X_1 ≥ 0.1
    (assert (<= X_1 (/ 1 2)))
    (assert (> (+ Y_0 (* 3 Y_1) 1.5E0) (- Y_1 2)))
    """
    (inst,) = parse_vnnlib(text)
    torch.testing.assert_close(inst.box.lower, torch.tensor([0.1, 0.1], dtype=torch.float64))
    torch.testing.assert_close(inst.box.upper, torch.tensor([0.25, 0.5], dtype=torch.float64))
    # Unsafe: Y_0 + 3 Y_1 + 1.5 ≥ Y_1 − 2, i.e. −Y_0 − 2 Y_1 − 3.5 ≤ 0.
    C, d = inst.prop.disjuncts[0]
    torch.testing.assert_close(C, torch.tensor([[-1.0, -2.0]], dtype=torch.float64))
    assert d.item() == -3.5


def test_vnnlib_from_path_and_gz(tmp_path):
    path = tmp_path / "prop_3.vnnlib"
    path.write_text(ACAS_PROP3)
    gz = tmp_path / "prop_3.vnnlib.gz"
    gz.write_bytes(gzip.compress(ACAS_PROP3.encode()))
    (a,) = parse_vnnlib(path)
    (b,) = parse_vnnlib(str(gz))
    torch.testing.assert_close(a.box.lower, b.box.lower)
    with pytest.raises(ConfigError, match="missing.vnnlib.*does not exist"):
        parse_vnnlib(tmp_path / "missing.vnnlib")


DECLS = "(declare-const X_0 Real)\n(declare-const X_1 Real)\n(declare-const Y_0 Real)\n"
BOX = "(assert (>= X_0 0))\n(assert (<= X_0 1))\n(assert (>= X_1 0))\n(assert (<= X_1 1))\n"


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (DECLS + BOX + "(assert (<= Y_0 X_2))", r"line 8: undeclared variable 'X_2'"),
        (DECLS + BOX + "(assert (<= Y_0 Z))", r"line 8: unknown symbol 'Z'"),
        (DECLS + BOX + "(assert (<= Y_0 0)", r"line 8: unbalanced parentheses.*never closed"),
        (DECLS + BOX + "(assert (<= Y_0 0)))", r"line 8: unbalanced parentheses.*closes nothing"),
        (
            DECLS + "(assert (>= X_0 0))\n(assert (<= X_1 1))\n(assert (<= Y_0 0))",
            "X_1 has no lower",
        ),
        (
            DECLS + "(assert (<= X_0 1))\n(assert (<= X_1 1))\n(assert (<= Y_0 0))",
            "inputs X_0, X_1 have no lower",
        ),
        (
            DECLS
            + "(assert (>= X_0 0))\n(assert (>= X_1 0))\n(assert (<= X_1 1))(assert (<= Y_0 0))",
            "input X_0 has no upper",
        ),
        (
            DECLS + BOX + "(assert (>= X_1 2))\n(assert (<= Y_0 0))",
            r"line 8: input X_1 has lower bound 2\.0",
        ),
        (DECLS + BOX + "(assert (<= Y_0 X_0))", "line 8: .*mixing inputs X and outputs Y"),
        (DECLS + BOX + "(assert (<= (* X_0 X_1) 1))", r"line 8: nonlinear term \(\* …\)"),
        (DECLS + BOX + "(assert (<= (* Y_0 Y_0) 1))", "line 8: nonlinear"),
        (DECLS + BOX + "(assert (<= (+ X_0 X_1) 1))", "line 8: a linear constraint between inputs"),
        (DECLS + BOX + "(assert (not (<= Y_0 0)))", "line 8: unsupported connective 'not'"),
        (DECLS + BOX + "(push 1)", "line 8: unknown command 'push'"),
        (DECLS + BOX, "constrains no output"),
        ("", "empty"),
        ("; only a comment\n", "empty"),
        ("(declare-const X_1 Real)(declare-const Y_0 Real)", "X_0 is not declared"),
        ("(declare-const W_0 Real)", r"line 1: variable 'W_0'"),
        ("(declare-const X_0 Int)", "only Real"),
    ],
)
def test_vnnlib_errors(text, pattern):
    with pytest.raises(ConfigError, match=pattern):
        parse_vnnlib(text)


def test_vnnlib_counts_must_match_the_network():
    with pytest.raises(ConfigError, match=r"declares 5 inputs .* but the network has 6"):
        parse_vnnlib(ACAS_PROP3, n_inputs=6)
    with pytest.raises(ConfigError, match=r"declares 5 outputs .* but the network has 4"):
        parse_vnnlib(ACAS_PROP3, n_outputs=4)


def test_deeply_nested_or_and():
    # Nine disjuncts, each (and …) of a comparison nested inside several levels.
    inner = " ".join(f"(and (and (>= Y_{j} Y_0)))" for j in range(1, 10))
    text = _decls(3, 10) + _box(3) + f"(assert (and (or {inner}) (<= Y_0 100)))"
    (inst,) = parse_vnnlib(text)
    assert len(inst.prop.disjuncts) == 9
    assert all(len(C) == 2 for C, _ in inst.prop.disjuncts)


def _decls(n_in, n_out):
    return "".join(f"(declare-const X_{i} Real)\n" for i in range(n_in)) + "".join(
        f"(declare-const Y_{j} Real)\n" for j in range(n_out)
    )


def _box(n):
    return "".join(f"(assert (>= X_{i} -1))(assert (<= X_{i} 1))\n" for i in range(n))


# ------------------------------------------------------------------------------------------
# VNN-LIB writing, counterexamples, result files


def test_write_parse_round_trip(tmp_path):
    gen = torch.Generator().manual_seed(0)
    lower = torch.rand(6, generator=gen, dtype=torch.float64) / 3
    box = LinfBall(lower + 0.1, 0.1)
    C1 = torch.tensor([[0.3, -1.25e-7, 0.0, 2.0], [1.0, -1.0, 0.0, 0.0]], dtype=torch.float64)
    d1 = torch.tensor([0.1, 0.0], dtype=torch.float64)
    C2 = torch.tensor([[0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    d2 = torch.tensor([-1 / 3], dtype=torch.float64)
    prop = OutputProperty([(C1, d1), (C2, d2)])
    path = write_vnnlib(tmp_path / "p.vnnlib", box, prop, comment="round trip\nsecond line")
    (inst,) = parse_vnnlib(path, n_inputs=6, n_outputs=4)
    assert torch.equal(inst.box.lower, box.lower) and torch.equal(inst.box.upper, box.upper)
    assert len(inst.prop.disjuncts) == 2
    for (C, d), (C0, d0) in zip(inst.prop.disjuncts, prop.disjuncts, strict=True):
        assert torch.equal(C, C0) and torch.equal(d, d0)


def test_robustness_vnnlib_matches_margin_property():
    x = torch.tensor([0.0, 0.5, 0.99])
    text = robustness_vnnlib(x, 0.02, label=1, n_outputs=4)
    assert "(and (>= Y_0 Y_1))" in text
    (inst,) = parse_vnnlib(text, n_inputs=3, n_outputs=4)
    expected = LinfBall(x.double(), 0.02)
    torch.testing.assert_close(inst.box.lower, expected.lower)
    torch.testing.assert_close(inst.box.upper, expected.upper)
    assert inst.box.upper[2].item() == 1.0  # clipped
    C, _, _ = inst.prop.stacked()
    torch.testing.assert_close(C, OutputProperty.margin(1, 4, dtype=torch.float64).stacked()[0])


def test_result_file_with_counterexample_round_trips(tmp_path):
    x = np.array([0.1, 1 / 3, -2.5e-12, 0.7])
    y = torch.tensor([1 / 7, -3.0], dtype=torch.float64)
    path = write_result(tmp_path / "out.txt", "violated", x, y)
    text = path.read_text()
    lines = text.splitlines()
    assert lines[0] == "sat"
    assert lines[1] == "((X_0 0.1)" and lines[2] == f" (X_1 {1 / 3!r})"
    assert lines[-1] == " (Y_1 -3.0))"
    status, x2, y2 = read_result(path)
    assert status == "sat"
    assert np.array_equal(x2, x) and np.array_equal(y2, y.numpy())  # bit for bit
    xc, yc = read_counterexample(counterexample_text(x, y))
    assert np.array_equal(xc, x) and np.array_equal(yc, y.numpy())


@pytest.mark.parametrize(
    ("word", "written"),
    [("holds", "unsat"), ("unsat", "unsat"), ("timeout", "timeout"), ("unknown", "unknown")],
)
def test_result_statuses(tmp_path, word, written):
    path = write_result(tmp_path / "r.txt", word)
    assert path.read_text() == written + "\n"
    assert read_result(path) == (written, None, None)


def test_result_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown verification status 'proved'.*holds"):
        write_result(tmp_path / "r.txt", "proved")
    with pytest.raises(ConfigError, match="only goes with status 'sat'"):
        write_result(tmp_path / "r.txt", "unsat", np.zeros(2), np.zeros(2))
    with pytest.raises(ConfigError, match="both"):
        write_result(tmp_path / "r.txt", "sat", np.zeros(2))
    with pytest.raises(ConfigError, match="X values are not numbered"):
        read_counterexample("((X_0 1.0) (X_2 2.0) (Y_0 0.0))")
