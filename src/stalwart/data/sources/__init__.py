"""Data sources, one file per family; importing this package registers them all."""

from stalwart.data.sources import images, sklearn_bundled, synthetic  # noqa: F401
