"""Named blocks of an input, and randomizing one block across examples (arXiv 2006.07710).

Shah et al. ("The Pitfalls of Simplicity Bias in Neural Networks", arXiv 2006.07710) ask which
part of its input a trained model relies on by *randomizing* that part: the block's values are
permuted across the examples of a test set with one shared permutation, which keeps each
block's marginal distribution and breaks its link to the label. A model that relies only on a
block loses all accuracy when that block is randomized and none when the others are.

A dataset declares its blocks with :class:`InputBlocks`: one boolean mask of the input's shape
per block, and optionally the orthonormal rotation the data was mixed with. Masks then live in
the *latent* (un-rotated) coordinates: the slab data of the paper is generated coordinate by
coordinate and multiplied by a random orthonormal ``W`` (``x = z @ W``), so randomizing a
latent coordinate means undoing the rotation, permuting, and redoing it. For images (the two
halves of ``dominoes``) there is no rotation and a block is a region: permuting it across rows
pastes each image's region from another, random image.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from stalwart.errors import DataError, closest, shorten

ORTHONORMAL_TOLERANCE = 1e-4
"""Largest |WᵀW − I| entry accepted for a rotation stored in float32."""


@dataclass(frozen=True, eq=False)
class InputBlocks:
    """Named parts of a dataset's inputs, in latent coordinates, and the rotation to them.

    Attributes:
        masks: block name → boolean tensor of one input's shape, True on the block's entries.
            Blocks may overlap and need not cover the input.
        rotation: ``(d, d)`` orthonormal ``W`` with inputs ``x = z @ W`` for latent ``z``
            (flat inputs only), or None when inputs are their own latent coordinates.
        simple: the block that carries the simplest predictive feature, if the dataset knows
            it (reports list it first).
        agreeing_groups: the groups whose every block predicts the label (dominoes: the digit
            agrees with the garment), if the dataset knows them. Only there does randomizing a
            block tell reliance on it from reliance on another: on a balanced test set the
            spurious block already says nothing about the label, so randomizing it cannot
            lower the AUC however much the model reads it.
    """

    masks: Mapping[str, Tensor]
    rotation: Tensor | None = None
    simple: str | None = None
    agreeing_groups: tuple[int, ...] | None = None
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        masks = {
            str(name): torch.as_tensor(mask, dtype=torch.bool) for name, mask in self.masks.items()
        }
        if not masks:
            raise DataError("input blocks: give at least one named block")
        shapes = {tuple(mask.shape) for mask in masks.values()}
        if len(shapes) != 1:
            raise DataError(f"input blocks: every mask needs the input's shape; got {shapes}")
        for name, mask in masks.items():
            if not mask.any():
                raise DataError(f"input block {name!r} selects no entry of the input")
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "names", tuple(masks))
        if self.simple is not None and self.simple not in masks:
            raise DataError(
                f"input blocks: the simple block {self.simple!r} is not one of {list(masks)}"
            )
        if self.rotation is not None:
            rotation = torch.as_tensor(self.rotation)
            (shape,) = shapes
            d = 1
            for size in shape:
                d *= size
            if len(shape) != 1 or tuple(rotation.shape) != (d, d):
                raise DataError(
                    f"input blocks: a rotation needs flat inputs and shape (d, d) = ({d}, {d}); "
                    f"inputs have shape {shape}, the rotation {tuple(rotation.shape)}"
                )
            gram = rotation.double().T @ rotation.double()
            error = float((gram - torch.eye(d, dtype=torch.float64)).abs().max())
            if error > ORTHONORMAL_TOLERANCE:
                raise DataError(
                    f"input blocks: the rotation is not orthonormal (|WᵀW − I| reaches {error:.2g})"
                )
            object.__setattr__(self, "rotation", rotation)

    @classmethod
    def from_indices(
        cls,
        input_shape: Sequence[int],
        blocks: Mapping[str, Iterable[int] | slice],
        rotation: Tensor | None = None,
        simple: str | None = None,
        agreeing_groups: tuple[int, ...] | None = None,
    ) -> InputBlocks:
        """Blocks of flat inputs given by coordinate indices (or slices), e.g. ``{"simple": [0]}``.

        Raises:
            DataError: an index outside the input (the block and the index are named).
        """
        (d,) = tuple(input_shape)
        masks = {}
        for name, indices in blocks.items():
            mask = torch.zeros(d, dtype=torch.bool)
            chosen = range(d)[indices] if isinstance(indices, slice) else list(indices)
            bad = [
                i
                for i in chosen
                if isinstance(i, bool) or not isinstance(i, int) or not -d <= i < d
            ]
            if bad:
                raise DataError(
                    f"input block {name!r}: indices {shorten(bad)} lie outside the {d} "
                    f"coordinates of the input (0 to {d - 1})"
                )
            mask[list(chosen)] = True
            masks[name] = mask
        return cls(masks, rotation, simple, agreeing_groups)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input these blocks describe."""
        return tuple(next(iter(self.masks.values())).shape)

    def mask(self, name: str) -> Tensor:
        """The mask of block ``name``; an unknown name lists the blocks."""
        if name not in self.masks:
            raise DataError(
                f"no input block {name!r}{closest(name, self.names)}; this data's blocks: "
                f"{list(self.names)}"
            )
        return self.masks[name]

    def complement(self, name: str) -> Tensor:
        """Every entry outside block ``name`` (the paper's Sᶜ)."""
        return ~self.mask(name)

    def to_latent(self, x: Tensor) -> Tensor:
        """Inputs in latent coordinates (``x @ Wᵀ``; unchanged without a rotation)."""
        if self.rotation is None:
            return x
        return x @ self.rotation.to(x.dtype).T

    def from_latent(self, z: Tensor) -> Tensor:
        """Latent coordinates back to inputs (``z @ W``)."""
        if self.rotation is None:
            return z
        return z @ self.rotation.to(z.dtype)

    def check(self, input_shape: Sequence[int], what: str = "the data") -> None:
        """Raise unless these blocks describe inputs of ``input_shape``."""
        if tuple(input_shape) != self.input_shape:
            raise DataError(
                f"input blocks describe inputs of shape {self.input_shape}; {what} has inputs "
                f"of shape {tuple(input_shape)}"
            )


def randomize(x: Tensor, blocks: InputBlocks, mask: Tensor, permutation: Tensor) -> Tensor:
    """``x`` with the latent entries under ``mask`` taken from row ``permutation[i]``.

    One shared permutation for every entry of the mask (Shah et al., arXiv 2006.07710): each
    block keeps its joint distribution across its own entries and loses its link to the label
    and to the rest of the input. The rotation, if any, is undone first and redone after.
    """
    blocks.check(x.shape[1:])
    if permutation.shape != (len(x),):
        raise DataError(
            f"a permutation of the {len(x)} rows is needed; got {tuple(permutation.shape)}"
        )
    z = blocks.to_latent(x)
    shuffled = torch.where(mask.to(z.device), z[permutation.to(z.device)], z)
    return blocks.from_latent(shuffled)
