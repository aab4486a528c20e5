"""β-CROWN: CROWN bounds on many ReLU-split subdomains at once, with split multipliers.

Wang, Zhang, Xu, Lin, Jana, Hsieh and Kolter, "Beta-CROWN: Efficient Bound Propagation with
Per-neuron Split Constraints for Neural Network Robustness Verification", NeurIPS 2021
(arXiv 2103.06624); the lower slopes are α-CROWN's (Xu et al., ICLR 2021, arXiv 2011.13824).

A subdomain of branch and bound constrains some hidden units: ``s = +1`` (active, ``z ≥ 0``)
or ``s = −1`` (inactive, ``z ≤ 0``). On the subdomain such a unit's ReLU *is* a line (the
identity, or zero), so its relaxation is replaced by that line. The constraint itself enters
the bound through a Lagrange multiplier ``β ≥ 0``: for ``x`` in the subdomain
``−β s z(x) ≤ 0``, so ``f(x) ≥ f(x) − Σ β s z(x)``, and CROWN's backward pass bounds the right
side over the whole box (the term is one more coefficient ``−β s`` on ``z`` when the pass
reaches that layer). Any ``α ∈ [0, 1]`` and ``β ≥ 0`` give a sound bound, so the two are
optimised jointly by projected Adam steps and the best value seen per row is kept (Wang et al.
§3.2). With every unstable unit split the network is linear on the subdomain and the optimal
``β`` closes the Lagrangian duality gap: the bound tends to the exact minimum (an LP).

Intermediate bounds: per subdomain, CROWN's layer bounds with the split units' bounds clipped
at zero (``crown_layer_bounds(fixed=...)``), intersected with the parent's (or the root's); both
are sound on the subdomain, and units already stable there get no CROWN rows. An empty
subdomain (some lower bound above its upper bound) gets ``+inf``.

Everything runs on one batch of subdomains: tensors are ``(batch, rows, width)``. Bounds are
computed without rounding allowances, so they are certificates for float64 networks (as
branch and bound in ``complete.py`` runs them), not for float32 arithmetic.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from stalwart.certify.crown import LayerBounds, _relu_lines, crown_layer_bounds
from stalwart.certify.deadline import Deadline
from stalwart.certify.network import Network
from stalwart.certify.optim import Adam
from stalwart.errors import ConfigError


@dataclass
class SplitBounds:
    """β-CROWN's answer for a batch of subdomains.

    Attributes:
        lower: ``(batch, rows)`` sound lower bounds on ``C f(x) + d`` over each subdomain
            (``+inf`` for an empty one).
        alphas: per hidden layer, the last lower slopes ``(batch, rows, width)`` (warm starts).
        betas: per hidden layer, the last split multipliers ``(batch, rows, width)``.
        layer_bounds: per hidden layer, the subdomains' pre-activation bounds ``(batch, width)``.
        scores: per hidden layer, ``(batch, width)`` branching scores (:func:`intercept_scores`);
            ``−inf`` on units that are stable or split.
        candidates: ``(batch, n)`` the input minimising the linear bound of each subdomain's
            highest row: where a counterexample is most likely (Wang et al. §3.3).
        empty: ``(batch,)`` subdomains whose split constraints leave no input.
    """

    lower: Tensor
    alphas: list[Tensor]
    betas: list[Tensor]
    layer_bounds: LayerBounds
    scores: list[Tensor]
    candidates: Tensor
    empty: Tensor

    def select(self, index: Tensor) -> SplitBounds:
        """The answer for the subdomains ``index`` only."""
        return SplitBounds(
            self.lower[index],
            [a[index] for a in self.alphas],
            [b[index] for b in self.betas],
            [(lb[index], ub[index]) for lb, ub in self.layer_bounds],
            [s[index] for s in self.scores],
            self.candidates[index],
            self.empty[index],
        )


@dataclass
class _Lines:
    """Each hidden layer's relaxation on a batch of subdomains: fixed while α and β move.

    Per layer, shaped for the ``(batch, rows, width)`` coefficients: the upper line's slope
    and intercept and which units are unstable (``(batch, 1, width)``), the split signs
    (same), and the units whose coefficients can be non-zero (``(batch, width)``).
    """

    slope: list[Tensor]
    intercept: list[Tensor]
    unstable: list[Tensor]
    signs: list[Tensor]
    support: list[Tensor]

    @classmethod
    def of(cls, bounds: LayerBounds, signs: list[Tensor]) -> _Lines:
        """The relaxation of layer ``bounds`` with split ``signs`` (``(batch, width)`` each)."""
        lines = cls([], [], [], [], [])
        for (lb, ub), sign in zip(bounds, signs, strict=True):
            slope, intercept, _ = _relu_lines(lb, ub)
            lines.slope.append(slope.unsqueeze(1))
            lines.intercept.append(intercept.unsqueeze(1))
            lines.unstable.append(((lb < 0) & (ub > 0)).unsqueeze(1))
            lines.signs.append(sign.unsqueeze(1))
            lines.support.append((ub > 0) | (sign != 0))
        return lines


def _backward(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    C: Tensor,
    d: Tensor,
    lines: _Lines,
    alphas: list[Tensor],
    betas: list[Tensor],
) -> tuple[Tensor, list[Tensor], Tensor]:
    """One backward pass of the relaxation with split multipliers.

    Returns:
        The bound ``(batch, rows)``, the coefficients on every hidden layer's ReLU output
        ``(batch, rows, width)``, and the coefficients on the input ``(batch, rows, n)``.
    """
    batch, m = lower.shape[0], C.shape[-2]
    last = net.layers[-1]
    lam = C.expand(batch, m, C.shape[-1])  # one C for all, or one per subdomain
    const = d.expand(batch, m) + lam @ last.bias
    lam = last.backward(lam)
    on_outputs = []
    for j in range(len(net.layers) - 2, -1, -1):
        slope = lines.slope[j]
        # Split units have bounds clipped at zero, so _relu_lines already makes them exact.
        low = torch.where(lines.unstable[j], alphas[j], slope)
        on_outputs.append(lam)
        positive, negative = lam.clamp(min=0), lam.clamp(max=0)
        const = const + (negative * lines.intercept[j]).sum(-1)
        lam = positive * low + negative * slope
        # The split constraint s z ≥ 0 with its multiplier: f − β s z ≤ f on the subdomain.
        lam = lam - lines.signs[j] * betas[j]
        layer = net.layers[j]
        const = const + lam @ layer.bias
        lam = layer.backward_on(lam, lines.support[j])
    center = ((upper + lower) / 2).unsqueeze(-1)
    radius = ((upper - lower) / 2).unsqueeze(-1)
    value = (lam @ center).squeeze(-1) - (lam.abs() @ radius).squeeze(-1) + const
    return value, on_outputs[::-1], lam


def intercept_scores(
    bounds: LayerBounds, on_outputs: list[Tensor], row: Tensor, splits: list[Tensor]
) -> list[Tensor]:
    """How much splitting each unit could raise the bound: the intercept of its upper line.

    The backward pass pays ``λ⁻ · t`` for a unit whose ReLU output has a negative coefficient
    ``λ`` (``t = −u l / (u − l)``, the chord's intercept); splitting the unit removes that
    term, so it estimates the gain (the "intercept" score of filtered smart branching: De Palma,
    Bunel, Desmaison, Dvijotham, Kohli, Torr and Kumar, "Improved Branch and Bound for Neural
    Network Verification via Lagrangian Decomposition", arXiv 2104.06718, §5; a simplified
    BaBSR, Bunel et al., JMLR 2020, arXiv 1909.06588). ``λ`` is taken from ``row``, the
    subdomain's highest row (the one closest to ruling the subdomain out). Ties (no negative
    coefficient anywhere) go to the unit with the widest ``min(u, −l)``, so an unstable unit
    is always chosen while one remains.
    """
    scores = []
    index = torch.arange(len(row), device=row.device)
    for (lb, ub), lam, split in zip(bounds, on_outputs, splits, strict=True):
        lam = lam[index, row]
        unstable = (lb < 0) & (ub > 0) & (split == 0)
        width = (ub - lb).clamp(min=torch.finfo(lb.dtype).tiny)
        intercept = -ub * lb / width
        score = lam.clamp(max=0).abs() * intercept + 1e-9 * torch.minimum(ub, -lb)
        scores.append(torch.where(unstable, score, torch.full_like(score, -torch.inf)))
    return scores


def strongest_splits(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    C: Tensor,
    d: Tensor,
    result: SplitBounds,
    splits: list[Tensor],
    *,
    candidates: int = 5,
    reduce: str = "max",
    chunk: int = 512,
) -> Tensor:
    """Filtered smart branching: per subdomain, the unit whose split looks strongest.

    De Palma et al. (arXiv 2104.06718, §5), as αβ-CROWN's ``kfsb`` branching: the
    ``candidates`` units with the highest :func:`intercept_scores` are each split both ways,
    and both children get one backward pass with the subdomain's own layer bounds, α and β (the
    split unit's bounds clipped at zero, its multiplier zero, nothing optimised). A child scores
    its highest row, the one that rules it out; the unit whose children score best, taken by
    ``reduce`` (``max``: the better child, as αβ-CROWN's mnist_fc configuration; ``min``: the
    worse), is chosen. The one-pass values only rank candidates: they are never bounds.

    Args:
        net: the network the subdomains were bounded on.
        lower: input lower bounds ``(n,)``.
        upper: input upper bounds ``(n,)``.
        C: the subdomains' rows ``(batch, m, outputs)`` (or ``(m, outputs)`` for all).
        d: their offsets ``(batch, m)`` (or ``(m,)``).
        result: β-CROWN's answer for these subdomains (bounds, α, β, scores).
        splits: their splits, per hidden layer ``(batch, width)``.
        candidates: units tried per subdomain (1: the highest score, no passes).
        reduce: ``max`` or ``min`` over a candidate's two children.
        chunk: children per backward pass (memory).

    Returns:
        ``(batch,)`` the chosen unit's index into the hidden layers' units, concatenated; −1
        where no unit is unstable and unsplit.

    Raises:
        ConfigError: ``candidates < 1`` or an unknown ``reduce``.
    """
    if candidates < 1:
        raise ConfigError(f"candidates must be at least 1; got {candidates}")
    if reduce not in ("max", "min"):
        raise ConfigError(f"reduce must be 'max' or 'min'; got {reduce!r}")
    if not result.scores:
        return torch.full((len(result.lower),), -1, dtype=torch.long, device=lower.device)
    flat = torch.cat(result.scores, dim=1)
    batch, k = flat.shape[0], min(candidates, flat.shape[1])
    top_score, top = flat.topk(k, dim=1)
    valid = top_score > -torch.inf
    if k == 1:
        return torch.where(valid[:, 0], top[:, 0], -1)
    widths = [s.shape[1] for s in result.scores]
    offsets = torch.tensor([0, *itertools.accumulate(widths)], device=flat.device)
    dtype = result.layer_bounds[0][0].dtype
    C = C.to(dtype).expand(batch, *C.shape[-2:])
    d = d.to(dtype).expand(batch, d.shape[-1])
    # Child t of the flattened (subdomain, candidate, side) grid: side +1 first, then −1.
    parent = torch.arange(batch, device=flat.device).repeat_interleave(2 * k)
    unit = top.repeat_interleave(2, dim=1).reshape(-1)
    side = torch.tensor([1.0, -1.0], dtype=dtype, device=flat.device).repeat(batch * k)
    values = []
    for start in range(0, len(parent), chunk):
        part = slice(start, start + chunk)
        p, u, sd = parent[part], unit[part], side[part]
        rows = torch.arange(len(p), device=p.device)
        bounds, signs = [], []
        for j, (lb, ub) in enumerate(result.layer_bounds):
            lb, ub = lb[p].clone(), ub[p].clone()
            sign = splits[j][p].to(dtype)
            here = (u >= offsets[j]) & (u < offsets[j + 1])
            r, local = rows[here], u[here] - offsets[j]
            active = sd[here] > 0
            lb[r, local] = torch.where(active, lb[r, local].clamp(min=0), lb[r, local])
            ub[r, local] = torch.where(active, ub[r, local], ub[r, local].clamp(max=0))
            sign[r, local] = sd[here]
            bounds.append((torch.minimum(lb, ub), ub))
            signs.append(sign)
        lo = lower.reshape(1, -1).expand(len(p), -1)
        hi = upper.reshape(1, -1).expand(len(p), -1)
        with torch.no_grad():
            value, _, _ = _backward(net, lo, hi, C[p], d[p], _Lines.of(bounds, signs),
                                    [a[p] for a in result.alphas],
                                    [b[p] for b in result.betas])  # fmt: skip
        values.append(value.max(dim=1).values)
    children = torch.cat(values).reshape(batch, k, 2)
    pick = children.max(dim=2).values if reduce == "max" else children.min(dim=2).values
    pick = torch.where(valid, pick, -torch.inf)
    best = pick.argmax(dim=1)
    chosen = top.gather(1, best[:, None])[:, 0]
    return torch.where(valid[:, 0], chosen, -1)


def _split_layer_bounds(
    net: Network,
    lo: Tensor,
    hi: Tensor,
    reference: LayerBounds | None,
    unchanged: int | Tensor,
    signs: list[Tensor],
    deadline: Deadline | None,
) -> LayerBounds:
    """Every hidden layer's bounds on each subdomain (:func:`beta_crown`'s ``unchanged``).

    With one count per subdomain, the subdomains that share a count are bounded together:
    CROWN's passes cost the same batched or not, and the optimisation after them, which costs
    per call more than per subdomain, then runs once for all.
    """
    depth = len(signs) - 1  # the last hidden layer; the outputs' bounds are not needed
    if isinstance(unchanged, int):
        return crown_layer_bounds(net, lo, hi, reference=reference, reuse=unchanged,
                                  depth=depth, fixed=signs, deadline=deadline)  # fmt: skip
    batch = lo.shape[0]
    if unchanged.shape != (batch,):
        raise ConfigError(
            f"unchanged must be one count or one per subdomain ({batch}); got shape "
            f"{tuple(unchanged.shape)}"
        )
    bounds = [(lo.new_empty(batch, w), lo.new_empty(batch, w)) for w in net.hidden_sizes]
    for count in unchanged.unique().tolist():
        group = (unchanged == count).nonzero().flatten()
        own = None
        if reference is not None:
            own = [(rl.expand(batch, -1)[group], ru.expand(batch, -1)[group])
                   for rl, ru in reference]  # fmt: skip
        part = crown_layer_bounds(net, lo[group], hi[group], reference=own, reuse=int(count),
                                  depth=depth, fixed=[s[group] for s in signs],
                                  deadline=deadline)  # fmt: skip
        for (lb, ub), (plb, pub) in zip(bounds, part, strict=True):
            lb[group], ub[group] = plb, pub
    return bounds


def beta_crown(
    net: Network,
    lower: Tensor,
    upper: Tensor,
    C: Tensor,
    d: Tensor,
    splits: list[Tensor],
    *,
    root_bounds: LayerBounds | None = None,
    unchanged: int | Tensor = 0,
    alphas: list[Tensor] | None = None,
    betas: list[Tensor] | None = None,
    steps: int = 20,
    lr_alpha: float = 0.1,
    lr_beta: float = 0.05,
    deadline: Deadline | None = None,
) -> SplitBounds:
    """Lower bounds on ``C f(x) + d`` over a batch of ReLU-split subdomains of one box.

    Args:
        net: a feed-forward ReLU network (float64 for a certificate: no rounding allowance).
        lower: input lower bounds ``(n,)``, the box every subdomain lies in.
        upper: input upper bounds ``(n,)``.
        C: rows ``(m, outputs)``, or ``(batch, m, outputs)``: each subdomain its own rows
            (branch and bound deciding several unsafe conjunctions in one batch).
        d: offsets ``(m,)``, or ``(batch, m)``.
        splits: per hidden layer ``(batch, width)`` with ``+1`` (unit constrained active),
            ``−1`` (inactive) or ``0``; one subdomain per batch entry.
        root_bounds: sound layer bounds on the whole box (``(width,)`` each) or on each
            subdomain (``(batch, width)``: the parents'), intersected with each subdomain's
            own; units they find stable are not bounded again.
        unchanged: the first hidden layers whose ``root_bounds`` are taken as they are, with
            no backward pass (the parents' bounds below every child's new split): one count
            for all, or ``(batch,)`` counts, one per subdomain. The layer bounds are then
            found group by group, and α and β are optimised for the whole batch at once.
        alphas: warm-start lower slopes per hidden layer, broadcastable to
            ``(batch, m, width)`` (clipped to ``[0, 1]``); default CROWN's adaptive slopes.
        betas: warm-start multipliers, same shapes (clipped at 0); default 0.
        steps: projected Adam steps on α and β together (0: CROWN with the split lines).
        lr_alpha: Adam's step size for α.
        lr_beta: Adam's step size for β.
        deadline: stops the optimisation early (still sound); raises ``Expired`` while the
            layer bounds are computed.

    Raises:
        ConfigError: for splits that do not match the network, or bad ``steps`` / rates.
    """
    hidden = net.hidden_sizes
    if len(splits) != len(hidden) or any(
        s.dim() != 2 or s.shape[1] != w or s.shape[0] != splits[0].shape[0]
        for s, w in zip(splits, hidden, strict=False)
    ):
        raise ConfigError(
            f"splits must be one (batch, width) tensor per hidden layer of widths {hidden}; got "
            f"shapes {[tuple(s.shape) for s in splits]}"
        )
    if steps < 0 or not lr_alpha > 0 or not lr_beta > 0:
        raise ConfigError(
            f"β-CROWN needs steps >= 0 and positive rates; got steps={steps}, "
            f"lr_alpha={lr_alpha}, lr_beta={lr_beta}"
        )
    batch, m = splits[0].shape[0], C.shape[-2]
    if C.dim() not in (2, 3) or (C.dim() == 3 and C.shape[0] != batch) or d.shape[-1] != m:
        raise ConfigError(
            f"C must be (rows, outputs) or (batch, rows, outputs) with d (rows,) or (batch, "
            f"rows), for a batch of {batch}; got C {tuple(C.shape)} and d {tuple(d.shape)}"
        )
    net = net.detach()
    dtype, device = lower.dtype, lower.device
    C, d = C.to(dtype).detach(), d.to(dtype).detach()
    lo = lower.detach().reshape(1, -1).expand(batch, -1)
    hi = upper.detach().reshape(1, -1).expand(batch, -1)
    signs = [s.to(device=device, dtype=dtype) for s in splits]
    with torch.no_grad():
        # The root's (or parent's) bounds hold on the subdomain too: every bound is clipped
        # to them, and units they find stable are not bounded again.
        reference = None
        if root_bounds is not None:
            reference = [(rl.to(dtype), ru.to(dtype)) for rl, ru in root_bounds[: len(hidden)]]
        bounds = _split_layer_bounds(net, lo, hi, reference, unchanged, signs, deadline)
        empty = torch.zeros(batch, dtype=torch.bool, device=device)
        for lb, ub in bounds:
            empty |= (lb > ub).any(1)
        # An empty subdomain's bounds cross; give the pass harmless ones (its value is +inf).
        bounds = [
            (torch.where(empty[:, None], 0.0, lb), torch.where(empty[:, None], 0.0, ub))
            for lb, ub in bounds
        ]

    def start(given, default):
        if given is None:
            return default.clone()
        return given.to(dtype=dtype, device=device).expand_as(default).clone()

    alpha_list, beta_list = [], []
    for j, (lb, ub) in enumerate(bounds):
        _, _, adaptive = _relu_lines(lb, ub)
        adaptive = adaptive.unsqueeze(1).expand(batch, m, -1)
        a = start(None if alphas is None else alphas[j], adaptive).clamp_(0.0, 1.0)
        b = start(None if betas is None else betas[j], torch.zeros_like(adaptive)).clamp_(min=0)
        # Multipliers of unsplit units multiply zero; keep them at zero so warm starts stay clean.
        b = b * (signs[j] != 0).unsqueeze(1)
        alpha_list.append(a.requires_grad_(True))
        beta_list.append(b.requires_grad_(True))

    args = (net, lo, hi, C, d, _Lines.of(bounds, signs))
    best = None
    if steps > 0 and bounds:
        with torch.enable_grad():
            optimiser_a = Adam(alpha_list, lr=lr_alpha)
            optimiser_b = Adam(beta_list, lr=lr_beta)
            for _ in range(steps):
                if deadline is not None and deadline.passed:
                    break
                value, _, _ = _backward(*args, alpha_list, beta_list)
                best = value.detach() if best is None else torch.maximum(best, value.detach())
                optimiser_a.zero_grad()
                optimiser_b.zero_grad()
                (-value.sum()).backward()
                optimiser_a.step()
                optimiser_b.step()
                with torch.no_grad():
                    for a in alpha_list:
                        a.clamp_(0.0, 1.0)
                    for b in beta_list:
                        b.clamp_(min=0.0)
    with torch.no_grad():
        value, on_outputs, lam_in = _backward(*args, alpha_list, beta_list)
        best = value if best is None else torch.maximum(best, value)
        best = torch.where(empty[:, None], torch.inf, best)
        row = value.argmax(1)
        index = torch.arange(batch, device=device)
        chosen = lam_in[index, row]
        candidates = torch.where(chosen > 0, lo, hi)
        scores = intercept_scores(bounds, on_outputs, row, signs)
    return SplitBounds(
        best,
        [a.detach() for a in alpha_list],
        [b.detach() for b in beta_list],
        bounds,
        scores,
        candidates,
        empty,
    )
