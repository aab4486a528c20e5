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

# A dense layer's backward pass skips the units off the rows' support only when the products
# saved (rows × units skipped, per input) outweigh copying each box's weights (units kept, per
# input), a copy costing about this many multiply-adds: few rows (a property's margins) rarely
# pay for it, a layer's ±e_k rows in CROWN's layer bounds do.
SPARSE_BACKWARD_COPY_COST = 16


class Affine:
    """An affine map ``x ↦ W x + b`` on flat vectors of ``in_features``.

    Subclasses implement :meth:`forward` (batched ``(n, in) → (n, out)``) and :meth:`backward`
    (``(n, out) → (n, in)``, the product with ``Wᵀ``: what CROWN and SDP-FO need), and may
    override :meth:`abs_forward` / :meth:`abs_backward` (``|W|`` applied: interval arithmetic
    and rounding allowances).
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

    def backward_on(self, y: Tensor, support: Tensor) -> Tensor:
        """``y W`` for ``y`` of shape ``(batch, m, out)`` that is zero outside ``support``.

        ``support`` is ``(batch, out)``: the outputs whose coefficients may be non-zero in
        each box (CROWN's rows after a ReLU: every unit but the inactive ones). Layers that can
        skip the others do (:class:`Dense`); the rest compute the full product.
        """
        return self.backward(y)

    def abs_forward(self, x: Tensor) -> Tensor:
        """``|W| x`` for a non-negative ``x`` (the radius term of interval arithmetic)."""
        return F.linear(x, self.dense_weight().abs())

    def abs_backward(self, y: Tensor) -> Tensor:
        """``y |W|`` for a non-negative ``y``: the absolute-value pass of rounding allowances."""
        return y @ self.dense_weight().abs()

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
    def backward_on(self, y: Tensor, support: Tensor) -> Tensor:
        # Per box, only the rows of W on its support: a batched product over the largest
        # support, with the other boxes padded by units whose coefficients are zero.
        width = int(support.sum(1).max())
        if y.shape[1] * (self.out_features - width) <= SPARSE_BACKWARD_COPY_COST * width:
            return self.backward(y)
        order = torch.argsort(support.to(torch.int8), dim=1, descending=True, stable=True)
        units = order[:, :width]
        picked = torch.gather(y, 2, units.unsqueeze(1).expand(-1, y.shape[1], -1))
        return torch.bmm(picked, self.weight[units])

    @override
    def abs_forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight.abs())

    @override
    def abs_backward(self, y: Tensor) -> Tensor:
        return y @ self.weight.abs()

    @override
    def dense_weight(self) -> Tensor:
        return self.weight

    @override
    def map(self, fn) -> Dense:
        return Dense(fn(self.weight), fn(self.bias))


@dataclass(eq=False)
class Conv(Affine):
    """A 2-D convolution acting on flattened ``(C, H, W)`` images.

    Args:
        weight: ``(out, C / groups, kh, kw)``.
        bias: ``(out,)``.
        in_shape: ``(C, H, W)``.
        stride: ``(sh, sw)``.
        padding: zeros added around the image: ``(ph, pw)`` on both sides, or
            ``(top, bottom, left, right)`` (PyTorch's ``padding="same"`` with an even kernel).
        dilation: ``(dh, dw)``.
        groups: input and output channels split into this many independent groups.
    """

    weight: Tensor
    bias: Tensor
    in_shape: tuple[int, int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, ...] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    out_shape: tuple[int, int, int] = field(init=False)

    def __post_init__(self) -> None:
        c, h, w = self.in_shape
        if self.groups < 1 or c % self.groups or self.weight.shape[0] % self.groups:
            raise ConfigError(
                f"a convolution with groups = {self.groups} needs input channels ({c}) and "
                f"output channels ({self.weight.shape[0]}) divisible by it"
            )
        if self.weight.dim() != 4 or self.weight.shape[1] != c // self.groups:
            raise ConfigError(
                f"a convolution over {c} input channels in {self.groups} group(s) needs a "
                f"weight of shape (out, {c // self.groups}, kh, kw); got {tuple(self.weight.shape)}"
            )
        padding = tuple(int(p) for p in self.padding)
        if len(padding) == 2:
            padding = (padding[0], padding[0], padding[1], padding[1])
        if len(padding) != 4 or min(padding) < 0:
            raise ConfigError(
                f"convolution padding is (ph, pw) or (top, bottom, left, right), all >= 0; got "
                f"{self.padding}"
            )
        self.pads = padding
        kh, kw = self.weight.shape[2:]
        # The extent of a dilated kernel.
        eh = self.dilation[0] * (kh - 1) + 1
        ew = self.dilation[1] * (kw - 1) + 1
        oh = (h + padding[0] + padding[1] - eh) // self.stride[0] + 1
        ow = (w + padding[2] + padding[3] - ew) // self.stride[1] + 1
        if oh < 1 or ow < 1:
            raise ConfigError(
                f"kernel {kh}x{kw} (dilation {tuple(self.dilation)}, padding {padding}) does "
                f"not fit the input of shape {self.in_shape}"
            )
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

    @property
    def symmetric(self) -> bool:
        """Whether the padding is the same on both sides of each axis."""
        top, bottom, left, right = self.pads
        return top == bottom and left == right

    def _conv(self, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        flat = x.dim() == 1
        images = x.reshape(-1, *self.in_shape)
        top, bottom, left, right = self.pads
        if self.symmetric:
            padding = (top, left)
        else:
            images = F.pad(images, (left, right, top, bottom))
            padding = (0, 0)
        out = F.conv2d(images, weight, bias, stride=self.stride, padding=padding,
                       dilation=self.dilation, groups=self.groups)  # fmt: skip
        out = out.flatten(1)
        return out[0] if flat else out

    def _transpose(self, y: Tensor, weight: Tensor) -> Tensor:
        lead = y.shape[:-1]
        images = y.reshape(-1, *self.out_shape)
        out = F.conv_transpose2d(images, weight, stride=self.stride, dilation=self.dilation,
                                 groups=self.groups)  # fmt: skip
        # conv_transpose2d gives the padded input up to the rows/columns a stride skips: pad
        # those with zeros, then cut the padding off.
        c, h, w = self.in_shape
        top, bottom, left, right = self.pads
        out = F.pad(out, (0, w + left + right - out.shape[-1], 0, h + top + bottom - out.shape[-2]))
        out = out[..., top : top + h, left : left + w]
        return out.reshape(*lead, self.in_features)

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
        return self._transpose(y, self.weight)

    @override
    def abs_backward(self, y: Tensor) -> Tensor:
        return self._transpose(y, self.weight.abs())

    @override
    def map(self, fn) -> Conv:
        return Conv(fn(self.weight), fn(self._channel_bias), self.in_shape, self.stride,
                    self.padding, self.dilation, self.groups)  # fmt: skip


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
    def abs_backward(self, y: Tensor) -> Tensor:
        return y * self.scale.abs()

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
    if isinstance(first, Conv) and isinstance(second, Scale):
        folded = _fold_scale_after_conv(first, second)
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
    if not per_channel or any(conv.pads) or conv.groups != 1:
        return None
    weight = conv.weight * s[:, 0].view(1, c, 1, 1)
    bias = conv._channel_bias + (conv.weight * b[:, 0].view(1, c, 1, 1)).sum(dim=(1, 2, 3))
    return Conv(weight, bias, conv.in_shape, conv.stride, conv.padding, conv.dilation)


def _fold_scale_after_conv(conv: Conv, scale: Scale) -> Conv | None:
    """A per-channel scale after a convolution (BatchNorm, a bias) stays one convolution."""
    c, h, w = conv.out_shape
    s = scale.scale.reshape(c, h * w)
    b = scale.bias.reshape(c, h * w)
    if not bool((s == s[:, :1]).all() and (b == b[:, :1]).all()):
        return None
    weight = conv.weight * s[:, 0].view(c, 1, 1, 1)
    bias = conv._channel_bias * s[:, 0] + b[:, 0]
    return Conv(weight, bias, conv.in_shape, conv.stride, conv.padding, conv.dilation, conv.groups)


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

    Affine maps with no ReLU between them are composed; two ReLUs in a row collapse to one. A
    ReLU on the raw input or on the outputs gets an identity map before or after it, so the
    canonical form (an affine map first and last) holds exactly.

    Raises:
        ConfigError: if the sequence is empty.
    """
    if not ops:
        raise ConfigError("a network needs at least one layer")
    layers: list[Affine] = []
    pending: Affine | None = None
    width = math.prod(input_shape)
    like = next((op.bias for op in ops if not isinstance(op, str)), torch.zeros(0))
    for op in ops:
        if op == "relu":
            if pending is None:
                if layers:
                    continue  # relu ∘ relu = relu
                pending = _identity(width, like)
            layers.append(pending)
            pending = None
        else:
            pending = op if pending is None else compose(pending, op)
            width = pending.out_features
    if pending is None:
        pending = _identity(layers[-1].out_features, like)
    layers.append(pending)
    return Network(layers, tuple(input_shape))


def _identity(n: int, like: Tensor) -> Scale:
    """``x ↦ x`` on ``n`` features, in ``like``'s dtype and device."""
    return Scale(like.new_ones(n), like.new_zeros(n))


SUPPORTED_MODULES = (
    "Linear",
    "Conv2d",
    "ReLU",
    "BatchNorm1d",
    "BatchNorm2d",
    "AvgPool2d",
    "Flatten",
    "Unflatten",
    "Identity",
    "Dropout",
    "Sequential",
    "Normalize (stalwart.certify.Normalize)",
)


def _conv_padding(m: nn.Conv2d, where: str) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` for a Conv2d, resolving ``"same"`` and ``"valid"``."""
    if m.padding_mode != "zeros":
        raise ConfigError(
            f"{where}: padding_mode {m.padding_mode!r} is not supported (only zero padding)"
        )
    if m.padding == "valid":
        return (0, 0, 0, 0)
    if m.padding == "same":
        # PyTorch puts the odd extra row/column of an even kernel at the bottom/right.
        pads = []
        for k, dil in zip(m.kernel_size, m.dilation, strict=True):
            total = dil * (k - 1)
            pads += [total // 2, total - total // 2]
        return tuple(pads)  # type: ignore[return-value]
    ph, pw = m.padding
    return (ph, ph, pw, pw)


def _pool_as_conv(m: nn.AvgPool2d, shape: tuple[int, ...], where: str, like: Tensor) -> Conv:
    """Average pooling as a per-channel convolution with constant weights."""
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    kernel, padding = pair(m.kernel_size), pair(m.padding)
    stride = pair(m.stride if m.stride is not None else m.kernel_size)
    if any(padding) and not m.count_include_pad:
        # The divisor shrinks at the borders, which no single convolution expresses.
        raise ConfigError(f"{where}: padding with count_include_pad=False is not supported")
    c = shape[0]
    divisor = m.divisor_override or math.prod(kernel)
    weight = like.new_full((c, 1, *kernel), 1.0 / divisor)
    conv = Conv(weight, like.new_zeros(c), shape, stride, padding, groups=c)  # type: ignore[arg-type]
    if m.ceil_mode:
        with torch.no_grad():
            expected = tuple(m(torch.zeros(1, *shape)).shape[1:])
        if expected != conv.out_shape:
            raise ConfigError(
                f"{where}: ceil_mode=True averages partial windows at the border, which is not "
                "supported; use ceil_mode=False"
            )
    return conv


def _batch_norm(m: nn.BatchNorm1d | nn.BatchNorm2d, shape: tuple[int, ...], where: str) -> Scale:
    """BatchNorm in eval mode: ``(x − mean) / sqrt(var + eps) · γ + β`` per channel."""
    if m.training or m.running_mean is None or m.running_var is None:
        raise ConfigError(
            f"{where}: batch normalisation in training mode (or without running statistics) "
            "normalises by the statistics of each batch, which is not an affine map of one "
            "input; call model.eval() first"
        )
    c = m.num_features
    if shape[0] != c:
        raise ConfigError(f"{where}: expects {c} channels; the input here has shape {shape}")
    scale = torch.rsqrt(m.running_var + m.eps)
    if m.weight is not None:
        scale = scale * m.weight
    shift = -m.running_mean * scale
    if m.bias is not None:
        shift = shift + m.bias
    spatial = math.prod(shape[1:])
    return Scale(scale.repeat_interleave(spatial), shift.repeat_interleave(spatial))


def _reshaped(m: nn.Module, shape: tuple[int, ...], where: str) -> tuple[int, ...]:
    """The shape after a module that only rearranges its input (Flatten, Unflatten)."""
    try:
        with torch.no_grad():
            out = m(torch.zeros(2, *shape))
    except RuntimeError as error:
        raise ConfigError(f"{where}: cannot reshape an input of shape {shape}: {error}") from None
    if out.shape[0] != 2 or out.numel() != 2 * math.prod(shape):
        raise ConfigError(f"{where}: reshapes across the batch dimension; keep dimension 0")
    return tuple(out.shape[1:])


def from_module(module: nn.Module, input_shape: Sequence[int]) -> Network:
    """Convert a feed-forward PyTorch model to a network.

    Supported: ``Linear``, ``Conv2d`` (any stride, dilation, groups and zero padding,
    including ``padding="same"``), ``ReLU`` (also first or last), ``BatchNorm1d/2d`` and
    ``AvgPool2d`` (affine maps in eval mode), ``Flatten``, ``Unflatten``, ``Identity``,
    ``Dropout``, ``certify.Normalize``, and ``nn.Sequential`` of them; our ``linear`` and
    ``mlp`` models convert directly. The layers share the module's parameters, so bounds on
    the result are differentiable in them.

    Raises:
        ConfigError: naming the first module that is not supported (its position and type)
            and why, with the supported list.
    """
    input_shape = tuple(int(s) for s in input_shape)
    ops: list[Affine | str] = []
    shape = [input_shape]
    # Pooling has no parameters of its own: it takes the model's dtype and device.
    like = next(iter(module.parameters()), next(iter(module.buffers()), torch.zeros(0)))

    def walk(m: nn.Module, where: str) -> None:
        here = f"layer {where} ({type(m).__name__})"
        if isinstance(m, nn.Sequential) or (hasattr(m, "body") and hasattr(m, "head")):
            convert(m, where, here)
            return
        try:
            convert(m, where, here)
        except ConfigError as error:
            if str(error).startswith(("layer ", "cannot convert")):
                raise
            raise ConfigError(f"{here}: {error}") from None

    def convert(m: nn.Module, where: str, here: str) -> None:
        current = shape[0]
        if isinstance(m, nn.Sequential):
            for name, child in m.named_children():
                walk(child, f"{where}.{name}" if where else name)
        elif isinstance(m, nn.Linear):
            if math.prod(current[:-1]) != 1 or current[-1] != m.in_features:
                raise ConfigError(
                    f"{here}: takes {m.in_features} features on its last axis but the input here "
                    f"has shape {current}; flatten it first (nn.Flatten)"
                )
            bias = m.bias if m.bias is not None else torch.zeros(m.out_features)
            ops.append(Dense(m.weight, bias))
            shape[0] = (*current[:-1], m.out_features)
        elif isinstance(m, nn.Conv2d):
            if len(current) != 3:
                raise ConfigError(
                    f"{here}: needs a (C, H, W) input; the input here has shape {current}"
                )
            bias = m.bias if m.bias is not None else torch.zeros(m.out_channels)
            conv = Conv(m.weight, bias, current, tuple(m.stride), _conv_padding(m, here),
                        tuple(m.dilation), m.groups)  # type: ignore[arg-type]  # fmt: skip
            ops.append(conv)
            shape[0] = conv.out_shape
        elif isinstance(m, nn.AvgPool2d):
            if len(current) != 3:
                raise ConfigError(f"{here}: needs a (C, H, W) input; got shape {current}")
            conv = _pool_as_conv(m, current, here, like)
            ops.append(conv)
            shape[0] = conv.out_shape
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            expected = (1, 2) if isinstance(m, nn.BatchNorm1d) else (3,)
            if len(current) not in expected:
                raise ConfigError(
                    f"{here}: needs an input of {' or '.join(map(str, expected))} axes (without "
                    f"the batch); the input here has shape {current}"
                )
            ops.append(_batch_norm(m, current, here))
        elif isinstance(m, nn.ReLU):
            ops.append("relu")
        elif isinstance(m, nn.Flatten | nn.Unflatten):
            shape[0] = _reshaped(m, current, here)
        elif isinstance(m, nn.Identity | nn.Dropout):
            pass
        elif isinstance(m, Normalize):
            c = m.mean.numel()
            spatial = math.prod(current) // c
            ops.append(
                Scale(
                    (1.0 / m.std).repeat_interleave(spatial),
                    (-m.mean / m.std).repeat_interleave(spatial),
                )
            )
        elif hasattr(m, "body") and hasattr(m, "head"):
            # Our models: a feature body followed by a linear head.
            walk(m.body, f"{where}.body" if where else "body")
            walk(m.head, f"{where}.head" if where else "head")
        else:
            raise ConfigError(
                f"cannot convert {here} to a certifiable network: {type(m).__name__} is not "
                f"supported; supported: {', '.join(SUPPORTED_MODULES)}"
            )

    walk(module, "")
    return from_ops(ops, input_shape)
