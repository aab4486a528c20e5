"""SDP-FO: a first-order, memory-efficient solver for the dual of the SDP relaxation.

Dathathri, Dvijotham, Kurakin, Raghunathan, Uesato, Bunel, Shankar, Steinhardt, Goodfellow,
Liang and Kohli, "Enabling certification of verification-agnostic networks via
memory-efficient semidefinite programming", NeurIPS 2020 (arXiv 2010.11645). The relaxation is
that of Raghunathan, Steinhardt and Liang, "Semidefinite relaxations for certifying robustness
to adversarial examples", NeurIPS 2018 (arXiv 1811.01057).

For one output row ``f(x) = w·x_{L−1} + b`` (the property folded into the last layer) we bound
the largest *violation* ``−f`` over the activations ``x_0 … x_{L−1}`` (input and post-ReLU
vectors) from above; its negation is our lower bound. The ReLU ``x_{j+1} = relu(A_j x_j)`` is
written as a quadratic equality ``x_{j+1} ⊙ (A_j x_j − x_{j+1}) = 0`` (dual ``λ``, free) and two
linear inequalities ``x_{j+1} ≥ A_j x_j``, ``x_{j+1} ≥ 0`` (duals ``μ⁺, μ⁻ ≥ 0``); each
activation lies in an interval ``[l, u]`` from IBP or CROWN (dual ``ν ≥ 0`` on
``(x − l)(x − u) ≤ 0``). With ``x = centre + radius ⊙ z`` the Lagrangian becomes
``L̃(z) = c(λ) + g(λ)ᵀz + ½ zᵀH(λ)z`` over ``z ∈ [−1, 1]ᴺ⁻¹``. For any ``κ ≥ 0`` and
``M = [[0, gᵀ], [g, H]]``, the shift ``κ̂ = κ + max(0, −λ_min(diag(κ) − M))`` makes
``diag(κ̂) − M ⪰ 0``, hence ``max_z L̃ ≤ c + ½ Σ κ̂``: a valid upper bound for *every* feasible
choice of duals, which is what lets a first-order method stop anywhere.

Nothing of size ``N × N`` is built while optimising: ``g`` and ``H v`` come in closed form from
the layers' ``forward``, ``linear`` and ``backward`` maps, so memory stays linear in the number
of activations, and ``λ_min`` comes from a Lanczos iteration with full reorthogonalisation.
Lanczos over-estimates ``λ_min``, which makes its bound optimistic; the reported number is
therefore re-evaluated with an exact float64 eigenvalue (a certificate, ``sound=True``) when
``N ≤ exact_max_n``; up to ``proof_max_n`` the estimate, loosened until a float64 Cholesky
factorisation proves it, is the certificate (the factorisation scales further than an
eigendecomposition); beyond, the number is labelled an estimate (``sound=False``). Only the
certificate needs the ``N × N`` matrix, one row at a time.

Throughput: every row of a point, and the rows of many points (:func:`sdp_points`), are one
batch: each step's products are matrix–matrix products over the batch instead of one
matrix–vector product per row, the optimisation runs in float32 (the duals are any feasible
values; only the certificate needs float64), and with ``stop_when_certified`` a row leaves the
batch as soon as a float64 Cholesky factorisation proves its bound below zero
(:func:`proven_upper`, several times cheaper than an eigendecomposition).

Robustness: a network with no hidden layer is linear, and its exact minimum over the box is
the interval bound, which is returned (a certificate); an eigensolver that fails to converge
in float32 is retried in float64, and one that fails there too ends the optimisation (or, for
the certificate, leaves the row at its IBP value), so valid input never raises. Below float64
(``rounding``), the activation boxes carry rounding allowances; the certificate is computed
in float64, where a float32 network's weights are exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import Tensor

from stalwart.certify.bounds import BOUNDS
from stalwart.certify.crown import crown_layer_bounds
from stalwart.certify.deadline import Deadline
from stalwart.certify.ibp import ibp_rows, layer_bounds
from stalwart.certify.network import Affine, Network
from stalwart.certify.optim import Adam
from stalwart.certify.rounding import round_down
from stalwart.errors import ConfigError

Interval = tuple[Tensor, Tensor]
# Up to this N a dense eigendecomposition per step is faster than Lanczos's many small
# products (and exact); beyond it Lanczos keeps memory linear.
DENSE_MAX_N = 256
CHECK_EVERY = 50
"""With ``stop_when_certified``: the fewest optimisation steps between two rounds of proofs
(each a dense float64 matrix and its Cholesky factorisation per row checked)."""
PROOF_AIM = 0.05
"""With ``stop_when_certified``: the share of a row's (negative) running estimate a Cholesky
proof aims at. The estimate is optimistic (Lanczos over-estimates ``λ_min``) and any bound
below zero certifies, so the aim sits near zero, where a proof succeeds soonest."""
PROOF_SLACKS = (1e-3, 1e-2, 3e-2, 1e-1, 3e-1)
"""Above ``exact_max_n``: how far above the optimisation's estimate (on a row scaled so its IBP
slack is one) the certificate is tried, in turn, until a Cholesky factorisation proves one."""
GIVE_UP_FROM = 0.6
"""With ``give_up``: the share of the steps run before any row may be given up. Progress is
not smooth: rows that end proven often stall for a while first, and from a quarter of the
steps the rule lost most of the points it should have kept (``docs/results.md``)."""
GIVE_UP_HOPE = 2.0
"""With ``give_up``: a row is hopeless when its best estimate stays above zero even if, for
every ``check_every`` steps left, it improved this many times as much as over the last
``check_every``."""
OPTIMISE_DTYPE = torch.float32
"""The dtype the duals are optimised in: any duals give a valid bound, and the certificate is
recomputed in float64, so the optimisation needs no more digits (and runs twice as fast)."""


@dataclass(eq=False)
class SdpProblem:
    """A batch of rows' verification problems in the variables ``z ∈ [−1, 1]`` (module docstring).

    Row ``b`` of every tensor belongs to the ``b``-th row; rows of different points differ in
    their boxes, and all share the network.

    Attributes:
        hidden: the affine maps ``A_0 … A_{L−2}``, each followed by a ReLU.
        objective: ``(B, n_{L−1})``, the weight on ``x_{L−1}`` of the violation maximised
            (``−w / scale``).
        offset: ``(B,)``, its constant (``−b / scale``).
        scale: ``(B,)``, the factor each row was divided by, so the duals live on a unit scale.
        lower: per activation layer ``x_0 … x_{L−1}``, ``(B, n_j)`` interval lower bounds.
        upper: the upper bounds, same shapes.
    """

    hidden: list[Affine]
    objective: Tensor
    offset: Tensor
    scale: Tensor
    lower: list[Tensor]
    upper: list[Tensor]

    def __post_init__(self) -> None:
        self.centre = [(lo + hi) / 2 for lo, hi in zip(self.lower, self.upper, strict=True)]
        self.radius = [(hi - lo) / 2 for lo, hi in zip(self.lower, self.upper, strict=True)]
        self.sizes = [t.shape[-1] for t in self.lower]

    @property
    def n(self) -> int:
        """``N``: one plus the number of activations (inputs and ReLU units)."""
        return 1 + sum(self.sizes)

    @property
    def batch(self) -> int:
        """``B``, the number of rows."""
        return self.objective.shape[0]

    def split(self, v: Tensor) -> list[Tensor]:
        """Cut ``(…, N − 1)`` into per-layer blocks."""
        return list(torch.split(v, self.sizes, dim=-1))

    def to(self, dtype: torch.dtype) -> SdpProblem:
        """The same problem in another dtype (float64 for the certificate)."""
        cast = lambda t: t.detach().to(dtype)  # noqa: E731
        return SdpProblem(
            [layer.map(cast) for layer in self.hidden],
            cast(self.objective),
            cast(self.offset),
            cast(self.scale),
            [cast(t) for t in self.lower],
            [cast(t) for t in self.upper],
        )

    def select(self, rows: Tensor | list[int]) -> SdpProblem:
        """The problems of ``rows`` (positions or a mask), on the same network."""
        return SdpProblem(
            self.hidden,
            self.objective[rows],
            self.offset[rows],
            self.scale[rows],
            [t[rows] for t in self.lower],
            [t[rows] for t in self.upper],
        )

    @staticmethod
    def concat(problems: list[SdpProblem]) -> SdpProblem:
        """One batch of several batches' rows (on the first one's network)."""
        join = lambda ts: torch.cat(list(ts))  # noqa: E731
        return SdpProblem(
            problems[0].hidden,
            join(p.objective for p in problems),
            join(p.offset for p in problems),
            join(p.scale for p in problems),
            [join(ts) for ts in zip(*(p.lower for p in problems), strict=True)],
            [join(ts) for ts in zip(*(p.upper for p in problems), strict=True)],
        )


@dataclass(eq=False)
class SdpDuals:
    """Dual variables of a batch of rows' problems (row ``b`` of each tensor for row ``b``).

    ``lam``, ``mu_plus`` and ``mu_minus`` hold one ``(B, width)`` tensor per ReLU layer, ``nu``
    one per activation layer (input included), and ``kappa`` is ``(B, N)``.
    """

    lam: list[Tensor]
    mu_plus: list[Tensor]
    mu_minus: list[Tensor]
    nu: list[Tensor]
    kappa: Tensor

    def tensors(self) -> list[Tensor]:
        """Every dual tensor, in a fixed order (for the optimiser)."""
        return [*self.lam, *self.mu_plus, *self.mu_minus, *self.nu, self.kappa]

    def nonnegative(self) -> list[Tensor]:
        """The duals of inequality constraints, projected to ``≥ 0`` after each step."""
        return [*self.mu_plus, *self.mu_minus, *self.nu, self.kappa]

    def _map(self, fn) -> SdpDuals:
        k = len(self.lam)
        ts = [fn(t) for t in self.tensors()]
        return SdpDuals(ts[:k], ts[k : 2 * k], ts[2 * k : 3 * k], ts[3 * k : -1], ts[-1])

    def clone(self, dtype: torch.dtype | None = None) -> SdpDuals:
        """A detached copy, optionally cast."""
        return self._map(lambda t: t.detach().clone().to(dtype or t.dtype))

    def select(self, rows: Tensor | list[int]) -> SdpDuals:
        """A detached copy of ``rows`` (positions or a mask)."""
        return self._map(lambda t: t.detach()[rows].clone())

    def put(self, rows: Tensor, other: SdpDuals) -> None:
        """Overwrite ``rows`` with ``other``'s rows, in order."""
        with torch.no_grad():
            for mine, theirs in zip(self.tensors(), other.tensors(), strict=True):
                mine[rows] = theirs.detach().to(mine.dtype)


