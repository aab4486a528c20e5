"""Complete verification of small ReLU networks: a MILP, or branch and bound over ReLU splits.

- ``milp``: Tjeng, Xiao and Tedrake, "Evaluating Robustness of Neural Networks with Mixed
  Integer Programming", ICLR 2019 (arXiv 1711.07356). Each unstable ReLU gets a binary
  indicator and big-M constraints built from sound intermediate bounds (CROWN); HiGHS minimises
  the largest row of each unsafe conjunction.
- ``bab``: branch and bound over ReLU splits (Bunel et al., "Branch and Bound for Piecewise
  Linear Neural Network Verification", JMLR 2020, arXiv 1909.06588). A subdomain fixes some
  units active or inactive; its bound is CROWN with those units clipped, then the triangle LP
  with the split constraints. The unit whose relaxation is loosest at the LP's optimum is
  split next. With every unit split the LP is exact, so the search is complete.
- ``input``: branch and bound over the input box (``input_split.py``), for networks with few
  inputs.

Answers follow VNN-COMP: ``violated`` comes only with an input that, run through the network,
lands in the unsafe region; ``holds`` only when every unsafe conjunction was ruled out by a
sound bound or proven infeasible by the solver; anything else (time out, solver trouble, a
solver point that does not survive the check) is ``unknown``. A short attack runs first,
since counterexamples are usually easy to find when they exist.
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import Bounds, LinearConstraint, linprog, milp
from torch import Tensor, nn

from stalwart.certify.bounds import as_network
from stalwart.certify.crown import backward_bound, crown_layer_bounds
from stalwart.certify.ibp import ibp_rows
from stalwart.certify.input_split import input_split_disjunct
from stalwart.certify.lp import Encoding, encode
from stalwart.certify.network import Network
from stalwart.certify.spec import Box, OutputProperty
from stalwart.errors import ConfigError

METHODS = ("milp", "bab", "input")


@dataclass
class SearchResult:
    """The answer of a complete search.

    Attributes:
        status: ``holds`` (no input reaches the unsafe region), ``violated`` (one does), or
            ``unknown``.
        counterexample: for ``violated``, an input shaped like one input of the network.
        output: the network's output on the counterexample.
        seconds: wall time spent.
        detail: how the answer was reached.
    """

    status: Literal["holds", "violated", "unknown"]
    counterexample: Tensor | None
    output: Tensor | None
    seconds: float
    detail: str


class Deadline:
    """Wall-clock time left until a fixed end, shared by the stages of one answer."""

    def __init__(self, seconds: float) -> None:
        self.end = time.perf_counter() + seconds

    @property
    def left(self) -> float:
        """Seconds until the end (negative once past it)."""
        return self.end - time.perf_counter()

    @property
    def passed(self) -> bool:
        """Whether the end has passed."""
        return self.left <= 0


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().to(device="cpu", dtype=torch.float64).numpy()


def _rows_lower(net: Network, lo: Tensor, hi: Tensor, C: Tensor, d: Tensor, bounds) -> Tensor:
    """The larger of the CROWN and IBP lower bounds on ``C f(x) + d`` for one box."""
    batched = [(lb[None], ub[None]) for lb, ub in bounds]
    crown = backward_bound(net, len(net.layers) - 1, lo[None], hi[None], C, d, batched)[0]
    return torch.maximum(crown, ibp_rows(net, lo[None], hi[None], C, d)[0])


def _attack(
    net: Network, lo: Tensor, hi: Tensor, C: Tensor, d: Tensor, starts: Tensor, steps: int
) -> Tensor:
    """Points in the box that minimise the largest row, by signed-gradient descent."""
    x = starts.clone()
    width = hi - lo
    best = x.clone()
    best_value = torch.full((len(x),), torch.inf, dtype=x.dtype, device=x.device)
    with torch.enable_grad():
        for step in range(steps + 1):
            x.requires_grad_(True)
            value = (net(x) @ C.T + d).max(dim=1).values
            better = value.detach() < best_value
            best[better], best_value[better] = x.detach()[better], value.detach()[better]
            if step == steps:
                break
            (gradient,) = torch.autograd.grad(value.sum(), x)
            size = 0.1 * (1 - step / steps) + 0.005
            x = torch.minimum(torch.maximum(x.detach() - size * width * gradient.sign(), lo), hi)
    return best[best_value.argsort()]


class _Checker:
    """Accepts a candidate only if the network, run on it, reaches the unsafe region."""

    def __init__(self, net: Network, prop: OutputProperty, lo: Tensor, hi: Tensor) -> None:
        self.net, self.prop, self.lo, self.hi = net, prop, lo, hi

    def check(self, points: Tensor) -> Tensor | None:
        points = torch.minimum(torch.maximum(points, self.lo), self.hi)
        with torch.no_grad():
            outputs = self.net(points)
        for x, y in zip(points, outputs, strict=True):
            if self.prop.violated_by(y):
                return x
        return None

    def polish(self, x: Tensor, C: Tensor, d: Tensor) -> Tensor | None:
        """The candidate itself, or one found by a few attack steps started from it."""
        found = self.check(x[None])
        if found is None:
            found = self.check(_attack(self.net, self.lo, self.hi, C, d, x[None], 20))
        return found


def _with_margin_variable(enc: Encoding, R: np.ndarray, r0: np.ndarray, t_lo, t_hi):
    """Append ``t`` with ``R v + r0 ≤ t``: minimising ``t`` minimises the largest row."""
    n_vars = enc.A.shape[1]
    ones = sp.csr_matrix(-np.ones((len(R), 1)))
    A = sp.vstack(
        [
            sp.hstack([enc.A, sp.csr_matrix((enc.A.shape[0], 1))]),
            sp.hstack([sp.csr_matrix(R), ones]),
        ]
    )
    b = np.concatenate([enc.b, -r0])
    lower = np.append(enc.lower, t_lo)
    upper = np.append(enc.upper, t_hi)
    c = np.zeros(n_vars + 1)
    c[-1] = 1.0
    return A.tocsr(), b, lower, upper, c


def _milp_disjunct(net, lo, hi, C, d, bounds, deadline, checker):
    """``holds``, ``violated`` (with the input) or ``unknown`` for one unsafe conjunction."""
    enc = encode(net, lo, hi, bounds, binary=True)
    R = _numpy(C) @ enc.out_matrix
    r0 = _numpy(C) @ enc.out_offset + _numpy(d)
    t_lo = float(_rows_lower(net, lo, hi, C, d, bounds).max())
    A, b, lower, upper, c = _with_margin_variable(enc, R, r0, min(t_lo, 0.0), 0.0)
    if deadline.passed:
        return "unknown", None, "time out before the MILP"
    result = milp(
        c, constraints=LinearConstraint(A, -np.inf, b),
        integrality=np.append(enc.integrality, 0), bounds=Bounds(lower, upper),
        options={"time_limit": max(deadline.left, 1e-3)},
    )  # fmt: skip
    if result.status == 2:
        return "holds", None, "MILP infeasible"
    if result.x is None:
        return "unknown", None, f"MILP stopped: {result.message}"
    x = torch.as_tensor(result.x[: enc.n_inputs], dtype=lo.dtype, device=lo.device)
    found = checker.polish(x, C, d)
    if found is not None:
        return "violated", found, "MILP point"
    return "unknown", None, "the MILP point does not violate the property when run"


def milp_optimum(
    net: Network | nn.Module,
    lower: Tensor,
    upper: Tensor,
    C: Tensor,
    d: Tensor,
    timeout: float = 60.0,
) -> Tensor:
    """The exact minimum of each row of ``C f(x) + d`` over the box, by MILP (ground truth).

    Args:
        net: a small network.
        lower: input lower bounds, shaped like one input or flat.
        upper: input upper bounds, same shape.
        C: rows ``(m, outputs)``.
        d: offsets ``(m,)``.
        timeout: seconds for all rows together.

    Raises:
        TimeoutError: if some row is not solved to optimality in time.
    """
    net = as_network(net, tuple(lower.shape)).detach()
    lo, hi = lower.reshape(-1), upper.reshape(-1)
    deadline = Deadline(timeout)
    bounds = crown_layer_bounds(net, lo, hi)
    enc = encode(net, lo, hi, bounds, binary=True)
    objective = _numpy(C) @ enc.out_matrix
    constant = _numpy(C) @ enc.out_offset + _numpy(d)
    values = []
    for r in range(len(C)):
        result = milp(
            objective[r], constraints=LinearConstraint(enc.A, -np.inf, enc.b),
            integrality=enc.integrality, bounds=Bounds(enc.lower, enc.upper),
            options={"time_limit": max(deadline.left, 1e-3), "mip_rel_gap": 1e-9},
        )  # fmt: skip
        if result.status != 0:
            raise TimeoutError(f"row {r}: the MILP was not solved to optimality ({result.message})")
        values.append(result.fun + constant[r])
    return torch.tensor(values, dtype=C.dtype, device=C.device)


def _lp_domain(net, lo, hi, C, d, bounds, splits, t_lo, t_hi, deadline):
    """Sound lower bound on the largest row over a subdomain, with the LP's optimum."""
    enc = encode(net, lo, hi, bounds, splits=splits)
    R = _numpy(C) @ enc.out_matrix
    r0 = _numpy(C) @ enc.out_offset + _numpy(d)
    A, b, lower, upper, c = _with_margin_variable(enc, R, r0, t_lo, t_hi)
    result = linprog(
        c, A_ub=A, b_ub=b, bounds=np.stack([lower, upper], 1), method="highs",
        options={"time_limit": max(deadline.left, 1e-3)},
    )  # fmt: skip
    if result.status == 2:
        return np.inf, None, enc  # the split constraints leave no input: nothing to find
    if result.status != 0:
        return None, None, enc
    mu = np.maximum(-np.asarray(result.ineqlin.marginals), 0.0)
    r = c + A.T @ mu
    value = -float(mu @ b) + float(np.minimum(r * lower, r * upper).sum())
    return value, result.x, enc


