"""Failure overlap (homogenization, arXiv 2108.07258): statistics against hand counts, the file.

The statistics are checked on constructed cases whose values are worked out by hand, the
p-value against a brute-force count of every placement and against scipy's Fisher test.
"""

from __future__ import annotations

import itertools
import json
import math
import zipfile

import numpy as np
import pytest
from scipy.stats import fisher_exact

from stalwart.errors import DataError, DataMissingError
from stalwart.shift import inherit
from stalwart.shift.inherit import (
    FailureSet,
    find_failure_files,
    load_failures,
    overlap,
    overlap_matrix,
    read_failures,
    save_failures,
    summarize,
)


def failures(model, failed, ids=None, *, task="tweets", encoder="minilm", kind="flip",
             perturbation="typo", probe_set="probe", adaptation=None):  # fmt: skip
    failed = np.asarray(failed, dtype=bool)
    return FailureSet(
        model=model,
        perturbation=perturbation,
        kind=kind,
        probe_ids=np.arange(len(failed)) if ids is None else ids,
        failed=failed,
        task=task,
        adaptation=adaptation or ("linear_probe" if encoder else "scratch"),
        encoder=encoder,
        probe_set=probe_set,
    )


# A fails on probes 0-3, B on 0, 1, 2, 8, 9: n = 10, a = 4, b = 5, both = 3.
A = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
B = [1, 1, 1, 0, 0, 0, 0, 0, 1, 1]


def brute_force_p(n, a, b, k):
    """The share of all placements of b failures among n probes that hit A's a in ≥ k."""
    hits = [len(set(chosen) & set(range(a))) for chosen in itertools.combinations(range(n), b)]
    return sum(h >= k for h in hits) / len(hits)


# --- the statistics -------------------------------------------------------------------------


def test_overlap_of_two_ten_probe_vectors_matches_hand_values():
    result = overlap(failures("a", A), failures("b", B))
    assert (result.n, result.first_failures, result.second_failures, result.both) == (10, 4, 5, 3)
    assert result.first_rate == pytest.approx(0.4)
    assert result.second_rate == pytest.approx(0.5)
    assert result.joint_rate == pytest.approx(0.3)
    assert result.jaccard == pytest.approx(3 / 6)  # 3 both / (4 + 5 − 3) either
    assert result.expected_joint_rate == pytest.approx(0.4 * 0.5)
    assert result.beyond_chance == pytest.approx(0.3 - 0.2)
    assert result.lift == pytest.approx(0.3 / 0.2)
    # P(X ≥ 3), X hypergeometric: (C(4,3)C(6,2) + C(4,4)C(6,1)) / C(10,5) = (60 + 6) / 252.
    assert result.p_value == pytest.approx(66 / 252)
    assert result.p_value == pytest.approx(brute_force_p(10, 4, 5, 3))


@pytest.mark.parametrize("n, a, b, k", [(8, 3, 4, 0), (8, 3, 4, 2), (9, 5, 5, 5), (7, 2, 6, 2)])
def test_p_value_is_the_brute_force_share_of_placements(n, a, b, k):
    first = np.zeros(n, bool)
    first[:a] = True
    second = np.zeros(n, bool)
    second[:k] = True  # k shared, the rest after A's failures
    second[a : a + b - k] = True
    result = overlap(failures("a", first), failures("b", second))
    assert (result.first_failures, result.second_failures, result.both) == (a, b, k)
    assert result.p_value == pytest.approx(brute_force_p(n, a, b, k))


def test_p_value_is_fishers_one_sided_exact_test():
    rng = np.random.default_rng(3)
    for _ in range(5):
        first, second = rng.random(60) < 0.3, rng.random(60) < 0.5
        result = overlap(failures("a", first), failures("b", second))
        k, a, b = result.both, result.first_failures, result.second_failures
        table = [[k, a - k], [b - k, 60 - a - b + k]]
        assert result.p_value == pytest.approx(fisher_exact(table, alternative="greater")[1])