def activation_boxes(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    pre_bounds: list[Interval] | None = None,
    *,
    rounding: bool = False,
) -> list[Interval]:
    """Interval bounds on every activation layer ``x_0 … x_{L−1}`` (input box, post-ReLU boxes).

    IBP (``stalwart.certify.ibp.layer_bounds``) supplies the pre-activation bounds; given
    ``pre_bounds`` (e.g. CROWN's, one ``(l, u)`` per ReLU layer, optionally with the last
    layer's appended) are intersected with them, so the tighter of the two is used. With
    ``rounding`` the IBP bounds carry a rounding allowance (and so must ``pre_bounds``).
    """
    n_relu = len(net.layers) - 1
    if n_relu:
        hidden = Network(net.layers[:-1], net.input_shape)
        pre = layer_bounds(hidden, lower[None], upper[None], rounding=rounding)
        pre = [(lo[0], hi[0]) for lo, hi in pre]
    else:
        pre = []
    if pre_bounds is not None:
        if len(pre_bounds) not in (n_relu, n_relu + 1):
            raise ConfigError(
                f"pre_bounds needs one (lower, upper) pair per ReLU layer ({n_relu}, or "
                f"{n_relu + 1} with the output layer); got {len(pre_bounds)}"
            )
        tight = []
        for (lo, hi), (plo, phi) in zip(pre, pre_bounds[:n_relu], strict=True):
            plo = plo.detach().reshape(-1).to(lo)
            phi = phi.detach().reshape(-1).to(hi)
            if plo.shape != lo.shape or phi.shape != hi.shape:
                raise ConfigError(
                    f"pre_bounds entry has {plo.numel()} units but the layer has {lo.numel()}"
                )
            tight.append((torch.maximum(lo, plo), torch.minimum(hi, phi)))
        pre = tight
    boxes = [(lower, upper)]
    boxes += [(torch.relu(lo), torch.relu(torch.maximum(lo, hi))) for lo, hi in pre]
    return boxes


