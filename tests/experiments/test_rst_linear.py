import numpy as np
import pytest

from stalwart.experiments.configs import parse_experiment
from stalwart.experiments.kinds.rst_linear import (
    RstLinearConfig,
    errors,
    rst_estimator,
    run_rst_linear,
    worked_example,
)


def test_worked_example_matches_the_hand_calculation():
    found = worked_example()
    assert found["standard"][0] == pytest.approx(1.0)
    assert found["augmented"][0] == pytest.approx(25.25)  # augmentation hurts, 25×
    assert found["rst"][0] == pytest.approx(1 / 101)  # 100/101² + 1/101²
    assert found["rst"][1] < found["standard"][1]


def test_rst_never_raises_standard_error_while_augmentation_can():
    result = run_rst_linear(RstLinearConfig(draws=60))["estimators"]
    assert result["rst"]["draws_worse_than_standard"] == 0.0
    assert result["augmented"]["draws_worse_than_standard"] > 0.5
    assert result["augmented"]["standard_error"] > result["standard"]["standard_error"]
    assert result["rst"]["robust_error"] < result["standard"]["robust_error"]


def test_rst_estimator_satisfies_its_constraints_and_is_the_sigma_projection():
    rng = np.random.default_rng(0)
    sigma = np.diag(rng.uniform(0.5, 5, 6))
    A, b = rng.normal(size=(3, 6)), rng.normal(size=3)
    standard = rng.normal(size=6)
    theta = rst_estimator(sigma, standard, A, b)
    assert np.allclose(A @ theta, b)
    # Any other feasible point is at least as far from θ_std in the Σ-norm.
    null = np.linalg.svd(A)[2][3:]
    for _ in range(20):
        other = theta + null.T @ rng.normal(size=3)
        gap = lambda t: (t - standard) @ sigma @ (t - standard)  # noqa: E731
        assert gap(other) >= gap(theta) - 1e-9


def test_truth_has_zero_error():
    sigma = np.eye(3)
    U = np.array([[0.0], [1.0], [0.0]])
    assert errors(np.ones(3), np.ones(3), sigma, U) == (0.0, 0.0)


def test_config_is_checked():
    with pytest.raises(Exception, match="labelled"):
        parse_experiment({"kind": "rst_linear", "labelled": 0})
