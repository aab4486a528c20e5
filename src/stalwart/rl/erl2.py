"""E-RL²: one recurrent Q-learner across a problem's exploration and exploitation episodes.

RL² (Duan et al., "RL²: Fast Reinforcement Learning via Slow Reinforcement Learning",
arXiv 1611.02779) meta-learns with a recurrent policy whose hidden state persists across the
episodes of one problem, so that what it saw earlier shapes what it does later. E-RL² is the
variant DREAM (arXiv 2008.02790) compares against: the exploration episode pays no
reward (the environments already zero it), and the policy is trained end to end on the
exploitation return alone. Its inputs are the observation (whose ``phase`` and
``instruction`` fields say which episode it is in), the previous action and the previous
reward, as in the reference's ``configs/rl2.json``.

The recurrent state is carried across the phase switch and reset only at a problem's start:
in acting (``ERL2Policy.begin_exploitation`` does nothing) and in learning, which trains on
each problem as one joined episode (``ProblemRollout.joined``: the exploration step that
ends the budget leads to the exploitation's first observation and is not an end, so values
bootstrap from the exploitation return back into the exploration). Learning is double DQN
with Huber loss on whole joined episodes (``dqn.double_dqn_loss``), the machinery DREAM's
two policies use.

Why it struggles where DREAM does not: exploring only pays once exploiting uses what was
explored, and exploiting can only learn to use it once exploration gathers it; starting from
neither, the end-to-end learner settles on the exploitation return it can get uninformed
(walking to the goal in the bus city).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from stalwart.rl.config import RLConfig
from stalwart.rl.dqn import QLearner, double_dqn_loss, optimizer_step
from stalwart.rl.envs.meta import MetaEnv
from stalwart.rl.learner import LEARNERS, MetaLearner
from stalwart.rl.networks import LSTMState, RecurrentQNetwork, previous_inputs
from stalwart.rl.replay import Episode, EpisodeReplay
from stalwart.rl.rollout import ProblemRollout


class ERL2Policy:
    """The one recurrent Q-network, its state carried across the switch."""

    def __init__(self, learner: ERL2) -> None:
        self.learner = learner
        self.state: LSTMState | None = None

    def start(self, n: int, problems: np.ndarray | None) -> None:
        """See ``MetaPolicy.start``."""
        self.state = None  # a new problem: a fresh memory

    def q_values(self, obs: Tensor, previous_actions: Tensor, previous_rewards: Tensor) -> Tensor:
        """See ``MetaPolicy.q_values``."""
        q, self.state = self.learner.networks["q"].online(
            obs[:, None],
            previous_actions=previous_actions[:, None],
            previous_rewards=previous_rewards[:, None],
            state=self.state,
        )
        return q[:, 0]

    def begin_exploitation(self, exploration: Sequence[Episode]) -> None:
        """See ``MetaPolicy.begin_exploitation``."""
        pass  # the memory of the exploration is the recurrent state, kept as it is


@LEARNERS.register("erl2")
class ERL2(MetaLearner):
    """E-RL² (see the module docstring)."""

    def __init__(self, env: MetaEnv, cfg: RLConfig) -> None:
        super().__init__(env, cfg)
        network = RecurrentQNetwork(
            self.field_sizes,
            self.n_actions,
            hidden=cfg.hidden,
            field_dim=cfg.field_dim,
            previous_action=True,
            previous_reward=True,
        )
        self.networks = nn.ModuleDict({"q": QLearner(network)})
        self.optimizers = {"q": torch.optim.Adam(network.parameters(), lr=cfg.lr)}
        # A joined episode is both episodes, at most twice the step limit.
        self.replays = {
            "problems": EpisodeReplay(cfg.replay_size, 2 * self.max_steps, len(self.field_sizes))
        }

    def policy(self, *, training: bool, round_index: int = 0) -> ERL2Policy:
        """See ``MetaLearner.policy``."""
        return ERL2Policy(self)

    def store(self, rollouts: Sequence[ProblemRollout]) -> None:
        """See ``MetaLearner.store``."""
        for played in rollouts:
            self.replays["problems"].add(played.joined())

    def update(self, rng: np.random.Generator) -> dict[str, float]:
        """See ``MetaLearner.update``."""
        cfg, learner = self.cfg, self.networks["q"]
        batch = self.replays["problems"].sample(cfg.batch_size, rng)
        previous_actions, previous_rewards = previous_inputs(
            batch.actions, batch.rewards, self.n_actions
        )
        inputs = dict(previous_actions=previous_actions, previous_rewards=previous_rewards)
        online_q, _ = learner.online(batch.obs, **inputs)
        with torch.no_grad():
            target_q, _ = learner.target(batch.obs, **inputs)
        loss = double_dqn_loss(
            online_q, target_q, batch.actions, batch.rewards, batch.dones, batch.mask, cfg.gamma
        )
        optimizer_step(
            loss, [(self.optimizers["q"], list(learner.online.parameters()))], cfg.max_grad_norm
        )
        self.updates += 1
        return {"td": loss.item()}