def rows_problem(
    net: Network, boxes: list[Interval], C: Tensor, d: Tensor, scale: Tensor | None = None
) -> SdpProblem:
    """The problems of the rows ``C f(x) + d`` over one point's ``boxes``.

    Each row is scaled so that its IBP gap is one (or by ``scale``).
    """
    last = net.layers[-1]
    C = C.reshape(-1, net.out_features)
    weight = C @ last.dense_weight()
    bias = C @ last.bias + d.reshape(-1)
    rows = len(C)
    lower = [lo.reshape(1, -1).expand(rows, -1) for lo, _ in boxes]
    upper = [hi.reshape(1, -1).expand(rows, -1) for _, hi in boxes]
    if scale is None:
        # Dividing the row by its IBP slack puts every problem on the same scale, so one
        # learning rate suits small and large networks alike; the bound is rescaled at the end.
        scale = (((upper[-1] - lower[-1]) / 2) * weight.abs()).sum(-1)
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return SdpProblem(
        list(net.layers[:-1]),
        -weight / scale[:, None],
        -bias / scale,
        scale,
        lower,
        upper,
    )


def ibp_duals(problem: SdpProblem) -> SdpDuals:
    """Duals whose bound equals IBP's: every multiplier zero, ``κ₀ = Σ|g|``, ``κ_{1:} = |g|``.

    With ``H = 0`` the matrix ``diag(κ) − M`` is a sum of ``2 × 2`` blocks
    ``[[|g_i|, −g_i], [−g_i, |g_i|]] ⪰ 0``, so no shift is needed and ``c + ½ Σ κ = c + Σ|g|``,
    the interval bound on the last layer.
    """
    lam = [torch.zeros_like(lo) for lo in problem.lower[1:]]
    nu = [torch.zeros_like(lo) for lo in problem.lower]
    duals = SdpDuals(lam, [t.clone() for t in lam], [t.clone() for t in lam], nu, None)  # type: ignore[arg-type]
    _, g = constant_and_gradient(problem, duals)
    duals.kappa = torch.cat([g.abs().sum(-1, keepdim=True), g.abs()], dim=-1)
    return duals


def constant_and_gradient(problem: SdpProblem, duals: SdpDuals) -> tuple[Tensor, Tensor]:
    """``c(λ) = L̃(0)`` ``(B,)`` and ``g(λ) = ∇L̃(0)`` ``(B, N − 1)``, in closed form."""
    m, lo, hi = problem.centre, problem.lower, problem.upper
    value = (problem.objective * m[-1]).sum(-1) + problem.offset
    grads = [-nu * (2 * mi - li - ui) for nu, mi, li, ui in zip(duals.nu, m, lo, hi, strict=True)]
    for nu, mi, li, ui in zip(duals.nu, m, lo, hi, strict=True):
        value = value - (nu * ((mi - li) * (mi - ui))).sum(-1)
    grads[-1] = grads[-1] + problem.objective
    for j, layer in enumerate(problem.hidden):
        lam, mup, mum = duals.lam[j], duals.mu_plus[j], duals.mu_minus[j]
        pre = layer.forward(m[j])
        nxt = m[j + 1]
        value = value + (lam * (nxt * (pre - nxt)) + mup * (nxt - pre) + mum * nxt).sum(-1)
        grads[j + 1] = grads[j + 1] + lam * (pre - 2 * nxt) + mup + mum
        grads[j] = grads[j] + layer.backward(lam * nxt - mup)
    g = torch.cat([r * gi for r, gi in zip(problem.radius, grads, strict=True)], dim=-1)
    return value, g


