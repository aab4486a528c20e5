"""The recurrent Q-network both meta-learners share, and the tables that embed observations.

DREAM (arXiv 2008.02790, Appendix; reference ``embed.py``) embeds each discrete observation
field with its own table, concatenates the embeddings, and runs an LSTM over the episode;
the Q-values are read from the LSTM's output, joined with a task embedding ``z`` where the
policy is conditioned on one. Which extra inputs a learner feeds depends on what it needs:

- DREAM's exploitation policy: the observation and ``z`` (the instruction is a field of the
  observation);
- DREAM's exploration policy: the observation and the previous action;
- E-RL²: the observation, the previous action and the previous reward (the recurrent state
  carries what was seen while exploring into the exploitation episode).

Inputs are whole sequences ``[B, T, ...]``; acting feeds one step at a time (``T = 1``) and
passes the returned hidden state back in.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LSTMState = tuple[Tensor, Tensor]


class ObservationEmbedding(nn.Module):
    """One embedding table per observation field, concatenated, then a linear layer + ReLU.

    Args:
        field_sizes: how many values each field takes (a ``MultiDiscrete`` space's ``nvec``).
        field_dim: the width of each field's table.
        out_dim: the width of the output.
    """

    def __init__(self, field_sizes: Sequence[int], field_dim: int, out_dim: int) -> None:
        super().__init__()
        self.field_sizes = [int(n) for n in field_sizes]
        self.tables = nn.ModuleList(nn.Embedding(n, field_dim) for n in self.field_sizes)
        self.project = nn.Linear(field_dim * len(self.field_sizes), out_dim)

    def forward(self, obs: Tensor) -> Tensor:
        """``[..., F]`` int64 observations → ``[..., out_dim]``."""
        parts = [table(obs[..., i]) for i, table in enumerate(self.tables)]
        return F.relu(self.project(torch.cat(parts, -1)))


def previous_inputs(actions: Tensor, rewards: Tensor, n_actions: int) -> tuple[Tensor, Tensor]:
    """The previous action and reward at each of the ``T + 1`` observations of episodes.

    At the first observation there is none: the action is the start token ``n_actions`` and
    the reward 0. Acting must feed the same values (``rollout`` does).

    Args:
        actions: ``[B, T]`` actions taken.
        rewards: ``[B, T]`` rewards received.
        n_actions: how many actions there are (the start token is this number).

    Returns:
        ``[B, T + 1]`` previous actions and ``[B, T + 1]`` previous rewards.
    """
    start = torch.full_like(actions[:, :1], n_actions)
    return torch.cat([start, actions], 1), torch.cat([torch.zeros_like(rewards[:, :1]), rewards], 1)


class RecurrentQNetwork(nn.Module):
    """Q-values over a sequence: embeddings → LSTM → (join ``z``) → MLP head.

    Args:
        field_sizes: the observation space's ``nvec``.
        n_actions: how many actions there are.
        hidden: the LSTM's width (and the embeddings').
        field_dim: the width of each observation field's table.
        previous_action: feed the previous action (an embedding table, with a start token).
        previous_reward: feed the previous reward (a linear embedding).
        context_dim: the width of a task embedding ``z`` joined to the LSTM output (0: none).
    """

    def __init__(
        self,
        field_sizes: Sequence[int],
        n_actions: int,
        *,
        hidden: int = 64,
        field_dim: int = 16,
        previous_action: bool = False,
        previous_reward: bool = False,
        context_dim: int = 0,
    ) -> None:
        super().__init__()
        self.n_actions = n_actions
        self.previous_action, self.previous_reward = previous_action, previous_reward
        self.context_dim = context_dim
        self.observation = ObservationEmbedding(field_sizes, field_dim, hidden)
        width = hidden
        if previous_action:
            self.action_table = nn.Embedding(n_actions + 1, field_dim)  # + the start token
            width += field_dim
        if previous_reward:
            self.reward_embedding = nn.Linear(1, field_dim)
            width += field_dim
        self.lstm = nn.LSTM(width, hidden, batch_first=True)
        self.head = nn.Sequential(
            nn.Linear(hidden + context_dim, hidden), nn.ReLU(), nn.Linear(hidden, n_actions)
        )

    def forward(
        self,
        obs: Tensor,
        *,
        previous_actions: Tensor | None = None,
        previous_rewards: Tensor | None = None,
        context: Tensor | None = None,
        state: LSTMState | None = None,
    ) -> tuple[Tensor, LSTMState]:
        """Q-values ``[B, T, n_actions]`` and the LSTM state after the last step.

        Args:
            obs: ``[B, T, F]`` int64 observations.
            previous_actions: ``[B, T]`` int64 (start token ``n_actions``), if the net takes it.
            previous_rewards: ``[B, T]`` float, if the net takes it.
            context: ``[B, context_dim]`` task embedding, if the net takes one.
            state: the LSTM state to start from (None: zeros, an episode's start).
        """
        parts = [self.observation(obs)]
        if self.previous_action:
            if previous_actions is None:
                raise ValueError("this network takes the previous actions")
            parts.append(self.action_table(previous_actions))
        if self.previous_reward:
            if previous_rewards is None:
                raise ValueError("this network takes the previous rewards")
            parts.append(self.reward_embedding(previous_rewards.unsqueeze(-1).float()))
        out, state = self.lstm(torch.cat(parts, -1), state)
        if self.context_dim:
            if context is None:
                raise ValueError("this network is conditioned on a context z")
            out = torch.cat([out, context.unsqueeze(1).expand(-1, out.shape[1], -1)], -1)
        return self.head(out), state
