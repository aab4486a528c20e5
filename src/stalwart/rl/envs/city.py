"""The city of DREAM's bus and map benchmarks: a square grid, bus stops, and where buses go.

Liu et al., ICML 2021 (arXiv 2008.02790), Section 6 and Appendix: the agent starts at the
centre of the grid; a few **useful** bus stops next to it lead to cells next to the corners
(the goals), in an order that is the problem's permutation; **distracting** buses lead, in
their own permutation, to the middles of the edges, far from every goal. Buses run both ways:
riding from a destination brings the agent back to its stop. With the paper's 9×9 grid, 4
useful and 4 distracting buses there are 4!·4! = 576 problems.

Where things go, for any size (the paper's layout for 9×9):

- **stops**: the inner cells (not on the border), nearest the centre first; useful stops take
  the centre's orthogonal neighbours first, distracting stops its diagonal ones.
- **destinations**: border cells other than the corners; useful ones nearest a corner first,
  one per corner before a second per corner; distracting ones farthest from every corner.
- **map** (the map benchmark): ``(size - 2, size // 2 - 1)`` unless placed elsewhere.

A problem id is ``useful + useful_permutations · distracting``: ``useful`` ranks the useful
buses' permutation and ``distracting`` the distracting ones', both in lexicographic order.
Cells are ``(x, y)``; a cell's index in flat tables is ``x · size + y``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from stalwart.errors import ConfigError
from stalwart.rl.envs.meta import check_int

Cell = tuple[int, int]

MAX_BUSES = 5
"""The most buses of each kind: 5! = 120 permutations each, 14,400 problems at most."""


def permutation(rank: int, n: int) -> tuple[int, ...]:
    """The ``rank``-th permutation of ``range(n)`` in lexicographic order (itertools' order)."""
    items = list(range(n))
    chosen = []
    for remaining in range(n, 0, -1):
        index, rank = divmod(rank, math.factorial(remaining - 1))
        chosen.append(items.pop(index))
    return tuple(chosen)


@dataclass(frozen=True)
class City:
    """Where everything is in one city; the problem decides only where each bus goes.

    Attributes:
        size: the grid is ``size × size``.
        start: where every episode starts (the centre).
        goals: the instructions' cells, the four corners, by goal id.
        useful_stops, useful_destinations: the useful buses' stops and the cells their
            permutation assigns to them.
        distracting_stops, distracting_destinations: the same for the distracting buses.
        map_cell: the cell that shows the useful permutation, or None for no map.
    """

    size: int
    start: Cell
    goals: tuple[Cell, ...]
    useful_stops: tuple[Cell, ...]
    useful_destinations: tuple[Cell, ...]
    distracting_stops: tuple[Cell, ...]
    distracting_destinations: tuple[Cell, ...]
    map_cell: Cell | None

    @property
    def useful_permutations(self) -> int:
        """How many orders the useful buses can run in."""
        return math.factorial(len(self.useful_stops))

    @property
    def n_problems(self) -> int:
        """Problems: every useful permutation with every distracting one."""
        return self.useful_permutations * math.factorial(len(self.distracting_stops))

    @property
    def stops(self) -> frozenset[Cell]:
        """Every cell where a bus can be ridden (stops and destinations, as buses run both ways)."""
        return frozenset(
            self.useful_stops
            + self.useful_destinations
            + self.distracting_stops
            + self.distracting_destinations
        )

    def useful_rank(self, problem: int) -> int:
        """The rank of problem ``problem``'s useful permutation (what the map shows)."""
        return problem % self.useful_permutations

    def routes(self, problem: int) -> list[tuple[Cell, Cell]]:
        """Every bus of ``problem`` as a (stop, destination) pair; each runs both ways."""
        distracting, useful = divmod(problem, self.useful_permutations)
        pairs = []
        for stops, destinations, rank in (
            (self.useful_stops, self.useful_destinations, useful),
            (self.distracting_stops, self.distracting_destinations, distracting),
        ):
            order = permutation(rank, len(stops))
            pairs += [(stop, destinations[order[i]]) for i, stop in enumerate(stops)]
        return pairs

    def index(self, cell: Cell) -> int:
        """The cell's index in flat tables."""
        return cell[0] * self.size + cell[1]

    def move_table(self) -> list[list[int]]:
        """``table[direction][cell]``: the cell one step away, or the same cell at a wall.

        Directions in action order: left (x - 1), right (x + 1), down (y - 1), up (y + 1).
        """
        n = self.size
        table = []
        for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            row = []
            for x in range(n):
                for y in range(n):
                    row.append(min(max(x + dx, 0), n - 1) * n + min(max(y + dy, 0), n - 1))
            table.append(row)
        return table

    def ride_table(self, problem: int) -> list[int]:
        """``table[cell]``: where riding from ``cell`` leads (the cell itself off a stop)."""
        table = list(range(self.size * self.size))
        for stop, destination in self.routes(problem):
            table[self.index(stop)] = self.index(destination)
            table[self.index(destination)] = self.index(stop)
        return table


def steps_to(goal: int, successors: list[list[int]]) -> list[int]:
    """Fewest steps from every cell to ``goal`` (BFS backwards; -1 where unreachable).

    Args:
        goal: the target cell's index.
        successors: ``successors[a][cell]``, the cell each action leads to.
    """
    n_cells = len(successors[0])
    predecessors: list[list[int]] = [[] for _ in range(n_cells)]
    for table in successors:
        for cell, after in enumerate(table):
            if after != cell:
                predecessors[after].append(cell)
    distance = [-1] * n_cells
    distance[goal] = 0
    frontier = deque([goal])
    while frontier:
        cell = frontier.popleft()
        for before in predecessors[cell]:
            if distance[before] < 0:
                distance[before] = distance[cell] + 1
                frontier.append(before)
    return distance


def build_city(
    size: int, n_useful: int, n_distracting: int, *, map_cell: Cell | None = None
) -> City:
    """Lay out a city, or raise ``ConfigError`` where the sizes do not fit.

    Args:
        size: side of the square grid (the paper: 9).
        n_useful: useful buses, 1 to 5 (the paper: 4).
        n_distracting: distracting buses, 0 to 5 (the paper: 4).
        map_cell: the map's cell, or None for a city without a map.
    """
    check_int("size", size, 3, rule=" (a start cell inside four corners)")
    check_int("n_useful", n_useful, 1, MAX_BUSES, rule=f" ({MAX_BUSES}! permutations at most)")
    check_int("n_distracting", n_distracting, 0, MAX_BUSES)
    centre = size // 2
    start = (centre, centre)
    last = size - 1
    goals = ((0, 0), (last, last), (0, last), (last, 0))
    if map_cell is not None:
        map_cell = (int(map_cell[0]), int(map_cell[1]))
        if not all(0 <= v < size for v in map_cell) or map_cell == start or map_cell in goals:
            raise ConfigError(
                f"map_cell must be a cell of the {size}x{size} grid other than the start "
                f"{start} and the corners; got {map_cell}"
            )

    inner = [
        (x, y)
        for x in range(1, last)
        for y in range(1, last)
        if (x, y) != start and (x, y) != map_cell
    ]
    n_stops = n_useful + n_distracting
    if n_stops > len(inner):
        raise ConfigError(
            f"n_useful + n_distracting must be at most {len(inner)}, the inner cells of a "
            f"{size}x{size} grid free for bus stops; got {n_useful} + {n_distracting}"
        )

    def ring(cell: Cell) -> tuple[int, int]:
        dx, dy = cell[0] - centre, cell[1] - centre
        return max(abs(dx), abs(dy)), abs(dx) + abs(dy)

    def turn(cell: Cell) -> tuple[int, int]:  # a fixed order around the centre breaks ties
        return centre - cell[1], centre - cell[0]

    # Useful stops: orthogonal neighbours of the start first; distracting: diagonal ones first.
    inner.sort(key=lambda c: (ring(c), turn(c)))
    useful_stops = inner[:n_useful]
    rest = sorted(inner[n_useful:], key=lambda c: (ring(c)[0], -ring(c)[1], turn(c)))
    distracting_stops = rest[:n_distracting]

    border = (
        [(0, y) for y in range(1, last)]
        + [(x, 0) for x in range(1, last)]
        + [(last, y) for y in range(1, last)]
        + [(x, last) for x in range(1, last)]
    )
    border = [c for c in border if c != map_cell]
    if n_stops > len(border):
        raise ConfigError(
            f"n_useful + n_distracting must be at most {len(border)}, the border cells of a "
            f"{size}x{size} grid free for bus destinations; got {n_useful} + {n_distracting}"
        )

    def corner_distance(cell: Cell) -> tuple[int, int]:
        distances = [abs(cell[0] - gx) + abs(cell[1] - gy) for gx, gy in goals]
        nearest = min(distances)
        return nearest, distances.index(nearest)

    def near_corner(cell: Cell) -> tuple[int, int, int]:
        distance, corner = corner_distance(cell)
        on_side = 0 if cell[0] in (0, last) else 1  # one per corner before a second per corner
        return distance, on_side, corner

    by_nearness = sorted(border, key=near_corner)
    useful_destinations = by_nearness[:n_useful]
    rest_border = [c for c in border if c not in useful_destinations]
    distracting_destinations = sorted(rest_border, key=lambda c: -corner_distance(c)[0])[
        :n_distracting
    ]
    return City(
        size=size,
        start=start,
        goals=goals,
        useful_stops=tuple(useful_stops),
        useful_destinations=tuple(useful_destinations),
        distracting_stops=tuple(distracting_stops),
        distracting_destinations=tuple(distracting_destinations),
        map_cell=map_cell,
    )
