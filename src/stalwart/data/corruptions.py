"""Image corruptions at five severities, for evaluating models under synthetic shift.

In the spirit of ImageNet-C / CIFAR-10-C (Hendrycks & Dietterich, arXiv 1903.12261) and MNIST-C
(Mu & Gilmer, arXiv 1906.02337), sized for small images (28×28 MNIST, 8×8 digits) in [0, 1].
The parameters are our own choices, one table per corruption (``CORRUPTIONS.info(name)``):

================  ===========================  ===================================  ===========
corruption        parameter                    severity 1 … 5                       after
================  ===========================  ===================================  ===========
gaussian_noise    noise std                    0.08, 0.12, 0.18, 0.26, 0.38         ImageNet-C
shot_noise        photons per unit intensity   60, 25, 12, 5, 3                     ImageNet-C
blur              Gaussian sigma (pixels)      0.5, 0.8, 1.1, 1.5, 2.0              CIFAR-C ×28/32
contrast          contrast factor              0.4, 0.3, 0.2, 0.1, 0.05             ImageNet-C
brightness        added intensity              0.1, 0.2, 0.3, 0.4, 0.5              ImageNet-C
rotation          angle, degrees (± at random) 10, 20, 30, 45, 60                   MNIST-C
translation       shift, pixels (random dir.)  1, 2, 3, 4, 6                        MNIST-C
elastic           (alpha, sigma) in pixels     (10,4), (18,4), (26,4), (34,4), (45,4)  Simard 2003
pixelate          resolution kept (fraction)   0.8, 0.65, 0.5, 0.4, 0.3             ImageNet-C
jpeg              JPEG quality                 25, 18, 15, 10, 7                    ImageNet-C
================  ===========================  ===================================  ===========

Noise, rotation and translation are random per image; every corruption is deterministic given
``seed``. Geometric corruptions fill uncovered pixels with 0 (black, MNIST's background), as
MNIST-C does. Every output is clipped to [0, 1] and keeps its input's shape, dtype and type
(NumPy array or torch tensor). Images are ``(n, C, H, W)``; the whole set is processed at once
(JPEG and pixelate go through Pillow image by image, which still takes about a second for
10,000 MNIST images).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
from scipy import ndimage

from stalwart.errors import ConfigError, DataError
from stalwart.registry import Registry

SEVERITIES = (1, 2, 3, 4, 5)
ImagesT = TypeVar("ImagesT", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class SeverityTable:
    """What a corruption's parameter means and its value at severities 1 to 5."""

    parameter: str
    values: tuple[Any, ...]


CORRUPTIONS: Registry[np.ndarray] = Registry("corruption", info_type=SeverityTable)


def corrupt(images: ImagesT, name: str, severity: int, *, seed: int = 0) -> ImagesT:
    """Apply corruption ``name`` at ``severity`` (1–5) to ``(n, C, H, W)`` images in [0, 1].

    Raises:
        ConfigError: an unknown corruption or severity; the message lists the choices.
        DataError: images that are not 4-D.
    """
    apply = CORRUPTIONS.get(name)
    if isinstance(severity, bool) or severity not in SEVERITIES:
        raise ConfigError(
            f"corruption severity must be one of {list(SEVERITIES)}; got {severity!r}"
        )
    is_tensor = isinstance(images, torch.Tensor)
    array = images.detach().cpu().numpy() if is_tensor else np.asarray(images)
    if array.ndim != 4:
        raise DataError(
            f"corruption {name!r} needs images of shape (n, C, H, W); got shape {array.shape}"
        )
    value = CORRUPTIONS.info(name).values[severity - 1]
    out = apply(array.astype(np.float32), value, np.random.default_rng(seed))
    out = np.clip(out, 0.0, 1.0).astype(array.dtype, copy=False)
    if is_tensor:
        return torch.from_numpy(np.ascontiguousarray(out)).to(images.device)
    return out


# --- noise and photometric ----------------------------------------------------------------------


