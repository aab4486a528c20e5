"""Pictures of the meta-exploration worlds: grids of coloured cells, in numpy alone.

``render_mode="rgb_array"`` draws the current state of a DREAM benchmark (Liu, Raghunathan,
Liang and Finn, ICML 2021, arXiv 2008.02790) as a ``uint8`` array ``[H, W, 3]``. Envs must stay
light (a vector of them runs in every training process), so the drawing is numpy slicing only:
no matplotlib, no fonts. Every world is a grid of square cells, ``(x, y)`` with ``y`` up, inside
a thin frame whose colour tells the phase: grey while exploring (nothing is paid), red while
exploiting (the task is on). Below the grid a world may keep a **band** of small squares for
what is not a place (the cooking agent's inventory and recipe).

What the colours mean is in ``COLOURS`` and ``INGREDIENTS``; ``docs/rl.md`` has the legend.
"""

from __future__ import annotations

import numpy as np

from stalwart.rl.envs.meta import EXPLOIT

Colour = tuple[int, int, int]
Cell = tuple[int, int]

CELL = 24
"""Side of a cell in pixels (the kitchen, 3×3, uses larger ones)."""
FRAME = 3
"""Width of the phase-coloured frame around the grid, in pixels."""

COLOURS: dict[str, Colour] = {
    "explore": (150, 150, 150),  # frame while exploring
    "exploit": (220, 30, 60),  # frame while exploiting
    "line": (200, 200, 200),  # between cells
    "floor": (245, 245, 245),
    "agent": (30, 80, 220),
    "goal": (220, 30, 60),  # the exploitation instruction's cell (a corner of the city)
    "useful_stop": (40, 160, 70),
    "useful_destination": (150, 215, 160),
    "distracting_stop": (240, 130, 40),
    "distracting_destination": (250, 205, 155),
    "map": (140, 50, 180),
    "drawer": (120, 90, 60),  # a drawer's rim, around its ingredient
    "bowl": (255, 255, 255),
    "band": (70, 70, 70),  # the band's background
    "empty": (190, 190, 190),  # an empty slot (inventory, bowl)
}

INGREDIENTS: tuple[Colour, ...] = (
    (230, 200, 0),
    (0, 170, 170),
    (200, 60, 200),
    (120, 200, 40),
    (250, 120, 120),
    (120, 220, 255),
    (160, 110, 40),
    (0, 120, 60),
    (255, 160, 0),
    (0, 0, 0),
)
"""One colour per ingredient id (the kitchen has at most 10)."""


class Grid:
    """A picture of a ``columns × rows`` grid under construction; ``image`` is the result.

    Args:
        columns, rows: the grid's size in cells.
        phase: the env's phase (the frame's colour: ``EXPLORE`` grey, ``EXPLOIT`` red).
        cell: side of a cell in pixels.
        band: height of the band below the grid in pixels (0: none).
    """

    def __init__(
        self, columns: int, rows: int, phase: int, *, cell: int = CELL, band: int = 0
    ) -> None:
        self.rows, self.cell = rows, cell
        frame = COLOURS["exploit" if phase == EXPLOIT else "explore"]
        height = 2 * FRAME + rows * cell + band
        self.image = np.empty((height, 2 * FRAME + columns * cell, 3), np.uint8)
        self.image[:] = frame
        self.image[FRAME : FRAME + rows * cell, FRAME : FRAME + columns * cell] = COLOURS["line"]
        for x in range(columns):
            for y in range(rows):
                self.paint((x, y), COLOURS["floor"])
        self._band_top = FRAME + rows * cell
        self._band = band
        if band:
            self.image[self._band_top : self._band_top + band, FRAME:-FRAME] = COLOURS["band"]

    def paint(
        self,
        cell: Cell,
        colour: Colour,
        *,
        inset: int = 1,
        box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
    ) -> None:
        """Fill part of ``cell`` with ``colour``.

        ``box`` is the part: (left, top, right, bottom) in fractions of the cell, less
        ``inset`` pixels on every side (1 leaves the grid lines visible).
        """
        x, y = cell
        c = self.cell
        top = FRAME + (self.rows - 1 - y) * c  # up is up
        left = FRAME + x * c
        y0, y1 = top + round(box[1] * c) + inset, top + round(box[3] * c) - inset
        x0, x1 = left + round(box[0] * c) + inset, left + round(box[2] * c) - inset
        self.image[y0:y1, x0:x1] = colour

    def agent(self, cell: Cell) -> None:
        """The agent: a square in the middle of its cell, so that what is under it still shows."""
        self.paint(cell, COLOURS["agent"], inset=self.cell // 4)

    def band_slot(self, index: int, colour: Colour) -> None:
        """Square number ``index`` (from the left) of the band below the grid."""
        side = self._band - 4
        top, left = self._band_top + 2, FRAME + 2 + index * (side + 3)
        self.image[top : top + side, left : left + side] = colour
