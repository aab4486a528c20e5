"""Reader for the IDX format of MNIST and Fashion-MNIST (optionally gzipped).

Format (LeCun et al.): two zero bytes, a type code (0x08 = unsigned byte), the number of
dimensions, then one big-endian int32 per dimension, then the data.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from stalwart.errors import DataError


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file of unsigned bytes into an array of its declared shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise DataError(f"cannot read IDX file {path}: {error}; replace the file") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (bad header)")
    n_dims = raw[3]
    header = 4 + 4 * n_dims
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(n_dims))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise DataError(
            f"{path} declares shape {shape} ({expected} bytes) but holds {len(raw) - header}; "
            "the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def find_idx(folder: Path, stem: str) -> Path | None:
    """Find ``stem`` in ``folder`` under its usual spellings (``.gz`` or not, ``-`` or ``.``)."""
    names = [stem, stem.replace("-idx", ".idx")]
    for name in names:
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.exists():
                return candidate
    return None
