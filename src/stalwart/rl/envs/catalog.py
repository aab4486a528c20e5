"""Every meta-exploration benchmark by name, in stalwart's registry and in Gymnasium's.

``make("distracting_bus_small")`` and ``gymnasium.make("stalwart/DistractingBusSmall-v0")``
build the same environment: each Gymnasium id's entry point is the factory below, so the
benchmark's settings are written once. ``make`` returns the environment itself;
``gymnasium.make`` returns it inside Gymnasium's usual checking wrappers (reach it with
``.unwrapped``). A wrong name lists the choices; a wrong size names the parameter and rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stalwart.registry import Registry
from stalwart.rl.envs.bus import DistractingBusEnv
from stalwart.rl.envs.city import Cell
from stalwart.rl.envs.cooking import CookingEnv
from stalwart.rl.envs.map import MapEnv
from stalwart.rl.envs.meta import MetaEnv, Split, gymnasium


@dataclass(frozen=True)
class EnvInfo:
    """What the registry records about every benchmark.

    Attributes:
        gym_id: its Gymnasium id (``gymnasium.make(gym_id)``).
        summary: one line on what it tests.
    """

    gym_id: str
    summary: str


ENVS: Registry[MetaEnv] = Registry("environment", info_type=EnvInfo)


@ENVS.register(
    "distracting_bus",
    EnvInfo(
        "stalwart/DistractingBus-v0",
        "DREAM's 9x9 bus city, 4 useful and 4 distracting buses, 576 problems",
    ),
)
def distracting_bus(
    *,
    size: int = 9,
    n_useful: int = 4,
    n_distracting: int = 4,
    max_steps: int = 20,
    train_every: int | None = 11,
    split: Split = "train",
    render_mode: str | None = None,
) -> DistractingBusEnv:
    """The paper's distracting bus (arXiv 2008.02790, Section 6)."""
    return DistractingBusEnv(
        size=size,
        n_useful=n_useful,
        n_distracting=n_distracting,
        max_steps=max_steps,
        train_every=train_every,
        split=split,
        render_mode=render_mode,
    )


@ENVS.register(
    "distracting_bus_small",
    EnvInfo(
        "stalwart/DistractingBusSmall-v0",
        "a 5x5 bus city, 2 useful and 2 distracting buses, 4 problems: trains in CPU minutes",
    ),
)
def distracting_bus_small(
    *,
    size: int = 5,
    n_useful: int = 2,
    n_distracting: int = 2,
    max_steps: int = 10,
    train_every: int | None = None,
    split: Split = "train",
    render_mode: str | None = None,
) -> DistractingBusEnv:
    """A shrunk distracting bus for CPU-minute training (4 problems, so no held-out set)."""
    return DistractingBusEnv(
        size=size,
        n_useful=n_useful,
        n_distracting=n_distracting,
        max_steps=max_steps,
        train_every=train_every,
        split=split,
        render_mode=render_mode,
    )


@ENVS.register(
    "distracting_bus_tight",
    EnvInfo(
        "stalwart/DistractingBusTight-v0",
        "a 7x7 bus city, 2 useful and 4 distracting buses, 5 steps: too few to walk to a "
        "corner, so knowing the buses is worth 0.325; 16 train, 32 held-out problems",
    ),
)
def distracting_bus_tight(
    *,
    size: int = 7,
    n_useful: int = 2,
    n_distracting: int = 4,
    max_steps: int = 5,
    train_every: int | None = 3,
    split: Split = "train",
    render_mode: str | None = None,
) -> DistractingBusEnv:
    """A small distracting bus where exploring pays, for CPU-minute DREAM vs E-RL² runs.

    Walking from the centre of a 7x7 grid to a corner takes 6 steps, one more than the
    budget, so a goal is reached only by the useful bus that lands next to it (3 steps:
    step, ride, step; the other two corners have no useful bus and cannot be reached). The
    best policy that does not know where the buses go gets 0.15 on a bus corner (ride one,
    right half the time) and −0.175 over all goals; knowing them (one ride while exploring
    tells both) gets 0.8 and 0.15: a gap of 0.325 (``stalwart.rl.information``). The 48
    problems (2 useful × 24 distracting orders) train on every 3rd id, which covers both
    useful orders, and hold out the other 32.
    """
    return DistractingBusEnv(
        size=size,
        n_useful=n_useful,
        n_distracting=n_distracting,
        max_steps=max_steps,
        train_every=train_every,
        split=split,
        render_mode=render_mode,
    )