def hessian_product(problem: SdpProblem, duals: SdpDuals, v: Tensor) -> Tensor:
    """``H(λ) v`` for ``v`` of shape ``(K, N − 1)``, without forming ``H``.

    Row ``k`` of ``v`` is multiplied by row ``k``'s ``H`` when the batch has ``K`` rows, and by
    the one row's ``H`` when it has one. ``H = R ∇²L R`` with ``R = diag(radius)``; ``∇²L``
    couples ``x_j`` and ``x_{j+1}`` through ``diag(λ_j) W_j`` and has diagonal ``−2λ − 2ν``.
    """
    y = [r * vi for r, vi in zip(problem.radius, problem.split(v), strict=True)]
    out = [-2 * nu * yi for nu, yi in zip(duals.nu, y, strict=True)]
    for j, layer in enumerate(problem.hidden):
        lam = duals.lam[j]
        out[j + 1] = out[j + 1] + lam * (layer.linear(y[j]) - 2 * y[j + 1])
        out[j] = out[j] + layer.backward(lam * y[j + 1])
    return torch.cat([r * oi for r, oi in zip(problem.radius, out, strict=True)], dim=-1)


def a_product(problem: SdpProblem, duals: SdpDuals, g: Tensor, u: Tensor) -> Tensor:
    """``(diag(κ) − M(λ)) u`` for ``u`` of shape ``(K, N)``, ``M = [[0, gᵀ], [g, H]]``.

    Rows pair with the batch's rows as in :func:`hessian_product`.
    """
    head, tail = u[:, :1], u[:, 1:]
    m_head = (tail * g).sum(-1, keepdim=True)
    m_tail = head * g + hessian_product(problem, duals, tail)
    return duals.kappa * u - torch.cat([m_head, m_tail], dim=1)


def dense_a(problem: SdpProblem, duals: SdpDuals, g: Tensor, chunk: int = 512) -> Tensor:
    """``diag(κ) − M(λ)`` of every row, dense and symmetric: ``(B, N, N)``.

    Built from ``N`` products per row (``O(N²)`` memory per row).
    """
    n = problem.n
    eye = torch.eye(n, dtype=g.dtype, device=g.device)
    matrices = []
    for b in range(problem.batch):
        row, row_duals, row_g = problem.select([b]), duals.select([b]), g[b : b + 1]
        a = torch.cat([a_product(row, row_duals, row_g, eye[i : i + chunk])
                       for i in range(0, n, chunk)])  # fmt: skip
        matrices.append((a + a.T) / 2)
    return torch.stack(matrices)


def lanczos_min(matvec, start: Tensor, iters: int) -> tuple[Tensor, Tensor]:
    """The smallest Ritz values ``(B,)`` and unit vectors ``(B, N)`` of ``B`` matrices at once.

    ``iters`` Lanczos steps from ``start`` ``(B, N)``; ``matvec`` maps ``(B, N)`` row by row.

    Full Gram–Schmidt reorthogonalisation keeps each basis close to orthonormal; the value
    returned is the Rayleigh quotient of the unit vector found, so never below the true
    ``λ_min`` (an estimate from above), however far the basis drifted.
    """
    rows, n = start.shape
    k = min(iters, n)
    basis = torch.zeros(rows, k, n, dtype=start.dtype, device=start.device)
    alpha = torch.zeros(rows, k, dtype=start.dtype, device=start.device)
    beta = torch.zeros(rows, k, dtype=start.dtype, device=start.device)
    q = start / start.norm(dim=-1, keepdim=True)
    tiny = torch.finfo(start.dtype).tiny
    for i in range(k):
        basis[:, i] = q
        w = matvec(q)
        alpha[:, i] = (q * w).sum(-1)
        done = basis[:, : i + 1]
        # One Gram–Schmidt pass: the basis need only be nearly orthonormal, since the value
        # returned is the Rayleigh quotient of the vector found, computed afresh.
        w = w - ((done @ w[:, :, None]).transpose(1, 2) @ done)[:, 0]
        if i + 1 < k:
            beta[:, i] = w.norm(dim=-1)
            # A vanishing residual means the Krylov space is invariant; the basis vector that
            # follows is then noise orthogonal to it, which keeps the Rayleigh–Ritz step valid.
            q = w / beta[:, i : i + 1].clamp_min(tiny)
    off = beta[:, : k - 1]
    tri = torch.diag_embed(alpha) + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
    vectors = smallest_eigenvector(tri)
    vec = (vectors[:, None, :] @ basis)[:, 0]
    vec = vec / vec.norm(dim=-1, keepdim=True)
    return (vec * matvec(vec)).sum(-1), vec


def smallest_eigenvector(a: Tensor) -> Tensor:
    """Unit eigenvectors ``(…, N)`` of the smallest eigenvalues of symmetric ``a`` ``(…, N, N)``.

    Raises:
        torch.linalg.LinAlgError: if the solver fails in ``a``'s dtype and in float64.
    """
    try:
        return torch.linalg.eigh(a)[1][..., :, 0]
    except torch.linalg.LinAlgError:
        # float32 eigh fails to converge on some badly scaled matrices; float64 does not.
        if a.dtype == torch.float64:
            raise
        return torch.linalg.eigh(a.double())[1][..., :, 0].to(a.dtype)


def _float64(problem: SdpProblem, duals: SdpDuals) -> tuple[SdpProblem, SdpDuals, Tensor, Tensor]:
    """The problem and projected duals in float64, with ``c + ½ Σ κ`` and ``g``."""
    problem = problem.to(torch.float64)
    duals = duals.clone(torch.float64)
    _project(duals)
    c, g = constant_and_gradient(problem, duals)
    return problem, duals, c + 0.5 * duals.kappa.sum(-1), g


