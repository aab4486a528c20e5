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
``N ≤ exact_max_n``, and labelled an estimate (``sound=False``) otherwise.

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
"""With ``stop_when_certified``: the fewest optimisation steps between two exact eigenvalue
checks (each a dense float64 decomposition, the cost of tens of steps at ``N`` in the
thousands)."""


@dataclass(eq=False)
class SdpProblem:
    """One row's verification problem in the variables ``z ∈ [−1, 1]`` (see module docstring).

    Attributes:
        hidden: the affine maps ``A_0 … A_{L−2}``, each followed by a ReLU.
        objective: the weight on ``x_{L−1}`` of the violation being maximised (``−w / scale``).
        offset: its constant (``−b / scale``).
        scale: the factor the row was divided by, so that the duals live on a unit scale.
        lower: interval lower bounds on ``x_0 … x_{L−1}``.
        upper: interval upper bounds on ``x_0 … x_{L−1}``.
    """

    hidden: list[Affine]
    objective: Tensor
    offset: Tensor
    scale: float
    lower: list[Tensor]
    upper: list[Tensor]

    def __post_init__(self) -> None:
        self.centre = [(lo + hi) / 2 for lo, hi in zip(self.lower, self.upper, strict=True)]
        self.radius = [(hi - lo) / 2 for lo, hi in zip(self.lower, self.upper, strict=True)]
        self.sizes = [t.numel() for t in self.lower]

    @property
    def n(self) -> int:
        """``N``: one plus the number of activations (inputs and ReLU units)."""
        return 1 + sum(self.sizes)

    def split(self, v: Tensor) -> list[Tensor]:
        """Cut ``(…, N − 1)`` into per-layer blocks."""
        return list(torch.split(v, self.sizes, dim=-1))

    def to(self, dtype: torch.dtype) -> SdpProblem:
        """The same problem in another dtype (float64 for the exact evaluation)."""
        cast = lambda t: t.detach().to(dtype)  # noqa: E731
        return SdpProblem(
            [layer.map(cast) for layer in self.hidden],
            cast(self.objective),
            cast(self.offset),
            self.scale,
            [cast(t) for t in self.lower],
            [cast(t) for t in self.upper],
        )


