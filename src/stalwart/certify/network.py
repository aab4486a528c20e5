"""The canonical network every bound works on: affine maps with ReLUs between them.

A :class:`Network` is ``x ↦ A_L(relu(A_{L-1}(… relu(A_1(x)))))`` on flattened inputs. Each
``A_i`` is an :class:`Affine` (a dense :class:`Dense` layer, a :class:`Conv` layer, or an
elementwise :class:`Scale` such as an input normalisation). Consecutive affine maps with no
ReLU between them are composed when the network is built, so normalisations and Flatten/Reshape
steps disappear into the first layer and every bound sees one shape of problem.

Layers keep references to the tensors they were built from: a network built from a trained
``nn.Module`` stays differentiable in its parameters, which is what certified (IBP) training
needs. Bounds call :meth:`Network.detach` when they do not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from typing_extensions import override

from stalwart.errors import ConfigError

SUPPORTED_MODULES = (
    "Linear",
    "Conv2d",
    "ReLU",
    "Flatten",
    "Identity",
    "Dropout",
    "Sequential",
    "Normalize (stalwart.certify.Normalize)",
)


class Affine:
    """An affine map ``x ↦ W x + b`` on flat vectors of ``in_features``.

    Subclasses implement :meth:`forward` (batched ``(n, in) → (n, out)``) and :meth:`backward`
    (``(n, out) → (n, in)``, the product with ``Wᵀ``: what CROWN and SDP-FO need), and may
    override :meth:`abs` (``|W|`` applied, for interval arithmetic).
    """

    in_features: int
    out_features: int
    bias: Tensor

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        """``W x + b`` for ``x`` of shape ``(batch, in)``."""
        raise NotImplementedError

    def backward(self, y: Tensor) -> Tensor:  # pragma: no cover - abstract
        """``y W`` (``Wᵀ`` applied to each row) for ``y`` of shape ``(…, out)``."""
        raise NotImplementedError

    def linear(self, x: Tensor) -> Tensor:
        """``W x`` without the bias."""
        return self.forward(x) - self.bias

    def abs_forward(self, x: Tensor) -> Tensor:
        """``|W| x`` for a non-negative ``x`` (the radius term of interval arithmetic)."""
        return F.linear(x, self.dense_weight().abs())

    def dense_weight(self) -> Tensor:
        """``W`` as a dense ``(out, in)`` matrix, built column by column when not stored."""
        eye = torch.eye(self.in_features, dtype=self.bias.dtype, device=self.bias.device)
        return self.linear(eye).T

    def map(self, fn) -> Affine:  # pragma: no cover - abstract
        """The same layer with ``fn`` applied to each stored tensor."""
        raise NotImplementedError


@dataclass(eq=False)
class Dense(Affine):
    """``x ↦ W x + b`` with a stored ``(out, in)`` weight."""

    weight: Tensor
    bias: Tensor

    def __post_init__(self) -> None:
        self.out_features, self.in_features = self.weight.shape
        if self.bias.shape != (self.out_features,):
            raise ConfigError(
                f"a dense layer of shape {tuple(self.weight.shape)} needs a bias of length "
                f"{self.out_features}; got shape {tuple(self.bias.shape)}"
            )

    @override
    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)

    @override
    def linear(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight)

    @override
    def backward(self, y: Tensor) -> Tensor:
        return y @ self.weight

    @override
    def abs_forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight.abs())

    @override
    def dense_weight(self) -> Tensor:
        return self.weight

    @override
    def map(self, fn) -> Dense:
        return Dense(fn(self.weight), fn(self.bias))


@dataclass(eq=False)
class Conv(Affine):
    """A 2-D convolution acting on flattened ``(C, H, W)`` images."""

    weight: Tensor
    bias: Tensor
    in_shape: tuple[int, int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    out_shape: tuple[int, int, int] = field(init=False)

    def __post_init__(self) -> None:
        c, h, w = self.in_shape
        if self.weight.dim() != 4 or self.weight.shape[1] != c:
            raise ConfigError(
                f"a convolution over {c} input channels needs a weight of shape "
                f"(out, {c}, kh, kw); got {tuple(self.weight.shape)}"
            )
        kh, kw = self.weight.shape[2:]
        oh = (h + 2 * self.padding[0] - kh) // self.stride[0] + 1
        ow = (w + 2 * self.padding[1] - kw) // self.stride[1] + 1
        if oh < 1 or ow < 1:
            raise ConfigError(f"kernel {kh}x{kw} does not fit the input of shape {self.in_shape}")
        self.out_shape = (self.weight.shape[0], oh, ow)
        self.in_features = math.prod(self.in_shape)
        self.out_features = math.prod(self.out_shape)
        if self.bias.shape != (self.weight.shape[0],):
            raise ConfigError(
                f"a convolution with {self.weight.shape[0]} output channels needs a bias of "
                f"that length; got shape {tuple(self.bias.shape)}"
            )
        # The bias as a flat vector over output positions, as the rest of the code expects.
        self._channel_bias = self.bias
        self.bias = self.bias.repeat_interleave(oh * ow)

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        flat = x.dim() == 1
        images = x.reshape(-1, *self.in_shape)
        out = F.conv2d(images, weight, bias, stride=self.stride, padding=self.padding)
        out = out.flatten(1)
        return out[0] if flat else out

    @override
    def forward(self, x: Tensor) -> Tensor:
        return self._conv(x, self.weight, self._channel_bias)

    @override
    def linear(self, x: Tensor) -> Tensor:
        return self._conv(x, self.weight, None)

    @override
    def abs_forward(self, x: Tensor) -> Tensor:
        return self._conv(x, self.weight.abs(), None)

    @override
    def backward(self, y: Tensor) -> Tensor:
        lead = y.shape[:-1]
        images = y.reshape(-1, *self.out_shape)
        # conv_transpose2d inverts the shape arithmetic up to the rows/columns a stride skips.
        _, h, w = self.in_shape
        kh, kw = self.weight.shape[2:]
        extra = (
            h + 2 * self.padding[0] - kh - (self.out_shape[1] - 1) * self.stride[0],
            w + 2 * self.padding[1] - kw - (self.out_shape[2] - 1) * self.stride[1],
        )
        out = F.conv_transpose2d(
            images, self.weight, stride=self.stride, padding=self.padding, output_padding=extra
        )
        return out.reshape(*lead, self.in_features)

    @override
    def map(self, fn) -> Conv:
        return Conv(
            fn(self.weight), fn(self._channel_bias), self.in_shape, self.stride, self.padding
        )


@dataclass(eq=False)
class Scale(Affine):
    """Elementwise ``x ↦ s ⊙ x + b`` (input normalisation ``(x − mean) / std``)."""

    scale: Tensor
    bias: Tensor

    def __post_init__(self) -> None:
        if self.scale.shape != self.bias.shape or self.scale.dim() != 1:
            raise ConfigError("an elementwise scale needs flat scale and shift of equal length")
        self.in_features = self.out_features = self.scale.numel()

    @override
    def forward(self, x: Tensor) -> Tensor:
        return x * self.scale + self.bias

    @override
    def linear(self, x: Tensor) -> Tensor:
        return x * self.scale

    @override
    def backward(self, y: Tensor) -> Tensor:
        return y * self.scale

    @override
    def abs_forward(self, x: Tensor) -> Tensor:
        return x * self.scale.abs()

    @override
    def dense_weight(self) -> Tensor:
        return torch.diag(self.scale)

    @override
    def map(self, fn) -> Scale:
        return Scale(fn(self.scale), fn(self.bias))


def compose(first: Affine, second: Affine) -> Affine:
    """The single affine map ``second ∘ first``; stays a convolution where that is exact."""
    if first.out_features != second.in_features:
        raise ConfigError(
            f"layer sizes do not chain: {first.out_features} outputs feed "
            f"{second.in_features} inputs"
        )
    if isinstance(first, Scale) and isinstance(second, Scale):
        return Scale(first.scale * second.scale, second.scale * first.bias + second.bias)
    if isinstance(first, Scale) and isinstance(second, Dense):
        return Dense(second.weight * first.scale, second.forward(first.bias))
    if isinstance(second, Scale) and isinstance(first, Dense):
        return Dense(first.weight * second.scale[:, None], second.forward(first.bias))
    if isinstance(first, Scale) and isinstance(second, Conv):
        folded = _fold_channel_scale(first, second)
        if folded is not None:
            return folded
    if isinstance(second, Dense):
        # W₂ W₁ row by row through W₁ᵀ: never builds the first layer's (possibly conv) matrix.
        return Dense(first.backward(second.weight), second.forward(first.bias))
    weight = second.linear(first.dense_weight().T).T
    return Dense(weight, second.forward(first.bias))


def _fold_channel_scale(scale: Scale, conv: Conv) -> Conv | None:
    """Fold a per-channel normalisation into a following unpadded convolution."""
    c, h, w = conv.in_shape
    s = scale.scale.reshape(c, h * w)
    b = scale.bias.reshape(c, h * w)
    per_channel = bool((s == s[:, :1]).all() and (b == b[:, :1]).all())
    # Zero padding would see the shift as zeros rather than the normalised zero; stay exact.
    if not per_channel or conv.padding != (0, 0):
        return None
    weight = conv.weight * s[:, 0].view(1, c, 1, 1)
    bias = conv._channel_bias + (conv.weight * b[:, 0].view(1, c, 1, 1)).sum(dim=(1, 2, 3))
    return Conv(weight, bias, conv.in_shape, conv.stride, conv.padding)


@dataclass(eq=False)
class Network:
    """``A_L ∘ relu ∘ … ∘ relu ∘ A_1`` on flat inputs of ``input_shape``.

    Args:
        layers: the affine maps ``A_1 … A_L``; a ReLU sits between each consecutive pair.
        input_shape: the shape of one input, without the batch dimension.
    """

    layers: list[Affine]
    input_shape: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.layers:
            raise ConfigError("a network needs at least one affine layer")
        if self.layers[0].in_features != math.prod(self.input_shape):
            raise ConfigError(
                f"the first layer takes {self.layers[0].in_features} inputs but the input shape "
                f"{self.input_shape} has {math.prod(self.input_shape)}"
            )
        for a, b in zip(self.layers, self.layers[1:], strict=False):
            if a.out_features != b.in_features:
                raise ConfigError(
                    f"layer sizes do not chain: {a.out_features} outputs feed {b.in_features}"
                )

    @property
    def in_features(self) -> int:
        """Length of the flattened input."""
        return self.layers[0].in_features

    @property
    def out_features(self) -> int:
        """Number of outputs (logits)."""
        return self.layers[-1].out_features

    @property
    def hidden_sizes(self) -> list[int]:
        """The width of each ReLU layer."""
        return [layer.out_features for layer in self.layers[:-1]]

    @property
    def n_activations(self) -> int:
        """Inputs plus ReLU units: the size of the SDP relaxation's variable."""
        return self.in_features + sum(self.hidden_sizes)

    def __call__(self, x: Tensor) -> Tensor:
        """Logits for one input of ``input_shape`` or a batch of them (any trailing shape)."""
        single = tuple(x.shape) == tuple(self.input_shape)
        h = x.reshape(1 if single else len(x), -1)
        for i, layer in enumerate(self.layers):
            h = layer.forward(h)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h[0] if single else h

    def activations(self, x: Tensor) -> list[Tensor]:
        """Pre-activations ``A_i(…)`` of every layer for flat inputs ``(n, in)``."""
        out, h = [], x
        for i, layer in enumerate(self.layers):
            h = layer.forward(h)
            out.append(h)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return out

    def detach(self, dtype: torch.dtype | None = None, device=None) -> Network:
        """A copy cut from autograd, optionally cast (float64 for exact checks)."""

        def fn(t: Tensor) -> Tensor:
            return t.detach().to(dtype=dtype or t.dtype, device=device or t.device)

        return Network([layer.map(fn) for layer in self.layers], self.input_shape)


