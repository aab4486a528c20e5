"""The testbed's folder format: outputs and labels written, read back, and damage reported."""

from __future__ import annotations

import io

import numpy as np
import pytest

from stalwart.errors import DataError, DataMissingError
from stalwart.shift import testbed_io
from stalwart.shift.outputs import Outputs
from stalwart.shift.predictors import ModelPool
from stalwart.shift.testbed_io import is_finished, read_outputs, write_labels, write_outputs

# testbed_io.Testbed, not imported by name: pytest would try to collect a module-level class
# whose name starts with "Test" as a class of tests.

SETS = {"val": 300, "test": 400, "noise": 350}
CLASSES = 4


def probabilities(rng, labels, skill):
    """Softmax-like rows that put most mass on the label for a ``skill`` fraction of examples."""
    n = len(labels)
    p = rng.dirichlet(np.ones(CLASSES), size=n)
    hit = rng.random(n) < skill
    wrong = (labels + rng.integers(1, CLASSES, size=n)) % CLASSES
    target = np.where(hit, labels, wrong)
    p[np.arange(n), target] += 3.0  # the argmax is `target`
    return p / p.sum(axis=1, keepdims=True)


def build_testbed(root, models=("mlp-0", "cnn-1", "rf-2"), seed=0):
    """A testbed folder: labels of every set, and random outputs of each model."""
    rng = np.random.default_rng(seed)
    labels = {name: rng.integers(0, CLASSES, size=n) for name, n in SETS.items()}
    write_labels(root, labels)
    written = {}
    for k, model in enumerate(models):
        skill = 0.5 + 0.4 * k / max(1, len(models) - 1)
        outputs = {
            name: Outputs.from_probabilities(probabilities(rng, y, skill))
            for name, y in labels.items()
        }
        write_outputs(root / "models" / model, outputs, {"family": model.split("-")[0], "k": k})
        written[model] = outputs
    return labels, written


def test_outputs_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    outputs = {
        "test": Outputs.from_probabilities(rng.dirichlet(np.ones(3), size=50)),
        "shift.severity.3": Outputs.from_probabilities(rng.dirichlet(np.ones(3), size=20)),
    }
    write_outputs(tmp_path / "m", outputs, {"family": "mlp"})
    assert is_finished(tmp_path / "m")
    back = read_outputs(tmp_path / "m")
    assert sorted(back) == sorted(outputs)  # a set name with dots survives
    for name, out in outputs.items():
        for field in ("predictions", "confidence", "negative_entropy"):
            np.testing.assert_array_equal(getattr(back[name], field), getattr(out, field))
            assert getattr(back[name], field).dtype == getattr(out, field).dtype


def test_testbed_reads_models_sets_accuracies_and_pools(tmp_path):
    labels, written = build_testbed(tmp_path)
    testbed = testbed_io.Testbed(tmp_path)
    assert testbed.models == ["cnn-1", "mlp-0", "rf-2"]  # sorted by folder name
    assert testbed.sets == list(SETS)
    assert testbed.info("rf-2") == {"family": "rf", "k": 2}
    for name, y in labels.items():
        np.testing.assert_array_equal(testbed.labels[name], y)

    frame = testbed.accuracies()
    assert list(frame.columns) == list(SETS) and list(frame.index) == testbed.models
    assert frame.index.name == "model"
    for model, outputs in written.items():
        for name, y in labels.items():
            expected = float((outputs[name].predictions == y).mean())
            assert frame.loc[model, name] == pytest.approx(expected, abs=1e-12)
    # The models differ in skill, so the accuracies do too (a line can be fitted).
    assert frame["test"].nunique() == 3

    pool = testbed.pool("val", "noise")
    assert isinstance(pool, ModelPool)
    assert list(pool.names) == testbed.models
    np.testing.assert_array_equal(pool.id_labels, labels["val"])
    for k, model in enumerate(pool.names):
        np.testing.assert_array_equal(
            pool.id_outputs[k].predictions, written[model]["val"].predictions
        )
        np.testing.assert_array_equal(
            pool.ood_outputs[k].predictions, written[model]["noise"].predictions
        )


def test_an_unfinished_model_is_left_out(tmp_path):
    build_testbed(tmp_path)
    # Evaluation stopped between model.json and outputs.npz: the model is not finished.
    unfinished = tmp_path / "models" / "aaa-unfinished"
    unfinished.mkdir()
    (unfinished / "model.json").write_text('{"family": "mlp"}')
    testbed = testbed_io.Testbed(tmp_path)
    assert "aaa-unfinished" not in testbed.models
    assert len(testbed.accuracies()) == 3


def corruptions(raw: bytes):
    """Damaged copies of a valid outputs.npz: cut short, emptied, bytes flipped all along."""
    yield "truncated", raw[: len(raw) // 2]
    yield "empty", b""
    yield "text", b"not an archive\n" * 10
    buffer = io.BytesIO()
    np.save(buffer, np.arange(3))
    yield "a lone .npy array", buffer.getvalue()
    for at in range(0, len(raw), max(1, len(raw) // 60)):
        # Flips inside a compressed member fail only when that member is decompressed.
        yield f"byte {at} flipped", raw[:at] + bytes([raw[at] ^ 0x55]) + raw[at + 1 :]


def test_a_corrupt_outputs_file_is_a_clean_error_that_says_to_delete_it(tmp_path):
    build_testbed(tmp_path)
    path = tmp_path / "models" / "cnn-1" / "outputs.npz"
    raw = path.read_bytes()
    rejected = 0
    for what, damaged in corruptions(raw):
        path.write_bytes(damaged)
        try:
            testbed_io.Testbed(tmp_path).accuracies()
        except DataError as error:
            rejected += 1
            message = str(error)
            assert str(path) in message and "delete it" in message, (what, message)
        # Any other exception escapes and fails the test, naming the corruption in its trace.
    assert rejected >= 4  # at least the four whole-file corruptions


def test_corrupt_labels_say_to_run_the_testbed_again(tmp_path):
    build_testbed(tmp_path)
    (tmp_path / "labels.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="labels.npz.*run the testbed again"):
        testbed_io.Testbed(tmp_path)


def test_a_wrong_set_name_lists_the_sets(tmp_path):
    build_testbed(tmp_path)
    testbed = testbed_io.Testbed(tmp_path)
    with pytest.raises(DataError, match=r"'tset' \(did you mean 'test'\?\).*'val', 'test'"):
        testbed.outputs("mlp-0", "tset")
    with pytest.raises(DataError, match=r"'nosie' \(did you mean 'noise'\?\)"):
        testbed.pool("val", "nosie")
    with pytest.raises(DataError, match=r"no finished model 'mlp-1' \(did you mean 'mlp-0'\?\)"):
        testbed.outputs("mlp-1", "test")


def test_a_folder_that_is_not_a_testbed_says_so(tmp_path):
    (tmp_path / "models").mkdir()
    with pytest.raises(DataMissingError, match="is not a testbed folder.*labels.npz"):
        testbed_io.Testbed(tmp_path)
    write_labels(tmp_path, {"test": np.zeros(3)})
    with pytest.raises(DataMissingError, match="no finished models"):
        testbed_io.Testbed(tmp_path)
