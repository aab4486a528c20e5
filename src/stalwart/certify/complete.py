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
- ``bab+beta``: branch and bound over ReLU splits with many subdomains bounded at once by
  β-CROWN (``relu_split.py``, ``beta_crown.py``; Wang et al., NeurIPS 2021, arXiv 2103.06624):
  split constraints enter the bound through optimised multipliers instead of an LP per
  subdomain; leaves with every unstable unit split get the exact LP.
- ``input``: branch and bound over the input box (``input_split.py``), for networks with few
  inputs.

Answers follow VNN-COMP: ``violated`` comes only with an input that, run through the network
alone in float64, lands in the unsafe region even after a rigorous rounding allowance, and
lies in the box as written (rounded inward, ``inside``); ``holds`` only when every unsafe
conjunction was ruled out by a sound bound or proven infeasible by the solver; anything else
(time out, solver trouble, a candidate that does not survive the check) is ``unknown``, or the
search goes on. A short attack runs first, since counterexamples are usually easy to find when
they exist.

Floating point: the MILP and branch and bound work in float64 throughout (their solves
dominate the time). ``dtype=torch.float32`` speeds up the attack and input splitting, whose
bounds then carry rigorous rounding allowances (``rounding.py``), and the error of the cast
when the float64 network is not exactly a float32 one.
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
from stalwart.certify.crown import alpha_layer_bounds, backward_bound, crown_layer_bounds
from stalwart.certify.deadline import Deadline, Expired
from stalwart.certify.ibp import ibp_rows
from stalwart.certify.input_split import input_split_disjunct
from stalwart.certify.lp import Encoding, encode
from stalwart.certify.network import Network
from stalwart.certify.relu_split import BRANCH_CANDIDATES, relu_split_search
from stalwart.certify.rounding import (
    cast_allowance,
    cast_is_exact,
    check_float,
    ieee_float32,
    outputs_with_error,
    outward,
    rows_of_outputs,
    violates,
)
from stalwart.certify.spec import Box, OutputProperty, padded_rows
from stalwart.errors import ConfigError

__all__ = ["Deadline", "SearchResult", "find_counterexample", "milp_optimum", "search"]

METHODS = ("milp", "bab", "bab+beta", "input")
# Attack examples (one start descending towards one unsafe conjunction) run together between
# two looks at the deadline: enough to keep the cores busy (four at a time, the attack on
# mnist_fc 256x6 took 5 s, nearly all of it per-call overhead).
ATTACK_CHUNK = 64
# Output-diversifying steps before the attack proper, from each random start.
DIVERSIFY_STEPS = 10
# α-CROWN steps per hidden layer on the root's layer bounds for bab+beta: every subdomain
# starts from them, so the deep layers' units they prove stable are never split. (The other
# methods keep CROWN's: they were measured with it.)
ROOT_ALPHA_STEPS = 20


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
    """Points in the box that minimise the largest row, by signed-gradient descent.

    The attack core climbs minus the largest row, in the box, with a step that shrinks from
    10.5% to 0.5% of the box's width; it keeps each start's best point, best first.
    """
    from stalwart.attacks.core import Box, MarginRows, projected_gradient

    width = hi - lo
    found = projected_gradient(
        net, None, MarginRows(C, d), Box(lo, hi), steps=steps,
        step_size=lambda step: (0.1 * (1 - step / steps) + 0.005) * width,
        start=starts, keep_best=True, project_start=False,
    )  # fmt: skip
    return found.points[(-found.scores).argsort()]


def _diversified(
    net: Network, lo: Tensor, hi: Tensor, starts: Tensor, directions: Tensor,
    steps: int = DIVERSIFY_STEPS,
) -> Tensor:  # fmt: skip
    """Starts spread over the network's outputs rather than its inputs.

    Output-diversified initialisation (Tashiro, Song and Ermon, NeurIPS 2020, arXiv
    2003.06878): signed-gradient steps of half the box's width that push each start's outputs
    along its own direction (``(starts, outputs)``, uniform in ``[−1, 1]``). Uniform points in
    a box of hundreds of inputs all map to nearly the same outputs; these reach corners whose
    outputs differ, from which the attack finds counterexamples it otherwise misses (mnist_fc
    256×6 ``prop_1_0.05``: none from 256 uniform starts, one from the first 100 diversified).
    """
    x = starts
    for _ in range(steps):
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad((net(x) * directions).sum(), x)
        x = torch.minimum(torch.maximum(x.detach() + (hi - lo) / 2 * grad.sign(), lo), hi)
    return x.detach()


