"""Read and write feed-forward ReLU networks as ONNX files, the network format of VNN-COMP.

VNN-COMP (Brix et al., "The Fourth International Verification of Neural Networks Competition",
arXiv:2301.05815) hands every verifier a network as an ONNX file and a property as a VNN-LIB
file. :func:`load_onnx` turns such a file into our canonical :class:`Network`, so every bound
in :mod:`stalwart.certify` can run on competition benchmarks; :func:`save_onnx` writes a
network back out, so other verifiers (and onnxruntime) can check what we certify.

The ONNX graph is read as data, never run: we walk its nodes in topological order along the
one tensor that depends on the input, turn each supported operator into an affine map or a
ReLU, and fold everything that depends only on constants (initializers, ``Constant`` nodes,
shape arithmetic) with ONNX's reference evaluator. Reshapes and flattens are free, since our
networks already act on flattened inputs; we only track the current shape so that a later
convolution or broadcast constant knows how to read the flat vector.

``onnx`` and ``onnxruntime`` are optional: install them with ``pip install 'stalwart[verify]'``.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stalwart.certify.network import Affine, Conv, Dense, Network, Scale, from_ops
from stalwart.errors import ConfigError
from stalwart.io import atomic_write_bytes

SUPPORTED_OPS = (
    "Add",
    "AveragePool",
    "BatchNormalization",
    "Constant",
    "Conv",
    "Div",
    "Dropout",
    "Flatten",
    "Gemm",
    "Identity",
    "MatMul",
    "Mul",
    "Pad",
    "Relu",
    "Reshape",
    "Shape",
    "Squeeze",
    "Sub",
    "Transpose",
    "Unsqueeze",
)

INSTALL_HINT = "install it with: pip install 'stalwart[verify]'"

# The opset the files we write declare; 13 is read by every tool in VNN-COMP 2022 and later.
SAVE_OPSET = 13


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as error:  # pragma: no cover - the test setup installs onnx
        raise ConfigError(
            f"reading or writing ONNX files needs the onnx package; {INSTALL_HINT}"
        ) from error
    return onnx


def _read_model(path: Path) -> Any:
    """Parse an ONNX file (gzipped when its name ends in ``.gz``, as in VNN-COMP 2022)."""
    onnx = _import_onnx()
    if not path.is_file():
        raise ConfigError(f"ONNX file {str(path)!r} does not exist")
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return onnx.load_from_string(data)
    except Exception as error:  # protobuf raises its own DecodeError and friends
        raise ConfigError(
            f"ONNX file {str(path)!r} does not parse as an ONNX model: "
            f"{type(error).__name__}: {error}"
        ) from error


# --------------------------------------------------------------------------------------------
# Reading


@dataclass
class _ConvOp:
    """A convolution kept as its parts until the end, so a later per-channel scale folds in."""

    weight: np.ndarray
    bias: np.ndarray
    in_shape: tuple[int, int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]

    def out_shape(self) -> tuple[int, int, int]:
        _, h, w = self.in_shape
        kh, kw = self.weight.shape[2:]
        oh = (h + 2 * self.padding[0] - kh) // self.stride[0] + 1
        ow = (w + 2 * self.padding[1] - kw) // self.stride[1] + 1
        return (self.weight.shape[0], oh, ow)


@dataclass
class _ScaleOp:
    scale: np.ndarray
    bias: np.ndarray


@dataclass
class _DenseOp:
    weight: np.ndarray
    bias: np.ndarray


_Op = _ConvOp | _ScaleOp | _DenseOp | str


class _GraphReader:
    """Walks one ONNX graph along its input-dependent tensor, collecting affine ops and ReLUs."""

    def __init__(self, model: Any, path: Path) -> None:
        self.onnx = _import_onnx()
        self.graph = model.graph
        self.where = f"ONNX file {str(path)!r}"
        self.consts: dict[str, np.ndarray] = {}
        self.ops: list[_Op] = []
        # A permutation of the activation not yet applied: the true activation is
        # ``h[perm]`` where ``h`` is what ``ops`` compute. It commutes with ReLUs and folds into
        # the next dense layer's columns, so Transposes (TensorFlow's NHWC <-> NCHW) stay free.
        self.perm: np.ndarray | None = None
        # Zero padding of H and W from a Pad node (shape before it, (ph, pw)), waiting to be
        # merged into the pads of the convolution or pooling that follows.
        self.pad: tuple[tuple[int, ...], tuple[int, int]] | None = None
        self.opset = next(
            (o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), SAVE_OPSET
        )
        numpy_helper = self.onnx.numpy_helper
        for init in self.graph.initializer:
            self.consts[init.name] = numpy_helper.to_array(init)
        # Old exporters also list initializers among the graph inputs; the real input is the rest.
        inputs = [i for i in self.graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise ConfigError(
                f"{self.where} has {len(inputs)} graph inputs "
                f"({', '.join(i.name for i in inputs) or 'none'}); only networks with exactly "
                "one input tensor are supported"
            )
        if len(self.graph.output) != 1:
            raise ConfigError(
                f"{self.where} has {len(self.graph.output)} graph outputs; only networks with "
                "exactly one output tensor are supported"
            )
        self.current = inputs[0].name
        self.shape, self.batched = self._input_shape(inputs[0])
        self.input_shape = self.shape[1:] if self.batched else self.shape

    def _input_shape(self, value_info: Any) -> tuple[tuple[int, ...], bool]:
        """The full shape with a batch of one, and whether its leading dimension is a batch."""
        tensor_type = value_info.type.tensor_type
        if not tensor_type.HasField("shape"):
            raise ConfigError(f"{self.where}: the input {value_info.name!r} declares no shape")
        dims: list[int | None] = [
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in tensor_type.shape.dim
        ]
        if not dims:
            raise ConfigError(f"{self.where}: the input {value_info.name!r} is a scalar")
        batched = len(dims) > 1 and dims[0] in (None, 1)
        body = dims[1:] if batched else dims
        if any(d is None for d in body):
            raise ConfigError(
                f"{self.where}: the input {value_info.name!r} has shape "
                f"{[d if d is not None else '?' for d in dims]}; only the leading batch "
                "dimension may be symbolic"
            )
        full = ((1,) if batched else ()) + tuple(int(d) for d in body)  # type: ignore[arg-type]
        return full, batched

    # -- helpers ------------------------------------------------------------------------------

    def _fail(self, node: Any, why: str) -> ConfigError:
        return ConfigError(
            f"{self.where}: node {node.name or '(unnamed)'!r} ({node.op_type}): {why}"
        )

    def _attrs(self, node: Any) -> dict[str, Any]:
        helper = self.onnx.helper
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def _split_inputs(self, node: Any) -> tuple[list[int], list[np.ndarray | None]]:
        """Which inputs carry the activation, and the constant value of every other input."""
        dynamic, values = [], []
        for k, name in enumerate(node.input):
            if name == "":
                values.append(None)
            elif name in self.consts:
                values.append(self.consts[name])
            else:
                dynamic.append(k)
                values.append(None)
                if name != self.current:
                    raise self._fail(
                        node,
                        f"reads tensor {name!r}, which is not the output of the previous layer; "
                        "only sequential networks (one path from input to output, no skip "
                        "connections) are supported",
                    )
        return dynamic, values

    def _fold_constant(self, node: Any) -> None:
        """Evaluate a node whose inputs are all constants with ONNX's reference evaluator."""
        if node.op_type == "Constant":
            out = self.onnx.helper.get_attribute_value(node.attribute[0])
            value = (
                self.onnx.numpy_helper.to_array(out) if hasattr(out, "dims") else np.asarray(out)
            )
            self.consts[node.output[0]] = value
            return
        from onnx.reference import ReferenceEvaluator

        try:
            feeds = {name: self.consts[name] for name in node.input if name}
            results = ReferenceEvaluator(node).run(None, feeds)
        except Exception as error:
            raise self._fail(node, f"could not fold this constant expression: {error}") from error
        for name, value in zip(node.output, results, strict=False):
            self.consts[name] = np.asarray(value)

    def _flat(self, value: np.ndarray, node: Any) -> np.ndarray:
        """A constant broadcast against the current shape, as a flat per-element vector."""
        try:
            full = np.broadcast_to(value.astype(np.float64), self.shape)
        except ValueError as error:
            raise self._fail(
                node, f"constant of shape {value.shape} does not broadcast to {self.shape}"
            ) from error
        return full.reshape(-1).copy()

    def _emit(self, op: _Op) -> None:
        idx = self.perm
        if idx is not None and isinstance(op, _ScaleOp):
            # s ⊙ (P h) + b = P (s' ⊙ h + b') with s'[idx] = s: the permutation stays pending.
            scale, bias = np.empty_like(op.scale), np.empty_like(op.bias)
            scale[idx], bias[idx] = op.scale, op.bias
            op = _ScaleOp(scale, bias)
        elif idx is not None and isinstance(op, _DenseOp):
            weight = np.empty_like(op.weight)
            weight[:, idx] = op.weight
            op, self.perm = _DenseOp(weight, op.bias), None
        elif idx is not None:
            self._flush_perm()
        self._append(op)

    def _flush_perm(self) -> None:
        if self.perm is not None:
            n = len(self.perm)
            self._append(_DenseOp(np.eye(n)[self.perm], np.zeros(n)))
            self.perm = None

    def _append(self, op: _Op) -> None:
        last = self.ops[-1] if self.ops else None
        # A per-channel scale after a convolution (BatchNorm, a bias Add) stays a convolution.
        if isinstance(op, _ScaleOp) and isinstance(last, _ConvOp):
            c, h, w = last.out_shape()
            s, b = op.scale.reshape(c, h * w), op.bias.reshape(c, h * w)
            if (s == s[:, :1]).all() and (b == b[:, :1]).all():
                last.weight = last.weight * s[:, 0].reshape(c, 1, 1, 1)
                last.bias = last.bias * s[:, 0] + b[:, 0]
                return
        self.ops.append(op)

    def _n(self) -> int:
        return math.prod(self.shape)

    # -- the walk -----------------------------------------------------------------------------

    def read(self) -> None:
        for node in self._topological_nodes():
            if node.domain not in ("", "ai.onnx"):
                raise self._fail(node, f"operators of domain {node.domain!r} are not supported")
            if all(name == "" or name in self.consts for name in node.input):
                self._fold_constant(node)
                continue
            if node.op_type == "Shape" and list(node.input) == [self.current]:
                # The shape of the activation is known (batch of one): a constant, and the
                # chain of layers goes on from the same tensor.
                attrs = self._attrs(node)
                start, end = attrs.get("start", 0), attrs.get("end", len(self.shape))
                self.consts[node.output[0]] = np.array(self.shape[start:end], dtype=np.int64)
                continue
            handler = getattr(self, f"_op_{node.op_type}", None)
            if handler is None:
                raise self._fail(
                    node,
                    f"operator {node.op_type!r} is not supported; supported operators: "
                    f"{', '.join(SUPPORTED_OPS)}",
                )
            if node.op_type not in ("Conv", "AveragePool", "Pad"):
                self._flush_pad()
            dynamic, values = self._split_inputs(node)
            if len(dynamic) != 1:
                raise self._fail(node, "combines two input-dependent tensors (not sequential)")
            handler(node, dynamic[0], values)
            self.current = node.output[0]
        self._flush_pad()
        self._flush_perm()
        output = self.graph.output[0].name
        if output != self.current:
            raise ConfigError(
                f"{self.where}: the graph output {output!r} is not the end of the chain of "
                f"layers from the input (which ends at {self.current!r})"
            )
        if not self.ops:
            raise ConfigError(f"{self.where}: the network has no affine layer")

    def _topological_nodes(self) -> list[Any]:
        """Nodes in an order where every input is produced before it is read."""
        nodes = list(self.graph.node)
        known = set(self.consts) | {i.name for i in self.graph.input} | {""}
        ordered: list[Any] = []
        while nodes:
            ready = [n for n in nodes if all(name in known for name in n.input)]
            if not ready:
                missing = sorted({x for n in nodes for x in n.input if x not in known})
                raise ConfigError(
                    f"{self.where}: the graph reads tensors nothing produces: {missing[:5]}"
                )
            ready_ids = {id(n) for n in ready}
            nodes = [n for n in nodes if id(n) not in ready_ids]
            ordered.extend(ready)
            for n in ready:
                known.update(n.output)
        return ordered

    def _op_Relu(self, node: Any, k: int, values: list) -> None:  # noqa: N802
        self.ops.append("relu")

    def _op_Identity(self, node: Any, k: int, values: list) -> None:  # noqa: N802
        pass

    def _op_Dropout(self, node: Any, k: int, values: list) -> None:  # noqa: N802
        # Inference mode: dropout is the identity; a mask output, if any, must go unused.
        if k != 0:
            raise self._fail(node, "dropout of a constant by an input-dependent ratio")

    def _op_Flatten(self, node: Any, k: int, values: list) -> None:  # noqa: N802
        axis = self._attrs(node).get("axis", 1)
        axis = axis + len(self.shape) if axis < 0 else axis
        self.shape = (math.prod(self.shape[:axis]), math.prod(self.shape[axis:]))

    def _op_Reshape(self, node: Any, k: int, values: list) -> None:  # noqa: N802
        target = [int(t) for t in np.asarray(values[1]).reshape(-1)]
        allowzero = self._attrs(node).get("allowzero", 0)
        shape = [
            self.shape[i] if t == 0 and not allowzero and i < len(self.shape) else t
            for i, t in enumerate(target)
        ]
        if shape.count(-1) > 1:
            raise self._fail(node, f"reshape target {target} has more than one -1")
        if -1 in shape:
            known = math.prod(s for s in shape if s != -1)
            shape[shape.index(-1)] = self._n() // known if known else 0
        if math.prod(shape) != self._n():
            raise self._fail(node, f"cannot reshape {self.shape} to {target}")
        self.shape = tuple(shape)

    def _axes(self, node: Any, values: list) -> list[int] | None:
        if len(values) > 1 and values[1] is not None:
            return [int(a) for a in np.asarray(values[1]).reshape(-1)]
        axes = self._attrs(node).get("axes")
        return list(axes) if axes is not None else None

    def _op_Squeeze(self, node: Any, k: int, values: list) -> None:  # noqa: N802
        axes = self._axes(node, values)
        rank = len(self.shape)
        drop = {a % rank for a in axes} if axes else {i for i, s in enumerate(self.shape) if s == 1}
        self.shape = tuple(s for i, s in enumerate(self.shape) if i not in drop)

    def _op_Unsqueeze(self, node: Any, k: int, values: list) -> None:  # noqa: N802
        axes = self._axes(node, values) or []
        rank = len(self.shape) + len(axes)
        shape = list(self.shape)
        for a in sorted(a % rank for a in axes):
            shape.insert(a, 1)
        self.shape = tuple(shape)

    def _op_Gemm(self, node: Any, k: int, values: list) -> None:  # noqa: N802
        attrs = self._attrs(node)
        if k != 0 or attrs.get("transA", 0):
            raise self._fail(node, "only Gemm with the activation as A and transA = 0 is supported")
        if len(self.shape) != 2 or self.shape[0] != 1:
            raise self._fail(node, f"Gemm needs a (1, n) activation; it has shape {self.shape}")
        b = values[1].astype(np.float64)
        b = b.T if attrs.get("transB", 0) else b  # now (in, out)
        alpha, beta = attrs.get("alpha", 1.0), attrs.get("beta", 1.0)
        out = b.shape[1]
        bias = np.zeros(out)
        if len(values) > 2 and values[2] is not None:
            bias = beta * np.broadcast_to(values[2].astype(np.float64), (1, out)).reshape(out)
        self._dense(node, alpha * b.T, bias)
        self.shape = (1, out)

    def _op_Transpose(self, node: Any, k: int, values: list) -> None:  # noqa: N802
        rank = len(self.shape)
        perm = list(self._attrs(node).get("perm", range(rank - 1, -1, -1)))
        # Output position j reads input position order[j] (batch of one: any perm is exact).
        order = np.arange(self._n()).reshape(self.shape).transpose(perm).reshape(-1)
        self.perm = order if self.perm is None else self.perm[order]
        self.shape = tuple(self.shape[p] for p in perm)

    def _op_Pad(self, node: Any, k: int, values: list) -> None:  # noqa: N802
        attrs = self._attrs(node)
        mode = attrs.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        pads = values[1] if len(values) > 1 and values[1] is not None else attrs.get("pads")
        fill = values[2] if len(values) > 2 and values[2] is not None else attrs.get("value", 0.0)
        fill = float(np.asarray(fill))
        if mode != "constant" or pads is None or (len(values) > 3 and values[3] is not None):
            raise self._fail(node, "only constant-mode Pad over all axes is supported")
        pads = [int(p) for p in np.asarray(pads).reshape(-1)]
        rank = len(self.shape)
        if len(pads) != 2 * rank or min(pads) < 0:
            raise self._fail(node, f"pads {pads} must be non-negative, two per axis")
        if not any(pads):
            return
        spatial = rank == 4 and not any(pads[:2] + pads[4:6])
        if spatial and fill == 0 and pads[2:4] == pads[6:8] and self.pad is None:
            # Zero padding of H and W: handed to the next convolution or pooling.
            self.pad = (tuple(self.shape), (pads[2], pads[3]))
            self.shape = (*self.shape[:2], self.shape[2] + 2 * pads[2], self.shape[3] + 2 * pads[3])
            return
        self._flush_pad()
        self._pad_dense(pads, fill)

    def _pad_dense(self, pads: list[int], fill: float) -> None:
        """Padding as an affine map: each output is an input or the fill value."""
        rank = len(self.shape)
        source = np.pad(
            np.arange(self._n()).reshape(self.shape),
            list(zip(pads[:rank], pads[rank:], strict=True)),
            constant_values=-1,
        ).reshape(-1)
        inside = source >= 0
        weight = np.zeros((source.size, self._n()))
        weight[np.flatnonzero(inside), source[inside]] = 1.0
        self._emit(_DenseOp(weight, np.where(inside, 0.0, fill)))
        self.shape = tuple(
            s + a + b for s, a, b in zip(self.shape, pads[:rank], pads[rank:], strict=True)
        )

    def _take_pad(self) -> tuple[int, int]:
        """The pending zero padding of H and W for a convolution or pooling, and clear it."""
        if self.pad is None:
            return (0, 0)
        shape, pad = self.pad
        self.shape, self.pad = shape, None
        return pad

    def _flush_pad(self) -> None:
        if self.pad is not None:
            ph, pw = self._take_pad()
            self._pad_dense([0, 0, ph, pw, 0, 0, ph, pw], 0.0)

    def _op_AveragePool(self, node: Any, k: int, values: list) -> None:  # noqa: N802
        attrs = self._attrs(node)
        if len(self.shape) != 4 or self.shape[0] != 1:
            raise self._fail(node, f"needs a (1, C, H, W) activation; got {self.shape}")
        kernel = list(attrs["kernel_shape"])
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
            raise self._fail(node, "auto_pad is not supported; give explicit pads")
        if attrs.get("ceil_mode", 0):
            raise self._fail(node, "ceil_mode = 1 is not supported")
        if any(pads) and not attrs.get("count_include_pad", 0):
            # The divisor shrinks at the borders, which no single convolution expresses.
            raise self._fail(node, "padding with count_include_pad = 0 is not supported")
        if pads[0] != pads[2] or pads[1] != pads[3]:
            raise self._fail(node, f"asymmetric pads {pads} are not supported")
        if self.pad is not None and any(pads):
            self._flush_pad()  # explicit zeros count in the average; the pool's own pads do not
        ph, pw = self._take_pad()
        pads = [pads[0] + ph, pads[1] + pw]
        c = self.shape[1]
        weight = np.zeros((c, c, *kernel))
        weight[np.arange(c), np.arange(c)] = 1.0 / math.prod(kernel)
        strides = tuple(attrs.get("strides", [1, 1]))
        self._conv(node, weight, np.zeros(c), strides, (pads[0], pads[1]))

    def _op_MatMul(self, node: Any, k: int, values: list) -> None:  # noqa: N802
        w = values[1 - k]
        if w is None or w.ndim != 2:
            raise self._fail(node, "only products with a constant matrix are supported")
        if k == 1:
            # (constant M) @ activation: with a vector, M h; with a (k, m) matrix, M ⊗ I_m.
            if len(self.shape) == 1:
                self._dense(node, w.astype(np.float64), np.zeros(w.shape[0]))
                self.shape = (w.shape[0],)
            elif len(self.shape) == 2:
                m = self.shape[1]
                self._dense(
                    node, np.kron(w.astype(np.float64), np.eye(m)), np.zeros(w.shape[0] * m)
                )
                self.shape = (w.shape[0], m)
            else:
                raise self._fail(node, f"constant @ activation of shape {self.shape}")
            return
        if math.prod(self.shape[:-1]) != 1:
            raise self._fail(node, f"MatMul over an activation of shape {self.shape}")
        self._dense(node, w.astype(np.float64).T, np.zeros(w.shape[1]))
        self.shape = (*self.shape[:-1], w.shape[1])

    def _dense(self, node: Any, weight: np.ndarray, bias: np.ndarray) -> None:
        if weight.shape[1] != self._n():
            raise self._fail(
                node, f"weight takes {weight.shape[1]} inputs; the activation has {self._n()}"
            )
        self._emit(_DenseOp(weight, bias))

    def _elementwise(self, node: Any, k: int, values: list) -> None:
        const = self._flat(values[1 - k], node)
        n = self._n()
        one, zero = np.ones(n), np.zeros(n)
        op = node.op_type
        if op == "Add":
            scale, bias = one, const
        elif op == "Sub":
            scale, bias = (one, -const) if k == 0 else (-one, const)
        elif op == "Mul":
            scale, bias = const, zero
        else:  # Div
            if k != 0:
                raise self._fail(node, "dividing by an input-dependent tensor is not linear")
            if (const == 0).any():
                raise self._fail(node, "division by zero")
            scale, bias = 1.0 / const, zero
        self._emit(_ScaleOp(scale, bias))

    _op_Add = _op_Sub = _op_Mul = _op_Div = _elementwise

    def _op_BatchNormalization(self, node: Any, k: int, values: list) -> None:  # noqa: N802
        if k != 0 or any(v is None for v in values[1:5]):
            raise self._fail(node, "needs constant scale, bias, mean and variance")
        if self._attrs(node).get("training_mode", 0):
            raise self._fail(node, "training mode is not supported; export in eval mode")
        eps = self._attrs(node).get("epsilon", 1e-5)
        gamma, beta, mean, var = (v.astype(np.float64) for v in values[1:5])
        s = gamma / np.sqrt(var + eps)
        per_channel = (-1,) + (1,) * (len(self.shape) - 2)
        scale = self._flat(s.reshape(per_channel), node)
        bias = self._flat((beta - mean * s).reshape(per_channel), node)
        self._emit(_ScaleOp(scale, bias))

    def _op_Conv(self, node: Any, k: int, values: list) -> None:  # noqa: N802
        attrs = self._attrs(node)
        if k != 0 or values[1] is None:
            raise self._fail(node, "needs the activation as X and a constant weight")
        ph, pw = self._take_pad()
        if len(self.shape) != 4 or self.shape[0] != 1:
            raise self._fail(node, f"Conv needs a (1, C, H, W) activation; got {self.shape}")
        weight = values[1].astype(np.float64)
        if weight.ndim != 4:
            raise self._fail(node, "only 2-D convolutions are supported")
        if attrs.get("group", 1) != 1:
            raise self._fail(node, f"group = {attrs['group']} is not supported (only 1)")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            raise self._fail(node, f"dilations {attrs['dilations']} are not supported (only 1)")
        auto_pad = attrs.get("auto_pad", b"NOTSET")
        auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
        if auto_pad not in ("NOTSET", "VALID"):
            raise self._fail(node, f"auto_pad {auto_pad!r} is not supported; give explicit pads")
        pads = list(attrs.get("pads", [0, 0, 0, 0])) if auto_pad == "NOTSET" else [0, 0, 0, 0]
        if pads[0] != pads[2] or pads[1] != pads[3]:
            raise self._fail(node, f"asymmetric pads {pads} are not supported")
        pads = [pads[0] + ph, pads[1] + pw]
        strides = tuple(attrs.get("strides", [1, 1]))
        bias = values[2] if len(values) > 2 and values[2] is not None else None
        bias = np.zeros(weight.shape[0]) if bias is None else bias.astype(np.float64)
        in_shape = tuple(int(s) for s in self.shape[1:])
        if weight.shape[1] != in_shape[0]:
            raise self._fail(
                node, f"weight {weight.shape} does not match {in_shape[0]} input channels"
            )
        self._conv(node, weight, bias, strides, (pads[0], pads[1]))  # type: ignore[arg-type]

    def _conv(
        self,
        node: Any,
        weight: np.ndarray,
        bias: np.ndarray,
        strides: tuple[int, int],
        pads: tuple[int, int],
    ) -> None:
        in_shape = tuple(int(s) for s in self.shape[1:])
        conv = _ConvOp(weight, bias, in_shape, strides, pads)  # type: ignore[arg-type]
        if min(conv.out_shape()[1:]) < 1:
            raise self._fail(node, f"the kernel does not fit the input of shape {in_shape}")
        self._emit(conv)
        self.shape = (1, *conv.out_shape())

    def network(self, dtype: torch.dtype, device: torch.device | str | None) -> Network:
        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)

        ops: list[Affine | str] = []
        for op in self.ops:
            if isinstance(op, _ConvOp):
                ops.append(Conv(t(op.weight), t(op.bias), op.in_shape, op.stride, op.padding))
            elif isinstance(op, _DenseOp):
                dense = Dense(t(op.weight), t(op.bias))
                if ops and not isinstance(ops[-1], str):
                    # W ∘ A as (Aᵀ Wᵀ)ᵀ through A's backward map: a convolution never needs
                    # its dense matrix, which a generic composition would build.
                    first = ops.pop()
                    dense = Dense(first.backward(dense.weight), dense.forward(first.bias[None])[0])
                ops.append(dense)
            elif isinstance(op, _ScaleOp):
                ops.append(Scale(t(op.scale), t(op.bias)))
            else:
                ops.append(op)
        # A ReLU on the raw input or on the logits (some ERAN nets) gets an identity map before
        # or after it from ``from_ops``, which keeps the network exact.
        # Compose in float64 so that folding normalisations adds no rounding of its own.
        return from_ops(ops, self.input_shape).detach(dtype=dtype, device=device)


