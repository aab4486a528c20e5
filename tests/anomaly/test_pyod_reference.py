"""PyOD reference detectors: they detect, are seeded and quiet, and refuse bad names and params."""

import pickle
import random
import sys
import warnings

import numpy as np
import pytest
import torch

from stalwart.anomaly.pyod_reference import PYOD_DETECTORS, build_pyod
from stalwart.errors import ConfigError
from stalwart.metrics import auroc, threshold_at_contamination

pytest.importorskip("pyod", reason='PyOD is missing: pip install "stalwart[anomaly]"')

NAMES = sorted(PYOD_DETECTORS)
SEEDED = [name for name in NAMES if name != "pyod_ocsvm"]  # OC-SVM has no randomness
FAST = {"pyod_deep_svdd": {"epochs": 10}}  # PyOD's default is 100 epochs


def data(seed=0):
    """200 Gaussian normals in 5-D to train on; 100 normals and 30 far anomalies to test on."""
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(200, 5))
    far = rng.normal(size=(30, 5)) + 6 * rng.choice([-1.0, 1.0], size=(30, 5))
    test = np.concatenate([rng.normal(size=(100, 5)), far])
    anomalous = np.r_[np.zeros(100), np.ones(30)]
    return train, test, anomalous


def build(name, seed=0, **params):
    return build_pyod(name, seed=seed, n_features=5, **{**FAST.get(name, {}), **params})


@pytest.mark.parametrize("name", NAMES)
def test_each_detector_finds_far_anomalies(name):
    train, test, anomalous = data()
    detector = build(name).fit(train)
    scores = detector.decision_function(test)  # higher = more anomalous
    assert auroc(torch.tensor(scores), torch.tensor(anomalous)) > 0.9
    # PyOD's threshold_ is the (1 - contamination) quantile of the training scores.
    assert detector.threshold_ == threshold_at_contamination(detector.decision_scores_, 0.1)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_scores_whatever_runs_in_between(name):
    train, test, _ = data()
    # Built together, then fitted with other draws from the global generators in between: PyOD
    # alone seeds torch in the constructor only, and DeepSVDD shuffles with numpy's global one.
    first, second, other = build(name, seed=0), build(name, seed=0), build(name, seed=1)
    first.fit(train)
    torch.rand(10), np.random.rand(10), random.random()
    second.fit(train)
    other.fit(train)
    assert np.array_equal(first.decision_function(test), second.decision_function(test))
    if name in SEEDED:
        assert not np.allclose(first.decision_function(test), other.decision_function(test))
    else:
        assert np.array_equal(first.decision_function(test), other.decision_function(test))


@pytest.mark.parametrize("name", SEEDED)
def test_building_and_fitting_leave_the_global_generators_alone(name):
    train, _, _ = data()
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    expected = random.random(), np.random.rand(), torch.rand(1).item()
    random.seed(7), np.random.seed(7), torch.manual_seed(7)
    build(name).fit(train)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


@pytest.mark.parametrize("name", NAMES)
def test_fit_prints_and_warns_nothing(name, capfd):
    train, test, _ = data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build(name).fit(train).decision_function(test)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_pyod_defaults_are_kept_except_quiet_and_seeded():
    svdd = build_pyod("pyod_deep_svdd", seed=3, n_features=5).get_params()
    assert svdd["epochs"] == 100 and svdd["batch_size"] == 32 and svdd["learning_rate"] == 1e-4
    assert svdd["hidden_neurons"] == [64, 32] and svdd["preprocessing"] is True
    assert (svdd["verbose"], svdd["random_state"], svdd["n_features"]) == (0, 3, 5)
    ae = build_pyod("pyod_autoencoder", seed=3, n_features=5).get_params()
    assert ae["epoch_num"] == 10 and ae["batch_size"] == 32 and ae["lr"] == 1e-3
    assert ae["hidden_neuron_list"] == [64, 32] and ae["preprocessing"] is True
    assert (ae["verbose"], ae["random_state"]) == (0, 3)
    assert build_pyod("pyod_iforest", seed=3, n_features=5).get_params()["random_state"] == 3
    ocsvm = build_pyod("pyod_ocsvm", seed=3, n_features=5, contamination=0.2, nu=0.1)
    assert (ocsvm.nu, ocsvm.contamination, ocsvm.kernel) == (0.1, 0.2, "rbf")
    loud = build_pyod("pyod_deep_svdd", seed=3, n_features=5, verbose=2)
    assert loud.verbose == 2  # verbose may still be asked for


@pytest.mark.parametrize("name", ["pyod_deep_svdd", "pyod_autoencoder"])
def test_seeded_torch_detectors_pickle(name):
    train, test, _ = data()
    detector = build(name).fit(train)
    again = pickle.loads(pickle.dumps(detector))
    assert type(again) is type(detector)
    assert np.array_equal(again.decision_function(test), detector.decision_function(test))


def test_unknown_name_lists_the_choices():
    with pytest.raises(ConfigError, match=r"did you mean 'pyod_deep_svdd'.*pyod_autoencoder"):
        build_pyod("pyod_deepsvdd", seed=0, n_features=5)
    with pytest.raises(ConfigError, match="unknown PyOD detector"):
        build_pyod("drocc", seed=0, n_features=5)


def test_bad_params_are_named():
    with pytest.raises(ConfigError, match=r"no parameter 'epoch'.*did you mean 'epochs'"):
        build_pyod("pyod_deep_svdd", seed=0, n_features=5, epoch=3)
    with pytest.raises(ConfigError, match=r"'n_estimator'.*'n_estimators'.*'max_samples'"):
        build_pyod("pyod_iforest", seed=0, n_features=5, n_estimator=3)
    with pytest.raises(ConfigError, match="pass the seed as seed="):
        build_pyod("pyod_iforest", seed=0, n_features=5, random_state=3)
    with pytest.raises(ConfigError, match="refused its settings: dropout_rate"):
        build_pyod("pyod_deep_svdd", seed=0, n_features=5, dropout_rate=3.0)
    with pytest.raises(ConfigError, match="contamination must be in"):
        build_pyod("pyod_iforest", seed=0, n_features=5, contamination=0.7)
    with pytest.raises(ConfigError, match="seed must be a whole number"):
        build_pyod("pyod_iforest", seed=-1, n_features=5)
    with pytest.raises(ConfigError, match="n_features must be a whole number"):
        build_pyod("pyod_iforest", seed=0, n_features=0)


def test_fit_refuses_data_it_cannot_use():
    train, _, _ = data()
    with pytest.raises(ConfigError, match="built for n_features=4 but X has 5 columns"):
        build_pyod("pyod_deep_svdd", seed=0, n_features=4).fit(train)
    with pytest.raises(ConfigError, match="would not train at all; pass batch_size=20 or less"):
        build_pyod("pyod_autoencoder", seed=0, n_features=5).fit(train[:20])


def test_missing_pyod_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyod.models.iforest", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r'pip install "stalwart\[anomaly\]".*pyod==3\.6\.7'):
        build_pyod("pyod_iforest", seed=0, n_features=5)
