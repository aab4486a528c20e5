"""DREAM's meta-exploration benchmarks on the Gymnasium 1.x API.

Liu, Raghunathan, Liang and Finn, "Decoupling Exploration and Exploitation for
Meta-Reinforcement Learning without Sacrifices", ICML 2021 (arXiv 2008.02790).

>>> from stalwart.rl import envs
>>> env = envs.make("distracting_bus")            # or gymnasium.make("stalwart/DistractingBus-v0")
>>> obs, info = env.reset(seed=0)                 # exploration episode of a training problem
>>> info                                          # {'problem': ..., 'phase': 'explore'}
>>> obs, info = env.reset()                       # ... then its exploitation episode
>>> env.oracle_action(obs, info["problem"])       # an optimal action, knowing the problem

- ``meta``: the two-episode protocol (read its docstring: how DREAM and E-RL² use it).
- ``city``: where stops, destinations, goals and the map are; BFS shortest paths.
- ``bus``: distracting bus; ``map``: the city with a map; ``cooking``: the kitchen.
- ``wrappers``: ``MetaEpisode`` joins a problem's two episodes into one.
- ``pictures``: the numpy drawing behind ``render_mode="rgb_array"`` (colours, grid cells).
- ``catalog``: every benchmark by name (``make``) and by Gymnasium id.
"""

from stalwart.rl.envs.bus import ACTION_NAMES, CityEnv, DistractingBusEnv
from stalwart.rl.envs.catalog import ENVS, EnvInfo, gym_id, make
from stalwart.rl.envs.city import City, build_city
from stalwart.rl.envs.cooking import CookingEnv
from stalwart.rl.envs.map import MapEnv
from stalwart.rl.envs.meta import EXPLOIT, EXPLORE, INSTRUCTION, PHASE, PHASES, MetaEnv
from stalwart.rl.envs.wrappers import MetaEpisode

__all__ = [
    "ACTION_NAMES",
    "ENVS",
    "EXPLOIT",
    "EXPLORE",
    "INSTRUCTION",
    "PHASE",
    "PHASES",
    "City",
    "CityEnv",
    "CookingEnv",
    "DistractingBusEnv",
    "EnvInfo",
    "MapEnv",
    "MetaEnv",
    "MetaEpisode",
    "build_city",
    "gym_id",
    "make",
]
