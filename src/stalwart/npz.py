"""Reading ``.npz`` archives that users hand us: named arrays only, never a pickle.

A leaf (numpy and ``stalwart.errors`` only), so light readers such as
``stalwart.shift.inherit`` can use it without loading torch.
"""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from stalwart.errors import DataError, DataMissingError


def read_npz(path: Path, what: str, remedy: str) -> dict[str, np.ndarray]:
    """Every named array of the ``.npz`` file ``path``, read with ``allow_pickle=False``.

    Args:
        path: the file.
        what: what the file should be, for messages (``"failures file"``).
        remedy: what the user should do about a damaged file.

    Raises:
        DataMissingError: ``path`` does not exist.
        DataError: ``path`` is a folder, a lone ``.npy`` array, a pickle, or damaged; the
            message names it and says ``remedy``.
    """
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            # np.load also reads a lone .npy array, which has no named arrays to look up.
            raise ValueError("it holds one array (.npy), not named arrays (.npz)")
        with archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise DataMissingError(f"{path} does not exist") from None
    except IsADirectoryError:
        raise DataError(f"{path} is a folder, not a {what}") from None
    # Object arrays (pickles) are refused by allow_pickle=False with a ValueError; a damaged
    # compressed member fails only when read, with zlib's own error.
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise DataError(f"{path} is not a readable {what} ({error}); {remedy}") from None