@dataclass(eq=False)
class SdpDuals:
    """Dual variables of one row's problem.

    ``lam``, ``mu_plus`` and ``mu_minus`` hold one tensor per ReLU layer, ``nu`` one per
    activation layer (input included), and ``kappa`` has length ``N``.
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

    def clone(self, dtype: torch.dtype | None = None) -> SdpDuals:
        """A detached copy, optionally cast."""
        cast = lambda t: t.detach().clone().to(dtype or t.dtype)  # noqa: E731
        return SdpDuals(
            [cast(t) for t in self.lam],
            [cast(t) for t in self.mu_plus],
            [cast(t) for t in self.mu_minus],
            [cast(t) for t in self.nu],
            cast(self.kappa),
        )


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


def row_problem(
    net: Network, boxes: list[Interval], c: Tensor, d: Tensor, scale: float | None = None
) -> SdpProblem:
    """The problem for the row ``c·f(x) + d``, scaled so its IBP gap is one (or by ``scale``)."""
    last = net.layers[-1]
    weight = (c @ last.dense_weight()).reshape(-1)
    bias = c @ last.bias + d
    radius = (boxes[-1][1] - boxes[-1][0]) / 2
    if scale is None:
        # Dividing the row by its IBP slack puts every problem on the same scale, so one
        # learning rate suits small and large networks alike; the bound is rescaled at the end.
        scale = float((radius * weight.abs()).sum())
        scale = scale if scale > 0 else 1.0
    return SdpProblem(
        list(net.layers[:-1]),
        -weight / scale,
        -bias.reshape(()) / scale,
        scale,
        [lo for lo, _ in boxes],
        [hi for _, hi in boxes],
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
    duals.kappa = torch.cat([g.abs().sum().reshape(1), g.abs()])
    return duals


def constant_and_gradient(problem: SdpProblem, duals: SdpDuals) -> tuple[Tensor, Tensor]:
    """``c(λ) = L̃(0)`` and ``g(λ) = ∇L̃(0)`` (flat, length ``N − 1``), in closed form."""
    m, lo, hi = problem.centre, problem.lower, problem.upper
    value = problem.objective @ m[-1] + problem.offset
    grads = [-nu * (2 * mi - li - ui) for nu, mi, li, ui in zip(duals.nu, m, lo, hi, strict=True)]
    for nu, mi, li, ui in zip(duals.nu, m, lo, hi, strict=True):
        value = value - nu @ ((mi - li) * (mi - ui))
    grads[-1] = grads[-1] + problem.objective
    for j, layer in enumerate(problem.hidden):
        lam, mup, mum = duals.lam[j], duals.mu_plus[j], duals.mu_minus[j]
        pre = layer.forward(m[j][None])[0]
        nxt = m[j + 1]
        value = value + lam @ (nxt * (pre - nxt)) + mup @ (nxt - pre) + mum @ nxt
        grads[j + 1] = grads[j + 1] + lam * (pre - 2 * nxt) + mup + mum
        grads[j] = grads[j] + layer.backward((lam * nxt - mup)[None])[0]
    g = torch.cat([r * gi for r, gi in zip(problem.radius, grads, strict=True)])
    return value, g


def hessian_product(problem: SdpProblem, duals: SdpDuals, v: Tensor) -> Tensor:
    """``H(λ) v`` for a batch ``v`` of shape ``(B, N − 1)``, without forming ``H``.

    ``H = R ∇²L R`` with ``R = diag(radius)``; ``∇²L`` couples ``x_j`` and ``x_{j+1}`` through
    ``diag(λ_j) W_j`` and has diagonal ``−2λ − 2ν``.
    """
    y = [r * vi for r, vi in zip(problem.radius, problem.split(v), strict=True)]
    out = [-2 * nu * yi for nu, yi in zip(duals.nu, y, strict=True)]
    for j, layer in enumerate(problem.hidden):
        lam = duals.lam[j]
        out[j + 1] = out[j + 1] + lam * (layer.linear(y[j]) - 2 * y[j + 1])
        out[j] = out[j] + layer.backward(lam * y[j + 1])
    return torch.cat([r * oi for r, oi in zip(problem.radius, out, strict=True)], dim=-1)


def a_product(problem: SdpProblem, duals: SdpDuals, g: Tensor, u: Tensor) -> Tensor:
    """``(diag(κ) − M(λ)) u`` for ``u`` of shape ``(B, N)``, ``M = [[0, gᵀ], [g, H]]``."""
    head, tail = u[:, :1], u[:, 1:]
    m_head = tail @ g[:, None]
    m_tail = head * g + hessian_product(problem, duals, tail)
    return duals.kappa * u - torch.cat([m_head, m_tail], dim=1)


def dense_a(problem: SdpProblem, duals: SdpDuals, g: Tensor, chunk: int = 512) -> Tensor:
    """``diag(κ) − M(λ)`` as a dense symmetric matrix, from ``N`` products (``O(N²)`` memory)."""
    n = problem.n
    eye = torch.eye(n, dtype=g.dtype, device=g.device)
    a = torch.cat([a_product(problem, duals, g, eye[i : i + chunk]) for i in range(0, n, chunk)])
    return (a + a.T) / 2


def lanczos_min(matvec, start: Tensor, iters: int) -> tuple[Tensor, Tensor]:
    """The smallest Ritz value and its unit vector after ``iters`` Lanczos steps.

    Full Gram–Schmidt reorthogonalisation (twice) keeps the basis orthonormal, so the Ritz value
    is a Rayleigh quotient: never below the true ``λ_min`` (an estimate from above).
    """
    n = start.numel()
    k = min(iters, n)
    basis = torch.zeros(k, n, dtype=start.dtype, device=start.device)
    alpha = torch.zeros(k, dtype=start.dtype, device=start.device)
    beta = torch.zeros(k, dtype=start.dtype, device=start.device)
    q = start / start.norm()
    tiny = torch.finfo(start.dtype).tiny
    for i in range(k):
        basis[i] = q
        w = matvec(q[None])[0]
        alpha[i] = q @ w
        for _ in range(2):
            w = w - (basis[: i + 1] @ w) @ basis[: i + 1]
        if i + 1 < k:
            beta[i] = w.norm()
            # A vanishing residual means the Krylov space is invariant; the basis vector that
            # follows is then noise orthogonal to it, which keeps the Rayleigh–Ritz step valid.
            q = w / beta[i].clamp_min(tiny)
    tri = torch.diag(alpha) + torch.diag(beta[: k - 1], 1) + torch.diag(beta[: k - 1], -1)
    vectors = smallest_eigenvector(tri)
    vec = vectors @ basis
    vec = vec / vec.norm()
    return (vec @ matvec(vec[None])[0]), vec


def smallest_eigenvector(a: Tensor) -> Tensor:
    """The unit eigenvector of the smallest eigenvalue of the symmetric ``a``.

    Raises:
        torch.linalg.LinAlgError: if the solver fails in ``a``'s dtype and in float64.
    """
    try:
        return torch.linalg.eigh(a)[1][:, 0]
    except torch.linalg.LinAlgError:
        # float32 eigh fails to converge on some badly scaled matrices; float64 does not.
        if a.dtype == torch.float64:
            raise
        return torch.linalg.eigh(a.double())[1][:, 0].to(a.dtype)


def exact_upper(problem: SdpProblem, duals: SdpDuals) -> float:
    """The sound dual bound on the (scaled) violation: exact float64 ``λ_min``, with a margin.

    The symmetric eigensolver's backward error is a small multiple of ``N ε ‖A‖``; subtracting
    that from ``λ_min`` keeps the certificate valid despite rounding. If the solver fails,
    no bound is known: ``inf``.
    """
    problem = problem.to(torch.float64)
    duals = duals.clone(torch.float64)
    _project(duals)
    c, g = constant_and_gradient(problem, duals)
    a = dense_a(problem, duals, g)
    try:
        smallest = float(torch.linalg.eigvalsh(a)[0])
    except torch.linalg.LinAlgError:
        return math.inf
    if not math.isfinite(smallest):
        return math.inf
    smallest -= problem.n * torch.finfo(torch.float64).eps * float(torch.linalg.norm(a))
    return float(c) + 0.5 * float(duals.kappa.sum()) + 0.5 * problem.n * max(0.0, -smallest)


def _project(duals: SdpDuals) -> None:
    with torch.no_grad():
        for t in duals.nonnegative():
            t.clamp_(min=0)


def _dual_value(problem: SdpProblem, duals: SdpDuals, vec: Tensor) -> Tensor:
    """``c + ½ Σ κ + ½ N max(0, −vᵀ A v)``: differentiable in the duals, ``v`` held fixed.

    Its gradient is the subgradient of the dual objective at the eigenvector ``v`` (the
    eigenvector itself is not differentiated, as in the paper).
    """
    c, g = constant_and_gradient(problem, duals)
    rayleigh = (vec * a_product(problem, duals, g, vec[None])[0]).sum()
    return c + 0.5 * duals.kappa.sum() + 0.5 * problem.n * torch.relu(-rayleigh)


def optimise_row(
    problem: SdpProblem,
    *,
    steps: int,
    lr: float,
    lanczos_iters: int,
    generator: torch.Generator,
    deadline: Deadline | None = None,
    certify: Callable[[SdpDuals], float] | None = None,
    check_every: int = CHECK_EVERY,
) -> tuple[SdpDuals, float, SdpDuals, float | None]:
    """Adam on the duals from the IBP initialisation, projected to the feasible set each step.

    Returns the best duals seen, their (Lanczos-estimated) upper bound, the last duals, and
    the exact upper bound that stopped the optimisation early (None if it ran to the end).
    With ``certify`` (the exact bound of some duals: ``exact_upper``), once the estimate says
    the row holds (upper bound below zero) the exact bound is computed, at most every
    ``check_every`` steps, and a negative one ends the optimisation: the row is certified, and
    further steps would only tighten a bound nobody needs.
    ``λ_min`` is exact (a dense ``eigh``) when ``N ≤ max(lanczos_iters, DENSE_MAX_N)`` and from
    Lanczos otherwise;
    Lanczos starts from the previous eigenvector plus noise, which tracks the slowly moving
    minimum eigenvector and still explores the rest of the space. The optimisation stops early
    when the deadline passes or the eigensolver fails even in float64 (any duals are valid).
    """
    duals = ibp_duals(problem)
    params = duals.tensors()
    for t in params:
        t.requires_grad_(True)
    # Adam moves every coordinate by about the learning rate, so the bound moves by about N
    # times it: dividing by N keeps a step's effect comparable across network sizes. The
    # objective is non-smooth (λ_min), so the step is annealed to settle near the optimum.
    step_size = lr / problem.n
    optimiser = Adam(params, step_size, steps=max(steps, 1), final=1e-3)
    dtype, device = problem.centre[0].dtype, problem.centre[0].device
    n = problem.n
    best, best_value = duals.clone(), math.inf
    previous: Tensor | None = None
    last_check = -check_every
    for step in range(steps):
        if deadline is not None and deadline.passed:
            break
        with torch.no_grad():
            _, g = constant_and_gradient(problem, duals)
            try:
                if n <= max(lanczos_iters, DENSE_MAX_N):
                    vec = smallest_eigenvector(dense_a(problem, duals, g))
                else:
                    noise = torch.randn(n, generator=generator, dtype=dtype).to(device)
                    start = noise / noise.norm()
                    if previous is not None:
                        start = start + 2 * previous
                    matvec = lambda u, g=g: a_product(problem, duals, g, u)  # noqa: E731
                    _, vec = lanczos_min(matvec, start, lanczos_iters)
            except torch.linalg.LinAlgError:
                break
            if not bool(torch.isfinite(vec).all()):
                break
            previous = vec
        value = _dual_value(problem, duals, vec)
        current = float(value.detach())
        if current < best_value:
            best_value, best = current, duals.clone()
        if certify is not None and current < 0 and step - last_check >= check_every:
            last_check = step
            with torch.no_grad():
                proven = certify(duals.clone())
            if proven < 0:
                return duals.clone(), current, duals.clone(), proven
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
        _project(duals)
    return best, best_value, duals.clone(), None


def sdp_rows(
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
    seed: int = 0,
    pre_bounds: list[Interval] | None = None,
    stop_at_failure: bool = False,
    stop_when_certified: bool = False,
    rounding: bool = False,
    deadline: Deadline | None = None,
) -> tuple[Tensor, bool]:
    """SDP-FO lower bounds on each row of ``C f(x) + d`` over the box ``[lower, upper]``.

    Dathathri et al. 2020 (arXiv 2010.11645), on the relaxation of Raghunathan et al. 2018
    (arXiv 1811.01057). Each row is optimised separately from its IBP value; the reported
    bound is never below IBP.

    Args:
        net: the network (any dtype and device; the work follows it).
        lower: input lower bounds, flat ``(n,)`` (or ``(1, n)``).
        upper: input upper bounds, same shape.
        C: ``(rows, outputs)``.
        d: ``(rows,)``.
        steps: Adam steps per row.
        lr: Adam's step budget: each coordinate moves by about ``lr / N`` per step, on the row
            scaled so that its IBP slack is one; cosine-annealed to 1e-3 of that. Tiny networks
            (``N`` in the tens) converge faster with 3–10. (jax_verify's
            ``solve_sdp_dual_simple`` defaults to Adam at 1e3, a slip for 1e-3.)
        lanczos_iters: Lanczos iterations per step (a dense ``eigh`` when ``N`` is at most
            this or ``DENSE_MAX_N``).
        exact_max_n: largest ``N = 1 + activations`` for which the final bound is evaluated
            with an exact float64 eigenvalue and returned as a certificate.
        seed: seeds Lanczos's random start vectors.
        pre_bounds: optional pre-activation bounds ``[(l, u), …]`` per ReLU layer (e.g. from
            CROWN), intersected with IBP's.
        stop_at_failure: stop at the first row whose bound is not positive and report the
            rest as ``-inf`` (enough to decide a margin property, much cheaper).
        stop_when_certified: where the bound is exact (``N ≤ exact_max_n``), stop a row's
            optimisation as soon as an exact float64 eigenvalue proves it positive (checked
            at most every ``CHECK_EVERY`` steps, once the estimate says so): its bound is then
            a certificate above zero, not the tightest one (enough to certify, much cheaper).
        rounding: the network is below float64; see the module docstring.
        deadline: optimisation stops when it passes; rows not reached keep their IBP value.

    Returns:
        ``(lower_rows, sound)``: ``sound`` is True when every row was evaluated exactly; else
        the numbers are Lanczos estimates (possibly too optimistic), not certificates.

    Raises:
        ConfigError: on a non-positive ``steps``/``lanczos_iters``/``lr`` or mismatched shapes.
    """
    if steps < 0 or lanczos_iters < 1 or not lr > 0 or exact_max_n < 0:
        raise ConfigError(
            f"sdp needs steps >= 0, lanczos_iters >= 1, lr > 0 and exact_max_n >= 0; got "
            f"steps={steps}, lanczos_iters={lanczos_iters}, lr={lr}, exact_max_n={exact_max_n}"
        )
    net = net.detach()
    lower, upper = lower.reshape(-1), upper.reshape(-1)
    if lower.numel() != net.in_features or upper.shape != lower.shape:
        raise ConfigError(
            f"the input box has {lower.numel()} entries but the network takes {net.in_features}"
        )
    C = C.reshape(-1, net.out_features)
    d = d.reshape(-1)
    if len(net.layers) == 1:
        # A linear network: the minimum of a linear function over a box is the interval
        # bound, exactly; there is no relaxation to tighten.
        with torch.no_grad():
            return ibp_rows(net, lower[None], upper[None], C, d, rounding=rounding)[0], True
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        boxes = activation_boxes(net, lower, upper, pre_bounds, rounding=rounding)
    exact = 1 + sum(lo.numel() for lo, _ in boxes) <= exact_max_n
    # The certificate is evaluated in float64 on the same weights (exact when cast up).
    f64 = torch.float64
    net64 = net.detach(dtype=f64)
    boxes64 = [(lo.to(f64), hi.to(f64)) for lo, hi in boxes]
    rows = []
    for c, dc in zip(C, d, strict=True):
        problem = row_problem(net, boxes, c, dc)
        problem64 = row_problem(net64, boxes64, c.to(f64), dc.to(f64), scale=problem.scale)
        with torch.no_grad():
            initial = float(_ibp_value(problem64))
        upper_bound = initial
        if deadline is None or not deadline.passed:
            certify = None
            if stop_when_certified and exact:

                def certify(duals, problem64=problem64):  # noqa: E306
                    return exact_upper(problem64, duals)

            with torch.enable_grad():
                best, estimate, last, proven = optimise_row(
                    problem, steps=steps, lr=lr, lanczos_iters=lanczos_iters,
                    generator=generator, deadline=deadline, certify=certify,
                )  # fmt: skip
            with torch.no_grad():
                if proven is not None:
                    upper_bound = min(upper_bound, proven)  # exact already
                elif exact:
                    candidates = [best] if steps == 0 else [best, last]
                    for duals in candidates:
                        if deadline is not None and deadline.left < _eigh_seconds(problem.n):
                            break  # an eigendecomposition cannot be interrupted
                        upper_bound = min(upper_bound, exact_upper(problem64, duals))
                else:
                    upper_bound = min(initial, estimate)
        rows.append(-upper_bound * problem.scale)
        if stop_at_failure and rows[-1] <= 0:
            # One failed margin already decides the point; -inf is a valid lower bound.
            rows += [-math.inf] * (len(C) - len(rows))
            break
    # Computed in float64; rounded down, not to nearest, into the network's dtype.
    return round_down(rows, lower.dtype).to(lower.device), exact


def _eigh_seconds(n: int) -> float:
    """A generous guess of a dense float64 eigendecomposition's time on a CPU core."""
    return 0.05 + 2.0 * (n / 1000) ** 3