def test_only_shared_probe_ids_count_and_order_does_not_matter():
    order = np.array([9, 3, 0, 7, 1, 8, 2, 6, 5, 4])
    first = failures("a", A)
    # B on the same probes in another order, plus probes 10-14 that A never saw (all failed).
    ids = np.concatenate([order, np.arange(10, 15)])
    second = failures("b", np.concatenate([np.array(B, bool)[order], np.ones(5, bool)]), ids)
    result = overlap(first, second)
    assert (result.n, result.first_failures, result.second_failures, result.both) == (10, 4, 5, 3)
    assert second.rate == pytest.approx(10 / 15)  # its own rate counts every probe
    # Only probes 0-4 shared: A fails on 0-3, B on 0-2.
    part = overlap(first, failures("c", np.array(B, bool)[:5], np.arange(5)))
    assert (part.n, part.first_failures, part.second_failures, part.both) == (5, 4, 3, 3)


def test_overlap_is_symmetric():
    rng = np.random.default_rng(0)
    first, second = failures("a", rng.random(50) < 0.3), failures("b", rng.random(50) < 0.6)
    ab, ba = overlap(first, second), overlap(second, first)
    assert (ab.first_rate, ab.second_rate) == (ba.second_rate, ba.first_rate)
    for name in ("joint_rate", "jaccard", "expected_joint_rate", "beyond_chance", "lift",
                 "p_value"):  # fmt: skip
        assert getattr(ab, name) == pytest.approx(getattr(ba, name))


def test_identical_sets_have_jaccard_one_and_disjoint_ones_zero():
    same = overlap(failures("a", A), failures("b", A))
    assert same.jaccard == 1.0 and same.lift == pytest.approx(1 / 0.4)
    assert same.beyond_chance == pytest.approx(0.4 - 0.4**2)
    disjoint = overlap(failures("a", A), failures("b", np.logical_not(A)))
    assert disjoint.jaccard == 0.0 and disjoint.lift == 0.0 and disjoint.p_value == 1.0
    assert disjoint.beyond_chance == pytest.approx(-0.4 * 0.6)


def test_sets_without_failures_have_undefined_jaccard_and_lift():
    none = overlap(failures("a", np.zeros(10)), failures("b", np.zeros(10)))
    assert math.isnan(none.jaccard) and math.isnan(none.lift)
    assert none.beyond_chance == 0.0 and none.p_value == 1.0
    assert none.to_dict()["jaccard"] is None


def test_independent_failures_are_at_chance_and_shared_ones_beyond_it():
    rng = np.random.default_rng(7)
    n = 20_000
    first, second = rng.random(n) < 0.3, rng.random(n) < 0.4
    independent = overlap(failures("a", first), failures("b", second))
    assert abs(independent.beyond_chance) < 0.01
    assert independent.lift == pytest.approx(1.0, abs=0.05)
    assert independent.jaccard == pytest.approx(0.12 / (0.3 + 0.4 - 0.12), abs=0.02)
    # Half of C's failures copied from A: joint 0.5·0.3 + 0.5·0.3·0.4, rates 0.3 and 0.35.
    inherited = np.where(rng.random(n) < 0.5, first, second)
    shared = overlap(failures("a", first), failures("c", inherited))
    assert shared.beyond_chance == pytest.approx(0.5 * 0.3 + 0.5 * 0.12 - 0.3 * 0.35, abs=0.01)
    assert shared.p_value < 1e-12 < independent.p_value


def test_sets_that_cannot_be_compared_are_refused():
    first = failures("a", A)
    with pytest.raises(DataError, match="share no probe id"):
        overlap(first, failures("b", B, np.arange(10, 20)))
    with pytest.raises(DataError, match="different probe sets"):
        overlap(first, failures("b", B, probe_set="other texts"))
    with pytest.raises(DataError, match="'flip' failures, the other 'error'"):
        overlap(first, failures("b", B, kind="error"))


def test_overlap_counts_are_checked():
    first = failures("a", A)
    with pytest.raises(DataError, match="impossible overlap counts"):
        inherit.Overlap(first, first, n=10, first_failures=4, second_failures=5, both=5)
    with pytest.raises(DataError, match="impossible overlap counts"):
        inherit.Overlap(first, first, n=5, first_failures=4, second_failures=5, both=3)


