"""The meta-exploration environments: problems, phases, rewards, limits, Gymnasium API.

DREAM (arXiv 2008.02790): each problem is an exploration episode (reward 0) followed by an
exploitation episode (−0.1 a step, +1 at the goal); the problem id μ is in ``info``, never in
the observation.
"""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from stalwart.errors import ConfigError
from stalwart.rl import envs
from stalwart.rl.envs.bus import DOWN, LEFT, RIDE, RIGHT, UP

NAMES = envs.ENVS.names()


def run(env, actions):
    """Observations, rewards, terminated and truncated flags of ``actions`` from now."""
    trace = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        trace.append((obs.tolist(), reward, terminated, truncated, info["problem"]))
    return trace


# ---- problems and splits -----------------------------------------------------------------


def test_problem_counts_and_the_papers_split():
    bus = envs.make("distracting_bus")
    assert bus.n_problems == 576
    assert bus.train_problems.tolist() == list(range(0, 576, 11))
    assert set(bus.train_problems.tolist()).isdisjoint(bus.test_problems.tolist())
    assert sorted([*bus.train_problems, *bus.test_problems]) == list(range(576))
    assert envs.make("distracting_bus_small").n_problems == 4
    # The reference trains and tests the map on all of its 24 problems.
    city_map = envs.make("map")
    assert city_map.n_problems == 24
    assert city_map.train_problems.tolist() == city_map.test_problems.tolist() == list(range(24))


@pytest.mark.parametrize("split", ["train", "test"])
def test_reset_draws_problems_from_its_split(split):
    env = envs.make("distracting_bus", split=split)
    allowed = set((env.train_problems if split == "train" else env.test_problems).tolist())
    drawn = {env.reset(seed=seed)[1]["problem"] for seed in range(60)}
    assert drawn <= allowed and len(drawn) > 10


# ---- the problem stays out of the observation ----------------------------------------------


WALK = [LEFT, LEFT, DOWN, UP, UP, RIGHT, RIGHT, RIGHT, DOWN, DOWN, DOWN]  # over stops, no ride


@pytest.mark.parametrize("name", ["distracting_bus", "map"])
@pytest.mark.parametrize("phase", ["explore", "exploit"])
def test_problems_look_the_same_until_a_bus_is_ridden(name, phase):
    env = envs.make(name)
    goal = {"goal": 1} if phase == "exploit" else {}
    traces = set()
    for problem in range(env.n_problems):
        obs, info = env.reset(options={"problem": problem, "phase": phase, **goal})
        assert info["problem"] == problem
        trace = [obs.tolist()] + [step[:4] for step in run(env, WALK)]
        traces.add(repr(trace))
    assert len(traces) == 1
    # ... and riding the first useful bus tells problems apart (the check above can fail).
    arrivals = set()
    for problem in range(env.n_problems):
        env.reset(options={"problem": problem, "phase": phase, **goal})
        arrivals.add(tuple(run(env, [UP, RIDE])[-1][0]))
    assert len(arrivals) == 4


def test_the_map_shows_the_useful_permutation_to_whoever_stands_on_it():
    env = envs.make("map")
    to_map = [RIGHT, RIGHT, RIGHT, DOWN]  # (4, 4) -> (7, 3)
    readings = []
    for problem in range(env.n_problems):
        env.reset(options={"problem": problem})
        trace = run(env, [*to_map, UP])
        assert [obs[:2] for obs, *_ in trace] == [[5, 4], [6, 4], [7, 4], [7, 3], [7, 4]]
        assert [obs[5] for obs, *_ in trace[:3]] == [0, 0, 0] and trace[4][0][5] == 0
        readings.append(trace[3][0][5])
    assert readings == [1 + problem % 24 for problem in range(24)]


# ---- rewards, termination, truncation ---------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_exploring_pays_nothing_and_is_truncated_at_the_step_limit(name):
    env = envs.make(name)
    obs, info = env.reset(seed=3)
    assert info["phase"] == "explore" and obs[envs.PHASE] == 0 and obs[envs.INSTRUCTION] == 0
    assert obs.dtype == env.observation_space.dtype == np.int64 and obs in env.observation_space
    rng = np.random.default_rng(0)
    trace = run(env, rng.integers(env.action_space.n, size=env.max_steps))
    assert [reward for _, reward, *_ in trace] == [0.0] * env.max_steps
    assert [terminated for *_, terminated, _, _ in trace] == [False] * env.max_steps
    assert [truncated for *_, truncated, _ in trace] == [False] * (env.max_steps - 1) + [True]
    with pytest.raises(RuntimeError, match="call reset"):
        env.step(0)


