import pytest
import torch
from torch import nn

from stalwart.certify import Box, OutputProperty, from_module, search
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
        assert prop.violated_by(net(result.counterexample))
        assert exact <= 1e-6
    else:
        assert result.status == "holds", result.detail
        assert exact > 0


def test_auto_uses_input_splitting_on_few_inputs_and_a_time_out_is_unknown():
    net = few_input_net(0)
    centre = torch.full((3,), 0.5)
    prop = OutputProperty.margin(int(net(centre).argmax()), 4)
    verdict = verify(net, [(Box(centre - 0.05, centre + 0.05), prop)], timeout=20,
                     bounds=["ibp"], attack_restarts=0)  # fmt: skip
    assert verdict.status in ("holds", "violated")
    if verdict.status == "holds":
        assert verdict.decided_by in ("ibp", "input")
    # The weakest class at the centre: the unsafe region (another class at least as large)
    # contains the centre itself, so no bound rules it out and a spent deadline says unknown.
    weakest = OutputProperty.margin(int(net(centre).argmin()), 4)
    rushed = search(net, Box(centre - 0.3, centre + 0.3), weakest, timeout=1e-9,
                    method="input", attack_restarts=0)  # fmt: skip
    assert rushed.status == "unknown"
