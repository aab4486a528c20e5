"""PyOD detectors as side-by-side references for one-class anomaly detection (DROCC).

DROCC (Goyal et al., "DROCC: Deep Robust One-Class Classification", ICML 2020, arXiv
2002.12718) compares against OC-SVM, Deep SVDD (Ruff et al., ICML 2018), autoencoder-based
detectors and Isolation Forest (Liu et al., ICDM 2008). PyOD (Zhao et al., JMLR 2019;
yzhao062/pyod, BSD-2, pinned to 3.6.7 by the ``anomaly`` extra) implements them behind one
interface, and ``build_pyod`` returns those detectors with PyOD's own defaults, so that a
comparison uses code the field already uses:

- ``fit(X)`` is unsupervised (``y`` is ignored), and ``decision_function(X)`` is an anomaly
  score, **higher = more anomalous**: the opposite sign of DROCC's logit, which is higher for
  normal points. ``decision_scores_``, ``threshold_`` and ``labels_`` are set by ``fit``, with
  ``threshold_`` at the ``1 − contamination`` quantile of the training scores
  (``stalwart.metrics.threshold_at_contamination``).

Only two things differ from PyOD's defaults. The detectors are quiet: ``verbose=0`` for
DeepSVDD (PyOD prints one line per epoch at ``verbose >= 1``) and AutoEncoder (a tqdm bar at
``verbose=1``, a line per epoch at 2). And they are seeded from ``seed``: ``random_state``
where the model takes one (OCSVM takes none and is deterministic). PyOD seeds torch once, in
the constructor, and its networks are built and trained in ``fit``, so anything that draws
from the global generators in between changes the result, and DeepSVDD's ``fit`` also shuffles
with numpy's unseeded global generator. The two torch detectors are therefore returned as
:class:`SeededDeepSVDD` and :class:`SeededAutoEncoder`, subclasses whose ``fit`` seeds Python,
numpy and torch from ``random_state`` first: the same seed gives the same scores, bit for bit
on one machine (checked on CPU; PyOD's AutoEncoder trains on CUDA when there is one). Building
and fitting leave the caller's global random state as they found it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import numbers
import os
import random
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from stalwart.errors import ConfigError, closest, shorten

PYOD_VERSION = "3.6.7"
"""The PyOD release these references were checked against (the ``anomaly`` extra pins it)."""

PYOD_INSTALL = f'pip install "stalwart[anomaly]"  (or pip install pyod=={PYOD_VERSION})'


@dataclass(frozen=True)
class _Spec:
    """Where a detector lives in PyOD and what the builder sets on it."""

    module: str
    cls: str
    quiet: dict[str, Any] = field(default_factory=dict)
    seeded_subclass: str | None = None  # the name of its reseeding subclass in this module
    takes_n_features: bool = False


_SPECS: dict[str, _Spec] = {
    "pyod_autoencoder": _Spec(
        "pyod.models.auto_encoder", "AutoEncoder", {"verbose": 0}, "SeededAutoEncoder"
    ),
    "pyod_deep_svdd": _Spec(
        "pyod.models.deep_svdd", "DeepSVDD", {"verbose": 0}, "SeededDeepSVDD", True
    ),
    "pyod_iforest": _Spec("pyod.models.iforest", "IForest"),
    "pyod_ocsvm": _Spec("pyod.models.ocsvm", "OCSVM"),
}

# Set by the builder's own arguments (seed=, n_features=, contamination=), never by **params.
_SET_BY_BUILDER = ("random_state", "n_features", "contamination")


@contextlib.contextmanager
def _global_random_state_kept() -> Iterator[None]:
    """Restore Python's, numpy's and torch's global generators (and PYTHONHASHSEED) on exit.

    PyOD's deep detectors call ``random.seed``, ``np.random.seed`` and ``torch.manual_seed``
    and set ``os.environ["PYTHONHASHSEED"]``; a reference baseline should not reseed the
    caller's program.
    """
    import numpy as np
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    hash_seed = os.environ.get("PYTHONHASHSEED")
    # CUDA generators are saved only once CUDA is up: saving them would start it otherwise.
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        if hash_seed is None:
            os.environ.pop("PYTHONHASHSEED", None)
        else:
            os.environ["PYTHONHASHSEED"] = hash_seed


class _SeededFit:
    """Mixin for a PyOD torch detector: ``fit`` seeds every global generator it draws from.

    With ``random_state=None`` ``fit`` is PyOD's own, unseeded.
    """

    random_state: int | None
    _drops_last_batch = False

    def fit(self, X: Any, y: Any = None) -> Any:
        """Fit as PyOD does, after seeding Python, numpy and torch from ``random_state``."""
        import numpy as np

        shape = np.shape(X)
        n_features = getattr(self, "n_features", None)
        name = type(self).__name__
        if n_features is not None and len(shape) == 2 and shape[1] != n_features:
            raise ConfigError(
                f"{name} was built for n_features={n_features} but X has {shape[1]} columns; "
                f"build it with n_features={shape[1]}"
            )
        batch_size = getattr(self, "batch_size", None)
        if self._drops_last_batch and len(shape) >= 1 and batch_size and shape[0] < batch_size:
            raise ConfigError(
                f"{name} trains on full batches only (PyOD drops the last incomplete one), so "
                f"with {shape[0]} samples and batch_size={batch_size} it would not train at "
                f"all; pass batch_size={shape[0]} or less"
            )
        if self.random_state is None:
            return super().fit(X, y)  # type: ignore[misc]
        import torch

        with _global_random_state_kept():
            random.seed(self.random_state)
            np.random.seed(self.random_state)
            torch.manual_seed(self.random_state)
            return super().fit(X, y)  # type: ignore[misc]


def _import_pyod(module: str) -> types.ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ConfigError(
            f"the PyOD reference detectors need PyOD ({error}); install it with\n    {PYOD_INSTALL}"
        ) from None


@functools.cache
def _seeded_class(name: str) -> type:
    """The reseeding subclass ``name`` of a PyOD detector, created on first use."""
    spec = next(spec for spec in _SPECS.values() if spec.seeded_subclass == name)
    base = getattr(_import_pyod(spec.module), spec.cls)
    namespace = {
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": f"PyOD's {spec.cls}, whose ``fit`` seeds the global generators first.",
        "_drops_last_batch": spec.cls == "AutoEncoder",
    }
    return types.new_class(name, (_SeededFit, base), exec_body=lambda ns: ns.update(namespace))


def __getattr__(name: str) -> type:
    # SeededDeepSVDD and SeededAutoEncoder are created when first asked for, so that importing
    # this module does not import PyOD, and pickle finds them here by name.
    if any(spec.seeded_subclass == name for spec in _SPECS.values()):
        cls = _seeded_class(name)
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _whole_number(value: Any, name: str, low: int, high: int | None = None) -> int:
    upper = f" and below {high}" if high is not None else ""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < low
        or (high is not None and value >= high)
    ):
        raise ConfigError(
            f"{name} must be a whole number, at least {low}{upper}; got {shorten(value)}"
        )
    return int(value)


def build_pyod(
    name: str, *, seed: int, n_features: int, contamination: float = 0.1, **params: Any
) -> Any:
    """A PyOD detector with PyOD's defaults, quiet and seeded.

    Detectors: ``pyod_deep_svdd`` (Deep SVDD, Ruff et al., ICML 2018), ``pyod_autoencoder``
    (reconstruction error of an autoencoder; Aggarwal, "Outlier Analysis", 2015, Ch. 3),
    ``pyod_iforest`` (Isolation Forest, Liu et al., ICDM 2008, through scikit-learn) and
    ``pyod_ocsvm`` (one-class SVM, Schölkopf et al., Neural Computation 2001, through
    scikit-learn). Their PyOD 3.6.7 defaults, which ``params`` override by name:

    - DeepSVDD: ``epochs=100``, ``batch_size=32``, ``learning_rate=1e-4`` with ``optimizer=
      "adam"`` and ``l2_regularizer=5e-7`` (weight decay), ``hidden_neurons=[64, 32]`` (bias-free
      layers, ReLU, ``dropout_rate=0.2``), inputs standardized (``preprocessing=True``,
      scikit-learn's ``StandardScaler``); the center is the mean output of the untrained
      network, and the epoch of lowest training loss is kept.
    - AutoEncoder: ``epoch_num=10``, ``batch_size=32``, ``lr=1e-3`` with ``optimizer_name=
      "adam"`` and ``optimizer_params={"weight_decay": 1e-5}``, ``hidden_neuron_list=[64, 32]``
      (so 64-32-64 with batch norm, ReLU, ``dropout_rate=0.2``), inputs standardized
      (``preprocessing=True``), ``device`` CUDA when available; score = Euclidean
      reconstruction error of the standardized input. Its first scoring in a process, which
      ``fit`` runs, JIT-compiles a numba helper (``pyod.utils.stat_models``): seconds that a
      timed first fit includes.
    - IForest: ``n_estimators=100``, ``max_samples="auto"``, ``n_jobs=1``; inputs as given.
    - OCSVM: ``kernel="rbf"``, ``gamma="auto"`` (1 / n_features), ``nu=0.5``; inputs as given.

    Args:
        name: one of ``PYOD_DETECTORS``.
        seed: the detector's ``random_state`` (OCSVM is deterministic and has none), and for
            the torch detectors the seed of Python, numpy and torch at the start of ``fit``.
        n_features: the input width; DeepSVDD builds its network for it (the others read the
            width from ``X``).
        contamination: PyOD's expected anomaly fraction, in (0, 0.5]; it only sets
            ``threshold_`` and ``labels_`` / ``predict``, never the scores.
        **params: other constructor arguments of the PyOD class, by their PyOD names
            (``verbose`` included, to see progress again).

    Returns:
        An unfitted PyOD detector: ``fit(X)``, then ``decision_function(X)``, higher = more
        anomalous.

    Raises:
        ConfigError: an unknown detector or parameter, a bad value PyOD refuses on
            construction, or PyOD is not installed.
    """
    spec = _SPECS.get(name) if isinstance(name, str) else None
    if spec is None:
        raise ConfigError(
            f"unknown PyOD detector {shorten(name)}{closest(str(name), _SPECS)}; "
            f"choose from {sorted(_SPECS)}"
        )
    seed = _whole_number(seed, "seed", 0, 2**32)
    n_features = _whole_number(n_features, "n_features", 1)
    base = getattr(_import_pyod(spec.module), spec.cls)
    cls = _seeded_class(spec.seeded_subclass) if spec.seeded_subclass else base

    accepted = [p for p in inspect.signature(base.__init__).parameters if p != "self"]
    valid = sorted(p for p in accepted if p not in _SET_BY_BUILDER)
    for key in params:
        if key == "random_state":
            raise ConfigError(
                f"PyOD detector {name!r}: pass the seed as seed= (it becomes random_state where "
                "the model takes one), not as random_state"
            )
        if key not in valid:
            raise ConfigError(
                f"PyOD detector {name!r} ({spec.cls}) has no parameter "
                f"{shorten(key)}{closest(key, valid)}; its parameters are {valid}"
            )

    kwargs: dict[str, Any] = {"contamination": contamination, **spec.quiet}
    if "random_state" in accepted:
        kwargs["random_state"] = seed
    if spec.takes_n_features:
        kwargs["n_features"] = n_features
    kwargs.update(params)
    try:
        with _global_random_state_kept():  # PyOD's deep detectors reseed in the constructor
            return cls(**kwargs)
    except (ValueError, TypeError) as error:
        raise ConfigError(
            f"PyOD detector {name!r} ({spec.cls}) refused its settings: {error}"
        ) from error


def _builder(name: str) -> Callable[..., Any]:
    def build(*, seed: int, n_features: int, contamination: float = 0.1, **params: Any) -> Any:
        return build_pyod(
            name, seed=seed, n_features=n_features, contamination=contamination, **params
        )

    build.__name__ = build.__qualname__ = f"build_{name}"
    build.__doc__ = f"``build_pyod({name!r}, ...)``: see :func:`build_pyod`."
    return build


PYOD_DETECTORS: dict[str, Callable[..., Any]] = {name: _builder(name) for name in sorted(_SPECS)}
"""Detector name → builder ``(*, seed, n_features, contamination=0.1, **params)``."""