def test_exploiting_costs_a_tenth_a_step_and_pays_one_at_the_goal():
    env = envs.make("distracting_bus")
    obs, info = env.reset(options={"problem": 5, "phase": "exploit", "goal": 0})  # (0, 0)
    assert info["phase"] == "exploit" and obs[envs.PHASE] == 1 and obs[envs.INSTRUCTION] == 1
    trace = run(env, [LEFT] * 4 + [DOWN] * 4)  # walk: 8 steps
    assert [reward for _, reward, *_ in trace] == [-0.1] * 7 + [1.0]
    assert [terminated for *_, terminated, _, _ in trace] == [False] * 7 + [True]
    assert not any(truncated for *_, truncated, _ in trace)
    assert trace[-1][0][:2] == [0, 0]


def test_exploiting_without_reaching_the_goal_is_truncated_at_the_step_limit():
    env = envs.make("distracting_bus_small")
    env.reset(options={"problem": 0, "phase": "exploit", "goal": 3})
    trace = run(env, [RIDE] * env.max_steps)  # riding off a stop stays put
    assert {tuple(obs[:2]) for obs, *_ in trace} == {(2, 2)}
    assert [reward for _, reward, *_ in trace] == [-0.1] * env.max_steps
    assert [(t, u) for *_, t, u, _ in trace] == [(False, False)] * 9 + [(False, True)]


def test_riding_goes_to_the_destination_and_back():
    env = envs.make("distracting_bus")
    city = env.city
    for problem in (0, 7, 100, 575):
        destinations = dict(city.routes(problem))
        env.reset(options={"problem": problem})
        trace = run(env, [UP, RIDE, RIDE, RIDE])
        stop = (4, 5)
        there = destinations[stop]
        assert [tuple(obs[:2]) for obs, *_ in trace] == [stop, there, stop, there]
        assert [obs[4] for obs, *_ in trace] == [1, 1, 1, 1]  # on a stop or a destination


# ---- the two-episode protocol -----------------------------------------------------------------


def test_exploitation_follows_exploration_with_the_same_problem():
    env = envs.make("distracting_bus")
    _, info = env.reset(seed=1)
    problem = info["problem"]
    run(env, [UP] * env.max_steps)
    obs, info = env.reset()
    assert info == {"problem": problem, "phase": "exploit"}
    assert obs[envs.INSTRUCTION] in (1, 2, 3, 4) and tuple(obs[:2]) == (4, 4)
    _, info = env.reset()
    assert info["phase"] == "explore"
    # A seed or a problem starts a new meta-episode, even right after an exploration.
    env.reset(seed=2)
    assert env.reset(seed=2)[1]["phase"] == "explore"
    env.reset(seed=2)
    assert env.reset(options={"problem": 9})[1] == {"problem": 9, "phase": "explore"}
    assert env.reset(options={"phase": "exploit", "goal": 2})[1]["problem"] == 9


def test_reset_options_are_checked():
    env = envs.make("distracting_bus")
    with pytest.raises(ConfigError, match=r"unknown reset option 'problme' \(did you mean"):
        env.reset(options={"problme": 1})
    with pytest.raises(ConfigError, match="'phase' must be one of"):
        env.reset(options={"phase": "exploitation"})
    with pytest.raises(ConfigError, match="'problem' must be between 0 and 575"):
        env.reset(options={"problem": 576})
    with pytest.raises(ConfigError, match="exploit phase only"):
        env.reset(options={"goal": 1})


@pytest.mark.parametrize("name", NAMES)
def test_the_same_seed_gives_the_same_meta_episode(name):
    actions = np.random.default_rng(1).integers(5, size=40)

    def meta_episode(seed):
        env = envs.make(name)
        first = env.reset(seed=seed)
        trace = [first[0].tolist(), first[1]]
        for phase in range(2):
            if phase:
                obs, info = env.reset()
                trace += [obs.tolist(), info]
            for action in actions:
                step = env.step(action)
                trace.append(repr(step))
                if step[2] or step[3]:
                    break
        return trace

    assert meta_episode(7) == meta_episode(7)
    assert len({repr(meta_episode(seed)) for seed in range(6)}) > 1


# ---- Gymnasium: the checker, vector envs, the joined-episode wrapper -----------------------


@pytest.mark.parametrize("name", NAMES)
def test_gymnasium_check_env_passes(name):
    env = gymnasium.make(envs.gym_id(name))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker warns about what it does not fail on
        check_env(env.unwrapped)
    assert env.spec.id == envs.gym_id(name)


