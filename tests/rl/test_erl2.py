"""E-RL²: one memory across a problem's two episodes, reset between problems."""

from __future__ import annotations

import numpy as np
import torch

from stalwart.rl import envs
from stalwart.rl.config import validate_rl_config
from stalwart.rl.erl2 import ERL2
from stalwart.rl.networks import previous_inputs
from stalwart.rl.replay import EpisodeBatch
from stalwart.rl.rollout import rollout


class Recording:
    """A policy that passes through to another and keeps the Q-values it gave at each step."""

    def __init__(self, policy):
        self.policy, self.q = policy, []

    def start(self, n, problems):
        self.policy.start(n, problems)

    def q_values(self, obs, previous_actions, previous_rewards):
        q = self.policy.q_values(obs, previous_actions, previous_rewards)
        self.q.append(q.clone())
        return q

    def begin_exploitation(self, exploration):
        self.policy.begin_exploitation(exploration)


def tiny_erl2(name: str = "distracting_bus_tight") -> tuple[ERL2, envs.MetaEnv]:
    cfg = validate_rl_config(
        {"env": {"name": name}, "learner": "erl2", "hidden": 16, "field_dim": 4, "batch_size": 4}
    )
    torch.manual_seed(0)
    env = envs.make(name)
    env.reset(seed=0)
    return ERL2(env, cfg), env


def unrolled_q(learner: ERL2, episode) -> torch.Tensor:
    """Q-values of a joined episode unrolled from a zero state, as learning computes them."""
    batch = EpisodeBatch.from_episodes([episode])
    previous_actions, previous_rewards = previous_inputs(
        batch.actions, batch.rewards, learner.n_actions
    )
    q, _ = learner.networks["q"].online(
        batch.obs, previous_actions=previous_actions, previous_rewards=previous_rewards
    )
    return q[0]


def test_the_memory_crosses_the_phase_switch_and_resets_at_the_next_problem():
    learner, env = tiny_erl2()
    rng = np.random.default_rng(0)
    recording = Recording(learner.policy(training=True))  # one policy, as in a long run
    with torch.no_grad():
        for _ in range(2):  # two problems in a row on the same env and policy
            recording.q = []
            played = rollout([env], recording, epsilon=1.0, rng=rng, reveal_problems=True)[0]
            joined = played.joined()
            acted = torch.cat(recording.q)  # one row per step taken, both phases
            # Acting step by step equals unrolling the joined episode from a zero state: the
            # state went on through the switch, and the problem started from zero.
            assert torch.allclose(acted, unrolled_q(learner, joined)[: len(joined)], atol=1e-5)
            # ... and going on through the switch mattered: from a zero state, the first
            # exploitation observation would get other Q-values.
            switch = len(played.exploration)
            fresh, _ = learner.networks["q"].online(
                torch.from_numpy(joined.obs[switch][None, None]),
                previous_actions=torch.tensor([[int(joined.actions[switch - 1])]]),
                previous_rewards=torch.zeros(1, 1),
            )
            assert not torch.allclose(fresh[0, 0], acted[switch], atol=1e-4)


def test_the_joined_episode_is_the_meta_episode_wrappers_stream():
    name = "distracting_bus_tight"
    played_env, wrapped_env = envs.make(name), envs.make(name)
    played_env.reset(seed=7)
    wrapped_env.reset(seed=7)  # the same generator state: the same next problem and goal
    learner, _ = tiny_erl2()
    played = rollout(
        [played_env], learner.policy(training=True), epsilon=1.0, rng=np.random.default_rng(1)
    )[0]
    joined = played.joined()

    wrapper = envs.MetaEpisode(wrapped_env)
    obs, info = wrapper.reset(options={"phase": "explore"})
    stream, rewards, ends = [obs], [], []
    for action in joined.actions:
        obs, reward, terminated, truncated, info = wrapper.step(int(action))
        stream.append(obs)
        rewards.append(reward)
        ends.append(float(terminated or truncated))
    assert np.array_equal(np.stack(stream), joined.obs)
    assert np.allclose(rewards, joined.rewards)
    assert ends == joined.dones.tolist()
    # Only the problem's end is an end: the value bootstraps across the switch.
    assert joined.dones.tolist() == [0.0] * (len(joined) - 1) + [1.0]
    assert joined.rewards[: len(played.exploration)].sum() == 0  # exploring pays nothing
    assert joined.phases.tolist() == [0] * len(played.exploration) + [1] * (
        len(played.exploitation) + 1
    )


def test_an_update_trains_the_q_network_on_joined_episodes():
    learner, env = tiny_erl2()
    rng = np.random.default_rng(0)
    for _ in range(3):
        learner.store(rollout([env], learner.policy(training=True), epsilon=1.0, rng=rng))
    replay = learner.replays["problems"]
    assert len(replay) == 3 and replay.max_steps == 2 * env.max_steps
    before = [p.clone() for p in learner.networks["q"].online.parameters()]
    losses = learner.update(rng)
    after = list(learner.networks["q"].online.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    assert set(losses) == {"td"} and np.isfinite(losses["td"])