def _choose_split(enc: Encoding, v: np.ndarray) -> tuple[int, int] | None:
    """The unstable unit whose triangle is loosest at the LP point (ties: the widest)."""
    best, best_score = None, -np.inf
    for layer, k, var, zrow, zoff, lb, ub in enc.units:
        z = float(zrow @ v[: len(zrow)]) + zoff
        gap = v[var] - max(z, 0.0)
        score = gap + 1e-9 * min(ub, -lb)
        if score > best_score:
            best, best_score = (layer, k), score
    return best


def _bab_disjunct(net, lo, hi, C, d, root_bounds, deadline, checker):
    hidden = net.hidden_sizes
    counter = itertools.count()
    root = [np.zeros(w, dtype=np.int8) for w in hidden]
    queue = [(-np.inf, next(counter), root)]
    undecided = 0
    explored = 0
    while queue:
        if deadline.passed:
            return "unknown", None, f"time out after {explored} subdomains"
        _, _, splits = heapq.heappop(queue)
        explored += 1
        fixed = [torch.as_tensor(s, device=lo.device)[None] for s in splits]
        bounds = root_bounds
        if any(s.any() for s in splits):
            # Both are sound on the subdomain, so their intersection is too.
            sub = crown_layer_bounds(net, lo, hi, fixed=fixed)
            bounds = [
                (torch.maximum(lb, rl), torch.minimum(ub, ru))
                for (lb, ub), (rl, ru) in zip(sub, root_bounds, strict=True)
            ]
        if any(bool((lb > ub).any()) for lb, ub in bounds[:-1]):
            continue  # the splits contradict each other: an empty subdomain
        rows = _rows_lower(net, lo, hi, C, d, bounds)
        if bool((rows > 0).any()):
            continue
        upper_rows = -_rows_lower(net, lo, hi, -C, -d, bounds)
        value, v, enc = _lp_domain(
            net,
            lo,
            hi,
            C,
            d,
            bounds,
            splits,
            float(rows.max()),
            float(upper_rows.max()) + 1.0,
            deadline,
        )
        if value is None:
            reason = "time out" if deadline.passed else "the LP solver failed"
            return "unknown", None, f"{reason} on subdomain {explored}"
        if value > 0:
            continue
        x = torch.as_tensor(v[: enc.n_inputs], dtype=lo.dtype, device=lo.device)
        found = checker.polish(x, C, d)
        if found is not None:
            return "violated", found, f"LP point of subdomain {explored}"
        unit = _choose_split(enc, v)
        if unit is None:
            undecided += 1  # exact LP at a tie with zero: numerically undecidable here
            continue
        layer, k = unit
        for side in (1, -1):
            child = [s.copy() for s in splits]
            child[layer][k] = side
            heapq.heappush(queue, (value, next(counter), child))
    if undecided:
        return "unknown", None, f"{undecided} subdomains tie with the unsafe boundary"
    return "holds", None, f"branch and bound closed {explored} subdomains"


