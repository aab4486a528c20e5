"""The detectors' scikit-learn face, DROCC's training and the collapse check."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from stalwart.anomaly import (
    DROCC,
    DROCCLF,
    AutoEncoder,
    CollapseWarning,
    DeepSVDD,
    IsolationForest,
    OneClassSVM,
)
from stalwart.anomaly.deep import nearest_neighbour_scale
from stalwart.anomaly.losses import DROCCLoss
from stalwart.data.core import Batch
from stalwart.errors import ConfigError, DataError
from stalwart.metrics.ranking import auroc

SMALL = {"epochs": 2, "batch_size": 32, "random_state": 0}
DROCC_SMALL = {**SMALL, "warmup_epochs": 1, "ascent_steps": 2}
DETECTORS = [
    (DROCC, DROCC_SMALL), (DROCCLF, DROCC_SMALL), (DeepSVDD, SMALL), (AutoEncoder, SMALL),
    (OneClassSVM, {}), (IsolationForest, {"random_state": 0}),
]  # fmt: skip
IDS = [cls.__name__ for cls, _ in DETECTORS]


def _circle(n: int, seed: int) -> np.ndarray:
    """Normal data on a 1-D manifold: the unit circle in 2-D, with a little noise."""
    rng = np.random.default_rng(seed)
    angle = rng.uniform(0, 2 * math.pi, n)
    return (np.stack([np.cos(angle), np.sin(angle)], 1) + 0.03 * rng.normal(size=(n, 2))).astype(
        np.float32
    )


def _blobs(seed: int = 0):
    rng = np.random.default_rng(seed)
    normal = rng.normal(size=(120, 5)).astype(np.float32)
    anomalies = (rng.normal(size=(20, 5)) + 6).astype(np.float32)
    return normal, anomalies


# --- scikit-learn's own battery ---
# Our fit reads y as anomaly labels (0/1) and refuses anything else, while scikit-learn's checks
# pass multi-class y. The battery runs on subclasses that fit without labels: every other part
# of the face is checked as scikit-learn checks any estimator. (Module level, so they pickle.)


class _UnlabelledMixin:
    def fit(self, X, y=None, eval_set=None):
        return super().fit(X)

    def score(self, X, y=None):
        return float(-self.decision_function(X).mean())


UNLABELLED = {}
for _cls, _ in DETECTORS:
    UNLABELLED[_cls] = type(_cls.__name__, (_UnlabelledMixin, _cls), {"__module__": __name__})
    globals()[f"_Unlabelled{_cls.__name__}"] = UNLABELLED[_cls]
    UNLABELLED[_cls].__qualname__ = f"_Unlabelled{_cls.__name__}"

# float32 matrix products of a subset differ from the full batch's in the 7th digit, under
# scikit-learn's rtol of 1e-7; test_scores_do_not_depend_on_the_batch checks it at 1e-5.
FLOAT32 = {"check_methods_subset_invariance": "float32 rounding differs with the batch"}


@pytest.mark.parametrize(("cls", "params"), DETECTORS, ids=IDS)
def test_scikit_learn_estimator_checks(cls, params):
    expected = FLOAT32 if cls in (DeepSVDD, AutoEncoder, DROCC, DROCCLF) else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(UNLABELLED[cls](**params), on_fail=None,
                                  expected_failed_checks=expected)  # fmt: skip
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]  # fmt: skip
    assert not failed, failed
    assert len(results) > 30


@pytest.mark.parametrize(("cls", "params"), DETECTORS, ids=IDS)
def test_scores_do_not_depend_on_the_batch(cls, params):
    normal, anomalies = _blobs()
    detector = cls(**params).fit(normal)
    x = np.concatenate([normal, anomalies])
    whole = detector.decision_function(x)
    np.testing.assert_allclose(detector.decision_function(x[::3]), whole[::3], rtol=1e-5)


# --- the face ---


@pytest.mark.parametrize(("cls", "params"), DETECTORS, ids=IDS)
def test_face_clone_params_fitted_state_and_idempotent_fit(cls, params):
    normal, anomalies = _blobs()
    detector = cls(**params)
    assert clone(detector).get_params() == detector.get_params()
    with pytest.raises(NotFittedError):
        detector.decision_function(normal)
    assert not [k for k in vars(detector) if k.endswith("_") and not k.startswith("_")]
    x = np.concatenate([normal, anomalies])
    first = detector.fit(normal).decision_function(x)
    before = {k: v for k, v in vars(detector).items()}
    labels = detector.predict(x)
    assert vars(detector).keys() == before.keys()  # predicting sets nothing
    second = clone(detector).fit(normal).decision_function(x)
    np.testing.assert_allclose(first, second, rtol=1e-6)  # same seed, same detector
    assert set(np.unique(labels)) <= {0, 1}
    if cls not in (DROCC, DROCCLF):  # two epochs teach DROCC nothing (see the manifold test)
        truth = torch.from_numpy(np.r_[np.zeros(120), np.ones(20)])
        assert auroc(torch.from_numpy(first), truth) > 0.9
    np.testing.assert_allclose(detector.score_samples(x), -first, rtol=1e-6)
    # contamination: the threshold flags that fraction of the training data
    assert abs(detector.labels_.mean() - detector.contamination) <= 0.02


@pytest.mark.parametrize(("cls", "params"), DETECTORS[:4], ids=IDS[:4])
def test_deep_detectors_train_and_score_is_not_constant(cls, params):
    normal, anomalies = _blobs()
    torch.manual_seed(0)
    untrained = cls(**{**params, "epochs": 2}).fit(normal)
    weights = {k: v.clone() for k, v in untrained.network_.state_dict().items()}
    trained = cls(**{**params, "epochs": 6}).fit(normal)
    changed = [not torch.equal(weights[k], v) for k, v in trained.network_.state_dict().items()
               if v.is_floating_point() and k != "center"]  # fmt: skip
    assert any(changed)
    scores = trained.decision_function(np.concatenate([normal, anomalies]))
    assert np.ptp(scores) > 1e-6 and len(np.unique(scores)) > 100


def test_drocc_learns_a_one_dimensional_manifold():
    """DROCC's premise: normal data near a low-dimensional manifold (here a circle).

    Anomalies lie inside the circle and outside it. A classifier trained on the normal points
    alone (λ = 0: the BCE term without searched negatives) lets its logit grow outwards: it
    ranks the inner points below the circle and the outer ones above, about chance overall.
    The searched negatives bound the normal region from both sides.
    """
    normal = _circle(400, seed=0)
    rng = np.random.default_rng(1)
    angle = rng.uniform(0, 2 * math.pi, 400)
    length = np.r_[rng.uniform(0, 0.5, 200), rng.uniform(1.5, 2.5, 200)]
    around = length[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1)
    test = np.concatenate([_circle(200, seed=2), around.astype(np.float32)])
    truth = torch.from_numpy(np.r_[np.zeros(200), np.ones(400)])
    found = {}
    for lamda in (0.0, 1.0):
        detector = DROCC(radius=0.3, gamma=2.0, lamda=lamda, ascent_steps=10,
                         ascent_step_size=0.05, epochs=30, warmup_epochs=5, lr=3e-3,
                         batch_size=64, hidden=64, random_state=0)  # fmt: skip
        scores = detector.fit(normal).decision_function(test)
        found[lamda] = auroc(torch.from_numpy(scores), truth)
    assert found[1.0] > 0.75, found
    assert found[0.0] < 0.6, found


def test_drocc_search_ends_in_the_annulus_around_each_positive():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    loss = DROCCLoss(radius=0.5, gamma=2.0, ascent_steps=20, ascent_step_size=0.1,
                     project_every=10)  # fmt: skip
    x = torch.randn(16, 3)
    found = loss.search(model, x)
    distance = (found - x).norm(dim=1)
    assert (distance >= 0.5 - 1e-5).all() and (distance <= 1.0 + 1e-5).all()


def test_drocc_loss_is_bce_alone_without_lambda_and_adds_the_negatives_with_it():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    x, y = torch.randn(8, 3), torch.tensor([0, 0, 0, 0, 0, 0, 1, 1])
    batch = Batch(x, y, y, torch.arange(8))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        model(x).reshape(8), (y == 0).float()
    )
    torch.testing.assert_close(DROCCLoss(radius=1.0, lamda=0.0).loss(model, batch), bce)
    torch.manual_seed(1)
    with_negatives = DROCCLoss(radius=1.0, lamda=2.0, ascent_steps=3).loss(model, batch)
    torch.manual_seed(1)
    negatives = DROCCLoss(radius=1.0, lamda=2.0, ascent_steps=3).search(model, x[:6])
    logits = model(negatives).reshape(6)
    extra = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.zeros(6))
    torch.testing.assert_close(with_negatives, bce + 2.0 * extra)


def test_labelled_anomalies_are_negatives_for_drocc_and_left_out_by_one_class_detectors():
    normal, anomalies = _blobs()
    x = np.concatenate([normal, anomalies])
    y = np.r_[np.zeros(120, int), np.ones(20, int)]
    forest = IsolationForest(random_state=0)
    np.testing.assert_array_equal(
        forest.fit(x, y).decision_function(x), clone(forest).fit(normal).decision_function(x)
    )
    svdd = DeepSVDD(**SMALL)
    np.testing.assert_allclose(
        svdd.fit(x, y).decision_function(x), clone(svdd).fit(normal).decision_function(x)
    )
    drocc = DROCC(**DROCC_SMALL)
    assert not np.allclose(
        drocc.fit(x, y).decision_function(x), clone(drocc).fit(normal).decision_function(x)
    )


def test_eval_set_selects_the_epoch_on_validation_data():
    normal, anomalies = _blobs()
    val_x = np.concatenate([normal[:30], anomalies[:10]])
    val_y = np.r_[np.zeros(30, int), np.ones(10, int)]
    detector = AutoEncoder(epochs=5, batch_size=32, random_state=0)
    detector.fit(normal[30:], eval_set=(val_x, val_y))
    aurocs = [record["val"]["auroc"] for record in detector.history_]
    assert detector.best_epoch_ == 1 + int(np.argmax(aurocs))
    without = clone(detector).fit(normal[30:])
    assert without.best_epoch_ == 5  # nothing to select on: the last epoch
    assert math.isnan(without.history_[0]["val"]["auroc"])


def test_drocc_lf_selects_on_recall_at_3pct_fpr():
    normal, anomalies = _blobs()
    val = (np.concatenate([normal[:40], anomalies]), np.r_[np.zeros(40, int), np.ones(20, int)])
    detector = DROCCLF(**{**DROCC_SMALL, "epochs": 4}).fit(normal[40:], eval_set=val)
    recalls = [record["val"]["recall_at_3pct_fpr"] for record in detector.history_[1:]]
    assert detector.best_epoch_ == 2 + int(np.argmax(recalls))
    assert detector.metric == "mahalanobis" and detector.project_every == 5


def test_radius_auto_is_the_nearest_neighbour_scale():
    grid = torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 3.0], [0.0, 3.0]])  # a duplicate row
    assert nearest_neighbour_scale(grid) == pytest.approx(1.0)  # 1, 1, 2 (duplicate skipped)
    detector = DROCC(**DROCC_SMALL).fit(_circle(100, 0))
    points = (_circle(100, 0) - _circle(100, 0).mean(0)) / _circle(100, 0).std(0)
    assert detector.radius_ == pytest.approx(nearest_neighbour_scale(torch.from_numpy(points)),
                                             rel=1e-4)  # fmt: skip


def test_deep_svdd_reports_a_collapsed_representation(monkeypatch):
    from stalwart.anomaly.networks import CenterDistance

    original = CenterDistance.set_center

    def collapse(self, x, eps=0.1):
        original(self, x, eps)
        for parameter in self.encoder.parameters():
            torch.nn.init.zeros_(parameter)  # every input maps to the same point

    monkeypatch.setattr(CenterDistance, "set_center", collapse)
    normal, _ = _blobs()
    with pytest.warns(CollapseWarning, match="collapsed"):
        detector = DeepSVDD(**SMALL).fit(normal)
    assert detector.collapsed_
    monkeypatch.setattr(CenterDistance, "set_center", original)
    assert not DeepSVDD(**SMALL).fit(normal).collapsed_


def test_pipeline_and_grid_search():
    normal, anomalies = _blobs()
    x = np.concatenate([normal, anomalies])
    y = np.r_[np.zeros(120, int), np.ones(20, int)]
    pipeline = make_pipeline(StandardScaler(), IsolationForest(random_state=0)).fit(normal)
    assert pipeline.decision_function(anomalies).min() > pipeline.decision_function(normal).mean()
    folds = StratifiedKFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(OneClassSVM(), {"nu": [0.1, 0.5], "gamma": [0.01, 1.0]}, cv=folds)
    search.fit(x, y)  # score: AUROC on each fold's labels
    assert search.best_score_ > 0.9 and set(search.best_params_) == {"nu", "gamma"}
    deep = GridSearchCV(DeepSVDD(**SMALL), {"hidden": [(8, 4), (16, 8)]}, cv=folds).fit(x, y)
    assert deep.best_params_["hidden"] in [(8, 4), (16, 8)]


# --- bad input ---


@pytest.mark.parametrize(("cls", "params"), DETECTORS, ids=IDS)
def test_bad_input_is_rejected_with_a_clear_message(cls, params):
    normal, _ = _blobs()
    detector = cls(**params)
    with_nan = normal.copy()
    with_nan[3, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        detector.fit(with_nan)
    with_inf = normal.copy()
    with_inf[0, 0] = np.inf
    with pytest.raises(DataError, match="infinity"):
        detector.fit(with_inf)
    with pytest.raises(DataError, match="1 sample"):
        detector.fit(normal[:1])
    with pytest.raises(DataError, match="must be 0 .normal. or 1 .anomaly."):
        detector.fit(normal, np.full(len(normal), 2))
    with pytest.raises(DataError, match="every sample as an anomaly"):
        detector.fit(normal, np.ones(len(normal), int))
    detector.fit(normal)
    with pytest.raises(DataError, match="X has 3 features, but .* is expecting 5"):
        detector.predict(normal[:, :3])
    with pytest.raises(DataError, match="both normal"):
        detector.score(normal, np.zeros(len(normal), int))


def test_bad_parameters_are_named():
    normal, _ = _blobs()
    with pytest.raises(ConfigError, match="contamination"):
        IsolationForest(contamination=0.7).fit(normal)
    with pytest.raises(ConfigError, match="warmup_epochs must lie in"):
        DROCC(epochs=3, warmup_epochs=3).fit(normal)
    with pytest.raises(ConfigError, match="radius must be a number or 'auto'"):
        DROCC(radius="big", **DROCC_SMALL).fit(normal)
    with pytest.raises(ConfigError, match="annulus radius r must be > 0"):
        DROCC(radius=-1.0, **DROCC_SMALL).fit(normal)
    with pytest.raises(ConfigError, match="select 'accuracy'.*choose from"):
        DROCC(select="accuracy", **DROCC_SMALL).fit(normal)


def test_classical_detectors_equal_pyods_at_the_same_settings():
    """Same splits, same settings: ours and PyOD's One-Class SVM and Isolation Forest agree.

    (PyOD's OCSVM defaults to gamma="auto", 1/n_features; ours to scikit-learn's "scale".)
    """
    from stalwart.anomaly.pyod_reference import build_pyod
    from stalwart.data.one_class import breast_cancer

    data = breast_cancer(seed=0)
    pairs = [
        (OneClassSVM(gamma="auto"), build_pyod("pyod_ocsvm", seed=0, n_features=30)),
        (IsolationForest(random_state=3), build_pyod("pyod_iforest", seed=3, n_features=30)),
    ]
    for ours, theirs in pairs:
        a = ours.fit(data.train_x).decision_function(data.test_x)
        b = theirs.fit(data.train_x.astype(np.float64)).decision_function(data.test_x)
        # We compute in float32, PyOD in float64: the SVM's offset moves in the 4th digit,
        # the ranking does not.
        np.testing.assert_allclose(a - a.mean(), b - b.mean(), atol=1e-4 * np.ptp(b))
        truth = torch.from_numpy(data.test_y)
        assert auroc(torch.from_numpy(a), truth) == pytest.approx(
            auroc(torch.from_numpy(b), truth), abs=1e-3
        )


def test_drocc_warms_up_then_drops_the_learning_rate_at_30_60_90_percent():
    normal, _ = _blobs()
    detector = DROCC(**{**DROCC_SMALL, "epochs": 12, "warmup_epochs": 2}).fit(normal)
    lrs = [record["lr"] for record in detector.history_]
    assert lrs[:2] == [1e-3, 1e-3]  # warm-up: BCE alone, constant
    drocc = lrs[2:]
    expected = [1e-3] * 3 + [1e-4] * 3 + [1e-5] * 3 + [1e-6]
    np.testing.assert_allclose(drocc, expected, rtol=1e-9)
    assert [record["epoch"] for record in detector.history_] == list(range(1, 13))
