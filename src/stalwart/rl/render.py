"""Pictures of one meta-RL problem being played: its exploration, then its exploitation.

DREAM (Liu, Raghunathan, Liang and Finn, ICML 2021, arXiv 2008.02790) is judged on what its
exploration episode finds out and how the exploitation episode uses it; a picture of both
shows it at a glance. Two steps:

1. ``record(policy, make_env, problem)`` plays the problem greedily with a ``MetaPolicy``
   through ``rollout`` (exactly as evaluation plays it), then replays the recorded actions in
   a fresh env built with ``render_mode="rgb_array"`` to collect a frame per step. Replaying
   instead of rendering while playing keeps ``rollout`` unchanged and the policy's env
   picture-free; it is exact because an env is deterministic given problem, goal and
   actions, which the replay checks step by step.
2. ``save(recording, path)`` writes a ``.png`` strip (``save_strip``: a row per episode,
   frames left to right, each titled with the action that led to it) or a ``.gif``
   animation (``save_gif``: every frame of both episodes with a caption).

>>> from functools import partial
>>> from stalwart.rl import envs
>>> from stalwart.rl.render import record, save
>>> recording = record(learner.policy(training=False),
...                    partial(envs.make, "distracting_bus_tight"), problem=7)
>>> save(recording, "runs/dream_tight/problem_7.gif")

The pictures' colours are described in ``envs.pictures`` and ``docs/rl.md``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stalwart.errors import ConfigError, shorten
from stalwart.io import atomic_write_bytes
from stalwart.rl.envs.meta import EXPLOIT, MetaEnv, check_int
from stalwart.rl.rollout import MetaPolicy, ProblemRollout, rollout

FORMATS = (".png", ".gif")
"""What ``save`` writes, by the path's suffix."""

GAP = 6
"""Pixels between frames of a strip, and around its edges."""
FONT_SIZE = 12
TEXT_HEIGHT = 18
"""Pixels of a line of text (titles, labels, captions)."""


@dataclass(frozen=True)
class Recording:
    """One problem played, as pictures.

    Attributes:
        exploration_frames, exploitation_frames: ``uint8`` pictures ``[H, W, 3]``, the first
            right after the episode's reset, then one after each step (steps + 1 frames).
        exploration_actions, exploitation_actions: the name of each action taken
            (``env.action_names``).
        problem: the problem id μ.
        goal: the exploitation episode's instruction.
        exploitation_return: the exploitation episode's total reward.
    """

    exploration_frames: list[np.ndarray]
    exploitation_frames: list[np.ndarray]
    exploration_actions: list[str]
    exploitation_actions: list[str]
    problem: int
    goal: int
    exploitation_return: float


def record(
    policy: MetaPolicy,
    make_env: Callable[..., MetaEnv],
    problem: int,
    goal: int | None = None,
    *,
    reveal_problem: bool = False,
    seed: int = 0,
) -> Recording:
    """Play ``problem`` greedily with ``policy``, exploration then exploitation, as pictures.

    Args:
        policy: the learner's policy, e.g. ``learner.policy(training=False)``.
        make_env: builds the benchmark; called as ``make_env()`` to play and as
            ``make_env(render_mode="rgb_array")`` to draw, so it must build the same
            benchmark each time: ``functools.partial(envs.make, name, **sizes)``. Problems
            of either split may be recorded (the problem is set explicitly).
        problem: the problem id μ, ``0 .. env.n_problems - 1``.
        goal: the exploitation instruction, one of ``env.goals_of(problem)``; None draws
            one of them with a generator seeded ``seed``.
        reveal_problem: hand μ to the policy (only for policies that need it, such as
            ``evaluate.OraclePolicy``; a meta-test policy must never see it).
        seed: seeds the goal drawn when ``goal`` is None (the same call, the same picture).

    Raises:
        ConfigError: ``problem`` or ``goal`` out of range (the message lists the valid
            ones), or ``make_env`` does not build a ``MetaEnv``.
        RuntimeError: the replay did not reproduce the rollout (an env that is not
            deterministic given problem, goal and actions, or ``make_env`` building
            different benchmarks).
    """
    env = _build(make_env)
    problem = check_int("problem", problem, 0, env.n_problems - 1, rule=" (this benchmark's ids)")
    goals = [int(g) for g in env.goals_of(problem)]
    if goal is None:
        goal = goals[int(np.random.default_rng(seed).integers(len(goals)))]
    goal = check_int("goal", goal, 0, env.n_goals - 1)
    if goal not in goals:
        raise ConfigError(f"goal {goal} is not a goal of problem {problem}; its goals are {goals}")

    # Greedy (ε = 0): the generator is drawn from but never changes an action.
    (played,) = rollout(
        [env],
        policy,
        epsilon=0.0,
        rng=np.random.default_rng(seed),
        problems=[problem],
        goals=[goal],
        reveal_problems=reveal_problem,
    )
    drawing = _build(make_env, render_mode="rgb_array")
    if drawing.render_mode != "rgb_array":
        raise ConfigError(
            "make_env(render_mode='rgb_array') built an env without that render mode; pass "
            "render_mode on to the env, as functools.partial(envs.make, name) does"
        )
    exploration_frames = _replay(drawing, played, {"problem": problem}, exploit=False)
    exploitation_frames = _replay(drawing, played, {"goal": goal}, exploit=True)
    names = env.action_names
    return Recording(
        exploration_frames=exploration_frames,
        exploitation_frames=exploitation_frames,
        exploration_actions=[names[a] for a in played.exploration.actions],
        exploitation_actions=[names[a] for a in played.exploitation.actions],
        problem=problem,
        goal=goal,
        exploitation_return=played.exploitation_return,
    )