class Normalize(nn.Module):
    """``(x − mean) / std`` per channel, as a module a network can start with."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32))

    @override
    def forward(self, x: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        return (x - self.mean.view(shape)) / self.std.view(shape)


def from_ops(ops: Sequence[Affine | str], input_shape: tuple[int, ...]) -> Network:
    """Build a network from a sequence of affine maps and ``"relu"`` markers.

    Affine maps with no ReLU between them are composed; two ReLUs in a row collapse to one.

    Raises:
        ConfigError: if the sequence starts or ends with a ReLU or has no affine map.
    """
    layers: list[Affine] = []
    pending: Affine | None = None
    for op in ops:
        if op == "relu":
            if pending is None:
                if not layers:
                    raise ConfigError("a network cannot start with a ReLU in the canonical form")
                continue
            layers.append(pending)
            pending = None
        else:
            pending = op if pending is None else compose(pending, op)
    if pending is None:
        raise ConfigError("a network must end with an affine layer (the logits), not a ReLU")
    layers.append(pending)
    return Network(layers, tuple(input_shape))


def from_module(module: nn.Module, input_shape: Sequence[int]) -> Network:
    """Convert a feed-forward PyTorch model (Linear, Conv2d, ReLU, Flatten, …) to a network.

    The layers share the module's parameters, so bounds on the result are differentiable in
    them. Our ``linear`` and ``mlp`` models convert directly; so does any ``nn.Sequential`` of
    the supported modules.

    Raises:
        ConfigError: naming the first module that is not supported, with the supported list.
    """
    input_shape = tuple(int(s) for s in input_shape)
    ops: list[Affine | str] = []
    shape = [input_shape]

    def walk(m: nn.Module) -> None:
        if isinstance(m, nn.Sequential):
            for child in m:
                walk(child)
        elif isinstance(m, nn.Linear):
            bias = m.bias if m.bias is not None else torch.zeros(m.out_features)
            ops.append(Dense(m.weight, bias))
            shape[0] = (m.out_features,)
        elif isinstance(m, nn.Conv2d):
            if len(shape[0]) != 3 or m.groups != 1 or m.dilation != (1, 1):
                raise ConfigError(
                    f"Conv2d {m} needs a (C, H, W) input and groups = dilation = 1; "
                    f"the input here has shape {shape[0]}"
                )
            if not isinstance(m.padding, tuple) or m.padding_mode != "zeros":
                raise ConfigError(f"Conv2d {m}: only explicit zero padding is supported")
            bias = m.bias if m.bias is not None else torch.zeros(m.out_channels)
            conv = Conv(m.weight, bias, shape[0], tuple(m.stride), tuple(m.padding))
            ops.append(conv)
            shape[0] = conv.out_shape
        elif isinstance(m, nn.ReLU):
            ops.append("relu")
        elif isinstance(m, nn.Flatten | nn.Identity | nn.Dropout):
            if isinstance(m, nn.Flatten):
                shape[0] = (math.prod(shape[0]),)
        elif isinstance(m, Normalize):
            c = m.mean.numel()
            spatial = math.prod(shape[0]) // c
            ops.append(
                Scale(
                    (1.0 / m.std).repeat_interleave(spatial),
                    (-m.mean / m.std).repeat_interleave(spatial),
                )
            )
        elif hasattr(m, "body") and hasattr(m, "head"):
            # Our models: a feature body followed by a linear head.
            walk(m.body)
            walk(m.head)
        else:
            raise ConfigError(
                f"cannot convert {type(m).__name__} to a certifiable network; supported: "
                f"{', '.join(SUPPORTED_MODULES)}"
            )

    walk(module)
    return from_ops(ops, input_shape)