def exact_upper(problem: SdpProblem, duals: SdpDuals) -> Tensor:
    """The sound dual bound on each row's (scaled) violation ``(B,)``, by an exact ``λ_min``.

    The eigenvalue is computed in float64; the symmetric eigensolver's backward error is a small
    multiple of ``N ε ‖A‖``, and subtracting that from ``λ_min`` keeps the certificate valid
    despite rounding. Where the solver fails, no bound is known: ``inf``.
    """
    problem, duals, base, g = _float64(problem, duals)
    n, eps = problem.n, torch.finfo(torch.float64).eps
    out = torch.full((problem.batch,), math.inf, dtype=torch.float64)
    for b in range(problem.batch):
        a = dense_a(problem.select([b]), duals.select([b]), g[b : b + 1])[0]
        try:
            smallest = float(torch.linalg.eigvalsh(a)[0])
        except torch.linalg.LinAlgError:
            continue
        if not math.isfinite(smallest):
            continue
        smallest -= n * eps * float(torch.linalg.norm(a))
        out[b] = float(base[b]) + 0.5 * n * max(0.0, -smallest)
    return out


def proven_upper(problem: SdpProblem, duals: SdpDuals, aim: Tensor) -> Tensor:
    """Each row's dual bound proven at its ``aim`` by Cholesky ``(B,)``, or ``inf`` where not.

    ``aim`` is ``(B,)``, or ``(B, T)`` for aims tried in turn (the first proven is returned;
    the matrix is built once). The bound ``c + ½ Σ κ + ½ N t`` holds once
    ``diag(κ) − M + t I ⪰ 0``: ``t ≥ 0`` is chosen so that it equals the aim, and a float64
    Cholesky factorisation that runs to completion on that matrix less a rounding margin
    proves it positive definite (Rump, "Verification of positive definiteness", BIT 2006: a
    margin of ``γ_{N+1}/(1 − 2γ_{N+1})·trace`` covers the factorisation's rounding; twice that,
    plus ``N ε ‖A‖`` as in :func:`exact_upper`, also covers forming the matrix). A Cholesky
    factorisation costs a fraction of an eigendecomposition.
    """
    problem, duals, base, g = _float64(problem, duals)
    n, eps = problem.n, torch.finfo(torch.float64).eps
    gamma = (n + 1) * eps / (1 - (n + 1) * eps)
    aims = aim.reshape(problem.batch, -1)
    out = torch.full((problem.batch,), math.inf, dtype=torch.float64)
    for b in range(problem.batch):
        a = dense_a(problem.select([b]), duals.select([b]), g[b : b + 1])[0]
        norm = float(torch.linalg.norm(a))
        for target in aims[b].tolist():
            if not math.isfinite(target):
                continue
            shift = max(0.0, 2 * (target - float(base[b])) / n)
            shifted = a.clone()
            shifted.diagonal().add_(shift)
            margin = 2 * gamma / (1 - 2 * gamma) * float(shifted.diagonal().abs().sum())
            shifted.diagonal().sub_(margin + n * eps * (norm + shift) + 1e-300)
            if int(torch.linalg.cholesky_ex(shifted)[1]) == 0:
                out[b] = float(base[b]) + 0.5 * n * shift
                break
    return out


def _project(duals: SdpDuals) -> None:
    with torch.no_grad():
        for t in duals.nonnegative():
            t.clamp_(min=0)


def _dual_value(problem: SdpProblem, duals: SdpDuals, vec: Tensor) -> Tensor:
    """``c + ½ Σ κ + ½ N max(0, −vᵀ A v)`` per row ``(B,)``, differentiable in the duals.

    ``v`` is held fixed: the gradient is the subgradient of the dual objective at the
    eigenvector ``v`` (the eigenvector itself is not differentiated, as in the paper).
    """
    c, g = constant_and_gradient(problem, duals)
    rayleigh = (vec * a_product(problem, duals, g, vec)).sum(-1)
    return c + 0.5 * duals.kappa.sum(-1) + 0.5 * problem.n * torch.relu(-rayleigh)


@dataclass(eq=False)
class Optimised:
    """What :func:`optimise_rows` ends with, per row of the batch.

    Attributes:
        best: the duals of the lowest estimated bound seen.
        estimate: that bound ``(B,)`` (with Lanczos, an estimate that may be optimistic).
        last: the duals the optimisation ended with (those that proved it, for a proven row).
        proven: the bound that ended the row early ``(B,)``: a certificate; ``inf`` if none.
    """

    best: SdpDuals
    estimate: Tensor
    last: SdpDuals
    proven: Tensor