def test_matrix_holds_every_pair_and_is_symmetric():
    rng = np.random.default_rng(1)
    sets = [failures(f"m{i}", rng.random(40) < 0.2 + 0.1 * i) for i in range(4)]
    matrix = overlap_matrix(sets)
    jaccard = matrix.values("jaccard")
    assert jaccard.shape == (4, 4)
    assert np.allclose(jaccard, jaccard.T) and np.allclose(np.diag(jaccard), 1.0)
    assert np.allclose(matrix.values("p_value"), matrix.values("p_value").T)
    assert jaccard[1, 3] == pytest.approx(overlap(sets[1], sets[3]).jaccard)
    assert matrix[3, 1].first is sets[3] and matrix[3, 1].first_rate == matrix[1, 3].second_rate
    pairs = [(p.first.model, p.second.model) for p in matrix.pairs()]
    assert pairs == [(f"m{i}", f"m{j}") for i in range(4) for j in range(i + 1, 4)]
    with pytest.raises(DataError, match="unknown statistic 'jacard' \\(did you mean 'jaccard'"):
        matrix.values("jacard")
    with pytest.raises(DataError, match="no failure sets"):
        overlap_matrix([])


def test_summary_contrasts_same_encoder_pairs_with_scratch_pairs():
    # Adapted models (encoder "e") fail on probes 0-2 whatever their task; scratch ones do not.
    adapted_t1 = failures("e/t1", [1, 1, 1, 1, 0, 0, 0, 0], task="t1")
    adapted_t2 = failures("e/t2", [1, 1, 1, 0, 1, 0, 0, 0], task="t2")
    scratch_t1 = failures("s/t1", [0, 0, 0, 1, 0, 1, 1, 0], task="t1", encoder=None)
    scratch_t2 = failures("s/t2", [1, 0, 0, 0, 0, 0, 1, 1], task="t2", encoder=None)
    other = failures("f/t1", [1, 1, 0, 0, 0, 0, 0, 0], task="t1", encoder="other encoder")
    sets = [adapted_t1, adapted_t2, scratch_t1, scratch_t2, other]
    summary = summarize(overlap_matrix(sets).pairs())
    groups = {(g.relation, g.same_task): g for g in summary}
    same = groups[inherit.SAME_ENCODER, False]
    # e/t1 and e/t2: 3 shared of 5 either; joint 3/8 against (4/8)(4/8).
    assert same.pairs == 1 and same.mean_jaccard == pytest.approx(3 / 5)
    assert same.mean_beyond_chance == pytest.approx(3 / 8 - 1 / 4)
    assert same.mean_lift == pytest.approx(1.5)
    with_scratch = groups[inherit.WITH_SCRATCH, True]  # e/t1–s/t1, e/t2–s/t2, f/t1–s/t1
    expected = [overlap(adapted_t1, scratch_t1), overlap(adapted_t2, scratch_t2),
                overlap(other, scratch_t1)]  # fmt: skip
    assert with_scratch.pairs == 3
    # By hand: {0-3} and {3,5,6} share 1 of 6; {0,1,2,4} and {0,6,7} 1 of 6; {0,1} and {3,5,6} 0.
    assert with_scratch.mean_jaccard == pytest.approx((1 / 6 + 1 / 6 + 0) / 3)
    assert with_scratch.mean_beyond_chance == pytest.approx(
        np.mean([p.beyond_chance for p in expected])
    )
    assert groups[inherit.WITH_SCRATCH, False].pairs == 3
    assert groups[inherit.BOTH_SCRATCH, False].pairs == 1
    assert groups[inherit.OTHER_ENCODERS, True].pairs == 1
    assert groups[inherit.OTHER_ENCODERS, False].pairs == 1
    assert sum(g.pairs for g in summary) == 10  # every pair of 5 models once
    assert all(g.perturbation == "typo" and g.kind == "flip" for g in summary)
    order = [(g.relation, g.same_task) for g in summary]
    assert order[0] == (inherit.SAME_ENCODER, False) and order[-1][0] == inherit.BOTH_SCRATCH
    # Pairs where neither model fails have no Jaccard index or lift: the means skip them.
    never = [failures(f"n{i}", np.zeros(8), task="t1", encoder=None) for i in range(2)]
    (both_scratch,) = summarize([overlap(*never), overlap(scratch_t1, never[0])])
    assert both_scratch.pairs == 2
    assert both_scratch.mean_jaccard == 0.0 and math.isnan(both_scratch.mean_lift)
    assert both_scratch.mean_beyond_chance == 0.0
    # A set paired with itself (the matrix diagonal) is not a pair of models.
    assert summarize([overlap(adapted_t1, adapted_t1)]) == []