class _Checker:
    """Accepts a candidate only if it is a counterexample for certain.

    The candidate is moved into the box as written (``lo``, ``hi``: float64, rounded inward),
    run through the float64 network alone, and must land in the unsafe region with every row
    ``≤ 0`` after its rounding allowance (:func:`rounding.violates`). Candidates come from
    searches in any dtype; a batch is screened first, then each survivor is checked alone.

    Args:
        net: the float64 network the answer is about.
        prop: the unsafe region (float64).
        lo: lower corner of the box a counterexample must lie in (float64, flat).
        hi: upper corner.
        work: the network and box (in the dtype searches run in) for :meth:`polish`.
    """

    def __init__(
        self,
        net: Network,
        prop: OutputProperty,
        lo: Tensor,
        hi: Tensor,
        work: tuple[Network, Tensor, Tensor] | None = None,
    ) -> None:
        f64 = torch.float64
        self.net = net.detach(dtype=f64)
        self.prop = prop.to(f64, lo.device)
        self.lo, self.hi = lo.to(f64), hi.to(f64)
        self.work = work or (self.net, self.lo, self.hi)

    def check(self, points: Tensor) -> Tensor | None:
        """The first of ``points`` (flat, a batch) that is a counterexample for certain."""
        with torch.no_grad():
            points = points.detach().to(device=self.lo.device, dtype=torch.float64)
            points = torch.minimum(torch.maximum(points, self.lo), self.hi)
            hit = torch.zeros(len(points), dtype=torch.bool, device=points.device)
            outputs = outputs_with_error(self.net, points)
            for C, d in self.prop.disjuncts:
                rows, error = rows_of_outputs(outputs, C, d)
                hit |= (rows + error <= 0).all(dim=1)
            for x in points[hit]:
                if violates(self.net, x, self.prop.disjuncts):
                    return x
        return None

    def polish(self, x: Tensor, C: Tensor, d: Tensor) -> Tensor | None:
        """The candidate itself, or one found by a few attack steps started from it."""
        found = self.check(x[None])
        if found is None:
            net, lo, hi = self.work
            start = torch.minimum(torch.maximum(x.to(lo.dtype), lo), hi)
            found = self.check(_attack(net, lo, hi, C.to(lo.dtype), d.to(lo.dtype), start[None],
                                       20))  # fmt: skip
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


@dataclass
class _Search:
    """One search's networks, boxes and deadline.

    ``net``, ``lo``, ``hi`` are in the working dtype (the box rounded outward), for attacks
    and input splitting, whose bounds carry a rounding allowance below float64 (``rounding``)
    and also the error of the cast itself when it was not exact (``cast``). ``net64``,
    ``lo64``, ``hi64`` are the float64 network and box that the MILP and branch and bound
    work on, bounds and encodings alike: their solves dominate, so float64 costs them little.
    """

    net: Network
    lo: Tensor
    hi: Tensor
    net64: Network
    lo64: Tensor
    hi64: Tensor
    rounding: bool
    cast: bool
    deadline: Deadline
    checker: _Checker

    def rows_lower(self, C: Tensor, d: Tensor, bounds) -> Tensor:
        """Sound lower bounds on the rows in float64, from float64 layer ``bounds``."""
        return _rows_lower(self.net64, self.lo64, self.hi64, C.to(torch.float64),
                           d.to(torch.float64), bounds)  # fmt: skip

    def root_bounds(self, alpha_steps: int = 0):
        """CROWN's float64 layer bounds on the whole box, α-optimised given ``alpha_steps``.

        Raises ``Expired``.
        """
        if alpha_steps:
            return alpha_layer_bounds(self.net64, self.lo64, self.hi64, steps=alpha_steps,
                                      deadline=self.deadline)  # fmt: skip
        return crown_layer_bounds(self.net64, self.lo64, self.hi64, deadline=self.deadline)