def load_onnx(
    path: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    check: bool = True,
) -> Network:
    """Read a feed-forward ReLU network from an ONNX file (VNN-COMP format, arXiv:2301.05815).

    Supported operators are listed in :data:`SUPPORTED_OPS`: Gemm, MatMul, elementwise
    Add/Sub/Mul/Div by constants, Relu, Flatten/Reshape/Squeeze/Unsqueeze/Transpose, 2-D Conv
    (symmetric pads, group and dilation 1), AveragePool, constant Pad, BatchNormalization in
    inference mode, Identity, Dropout and Constant. Subgraphs that depend only on constants
    (and on the Shape of the activation) are folded first. A ReLU on the outputs is kept,
    followed by an identity layer.

    Args:
        path: the ``.onnx`` file (or ``.onnx.gz``, as VNN-COMP 2022 ships them).
        dtype: dtype of the returned network (layers are composed in float64 first).
        device: where the returned network's tensors live (default CPU).
        check: run ``onnx.checker`` on the model first.

    Returns:
        The network; its ``input_shape`` is the graph input's shape without a leading batch
        dimension of 1 or a symbolic one: ``(1, 784) → (784,)``, ``(1, 1, 28, 28) → (1, 28, 28)``.

    Raises:
        ConfigError: if onnx is missing, the file is missing or does not parse or check, or
            the graph uses an unsupported operator (named, with the supported list) or is not
            one chain from one input to one output.
    """
    path = Path(path)
    model = _read_model(path)
    if check:
        try:
            _import_onnx().checker.check_model(model)
        except Exception as error:
            raise ConfigError(
                f"ONNX file {str(path)!r} fails onnx.checker: {error}; pass check=False to "
                "read it anyway"
            ) from error
    reader = _GraphReader(model, path)
    reader.read()
    return reader.network(dtype, device)