def optimise_rows(
    problem: SdpProblem,
    *,
    steps: int,
    lr: float,
    lanczos_iters: int,
    generator: torch.Generator,
    deadline: Deadline | None = None,
    prove: Callable[[Tensor, SdpDuals, Tensor], Tensor] | None = None,
    check_every: int = CHECK_EVERY,
    give_up: Tensor | None = None,
) -> Optimised:
    """Adam on every row's duals from the IBP initialisation, projected to the feasible set.

    The rows are independent problems that share each step's batched products.

    With ``prove`` (``prove(rows, duals, aim)``: bounds of those rows of the batch, proven or
    ``inf``, e.g. :func:`proven_upper`), once a row's estimate says it holds (below zero) a
    proof of ``PROOF_AIM`` of that estimate is tried, at most every ``check_every`` steps, and
    a row proven below zero leaves the batch: it is certified, and further steps would only tighten
    a bound nobody needs. With ``give_up`` (``(B,)``, the group of each row, e.g. its point),
    every ``check_every`` steps after ``GIVE_UP_FROM`` of them a row whose estimate is not
    going to reach zero (``GIVE_UP_HOPE``) leaves the batch with every row of its group: a
    point whose margins must all hold fails with one row, and its other rows' steps are saved.
    ``λ_min`` is exact (a dense ``eigh``) when
    ``N ≤ max(lanczos_iters, DENSE_MAX_N)`` and from Lanczos otherwise; Lanczos starts from the
    previous eigenvector plus noise, which tracks the slowly moving minimum eigenvector and
    still explores the rest of the space. The optimisation stops early when the deadline
    passes or the eigensolver fails even in float64 (any duals are valid).
    """
    duals = ibp_duals(problem)
    best, last = duals.clone(), duals.clone()
    best_value = torch.full((problem.batch,), math.inf, dtype=torch.float64)
    proven = torch.full((problem.batch,), math.inf, dtype=torch.float64)
    for t in duals.tensors():
        t.requires_grad_(True)
    # Adam moves every coordinate by about the learning rate, so the bound moves by about N
    # times it: dividing by N keeps a step's effect comparable across network sizes. The
    # objective is non-smooth (λ_min), so the step is annealed to settle near the optimum.
    n = problem.n
    optimiser = Adam(duals.tensors(), lr / n, steps=max(steps, 1), final=1e-3)
    dtype, device = problem.centre[0].dtype, problem.centre[0].device
    rows = torch.arange(problem.batch)  # the active rows' places in the batch
    previous: Tensor | None = None
    last_check = last_look = -check_every
    looked: Tensor | None = None  # every row's best estimate at the previous look
    for step in range(steps):
        if deadline is not None and deadline.passed:
            break
        with torch.no_grad():
            _, g = constant_and_gradient(problem, duals)
            try:
                if n <= max(lanczos_iters, DENSE_MAX_N):
                    vec = smallest_eigenvector(dense_a(problem, duals, g))
                else:
                    noise = torch.randn(len(rows), n, generator=generator, dtype=dtype)
                    start = (noise / noise.norm(dim=-1, keepdim=True)).to(device)
                    if previous is not None:
                        start = start + 2 * previous
                    matvec = lambda u, p=problem, du=duals, g=g: a_product(p, du, g, u)  # noqa: E731
                    _, vec = lanczos_min(matvec, start, lanczos_iters)
            except torch.linalg.LinAlgError:
                break
            if not bool(torch.isfinite(vec).all()):
                break
            previous = vec
        value = _dual_value(problem, duals, vec)
        current = value.detach().double().cpu()
        better = current < best_value[rows]
        if bool(better.any()):
            best.put(rows[better], duals.select(better))
            best_value[rows[better]] = current[better]
        done = torch.zeros(0, dtype=torch.long)
        holds = current < 0
        if prove is not None and bool(holds.any()) and step - last_check >= check_every:
            last_check = step
            tried = torch.nonzero(holds)[:, 0]
            checked = duals.select(tried)
            bounds = prove(rows[tried], checked, current[tried] * PROOF_AIM)
            done = tried[bounds < 0]
            proven[rows[done]] = bounds[bounds < 0]
            last.put(rows[done], checked.select(bounds < 0))
        keep = torch.ones(len(rows), dtype=torch.bool)
        keep[done] = False
        if give_up is not None and step >= GIVE_UP_FROM * steps and step - last_look >= check_every:
            if looked is not None:
                now = best_value[rows]
                gained = (looked[rows] - now).clamp(min=0)
                hopeless = now - GIVE_UP_HOPE * gained * (steps - step) / (step - last_look) > 0
                leaving = torch.isin(give_up[rows], give_up[rows[hopeless]]) & keep
                last.put(rows[leaving], duals.select(leaving))
                keep &= ~leaving
            last_look, looked = step, best_value.clone()
        optimiser.zero_grad()
        value.sum().backward()
        optimiser.step()
        _project(duals)
        if not bool(keep.all()):  # proven rows, and given-up groups, leave the batch
            if not bool(keep.any()):
                return Optimised(best, best_value, last, proven)
            rows, problem, previous = rows[keep], problem.select(keep), previous[keep]
            duals = duals.select(keep)
            for t in duals.tensors():
                t.requires_grad_(True)
            optimiser.keep(duals.tensors(), keep)
    last.put(rows, duals)
    return Optimised(best, best_value, last, proven)