def _milp_disjunct(job: _Search, C: Tensor, d: Tensor, bounds):
    """``holds``, ``violated`` (with the input) or ``unknown`` for one unsafe conjunction."""
    enc = encode(job.net64, job.lo64, job.hi64, bounds, binary=True)
    R = _numpy(C) @ enc.out_matrix
    r0 = _numpy(C) @ enc.out_offset + _numpy(d)
    t_lo = float(job.rows_lower(C, d, bounds).max())
    A, b, lower, upper, c = _with_margin_variable(enc, R, r0, min(t_lo, 0.0), 0.0)
    if job.deadline.passed:
        return "unknown", None, "time out before the MILP"
    result = milp(
        c, constraints=LinearConstraint(A, -np.inf, b),
        integrality=np.append(enc.integrality, 0), bounds=Bounds(lower, upper),
        options={"time_limit": job.deadline.limit()},
    )  # fmt: skip
    if result.status == 2:
        return "holds", None, "MILP infeasible"
    if result.x is None:
        return "unknown", None, f"MILP stopped: {result.message}"
    x = torch.as_tensor(result.x[: enc.n_inputs], dtype=torch.float64, device=job.lo.device)
    found = job.checker.polish(x, C, d)
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
    *,
    with_points: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """The exact minimum of each row of ``C f(x) + d`` over the box, by MILP (ground truth).

    Computed in float64 (the network is cast up, exactly). HiGHS solves to a relative gap of
    1e-9 within its feasibility tolerances, so the value can sit slightly below the true
    minimum; the minimising inputs (``with_points``) are inside the box, and the network's
    value there is an upper bound on it.

    Args:
        net: a small network.
        lower: input lower bounds, shaped like one input or flat.
        upper: input upper bounds, same shape.
        C: rows ``(m, outputs)``.
        d: offsets ``(m,)``.
        timeout: seconds for all rows together.
        with_points: also return the minimising input of each row, ``(m, n)`` flat.

    Raises:
        TimeoutError: if some row is not solved to optimality in time.
    """
    f64 = torch.float64
    net = as_network(net, tuple(lower.shape)).detach(dtype=f64)
    lo, hi = lower.reshape(-1).to(f64), upper.reshape(-1).to(f64)
    deadline = Deadline(timeout)
    bounds = crown_layer_bounds(net, lo, hi)
    enc = encode(net, lo, hi, bounds, binary=True)
    objective = _numpy(C) @ enc.out_matrix
    constant = _numpy(C) @ enc.out_offset + _numpy(d)
    values, points = [], []
    for r in range(len(C)):
        result = milp(
            objective[r], constraints=LinearConstraint(enc.A, -np.inf, enc.b),
            integrality=enc.integrality, bounds=Bounds(enc.lower, enc.upper),
            options={"time_limit": deadline.limit(), "mip_rel_gap": 1e-9},
        )  # fmt: skip
        if result.status != 0:
            raise TimeoutError(f"row {r}: the MILP was not solved to optimality ({result.message})")
        values.append(result.fun + constant[r])
        points.append(np.clip(result.x[: enc.n_inputs], _numpy(lo), _numpy(hi)))
    value = torch.tensor(values, dtype=C.dtype, device=C.device)
    if with_points:
        return value, torch.tensor(np.array(points), dtype=f64, device=lo.device)
    return value