# --------------------------------------------------------------------------------------------
# Writing


def _array(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu", torch.float32).numpy()


def save_onnx(
    net: Network, path: str | Path, *, batch_dim: bool = True, opset: int = SAVE_OPSET
) -> Path:
    """Write ``net`` as an ONNX model that onnxruntime and other verifiers can read.

    Dense layers become ``Gemm``, convolutions ``Reshape → Conv → Flatten``, elementwise
    scales ``Mul`` and ``Add``, with a ``Relu`` between layers. Weights are stored as float32.

    Args:
        net: the network to write.
        path: where to write it (atomically).
        batch_dim: give the input and output a leading symbolic batch dimension ``"batch"``
            (input ``(batch, *input_shape)``, output ``(batch, n_outputs)``); otherwise they
            are exactly ``input_shape`` and ``(n_outputs,)``.
        opset: the ONNX opset to declare.

    Returns:
        The path written.
    """
    onnx = _import_onnx()
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    nodes: list[Any] = []
    inits: list[Any] = []
    counter = [0]

    def name(stem: str) -> str:
        counter[0] += 1
        return f"{stem}_{counter[0]}"

    def const(stem: str, value: np.ndarray) -> str:
        n = name(stem)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), n))
        return n

    def node(op: str, inputs: Sequence[str], **attrs: Any) -> str:
        out = name(op.lower())
        nodes.append(helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    batch: list[int | str] = ["batch"] if batch_dim else []
    x = helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [*batch, *net.input_shape])
    h = node("Reshape", ["input", const("shape", np.array([-1, net.in_features], np.int64))])
    for i, layer in enumerate(net.layers):
        if i > 0:
            h = node("Relu", [h])
        if isinstance(layer, Conv):
            c_out = layer.out_shape[0]
            channel_bias = layer.bias.reshape(c_out, -1)[:, 0]
            image = node("Reshape", [h, const("shape", np.array([-1, *layer.in_shape], np.int64))])
            top, bottom, left, right = layer.pads
            conv = node(
                "Conv",
                [image, const("weight", _array(layer.weight)), const("bias", _array(channel_bias))],
                strides=list(layer.stride),
                pads=[top, left, bottom, right],
                dilations=list(layer.dilation),
                group=layer.groups,
                kernel_shape=list(layer.weight.shape[2:]),
            )
            h = node("Flatten", [conv], axis=1)
        elif isinstance(layer, Scale):
            h = node("Mul", [h, const("scale", _array(layer.scale))])
            h = node("Add", [h, const("shift", _array(layer.bias))])
        else:
            weight = layer.dense_weight()
            h = node(
                "Gemm",
                [h, const("weight", _array(weight)), const("bias", _array(layer.bias))],
                transB=1,
            )
    out_shape = [-1, net.out_features] if batch_dim else [net.out_features]
    nodes.append(
        helper.make_node(
            "Reshape", [h, const("shape", np.array(out_shape, np.int64))], ["output"], name="output"
        )
    )
    y = helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, [*batch, net.out_features])
    graph = helper.make_graph(nodes, "stalwart_network", [x], [y], initializer=inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="stalwart"
    )
    # Readers bundled with older onnxruntime builds reject newer IR versions; opset 13 needs 7.
    model.ir_version = 7
    onnx.checker.check_model(model)
    path = Path(path)
    data = model.SerializeToString()
    atomic_write_bytes(path, lambda handle: handle.write(data))
    return path