def sdp_points(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    C: Tensor,
    d: Tensor,
    *,
    steps: int = 1000,
    lr: float = 1.0,
    lanczos_iters: int = 30,
    exact_max_n: int = 4000,
    proof_max_n: int = 12000,
    seed: int = 0,
    pre_bounds: list[list[Interval]] | None = None,
    intermediate: Literal["ibp", "crown"] = "ibp",
    stop_at_failure: bool = False,
    stop_when_certified: bool = False,
    give_up: bool = False,
    rounding: bool = False,
    deadline: Deadline | None = None,
) -> tuple[Tensor, bool]:
    """SDP-FO lower bounds on the rows ``C_p f(x) + d_p`` over each point ``p``'s box.

    All rows of all points are optimised as one batch.

    Dathathri et al. 2020 (arXiv 2010.11645), on the relaxation of Raghunathan et al. 2018
    (arXiv 1811.01057). Each row is optimised from its IBP value; the reported bound is never
    below IBP.

    Args:
        net: the network (any dtype and device; the work follows it).
        lower: input lower bounds, ``(P, n)``.
        upper: input upper bounds, same shape.
        C: ``(P, rows, outputs)``.
        d: ``(P, rows)``.
        steps: Adam steps per row.
        lr: Adam's step budget: each coordinate moves by about ``lr / N`` per step, on the row
            scaled so that its IBP slack is one; cosine-annealed to 1e-3 of that. Tiny networks
            (``N`` in the tens) converge faster with 3–10. (jax_verify's
            ``solve_sdp_dual_simple`` defaults to Adam at 1e3, a slip for 1e-3.)
        lanczos_iters: Lanczos iterations per step (a dense ``eigh`` when ``N`` is at most
            this or ``DENSE_MAX_N``).
        exact_max_n: largest ``N = 1 + activations`` for which the final bound is evaluated
            with an exact float64 eigenvalue and returned as a certificate.
        proof_max_n: above ``exact_max_n`` and up to this ``N``, the final bound is a
            certificate too: the optimisation's estimate, loosened step by step
            (``PROOF_SLACKS``) until a float64 Cholesky factorisation proves it (IBP's value if
            none does). Needs ``8 N²`` bytes per row (1.1 GiB at the default 12,000).
        seed: seeds Lanczos's random start vectors.
        pre_bounds: optional, per point, pre-activation bounds ``[(l, u), …]`` per ReLU layer
            (e.g. from CROWN), intersected with IBP's.
        intermediate: without ``pre_bounds``, the activation boxes come from IBP alone
            (``"ibp"``) or from CROWN too (``"crown"``: tighter boxes, a tighter relaxation; the
            reference uses CROWN-IBP).
        stop_at_failure: once one of a point's rows is not proven positive, report its rows
            not yet evaluated as ``-inf`` (enough to decide a margin property; saves their
            final exact evaluations).
        stop_when_certified: where bounds are certificates (see ``sound``), a row leaves the
            optimisation as soon as a float64 Cholesky factorisation proves it positive
            (tried at most every ``CHECK_EVERY`` steps, once the estimate says so): its bound
            is then a certificate above zero, not the tightest one (enough to certify, much
            cheaper).
        give_up: once one of a point's rows looks hopeless (its estimate is not going to
            reach zero even at an optimistic rate; ``GIVE_UP_FROM``, ``GIVE_UP_HOPE``), all the
            point's rows leave the optimisation with the bounds reached so far (still valid,
            looser). For deciding margin properties with ``stop_at_failure``: a heuristic that
            saves the steps of points that will not be certified, and may lose a point the
            remaining steps would have certified.
        rounding: the network is below float64; see the module docstring.
        deadline: optimisation stops when it passes; rows keep the best bound proven by then
            (their IBP value at the least).

    Returns:
        ``(lower_rows (P, rows), sound)``: ``sound`` is True when every row's bound is a
        certificate (``N ≤ max(exact_max_n, proof_max_n)``); else the numbers are Lanczos
        estimates (possibly too optimistic), not certificates.

    Raises:
        ConfigError: on a non-positive ``steps``/``lanczos_iters``/``lr`` or mismatched shapes.
    """
    if steps < 0 or lanczos_iters < 1 or not lr > 0 or exact_max_n < 0 or proof_max_n < 0:
        raise ConfigError(
            "sdp needs steps >= 0, lanczos_iters >= 1, lr > 0, exact_max_n >= 0 and "
            f"proof_max_n >= 0; got steps={steps}, lanczos_iters={lanczos_iters}, lr={lr}, "
            f"exact_max_n={exact_max_n}, proof_max_n={proof_max_n}"
        )
    net = net.detach()
    points = lower.shape[0]
    lower, upper = lower.reshape(points, -1), upper.reshape(points, -1)
    if lower.shape[1] != net.in_features or upper.shape != lower.shape:
        raise ConfigError(
            f"the input box has {lower.shape[1]} entries but the network takes {net.in_features}"
        )
    C = C.reshape(points, -1, net.out_features)
    d = d.reshape(points, -1)
    if pre_bounds is not None and len(pre_bounds) != points:
        raise ConfigError(f"pre_bounds needs one list per point ({points}); got {len(pre_bounds)}")
    if pre_bounds is None and intermediate == "crown" and len(net.layers) > 1:
        layers = crown_layer_bounds(net, lower, upper, rounding=rounding, deadline=deadline)[:-1]
        pre_bounds = [[(lo[p], hi[p]) for lo, hi in layers] for p in range(points)]
    if len(net.layers) == 1:
        # A linear network: the minimum of a linear function over a box is the interval
        # bound, exactly; there is no relaxation to tighten.
        with torch.no_grad():
            return ibp_rows(net, lower, upper, C, d, rounding=rounding), True
    generator = torch.Generator().manual_seed(seed)
    # The certificate is evaluated in float64 on the same weights (exact when cast up).
    f64 = torch.float64
    net64 = net.detach(dtype=f64)
    pieces, pieces64 = [], []
    with torch.no_grad():
        for p in range(points):
            pre = None if pre_bounds is None else pre_bounds[p]
            boxes = activation_boxes(net, lower[p], upper[p], pre, rounding=rounding)
            boxes64 = [(lo.to(f64), hi.to(f64)) for lo, hi in boxes]
            pieces.append(rows_problem(net, boxes, C[p], d[p]))
            pieces64.append(rows_problem(net64, boxes64, C[p].to(f64), d[p].to(f64),
                                         scale=pieces[-1].scale.to(f64)))  # fmt: skip
        problem64 = SdpProblem.concat(pieces64)
        upper_bound = _ibp_value(problem64)
    exact = problem64.n <= exact_max_n
    provable = problem64.n <= max(exact_max_n, proof_max_n)
    result = None
    if deadline is None or not deadline.passed:
        prove = None
        if stop_when_certified and provable:

            def prove(rows, duals, aim):  # noqa: E306
                return proven_upper(problem64.select(rows), duals, aim)

        work = SdpProblem.concat(pieces).to(OPTIMISE_DTYPE)
        groups = torch.arange(points).repeat_interleave(C.shape[1]) if give_up else None
        with torch.enable_grad():
            result = optimise_rows(
                work, steps=steps, lr=lr, lanczos_iters=lanczos_iters,
                generator=generator, deadline=deadline, prove=prove, give_up=groups,
            )  # fmt: skip
    per_point = C.shape[1]
    with torch.no_grad():
        for p in range(points):
            failed = False
            for b in range(p * per_point, (p + 1) * per_point):
                if result is not None and math.isfinite(result.proven[b]):
                    upper_bound[b] = min(upper_bound[b], result.proven[b])  # exact already
                    continue
                if stop_at_failure and failed:
                    upper_bound[b] = math.inf  # a lower bound of -inf: not evaluated
                    continue
                row = problem64.select([b])
                if result is not None and exact:
                    candidates = [result.best] if steps == 0 else [result.best, result.last]
                    for duals in candidates:
                        if deadline is not None and deadline.left < _eigh_seconds(row.n):
                            break  # an eigendecomposition cannot be interrupted
                        found = exact_upper(row, duals.select([b]))[0]
                        upper_bound[b] = min(upper_bound[b], found)
                elif result is not None and provable:
                    if deadline is None or deadline.left >= _eigh_seconds(row.n) / 4:
                        aims = result.estimate[b] + torch.tensor(PROOF_SLACKS, dtype=f64)
                        found = proven_upper(row, result.best.select([b]), aims[None])[0]
                        upper_bound[b] = min(upper_bound[b], found)
                elif result is not None:
                    upper_bound[b] = min(upper_bound[b], result.estimate[b])
                failed = bool(upper_bound[b] >= 0)
    rows = (-upper_bound * problem64.scale).reshape(points, per_point)
    # Computed in float64; rounded down, not to nearest, into the network's dtype.
    return round_down(rows, lower.dtype).to(lower.device), provable