def _build(make_env: Callable[..., MetaEnv], **kwargs: Any) -> MetaEnv:
    env = make_env(**kwargs)
    env = getattr(env, "unwrapped", env)  # gymnasium.make's checking wrappers, if any
    if not isinstance(env, MetaEnv):
        raise ConfigError(
            "make_env must build a stalwart.rl.envs MetaEnv, e.g. "
            f"functools.partial(envs.make, 'distracting_bus_tight'); got {shorten(env)}"
        )
    return env


def _replay(
    env: MetaEnv, played: ProblemRollout, options: dict[str, int], *, exploit: bool
) -> list[np.ndarray]:
    """The frames of one recorded episode, played again in ``env`` from its reset."""
    episode = played.exploitation if exploit else played.exploration
    phase = "exploitation" if exploit else "exploration"
    obs, _ = env.reset(options=options)
    if exploit and (env.phase != EXPLOIT or env.problem != played.problem):
        raise RuntimeError("the replay env did not continue the problem into its exploitation")
    frames = [env.render()]
    trace = [(obs, None, False)]
    for action in episode.actions:
        obs, reward, terminated, truncated, _ = env.step(int(action))
        frames.append(env.render())
        trace.append((obs, np.float32(reward), terminated or truncated))
    for step, (obs, reward, ended) in enumerate(trace):
        expected_ended = step == len(episode) and step > 0
        if (
            not np.array_equal(obs, episode.obs[step])
            or (reward is not None and reward != episode.rewards[step - 1])
            or ended != expected_ended
        ):
            raise RuntimeError(
                f"replaying the recorded actions did not reproduce the {phase} episode of "
                f"problem {played.problem} at step {step}: make_env must build the same "
                "benchmark at every call, and the env must be deterministic given problem, "
                "goal and actions"
            )
    return frames


# ---- files ----------------------------------------------------------------------------------


def save(recording: Recording, path: str | Path) -> Path:
    """Write ``recording`` as a ``.png`` strip or a ``.gif`` animation, chosen by suffix.

    The file is written atomically and its folder created. Returns the path.

    Raises:
        ConfigError: any other suffix (the message names the choices).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".png":
        return save_strip(recording, path)
    if suffix == ".gif":
        return save_gif(recording, path)
    raise ConfigError(
        f"cannot tell the picture's format from {str(path)!r}: end it in .png (a strip of "
        f"both episodes) or .gif (an animation); choices: {list(FORMATS)}"
    )


def save_strip(recording: Recording, path: str | Path) -> Path:
    """One PNG: a row per episode, each frame titled with the action that led to it.

    Row titles: ``problem 7, exploration, 5 steps`` and ``exploitation, goal 2, return 0.80,
    3 steps``. A frame's label is ``start`` for the first, else ``step: action`` (left out
    where it does not fit the frame's width).
    """
    from PIL import Image, ImageDraw

    rows = [
        (
            f"problem {recording.problem}, exploration, {len(recording.exploration_actions)} steps",
            recording.exploration_frames,
            recording.exploration_actions,
        ),
        (
            f"exploitation, goal {recording.goal}, return {recording.exploitation_return:.2f}, "
            f"{len(recording.exploitation_actions)} steps",
            recording.exploitation_frames,
            recording.exploitation_actions,
        ),
    ]
    height, width = recording.exploration_frames[0].shape[:2]
    longest = max(len(frames) for _, frames, _ in rows)
    row_height = 2 * TEXT_HEIGHT + height + GAP
    canvas = Image.new(
        "RGB", (GAP + longest * (width + GAP), GAP + len(rows) * row_height), "white"
    )
    draw = ImageDraw.Draw(canvas)
    font = _font()
    for r, (title, frames, actions) in enumerate(rows):
        top = GAP + r * row_height
        draw.text((GAP, top), title, fill="black", font=font)
        for k, frame in enumerate(frames):
            left = GAP + k * (width + GAP)
            label = "start" if k == 0 else f"{k}: {actions[k - 1]}"
            if draw.textlength(label, font=font) <= width:
                draw.text((left, top + TEXT_HEIGHT), label, fill=(60, 60, 60), font=font)
            canvas.paste(Image.fromarray(frame), (left, top + 2 * TEXT_HEIGHT))
    return _write(path, lambda handle: canvas.save(handle, format="PNG"))


def save_gif(recording: Recording, path: str | Path, fps: float = 4) -> Path:
    """An animated GIF of both episodes, ``fps`` frames a second, looping.

    Each frame has a caption below it (``explore 3: left``, ``exploit 2: ride``), which also
    keeps repeated pictures (an agent against a wall) as frames of their own.
    """
    from PIL import Image, ImageDraw

    if not fps > 0:
        raise ConfigError(f"fps must be positive; got {shorten(fps)}")
    font = _font()
    images = []
    for phase, frames, actions in (
        ("explore", recording.exploration_frames, recording.exploration_actions),
        ("exploit", recording.exploitation_frames, recording.exploitation_actions),
    ):
        for k, frame in enumerate(frames):
            height, width = frame.shape[:2]
            image = Image.new("RGB", (width, height + TEXT_HEIGHT), "white")
            image.paste(Image.fromarray(frame), (0, 0))
            caption = f"{phase} {k}: {actions[k - 1]}" if k else f"{phase} start"
            ImageDraw.Draw(image).text((3, height + 2), caption, fill="black", font=font)
            images.append(image)
    duration = round(1000 / fps)
    return _write(
        path,
        lambda handle: images[0].save(
            handle,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=duration,
            loop=0,
        ),
    )


def _font() -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except ImportError:  # Pillow built without FreeType: its small bitmap font
        return ImageFont.load_default()


def _write(path: str | Path, write: Callable[[Any], None]) -> Path:
    path = Path(path)
    atomic_write_bytes(path, write)
    return path
