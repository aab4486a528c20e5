"""Data sources, one file per family; importing this package registers them all."""

from stalwart.data.sources import (  # noqa: F401
    celeba,
    civilcomments,
    gaussian_shift,
    images,
    multinli,
    sklearn_bundled,
    slabs,
    synthetic,
    tabular,
    waterbirds,
)
