"""Small hand-made ONNX networks and VNN-LIB texts shaped like the VNN-COMP benchmarks.

Not a test file: ``test_onnx_vnnlib.py`` imports it (pytest puts this folder on ``sys.path``).
The networks are built node by node with ``onnx.helper`` in the layouts the competition's
exporters produce (mnist_fc: Flatten/Gemm/Relu; ACAS Xu: a ``(1, 1, 1, 5)`` input; PyTorch's
``x.view(x.size(0), -1)`` as Shape/Gather/Unsqueeze/Concat/Reshape), small enough to be fast.
The VNN-LIB texts follow the files of stanleybak/vnncomp2021 and vnncomp2022_benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class GraphBuilder:
    """Collects nodes and initializers; names every tensor uniquely."""

    def __init__(self, seed: int = 0) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)
        self.count = 0

    def name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}_{self.count}"

    def const(self, value: np.ndarray, stem: str = "c") -> str:
        n = self.name(stem)
        # np.array, not ascontiguousarray: that would turn a scalar index into shape (1,).
        self.inits.append(numpy_helper.from_array(np.array(value), n))
        return n

    def random(self, *shape: int, scale: float | None = None) -> str:
        scale = scale if scale is not None else 1.0 / np.sqrt(shape[-1])
        return self.const((self.rng.standard_normal(shape) * scale).astype(np.float32), "w")

    def node(self, op: str, inputs: Sequence[str], n_outputs: int = 1, **attrs) -> str:
        outs = [self.name(op.lower()) for _ in range(n_outputs)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=outs[0], **attrs))
        return outs[0]

    def save(
        self,
        path: Path,
        input_name: str,
        input_shape: Sequence[int | str],
        output: str,
        output_shape: Sequence[int | str],
        opset: int = 13,
        extra_inputs: Sequence[str] = (),
    ) -> Path:
        inputs = [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, list(input_shape))
            for name in [input_name, *extra_inputs]
        ]
        graph = helper.make_graph(self.nodes, "fixture", inputs, [], initializer=self.inits)
        graph.output.append(
            helper.make_tensor_value_info(output, TensorProto.FLOAT, list(output_shape))
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 7
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
        return path


def mnist_fc_onnx(
    path: Path, input_shape: Sequence[int] = (1, 1, 28, 28), widths: Sequence[int] = (32, 16)
) -> Path:
    """An mnist-net_256x2-like MLP: Flatten, then Gemm (transB) and Relu, 10 logits."""
    g = GraphBuilder(seed=1)
    h = g.node("Flatten", ["input"], axis=1)
    n = int(np.prod(input_shape[1:]))
    for width in widths:
        h = g.node("Gemm", [h, g.random(width, n), g.random(width, scale=0.1)], transB=1)
        h = g.node("Relu", [h])
        n = width
    h = g.node("Gemm", [h, g.random(10, n), g.random(10, scale=0.1)], transB=1)
    return g.save(path, "input", input_shape, h, [1, 10])


def normalised_matmul_onnx(path: Path) -> Path:
    """``(x − mean) / std`` by Sub and Div, a Constant-node reshape, MatMul + Add layers."""
    g = GraphBuilder(seed=2)
    shape_node = g.node(
        "Constant", [], value=numpy_helper.from_array(np.array([-1, 36], np.int64), "s")
    )
    mean = g.const(np.array([[[0.1307]]], np.float32))  # broadcast over (1, 1, 6, 6)
    std = g.const(np.array([[[0.3081]]], np.float32))
    h = g.node("Sub", ["x", mean])
    h = g.node("Div", [h, std])
    h = g.node("Reshape", [h, shape_node])
    h = g.node("MatMul", [h, g.random(36, 12)])
    h = g.node("Add", [h, g.random(12, scale=0.1)])
    h = g.node("Relu", [h])
    h = g.node("MatMul", [h, g.random(12, 4)])
    h = g.node("Add", [g.random(4, scale=0.1), h])  # the bias first: Add commutes
    h = g.node("Mul", [h, g.const(np.float32(2.0))])
    return g.save(path, "x", ["batch", 1, 6, 6], h, ["batch", 4])


def conv_onnx(path: Path) -> Path:
    """Conv (stride 2, pad 1) + BatchNorm + Relu, a PyTorch-style view to flat, two Gemms."""
    g = GraphBuilder(seed=3)
    h = g.node(
        "Conv",
        ["input", g.random(4, 2, 3, 3, scale=0.3), g.random(4, scale=0.1)],
        strides=[2, 2],
        pads=[1, 1, 1, 1],
        kernel_shape=[3, 3],
    )
    bn = [
        g.const(np.array([1.5, 0.5, 1.0, 2.0], np.float32)),
        g.const(np.array([0.1, -0.2, 0.0, 0.3], np.float32)),
        g.const(np.array([0.05, 0.0, -0.1, 0.2], np.float32)),
        g.const(np.array([1.0, 0.5, 2.0, 0.25], np.float32)),
    ]
    h = g.node("BatchNormalization", [h, *bn], epsilon=1e-5)
    h = g.node("Relu", [h])
    # x.view(x.size(0), -1) as PyTorch exports it.
    shape = g.node("Shape", [h])
    batch = g.node("Gather", [shape, g.const(np.array(0, np.int64))], axis=0)
    batch = g.node("Unsqueeze", [batch, g.const(np.array([0], np.int64))])
    target = g.node("Concat", [batch, g.const(np.array([-1], np.int64))], axis=0)
    h = g.node("Reshape", [h, target])
    h = g.node("Gemm", [h, g.random(64, 16), g.random(16, scale=0.1)], transB=0, alpha=0.5)
    h = g.node("Relu", [h])
    h = g.node("Gemm", [h, g.random(3, 16), g.random(3, scale=0.1)], transB=1, beta=2.0)
    return g.save(path, "input", [1, 2, 8, 8], h, [1, 3])


def acas_onnx(path: Path, width: int = 8, depth: int = 6) -> Path:
    """An ACAS Xu-like net: input ``(1, 1, 1, 5)``, ``depth`` ReLU layers, 5 outputs."""
    g = GraphBuilder(seed=4)
    h = g.node("Flatten", ["input"], axis=1)
    n = 5
    for _ in range(depth):
        h = g.node("MatMul", [h, g.random(n, width)])
        h = g.node("Add", [h, g.random(width, scale=0.1)])
        h = g.node("Relu", [h])
        n = width
    h = g.node("Gemm", [h, g.random(5, n), g.random(5, scale=0.1)], transB=1)
    return g.save(path, "input", [1, 1, 1, 5], h, [1, 5])


def unsupported_onnx(path: Path, op: str) -> Path:
    """A net with one unsupported operator (``Sigmoid`` or ``MaxPool``) in the middle."""
    g = GraphBuilder(seed=5)
    if op == "MaxPool":
        h = g.node("Conv", ["input", g.random(2, 1, 3, 3)], kernel_shape=[3, 3])
        h = g.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
        h = g.node("Flatten", [h], axis=1)
        h = g.node("Gemm", [h, g.random(3, 2 * 2 * 2), g.random(3)], transB=1)
        return g.save(path, "input", [1, 1, 6, 6], h, [1, 3])
    h = g.node("Flatten", ["input"], axis=1)
    h = g.node("Gemm", [h, g.random(4, 36), g.random(4)], transB=1)
    h = g.node(op, [h])
    h = g.node("Gemm", [h, g.random(3, 4), g.random(3)], transB=1)
    return g.save(path, "input", [1, 1, 6, 6], h, [1, 3])


def residual_onnx(path: Path) -> Path:
    """A skip connection (two input-dependent tensors added): not a sequential network."""
    g = GraphBuilder(seed=6)
    a = g.node("Gemm", ["input", g.random(4, 4), g.random(4)], transB=1)
    r = g.node("Relu", [a])
    h = g.node("Add", [r, "input"])
    return g.save(path, "input", [1, 4], h, [1, 4])


def two_input_onnx(path: Path) -> Path:
    """A graph with two inputs."""
    g = GraphBuilder(seed=7)
    h = g.node("Add", ["input", "other"])
    return g.save(path, "input", [1, 4], h, [1, 4], extra_inputs=["other"])


# ------------------------------------------------------------------------------------------
# VNN-LIB texts


def mnist_fc_vnnlib(x: np.ndarray, eps: float, label: int, n_outputs: int = 10) -> str:
    """The layout of mnist_fc's prop_*.vnnlib: bounds clipped to [0, 1], then one (or …)."""
    lines = [f"; Mnist property with label: {label}.", ""]
    lines += [f"(declare-const X_{i} Real)" for i in range(len(x))]
    lines += [""] + [f"(declare-const Y_{j} Real)" for j in range(n_outputs)]
    lines += ["", "; Input constraints:"]
    for i, v in enumerate(x):
        lines.append(f"(assert (<= X_{i} {min(1.0, v + eps):.18f}))")
        lines.append(f"(assert (>= X_{i} {max(0.0, v - eps):.18f}))")
    lines += ["", "; Output constraints:", "(assert (or"]
    lines += [f"    (and (>= Y_{j} Y_{label}))" for j in range(n_outputs) if j != label]
    lines.append("))")
    return "\n".join(lines) + "\n"


