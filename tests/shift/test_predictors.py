"""Label-free predictors of OOD accuracy: each exact where its assumption holds, wrong where not.

The models are built by hand on binary tasks: each example is predicted right or wrong as the
test decides, with a chosen softmax confidence, so that accuracies, agreements and scores take
exactly the values a predictor's assumption needs.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from stalwart.errors import ConfigError, DataError
from stalwart.shift.outputs import Outputs
from stalwart.shift.predictors import (
    PREDICTORS,
    ModelPool,
    aline_s,
    atc,
    atc_threshold,
    evaluate_predictors,
    fit_agreement_line,
    predict,
    predictions_table,
    solve_aline_d,
)
from stalwart.shift.scaling import EPS


def binary_outputs(correct, confidence=0.9) -> Outputs:
    """A binary-task model, right exactly where ``correct`` is, with top probability ``confidence``.

    The labels alternate 0, 1, 0, ... (``id_labels``); a wrong prediction is the other class.
    """
    correct = np.asarray(correct, dtype=bool)
    n = len(correct)
    labels = id_labels(n)
    predicted = np.where(correct, labels, 1 - labels)
    confidence = np.broadcast_to(np.asarray(confidence, dtype=np.float64), (n,))
    assert (confidence > 0.5).all(), "on two classes the predicted class has probability > 1/2"
    probabilities = np.empty((n, 2))
    probabilities[np.arange(n), predicted] = confidence
    probabilities[np.arange(n), 1 - predicted] = 1 - confidence
    return Outputs.from_probabilities(probabilities)


def id_labels(n: int) -> np.ndarray:
    return np.arange(n) % 2


def pool_of(id_correct: dict, ood_correct: dict, id_confidence=None, ood_confidence=None):
    """A pool from {model: right-or-wrong per example} on ID and on OOD (and confidences)."""
    id_confidence = id_confidence or {}
    ood_confidence = ood_confidence or {}
    n_id = len(next(iter(id_correct.values())))
    return ModelPool.from_mappings(
        {m: binary_outputs(c, id_confidence.get(m, 0.9)) for m, c in id_correct.items()},
        id_labels(n_id),
        {m: binary_outputs(c, ood_confidence.get(m, 0.9)) for m, c in ood_correct.items()},
    )


def by_pattern(counts: dict[str, int], models: str = "ABC") -> dict[str, np.ndarray]:
    """Correctness per model from counts of examples per pattern, e.g. {"110": 2}: A, B right."""
    rows = [pattern for pattern, count in counts.items() for _ in range(count)]
    return {m: np.array([row[i] == "1" for row in rows]) for i, m in enumerate(models)}


def true_ood_accuracy(ood_correct: dict) -> np.ndarray:
    return np.array([np.mean(c) for c in ood_correct.values()])


# ---------------------------------------------------------------- naive


def test_naive_is_exact_without_shift_and_misses_a_drop():
    correct = {"a": [1, 1, 1, 0], "b": [1, 0, 0, 0]}
    same = pool_of(correct, correct)  # the "OOD" set is the ID set: nothing shifts
    np.testing.assert_allclose(predict(same, "naive"), [0.75, 0.25], atol=1e-12)
    shifted = pool_of(correct, {"a": [1, 0, 0, 0, 0], "b": [0, 0, 0, 0, 0]})
    np.testing.assert_allclose(predict(shifted, "naive"), [0.75, 0.25], atol=1e-12)  # not 0.2, 0


# ---------------------------------------------------------------- ATC

# Right examples are scored 0.75 and above, wrong ones 0.65 and below, on both sets: one
# threshold in [0.65, 0.75) separates right from wrong everywhere, ATC's assumption. On a
# binary task −entropy is increasing in the max probability, so both scores separate alike.
ATC_ID = {
    "correct": [1] * 7 + [0] * 3,
    "confidence": [0.75, 0.8, 0.85, 0.9, 0.95, 0.97, 0.99, 0.55, 0.6, 0.65],
}
ATC_OOD = {
    "correct": [1] * 4 + [0] * 6,
    "confidence": [0.76, 0.8, 0.9, 0.95, 0.51, 0.55, 0.58, 0.6, 0.62, 0.65],
}


def atc_pool(ood_confidence):
    return ModelPool(
        names=("m",),
        id_outputs=(binary_outputs(ATC_ID["correct"], ATC_ID["confidence"]),),
        id_labels=id_labels(10),
        ood_outputs=(binary_outputs(ATC_OOD["correct"], ood_confidence),),
    )


@pytest.mark.parametrize("score", ["negative_entropy", "confidence"])
def test_atc_is_exact_when_one_threshold_separates_right_from_wrong(score):
    predicted = PREDICTORS.build("atc", score=score)(atc_pool(ATC_OOD["confidence"]))
    np.testing.assert_allclose(predicted, [0.4], atol=1e-12)  # the true OOD accuracy, 4/10


@pytest.mark.parametrize("score", ["negative_entropy", "confidence"])
def test_atc_overestimates_confident_mistakes(score):
    # The same OOD predictions, but three of the six mistakes are now made with confidence 0.9:
    # they land above the threshold and ATC counts them as right, 7/10 against a true 4/10.
    confident_mistakes = ATC_OOD["confidence"][:4] + [0.9, 0.9, 0.9, 0.6, 0.62, 0.65]
    predicted = PREDICTORS.build("atc", score=score)(atc_pool(confident_mistakes))
    np.testing.assert_allclose(predicted, [0.7], atol=1e-12)


def test_atc_score_option_chooses_the_score():
    # Two ID examples on three classes: [.5, .5, 0] (right, class 0) and [.6, .2, .2] (wrong).
    # Max probability ranks the second higher (.6 > .5); −entropy ranks the first higher
    # (−0.69 > −0.95). ID accuracy 1/2 puts the threshold between them, so the OOD example
    # [.5, .5, 0] is above it for ATC-NE (predicted 1) and not for ATC-MC (predicted 0).
    id_outputs = Outputs.from_probabilities(np.array([[0.5, 0.5, 0.0], [0.6, 0.2, 0.2]]))
    ood_outputs = Outputs.from_probabilities(np.array([[0.5, 0.5, 0.0]]))
    pool = ModelPool(("m",), (id_outputs,), np.array([0, 1]), (ood_outputs,))
    assert predict(pool, "atc")[0] == 1.0  # negative entropy is the default
    assert predict(pool, "atc", score="negative_entropy")[0] == 1.0
    assert predict(pool, "atc", score="confidence")[0] == 0.0


def test_atc_threshold_matches_the_count_of_correct_predictions():
    scores = np.array([0.3, 0.1, 0.9, 0.7])
    assert atc_threshold(scores, 2) == (0.3, 0.0)  # 0.7 and 0.9 above
    assert atc_threshold(scores, 4) == (-np.inf, 0.0)  # everything above
    assert atc_threshold(scores, 0) == (0.9, 0.0)  # nothing above
    # Ties: one score above 0.5 and two at it; the second correct one is half of each tie.
    assert atc_threshold(np.array([0.1, 0.5, 0.5, 0.9]), 2) == (0.5, 0.5)


def test_atc_shares_tied_scores_out_so_a_model_without_confidences_gets_its_id_accuracy():
    # A 1-nearest-neighbour model is certain of everything: every score ties. 3 of 4 ID
    # predictions are right, so each tied example counts 3/4, on ID and OOD alike.
    certain = binary_outputs([True, True, True, False], [1.0, 1.0, 1.0, 1.0])
    ood = binary_outputs([True, False, False, False, False], [1.0] * 5)
    pool = ModelPool(("knn",), (certain,), id_labels(4), (ood,))
    for score in ("negative_entropy", "confidence"):
        assert predict(pool, "atc", score=score)[0] == pytest.approx(0.75)


# ---------------------------------------------------------------- DoC


def test_doc_is_exact_when_confidence_drops_as_much_as_accuracy():
    # Model a is calibrated on both sets (confidence = accuracy: 0.8 ID, 0.6 OOD); model b drops
    # from 0.5 to 0.2 in accuracy and from 0.9 to 0.6 in confidence: both drops are 0.3.
    pool = pool_of(
        {"a": [1] * 8 + [0] * 2, "b": [1] * 5 + [0] * 5},
        {"a": [1] * 6 + [0] * 4, "b": [1] * 2 + [0] * 8},
        id_confidence={"a": 0.8, "b": 0.9},
        ood_confidence={"a": 0.6, "b": 0.6},
    )
    np.testing.assert_allclose(predict(pool, "doc"), [0.6, 0.2], atol=1e-6)  # float32 scores


def test_doc_misses_a_drop_the_confidence_does_not_show_and_clips_to_zero():
    pool = pool_of(
        {"a": [1] * 8 + [0] * 2, "b": [1] * 1 + [0] * 9},
        {"a": [1] * 6 + [0] * 4, "b": [0] * 10},
        id_confidence={"a": 0.8, "b": 0.9},
        ood_confidence={"a": 0.8, "b": 0.55},
    )
    # a: confidence unchanged, so DoC keeps the ID accuracy 0.8 against a true 0.6.
    # b: 0.1 − (0.9 − 0.55) = −0.25, clipped to 0 (here the truth).
    np.testing.assert_allclose(predict(pool, "doc"), [0.8, 0.0], atol=1e-6)


# ---------------------------------------------------------------- agreement on the line

# Three models on a binary task. Every example is predicted right by all three (pattern "111",
# a fraction c) or by exactly one of A and B ("100", "010", a fraction k each; c + 2k = 1).
# On a binary task two models agree where both are right or both are wrong, so
#     acc_C = agr_AB = c   and   acc_A = acc_B = agr_AC = agr_BC = c + k:
# every accuracy and every agreement takes one of two values, on ID (c = 12/16, k = 2/16) and
# on OOD (c = 4/8, k = 2/8). Each value maps to one OOD value, so all six probit points
# (3 accuracies, 3 agreements) lie on the one line through two points, with slope
# (Φ⁻¹ .75 − Φ⁻¹ .5) / (Φ⁻¹ .875 − Φ⁻¹ .75) ≈ 1.42 and bias ≈ −0.96: accuracy and agreement
# on the same line, ALine's assumption, with a real shift (A and B drop from 0.875 to 0.75).
ALINE_ID = by_pattern({"111": 12, "100": 2, "010": 2})
ALINE_OOD = by_pattern({"111": 4, "100": 2, "010": 2})
ALINE_TRUTH = np.array([0.75, 0.75, 0.5])


def test_aline_construction_puts_accuracy_and_agreement_on_one_line():
    pool = pool_of(ALINE_ID, ALINE_OOD)
    np.testing.assert_allclose(true_ood_accuracy(ALINE_OOD), ALINE_TRUTH)
    id_agreement, ood_agreement = pool.agreements()  # pairs AB, AC, BC
    np.testing.assert_allclose(id_agreement, [0.75, 0.875, 0.875])
    np.testing.assert_allclose(ood_agreement, [0.5, 0.75, 0.75])
    line = fit_agreement_line(pool)
    slope = (norm.ppf(0.75) - norm.ppf(0.5)) / (norm.ppf(0.875) - norm.ppf(0.75))
    assert line.slope == pytest.approx(slope, abs=1e-12)
    assert line.bias == pytest.approx(-slope * norm.ppf(0.75), abs=1e-12)


@pytest.mark.parametrize("name", ["aline-s", "aline-d"])
def test_aline_is_exact_when_accuracy_and_agreement_share_the_line(name):
    pool = pool_of(ALINE_ID, ALINE_OOD)
    np.testing.assert_allclose(predict(pool, name), ALINE_TRUTH, atol=1e-9)
    assert np.abs(predict(pool, "naive") - ALINE_TRUTH).max() > 0.1  # the shift is real


@pytest.mark.parametrize("name", ["aline-s", "aline-d"])
def test_aline_is_wrong_when_agreement_leaves_the_accuracy_line(name):
    # Same ID models and the same OOD accuracies (0.75, 0.75, 0.5), but on OOD A and B now err
    # on the same examples ("110" and "000" instead of "100" and "010"): they always agree
    # (agreement 1, clipped to 1 − EPS before the probit), which bends the agreement line
    # away from the accuracies.
    ood = by_pattern({"111": 4, "110": 2, "000": 2})
    np.testing.assert_allclose(true_ood_accuracy(ood), ALINE_TRUTH)
    predicted = predict(pool_of(ALINE_ID, ood), name)
    assert np.isfinite(predicted).all()
    assert np.abs(predicted - ALINE_TRUTH).max() > 0.3


def test_aline_d_solves_the_overdetermined_pair_system_exactly_on_the_line():
    # Five models (ten pairs, five unknowns) with arbitrary ID accuracies and agreements and
    # OOD values put exactly on y = 0.8·x − 0.3 in probit space: the least-squares solution
    # is the exact one. A wrong slope moves it.
    slope, bias = 0.8, -0.3
    id_accuracy = np.array([0.95, 0.9, 0.8, 0.7, 0.6])
    id_agreement = np.array([0.9, 0.85, 0.75, 0.65, 0.88, 0.8, 0.7, 0.86, 0.77, 0.83])

    def on_line(value):
        return norm.cdf(slope * norm.ppf(value) + bias)

    solved = solve_aline_d(id_accuracy, id_agreement, on_line(id_agreement), slope)
    np.testing.assert_allclose(solved, on_line(id_accuracy), atol=1e-12)
    off = solve_aline_d(id_accuracy, id_agreement, on_line(id_agreement), slope + 0.2)
    assert np.abs(off - on_line(id_accuracy)).max() > 0.01
    with pytest.raises(DataError, match="10 pairs"):
        solve_aline_d(id_accuracy, id_agreement[:9], on_line(id_agreement), slope)


def test_aline_needs_three_models_and_varied_id_agreement():
    two = {m: c for m, c in ALINE_ID.items() if m != "C"}
    pool = pool_of(two, {m: ALINE_OOD[m] for m in two})
    for name in ("aline-s", "aline-d"):
        with pytest.raises(DataError, match="at least 3 models"):
            predict(pool, name)
    # Three models that pairwise agree on exactly half the ID examples: no slope to fit.
    equal = {"A": [1, 1, 0, 0], "B": [1, 0, 1, 0], "C": [1, 0, 0, 1]}
    with pytest.raises(DataError, match="slope is undetermined"):
        predict(pool_of(equal, equal), "aline-s")


def test_aline_handles_identical_models_through_eps_clipping():
    # Two identical models agree everywhere: their agreement 1 is clipped to 1 − EPS on both
    # axes (a point at Φ⁻¹(1 − EPS) ≈ 3.72) and the predictions stay finite.
    models = {"A": ALINE_ID["A"], "A2": ALINE_ID["A"], "C": ALINE_ID["C"]}
    ood = {"A": ALINE_OOD["A"], "A2": ALINE_OOD["A"], "C": ALINE_OOD["C"]}
    pool = pool_of(models, ood)
    id_agreement, ood_agreement = pool.agreements()
    assert id_agreement[0] == ood_agreement[0] == 1.0
    line = fit_agreement_line(pool)
    assert np.isfinite([line.slope, line.bias]).all()
    assert norm.ppf(1 - EPS) == pytest.approx(3.719, abs=1e-3)
    for name in ("aline-s", "aline-d"):
        assert np.isfinite(predict(pool, name)).all()


# ---------------------------------------------------------------- registry and options


def test_registry_lists_the_predictors_and_wrong_names_list_the_choices():
    assert PREDICTORS.names() == ["aline-d", "aline-s", "atc", "doc", "naive"]
    with pytest.raises(ConfigError) as error:
        PREDICTORS.get("atcc")
    message = str(error.value)
    assert "did you mean 'atc'" in message
    assert "['aline-d', 'aline-s', 'atc', 'doc', 'naive']" in message


def test_predictor_options_are_checked():
    with pytest.raises(ConfigError, match="score"):
        PREDICTORS.build("atc", score="entropy")
    with pytest.raises(ConfigError, match=r"no parameter 'treshold'.*\['score'\]"):
        PREDICTORS.build("atc", treshold=0.5)
    with pytest.raises(ConfigError, match=r"choose from \['negative_entropy', 'confidence'\]"):
        atc(score="entropy")  # called directly, without the registry's checks
    with pytest.raises(ConfigError, match=r"choose from \['probit', 'logit', 'linear'\]"):
        aline_s(scale="log")
    with pytest.raises(ConfigError, match="no parameter"):
        PREDICTORS.build("doc", score="confidence")


# ---------------------------------------------------------------- ModelPool validation


def test_model_pool_rejects_inconsistent_inputs():
    four, five = binary_outputs([1, 0, 1, 0]), binary_outputs([1, 0, 1, 0, 1])
    labels = id_labels(4)
    with pytest.raises(DataError, match="2 model names but 1 id_outputs"):
        ModelPool(("a", "b"), (four,), labels, (four, four))
    with pytest.raises(DataError, match="2 model names but 1 ood_outputs"):
        ModelPool(("a", "b"), (four, four), labels, (four,))
    with pytest.raises(DataError, match="model 'b' has 5 ID outputs for 4 ID labels"):
        ModelPool(("a", "b"), (four, five), labels, (four, four))
    with pytest.raises(DataError, match="same OOD examples"):
        ModelPool(("a", "b"), (four, four), labels, (four, five))
    with pytest.raises(DataError, match="unique; repeated: \\['a'\\]"):
        ModelPool(("a", "a"), (four, four), labels, (four, four))
    with pytest.raises(DataError, match="at least one model"):
        ModelPool((), (), labels, ())
    with pytest.raises(DataError, match="must be an Outputs"):
        ModelPool(("a",), (np.zeros(4),), labels, (four,))
    with pytest.raises(DataError, match="one label per example"):
        ModelPool(("a",), (four,), labels.reshape(2, 2), (four,))
    with pytest.raises(DataError, match="only in one of them: \\['b'\\]"):
        ModelPool.from_mappings({"a": four, "b": four}, labels, {"a": four})
    pool = ModelPool(["a", "b"], [four, four], list(labels), [five, five])  # lists are accepted
    assert pool.names == ("a", "b") and len(pool) == 2


# ---------------------------------------------------------------- evaluate_predictors


def evaluation_pools():
    # ID: model a right on 8/10 with confidence 0.8, model b right on 6/10 with confidence 0.7.
    # OOD (predictions irrelevant to naive and DoC; only confidences matter):
    #   s1: a 0.7, b 0.55 → DoC: a 0.8 − 0.1 = 0.7, b 0.6 − 0.15 = 0.45
    #   s2: a 0.8, b 0.7 → DoC equals naive: 0.8, 0.6
    id_correct = {"a": [1] * 8 + [0] * 2, "b": [1] * 6 + [0] * 4}
    ood = {"a": [1] * 10, "b": [1] * 10}
    id_conf = {"a": 0.8, "b": 0.7}
    return {
        "s1": pool_of(id_correct, ood, id_conf, {"a": 0.7, "b": 0.55}),
        "s2": pool_of(id_correct, ood, id_conf, {"a": 0.8, "b": 0.7}),
    }


def test_evaluate_predictors_mean_absolute_error_by_hand():
    truth = {"s1": np.array([0.5, 0.6]), "s2": np.array([0.8, 0.2])}
    summary = evaluate_predictors(evaluation_pools(), truth, names=("naive", "doc"))
    assert list(summary.columns) == [
        "shift",
        "predictor",
        "models",
        "mean_absolute_error",
        "max_absolute_error",
    ]
    assert list(zip(summary["shift"], summary["predictor"], strict=True)) == [
        ("s1", "naive"),
        ("s1", "doc"),
        ("s2", "naive"),
        ("s2", "doc"),
    ]
    # s1 naive: |0.8 − 0.5|, |0.6 − 0.6| → 0.15;  s1 DoC: |0.7 − 0.5|, |0.45 − 0.6| → 0.175
    # s2 naive and DoC: |0.8 − 0.8|, |0.6 − 0.2| → 0.2
    np.testing.assert_allclose(summary["mean_absolute_error"], [0.15, 0.175, 0.2, 0.2], atol=1e-6)
    np.testing.assert_allclose(summary["max_absolute_error"], [0.3, 0.2, 0.4, 0.4], atol=1e-6)
    assert list(summary["models"]) == [2, 2, 2, 2]


def test_predictions_table_has_one_row_per_shift_predictor_and_model():
    pools = evaluation_pools()
    table = predictions_table(pools, ("naive", "doc"))
    assert len(table) == 8
    assert list(table.columns) == ["shift", "predictor", "model", "predicted"]
    row = table[(table["shift"] == "s1") & (table["predictor"] == "doc") & (table["model"] == "b")]
    assert row["predicted"].item() == pytest.approx(0.45, abs=1e-6)
    with_truth = predictions_table(
        pools, ("naive",), ood_accuracy={"s1": [0.5, 0.6], "s2": [0.8, 0.2]}
    )
    np.testing.assert_allclose(with_truth["absolute_error"], [0.3, 0.0, 0.0, 0.4], atol=1e-12)


def test_evaluate_predictors_rejects_bad_truth_names_and_options():
    pools = evaluation_pools()
    truth = {"s1": np.array([0.5, 0.6]), "s2": np.array([0.8, 0.2])}
    with pytest.raises(DataError, match="exactly the shifts pooled"):
        evaluate_predictors(pools, {"s1": truth["s1"]})
    with pytest.raises(DataError, match="2 models but true OOD accuracies of shape \\(3,\\)"):
        evaluate_predictors(pools, {**truth, "s2": np.array([0.1, 0.2, 0.3])})
    with pytest.raises(DataError, match="fractions in \\[0, 1\\]"):
        evaluate_predictors(pools, {**truth, "s2": np.array([80.0, 20.0])})
    with pytest.raises(ConfigError, match="choose from"):
        evaluate_predictors(pools, truth, names=("naive", "dock"))
    with pytest.raises(ConfigError, match="not asked for"):
        evaluate_predictors(
            pools, truth, names=("naive",), options={"atc": {"score": "confidence"}}
        )
    with pytest.raises(ConfigError, match="score"):
        evaluate_predictors(pools, truth, names=("atc",), options={"atc": {"score": "entropy"}})
    # ATC-MC through options: runs, one row per shift.
    summary = evaluate_predictors(
        pools, truth, names=("atc",), options={"atc": {"score": "confidence"}}
    )
    assert len(summary) == 2
