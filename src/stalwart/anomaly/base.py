"""The estimator face every detector shares, in the scikit-learn and PyOD conventions.

- The constructor only stores its parameters; ``fit`` validates the data and learns; what it
  learns ends in ``_`` (``get_params`` / ``set_params`` / ``clone`` work, so a detector fits in
  a ``Pipeline`` and in ``GridSearchCV``).
- ``decision_function(X)``: the anomaly score, **higher = more anomalous** (PyOD's convention;
  DROCC's own logit is the opposite, higher = more normal, so we negate it).
- ``score_samples(X)``: minus that, higher = more normal (scikit-learn's convention).
- ``predict(X)``: 1 for an anomaly, 0 for a normal point: anomalous when the score exceeds
  ``threshold_``, the quantile that marks a fraction ``contamination`` of the training data.
- ``score(X, y)``: AUROC of the anomaly score against ``y`` (1 = anomaly), so that
  ``GridSearchCV`` can select parameters on labelled validation data.

``fit(X, y=None)``: without ``y`` every row of ``X`` is normal. With ``y`` (1 = anomaly), the
one-class detectors learn from the normal rows only, and DROCC also uses the labelled anomalies
as negatives (the limited-negatives setting of DROCC-LF).
"""

from __future__ import annotations

import numbers
from abc import abstractmethod
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from stalwart.errors import ConfigError, DataError


class Detector(BaseEstimator):
    """Base of the detectors: validation, scores, threshold and labels.

    Subclasses implement ``_fit(X, y, eval_set)`` (``y``: 1 = anomaly, or ``None``) and
    ``_anomaly_scores(X)``; ``X`` reaches them validated, as float32.
    """

    contamination: float

    def fit(self, X: Any, y: Any = None, eval_set: tuple[Any, Any] | None = None) -> Detector:
        """Learn from ``X`` (normal data, or labelled with ``y``: 1 = anomaly).

        Args:
            X: ``(n_samples, n_features)``, or images ``(n_samples, channels, height, width)``.
            y: optional labels, 1 for a known anomaly and 0 for a normal point.
            eval_set: optional labelled validation data ``(X_val, y_val)`` (1 = anomaly) on
                which the deep detectors select their epoch; never the test data.

        Returns:
            The fitted detector.

        Raises:
            DataError: NaN or infinite values, fewer than two samples, labels other than
                0/1, no normal sample, or an ``eval_set`` of another shape.
            ConfigError: an invalid parameter.
        """
        self._check_contamination()
        X = self._validated(X, reset=True)
        labels = self._labels(y, len(X), "y")
        if labels is not None and not (labels == 0).any():
            raise DataError("y marks every sample as an anomaly; a detector needs normal data")
        evaluation = None
        if eval_set is not None:
            if not (isinstance(eval_set, (tuple, list)) and len(eval_set) == 2):
                raise DataError("eval_set must be a pair (X_val, y_val) with y_val 1 = anomaly")
            x_val = self._validated(eval_set[0], reset=False)
            evaluation = (x_val, self._labels(eval_set[1], len(x_val), "eval_set's y_val"))
        self._fit(X, labels, evaluation)
        normal = X if labels is None else X[labels == 0]
        self.decision_scores_ = self._anomaly_scores(normal)
        # Ties at the quantile count as normal: a constant score flags nothing.
        self.threshold_ = float(np.quantile(self.decision_scores_, 1.0 - self.contamination))
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """The anomaly score of each sample: higher = more anomalous."""
        check_is_fitted(self)
        return self._anomaly_scores(self._validated(X, reset=False))

    def score_samples(self, X: Any) -> np.ndarray:
        """Minus the anomaly score: higher = more normal (scikit-learn's convention)."""
        return -self.decision_function(X)

    def predict(self, X: Any) -> np.ndarray:
        """1 for an anomaly, 0 for a normal point, by ``threshold_`` (see ``contamination``)."""
        return (self.decision_function(X) > self.threshold_).astype(np.int64)

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit on ``X``, then label the same samples."""
        return self.fit(X, y).predict(X)

    def score(self, X: Any, y: Any) -> float:
        """AUROC of ``decision_function(X)`` against ``y`` (1 = anomaly): for model selection."""
        from stalwart.metrics.ranking import auroc

        labels = self._labels(y, len(X), "y")
        if labels is None or labels.min() == labels.max():
            raise DataError("score needs labels with both normal (0) and anomalous (1) samples")
        return auroc(self.decision_function(X), labels)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.required = False
        return tags

    # --- for subclasses ---

    @abstractmethod
    def _fit(
        self, X: np.ndarray, y: np.ndarray | None, eval_set: tuple[np.ndarray, np.ndarray] | None
    ) -> None:
        """Learn the detector's state from validated data."""

    @abstractmethod
    def _anomaly_scores(self, X: np.ndarray) -> np.ndarray:
        """Anomaly scores of validated data, float64, higher = more anomalous."""

    # --- validation ---

    def _check_contamination(self) -> None:
        value = self.contamination
        if not isinstance(value, numbers.Real) or not 0.0 < value <= 0.5:
            raise ConfigError(
                f"{type(self).__name__}: contamination is the expected fraction of anomalies, "
                f"in (0, 0.5]; got {value!r}"
            )

    def _validated(self, X: Any, *, reset: bool) -> np.ndarray:
        """``X`` as a finite float32 array, 2-D or images, with the fitted feature count."""
        name = type(self).__name__
        try:
            X = validate_data(
                self, X, reset=reset, dtype=np.float32, allow_nd=True,
                ensure_min_samples=2 if reset else 1,
            )  # fmt: skip
        except ValueError as error:
            raise DataError(f"{name}: {error}") from None
        if X.ndim not in (2, 4):
            raise DataError(
                f"{name}: X must be (n_samples, n_features) or images (n_samples, channels, "
                f"height, width); got shape {X.shape}"
            )
        if reset:
            self.input_shape_ = tuple(X.shape[1:])
        elif tuple(X.shape[1:]) != self.input_shape_:
            raise DataError(
                f"{name}: X has samples of shape {tuple(X.shape[1:])}, but {name} was fitted on "
                f"samples of shape {self.input_shape_}"
            )
        return X

    def _labels(self, y: Any, n: int, what: str) -> np.ndarray | None:
        if y is None:
            return None
        labels = np.asarray(y)
        if labels.ndim != 1 or len(labels) != n:
            raise DataError(
                f"{type(self).__name__}: {what} must hold one label per sample ({n}); got shape "
                f"{labels.shape}"
            )
        if not np.isin(labels, (0, 1)).all():
            found = sorted({str(v) for v in np.unique(labels)})[:5]
            raise DataError(
                f"{type(self).__name__}: {what} must be 0 (normal) or 1 (anomaly); found {found}"
            )
        return labels.astype(np.int64)
