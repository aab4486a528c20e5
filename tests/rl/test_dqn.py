"""The double-DQN machinery: targets, Huber loss, ε-greedy, schedule, target sync."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stalwart.rl.dqn import (
    LinearSchedule,
    QLearner,
    double_dqn_loss,
    double_dqn_targets,
    epsilon_greedy,
)
from stalwart.rl.networks import RecurrentQNetwork, previous_inputs


def test_the_target_takes_the_online_argmax_and_the_target_networks_value():
    # One episode of two steps, three observations. At each next observation the online
    # network prefers another action than the target network does, so double DQN (online
    # chooses, target values) differs from both plain DQN (target chooses and values) and
    # from the online network valuing its own choice.
    online = torch.tensor([[[0.0, 0.0, 0.0], [5.0, 1.0, 0.0], [0.0, 0.0, 9.0]]])
    target = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 7.0, 0.0], [4.0, 0.0, 3.0]]])
    rewards = torch.tensor([[0.5, -0.1]])
    dones = torch.tensor([[0.0, 1.0]])
    targets = double_dqn_targets(online, target, rewards, dones, gamma=0.9)
    # Step 0: the online argmax at s_1 is action 0, worth 2.0 to the target network.
    # Step 1: done, so the reward alone (the 3.0 the target gives action 2 is not added).
    assert targets[0].tolist() == pytest.approx([0.5 + 0.9 * 2.0, -0.1])
    assert not targets.requires_grad


def test_the_loss_is_huber_on_the_taken_actions_over_real_steps_only():
    online = torch.zeros(2, 3, 2, requires_grad=True)
    target = torch.zeros(2, 3, 2)
    actions = torch.tensor([[0, 1], [1, 0]])
    rewards = torch.tensor([[3.0, 0.5], [100.0, -100.0]])  # the second episode is padding
    dones = torch.ones(2, 2)
    mask = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    loss = double_dqn_loss(online, target, actions, rewards, dones, mask, gamma=0.99)
    # Huber (δ = 1) of the errors 3.0 and 0.5: 2.5 and 0.125, averaged over the 2 real steps.
    assert loss.item() == pytest.approx((2.5 + 0.125) / 2)
    loss.backward()
    grad = online.grad
    assert grad[1].abs().sum() == 0  # padding contributes nothing
    assert grad[0, 0, 0] == pytest.approx(-0.5) and grad[0, 0, 1] == 0  # only the taken action


def test_epsilon_greedy_is_greedy_at_zero_and_uniform_at_one():
    q = torch.tensor([[0.0, 2.0, 1.0]]).repeat(4000, 1)
    assert (epsilon_greedy(q, 0.0, np.random.default_rng(0)) == 1).all()
    counts = np.bincount(epsilon_greedy(q, 1.0, np.random.default_rng(0)), minlength=3)
    assert counts.min() > 1200
    # The generator is drawn from equally whatever ε is.
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    epsilon_greedy(q[:3], 0.0, a)
    epsilon_greedy(q[:3], 0.7, b)
    assert a.random() == b.random()


def test_the_schedule_decays_linearly_then_holds():
    schedule = LinearSchedule(1.0, 0.1, 100)
    assert [schedule(s) for s in (0, 50, 100, 1000)] == pytest.approx([1.0, 0.55, 0.1, 0.1])


def test_sync_copies_the_online_weights_and_the_target_does_not_train():
    learner = QLearner(RecurrentQNetwork([3, 4], 2, hidden=8, field_dim=4))
    with torch.no_grad():
        for p in learner.online.parameters():
            p.add_(1.0)
    assert not all(
        torch.equal(a, b)
        for a, b in zip(learner.online.parameters(), learner.target.parameters(), strict=True)
    )
    learner.sync()
    assert all(
        torch.equal(a, b)
        for a, b in zip(learner.online.parameters(), learner.target.parameters(), strict=True)
    )
    assert not any(p.requires_grad for p in learner.target.parameters())


def test_previous_inputs_start_with_the_start_token_and_shift_by_one():
    actions = torch.tensor([[2, 0, 1]])
    rewards = torch.tensor([[0.0, -0.1, 1.0]])
    previous_actions, previous_rewards = previous_inputs(actions, rewards, n_actions=5)
    assert previous_actions.tolist() == [[5, 2, 0, 1]]
    assert previous_rewards[0].tolist() == pytest.approx([0.0, 0.0, -0.1, 1.0])


def test_stepping_the_network_one_step_at_a_time_equals_one_pass_over_the_sequence():
    torch.manual_seed(0)
    net = RecurrentQNetwork(
        [5, 5, 2], 4, hidden=8, field_dim=4, previous_action=True, previous_reward=True,
        context_dim=3,
    )  # fmt: skip
    obs = torch.randint(0, 2, (2, 6, 3))
    previous_actions = torch.randint(0, 5, (2, 6))
    previous_rewards = torch.randn(2, 6)
    context = torch.randn(2, 3)
    whole, _ = net(
        obs, previous_actions=previous_actions, previous_rewards=previous_rewards, context=context
    )
    state, steps = None, []
    for t in range(6):
        q, state = net(
            obs[:, t : t + 1],
            previous_actions=previous_actions[:, t : t + 1],
            previous_rewards=previous_rewards[:, t : t + 1],
            context=context,
            state=state,
        )
        steps.append(q)
    assert torch.allclose(torch.cat(steps, 1), whole, atol=1e-6)
