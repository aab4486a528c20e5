"""ODDS outlier-detection benchmark files (Rayana, 2016, odds.cs.stonybrook.edu), read from disk.

Each ``.mat`` file holds ``X`` (n × d features) and ``y`` (n × 1, 1 = outlier, 0 = inlier). The
files cannot ship with stalwart: they are read from a folder, the one passed as ``folder``, else
``$STALWART_ODDS``, else ``$STALWART_DATA/odds``. Copies come from the ODDS site or from PyOD's
``notebooks/data`` folder (https://github.com/yzhao062/pyod). DROCC (Goyal et al., ICML 2020,
arXiv 2002.12718) evaluates on several of them, e.g. arrhythmia.

Reading is strict: every way a file can be unusable (not a MATLAB file, MATLAB v7.3, missing or
malformed ``X``/``y``, labels other than 0/1, NaN or infinite features, a single class) raises
an error that names the file and what is wrong with it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse

from stalwart.data.storage import check_data_home
from stalwart.errors import DataError, DataMissingError, closest

ODDS_ENV = "STALWART_ODDS"
WHERE_TO_GET = (
    "ODDS files come from http://odds.cs.stonybrook.edu or from PyOD's notebooks/data folder "
    "(https://github.com/yzhao062/pyod/tree/master/notebooks/data)"
)
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def odds_folder(folder: str | Path | None = None) -> Path:
    """The folder holding the ODDS ``.mat`` files.

    Args:
        folder: the folder to use; default ``$STALWART_ODDS``, else ``$STALWART_DATA/odds``.

    Raises:
        DataMissingError: the folder does not exist (the message names both ways to point at
            one, and where to get the files).
        DataError: ``$STALWART_DATA`` is a file (only when neither ``folder`` nor
            ``$STALWART_ODDS`` is given).
    """
    if folder is not None:
        path, how = Path(folder).expanduser(), "the folder passed"
    elif os.environ.get(ODDS_ENV):
        path, how = Path(os.environ[ODDS_ENV]).expanduser(), f"${ODDS_ENV}"
    else:
        path, how = check_data_home() / "odds", "the default $STALWART_DATA/odds"
    if not path.is_dir():
        state = "is a file, not a folder" if path.exists() else "does not exist"
        raise DataMissingError(
            f"no ODDS folder: {path} ({how}) {state}. Pass folder='<folder>' or set "
            f"{ODDS_ENV}=<folder> to point at the folder holding the .mat files, or put them "
            f"in $STALWART_DATA/odds. {WHERE_TO_GET}"
        )
    return path


def odds_names(folder: str | Path | None = None) -> list[str]:
    """The sorted names (file stems) of the ``.mat`` files in the ODDS folder."""
    home = odds_folder(folder)
    return sorted(p.stem for p in home.iterdir() if p.suffix.lower() == ".mat" and p.is_file())


def odds_path(name: str | Path, folder: str | Path | None = None) -> Path:
    """The file for ``name``: a stem such as ``"arrhythmia"`` looked up in the folder, or a path.

    A ``name`` that ends in ``.mat`` or holds a folder separator is taken as a path.

    Raises:
        DataMissingError: the path, or the folder, does not exist, or the folder has no file of
            that name (the message lists the names it has, suggesting the closest).
    """
    candidate = Path(name).expanduser()
    if candidate.suffix.lower() == ".mat" or len(candidate.parts) > 1:
        if not candidate.is_file():
            raise _missing_file(candidate)
        return candidate
    home = odds_folder(folder)
    path = home / f"{name}.mat"
    if path.is_file():
        return path
    names = odds_names(home)
    available = f"it has {names}" if names else "it holds no .mat files"
    raise DataMissingError(
        f"no ODDS file named {str(name)!r} in {home}{closest(str(name), names)}; {available}. "
        f"{WHERE_TO_GET}"
    )


def read_odds(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an ODDS ``.mat`` file.

    Args:
        path: the ``.mat`` file (MATLAB v4–v7; v7.3 files are HDF5 and are refused).

    Returns:
        ``(X, y)``: features as float32 (n, d) and labels as int64 (n,), 1 = anomaly.

    Raises:
        DataMissingError: the file does not exist.
        DataError: the file is not a readable MATLAB file, or lacks ``X`` or ``y``, or they are
            malformed: ``X`` not a 2-D numeric matrix, ``y`` not a vector of 0/1, row counts
            that differ, NaN or infinite features, or a single class.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise _missing_file(path)
    if not path.is_file():
        raise DataError(f"{path} is a folder, not an ODDS .mat file; pass the file inside it")
    contents = _load_mat(path)
    found = sorted(k for k in contents if not k.startswith("__"))
    for key in ("X", "y"):
        if key not in contents:
            # difflib finds nothing close to a one-letter name, so look for its other case too.
            other_case = [k for k in found if k.lower() == key.lower()]
            hint = f" (did you mean {other_case[0]!r}?)" if other_case else closest(key, found)
            raise DataError(
                f"{path} has no variable {key!r}{hint}; it holds {found}. An ODDS "
                "file holds X (n × d features) and y (n × 1 labels, 1 = outlier)"
            )
    features = _features(contents["X"], path)
    labels = _labels(contents["y"], path)
    if len(features) != len(labels):
        raise DataError(
            f"{path}: X has {len(features)} rows but y has {len(labels)} labels; they must "
            "describe the same examples"
        )
    _check_finite(features, path)
    n_anomalies = int(labels.sum())
    if n_anomalies == 0 or n_anomalies == len(labels):
        missing = "no anomalies (y = 1)" if n_anomalies == 0 else "no normals (y = 0)"
        raise DataError(
            f"{path} has {missing} among its {len(labels)} examples; anomaly detection needs "
            "both classes to be evaluated"
        )
    return features, labels


def _missing_file(path: Path) -> DataMissingError:
    return DataMissingError(f"ODDS file {path} does not exist. {WHERE_TO_GET}")


def _load_mat(path: Path) -> dict:
    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError as error:
        if "v7.3" not in str(error):
            raise DataError(f"{path}: scipy cannot read this MATLAB file ({error})") from None
        raise DataError(_hdf5_message(path)) from None
    # A corrupt file makes scipy's reader fail in many ways (zlib, OSError, ValueError,
    # IndexError, TypeError, even UnboundLocalError): any failure here is the file's.
    except Exception as error:
        if _is_hdf5(path):
            raise DataError(_hdf5_message(path)) from None
        raise DataError(
            f"{path} is not a readable MATLAB .mat file ({type(error).__name__}: {error}); it "
            f"may be corrupt or truncated, or another format. {WHERE_TO_GET}"
        ) from None


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as handle:
        start = handle.read(520)
    return start[:8] == _HDF5_SIGNATURE or start[512:520] == _HDF5_SIGNATURE


def _hdf5_message(path: Path) -> str:
    return (
        f"{path} is a MATLAB v7.3 (HDF5) file, which scipy.io.loadmat cannot read; save it "
        "again in MATLAB with save(file, 'X', 'y', '-v7'), or read it with h5py and write it "
        "with scipy.io.savemat"
    )


def _features(matrix: object, path: Path) -> np.ndarray:
    if scipy.sparse.issparse(matrix):
        matrix = matrix.toarray()
    array = np.asarray(matrix)
    if array.dtype.kind not in "biuf" or array.ndim != 2 or array.shape[1] == 0:
        raise DataError(
            f"{path}: X must be a 2-D numeric matrix (n examples × d features); it is "
            f"{array.ndim}-D of shape {array.shape} and dtype {array.dtype}"
        )
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported below
        return array.astype(np.float32)


def _labels(vector: object, path: Path) -> np.ndarray:
    if scipy.sparse.issparse(vector):
        vector = vector.toarray()
    array = np.asarray(vector)
    # MATLAB has no 1-D arrays: y is stored as a column (n × 1), sometimes as a row (1 × n).
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1 or array.dtype.kind not in "biuf":
        raise DataError(
            f"{path}: y must be a numeric vector (n × 1) of 0/1 labels; it is {array.ndim}-D of "
            f"shape {array.shape} and dtype {array.dtype}"
        )
    bad = ~np.isin(array, (0, 1))
    if bad.any():
        values = sorted({str(v) for v in np.unique(array[bad])[:5]})
        raise DataError(
            f"{path}: y must hold only 0 (normal) and 1 (anomaly); found {values} in "
            f"{int(bad.sum())} rows, first at row {int(np.flatnonzero(bad)[0])}"
        )
    return array.astype(np.int64)


def _check_finite(features: np.ndarray, path: Path) -> None:
    # Checked after the cast to float32, so values too large for float32 count as infinite.
    bad_rows = ~np.isfinite(features).all(axis=1)
    if bad_rows.any():
        raise DataError(
            f"{path}: X has NaN or infinite values (or values too large for float32) in "
            f"{int(bad_rows.sum())} of {len(features)} rows, first at row "
            f"{int(np.flatnonzero(bad_rows)[0])}; drop or impute those rows first"
        )
