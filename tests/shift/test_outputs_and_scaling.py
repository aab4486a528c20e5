"""The shift vocabulary: probit/logit/linear axes and a model's outputs on one evaluation set."""

import numpy as np
import pytest
from scipy.stats import norm

from stalwart.errors import ConfigError, DataError
from stalwart.shift.outputs import Outputs
from stalwart.shift.scaling import EPS, to_accuracy, to_scale


@pytest.mark.parametrize("scale", ["probit", "logit", "linear"])
def test_scales_invert_exactly(scale):
    acc = np.array([0.01, 0.3, 0.5, 0.77, 0.999])
    assert np.allclose(to_accuracy(to_scale(acc, scale), scale), acc, atol=1e-12)


def test_probit_is_the_normal_quantile_and_edges_are_clipped():
    assert to_scale(0.8413447460685429) == pytest.approx(1.0)
    edges = to_scale(np.array([0.0, 1.0]))
    assert np.isfinite(edges).all()
    assert edges == pytest.approx([norm.ppf(EPS), norm.ppf(1 - EPS)])
    assert to_scale(0.0, "logit") == pytest.approx(np.log(EPS / (1 - EPS)))


def test_unknown_scale_lists_the_choices():
    with pytest.raises(ConfigError, match="did you mean 'probit'.*choose from"):
        to_scale(0.5, "probitt")


def test_outputs_from_probabilities():
    p = np.array([[0.2, 0.8], [1.0, 0.0], [0.5, 0.5]])
    out = Outputs.from_probabilities(p)
    assert out.predictions.tolist() == [1, 0, 0]
    assert out.confidence.tolist() == pytest.approx([0.8, 1.0, 0.5])
    entropy = [0.2 * np.log(0.2) + 0.8 * np.log(0.8), 0.0, np.log(0.5)]
    assert out.negative_entropy.tolist() == pytest.approx(entropy, rel=1e-6)
    assert out.accuracy(np.array([1, 1, 0])) == pytest.approx(2 / 3)
    other = Outputs.from_probabilities(np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9]]))
    assert out.agreement(other) == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "probabilities, message",
    [
        (np.array([0.2, 0.8]), "expected \\(examples, classes"),
        (np.array([[np.nan, 1.0]]), "finite and non-negative"),
        (np.zeros((0, 3)), "empty evaluation set"),
    ],
)
def test_bad_probabilities_are_refused(probabilities, message):
    with pytest.raises(DataError, match=message):
        Outputs.from_probabilities(probabilities)


def test_mismatched_lengths_are_refused():
    out = Outputs.from_probabilities(np.array([[0.2, 0.8], [0.6, 0.4]]))
    with pytest.raises(DataError, match="3 labels for 2 predictions"):
        out.accuracy(np.array([0, 1, 1]))
    with pytest.raises(DataError, match="agreement of models on sets of 2 and 1"):
        out.agreement(Outputs.from_probabilities(np.array([[0.2, 0.8]])))
