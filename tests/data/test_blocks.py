"""Input blocks: masks, the rotation, and randomizing a block across rows (arXiv 2006.07710)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stalwart.data.blocks import InputBlocks, randomize
from stalwart.data.core import GroupedDataset
from stalwart.data.sources.slabs import orthonormal
from stalwart.errors import DataError


def rotation(d=6, seed=0):
    return torch.from_numpy(orthonormal(d, np.random.default_rng(seed)))


def test_randomizing_a_block_permutes_its_latent_entries_only():
    w = rotation()
    blocks = InputBlocks.from_indices((6,), {"simple": [0], "rest": slice(1, 6)}, w, "simple")
    z = torch.randn(50, 6, dtype=torch.float64)
    x = z @ w
    permutation = torch.randperm(50, generator=torch.Generator().manual_seed(1))
    shuffled = blocks.to_latent(randomize(x, blocks, blocks.mask("simple"), permutation))
    torch.testing.assert_close(shuffled[:, 0], z[permutation, 0])
    torch.testing.assert_close(shuffled[:, 1:], z[:, 1:])
    # The complement keeps the simple coordinate and permutes the rest with one permutation.
    other = blocks.to_latent(randomize(x, blocks, blocks.complement("simple"), permutation))
    torch.testing.assert_close(other[:, 0], z[:, 0])
    torch.testing.assert_close(other[:, 1:], z[permutation, 1:])


def test_image_blocks_paste_regions_from_other_images():
    top = torch.zeros(1, 4, 2, dtype=torch.bool)
    top[:, :2] = True
    blocks = InputBlocks({"top": top, "bottom": ~top})
    x = torch.arange(3 * 8, dtype=torch.float32).reshape(3, 1, 4, 2)
    permutation = torch.tensor([2, 0, 1])
    out = randomize(x, blocks, blocks.mask("top"), permutation)
    torch.testing.assert_close(out[:, :, :2], x[permutation, :, :2])
    torch.testing.assert_close(out[:, :, 2:], x[:, :, 2:])


def test_datasets_carry_their_blocks_through_subsets():
    blocks = InputBlocks.from_indices((3,), {"a": [0], "b": [1, 2]})
    data = GroupedDataset(torch.zeros(4, 3), torch.tensor([0, 1, 0, 1]), torch.tensor([0, 1, 0, 1]),
                          n_classes=2, group_names=["g0", "g1"], blocks=blocks)  # fmt: skip
    assert data.subset([1, 2]).blocks is blocks
    with pytest.raises(DataError, match=r"blocks describe inputs of shape \(3,\).*shape \(5,\)"):
        GroupedDataset(torch.zeros(4, 5), torch.zeros(4), torch.zeros(4), n_classes=2,
                       group_names=["g"], blocks=blocks)  # fmt: skip


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: InputBlocks.from_indices((5,), {"s": [0, 5]}), r"'s': indices \[5\] lie outside"),
        (lambda: InputBlocks.from_indices((5,), {"s": []}), "'s' selects no entry"),
        (lambda: InputBlocks({}), "at least one named block"),
        (lambda: InputBlocks.from_indices((3,), {"s": [0]}, torch.ones(3, 3)), "not orthonormal"),
        (lambda: InputBlocks.from_indices((3,), {"s": [0]}, torch.eye(4)), r"shape \(d, d\)"),
        (lambda: InputBlocks.from_indices((3,), {"s": [0]}, simple="x"), "simple block 'x'"),
    ],
)
def test_bad_blocks_are_explained(build, message):
    with pytest.raises(DataError, match=message):
        build()


def test_an_unknown_block_lists_the_blocks():
    blocks = InputBlocks.from_indices((3,), {"simple": [0], "complex": [1, 2]})
    with pytest.raises(DataError, match=r"no input block 'simpel' \(did you mean 'simple'\?\)"):
        blocks.mask("simpel")
