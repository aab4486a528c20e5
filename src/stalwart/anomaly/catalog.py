"""The detectors by name: ours and PyOD's, each built with a seed and its parameters.

``build_detector("drocc", seed=0, n_features=274, radius=16)`` gives an unfitted detector with
the scikit-learn face (``fit``, ``decision_function``: higher = more anomalous). Names starting
with ``pyod_`` are PyOD's own implementations (``stalwart.anomaly.pyod_reference``), run on the
same splits as ours so that the two can be compared side by side.
"""

from __future__ import annotations

import inspect
from typing import Any

from stalwart.anomaly.classical import IsolationForest, OneClassSVM
from stalwart.anomaly.deep import DROCC, DROCCLF, AutoEncoder, DeepSVDD
from stalwart.errors import ConfigError, closest
from stalwart.registry import Registry

OURS = {
    "drocc": DROCC,
    "drocc_lf": DROCCLF,
    "deep_svdd": DeepSVDD,
    "autoencoder": AutoEncoder,
    "ocsvm": OneClassSVM,
    "iforest": IsolationForest,
}
PYOD = ("pyod_autoencoder", "pyod_deep_svdd", "pyod_iforest", "pyod_ocsvm")
DETECTORS: Registry[Any] = Registry("detector")


def _ours(cls: type) -> Any:
    def build(*, seed: int, n_features: int, **params: Any) -> Any:
        valid = [name for name in inspect.signature(cls).parameters if name != "random_state"]
        for key in params:
            if key not in valid:
                raise ConfigError(
                    f"{cls.__name__} has no parameter {key!r}{closest(key, valid)}; "
                    f"valid parameters: {valid}"
                )
        if "random_state" in inspect.signature(cls).parameters:
            params = {**params, "random_state": seed}
        return cls(**params)

    return build


def _pyod(name: str) -> Any:
    def build(*, seed: int, n_features: int, **params: Any) -> Any:
        from stalwart.anomaly.pyod_reference import build_pyod

        return build_pyod(name, seed=seed, n_features=n_features, **params)

    return build


for _name, _cls in OURS.items():
    DETECTORS.register(_name)(_ours(_cls))
for _name in PYOD:
    DETECTORS.register(_name)(_pyod(_name))


def build_detector(name: str, *, seed: int, n_features: int, **params: Any) -> Any:
    """An unfitted detector ``name`` with ``params``, seeded by ``seed``.

    Raises:
        ConfigError: an unknown name (the choices are listed) or parameter.
    """
    return DETECTORS.get(name)(seed=seed, n_features=n_features, **params)
