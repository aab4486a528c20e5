"""Environment steps per second: stalwart's collection against a bare Gymnasium loop.

DREAM's learners (arXiv 2008.02790) collect with ``stalwart.rl.rollout``: ``n`` environments
in lockstep, each playing one problem's exploration episode and then its exploitation
episode, recording every transition as an ``Episode`` and asking the policy for Q-values
(one batched call per step). Here the policy is free (zeros, every action random, ε = 1), so
what is timed is the collection machinery itself. The baseline is the bare loop a user would
write on the same environments: reset, ``action_space.sample()``, ``step`` until the
exploration episode is truncated, reset into the exploitation episode, step until it ends,
and nothing recorded.

Prints environment steps per second of both and their ratio (stalwart / bare), the median of
``--repeats`` alternating runs of ``--problems`` problems per environment.

    python benchmarks/rl_env_speed.py [--env distracting_bus] [--envs 1,16] [--problems 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch

from stalwart.rl import envs as rl_envs
from stalwart.rl.rollout import rollout


class FreePolicy:
    """A ``MetaPolicy`` that costs nothing: zero Q-values (with ε = 1, random actions)."""

    def __init__(self, n_actions: int) -> None:
        self.n_actions = n_actions

    def start(self, n, problems) -> None:
        self.n = n

    def q_values(self, obs, previous_actions, previous_rewards):
        return torch.zeros(len(obs), self.n_actions)

    def begin_exploitation(self, exploration) -> None:
        pass


def stalwart_steps(envs: list, problems: int, seed: int) -> tuple[int, float]:
    """Steps and seconds of ``problems`` rounds of ``rollout`` over ``envs``."""
    policy = FreePolicy(int(envs[0].action_space.n))
    rng = np.random.default_rng(seed)
    steps, started = 0, time.perf_counter()
    for _ in range(problems):
        for played in rollout(envs, policy, epsilon=1.0, rng=rng):
            steps += len(played.exploration.actions) + len(played.exploitation.actions)
    return steps, time.perf_counter() - started


def bare_steps(envs: list, problems: int, seed: int) -> tuple[int, float]:
    """Steps and seconds of the same problems played by a bare Gymnasium loop."""
    for k, env in enumerate(envs):
        env.action_space.seed(seed + k)
    steps, started = 0, time.perf_counter()
    for _ in range(problems):
        for env in envs:
            for _phase in range(2):  # exploration, then the exploitation of the same problem
                env.reset()
                done = False
                while not done:
                    _, _, terminated, truncated, _ = env.step(env.action_space.sample())
                    done = terminated or truncated
                    steps += 1
    return steps, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="distracting_bus")
    parser.add_argument("--envs", default="1,16", help="environments side by side")
    parser.add_argument("--problems", type=int, default=200, help="problems per environment")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(
        f"{platform.machine()}, {os.cpu_count()} cores (load average "
        f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}), torch {torch.__version__}, "
        f"env {args.env}, {args.problems} problems per env, median of {args.repeats}"
    )
    print(f"{'envs':>5} {'bare steps/s':>13} {'stalwart steps/s':>17} {'stalwart/bare':>14}")
    for n in (int(k) for k in args.envs.split(",")):
        rates: dict[str, list[float]] = {"bare": [], "stalwart": []}
        for repeat in range(args.repeats):
            sides = [("bare", bare_steps), ("stalwart", stalwart_steps)]
            for name, run in sides if repeat % 2 == 0 else sides[::-1]:
                environments = [rl_envs.make(args.env) for _ in range(n)]
                for k, env in enumerate(environments):
                    env.reset(seed=repeat * 1000 + k)
                steps, seconds = run(environments, args.problems, repeat)
                rates[name].append(steps / seconds)
        bare, ours = (statistics.median(rates[k]) for k in ("bare", "stalwart"))
        print(f"{n:>5} {bare:>13,.0f} {ours:>17,.0f} {ours / bare:>14.3f}")


if __name__ == "__main__":
    main()