def _input_disjunct(net, lo, hi, C, d, bounds, deadline, checker):
    return input_split_disjunct(net, lo, hi, C, d, deadline, checker)


def find_counterexample(
    net: Network,
    lo: Tensor,
    hi: Tensor,
    prop: OutputProperty,
    *,
    restarts: int = 8,
    steps: int = 30,
    deadline: Deadline | None = None,
) -> Tensor | None:
    """An input in ``[lo, hi]`` (flat) that the network maps into the unsafe region, or None.

    Signed-gradient descent on the largest row of each unsafe conjunction, from the box's
    centre and ``restarts − 1`` random points; a point is returned only after running the
    network on it confirms the violation.
    """
    dtype, device = lo.dtype, lo.device
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(max(restarts, 1), lo.numel(), generator=generator, dtype=dtype)
    starts = lo + noise.to(device) * (hi - lo)
    starts[0] = (lo + hi) / 2
    checker = _Checker(net, prop, lo, hi)
    for C, d in prop.disjuncts:
        found = checker.check(_attack(net, lo, hi, C, d, starts, steps))
        if found is not None or (deadline is not None and deadline.passed):
            return found
    return None


def search(
    net: Network | nn.Module,
    box: Box,
    prop: OutputProperty,
    *,
    timeout: float,
    method: str = "milp",
    attack_restarts: int = 8,
) -> SearchResult:
    """Decide whether any input in ``box`` reaches the unsafe region of ``prop``.

    Args:
        net: a small network (or a supported module, converted on the box's shape).
        box: the input set, shaped like one input.
        prop: the unsafe region.
        timeout: wall-clock seconds; past it the answer is ``unknown``.
        method: ``"milp"``, ``"bab"`` (ReLU splits) or ``"input"`` (input splits).
        attack_restarts: random starts of the attack run before the solver (0: none).

    Raises:
        ConfigError: for an unknown method, a non-positive timeout or a batched box.
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {list(METHODS)}; got {method!r}")
    if not timeout > 0:
        raise ConfigError(f"timeout must be > 0 seconds; got {timeout}")
    start = time.perf_counter()
    deadline = Deadline(timeout)
    net = as_network(net, tuple(box.lower.shape)).detach()
    dtype, device = net.layers[0].bias.dtype, net.layers[0].bias.device
    lower, upper, single = box.to(dtype, device).flat(net.input_shape)
    if not single:
        raise ConfigError("search() takes one input box; loop over a batch")
    lo, hi = lower[0], upper[0]
    prop = prop.to(dtype, device)
    checker = _Checker(net, prop, lo, hi)

    def answer(status, x=None, detail=""):
        if x is None:
            return SearchResult(status, None, None, time.perf_counter() - start, detail)
        with torch.no_grad():
            y = net(x[None])[0]
        return SearchResult(
            status, x.reshape(net.input_shape), y, time.perf_counter() - start, detail
        )

    if attack_restarts > 0:
        found = find_counterexample(net, lo, hi, prop, restarts=attack_restarts, deadline=deadline)
        if found is not None:
            return answer("violated", found, "attack")
        if deadline.passed:
            return answer("unknown", detail="time out during the attack")

    bounds = crown_layer_bounds(net, lo, hi)
    open_disjuncts = []
    for C, d in prop.disjuncts:
        if not bool((_rows_lower(net, lo, hi, C, d, bounds) > 0).any()):
            open_disjuncts.append((C, d))
    if not open_disjuncts:
        return answer("holds", detail="CROWN bounds rule out every unsafe region")
    solve = {"milp": _milp_disjunct, "bab": _bab_disjunct, "input": _input_disjunct}[method]
    notes = []
    for C, d in open_disjuncts:
        if deadline.passed:
            return answer("unknown", detail="time out")
        status, x, detail = solve(net, lo, hi, C, d, bounds, deadline, checker)
        if status == "violated":
            return answer("violated", x, detail)
        if status == "unknown":
            return answer("unknown", detail=detail)
        notes.append(detail)
    return answer("holds", detail="; ".join(notes))
