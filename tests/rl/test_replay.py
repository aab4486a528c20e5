"""The episode replay: whole episodes in, padded batches with masks out, bounded, resumable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stalwart.errors import CheckpointError
from stalwart.rl.replay import Episode, EpisodeBatch, EpisodeReplay


def episode(steps: int, tag: int, fields: int = 3) -> Episode:
    """An episode whose every entry is recognisable: observations and actions hold ``tag``."""
    return Episode(
        obs=np.full((steps + 1, fields), tag, np.int64),
        actions=np.full(steps, tag % 5, np.int64),
        rewards=np.arange(steps, dtype=np.float32) + tag,
        dones=np.eye(1, steps, steps - 1, dtype=np.float32)[0],
        phases=np.array([0] * (steps // 2) + [1] * (steps + 1 - steps // 2)),
        problem=100 + tag,
    )


def test_a_batch_is_padded_to_its_longest_episode_and_masked():
    replay = EpisodeReplay(capacity=8, max_steps=6, obs_size=3)
    for tag, steps in [(1, 2), (2, 5), (3, 3)]:
        replay.add(episode(steps, tag))
    batch = replay.batch(np.array([0, 1, 2]))
    assert batch.obs.shape == (3, 6, 3) and batch.phases.shape == (3, 6)
    assert batch.actions.shape == batch.rewards.shape == batch.dones.shape == (3, 5)
    assert batch.lengths.tolist() == [2, 5, 3]
    assert batch.problems.tolist() == [101, 102, 103]
    assert batch.mask.tolist() == [
        [1, 1, 0, 0, 0],
        [1, 1, 1, 1, 1],
        [1, 1, 1, 0, 0],
    ]
    assert batch.observation_mask.sum(1).tolist() == [3, 6, 4]  # one more than the steps
    # Real entries are the episode's; padding is zeros.
    assert batch.obs[0, :3].eq(1).all() and batch.obs[0, 3:].eq(0).all()
    assert batch.rewards[1].tolist() == [2, 3, 4, 5, 6]
    assert batch.dones[2].tolist() == [0, 0, 1, 0, 0]
    assert batch.obs.dtype == torch.int64 and batch.rewards.dtype == torch.float32
    # The same padding as batching episodes directly (what a policy does at the switch).
    direct = EpisodeBatch.from_episodes([episode(2, 1), episode(5, 2), episode(3, 3)])
    for name in ("obs", "actions", "rewards", "dones", "phases", "lengths", "problems", "mask"):
        assert torch.equal(getattr(direct, name), getattr(batch, name)), name


def test_capacity_is_a_ring_that_overwrites_the_oldest():
    replay = EpisodeReplay(capacity=3, max_steps=4, obs_size=3)
    slots = [replay.add(episode(4 if tag == 0 else 1, tag)) for tag in range(5)]
    assert slots == [0, 1, 2, 0, 1]
    assert len(replay) == 3
    assert sorted(replay.problems.tolist()) == [102, 103, 104]  # 100 and 101 are gone
    # An overwritten slot keeps nothing of the longer episode it replaced.
    batch = replay.batch(np.array([0]))
    assert batch.lengths.tolist() == [1] and batch.obs.shape[1] == 2
    assert replay.obs[0, 2:].sum() == 0 and replay.actions[0, 1:].sum() == 0


def test_sampling_draws_only_stored_episodes_with_the_given_generator():
    replay = EpisodeReplay(capacity=10, max_steps=3, obs_size=3)
    for tag in range(4):
        replay.add(episode(3, tag))
    batch = replay.sample(64, np.random.default_rng(0))
    assert set(batch.problems.tolist()) == {100, 101, 102, 103}
    again = replay.sample(64, np.random.default_rng(0))
    assert torch.equal(batch.problems, again.problems)
    with pytest.raises(ValueError, match="empty"):
        EpisodeReplay(2, 3, 3).sample(1, np.random.default_rng(0))


def test_an_episode_too_long_or_of_another_width_is_refused():
    replay = EpisodeReplay(capacity=2, max_steps=3, obs_size=3)
    with pytest.raises(ValueError, match="1 to 3 steps"):
        replay.add(episode(4, 0))
    with pytest.raises(ValueError, match="3 entries"):
        replay.add(episode(2, 0, fields=4))


def test_its_state_restores_the_same_contents_position_and_samples():
    replay = EpisodeReplay(capacity=4, max_steps=5, obs_size=3)
    for tag in range(6):
        replay.add(episode(1 + tag % 5, tag))
    copy = EpisodeReplay(capacity=4, max_steps=5, obs_size=3)
    copy.load_state_dict(replay.state_dict())
    assert (copy.position, copy.size) == (replay.position, replay.size)
    a = replay.sample(16, np.random.default_rng(3))
    b = copy.sample(16, np.random.default_rng(3))
    for name in ("obs", "actions", "rewards", "dones", "phases", "lengths", "problems"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    # The next episode goes to the same slot in both.
    assert copy.add(episode(2, 9)) == replay.add(episode(2, 9))


def test_a_replay_state_of_other_sizes_is_a_clear_error():
    replay = EpisodeReplay(capacity=4, max_steps=5, obs_size=3)
    replay.add(episode(2, 0))
    with pytest.raises(CheckpointError, match="another config"):
        EpisodeReplay(capacity=8, max_steps=5, obs_size=3).load_state_dict(replay.state_dict())
    damaged = replay.state_dict()
    del damaged["obs"]
    with pytest.raises(CheckpointError, match="damaged"):
        EpisodeReplay(capacity=4, max_steps=5, obs_size=3).load_state_dict(damaged)
