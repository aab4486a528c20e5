"""One-class anomaly detection: DROCC and DROCC-LF beside the baselines, one face.

Deep SVDD, an autoencoder, OC-SVM, Isolation Forest and PyOD's implementations stand beside
DROCC (Goyal et al., ICML 2020, arXiv 2002.12718), all behind one scikit-learn face.

>>> from stalwart.anomaly import DROCC
>>> detector = DROCC(radius=16, gamma=2.0, lamda=1.0, ascent_steps=50).fit(X_normal)
>>> detector.decision_function(X)     # higher = more anomalous (scikit-learn / PyOD)
>>> detector.predict(X)               # 0/1, by the threshold that `contamination` sets

- ``base``: the estimator face (``fit(X, y=None, eval_set=None)``, ``decision_function``,
  ``score_samples``, ``predict``, ``score``).
- ``deep``: DROCC, DROCC-LF, Deep SVDD and an autoencoder, trained through ``engine.fit``,
  selecting the epoch on labelled validation data (never the test set).
- ``losses``, ``networks``, ``mahalanobis``, ``evaluator``: their parts.
- ``classical``: scikit-learn's One-Class SVM and Isolation Forest.
- ``pyod_reference``: PyOD's detectors as the side-by-side reference.
- ``catalog``: every detector by name; ``benchmark``: detectors × datasets × seeds.
"""

from stalwart.anomaly.base import Detector
from stalwart.anomaly.catalog import DETECTORS, build_detector
from stalwart.anomaly.classical import IsolationForest, OneClassSVM
from stalwart.anomaly.deep import DROCC, DROCCLF, AutoEncoder, CollapseWarning, DeepSVDD

__all__ = [
    "DETECTORS",
    "DROCC",
    "DROCCLF",
    "AutoEncoder",
    "CollapseWarning",
    "DeepSVDD",
    "Detector",
    "IsolationForest",
    "OneClassSVM",
    "build_detector",
]
