"""What is certified: an input set and a linear property of the outputs.

Input sets are boxes (:class:`Box`); an L∞ ball is a box clipped to the input domain
(:func:`LinfBall`). Output properties follow VNN-LIB: the *unsafe* region is a disjunction of
conjunctions of linear inequalities, and the property holds when no input reaches it. We store
each conjunction as rows ``C y + d`` that are all ``≤ 0`` in the unsafe region, so a lower
bound ``> 0`` on any one row of a conjunction rules that conjunction out. For a classifier the
margins ``y_label − y_j`` are exactly those rows, one conjunction per other class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from stalwart.certify.rounding import outward
from stalwart.errors import ConfigError


@dataclass(eq=False)
class Box:
    """The inputs ``lower ≤ x ≤ upper`` (elementwise), shaped like one input or a batch."""

    lower: Tensor
    upper: Tensor

    def __post_init__(self) -> None:
        if self.lower.shape != self.upper.shape:
            raise ConfigError(
                f"box bounds differ in shape: {tuple(self.lower.shape)} and "
                f"{tuple(self.upper.shape)}"
            )
        if not (torch.isfinite(self.lower).all() and torch.isfinite(self.upper).all()):
            raise ConfigError("box bounds must be finite; every input needs a lower and upper")
        if (self.lower > self.upper).any():
            i = int((self.lower > self.upper).flatten().nonzero()[0])
            raise ConfigError(
                f"box is empty: input {i} has lower {float(self.lower.flatten()[i])} above "
                f"upper {float(self.upper.flatten()[i])}"
            )

    @property
    def center(self) -> Tensor:
        """The midpoint of the box."""
        return (self.lower + self.upper) / 2

    @property
    def radius(self) -> Tensor:
        """Half the width of the box, per input."""
        return (self.upper - self.lower) / 2

    def flat(self, input_shape: tuple[int, ...]) -> tuple[Tensor, Tensor, bool]:
        """Bounds as ``(batch, n)`` for a network on ``input_shape``, and whether unbatched.

        Raises:
            ConfigError: if the box's shape is neither ``input_shape`` nor a batch of it.
        """
        shape = tuple(self.lower.shape)
        single = shape == tuple(input_shape)
        if not single and shape[1:] != tuple(input_shape):
            raise ConfigError(
                f"the input set has shape {shape} but the network takes inputs of shape "
                f"{tuple(input_shape)} (optionally with a batch dimension in front)"
            )
        n = math.prod(input_shape)
        return self.lower.reshape(-1, n), self.upper.reshape(-1, n), single

    def contains(self, x: Tensor, tol: float = 1e-6) -> bool:
        """Whether ``x`` lies in the box (up to ``tol``)."""
        return bool(((x >= self.lower - tol) & (x <= self.upper + tol)).all())

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` points drawn uniformly from the box."""
        u = torch.rand((n, *self.lower.shape), generator=generator, dtype=self.lower.dtype)
        return self.lower + u.to(self.lower.device) * (self.upper - self.lower)

    def to(self, dtype: torch.dtype | None = None, device=None) -> Box:
        """The box cast to ``dtype`` / moved to ``device``."""
        return Box(
            self.lower.to(dtype=dtype, device=device), self.upper.to(dtype=dtype, device=device)
        )


def LinfBall(x: Tensor, eps: float, lower: float = 0.0, upper: float = 1.0) -> Box:  # noqa: N802
    """The L∞ ball of radius ``eps`` around ``x``, clipped to the domain ``[lower, upper]``.

    The box is in ``x``'s dtype and rounded outward: ``x ± eps`` is computed in float64 and
    widened by one float64 step, then rounded outward to ``x``'s dtype, so it contains the
    exact ball (a box rounded to nearest could leave out a sliver of it).

    Raises:
        ConfigError: if ``eps`` is negative or larger than the domain, or ``x`` lies outside it.
    """
    if not lower < upper:
        raise ConfigError(f"the input domain needs lower < upper; got [{lower}, {upper}]")
    if not (eps >= 0) or math.isinf(eps):
        raise ConfigError(f"eps must be >= 0; got {eps}")
    if eps > upper - lower:
        raise ConfigError(
            f"eps = {eps} exceeds the input domain [{lower}, {upper}]; give eps in the data's "
            "own units"
        )
    x = torch.as_tensor(x)
    if not torch.isfinite(x).all():
        raise ConfigError("the centre of the ball contains NaN or infinite values")
    if (x < lower - 1e-6).any() or (x > upper + 1e-6).any():
        raise ConfigError(
            f"the centre lies outside the input domain [{lower}, {upper}] "
            f"(range [{float(x.min())}, {float(x.max())}])"
        )
    dtype = x.dtype if x.dtype.is_floating_point else torch.get_default_dtype()
    wide = x.to(torch.promote_types(dtype, torch.float64))
    lo, hi = wide - eps, wide + eps
    if eps > 0:
        lo = torch.nextafter(lo, torch.full_like(lo, -math.inf))
        hi = torch.nextafter(hi, torch.full_like(hi, math.inf))
    return Box(*outward(lo.clamp(lower, upper), hi.clamp(lower, upper), dtype))