# --- FailureSet -----------------------------------------------------------------------------


def test_failure_set_stores_read_only_copies():
    ids, failed = np.arange(4), np.array([True, False, True, False])
    s = failures("a", failed, ids)
    failed[0] = False
    assert s.failed[0] and s.failures == 2 and s.rate == 0.5 and len(s) == 4
    assert s.probe_ids.dtype == np.int64 and s.pretrained
    with pytest.raises(ValueError):
        s.failed[1] = True
    assert not failures("b", failed, encoder=None).pretrained


@pytest.mark.parametrize(
    "change, message",
    [
        ({"failed": np.array([1, 0, 1])}, "failed must hold booleans"),
        ({"failed": np.array([True, False])}, "3 probe ids but 2 failure flags"),
        ({"probe_ids": np.array([4, 7, 4])}, "1 probe ids appear more than once \\(first: 4\\)"),
        ({"probe_ids": np.array([0.0, 1.0, 2.0])}, "probe_ids must be integers"),
        ({"probe_ids": np.zeros(0, int), "failed": np.zeros(0, bool)}, "no probes"),
        ({"probe_ids": np.arange(3).reshape(3, 1)}, "must be 1-D"),
        ({"kind": "flips"}, "unknown kind 'flips' \\(did you mean 'flip'\\?\\)"),
        ({"model": " "}, "model must be a non-empty string"),
        ({"task": 3}, "task must be a non-empty string"),
        ({"encoder": ""}, "encoder must be None \\(trained from scratch\\) or a non-empty"),
    ],
)
def test_failure_set_refuses_bad_fields(change, message):
    fields = dict(model="m", perturbation="typo", kind="flip", probe_ids=np.arange(3),
                  failed=np.array([True, False, True]), task="t", adaptation="probe",
                  encoder="e")  # fmt: skip
    FailureSet(**fields)  # the unchanged fields are fine
    with pytest.raises(DataError, match=message):
        FailureSet(**{**fields, **change})


# --- the file -------------------------------------------------------------------------------


def some_sets():
    return [
        failures("tweets/minilm", A, task="tweets"),
        failures("tweets/minilm", B, perturbation="codespell"),
        failures(
            "drugs/scratch",
            B,
            np.arange(100, 110),
            task="drugs",
            encoder=None,
            kind="error",
            probe_set="drug texts",
        ),  # fmt: skip
        failures("tweets/ünïcode", A, perturbation="topic", adaptation="fine_tune"),
    ]


def test_save_and_load_round_trip(tmp_path):
    sets = some_sets()
    path = save_failures(tmp_path / "run" / "failures.npz", sets)
    back = load_failures(path)
    assert len(back) == len(sets)
    for original, loaded in zip(sets, back, strict=True):
        assert loaded.description() == original.description()
        assert np.array_equal(loaded.probe_ids, original.probe_ids)
        assert np.array_equal(loaded.failed, original.failed) and loaded.failed.dtype == bool
    assert back[2].encoder is None and back[3].model == "tweets/ünïcode"
    with np.load(path, allow_pickle=False) as archive:  # nothing in it needs pickle
        assert "header" in archive.files and len(archive.files) == 1 + 2 * len(sets)


def test_save_refuses_repeats_and_nothing(tmp_path):
    with pytest.raises(DataError, match="'tweets/minilm' under 'typo' \\(flip\\) twice"):
        save_failures(tmp_path / "f.npz", [failures("tweets/minilm", A)] * 2)
    with pytest.raises(DataError, match="describe model 'm' two ways"):
        twice = [failures("m", A), failures("m", A, task="other", perturbation="codespell")]
        save_failures(tmp_path / "f.npz", twice)
    with pytest.raises(DataError, match="no failure sets"):
        save_failures(tmp_path / "f.npz", [])
    assert not (tmp_path / "f.npz").exists()


