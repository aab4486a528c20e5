import pytest
import torch
from torch import nn

from stalwart.certify import Box, OutputProperty, bound, from_module, search
from stalwart.certify.complete import milp_optimum
from stalwart.certify.verify import verify


def few_input_net(seed):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                          nn.Linear(16, 4))  # fmt: skip
    return from_module(model, (3,))


@pytest.mark.parametrize("seed", range(8))
def test_input_splitting_agrees_with_the_exact_optimum(seed):
    net = few_input_net(seed)
    g = torch.Generator().manual_seed(seed)
    centre = torch.rand(3, generator=g)
    box = Box(centre - 0.3, centre + 0.3)
    label = int(net(centre).argmax())
    prop = OutputProperty.margin(label, 4)
    result = search(net, box, prop, timeout=30, method="input", attack_restarts=0)
    C, d, _ = prop.stacked()
    exact = float(milp_optimum(net, box.lower, box.upper, C, d).min())
    if result.status == "violated":
        assert box.contains(result.counterexample)
        assert prop.violated_by(net.detach(dtype=torch.float64)(result.counterexample))
        assert exact <= 1e-6
    else:
        assert result.status == "holds", result.detail
        assert exact > 0


def test_auto_uses_input_splitting_on_few_inputs_and_a_time_out_is_unknown():
    # y_0 − y_1 = 0.2 everywhere, but no bound proves it (the triangle relaxation of
    # relu(x) − relu(−x) is 0.5 loose at 0): with three inputs, auto must pick input splitting.
    net = identity_gap_net(3)
    box = Box(torch.tensor([-1.0, 0.0, 0.0]), torch.ones(3))
    prop = OutputProperty.margin(0, 2)
    assert float(bound("ibp", net, box, prop=prop).lower[0]) < 0
    verdict = verify(net, [(box, prop)], timeout=20, bounds=["ibp"], attack_restarts=0)
    assert verdict.status == "holds" and verdict.decided_by == "input", verdict.log
    assert "input says holds (input splitting" in verdict.log[-1]
    # The weakest class at the centre: the unsafe region (another class at least as large)
    # contains the centre itself, so no bound rules it out and a spent deadline says unknown.
    net = few_input_net(0)
    centre = torch.full((3,), 0.5)
    weakest = OutputProperty.margin(int(net(centre).argmin()), 4)
    rushed = search(net, Box(centre - 0.3, centre + 0.3), weakest, timeout=1e-9,
                    method="input", attack_restarts=0)  # fmt: skip
    assert rushed.status == "unknown"


def identity_gap_net(n_inputs):
    """``y_0 = 0.2 + relu(x_0) − relu(−x_0) − (relu(x_0 + 2) − 2) = 0.2``, ``y_1 = 0``."""
    model = nn.Sequential(nn.Linear(n_inputs, 3), nn.ReLU(), nn.Linear(3, 2))
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].weight[:, 0] = torch.tensor([1.0, -1.0, 1.0])
        model[0].bias.copy_(torch.tensor([0.0, 0.0, 2.0]))
        model[2].weight.copy_(torch.tensor([[1.0, -1.0, -1.0], [0.0, 0.0, 0.0]]))
        model[2].bias.copy_(torch.tensor([2.2, 0.0]))
    return from_module(model, (n_inputs,))


def test_splits_go_where_the_bound_is_loose_not_along_the_widest_input():
    # y_0 − y_1 = 0.2 everywhere, and only x_0 reaches the ReLUs whose relaxation hides it;
    # x_1 and x_2 are a hundred times wider but do not matter. Halving x_0 is what raises the
    # bound, so a handful of sub-boxes decide it (splitting the widest input would take
    # thousands before x_0 came up).
    net = identity_gap_net(3)
    box = Box(torch.tensor([-1.0, 0.0, 0.0]), torch.tensor([1.0, 100.0, 100.0]))
    result = search(net, box, OutputProperty.margin(0, 2), timeout=20, method="input",
                    attack_restarts=0)  # fmt: skip
    assert result.status == "holds", result.detail
    visited = int(result.detail.split("input splitting, ")[1].split()[0])
    assert visited <= 16, result.detail


def test_alpha_crown_closes_sub_boxes_crown_leaves_open(monkeypatch):
    # On this network CROWN cannot rule out the whole box, and a few α-CROWN steps can: the
    # search then decides at its first sub-box. Without the α-CROWN tier it has to split.
    from stalwart.certify import input_split

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                          nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4))  # fmt: skip
    net = from_module(model, (3,))
    centre = torch.full((3,), 0.5)
    prop = OutputProperty.margin(int(net(centre).argmax()), 4)

    def visited() -> int:
        result = search(net, Box(centre - 0.5, centre + 0.5), prop, timeout=30, method="input",
                        attack_restarts=0)  # fmt: skip
        assert result.status == "holds", result.detail
        return int(result.detail.split("input splitting, ")[1].split()[0])

    assert visited() == 1
    monkeypatch.setattr(input_split, "ALPHA_STEPS", 0)  # CROWN alone
    assert visited() > 1
