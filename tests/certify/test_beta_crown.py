"""β-CROWN on batches of ReLU-split subdomains: sound for any α ∈ [0, 1] and β ≥ 0 against
the exact minimum over each subdomain (a MILP with the split constraints), exact in the limit
when every unstable unit is split, and the batched branch and bound built on it."""

import dataclasses

import numpy as np
import pytest
import torch
from scipy.optimize import Bounds, LinearConstraint, milp
from torch import nn

import stalwart.certify.complete as complete
from stalwart.certify import Box, Deadline, Dense, OutputProperty, from_module, from_ops
from stalwart.certify.beta_crown import beta_crown, strongest_splits
from stalwart.certify.complete import milp_optimum, search
from stalwart.certify.crown import crown_layer_bounds
from stalwart.certify.lp import encode
from stalwart.errors import ConfigError

F64 = torch.float64


def random_mlp(sizes, seed):
    g = torch.Generator().manual_seed(seed)
    layers = []
    for a, b in zip(sizes, sizes[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1]).double()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=F64) / max(p.shape[-1], 1) ** 0.5)
    return from_module(model, (sizes[0],)).detach(dtype=F64)


def case(seed, sizes=(4, 10, 10, 3), eps=0.3):
    net = random_mlp(sizes, seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(sizes[0], generator=g, dtype=F64)
    prop = OutputProperty.margin(int(net(x).argmax()), sizes[-1], dtype=F64)
    C, d, _ = prop.stacked()
    lo, hi = x - eps, x + eps
    return net, lo, hi, C, d, g


def pre_activations(net, points):
    values, h = [], points
    for layer in net.layers[:-1]:
        z = layer.forward(h)
        values.append(z)
        h = z.relu()
    return values


def subdomain_minimum(net, lo, hi, C, d, bounds, splits):
    """Per row, the network's value at the MILP's minimiser over the subdomain (a value the
    network takes there, so no sound bound exceeds it); ``inf`` when the subdomain is empty."""
    enc = encode(net, lo, hi, bounds, splits=[s.numpy() for s in splits], binary=True)
    values = []
    for r in range(len(C)):
        result = milp(
            C[r].numpy() @ enc.out_matrix, constraints=LinearConstraint(enc.A, -np.inf, enc.b),
            integrality=enc.integrality, bounds=Bounds(enc.lower, enc.upper),
            options={"mip_rel_gap": 1e-9},
        )  # fmt: skip
        if result.status == 2:
            values.append(np.inf)
            continue
        assert result.status == 0, result.message
        x = torch.as_tensor(result.x[: enc.n_inputs], dtype=F64).clamp(lo, hi)
        values.append(float(net(x[None])[0] @ C[r] + d[r]))
    return torch.tensor(values, dtype=F64)


def random_splits(root, activations, g, fraction, consistent=True):
    """Split a random ``fraction`` of the unstable units, on the side a sampled point takes
    (so the subdomain holds that point), or on random sides (possibly empty subdomains)."""
    splits = []
    for (lb, ub), z in zip(root, activations, strict=False):
        unstable = (lb < 0) & (ub > 0)
        pick = unstable & (torch.rand(z.shape, generator=g) < fraction)
        side = torch.sign(z) if consistent else torch.randint(0, 2, z.shape, generator=g) * 2 - 1
        splits.append(torch.where(pick, side.to(F64), 0.0).to(torch.int8))
    return splits


@pytest.mark.parametrize("seed", range(6))
def test_no_split_bound_exceeds_the_subdomain_minimum_for_any_alpha_and_beta(seed):
    net, lo, hi, C, d, g = case(seed, sizes=(3, 8, 8, 8, 3) if seed % 2 else (4, 10, 10, 3))
    root = crown_layer_bounds(net, lo, hi)
    points = lo + torch.rand(6, len(lo), generator=g, dtype=F64) * (hi - lo)
    activations = pre_activations(net, points)
    splits = random_splits(
        root[:-1], activations, g, fraction=0.5 if seed < 3 else 1.0, consistent=seed < 3
    )
    m = len(C)
    # Random multipliers and slopes (even outside their ranges: they are projected), no
    # optimisation; then the optimised ones from those starts.
    alphas = [torch.rand(6, m, w, generator=g, dtype=F64) * 3 - 1 for w in net.hidden_sizes]
    betas = [torch.randn(6, m, w, generator=g, dtype=F64) * 3 for w in net.hidden_sizes]
    empties = 0
    for steps in (0, 15):
        result = beta_crown(net, lo, hi, C, d, splits, root_bounds=root[:-1], alphas=alphas,
                            betas=betas, steps=steps)  # fmt: skip
        for b in range(6):
            truth = subdomain_minimum(net, lo, hi, C, d, root, [s[b] for s in splits])
            assert (result.lower[b] <= truth + 1e-9 * (1 + truth.abs())).all(), (
                seed, steps, b, result.lower[b].tolist(), truth.tolist())  # fmt: skip
            if bool(result.empty[b]):
                assert torch.isinf(truth).all(), (seed, b, "empty, but the MILP finds a point")
                empties += 1
    if seed >= 3:
        assert empties, "random sides should leave some subdomains empty"
    # The sampled points lie in their own subdomains: the bound is below their values.
    if seed < 3:
        values = net(points) @ C.T + d
        assert (result.lower <= values + 1e-12).all()


@pytest.mark.parametrize("seed", range(4))
def test_with_every_unstable_unit_split_the_bound_reaches_the_exact_minimum(seed):
    net, lo, hi, C, d, g = case(seed)
    root = crown_layer_bounds(net, lo, hi)
    points = lo + torch.rand(4, len(lo), generator=g, dtype=F64) * (hi - lo)
    splits = random_splits(root[:-1], pre_activations(net, points), g, fraction=1.0)
    crown = beta_crown(net, lo, hi, C, d, splits, root_bounds=root[:-1], steps=0).lower
    tight = beta_crown(net, lo, hi, C, d, splits, root_bounds=root[:-1], steps=300).lower
    gaps = []
    for b in range(4):
        truth = subdomain_minimum(net, lo, hi, C, d, root, [s[b] for s in splits])
        assert (tight[b] <= truth + 1e-9).all()
        # The multipliers close the duality gap of the linear program up to Adam's accuracy.
        assert (tight[b] >= truth - 0.02 * (1 + truth.abs())).all(), (
            seed, b, tight[b].tolist(), truth.tolist())  # fmt: skip
        gaps.append(float((truth - crown[b]).max()))
    assert (tight >= crown).all()
    # Without multipliers (steps = 0) the split constraints are ignored: far looser somewhere.
    assert max(gaps) > 0.05, gaps


def test_bad_splits_and_rates():
    net, lo, hi, C, d, _ = case(0)
    with pytest.raises(ConfigError, match="one \\(batch, width\\) tensor per hidden layer"):
        beta_crown(net, lo, hi, C, d, [torch.zeros(1, 10, dtype=torch.int8)])
    splits = [torch.zeros(1, w, dtype=torch.int8) for w in net.hidden_sizes]
    with pytest.raises(ConfigError, match="steps >= 0"):
        beta_crown(net, lo, hi, C, d, splits, steps=-1)


def test_batched_branch_and_bound_agrees_with_the_milp_and_needs_its_splits():
    seen = []
    for seed in range(8):
        net = random_mlp((4, 16, 16, 3), seed)
        g = torch.Generator().manual_seed(seed)
        x = torch.rand(4, generator=g, dtype=F64)
        prop = OutputProperty.margin(int(net(x).argmax()), 3, dtype=F64)
        C, d, _ = prop.stacked()
        box = Box(x - 0.35, x + 0.35)
        optimum = milp_optimum(net, box.lower, box.upper, C, d)
        expected = "violated" if bool((optimum <= 0).any()) else "holds"
        result = search(net, box, prop, timeout=30, method="bab+beta", attack_restarts=0)
        assert result.status == expected, (seed, result.detail, optimum.tolist())
        if expected == "violated":
            assert box.contains(result.counterexample)
            assert prop.violated_by(net(result.counterexample))
        seen.append((expected, result.detail))
    # Some proofs needed branching, not only the root bound.
    closed = [int(detail.split()[-2]) for s, detail in seen if "closed" in detail]
    assert closed and max(closed) > len(prop.disjuncts), seen  # more than the roots
    assert "violated" in {s for s, _ in seen}, seen


def test_slopes_outside_zero_one_are_projected():
    # y = relu(x) − 2 relu(x + 1) + 2 = relu(x) − 2x on [−1, 1]: minimum −1 at x = 1. The lower
    # line α x is valid only for α ∈ [0, 1]; α = 2 would claim y ≥ 0.
    hidden = Dense(torch.tensor([[1.0], [1.0]], dtype=F64), torch.tensor([0.0, 1.0], dtype=F64))
    out = Dense(torch.tensor([[1.0, -2.0]], dtype=F64), torch.tensor([2.0], dtype=F64))
    net = from_ops([hidden, "relu", out], (1,))
    lo, hi = torch.tensor([-1.0], dtype=F64), torch.tensor([1.0], dtype=F64)
    C, d = torch.ones(1, 1, dtype=F64), torch.zeros(1, dtype=F64)
    splits = [torch.zeros(1, 2, dtype=torch.int8)]
    alphas = [torch.tensor([[[2.0, 0.5]]], dtype=F64)]
    result = beta_crown(net, lo, hi, C, d, splits, alphas=alphas, steps=0)
    assert float(result.lower[0, 0]) == pytest.approx(-1.0)


def test_a_violated_conjunction_is_never_ruled_out_even_with_no_counterexample_found():
    # With the attack and the candidate checks blinded, only the bounds decide: on a property
    # whose minimum is just below zero (−0.002) the search may say unknown, never holds.
    net = random_mlp((4, 16, 16, 3), 4)
    x = torch.rand(4, generator=torch.Generator().manual_seed(4), dtype=F64)
    prop = OutputProperty.margin(int(net(x).argmax()), 3, dtype=F64)
    box = Box(x - 0.35, x + 0.35)
    job = complete.prepare(net, box, prop, Deadline(8))

    class Blind:
        work = job.checker.work

        def check(self, points):
            return None

    job = dataclasses.replace(job, checker=Blind())
    bounds = job.root_bounds()
    statuses = []
    for C, d in prop.disjuncts:
        optimum = float(milp_optimum(net, box.lower, box.upper, C, d)[0])
        if optimum < 0:
            status, found, detail = complete._beta_search(job, [(C, d)], bounds)
            assert status == "unknown" and found is None, (optimum, status, detail)
            statuses.append(detail)
    assert statuses, "the case should have a violated conjunction"


def test_one_c_per_subdomain_bounds_each_subdomain_with_its_own_rows():
    net, lo, hi, C, d, _ = case(1)
    splits = [torch.zeros(2, w, dtype=torch.int8) for w in net.hidden_sizes]
    splits[0][1, 0] = 1  # the second subdomain also has a split unit
    both = beta_crown(net, lo, hi, torch.stack([C, -C]), torch.stack([d, -d]), splits, steps=5)
    for i, (Ci, di) in enumerate([(C, d), (-C, -d)]):
        alone = beta_crown(net, lo, hi, Ci, di, [s[i : i + 1] for s in splits], steps=5)
        torch.testing.assert_close(both.lower[i], alone.lower[0])
    with pytest.raises(ConfigError, match="C must be"):
        beta_crown(net, lo, hi, torch.stack([C, C, C]), d, splits)


def test_conjunctions_of_different_lengths_are_decided_in_one_search_as_the_milp_decides():
    seen = set()
    for seed in range(8):
        net = random_mlp((4, 16, 16, 3), seed)
        x = torch.rand(4, generator=torch.Generator().manual_seed(seed), dtype=F64)
        label = int(net(x).argmax())
        a, b = (j for j in range(3) if j != label)
        rows = torch.zeros(2, 3, dtype=F64)
        rows[0, label], rows[0, a], rows[1, label], rows[1, b] = 1, -1, 1, -1
        # Unsafe: the label is the lowest output (two rows), or b comes within 0.05 of it (one).
        prop = OutputProperty([(rows, torch.zeros(2, dtype=F64)),
                               (rows[1:], torch.full((1,), -0.05, dtype=F64))])  # fmt: skip
        box = Box(x - 0.5, x + 0.5)
        expected = search(net, box, prop, timeout=30, method="milp", attack_restarts=0)
        found = search(net, box, prop, timeout=30, method="bab+beta", attack_restarts=0)
        assert found.status == expected.status, (seed, found.detail, expected.detail)
        if found.status == "violated":
            assert box.contains(found.counterexample)
            assert prop.violated_by(net(found.counterexample))
        seen.add(found.status)
    assert seen == {"holds", "violated"}


@pytest.mark.parametrize("seed", range(4))
def test_a_child_keeps_its_parents_bounds_up_to_its_split_and_needs_fresh_ones_above(seed):
    # Branch and bound bounds a child's layers up to the one it splits from its parent's
    # bounds, with no backward pass (`reuse`); that must equal computing them afresh.
    net, lo, hi, _, _, _ = case(seed, sizes=(4, 12, 12, 12, 3), eps=0.4)
    root = [(lb[None], ub[None]) for lb, ub in crown_layer_bounds(net, lo, hi)[:-1]]
    lo2, hi2 = lo.expand(2, -1), hi.expand(2, -1)
    stale_above = 0
    for j, (lb, ub) in enumerate(root):
        unstable = ((lb[0] < 0) & (ub[0] > 0)).nonzero().flatten()
        if not len(unstable):
            continue
        fixed = [torch.zeros(2, w, dtype=F64) for w in net.hidden_sizes]
        fixed[j][:, unstable[0]] = torch.tensor([1.0, -1.0], dtype=F64)
        fresh = crown_layer_bounds(net, lo2, hi2, reference=root, fixed=fixed)
        reused = crown_layer_bounds(net, lo2, hi2, reference=root, reuse=j + 1, fixed=fixed)
        for (fl, fu), (rl, ru) in zip(fresh, reused, strict=True):
            torch.testing.assert_close(rl, fl, rtol=0, atol=1e-12)
            torch.testing.assert_close(ru, fu, rtol=0, atol=1e-12)
        if j + 1 < len(root):
            # Reusing one layer more would keep bounds the split tightens.
            stale = crown_layer_bounds(net, lo2, hi2, reference=root, reuse=j + 2, fixed=fixed)
            stale_above += int(not torch.equal(stale[j + 1][1], fresh[j + 1][1]))
    assert stale_above > 0


@pytest.mark.parametrize("seed", range(3))
def test_children_split_at_different_layers_are_bounded_in_one_call_as_in_one_call_each(seed):
    # Branch and bound bounds a round's children together, each keeping its parent's layer
    # bounds up to its own split (`unchanged` per subdomain): each must get what a call for
    # its own group gives, layer bounds, bound and warm starts alike.
    net, lo, hi, C, d, g = case(seed, sizes=(4, 12, 12, 12, 3), eps=0.4)
    root = crown_layer_bounds(net, lo, hi)[:-1]
    points = lo + torch.rand(6, len(lo), generator=g, dtype=F64) * (hi - lo)
    splits = random_splits(root, pre_activations(net, points), g, fraction=0.3)
    parents = [(lb.expand(6, -1).clone(), ub.expand(6, -1).clone()) for lb, ub in root]
    counts = torch.tensor([1, 3, 2, 1, 3, 2])
    together = beta_crown(net, lo, hi, C, d, splits, root_bounds=parents, unchanged=counts,
                          steps=5)  # fmt: skip
    for count in (1, 2, 3):
        group = (counts == count).nonzero().flatten()
        alone = beta_crown(net, lo, hi, C, d, [s[group] for s in splits],
                           root_bounds=[(lb[group], ub[group]) for lb, ub in parents],
                           unchanged=count, steps=5)  # fmt: skip
        torch.testing.assert_close(together.lower[group], alone.lower, rtol=0, atol=1e-12)
        for (tl, tu), (al, au) in zip(together.layer_bounds, alone.layer_bounds, strict=True):
            torch.testing.assert_close(tl[group], al, rtol=0, atol=0)
            torch.testing.assert_close(tu[group], au, rtol=0, atol=0)
        for t, a in zip(together.alphas + together.betas, alone.alphas + alone.betas,
                        strict=True):  # fmt: skip
            torch.testing.assert_close(t[group], a, rtol=0, atol=1e-12)
    with pytest.raises(ConfigError, match="unchanged must be one count or one per subdomain"):
        beta_crown(net, lo, hi, C, d, splits, root_bounds=parents, unchanged=counts[:4])


def test_units_the_reference_finds_stable_get_no_crown_rows(monkeypatch):
    import stalwart.certify.crown as crown

    net, lo, hi, _, _, _ = case(1, sizes=(4, 16, 16, 16, 3), eps=0.4)
    rows = {}
    pair_bound = crown._pair_bound

    def counted(net, depth, lower, upper, units, bounds):
        rows[depth] = 2 * len(units)  # each unit's ±e_k
        return pair_bound(net, depth, lower, upper, units, bounds)

    monkeypatch.setattr(crown, "_pair_bound", counted)
    own = crown_layer_bounds(net, lo, hi)
    rows_own = dict(rows)
    # CROWN's own bounds as the reference (in branch and bound, the parent's): the units they
    # find stable need no rows, and the answer does not change.
    rows.clear()
    again = crown_layer_bounds(net, lo, hi, reference=own[:-1])
    for i, (lb, ub) in enumerate(own[1:-1], start=1):
        assert rows[i] == 2 * int(((lb < 0) & (ub > 0)).sum())
    assert sum(rows.values()) < sum(rows_own.values())
    for (al, au), (ol, ou) in zip(again, own, strict=True):
        torch.testing.assert_close(al, ol, rtol=0, atol=1e-12)
        torch.testing.assert_close(au, ou, rtol=0, atol=1e-12)


def test_the_search_gives_up_when_its_open_subdomains_outgrow_the_memory_limit(monkeypatch):
    # Each queued subdomain holds compact copies, never views that keep a batch alive, and a
    # search whose queue outgrows `max_memory` says unknown rather than exhausting memory.
    import functools

    import stalwart.certify.relu_split as relu_split

    kept = []

    domain_class = relu_split._Domain

    def recorded(*fields):
        kept.append(domain_class(*fields))
        return kept[-1]

    monkeypatch.setattr(relu_split, "_Domain", recorded)
    net = random_mlp((4, 16, 16, 3), 8)
    x = torch.rand(4, generator=torch.Generator().manual_seed(8), dtype=F64)
    prop = OutputProperty.margin(int(net(x).argmax()), 3, dtype=F64)
    box = Box(x - 0.35, x + 0.35)
    free = search(net, box, prop, timeout=30, method="bab+beta", attack_restarts=0)
    assert free.status == "holds" and int(free.detail.split()[-2]) > 2, free.detail
    assert kept
    for domain in kept:
        tensors = [*domain.splits, *domain.alphas, *domain.betas, *sum(domain.bounds, ())]
        assert all(t.untyped_storage().nbytes() == t.element_size() * t.numel() for t in tensors)
    limited = functools.partial(relu_split.relu_split_search, max_memory=kept[0].nbytes - 1)
    monkeypatch.setattr(complete, "relu_split_search", limited)
    tight = search(net, box, prop, timeout=30, method="bab+beta", attack_restarts=0)
    assert tight.status == "unknown" and "open subdomains hold over" in tight.detail, tight


@pytest.mark.parametrize("reduce", ["max", "min"])
@pytest.mark.parametrize("seed", range(3))
def test_filtered_smart_branching_picks_the_unit_whose_children_bound_best(seed, reduce):
    # Every unstable unit a candidate: the choice must be the unit whose two children, each
    # bounded by β-CROWN in one pass from the parent's bounds, α and β, score best.
    net, lo, hi, C, d, g = case(seed, sizes=(3, 8, 8, 8, 3))
    root = crown_layer_bounds(net, lo, hi)[:-1]
    points = lo + torch.rand(4, len(lo), generator=g, dtype=F64) * (hi - lo)
    splits = random_splits(root, pre_activations(net, points), g, fraction=0.3)
    parents = beta_crown(net, lo, hi, C, d, splits, root_bounds=root, steps=5)
    units = sum(net.hidden_sizes)
    chosen = strongest_splits(net, lo, hi, C, d, parents, splits, candidates=units,
                              reduce=reduce)  # fmt: skip
    flat_scores = torch.cat(parents.scores, dim=1)
    offsets = np.cumsum([0, *net.hidden_sizes])
    for b in range(len(points)):
        own = parents.select(torch.tensor([b]))
        best, best_value = -1, -np.inf
        for unit in (flat_scores[b] > -np.inf).nonzero().flatten().tolist():
            layer = int(np.searchsorted(offsets, unit, side="right") - 1)
            sides = []
            for side in (1, -1):
                child = [s[b : b + 1].clone() for s in splits]
                child[layer][0, unit - offsets[layer]] = side
                bounded = beta_crown(net, lo, hi, C, d, child, root_bounds=own.layer_bounds,
                                     unchanged=len(root), alphas=own.alphas, betas=own.betas,
                                     steps=0)  # fmt: skip
                sides.append(float(bounded.lower.max()))
            value = max(sides) if reduce == "max" else min(sides)
            if value > best_value + 1e-12:
                best, best_value = unit, value
        assert int(chosen[b]) == best, (seed, b, int(chosen[b]), best)
    # One candidate: the highest intercept score, no passes.
    assert torch.equal(strongest_splits(net, lo, hi, C, d, parents, splits, candidates=1),
                       flat_scores.argmax(dim=1))  # fmt: skip


def test_filtered_smart_branching_rejects_bad_settings():
    net, lo, hi, C, d, _ = case(0)
    splits = [torch.zeros(1, w, dtype=torch.int8) for w in net.hidden_sizes]
    parents = beta_crown(net, lo, hi, C, d, splits, steps=0)
    with pytest.raises(ConfigError, match="candidates must be at least 1"):
        strongest_splits(net, lo, hi, C, d, parents, splits, candidates=0)
    with pytest.raises(ConfigError, match="reduce must be 'max' or 'min'"):
        strongest_splits(net, lo, hi, C, d, parents, splits, reduce="mean")