def header(**fields):
    entry = failures("m", A).description()
    value = {"format": inherit.FORMAT, "version": inherit.VERSION, "sets": [entry], **fields}
    return np.array(json.dumps(value))


ARRAYS = {"0.probe_ids": np.arange(10), "0.failed": np.array(A, bool)}


@pytest.mark.parametrize(
    "arrays, message",
    [
        (ARRAYS, "not a stalwart failures file \\(it has no text header\\)"),
        ({**ARRAYS, "header": np.array(["a", "b"])}, "no text header"),
        ({**ARRAYS, "header": np.array("{not json")}, "damaged header"),
        ({**ARRAYS, "header": header(format="other.tool")}, "format 'other.tool', expected"),
        ({**ARRAYS, "header": header(version=2)}, "version 2, newer than this stalwart reads"),
        ({**ARRAYS, "header": header(version="1")}, "damaged header \\(version '1'\\)"),
        ({**ARRAYS, "header": header(sets=[])}, "no list of sets"),
        ({**ARRAYS, "header": header(sets=[{"model": "m"}])}, "set 0 should describe"),
        ({"0.failed": ARRAYS["0.failed"], "header": header()}, "lacks the arrays \\['0.probe_ids'"),
        ({**ARRAYS, "1.failed": ARRAYS["0.failed"], "header": header()}, "does not list"),
        ({**ARRAYS, "0.failed": np.arange(10), "header": header()}, "failed must hold booleans"),
    ],
)
def test_foreign_and_damaged_files_are_refused(tmp_path, arrays, message):
    path = tmp_path / "failures.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message) as error:
        load_failures(path)
    assert str(path) in str(error.value)


def test_unreadable_files_are_refused_without_running_code(tmp_path):
    path = save_failures(tmp_path / "failures.npz", some_sets())
    truncated = tmp_path / "truncated" / "failures.npz"
    truncated.parent.mkdir()
    truncated.write_bytes(path.read_bytes()[:200])
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, header=np.array([{"run": "code"}], dtype=object))
    lone = tmp_path / "lone.npy"
    np.save(lone, np.arange(3))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    for bad in (truncated, pickled, lone, garbage):
        with pytest.raises(DataError, match="is not a readable failures file") as error:
            load_failures(bad)
        assert "write it again" in str(error.value)
    with pytest.raises(DataMissingError, match="does not exist"):
        load_failures(tmp_path / "absent.npz")
    with pytest.raises(DataError, match="is a folder"):
        load_failures(tmp_path / "truncated")


def test_damaged_compressed_member_is_refused(tmp_path):
    path = save_failures(tmp_path / "failures.npz", some_sets())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("0.failed.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start, start + info.compress_size):  # scramble the compressed bytes
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match="not a readable failures file"):
        load_failures(path)


def test_files_are_found_under_roots_and_read_together(tmp_path):
    sets = some_sets()
    save_failures(tmp_path / "a" / "run1" / "failures.npz", sets[:2])
    save_failures(tmp_path / "b" / "failures.npz", sets[2:])
    (tmp_path / "b" / "notes.npz").write_bytes(b"other file")  # not a failures file: not read
    found = find_failure_files([tmp_path / "a", tmp_path / "b", tmp_path / "b" / "failures.npz"])
    assert [p.parent.name for p in found] == ["run1", "b"]  # each once
    back = read_failures([tmp_path])
    assert sorted(s.key for s in back) == sorted(s.key for s in sets)
    with pytest.raises(DataMissingError, match="no folder given"):
        find_failure_files([])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataMissingError, match="no failures.npz under .*empty"):
        find_failure_files([tmp_path / "empty"])
    with pytest.raises(DataMissingError, match="absent does not exist"):
        find_failure_files([tmp_path / "absent"])


def test_a_model_in_two_files_is_refused(tmp_path):
    save_failures(tmp_path / "a" / "failures.npz", [failures("m", A)])
    save_failures(tmp_path / "b" / "failures.npz", [failures("m", B)])
    with pytest.raises(DataError, match="'m' under 'typo' \\(flip\\) is in both .*a.*b"):
        read_failures([tmp_path])
