"""DREAM: decouple exploration from exploitation, and learn each on its own objective.

Liu, Raghunathan, Liang and Finn, "Decoupling Exploration and Exploitation for
Meta-Reinforcement Learning without Sacrifices", ICML 2021 (arXiv 2008.02790).

Each problem μ is an exploration episode (no task reward) then an exploitation episode. An
end-to-end learner (E-RL², ``erl2.py``) must discover that exploring pays only through the
exploitation return, a chicken-and-egg problem: exploring is worthless until exploiting
uses it. DREAM breaks the loop with the problem id μ, known while meta-training:

**Exploitation** π_task(a | s, z) learns to solve μ from a task embedding z. Training uses
the stochastic encoder F_ψ(z | μ) = N(f_ψ(μ), ρ²I) with an information bottleneck, so that
z keeps only what the task needs (in the bus: where the useful buses go, not the
distracting ones):

    max_{ψ, π_task}  E_μ [ return of π_task(· | s, z) ]  −  λ · I(z; μ),
    I(z; μ) ≤ E_μ KL(F_ψ(z | μ) ‖ N(0, I)) ∝ E_μ ‖f_ψ(μ)‖² + const.

The reference code turns the penalty into ``mean(max(‖f_ψ(μ)‖², T))`` with T = 10: it only
acts on embeddings above norm² T (``bottleneck_penalty``).

**Decoder** g_ω reads an exploration trajectory τᵉ (an LSTM over its transitions
(s_t, a_t, s_{t+1})) and is trained to recover the task embedding, with f detached so that
decoding never shapes f:

    min_ω  E ‖g_ω(τᵉ_{:t}) − sg(f_ψ(μ))‖²   for every prefix t = 0..T      (``decoder_loss``).

**Exploration** π_exp is rewarded for steps that make the decoder's estimate better, a dense
proxy for the information gained about z:

    r_t = ‖f_ψ(μ) − g_ω(τᵉ_{:t})‖² − ‖f_ψ(μ) − g_ω(τᵉ_{:t+1})‖² − c,   c = 0.1,

(``exploration_rewards``; over an episode they telescope to the decrease of the distance
minus c·T). At **meta-test**, π_task runs with z = g_ω(τᵉ), and μ is never used.

Algorithm (one round; ``loop.train`` runs rounds until the step budget is spent):

1. Play each problem's exploration episode with π_exp (ε-greedy), then its exploitation
   episode with π_task conditioned on z = f_ψ(μ) + ρε on odd rounds and z = g_ω(τᵉ) on even
   ones (the reference's ``use_ids`` alternation), and store both episodes.
2. Every ``update_every`` environment steps, sample the same B problems from both buffers:
   - π_task, f_ψ and g_ω take one Adam step on double-DQN Huber loss of π_task
     (z = f_ψ(μ) + ρε on even updates, z = g_ω(τᵉ) on odd ones, gradients flowing into
     the encoder that made z) + decoder loss + λ · bottleneck penalty;
   - π_exp takes one Adam step on double-DQN loss with rewards relabelled by the current
     f and g (on the fly, so old episodes get the current decoder's rewards).
3. Every ``target_sync`` updates, copy both online Q-networks into their targets.

Both Q-networks are ``networks.RecurrentQNetwork`` (π_exp also reads the previous action,
π_task reads z) trained by ``dqn.double_dqn_loss``, the same machinery as E-RL².

Where this differs from the reference code: the target network of π_task is evaluated on the
same z as the online one (detached), rather than on its own copy of f and g; the alternation
of z in the updates is by update parity, not by which episode is being played when the update
happens; losses are Huber, not squared; Q-heads are plain, not dueling.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from stalwart.rl.config import RLConfig
from stalwart.rl.dqn import QLearner, double_dqn_loss, optimizer_step
from stalwart.rl.envs.meta import EXPLOIT, EXPLORE, MetaEnv
from stalwart.rl.learner import LEARNERS, MetaLearner
from stalwart.rl.networks import LSTMState, ObservationEmbedding, RecurrentQNetwork, previous_inputs
from stalwart.rl.replay import Episode, EpisodeBatch, EpisodeReplay
from stalwart.rl.rollout import ProblemRollout

# ---- the objective's pieces ------------------------------------------------------------------


def bottleneck_penalty(f: Tensor, threshold: float) -> Tensor:
    """``mean(max(‖f(μ)‖², threshold))``: the reference's form of the bottleneck λ·I(z; μ).

    Constant (no gradient) for embeddings inside the ball of norm² ``threshold``; above it,
    its gradient ``2 f / B`` pushes ‖f(μ)‖ down.

    Args:
        f: ``[B, Z]`` task embeddings f_ψ(μ).
        threshold: the norm² below which there is no penalty (the reference: 10).
    """
    return (f**2).sum(-1).clamp(min=threshold).mean()


def decoder_loss(contexts: Tensor, f: Tensor, observation_mask: Tensor) -> Tensor:
    """``‖g(τ_{:t}) − sg(f(μ))‖²`` averaged over every real prefix ``t = 0..T`` of a batch.

    Args:
        contexts: ``[B, T + 1, Z]`` the decoder's reading of each prefix.
        f: ``[B, Z]`` task embeddings; detached here, so this loss never moves f.
        observation_mask: ``[B, T + 1]`` 1 on the prefixes of real length.
    """
    distances = ((contexts - f.detach().unsqueeze(1)) ** 2).sum(-1)
    return (distances * observation_mask).sum() / observation_mask.sum().clamp(min=1.0)


def exploration_rewards(contexts: Tensor, f: Tensor, mask: Tensor, penalty: float) -> Tensor:
    """DREAM's exploration reward of each step, ``[B, T]``, zero on padding.

    ``r_t = ‖f − g(τ_{:t})‖² − ‖f − g(τ_{:t+1})‖² − c``: how much step ``t`` brought the
    decoder's estimate closer to the task embedding, minus the step cost c. Computed without
    gradients (they are rewards, relabelled with the current f and g at every update).

    Args:
        contexts: ``[B, T + 1, Z]`` g(τ_{:t}) for t = 0..T.
        f: ``[B, Z]`` task embeddings f(μ).
        mask: ``[B, T]`` 1 on real steps.
        penalty: c.
    """
    with torch.no_grad():
        distances = ((contexts - f.unsqueeze(1)) ** 2).sum(-1)
        return (distances[:, :-1] - distances[:, 1:] - penalty) * mask


# ---- the networks ------------------------------------------------------------------------------


class ProblemEncoder(nn.Module):
    """f_ψ: a table over problem ids, then a linear layer (the reference's ``IDEmbedder``)."""

    def __init__(self, n_problems: int, hidden: int, context_dim: int) -> None:
        super().__init__()
        self.table = nn.Embedding(n_problems, hidden)
        self.out = nn.Linear(hidden, context_dim)

    def forward(self, problems: Tensor) -> Tensor:
        """``[B]`` problem ids → ``[B, Z]`` f_ψ(μ)."""
        return self.out(self.table(problems))


class TrajectoryDecoder(nn.Module):
    """g_ω: an LSTM over embedded transitions (s_t, a_t, s_{t+1}), read after every prefix."""

    def __init__(
        self,
        field_sizes: Sequence[int],
        n_actions: int,
        *,
        hidden: int,
        field_dim: int,
        context_dim: int,
    ) -> None:
        super().__init__()
        self.observation = ObservationEmbedding(field_sizes, field_dim, hidden)
        self.action_table = nn.Embedding(n_actions, field_dim)
        self.transition = nn.Sequential(nn.Linear(2 * hidden + field_dim, hidden), nn.ReLU())
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.out = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, context_dim)
        )

    def forward(self, obs: Tensor, actions: Tensor) -> Tensor:
        """``[B, T + 1, Z]``: g(τ_{:t}) for t = 0..T (t = 0 reads the empty trajectory).

        Args:
            obs: ``[B, T + 1, F]`` the trajectory's observations.
            actions: ``[B, T]`` the actions taken.
        """
        states = self.observation(obs)
        transitions = self.transition(
            torch.cat([states[:, :-1], states[:, 1:], self.action_table(actions)], -1)
        )
        hidden, _ = self.lstm(transitions)
        hidden = torch.cat([hidden.new_zeros(hidden.shape[0], 1, hidden.shape[2]), hidden], 1)
        return self.out(hidden)