PAD_OFFSET = -1e30
"""``d`` of the rows that pad a conjunction to the longest one's: ``0·y − 10³⁰``, a row far
below zero everywhere, so never a conjunction's largest row: it never rules a region out, never
leads a branching choice, and never draws an attack's gradient."""


def padded_rows(conjunctions: Sequence[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    """The conjunctions' rows ``(K, m, outputs)`` and offsets ``(K, m)``, padded to one ``m``."""
    m = max(C.shape[0] for C, _ in conjunctions)
    Cs, ds = [], []
    for C, d in conjunctions:
        pad = m - C.shape[0]
        Cs.append(torch.cat([C, C.new_zeros(pad, C.shape[1])]))
        ds.append(torch.cat([d, d.new_full((pad,), PAD_OFFSET)]))
    return torch.stack(Cs), torch.stack(ds)


@dataclass(eq=False)
class OutputProperty:
    """An unsafe output region: the union over ``disjuncts`` of ``{y : C y + d ≤ 0}``.

    Args:
        disjuncts: pairs ``(C, d)`` with ``C`` of shape ``(rows, n_outputs)``.
    """

    disjuncts: list[tuple[Tensor, Tensor]]

    def __post_init__(self) -> None:
        if not self.disjuncts:
            raise ConfigError("an output property needs at least one unsafe region")
        widths = {C.shape[-1] for C, _ in self.disjuncts}
        if len(widths) != 1:
            raise ConfigError(f"unsafe regions disagree on the number of outputs: {widths}")

    @classmethod
    def margin(cls, label: int, n_outputs: int, dtype=torch.float32) -> OutputProperty:
        """Robust classification: unsafe is ``y_j ≥ y_label`` for some ``j ≠ label``."""
        if not 0 <= label < n_outputs:
            raise ConfigError(f"label {label} is not one of the {n_outputs} outputs")
        disjuncts = []
        for j in range(n_outputs):
            if j != label:
                row = torch.zeros(1, n_outputs, dtype=dtype)
                row[0, label], row[0, j] = 1.0, -1.0
                disjuncts.append((row, torch.zeros(1, dtype=dtype)))
        return cls(disjuncts)

    @property
    def n_outputs(self) -> int:
        """Number of network outputs the property refers to."""
        return self.disjuncts[0][0].shape[-1]

    def stacked(self) -> tuple[Tensor, Tensor, list[int]]:
        """All rows as one ``(C, d)`` and, for each row, the disjunct it belongs to."""
        owner = [i for i, (C, _) in enumerate(self.disjuncts) for _ in range(len(C))]
        C = torch.cat([C for C, _ in self.disjuncts])
        d = torch.cat([d for _, d in self.disjuncts])
        return C, d, owner

    def holds_given(self, lower: Tensor) -> bool:
        """Whether lower bounds on the stacked rows rule out every unsafe region."""
        _, _, owner = self.stacked()
        ruled_out = [False] * len(self.disjuncts)
        for row, i in enumerate(owner):
            if float(lower[row]) > 0:
                ruled_out[i] = True
        return all(ruled_out)

    def violated_by(self, y: Tensor) -> bool:
        """Whether the output ``y`` lies in the unsafe region."""
        for C, d in self.disjuncts:
            values = C.to(y.dtype) @ y + d.to(y.dtype)
            if bool((values <= 0).all()):
                return True
        return False

    def to(self, dtype: torch.dtype | None = None, device=None) -> OutputProperty:
        """The property cast to ``dtype`` / moved to ``device``."""
        return OutputProperty(
            [
                (C.to(dtype=dtype, device=device), d.to(dtype=dtype, device=device))
                for C, d in self.disjuncts
            ]
        )


@dataclass
class Bound:
    """Lower bounds on the rows ``C f(x) + d`` over an input set, from one method.

    Attributes:
        lower: one lower bound per row.
        method: the bound that produced it (``ibp``, ``crown``, ``lp``, ``sdp``, …).
        sound: ``False`` when the number is an estimate, not a certificate (SDP-FO evaluated
            with Lanczos instead of an exact eigenvalue).
        seconds: wall time spent.
    """

    lower: Tensor
    method: str
    sound: bool = True
    seconds: float = 0.0

    @property
    def certified(self) -> bool:
        """Whether every row is certified positive (rows of a margin property)."""
        return self.sound and bool((self.lower > 0).all())
