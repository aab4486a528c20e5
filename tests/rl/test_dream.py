"""DREAM's objective: exploration reward, bottleneck, decoder loss, and μ kept out of meta-test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stalwart.rl import envs
from stalwart.rl.config import validate_rl_config
from stalwart.rl.dream import (
    Dream,
    ProblemEncoder,
    TrajectoryDecoder,
    bottleneck_penalty,
    decoder_loss,
    exploration_rewards,
    final_contexts,
)
from stalwart.rl.evaluate import HeldOut, evaluate
from stalwart.rl.replay import EpisodeBatch
from stalwart.rl.rollout import rollout

SMALL = {"name": "distracting_bus_small"}


def tiny_dream(**changes) -> tuple[Dream, list]:
    cfg = validate_rl_config(
        {"env": SMALL, "learner": "dream", "hidden": 16, "field_dim": 4, "batch_size": 4,
         "dream": {"context_dim": 6}, **changes}
    )  # fmt: skip
    torch.manual_seed(0)
    train_envs = [envs.make("distracting_bus_small") for _ in range(3)]
    for i, env in enumerate(train_envs):
        env.reset(seed=i)
    return Dream(train_envs[0], cfg), train_envs


def test_the_exploration_rewards_telescope():
    # Σ_t r_t = ‖f − g(τ_{:0})‖² − ‖f − g(τ_{:T})‖² − c·T, each episode up to its own length.
    torch.manual_seed(0)
    contexts = torch.randn(3, 8, 5)
    f = torch.randn(3, 5)
    lengths = torch.tensor([7, 3, 1])
    mask = (torch.arange(7)[None] < lengths[:, None]).float()
    c = 0.1
    rewards = exploration_rewards(contexts, f, mask, penalty=c)
    distance = ((contexts - f[:, None]) ** 2).sum(-1)
    for i, length in enumerate(lengths.tolist()):
        expected = distance[i, 0] - distance[i, length] - c * length
        assert rewards[i].sum().item() == pytest.approx(expected.item(), abs=1e-5)
        assert rewards[i, length:].abs().sum() == 0  # padding earns nothing
    # Each step's reward is its own improvement: a step that does not move g pays −c.
    still = contexts.clone()
    still[:, 2] = still[:, 1]
    assert exploration_rewards(still, f, mask, c)[0, 1].item() == pytest.approx(-c)
    assert not rewards.requires_grad


def test_the_bottleneck_acts_only_above_the_threshold_and_pushes_the_norm_down():
    inside = torch.tensor([[1.0, 2.0], [0.0, -3.0]], requires_grad=True)  # ‖f‖² = 5, 9
    penalty = bottleneck_penalty(inside, threshold=10.0)
    penalty.backward()
    assert penalty.item() == pytest.approx(10.0)
    assert inside.grad.abs().sum() == 0

    outside = torch.tensor([[3.0, 4.0], [1.0, 0.0]], requires_grad=True)  # ‖f‖² = 25, 1
    penalty = bottleneck_penalty(outside, threshold=10.0)
    penalty.backward()
    assert penalty.item() == pytest.approx((25.0 + 10.0) / 2)
    # Only the embedding above the threshold is pushed, straight back towards 0 (2f / B).
    assert outside.grad[0].tolist() == pytest.approx([3.0, 4.0])
    assert outside.grad[1].abs().sum() == 0
    with torch.no_grad():
        stepped = outside - 0.1 * outside.grad
    assert stepped[0].norm() < outside[0].norm()


def test_the_decoder_loss_trains_the_decoder_and_never_moves_f():
    torch.manual_seed(0)
    encoder = ProblemEncoder(n_problems=4, hidden=8, context_dim=5)
    decoder = TrajectoryDecoder([5, 5, 2, 5, 2], 5, hidden=8, field_dim=4, context_dim=5)
    obs = torch.randint(0, 2, (3, 5, 5))
    actions = torch.randint(0, 5, (3, 4))
    contexts = decoder(obs, actions)
    assert contexts.shape == (3, 5, 5)
    f = encoder(torch.tensor([0, 1, 3]))
    loss = decoder_loss(contexts, f, torch.ones(3, 5))
    loss.backward()
    assert all(p.grad is None for p in encoder.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in decoder.parameters())
    expected = ((contexts - f[:, None]) ** 2).sum(-1)
    assert loss.item() == pytest.approx(expected.mean().item(), rel=1e-5)


def test_the_decoder_reads_each_prefix_causally_and_the_empty_one_alike():
    torch.manual_seed(0)
    decoder = TrajectoryDecoder([5, 5, 2, 5, 2], 5, hidden=8, field_dim=4, context_dim=3)
    obs = torch.randint(0, 2, (2, 5, 5))
    actions = torch.randint(0, 5, (2, 4))
    contexts = decoder(obs, actions)
    # g(τ_{:0}) is the same for every trajectory; g(τ_{:t}) depends only on steps before t.
    assert torch.allclose(contexts[0, 0], contexts[1, 0])
    changed = obs.clone()
    changed[0, 4] = 1 - changed[0, 4]
    again = decoder(changed, actions)
    assert torch.allclose(again[0, :4], contexts[0, :4])
    assert not torch.allclose(again[0, 4], contexts[0, 4])
    assert torch.equal(final_contexts(contexts, torch.tensor([2, 4])), contexts[[0, 1], [2, 4]])


def test_an_update_trains_all_three_parts_and_both_q_networks():
    learner, train_envs = tiny_dream()
    rng = np.random.default_rng(0)
    for round_index in range(3):
        played = rollout(
            train_envs, learner.policy(training=True, round_index=round_index),
            epsilon=1.0, rng=rng, reveal_problems=True,
        )  # fmt: skip
        learner.store(played)
    before = {k: v.clone() for k, v in learner.networks.state_dict().items()}
    losses = learner.update(rng)
    after = learner.networks.state_dict()
    for part in ("exploration.online", "exploitation.online", "encoder", "decoder"):
        assert any(not torch.equal(before[k], after[k]) for k in after if k.startswith(part)), part
    for part in ("exploration.target", "exploitation.target"):  # until the next sync
        assert all(torch.equal(before[k], after[k]) for k in after if k.startswith(part)), part
    assert set(losses) == {
        "exploitation_td", "decoder", "bottleneck", "exploration_td", "exploration_reward"
    }  # fmt: skip


class Forbidden(torch.nn.Module):
    """Stands in for f_ψ where μ must not be used: calling it fails the test."""

    def forward(self, problems):
        raise AssertionError("f(μ) was computed at meta-test")


def test_meta_test_never_uses_the_problem_id():
    learner, _ = tiny_dream()
    held_out = HeldOut(lambda: envs.make("distracting_bus_small", split="test"))
    first = evaluate(learner, held_out)
    # z comes from the decoder alone: with f_ψ gone, evaluation runs and gives the same.
    learner.networks["encoder"] = Forbidden()
    assert evaluate(learner, held_out) == first
    policy = learner.policy(training=False)
    with pytest.raises(ValueError, match="must not be handed the problem"):
        policy.start(2, np.array([0, 1]))


def test_the_exploitation_z_comes_from_mu_or_the_decoder_by_round():
    learner, train_envs = tiny_dream()
    rng = np.random.default_rng(0)
    played = rollout(
        train_envs[:1], learner.policy(training=True), epsilon=1.0, rng=rng, reveal_problems=True
    )
    exploration = [played[0].exploration]
    batch = EpisodeBatch.from_episodes(exploration)
    nets = learner.networks
    from_decoder = final_contexts(nets["decoder"](batch.obs, batch.actions), batch.lengths)
    for round_index, decoded in ((0, True), (1, False)):
        policy = learner.policy(training=True, round_index=round_index)
        policy.start(1, np.array([played[0].problem]))
        policy.begin_exploitation(exploration)
        assert torch.allclose(policy.z, from_decoder) == decoded
        if not decoded:  # f(μ) + ρε: near f(μ), not equal to it
            f = nets["encoder"](torch.tensor([played[0].problem]))
            assert 0 < (policy.z - f).abs().max() < 1.0