def _declare(n_inputs: int, n_outputs: int) -> str:
    xs = "\n".join(f"(declare-const X_{i} Real)" for i in range(n_inputs))
    ys = "\n".join(f"(declare-const Y_{j} Real)" for j in range(n_outputs))
    return f"{xs}\n\n{ys}\n"


# ACAS Xu property 3 layout: a conjunction of bounds, unsafe when COC (Y_0) is minimal.
ACAS_PROP3 = (
    "; ACAS Xu property 3\n\n"
    + _declare(5, 5)
    + """
; Unscaled Input 0: (1500, 1800)
(assert (<= X_0 -0.29855281193475053))
(assert (>= X_0 -0.30353115613746867))
(assert (<= X_1 0.009549296585513092))
(assert (>= X_1 -0.009549296585513092))
(assert (<= X_2 0.4999999999999671))
(assert (>= X_2 0.4933803235848431))
(assert (<= X_3 0.5))
(assert (>= X_3 0.3))
(assert (<= X_4 0.5))
(assert (>= X_4 0.3))

; Unsafe if COC is minimal
(assert (<= Y_0 Y_1))
(assert (<= Y_0 Y_2))
(assert (<= Y_0 Y_3))
(assert (<= Y_0 Y_4))
"""
)

# ACAS Xu property 6 layout: two input boxes in one (or …), and an (or …) over outputs.
ACAS_PROP6 = (
    "; ACAS Xu property 6\n"
    + _declare(5, 5)
    + """
(assert (or
    (and (<= X_0 0.700434925) (>= X_0 -0.129289109) (<= X_1 0.499999896) (>= X_1 0.11140846)
         (<= X_2 -0.499204121) (>= X_2 -0.499999896) (<= X_3 0.5) (>= X_3 -0.5)
         (<= X_4 0.5) (>= X_4 -0.5))
    (and (<= X_0 0.700434925) (>= X_0 -0.129289109) (<= X_1 -0.11140846) (>= X_1 -0.499999896)
         (<= X_2 -0.499204121) (>= X_2 -0.499999896) (<= X_3 0.5) (>= X_3 -0.5)
         (<= X_4 0.5) (>= X_4 -0.5))
))

; unsafe if coc is not minimal
(assert (or
     (<= Y_1 Y_0)
     (<= Y_2 Y_0)
     (<= Y_3 Y_0)
     (<= Y_4 Y_0)
))
"""
)

