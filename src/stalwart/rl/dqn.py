"""Double DQN on whole episodes: the machinery every Q-learner in ``stalwart.rl`` shares.

- **Double DQN** (van Hasselt, Guez and Silver, AAAI 2016, arXiv 1509.06461): the target of
  step ``t`` is ``r_t + γ (1 − done_t) Q_target(s_{t+1}, argmax_a Q_online(s_{t+1}, a))``:
  the online network chooses the next action, the target network values it, which removes
  most of Q-learning's overestimation.
- **Recurrent Q-learning on episodes**: both networks are unrolled over the same whole episode
  (``T + 1`` observations from a zero state), so ``Q(s_{t+1})`` is read at position ``t + 1``
  of the same pass that gives ``Q(s_t)``.
- **Huber loss** on the TD error (smooth L1, δ = 1), averaged over the real (unpadded) steps.
- **ε-greedy** acting with ε decaying linearly over environment steps.

DREAM's two policies and E-RL² call ``double_dqn_loss`` with Q-values from their own
networks; each keeps a ``QLearner`` (online net, target net, optimiser).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LinearSchedule:
    """A value going linearly from ``start`` to ``end`` over ``steps`` steps, then ``end``."""

    def __init__(self, start: float, end: float, steps: int) -> None:
        self.start, self.end, self.steps = start, end, max(int(steps), 1)

    def __call__(self, step: int) -> float:
        """The value after ``step`` steps."""
        fraction = min(max(step, 0) / self.steps, 1.0)
        return self.start + fraction * (self.end - self.start)


def epsilon_greedy(q_values: Tensor, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """Greedy actions of ``q_values`` ``[N, A]``, each replaced by a random one w.p. ε.

    The generator is drawn from the same number of times whatever ε is, so runs with other
    schedules stay comparable draw for draw.
    """
    n, n_actions = q_values.shape
    greedy = q_values.argmax(-1).cpu().numpy()
    explore = rng.random(n) < epsilon
    random_actions = rng.integers(n_actions, size=n)
    return np.where(explore, random_actions, greedy)


def double_dqn_targets(
    online_q: Tensor, target_q: Tensor, rewards: Tensor, dones: Tensor, gamma: float
) -> Tensor:
    """TD targets ``[B, T]`` from Q-values over ``T + 1`` observations.

    Args:
        online_q: ``[B, T + 1, A]`` the online network's Q-values (only positions 1..T are
            read, to choose each next action).
        target_q: ``[B, T + 1, A]`` the target network's Q-values (positions 1..T give the
            chosen next action's value).
        rewards: ``[B, T]`` rewards of the steps.
        dones: ``[B, T]`` 1 where nothing follows the step.
        gamma: the discount.
    """
    next_actions = online_q[:, 1:].argmax(-1, keepdim=True)
    next_values = target_q[:, 1:].gather(-1, next_actions).squeeze(-1)
    return (rewards + gamma * (1.0 - dones) * next_values).detach()


def double_dqn_loss(
    online_q: Tensor,
    target_q: Tensor,
    actions: Tensor,
    rewards: Tensor,
    dones: Tensor,
    mask: Tensor,
    gamma: float,
) -> Tensor:
    """The Huber TD loss of double DQN, averaged over the real steps (``mask``)."""
    taken = online_q[:, :-1].gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    targets = double_dqn_targets(online_q, target_q, rewards, dones, gamma)
    losses = F.smooth_l1_loss(taken, targets, reduction="none")
    return (losses * mask).sum() / mask.sum().clamp(min=1.0)


class QLearner(nn.Module):
    """An online Q-network and its target copy; ``sync`` copies the first into the second."""

    def __init__(self, online: nn.Module) -> None:
        super().__init__()
        self.online = online
        self.target = copy.deepcopy(online)
        self.target.requires_grad_(False)

    def sync(self) -> None:
        """Copy the online weights into the target network."""
        self.target.load_state_dict(self.online.state_dict())


def optimizer_step(
    loss: Tensor,
    groups: Sequence[tuple[torch.optim.Optimizer, list[Tensor]]],
    max_norm: float,
) -> list[float]:
    """One backward of ``loss``, then for each (optimiser, parameters): clip, step.

    Learners whose parts have their own optimisers over disjoint parameters (DREAM's two
    policies) add their losses and take one backward pass: each part's gradient is that of
    its own loss. Each group's gradient is clipped to global norm ``max_norm`` on its own.

    Returns:
        Each group's gradient norm before clipping.
    """
    for optimizer, _ in groups:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norms = [float(torch.nn.utils.clip_grad_norm_(params, max_norm)) for _, params in groups]
    for optimizer, _ in groups:
        optimizer.step()
    return norms
