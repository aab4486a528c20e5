"""Classical one-class detectors from scikit-learn behind the house's detector face.

One-class SVM (Schölkopf et al., 2001) and Isolation Forest (Liu et al., ICDM 2008), with the
anomaly score flipped to "higher = more anomalous" and a ``contamination`` threshold, so they
sit in the same tables as the deep detectors and PyOD's. Images are flattened.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import IsolationForest as _IsolationForest
from sklearn.preprocessing import StandardScaler
from sklearn.svm import OneClassSVM as _OneClassSVM

from stalwart.anomaly.base import Detector


class _Classical(Detector):
    standardize: bool

    def _estimator(self) -> Any:
        raise NotImplementedError

    def _fit(self, X, y, eval_set) -> None:
        normal = X if y is None else X[y == 0]
        flat = normal.reshape(len(normal), -1)
        self.scaler_ = StandardScaler().fit(flat) if self.standardize else None
        self.estimator_ = self._estimator().fit(self._flat(normal))

    def _flat(self, X: np.ndarray) -> np.ndarray:
        flat = X.reshape(len(X), -1)
        return self.scaler_.transform(flat) if self.scaler_ is not None else flat

    def _anomaly_scores(self, X: np.ndarray) -> np.ndarray:
        # scikit-learn's decision_function is higher for inliers.
        return -self.estimator_.decision_function(self._flat(X)).astype(np.float64)


class OneClassSVM(_Classical):
    """scikit-learn's ``OneClassSVM``; score: minus its signed distance to the boundary.

    Args:
        kernel, nu, gamma: as ``sklearn.svm.OneClassSVM`` (PyOD's OCSVM uses the same
            estimator with ``gamma="auto"``, 1/n_features).
        standardize: z-score the features with the training statistics first.
        contamination: the fraction of training data ``predict`` calls anomalous.
    """

    def __init__(
        self, kernel: str = "rbf", nu: float = 0.5, gamma: str | float = "scale",
        standardize: bool = False, contamination: float = 0.1,
    ) -> None:  # fmt: skip
        self.kernel, self.nu, self.gamma = kernel, nu, gamma
        self.standardize, self.contamination = standardize, contamination

    def _estimator(self) -> Any:
        return _OneClassSVM(kernel=self.kernel, nu=self.nu, gamma=self.gamma)


class IsolationForest(_Classical):
    """scikit-learn's ``IsolationForest``; score: minus its decision function.

    Args:
        n_estimators, max_samples, max_features: as ``sklearn.ensemble.IsolationForest``.
        standardize: z-score the features first (trees do not need it).
        contamination: the fraction of training data ``predict`` calls anomalous.
        random_state: seed of the trees.
    """

    def __init__(
        self, n_estimators: int = 100, max_samples: int | float | str = "auto",
        max_features: float = 1.0, standardize: bool = False, contamination: float = 0.1,
        random_state: Any = None,
    ) -> None:  # fmt: skip
        self.n_estimators, self.max_samples, self.max_features = (
            n_estimators, max_samples, max_features
        )  # fmt: skip
        self.standardize, self.contamination = standardize, contamination
        self.random_state = random_state

    def _estimator(self) -> Any:
        return _IsolationForest(
            n_estimators=self.n_estimators, max_samples=self.max_samples,
            max_features=self.max_features, random_state=self.random_state,
        )  # fmt: skip