def sdp_rows(
    net: Network, lower: Tensor, upper: Tensor, C: Tensor, d: Tensor, *,
    pre_bounds: list[Interval] | None = None, **options,
) -> tuple[Tensor, bool]:  # fmt: skip
    """SDP-FO lower bounds on each row of ``C f(x) + d`` over one box: ``(rows, sound)``.

    :func:`sdp_points` with one point: ``lower``/``upper`` flat ``(n,)``, ``C``
    ``(rows, outputs)``, ``d`` ``(rows,)``, ``pre_bounds`` one ``(l, u)`` per ReLU layer.
    """
    rows, sound = sdp_points(
        net, lower.reshape(1, -1), upper.reshape(1, -1), C.reshape(1, len(C), -1),
        d.reshape(1, -1), pre_bounds=None if pre_bounds is None else [pre_bounds], **options,
    )  # fmt: skip
    return rows[0], sound


def _eigh_seconds(n: int) -> float:
    """A generous guess of a dense float64 eigendecomposition's time on a CPU core."""
    return 0.05 + 2.0 * (n / 1000) ** 3


def _ibp_value(problem: SdpProblem) -> Tensor:
    """The IBP upper bound on each row's scaled violation ``(B,)``.

    That is ``objective·centre + |objective|·radius``.
    """
    return (
        (problem.objective * problem.centre[-1]).sum(-1)
        + (problem.objective.abs() * problem.radius[-1]).sum(-1)
        + problem.offset
    )


@BOUNDS.register("sdp")
def _sdp(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    C: Tensor,
    d: Tensor,
    *,
    steps: Annotated[int, Field(ge=0)] = 1000,
    lr: Annotated[float, Field(gt=0)] = 1.0,
    lanczos_iters: Annotated[int, Field(ge=1)] = 30,
    exact_max_n: Annotated[int, Field(ge=0)] = 4000,
    proof_max_n: Annotated[int, Field(ge=0)] = 12000,
    seed: int = 0,
    pre_bounds: list[tuple[Tensor, Tensor]] | None = None,
    intermediate: Literal["ibp", "crown"] = "crown",
    stop_at_failure: bool = False,
    stop_when_certified: bool = False,
    give_up: bool = False,
    rounding: bool = False,
    deadline: Deadline | None = None,
) -> tuple[Tensor, bool]:
    """SDP-FO (:func:`sdp_points`), activation boxes from CROWN unless ``intermediate="ibp"``."""
    return sdp_rows(
        net,
        lower,
        upper,
        C,
        d,
        steps=steps,
        lr=lr,
        lanczos_iters=lanczos_iters,
        exact_max_n=exact_max_n,
        proof_max_n=proof_max_n,
        seed=seed,
        pre_bounds=pre_bounds,
        intermediate=intermediate,
        stop_at_failure=stop_at_failure,
        stop_when_certified=stop_when_certified,
        give_up=give_up,
        rounding=rounding,
        deadline=deadline,
    )