def test_text_rendering_shows_the_agent_and_the_goal():
    env = envs.make("distracting_bus_small", render_mode="ansi")
    env.reset(options={"problem": 1, "phase": "exploit", "goal": 0})
    text = env.render()
    assert text.splitlines()[0] == "problem 1, exploit, goal 0, step 0/10"
    assert text.splitlines()[-1][0] == "G" and text.splitlines()[3][2] == "A"


def test_sync_vector_env_alternates_the_phases_of_each_problem():
    n_envs = 3
    vec = gymnasium.make_vec(envs.gym_id("distracting_bus_small"), num_envs=n_envs)
    assert isinstance(vec, gymnasium.vector.SyncVectorEnv)
    obs, info = vec.reset(seed=0)
    assert obs.shape == (n_envs, 5) and list(info["phase"]) == ["explore"] * n_envs
    phases, problems, rewards = [], [], []
    for _ in range(2 * 10 + 2):  # a 10-step exploration, its reset step, then exploitation
        obs, reward, terminated, truncated, info = vec.step(np.full(n_envs, RIDE))
        phases.append(list(info["phase"]))
        problems.append(list(info["problem"]))
        rewards.append(reward.tolist())
    # Riding at the start stays put: each exploitation runs its 10 steps, all -0.1.
    assert phases[:10] == [["explore"] * n_envs] * 10
    assert phases[10:21] == [["exploit"] * n_envs] * 11
    assert phases[21] == ["explore"] * n_envs
    assert problems[:21] == [problems[0]] * 21
    assert rewards[:11] == [[0.0] * n_envs] * 11 and rewards[11:21] == [[-0.1] * n_envs] * 10
    vec.close()


def test_sync_vector_env_from_factories():
    vec = gymnasium.vector.SyncVectorEnv(
        [lambda: envs.make("map"), lambda: envs.make("map", split="test")]
    )
    obs, _ = vec.reset(seed=[0, 1])
    assert obs.shape == (2, 6)
    obs, reward, *_ = vec.step(np.array([UP, RIDE]))
    assert obs[0, 1] == 5 and reward.tolist() == [0.0, 0.0]
    vec.close()


def test_async_vector_env_runs_the_registered_ids():
    vec = gymnasium.make_vec(
        envs.gym_id("cooking"),
        num_envs=2,
        vectorization_mode="async",
        vector_kwargs={"context": "fork"},
    )
    obs, info = vec.reset(seed=0)
    for _ in range(21):
        obs, reward, terminated, truncated, info = vec.step(np.array([RIGHT, UP]))
    assert obs.tolist() == [[1, 1, 1, obs[0, 3], 2, 0, 0, 0], [1, 1, 1, obs[1, 3], 2, 0, 0, 0]]
    assert list(info["phase"]) == ["exploit", "exploit"] and 0 not in obs[:, 3]
    vec.close()


def test_vector_env_of_joined_episodes_for_e_rl2():
    max_steps = 10
    vec = gymnasium.make_vec(
        envs.gym_id("distracting_bus_small"), num_envs=2, wrappers=[envs.MetaEpisode]
    )
    vec.reset(seed=0)
    ends = []
    for _ in range(2 * max_steps + 1):
        obs, reward, terminated, truncated, info = vec.step(np.array([RIDE, RIDE]))
        ends.append(bool(terminated[0] or truncated[0]))
    # One episode of 20 steps: exploring then exploiting; the vector env resets after it.
    assert ends == [False] * (2 * max_steps - 1) + [True, False]
    assert list(info["phase"]) == ["explore", "explore"]
    vec.close()


def test_meta_episode_joins_the_two_episodes_into_one():
    env = envs.MetaEpisode(envs.make("distracting_bus"))
    obs, info = env.reset(seed=4)
    problem = info["problem"]
    for _ in range(env.unwrapped.max_steps):
        obs, reward, terminated, truncated, info = env.step(UP)
        assert reward == 0.0 and not terminated and not truncated
    # The last exploring step already shows the exploitation episode's start.
    assert info["phase"] == "exploit" and info["problem"] == problem
    assert obs[envs.PHASE] == 1 and tuple(obs[:2]) == (4, 4)
    assert info["exploration_final_observation"][:2].tolist() == [4, 8]
    done, steps = False, 0
    while not done:
        obs, reward, terminated, truncated, info = env.step(
            env.unwrapped.oracle_action(obs, problem)
        )
        done, steps = terminated or truncated, steps + 1
    assert terminated and reward == 1.0 and steps == 3
    assert env.reset()[1]["phase"] == "explore"
    with pytest.raises(TypeError, match="wraps a MetaEnv"):
        envs.MetaEpisode(gymnasium.make("CartPole-v1"))


def test_importing_the_envs_leaves_torch_unloaded():
    code = "import sys, stalwart.rl.envs; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