def final_contexts(contexts: Tensor, lengths: Tensor) -> Tensor:
    """``[B, Z]``: each trajectory's reading after its last real step."""
    return contexts[torch.arange(contexts.shape[0]), lengths]


# ---- acting ------------------------------------------------------------------------------------


class DreamPolicy:
    """π_exp while exploring; π_task with z (from μ or from the decoder) while exploiting."""

    def __init__(self, learner: Dream, *, training: bool, use_decoder: bool) -> None:
        self.learner, self.training, self.use_decoder = learner, training, use_decoder
        self.phase = EXPLORE
        self.state: LSTMState | None = None
        self.problems: np.ndarray | None = None
        self.z: Tensor | None = None

    def start(self, n: int, problems: np.ndarray | None) -> None:
        """See ``MetaPolicy.start``."""
        if problems is not None and not self.training:
            raise ValueError("a meta-test policy must not be handed the problem ids")
        self.phase, self.state, self.problems, self.z = EXPLORE, None, problems, None

    def q_values(self, obs: Tensor, previous_actions: Tensor, previous_rewards: Tensor) -> Tensor:
        """See ``MetaPolicy.q_values``."""
        nets = self.learner.networks
        if self.phase == EXPLORE:
            q, self.state = nets["exploration"].online(
                obs[:, None], previous_actions=previous_actions[:, None], state=self.state
            )
        else:
            q, self.state = nets["exploitation"].online(
                obs[:, None], context=self.z, state=self.state
            )
        return q[:, 0]

    def begin_exploitation(self, exploration: Sequence[Episode]) -> None:
        """See ``MetaPolicy.begin_exploitation``."""
        nets = self.learner.networks
        if self.use_decoder or self.problems is None:
            batch = EpisodeBatch.from_episodes(list(exploration))
            self.z = final_contexts(nets["decoder"](batch.obs, batch.actions), batch.lengths)
        else:
            f = nets["encoder"](torch.from_numpy(self.problems))
            noise = torch.randn(f.shape, generator=self.learner.generator)
            self.z = f + self.learner.cfg.dream.noise * noise
        self.phase, self.state = EXPLOIT, None


