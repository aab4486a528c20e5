"""Map (DREAM): the bus city plus a map that shows, to whoever stands on it, where buses go.

Liu, Raghunathan, Liang and Finn, ICML 2021 (arXiv 2008.02790), Section 6. The city of the
distracting-bus benchmark with its 4 useful buses (24 problems; no distracting buses by
default, as in the reference code) and a map at (7, 3). Standing on the map, the observation's
``map`` field is ``1 + r``, where ``r`` ranks the useful buses' permutation
(``city.useful_rank``); everywhere else it is 0. Optimal exploration walks to the map (4
steps) instead of riding every bus: the benchmark tests whether a learner finds the cheap
source of information.

The reference code meta-trains and tests the map on all 24 problems, hence ``train_every``
None by default; the two-episode protocol, actions and rewards are the distracting bus's.
"""

from __future__ import annotations

import numpy as np

from stalwart.rl.envs.bus import CityEnv
from stalwart.rl.envs.city import Cell, build_city
from stalwart.rl.envs.meta import Split


class MapEnv(CityEnv):
    """DREAM's map benchmark; the defaults are the paper's.

    Args:
        size: side of the square grid (9).
        n_useful: useful buses (4).
        n_distracting: distracting buses (0).
        max_steps: step limit of each episode (20).
        train_every: meta-train on every ``train_every``-th problem id, hold out the rest;
            None (the default) trains and tests on every problem.
        map_cell: where the map is; None puts it at ``(size - 2, size // 2 - 1)``: (7, 3).
        split: which problems ``reset`` draws from, ``"train"`` or ``"test"``.
        render_mode: ``"ansi"`` for text, ``"rgb_array"`` for pictures, or None.
    """

    observation_fields = (*CityEnv.observation_fields, "map")

    def __init__(
        self,
        *,
        size: int = 9,
        n_useful: int = 4,
        n_distracting: int = 0,
        max_steps: int = 20,
        train_every: int | None = None,
        map_cell: Cell | None = None,
        split: Split = "train",
        render_mode: str | None = None,
    ) -> None:
        if map_cell is None and isinstance(size, int):
            map_cell = (size - 2, size // 2 - 1)
        super().__init__(
            build_city(size, n_useful, n_distracting, map_cell=map_cell),
            max_steps=max_steps,
            train_every=train_every,
            split=split,
            render_mode=render_mode,
        )
        self._map_index = self.city.index(self.city.map_cell)

    def _field_sizes(self) -> list[int]:
        return [*super()._field_sizes(), self.city.useful_permutations + 1]

    def _start(self) -> None:
        super()._start()
        self._map_reading = 1 + self.city.useful_rank(self.problem)

    def _observe(self) -> np.ndarray:
        x, y = self._xy[self._pos]
        instruction = 0 if self.goal is None else self.goal + 1
        reading = self._map_reading if self._pos == self._map_index else 0
        return np.array(
            (x, y, self.phase, instruction, self._on_stop[self._pos], reading), np.int64
        )