def _lp_domain(job: _Search, C, d, bounds, splits, t_lo, t_hi):
    """Sound lower bound on the largest row over a subdomain, with the LP's optimum."""
    enc = encode(job.net64, job.lo64, job.hi64, bounds, splits=splits)
    R = _numpy(C) @ enc.out_matrix
    r0 = _numpy(C) @ enc.out_offset + _numpy(d)
    A, b, lower, upper, c = _with_margin_variable(enc, R, r0, t_lo, t_hi)
    result = linprog(
        c, A_ub=A, b_ub=b, bounds=np.stack([lower, upper], 1), method="highs",
        options={"time_limit": job.deadline.limit()},
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


def _bab_disjunct(job: _Search, C: Tensor, d: Tensor, root_bounds):
    net, lo, hi = job.net64, job.lo64, job.hi64
    C, d = C.to(torch.float64), d.to(torch.float64)
    hidden = net.hidden_sizes
    counter = itertools.count()
    root = [np.zeros(w, dtype=np.int8) for w in hidden]
    queue = [(-np.inf, next(counter), root)]
    undecided = 0
    explored = 0
    while queue:
        if job.deadline.passed:
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
        rows = job.rows_lower(C, d, bounds)
        if bool((rows > 0).any()):
            continue
        upper_rows = -job.rows_lower(-C, -d, bounds)
        value, v, enc = _lp_domain(
            job, C, d, bounds, splits, float(rows.max()), float(upper_rows.max()) + 1.0
        )
        if value is None:
            reason = "time out" if job.deadline.passed else "the LP solver failed"
            return "unknown", None, f"{reason} on subdomain {explored}"
        if value > 0:
            continue
        x = torch.as_tensor(v[: enc.n_inputs], dtype=torch.float64, device=lo.device)
        found = job.checker.polish(x, C, d)
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


def _beta_leaf(job: _Search, C: Tensor, d: Tensor, root_bounds):
    """One conjunction's exact leaf LP, for ``relu_split_search``."""
    # The margin variable must be boxed for the LP's dual value to be a bound.
    t_lo = float(job.rows_lower(C, d, root_bounds).max())
    t_hi = float((-job.rows_lower(-C, -d, root_bounds)).max()) + 1.0

    def exact(splits, bounds):
        # A leaf: every unit is split or stable on the subdomain (by its own sound bounds),
        # so the LP with those bounds is the network itself.
        value, v, enc = _lp_domain(job, C, d, bounds, splits, t_lo, t_hi)
        if value is None or v is None:
            return value, None
        return value, torch.as_tensor(v[: enc.n_inputs], dtype=torch.float64, device=C.device)

    return exact


def _beta_search(
    job: _Search,
    disjuncts: list[tuple[Tensor, Tensor]],
    root_bounds,
    branch_candidates: int = BRANCH_CANDIDATES,
):
    """Every open conjunction in one branch and bound (``relu_split_search``)."""
    disjuncts = [(C.to(torch.float64), d.to(torch.float64)) for C, d in disjuncts]
    net, lo, hi = job.checker.work

    def attack(starts: Tensor, C: Tensor, d: Tensor):
        # A short attack from each start towards its own conjunction's rows (C: (n, m, out)),
        # all starts in one batch.
        found = job.checker.check(starts)
        if found is None:
            starts = torch.minimum(torch.maximum(starts.to(lo.dtype), lo), hi)
            found = job.checker.check(
                _attack(net, lo, hi, C.to(lo.dtype), d.to(lo.dtype), starts, 20)
            )
        return found

    return relu_split_search(job.net64, job.lo64, job.hi64, disjuncts, root_bounds,
                             job.deadline, job.checker,
                             exact=[_beta_leaf(job, C, d, root_bounds) for C, d in disjuncts],
                             attack=attack, branch_candidates=branch_candidates)  # fmt: skip


def _input_disjunct(job: _Search, C: Tensor, d: Tensor, bounds):
    Cw, dw = C.to(job.lo.dtype), d.to(job.lo.dtype)
    slack = None
    if job.cast:
        # The work network was rounded from the float64 one: widen by the cast's error too.
        def slack(lo, hi):  # noqa: E306
            return cast_allowance(job.net, lo, hi, Cw, dw)

    return input_split_disjunct(job.net, job.lo, job.hi, Cw, dw, job.deadline, job.checker,
                                rounding=job.rounding, slack=slack)  # fmt: skip


def find_counterexample(
    net: Network,
    lo: Tensor,
    hi: Tensor,
    prop: OutputProperty,
    *,
    restarts: int = 8,
    steps: int = 30,
    deadline: Deadline | None = None,
    checker: _Checker | None = None,
) -> Tensor | None:
    """An input in ``[lo, hi]`` (flat) that the network maps into the unsafe region, or None.

    Signed-gradient descent on the largest row of each unsafe conjunction, from the box's
    centre and ``restarts − 1`` random points spread by :func:`_diversified`, in the network's
    dtype; a point is returned (in float64) only after the checker confirms the violation: by
    default, run alone in float64 and inside ``[lo, hi]`` itself.
    """
    dtype, device = lo.dtype, lo.device
    generator = torch.Generator().manual_seed(0)
    noise = torch.rand(max(restarts, 1), lo.numel(), generator=generator, dtype=dtype)
    starts = lo + noise.to(device) * (hi - lo)
    directions = torch.rand(len(starts), net.out_features, generator=generator, dtype=dtype)
    starts = _diversified(net, lo, hi, starts, 2 * directions.to(device) - 1)
    starts[0] = (lo + hi) / 2
    checker = checker or _Checker(net, prop, lo, hi)
    # Every start descends towards every unsafe conjunction, each example with its own
    # conjunction's rows (padded to one length); the examples descend independently, so a
    # chunk at a time gives the same points while the deadline is checked between chunks.
    C, d = padded_rows([(C.to(dtype=dtype, device=device), d.to(dtype=dtype, device=device))
                        for C, d in prop.disjuncts])  # fmt: skip
    n = len(starts)
    points = starts.repeat(len(C), 1)  # all starts for the first conjunction, then the next…
    rows, offsets = C.repeat_interleave(n, dim=0), d.repeat_interleave(n, dim=0)
    for first in range(0, len(points), ATTACK_CHUNK):
        chunk = slice(first, first + ATTACK_CHUNK)
        found = checker.check(_attack(net, lo, hi, rows[chunk], offsets[chunk], points[chunk],
                                      steps))  # fmt: skip
        if found is not None or (deadline is not None and deadline.passed):
            return found
    return None


def prepare(
    net: Network,
    box: Box,
    prop: OutputProperty,
    deadline: Deadline,
    *,
    dtype: torch.dtype = torch.float64,
    inside: Box | None = None,
) -> _Search:
    """Networks, boxes and checker for searching ``box`` in ``dtype`` (see :class:`_Search`)."""
    check_float(dtype)
    f64 = torch.float64
    net64 = net.detach(dtype=f64)
    device = net64.layers[0].bias.device
    lower, upper, single = Box(box.lower.to(device), box.upper.to(device)).flat(net.input_shape)
    if not single:
        raise ConfigError("search() takes one input box; loop over a batch")
    lo64, hi64 = lower[0].to(f64), upper[0].to(f64)
    lo, hi = outward(lower[0], upper[0], dtype)
    in_lo, in_hi = lo64, hi64
    if inside is not None:
        # A counterexample must lie in both: the box searched and the box as written.
        written_lo, written_hi, _ = Box(inside.lower.to(device), inside.upper.to(device)).flat(
            net.input_shape
        )
        in_lo = torch.maximum(in_lo, written_lo[0].to(f64))
        in_hi = torch.minimum(in_hi, written_hi[0].to(f64))
    work = net64.detach(dtype=dtype)
    checker = _Checker(net64, prop, in_lo, in_hi, work=(work, lo, hi))
    exact = cast_is_exact(net64, dtype) and all(
        bool(torch.equal(t.to(dtype).to(t.dtype), t)) for C, d in prop.disjuncts for t in (C, d)
    )
    return _Search(work, lo, hi, net64, lo64, hi64, dtype != f64, not exact, deadline, checker)


@ieee_float32()
def search(
    net: Network | nn.Module,
    box: Box,
    prop: OutputProperty,
    *,
    timeout: float | None = None,
    deadline: Deadline | None = None,
    method: str = "milp",
    attack_restarts: int = 8,
    dtype: torch.dtype = torch.float64,
    inside: Box | None = None,
    branch_candidates: int = BRANCH_CANDIDATES,
) -> SearchResult:
    """Decide whether any input in ``box`` reaches the unsafe region of ``prop``.

    Args:
        net: a small network (or a supported module, converted on the box's shape).
        box: the input set, shaped like one input; ``holds`` means no input in it (as its
            values are: the box is never shrunk) reaches the unsafe region.
        prop: the unsafe region.
        timeout: wall-clock seconds; past it the answer is ``unknown``.
        deadline: or a deadline shared with other work (one of the two).
        method: ``"milp"``, ``"bab"`` (ReLU splits, an LP per subdomain), ``"bab+beta"``
            (ReLU splits, batched β-CROWN bounds) or ``"input"`` (input splits).
        attack_restarts: random starts of the attack run before the solver (0: none).
        dtype: the dtype bounds and attacks run in (float32 is faster; bounds then carry
            rounding allowances). Counterexamples are always checked in float64.
        inside: a box a counterexample must also lie in (a VNN-LIB box rounded inward).
        branch_candidates: for ``bab+beta``, units tried per subdomain before one is split
            (filtered smart branching, ``beta_crown.strongest_splits``; 1: the highest
            intercept score).

    Raises:
        ConfigError: for an unknown method, a non-positive timeout, ``branch_candidates < 1``
            or a batched box.
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {list(METHODS)}; got {method!r}")
    if branch_candidates < 1:
        raise ConfigError(f"branch_candidates must be at least 1; got {branch_candidates}")
    if deadline is None:
        if timeout is None or not timeout > 0:
            raise ConfigError(f"timeout must be > 0 seconds; got {timeout}")
        deadline = Deadline(timeout)
    start = time.perf_counter()
    net = as_network(net, tuple(box.lower.shape)).detach()
    job = prepare(net, box, prop, deadline, dtype=dtype, inside=inside)
    prop64 = prop.to(torch.float64, job.lo.device)
    work_prop = prop.to(dtype, job.lo.device)

    def answer(status, x=None, detail=""):
        if x is None:
            return SearchResult(status, None, None, time.perf_counter() - start, detail)
        with torch.no_grad():
            y = job.net64(x.reshape(1, -1).to(torch.float64))[0]
        return SearchResult(
            status, x.reshape(net.input_shape), y, time.perf_counter() - start, detail
        )

    if attack_restarts > 0:
        found = find_counterexample(job.net, job.lo, job.hi, work_prop, restarts=attack_restarts,
                                    deadline=deadline, checker=job.checker)  # fmt: skip
        if found is not None:
            return answer("violated", found, "attack")
        if deadline.passed:
            return answer("unknown", detail="time out during the attack")

    try:
        bounds = job.root_bounds(ROOT_ALPHA_STEPS if method == "bab+beta" else 0)
    except Expired:
        return answer("unknown", detail="time out during CROWN's bounds")
    open_disjuncts = []
    for C, d in prop64.disjuncts:
        if not bool((job.rows_lower(C, d, bounds) > 0).any()):
            open_disjuncts.append((C, d))
    if not open_disjuncts:
        return answer("holds", detail="CROWN bounds rule out every unsafe region")
    if method == "bab+beta":  # decides all the conjunctions in one search
        try:
            status, x, detail = _beta_search(job, open_disjuncts, bounds, branch_candidates)
        except Expired as error:
            return answer("unknown", detail=str(error))
        return answer(status, x, detail)
    solve = {"milp": _milp_disjunct, "bab": _bab_disjunct, "input": _input_disjunct}[method]
    notes = []
    for C, d in open_disjuncts:
        if deadline.passed:
            return answer("unknown", detail="time out")
        try:
            status, x, detail = solve(job, C, d, bounds)
        except Expired as error:
            return answer("unknown", detail=str(error))
        if status == "violated":
            return answer("violated", x, detail)
        if status == "unknown":
            return answer("unknown", detail=detail)
        notes.append(detail)
    return answer("holds", detail="; ".join(notes))