# The VNN-COMP 2022 layout where each disjunct carries its own input box and output rows.
MIXED_2022 = (
    _declare(2, 3)
    + """
(assert (or
    (and (>= X_0 0.0) (<= X_0 0.5) (>= X_1 -1e-1) (<= X_1 1.5E-1) (>= Y_0 Y_1) (>= Y_0 Y_2))
    (and (>= X_0 0.5) (<= X_0 1.0) (>= X_1 -0.1) (<= X_1 0.15) (>= Y_2 Y_1))
    (and (>= X_0 0.0) (<= X_0 0.5) (>= X_1 -0.1) (<= X_1 0.15) (<= Y_1 -3.5))
))
"""
)


def tf_style_onnx(path: Path, nhwc: bool = True) -> Path:
    """TensorFlow-export layout: NHWC input transposed, Pad + Conv, AveragePool, a padded
    flat layer with a non-zero fill, and a ReLU on the outputs (as some ERAN nets have)."""
    g = GraphBuilder(seed=8)
    h = "input"
    if nhwc:
        h = g.node("Transpose", [h], perm=[0, 3, 1, 2])
    h = g.node("Pad", [h, g.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))])
    h = g.node("Conv", [h, g.random(3, 2, 3, 3, scale=0.3), g.random(3)], kernel_shape=[3, 3])
    h = g.node("Relu", [h])
    h = g.node("AveragePool", [h], kernel_shape=[2, 2], strides=[2, 2])
    if nhwc:
        h = g.node("Transpose", [h], perm=[0, 2, 3, 1])
    h = g.node("Reshape", [h, g.const(np.array([1, -1], np.int64))])
    h = g.node("Gemm", [h, g.random(5, 27), g.random(5)], transB=1)
    h = g.node("Relu", [h])
    fill = g.const(np.array(0.5, np.float32))
    h = g.node("Pad", [h, g.const(np.array([0, 1, 0, 2], np.int64)), fill])
    h = g.node("Gemm", [h, g.random(4, 8), g.random(4)], transB=1)
    h = g.node("Relu", [h])
    shape = [1, 6, 6, 2] if nhwc else [1, 2, 6, 6]
    return g.save(path, "input", shape, h, [1, 4])


def weight_first_onnx(path: Path) -> Path:
    """The layout of VNN-COMP's test_small.onnx: a rank-1 input and ``W @ x`` products."""
    g = GraphBuilder(seed=9)
    h = g.node("MatMul", [g.random(4, 3), "input"])
    h = g.node("Add", [h, g.random(4)])
    h = g.node("Relu", [h])
    h = g.node("MatMul", [g.random(2, 4), h])
    return g.save(path, "input", [3], h, [2])
