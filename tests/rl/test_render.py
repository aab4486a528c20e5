"""Pictures of meta-RL problems: rgb_array frames of every env, and a problem played as pictures.

DREAM (arXiv 2008.02790) is judged on what exploration finds and how exploitation uses it;
``stalwart.rl.render`` records both episodes of one problem as frames and saves them.
"""

from __future__ import annotations

import warnings
from functools import partial

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from PIL import Image

from stalwart.errors import ConfigError
from stalwart.rl import envs
from stalwart.rl.envs.bus import DOWN, LEFT, RIGHT, UP
from stalwart.rl.envs.cooking import DRAWERS, KITCHEN_CELL, PICKUP
from stalwart.rl.envs.pictures import CELL, COLOURS, FRAME, INGREDIENTS
from stalwart.rl.evaluate import OraclePolicy, RandomPolicy
from stalwart.rl.render import record, save, save_gif, save_strip

NAMES = envs.ENVS.names()
TIGHT = partial(envs.make, "distracting_bus_tight")


def pixel(frame, cell, rows, side=CELL):
    """The colour at the middle of grid cell ``(x, y)`` (``y`` up)."""
    x, y = cell
    return tuple(frame[FRAME + (rows - 1 - y) * side + side // 2, FRAME + x * side + side // 2])


# ---- rgb_array frames ------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_frames_are_uint8_pictures_that_change_when_the_agent_moves(name):
    env = envs.make(name, render_mode="rgb_array")
    assert "rgb_array" in env.metadata["render_modes"] and env.render() is None  # before reset
    env.reset(seed=0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert first.shape[0] > 2 * FRAME and first.shape[1] > 2 * FRAME
    before = env.position
    env.step(LEFT)  # the start is inside the grid in every env: left moves
    assert env.position != before
    second = env.render()
    assert second.shape == first.shape and not np.array_equal(first, second)
    assert first is not second and not np.shares_memory(first, second)


def test_the_agent_goal_and_phase_have_their_colours_in_the_city():
    env = envs.make("distracting_bus", render_mode="rgb_array")
    size = env.city.size
    env.reset(options={"problem": 5})
    frame = env.render()
    assert pixel(frame, env.city.start, size) == COLOURS["agent"]
    assert tuple(frame[0, 0]) == COLOURS["explore"]
    for cell in env.city.useful_stops:
        assert pixel(frame, cell, size) == COLOURS["useful_stop"]
    for cell in env.city.distracting_destinations:
        assert pixel(frame, cell, size) == COLOURS["distracting_destination"]
    for action in (LEFT, LEFT, DOWN, UP, UP, RIGHT):  # (4, 4) -> ... -> (3, 5)
        env.step(action)
        frame = env.render()
        assert pixel(frame, env.position, size) == COLOURS["agent"]
        assert (frame == COLOURS["agent"]).all(-1).sum() == (CELL - 2 * (CELL // 4)) ** 2
    assert env.position == (3, 5)

    env.reset(options={"problem": 5, "phase": "exploit", "goal": 1})
    frame = env.render()
    assert tuple(frame[0, 0]) == COLOURS["exploit"]
    assert pixel(frame, env.city.goals[1], size) == COLOURS["goal"]
    for other in (0, 2, 3):
        assert pixel(frame, env.city.goals[other], size) == COLOURS["floor"]

    city_map = envs.make("map", render_mode="rgb_array")
    city_map.reset(seed=0)
    assert pixel(city_map.render(), (7, 3), size) == COLOURS["map"]


def test_the_kitchen_shows_drawers_the_agent_and_what_it_holds():
    env = envs.make("cooking", render_mode="rgb_array")
    env.reset(options={"problem": 7})  # drawers hold 3, 1, 0
    frame = env.render()
    for cell, held in zip(DRAWERS, env.drawer_contents(7), strict=True):
        assert pixel(frame, cell, 3, KITCHEN_CELL) == INGREDIENTS[held]
    band = frame[FRAME + 3 * KITCHEN_CELL + 2 : -FRAME - 2, FRAME + 2 : FRAME + 10]
    assert (band == COLOURS["empty"]).all()  # holding nothing
    for action in (RIGHT, DOWN, PICKUP):  # to the drawer at (2, 0): ingredient 3
        env.step(action)
    frame = env.render()
    assert pixel(frame, (2, 0), 3, KITCHEN_CELL) == COLOURS["agent"]
    band = frame[FRAME + 3 * KITCHEN_CELL + 2 : -FRAME - 2, FRAME + 2 : FRAME + 10]
    assert (band == INGREDIENTS[3]).all()


@pytest.mark.parametrize("name", NAMES)
def test_gymnasium_check_env_passes_with_rgb_array(name):
    env = gymnasium.make(envs.gym_id(name), render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the checker warns about what it does not fail on
        check_env(env.unwrapped)
    assert env.unwrapped.render_mode == "rgb_array"


def test_text_rendering_is_unchanged_and_a_wrong_mode_is_refused():
    env = envs.make("distracting_bus_small", render_mode="ansi")
    env.reset(options={"problem": 1})
    assert isinstance(env.render(), str)
    with pytest.raises(ConfigError, match="rgb_array"):
        envs.make("cooking", render_mode="human")


# ---- record ---------------------------------------------------------------------------------


def bus_goal(problem):
    """A goal of ``problem`` that its useful bus reaches within the tight budget."""
    env = TIGHT()
    return next(g for g in env.goals_of(problem) if 0 <= env.oracle_steps(problem, g) <= 5)


def test_recording_the_oracle_reaches_the_goal_with_a_frame_per_step():
    problem = 7
    goal = bus_goal(problem)
    recording = record(OraclePolicy(TIGHT()), TIGHT, problem, goal, reveal_problem=True)
    env = TIGHT()
    steps = env.oracle_steps(problem, goal)
    assert recording.problem == problem and recording.goal == goal
    assert recording.exploitation_return == pytest.approx(1.0 - 0.1 * (steps - 1))  # 0.8
    assert len(recording.exploitation_actions) == steps and "ride" in recording.exploitation_actions
    assert len(recording.exploration_actions) == env.max_steps
    assert len(recording.exploration_frames) == len(recording.exploration_actions) + 1
    assert len(recording.exploitation_frames) == len(recording.exploitation_actions) + 1
    assert set(recording.exploration_actions + recording.exploitation_actions) <= set(
        env.action_names
    )
    # The last frame shows the agent on the goal corner; the first, at the start.
    size = env.city.size
    assert pixel(recording.exploitation_frames[-1], env.city.goals[goal], size) == COLOURS["agent"]
    assert pixel(recording.exploitation_frames[0], env.city.start, size) == COLOURS["agent"]
    assert tuple(recording.exploration_frames[0][0, 0]) == COLOURS["explore"]
    assert tuple(recording.exploitation_frames[0][0, 0]) == COLOURS["exploit"]


def test_recording_draws_an_allowed_goal_the_same_way_every_time():
    policy = RandomPolicy(5)  # all-zero Q-values: greedy is always the first action
    first = record(policy, TIGHT, 3)
    again = record(policy, TIGHT, 3)
    assert first.goal == again.goal and first.goal in TIGHT().goals_of(3)
    pairs = zip(first.exploitation_frames, again.exploitation_frames, strict=True)
    assert all(np.array_equal(a, b) for a, b in pairs)
    assert first.exploration_actions == ["left"] * 5


def test_a_bad_problem_or_goal_names_the_valid_ones():
    policy = RandomPolicy(5)
    with pytest.raises(ConfigError, match=r"problem must be between 0 and 47.*got 48"):
        record(policy, TIGHT, 48)
    with pytest.raises(ConfigError, match="problem must be an integer"):
        record(policy, TIGHT, "7")
    cooking = partial(envs.make, "cooking")
    allowed = cooking().goals_of(7)  # drawers 3, 1, 0: ingredient 2 is in none
    with pytest.raises(ConfigError, match=rf"goal 2 is not a goal of problem 7.*{allowed}"):
        record(RandomPolicy(6), cooking, 7, goal=2)
    with pytest.raises(ConfigError, match="goal must be between 0 and 3"):
        record(policy, TIGHT, 7, goal=4)


def test_a_replay_that_differs_from_the_rollout_is_an_error():
    def make_env(render_mode=None):  # the drawing env gets one more step: not the same env
        steps = 6 if render_mode else 5
        return envs.make("distracting_bus_tight", max_steps=steps, render_mode=render_mode)

    with pytest.raises(RuntimeError, match="did not reproduce the exploration episode"):
        record(RandomPolicy(5), make_env, 7)
    with pytest.raises(ConfigError, match="MetaEnv"):
        record(RandomPolicy(5), lambda **kw: "not an env", 7)


# ---- files ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recording():
    return record(OraclePolicy(TIGHT()), TIGHT, 7, bus_goal(7), reveal_problem=True)


def test_save_writes_a_png_strip_with_a_row_per_episode(recording, tmp_path):
    path = save(recording, tmp_path / "deep" / "problem_7.png")
    assert path == tmp_path / "deep" / "problem_7.png" and path.stat().st_size > 0
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
    frame_h, frame_w = recording.exploration_frames[0].shape[:2]
    longest = max(len(recording.exploration_frames), len(recording.exploitation_frames))
    assert width >= longest * frame_w and height >= 2 * frame_h
    assert [p.name for p in path.parent.iterdir()] == ["problem_7.png"]  # no temporary left
    assert save_strip(recording, tmp_path / "again.png").exists()


def test_save_writes_a_gif_with_every_frame(recording, tmp_path):
    path = save(recording, tmp_path / "problem_7.GIF")
    n_frames = len(recording.exploration_frames) + len(recording.exploitation_frames)
    with Image.open(path) as image:
        assert image.format == "GIF" and image.n_frames == n_frames
        assert image.info["duration"] == 250 and image.info["loop"] == 0
    save_gif(recording, tmp_path / "fast.gif", fps=10)
    with Image.open(tmp_path / "fast.gif") as image:
        assert image.info["duration"] == 100
    with pytest.raises(ConfigError, match="fps must be positive"):
        save_gif(recording, tmp_path / "still.gif", fps=0)


def test_a_suffix_other_than_png_or_gif_is_refused(recording, tmp_path):
    with pytest.raises(ConfigError, match=r"\.png.*\.gif"):
        save(recording, tmp_path / "problem_7.jpg")
    with pytest.raises(ConfigError, match=r"\.png.*\.gif"):
        save(recording, tmp_path / "problem_7")
    assert list(tmp_path.iterdir()) == []