@CORRUPTIONS.register("gaussian_noise", SeverityTable("noise std", (0.08, 0.12, 0.18, 0.26, 0.38)))
def gaussian_noise(x: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    """Additive i.i.d. Gaussian noise (ImageNet-C's values; clipping halves it on black)."""
    return x + rng.normal(0.0, std, size=x.shape).astype(np.float32)


@CORRUPTIONS.register("shot_noise", SeverityTable("photons per unit intensity", (60, 25, 12, 5, 3)))
def shot_noise(x: np.ndarray, photons: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson (photon-count) noise: fewer photons, noisier image; black stays black."""
    return (rng.poisson(x * photons) / photons).astype(np.float32)


@CORRUPTIONS.register("blur", SeverityTable("Gaussian sigma, pixels", (0.5, 0.8, 1.1, 1.5, 2.0)))
def blur(x: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur within each channel (CIFAR-10-C's sigmas scaled to 28-pixel images)."""
    return ndimage.gaussian_filter(x, sigma=(0, 0, sigma, sigma), mode="nearest")


@CORRUPTIONS.register("contrast", SeverityTable("contrast factor", (0.4, 0.3, 0.2, 0.1, 0.05)))
def contrast(x: np.ndarray, factor: float, rng: np.random.Generator) -> np.ndarray:
    """Pull every pixel towards its image's mean intensity."""
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    return (x - mean) * factor + mean


@CORRUPTIONS.register("brightness", SeverityTable("added intensity", (0.1, 0.2, 0.3, 0.4, 0.5)))
def brightness(x: np.ndarray, shift: float, rng: np.random.Generator) -> np.ndarray:
    """Add a constant intensity (the grey-level form of ImageNet-C's HSV value shift)."""
    return x + np.float32(shift)


# --- geometric ----------------------------------------------------------------------------------

_WARP_CHUNK = 1024  # images per map_coordinates call: bounds the coordinate arrays' memory


def _warp(x: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sample each image at its own (rows, cols) grid, bilinearly, zeros outside.

    ``rows`` and ``cols`` are ``(n, H, W)`` source coordinates; every channel of an image is
    warped the same way. The image index is a third, integer coordinate, so one
    ``map_coordinates`` call serves a whole chunk of images.
    """
    n, channels, height, width = x.shape
    out = np.empty_like(x)
    for start in range(0, n, _WARP_CHUNK):
        stop = min(start + _WARP_CHUNK, n)
        which = np.broadcast_to(
            np.arange(stop - start, dtype=np.float32)[:, None, None], rows[start:stop].shape
        )
        coords = np.stack([which, rows[start:stop], cols[start:stop]])
        for c in range(channels):
            out[start:stop, c] = ndimage.map_coordinates(
                x[start:stop, c], coords, order=1, mode="constant", cval=0.0
            )
    return out


def _grid(n: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    rows, cols = np.meshgrid(
        np.arange(height, dtype=np.float32), np.arange(width, dtype=np.float32), indexing="ij"
    )
    rows = np.broadcast_to(rows, (n, height, width))
    cols = np.broadcast_to(cols, (n, height, width))
    return rows, cols, (height - 1) / 2.0, (width - 1) / 2.0


@CORRUPTIONS.register(
    "rotation", SeverityTable("angle in degrees, sign random", (10, 20, 30, 45, 60))
)
def rotation(x: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate each image about its centre by ±``degrees`` (MNIST-C rotates by random angles)."""
    n, _, height, width = x.shape
    angle = np.deg2rad(degrees) * rng.choice([-1.0, 1.0], size=n).astype(np.float32)
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    rows, cols, r0, c0 = _grid(n, height, width)
    # Output pixel p samples the input at R(-angle)·(p - centre) + centre.
    dr, dc = rows - r0, cols - c0
    return _warp(x, cos * dr - sin * dc + r0, sin * dr + cos * dc + c0)


@CORRUPTIONS.register(
    "translation", SeverityTable("shift in pixels, direction random", (1, 2, 3, 4, 6))
)
def translation(x: np.ndarray, pixels: float, rng: np.random.Generator) -> np.ndarray:
    """Shift each image by ``pixels`` in a random direction (bilinear between pixels)."""
    n, _, height, width = x.shape
    direction = rng.uniform(0.0, 2 * np.pi, size=n).astype(np.float32)
    rows, cols, _, _ = _grid(n, height, width)
    d_row = (pixels * np.sin(direction))[:, None, None]
    d_col = (pixels * np.cos(direction))[:, None, None]
    return _warp(x, rows - d_row, cols - d_col)


@CORRUPTIONS.register(
    "elastic",
    SeverityTable("(alpha, sigma) in pixels", ((10, 4), (18, 4), (26, 4), (34, 4), (45, 4))),
)
def elastic(
    x: np.ndarray, alpha_sigma: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """Elastic distortion (Simard et al. 2003): smoothed random displacements scaled by alpha.

    Simard et al. used alpha = 34, sigma = 4 on MNIST as a training augmentation; severity 4
    is that setting.
    """
    alpha, sigma = alpha_sigma
    n, _, height, width = x.shape
    rows, cols, _, _ = _grid(n, height, width)
    fields = rng.uniform(-1.0, 1.0, size=(2, n, height, width)).astype(np.float32)
    d_row, d_col = (
        alpha * ndimage.gaussian_filter(f, sigma=(0, sigma, sigma), mode="constant") for f in fields
    )
    return _warp(x, rows + d_row, cols + d_col)


# --- resampling and compression (Pillow, image by image) ----------------------------------------


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as error:  # Pillow comes with matplotlib, a dependency
        raise ConfigError(
            "the pixelate and jpeg corruptions need Pillow: pip install pillow"
        ) from error
    return Image


@CORRUPTIONS.register(
    "pixelate", SeverityTable("resolution kept, fraction", (0.8, 0.65, 0.5, 0.4, 0.3))
)
def pixelate(x: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Box-downsample to ``fraction`` of the size, then upsample with nearest neighbours."""
    image_type = _pillow()
    n, channels, height, width = x.shape
    small = (max(1, round(width * fraction)), max(1, round(height * fraction)))
    out = np.empty_like(x)
    for i in range(n):
        for c in range(channels):
            image = image_type.fromarray(x[i, c], mode="F")
            image = image.resize(small, image_type.Resampling.BOX)
            out[i, c] = np.asarray(image.resize((width, height), image_type.Resampling.NEAREST))
    return out


@CORRUPTIONS.register("jpeg", SeverityTable("JPEG quality", (25, 18, 15, 10, 7)))
def jpeg(x: np.ndarray, quality: int, rng: np.random.Generator) -> np.ndarray:
    """Encode as JPEG at ``quality`` and decode (grey level per channel, RGB for 3 channels)."""
    image_type = _pillow()
    n, channels, _, _ = x.shape
    as_bytes = np.round(x * 255.0).astype(np.uint8)
    out = np.empty_like(x)

    def round_trip(array: np.ndarray) -> np.ndarray:
        buffer = io.BytesIO()
        image_type.fromarray(array).save(buffer, format="JPEG", quality=quality)
        return np.asarray(image_type.open(buffer), dtype=np.float32) / 255.0

    for i in range(n):
        if channels == 3:  # colour JPEG, with its chroma subsampling
            out[i] = round_trip(np.ascontiguousarray(as_bytes[i].transpose(1, 2, 0))).transpose(
                2, 0, 1
            )
        else:
            for c in range(channels):
                out[i, c] = round_trip(as_bytes[i, c])
    return out