# ---- the learner -------------------------------------------------------------------------------


@LEARNERS.register("dream")
class Dream(MetaLearner):
    """DREAM's three parts and their two Q-learners (see the module docstring)."""

    def __init__(self, env: MetaEnv, cfg: RLConfig) -> None:
        super().__init__(env, cfg)
        dream, sizes = cfg.dream, dict(hidden=cfg.hidden, field_dim=cfg.field_dim)
        self.networks = nn.ModuleDict(
            {
                "exploration": QLearner(
                    RecurrentQNetwork(
                        self.field_sizes, self.n_actions, previous_action=True, **sizes
                    )
                ),
                "exploitation": QLearner(
                    RecurrentQNetwork(
                        self.field_sizes, self.n_actions, context_dim=dream.context_dim, **sizes
                    )
                ),
                "encoder": ProblemEncoder(self.n_problems, cfg.hidden, dream.context_dim),
                "decoder": TrajectoryDecoder(
                    self.field_sizes, self.n_actions, context_dim=dream.context_dim, **sizes
                ),
            }
        )
        nets = self.networks
        self.task_parameters = [
            *nets["exploitation"].online.parameters(),
            *nets["encoder"].parameters(),
            *nets["decoder"].parameters(),
        ]
        self.optimizers = {
            "exploitation": torch.optim.Adam(self.task_parameters, lr=cfg.lr),
            "exploration": torch.optim.Adam(nets["exploration"].online.parameters(), lr=cfg.lr),
        }
        obs_size = len(self.field_sizes)
        self.replays = {
            "exploration": EpisodeReplay(cfg.replay_size, self.max_steps, obs_size),
            "exploitation": EpisodeReplay(cfg.replay_size, self.max_steps, obs_size),
        }

    @staticmethod
    def decoder_turn(index: int) -> bool:
        """Whether update (or round) ``index`` conditions π_task on g(τᵉ) rather than on μ."""
        return index % 2 == 1

    def policy(self, *, training: bool, round_index: int = 0) -> DreamPolicy:
        """See ``MetaLearner.policy``."""
        return DreamPolicy(self, training=training, use_decoder=self.decoder_turn(round_index + 1))

    def store(self, rollouts: Sequence[ProblemRollout]) -> None:
        """See ``MetaLearner.store``."""
        for played in rollouts:
            slot = self.replays["exploration"].add(played.exploration)
            if self.replays["exploitation"].add(played.exploitation) != slot:
                raise RuntimeError("DREAM's two replays must stay paired slot for slot")

    def update(self, rng: np.random.Generator) -> dict[str, float]:
        """See ``MetaLearner.update``."""
        cfg, dream, nets = self.cfg, self.cfg.dream, self.networks
        indices = self.replays["exploration"].sample_indices(cfg.batch_size, rng)
        explore = self.replays["exploration"].batch(indices)
        exploit = self.replays["exploitation"].batch(indices)

        # π_task, f and g: TD loss + decoder loss + bottleneck.
        f = nets["encoder"](exploit.problems)
        contexts = nets["decoder"](explore.obs, explore.actions)
        reconstruction = decoder_loss(contexts, f, explore.observation_mask)
        bottleneck = bottleneck_penalty(f, dream.bottleneck_threshold)
        if self.decoder_turn(self.updates):
            z = final_contexts(contexts, explore.lengths)
        else:
            z = f + dream.noise * torch.randn(f.shape, generator=self.generator)
        task = nets["exploitation"]
        online_q, _ = task.online(exploit.obs, context=z)
        with torch.no_grad():
            target_q, _ = task.target(exploit.obs, context=z.detach())
        task_td = double_dqn_loss(
            online_q, target_q, exploit.actions, exploit.rewards, exploit.dones, exploit.mask,
            cfg.gamma,
        )  # fmt: skip
        task_loss = task_td + reconstruction + dream.bottleneck_weight * bottleneck

        # π_exp: double DQN on the exploration rewards, relabelled by the current f and g.
        rewards = exploration_rewards(
            contexts.detach(), f.detach(), explore.mask, dream.exploration_penalty
        )
        previous_actions, _ = previous_inputs(explore.actions, explore.rewards, self.n_actions)
        scout = nets["exploration"]
        online_q, _ = scout.online(explore.obs, previous_actions=previous_actions)
        with torch.no_grad():
            target_q, _ = scout.target(explore.obs, previous_actions=previous_actions)
        scout_td = double_dqn_loss(
            online_q, target_q, explore.actions, rewards, explore.dones, explore.mask, cfg.gamma
        )
        # The two losses share no parameters: one backward pass, one step of each optimiser.
        optimizer_step(
            task_loss + scout_td,
            [
                (self.optimizers["exploitation"], self.task_parameters),
                (self.optimizers["exploration"], list(scout.online.parameters())),
            ],
            cfg.max_grad_norm,
        )
        self.updates += 1
        return {
            "exploitation_td": task_td.item(),
            "decoder": reconstruction.item(),
            "bottleneck": bottleneck.item(),
            "exploration_td": scout_td.item(),
            "exploration_reward": rewards.sum(1).mean().item(),
        }