@ENVS.register(
    "map",
    EnvInfo("stalwart/Map-v0", "DREAM's bus city with a map at (7, 3) showing the buses"),
)
def map_city(
    *,
    size: int = 9,
    n_useful: int = 4,
    n_distracting: int = 0,
    max_steps: int = 20,
    train_every: int | None = None,
    map_cell: Cell | None = None,
    split: Split = "train",
    render_mode: str | None = None,
) -> MapEnv:
    """The paper's map benchmark (arXiv 2008.02790, Section 6)."""
    return MapEnv(
        size=size,
        n_useful=n_useful,
        n_distracting=n_distracting,
        max_steps=max_steps,
        train_every=train_every,
        map_cell=map_cell,
        split=split,
        render_mode=render_mode,
    )


@ENVS.register(
    "map_tight",
    EnvInfo(
        "stalwart/MapTight-v0",
        "a 7x7 map city, 4 useful buses, 5 steps: only the map (3 steps away) tells which bus "
        "reaches the goal; 24 problems",
    ),
)
def map_tight(
    *,
    size: int = 7,
    n_useful: int = 4,
    n_distracting: int = 0,
    max_steps: int = 5,
    train_every: int | None = None,
    map_cell: Cell | None = None,
    split: Split = "train",
    render_mode: str | None = None,
) -> MapEnv:
    """A small map benchmark where only reading the map pays, for CPU-minute comparisons.

    The map city shrunk as ``distracting_bus_tight`` shrinks the bus: 7x7, the 4 useful
    buses, the map at (5, 2), 5 steps an episode. A corner is 6 steps away on foot, so a goal
    is reached only by the bus that lands next to it (3 steps, return 0.8); riding one bus
    blindly is right a quarter of the time (best uninformed return −0.175 over all goals,
    ``stalwart.rl.information``). Exploring by riding buses learns one bus in the budget;
    walking to the map (3 steps) learns all four, so optimal exploration then exploitation
    reaches the oracle's 0.8: a gap of 0.975 that only the map closes. As the reference's
    map, it trains and tests on all 24 problems (a held-out permutation would show the map
    a value never seen in training).
    """
    return MapEnv(
        size=size,
        n_useful=n_useful,
        n_distracting=n_distracting,
        max_steps=max_steps,
        train_every=train_every,
        map_cell=map_cell,
        split=split,
        render_mode=render_mode,
    )


@ENVS.register(
    "cooking",
    EnvInfo("stalwart/Cooking-v0", "DREAM's kitchen: find the drawers' ingredients, cook a recipe"),
)
def cooking(
    *,
    n_ingredients: int = 4,
    max_steps: int = 20,
    held_out: tuple[int, ...] = (10,),
    split: Split = "train",
    render_mode: str | None = None,
) -> CookingEnv:
    """The paper's cooking benchmark (arXiv 2008.02790, Section 6)."""
    return CookingEnv(
        n_ingredients=n_ingredients,
        max_steps=max_steps,
        held_out=held_out,
        split=split,
        render_mode=render_mode,
    )


def make(name: str, **params: Any) -> MetaEnv:
    """Build the benchmark ``name`` with its settings changed by ``params``.

    Raises:
        ConfigError: on a wrong name (the choices are listed), an unknown parameter, a value
            of the wrong type, or sizes that do not fit (grid too small for the stops, ...).
    """
    return ENVS.build(name, **params)


def gym_id(name: str) -> str:
    """The Gymnasium id of benchmark ``name``."""
    return ENVS.info(name).gym_id


def register_gymnasium_ids() -> None:
    """Register every benchmark with Gymnasium (again only if missing: imports may repeat)."""
    for name in ENVS:
        info: EnvInfo = ENVS.info(name)
        if info.gym_id not in gymnasium.registry:
            gymnasium.register(id=info.gym_id, entry_point=f"{__name__}:{ENVS.get(name).__name__}")


register_gymnasium_ids()
