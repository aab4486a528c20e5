"""The ODDS reader: the real benchmark files, and one malformed file per error it reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse

from stalwart.data.sources.odds import odds_folder, odds_names, odds_path, read_odds
from stalwart.errors import DataError, DataMissingError

# The shared benchmark files sit beside the repository, never inside it.
ODDS_FOLDER = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "odds"
needs_odds = pytest.mark.skipif(
    not ODDS_FOLDER.is_dir(), reason=f"the shared ODDS files are not at {ODDS_FOLDER}"
)

ODDS_FILES = sorted(p.stem for p in ODDS_FOLDER.glob("*.mat")) if ODDS_FOLDER.is_dir() else []
EXPECTED_NAMES = [
    "arrhythmia", "cardio", "glass", "ionosphere", "letter", "lympho", "mnist", "musk",
    "optdigits", "pendigits", "pima", "satellite", "satimage-2", "shuttle", "vertebral",
    "vowels", "wbc",
]  # fmt: skip


def write_mat(tmp_path, name="bad", **variables):
    path = tmp_path / f"{name}.mat"
    scipy.io.savemat(path, variables)
    return path


def good_xy(n=10, d=3):
    X = np.arange(n * d, dtype=np.float64).reshape(n, d)
    y = np.zeros((n, 1), dtype=np.uint8)
    y[:2] = 1
    return X, y


@needs_odds
def test_arrhythmia_shape_and_anomalies():
    X, y = read_odds(ODDS_FOLDER / "arrhythmia.mat")
    assert X.shape == (452, 274) and X.dtype == np.float32
    assert y.shape == (452,) and y.dtype == np.int64
    assert int(y.sum()) == 66


@needs_odds
def test_the_folder_holds_the_seventeen_files():
    assert odds_names(ODDS_FOLDER) == EXPECTED_NAMES


@needs_odds
@pytest.mark.parametrize("name", ODDS_FILES or EXPECTED_NAMES)
def test_every_file_reads(name):
    X, y = read_odds(odds_path(name, ODDS_FOLDER))
    raw = scipy.io.loadmat(ODDS_FOLDER / f"{name}.mat")
    assert X.shape == raw["X"].shape and X.dtype == np.float32
    assert y.shape == (len(X),) and y.dtype == np.int64
    assert set(np.unique(y).tolist()) == {0, 1}
    assert np.isfinite(X).all()
    assert np.array_equal(y, raw["y"].reshape(-1).astype(np.int64))
    assert np.allclose(X, raw["X"].astype(np.float64), rtol=1e-6)


def test_a_good_file_reads(tmp_path):
    X, y = good_xy()
    features, labels = read_odds(write_mat(tmp_path, X=X, y=y))
    assert np.array_equal(features, X.astype(np.float32))
    assert labels.tolist() == [1, 1] + [0] * 8


def test_labels_stored_as_a_row_and_sparse_features_read(tmp_path):
    X, y = good_xy()
    path = write_mat(tmp_path, X=scipy.sparse.csc_matrix(X), y=y.reshape(1, -1).astype(float))
    features, labels = read_odds(path)
    assert np.array_equal(features, X.astype(np.float32))
    assert labels.dtype == np.int64 and labels.tolist() == [1, 1] + [0] * 8


def test_missing_file_names_it_and_where_to_get_files(tmp_path):
    path = tmp_path / "thyroid.mat"
    with pytest.raises(DataMissingError, match="thyroid.mat does not exist") as error:
        read_odds(path)
    assert "odds.cs.stonybrook.edu" in str(error.value)
    assert "pyod" in str(error.value) and "notebooks/data" in str(error.value)


def test_a_folder_is_not_a_file(tmp_path):
    with pytest.raises(DataError, match="is a folder"):
        read_odds(tmp_path)


def test_not_a_matlab_file(tmp_path):
    path = tmp_path / "notes.mat"
    path.write_text("X,y\n1,0\n2,1\n")
    with pytest.raises(DataError, match=r"notes\.mat is not a readable MATLAB \.mat file"):
        read_odds(path)


@pytest.mark.parametrize("keep", [100, 200, 50_000])
def test_truncated_file_is_reported_as_corrupt(tmp_path, keep):
    X, y = good_xy(n=2000, d=10)
    whole = write_mat(tmp_path, "whole", X=X, y=y).read_bytes()
    path = tmp_path / "cut.mat"
    path.write_bytes(whole[:keep])
    with pytest.raises(
        DataError, match=r"cut\.mat is not a readable MATLAB .*corrupt or truncated"
    ):
        read_odds(path)


def test_matlab_v73_file_is_named_as_hdf5(tmp_path):
    # The 128-byte header MATLAB writes before the HDF5 data of a v7.3 file.
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116) + bytes(8) + b"\x00\x02IM"
    path = tmp_path / "big.mat"
    path.write_bytes(header + bytes(384) + b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(DataError, match=r"big\.mat is a MATLAB v7\.3 \(HDF5\) file"):
        read_odds(path)


def test_plain_hdf5_file_is_named_as_hdf5(tmp_path):
    path = tmp_path / "data.mat"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(600))
    with pytest.raises(DataError, match=r"v7\.3 \(HDF5\)"):
        read_odds(path)


def test_missing_x_lists_the_keys_found(tmp_path):
    X, y = good_xy()
    path = write_mat(tmp_path, x=X, y=y, labels=y)
    match = r"no variable 'X' \(did you mean 'x'\?\); it holds \['labels', 'x', 'y'\]"
    with pytest.raises(DataError, match=match):
        read_odds(path)


def test_missing_y_lists_the_keys_found(tmp_path):
    X, _ = good_xy()
    with pytest.raises(DataError, match=r"no variable 'y'.*it holds \['X'\]"):
        read_odds(write_mat(tmp_path, X=X))


@pytest.mark.parametrize(
    "features, described",
    [
        (np.zeros((4, 3, 2)), "3-D"),
        (np.array(["abc", "def"]), "dtype <U3"),
        (np.array([[1 + 2j, 3j]] * 10), "complex"),
        (np.zeros((10, 0)), r"shape \(10, 0\)"),
    ],
)
def test_x_must_be_a_2d_numeric_matrix(tmp_path, features, described):
    _, y = good_xy()
    with pytest.raises(DataError, match=f"X must be a 2-D numeric matrix.*{described}"):
        read_odds(write_mat(tmp_path, X=features, y=y))


@pytest.mark.parametrize(
    "labels, found",
    [
        ([0, 1, 2, 0, 0, 0, 0, 0, 0, 2], r"\['2'\] in 2 rows, first at row 2"),
        ([0, 1, 0.5, 0, 0, 0, 0, 0, 0, 0], r"\['0.5'\] in 1 rows"),
        ([0, 1, np.nan, 0, 0, 0, 0, 0, 0, 0], r"\['nan'\]"),
        ([-1, 1, 0, 0, 0, 0, 0, 0, 0, 0], r"\['-1'\]"),
    ],
)
def test_labels_other_than_0_and_1(tmp_path, labels, found):
    X, _ = good_xy()
    path = write_mat(tmp_path, X=X, y=np.array(labels).reshape(-1, 1))
    with pytest.raises(DataError, match=f"y must hold only 0 .* and 1 .*; found {found}"):
        read_odds(path)


def test_labels_must_be_a_vector(tmp_path):
    X, y = good_xy()
    with pytest.raises(DataError, match=r"y must be a numeric vector.*shape \(10, 2\)"):
        read_odds(write_mat(tmp_path, X=X, y=np.hstack([y, y])))


def test_row_counts_must_agree(tmp_path):
    X, y = good_xy()
    with pytest.raises(DataError, match="X has 10 rows but y has 9 labels"):
        read_odds(write_mat(tmp_path, X=X, y=y[:9]))


def test_nan_and_infinite_features_count_rows(tmp_path):
    X, y = good_xy()
    X[3, 0], X[3, 2], X[5, 1], X[8, 0] = np.nan, np.inf, -np.inf, 1e300  # 1e300 overflows float32
    with pytest.raises(
        DataError, match="NaN or infinite values .* in 3 of 10 rows, first at row 3"
    ):
        read_odds(write_mat(tmp_path, X=X, y=y))


@pytest.mark.parametrize("value, missing", [(0, "no anomalies"), (1, "no normals")])
def test_both_classes_needed(tmp_path, value, missing):
    X, _ = good_xy()
    with pytest.raises(DataError, match=f"has {missing}"):
        read_odds(write_mat(tmp_path, X=X, y=np.full((10, 1), value)))


def test_odds_folder_prefers_the_argument_then_the_variable_then_the_data_folder(
    tmp_path, monkeypatch
):
    given, variable, home = tmp_path / "given", tmp_path / "variable", tmp_path / "home"
    for folder in (given, variable, home / "odds"):
        folder.mkdir(parents=True)
    monkeypatch.setenv("STALWART_DATA", str(home))
    monkeypatch.setenv("STALWART_ODDS", str(variable))
    assert odds_folder(given) == given
    assert odds_folder() == variable
    monkeypatch.delenv("STALWART_ODDS")
    assert odds_folder() == home / "odds"


def test_missing_folder_names_both_ways_to_point_at_one(tmp_path, monkeypatch):
    monkeypatch.setenv("STALWART_DATA", str(tmp_path / "home"))
    monkeypatch.delenv("STALWART_ODDS", raising=False)
    with pytest.raises(DataMissingError, match="home/odds") as error:
        odds_folder()
    message = str(error.value)
    assert "folder=" in message and "STALWART_ODDS" in message and "$STALWART_DATA/odds" in message
    with pytest.raises(DataMissingError, match="elsewhere .*does not exist"):
        odds_folder(tmp_path / "elsewhere")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(DataMissingError, match="is a file, not a folder"):
        odds_folder(tmp_path / "a_file")


def test_names_are_sorted_stems_of_mat_files_only(tmp_path):
    X, y = good_xy()
    for name in ("zeta", "alpha", "Mid"):
        write_mat(tmp_path, name, X=X, y=y)
    (tmp_path / "README.md").write_text("not data")
    (tmp_path / "sub.mat").mkdir()
    assert odds_names(tmp_path) == ["Mid", "alpha", "zeta"]


def test_odds_path_takes_a_stem_or_a_path(tmp_path):
    X, y = good_xy()
    path = write_mat(tmp_path, "alpha", X=X, y=y)
    assert odds_path("alpha", tmp_path) == path
    assert odds_path(str(path)) == path
    assert odds_path(path) == path
    with pytest.raises(DataMissingError, match="beta.mat does not exist"):
        odds_path(tmp_path / "beta.mat")


def test_unknown_name_lists_the_names_and_the_closest(tmp_path):
    X, y = good_xy()
    for name in ("arrhythmia", "cardio"):
        write_mat(tmp_path, name, X=X, y=y)
    match = r"no ODDS file named 'arythmia' .*did you mean 'arrhythmia'.*\['arrhythmia', 'cardio'\]"
    with pytest.raises(DataMissingError, match=match):
        odds_path("arythmia", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataMissingError, match="holds no .mat files"):
        odds_path("arrhythmia", tmp_path / "empty")
