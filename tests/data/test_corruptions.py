"""Image corruptions: shape, range, dtype, determinism, monotone severity, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stalwart.data.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from stalwart.errors import ConfigError, DataError

EXPECTED = {
    "gaussian_noise", "shot_noise", "blur", "contrast", "brightness",
    "rotation", "translation", "elastic", "pixelate", "jpeg",
}  # fmt: skip
NAMES = CORRUPTIONS.names()


def strokes(n: int = 24, channels: int = 1, size: int = 28, seed: int = 0) -> np.ndarray:
    """Digit-like images: smoothed random strokes on black, off-centre so shifts matter."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, channels, size, size), dtype=np.float32)
    for i in range(n):
        r, c = rng.integers(6, size - 8, size=2)
        x[i, :, r : r + 10, c : c + 2] = 1.0
        x[i, :, r : r + 2, c : c + 7] = 0.8
    return x


@pytest.fixture(scope="module")
def digits_like() -> np.ndarray:
    """MNIST test images where installed (the real case), else synthetic strokes."""
    try:
        from stalwart.data.sources.images import mnist_images

        return (mnist_images().test_x[:300].astype(np.float32) / 255.0)[:, None]
    except Exception:  # noqa: BLE001  (the package is optional for these properties)
        return strokes(300)


def test_the_registry_holds_exactly_the_ten_corruptions_with_five_severities():
    assert set(NAMES) == EXPECTED
    for name in NAMES:
        assert len(CORRUPTIONS.info(name).values) == len(SEVERITIES) == 5


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [1, 3])
def test_shape_range_dtype_and_type_are_kept(name, channels):
    x = strokes(6, channels)
    for severity in SEVERITIES:
        out = corrupt(x, name, severity, seed=1)
        assert out.shape == x.shape and out.dtype == x.dtype and isinstance(out, np.ndarray)
        assert out.min() >= 0.0 and out.max() <= 1.0
        assert not np.array_equal(out, x), (name, severity)
    tensor = torch.from_numpy(x).double()
    out = corrupt(tensor, name, 3, seed=1)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64 and out.shape == x.shape


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_given_the_seed(name):
    x = strokes(8)
    a, b = corrupt(x, name, 4, seed=7), corrupt(x, name, 4, seed=7)
    np.testing.assert_array_equal(a, b)
    if name in {"gaussian_noise", "shot_noise", "rotation", "translation", "elastic"}:
        assert not np.array_equal(a, corrupt(x, name, 4, seed=8)), "the seed is ignored"


@pytest.mark.parametrize("name", NAMES)
def test_damage_grows_with_severity(name, digits_like):
    change = [
        float(np.abs(corrupt(digits_like, name, s, seed=0) - digits_like).mean())
        for s in SEVERITIES
    ]
    assert all(a < b for a, b in zip(change, change[1:], strict=False)), change
    assert change[0] > 1e-3, change


def test_channels_of_an_image_move_together():
    x = np.repeat(strokes(4), 2, axis=1)
    for name in ("rotation", "translation", "elastic"):
        out = corrupt(x, name, 5, seed=3)
        np.testing.assert_array_equal(out[:, 0], out[:, 1])


def test_wrong_name_lists_the_choices():
    with pytest.raises(ConfigError) as error:
        corrupt(strokes(2), "gausian_noise", 1)
    message = str(error.value)
    assert "did you mean 'gaussian_noise'" in message
    for name in NAMES:
        assert name in message


@pytest.mark.parametrize("severity", [0, 6, 2.5, True])
def test_wrong_severity_lists_the_choices(severity):
    with pytest.raises(ConfigError, match=r"\[1, 2, 3, 4, 5\]"):
        corrupt(strokes(2), "blur", severity)


def test_images_must_be_four_dimensional():
    with pytest.raises(DataError, match=r"\(n, C, H, W\)"):
        corrupt(np.zeros((2, 28, 28), np.float32), "blur", 1)