def _ibp_value(problem: SdpProblem) -> Tensor:
    """The IBP upper bound on the scaled violation: ``objective·centre + |objective|·radius``."""
    return (
        problem.objective @ problem.centre[-1]
        + problem.objective.abs() @ problem.radius[-1]
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
    seed: int = 0,
    pre_bounds: list[tuple[Tensor, Tensor]] | None = None,
    intermediate: Literal["ibp", "crown"] = "crown",
    stop_at_failure: bool = False,
    stop_when_certified: bool = False,
    rounding: bool = False,
    deadline: Deadline | None = None,
) -> tuple[Tensor, bool]:
    """SDP-FO (see :func:`sdp_rows`), activation boxes from CROWN unless ``intermediate="ibp"``."""
    if pre_bounds is None and intermediate == "crown" and len(net.layers) > 1:
        # Tighter activation boxes tighten the relaxation (the reference uses CROWN-IBP).
        from stalwart.certify.crown import crown_layer_bounds

        pre_bounds = crown_layer_bounds(net, lower, upper, rounding=rounding,
                                        deadline=deadline)[:-1]  # fmt: skip
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
        seed=seed,
        pre_bounds=pre_bounds,
        stop_at_failure=stop_at_failure,
        stop_when_certified=stop_when_certified,
        rounding=rounding,
        deadline=deadline,
    )