def check_with_onnxruntime(path: str | Path, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Run the ONNX file on ``x`` with onnxruntime: replays a counterexample independently.

    VNN-COMP settles disputed answers this way (tolerance 1e-4, arXiv:2301.05815).

    Args:
        path: the ONNX file (``.gz`` allowed).
        x: one input (any shape with the right number of elements) or a batch of them when
            the model's batch dimension is symbolic.

    Returns:
        The model's first output as a float array.

    Raises:
        ConfigError: if onnxruntime is missing or ``x`` has the wrong number of elements.
    """
    try:
        import onnxruntime
    except ImportError as error:  # pragma: no cover - the test setup installs onnxruntime
        raise ConfigError(
            f"replaying on ONNX needs the onnxruntime package; {INSTALL_HINT}"
        ) from error
    path = Path(path)
    model = _read_model(path)
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    info = session.get_inputs()[0]
    array = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x)
    dims = list(info.shape)
    fixed = [d if isinstance(d, int) else -1 for d in dims]
    body = math.prod(d for d in fixed if d > 0)
    if -1 not in fixed and array.size != body:
        raise ConfigError(
            f"{str(path)!r} takes inputs of shape {dims} ({body} numbers); got {array.size}"
        )
    if -1 in fixed and array.size % body:
        raise ConfigError(f"{str(path)!r} takes inputs of shape {dims}; got {array.size} numbers")
    dtype = np.float64 if "double" in info.type else np.float32
    feed = array.astype(dtype).reshape(fixed)
    return np.asarray(session.run(None, {info.name: feed})[0])
