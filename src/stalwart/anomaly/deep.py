"""The deep detectors: DROCC, DROCC-LF, Deep SVDD and an autoencoder, trained through ``fit``.

Each builds a network that outputs a normality score (``stalwart.anomaly.networks``), trains
it with its objective (``stalwart.anomaly.losses``) through the house's ``engine.fit``, and
selects the epoch on labelled validation data (``eval_set``) when there is any, else keeps the
last one. Vector inputs are z-scored with the training normals' statistics, as the reference
code does; images are used as they are.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state
from torch import nn

from stalwart.anomaly.base import Detector
from stalwart.anomaly.evaluator import DetectorRanking
from stalwart.anomaly.losses import DROCCLoss, NormalityLoss
from stalwart.anomaly.networks import CenterDistance, Reconstruction, drocc_network
from stalwart.config import TrainConfig
from stalwart.data.core import GroupedDataset, Splits
from stalwart.engine.evaluate import logits_in_batches
from stalwart.engine.fit import FitResult, fit
from stalwart.engine.method import Method
from stalwart.errors import ConfigError

GROUPS = ["normal", "anomaly"]
_INTEGERS = (int, np.integer)


class CollapseWarning(UserWarning):
    """A detector's scores or representation are (nearly) constant on its training data."""


def _dataset(x: torch.Tensor, y: np.ndarray | None, name: str) -> GroupedDataset:
    labels = torch.zeros(len(x), dtype=torch.long) if y is None else torch.from_numpy(y)
    return GroupedDataset(x, labels, labels, n_classes=2, group_names=GROUPS,
                          class_names=GROUPS, name=name)  # fmt: skip


def nearest_neighbour_scale(x: torch.Tensor, limit: int = 2000) -> float:
    """The median distance from a point to its nearest other point (over ≤ ``limit`` points).

    Zero distances (duplicate rows, frequent in ODDS files) are left out; 1.0 when nothing is
    left (a single or constant sample).
    """
    points = x[:limit].flatten(1).double()
    distances = torch.cdist(points, points)
    distances.fill_diagonal_(math.inf)
    distances[distances == 0] = math.inf
    nearest = distances.min(dim=1).values
    nearest = nearest[torch.isfinite(nearest)]
    return float(nearest.median()) if len(nearest) else 1.0


class DeepDetector(Detector):
    """Shared training machinery of the deep detectors (not used directly)."""

    learns_from_negatives = False  # DROCC: labelled anomalies join the BCE term

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    standardize: bool
    select: str
    random_state: Any
    device: str

    # --- the subclass's part ---

    def _network(self, x: torch.Tensor) -> nn.Module:
        raise NotImplementedError

    def _train(self, network: nn.Module, splits: Splits, select: str, seed: int) -> None:
        """One ``fit`` stage of the one-class objective (DROCC has its own two stages)."""
        self._stage(network, NormalityLoss(), splits, epochs=self.epochs, select=select,
                    seed=seed)  # fmt: skip

    # --- shared ---

    def _fit(self, X, y, eval_set) -> None:
        seed = self._seed()
        if y is not None and not self.learns_from_negatives:
            X, y = X[y == 0], None  # a one-class objective has no use for labelled anomalies
        normal = X if y is None else X[y == 0]
        if self.standardize and X.ndim == 2:
            self.mean_ = normal.mean(axis=0)
            scale = normal.std(axis=0)
            self.scale_ = np.where(scale > 1e-12, scale, 1.0).astype(np.float32)
        else:
            self.mean_, self.scale_ = None, None
        x = self._prepared(X)
        train = _dataset(x, y, "train")
        select = "last"
        if eval_set is not None and 0 < eval_set[1].sum() < len(eval_set[1]):
            val, select = _dataset(self._prepared(eval_set[0]), eval_set[1], "val"), self.select
        else:  # nothing to select on: a two-example stand-in keeps the per-epoch record cheap
            val = train.subset(torch.arange(min(2, len(train))))
        DetectorRanking().check_select(self.select)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = self._network(x[torch.from_numpy(y == 0)] if y is not None else x)
            self.history_: list[dict[str, Any]] = []
            self._train(network, Splits(train=train, val=val, test=val), select, seed)
        self.network_ = network.eval()

    def _anomaly_scores(self, X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            normality = logits_in_batches(self.network_, self._prepared(X))
        return -normality.reshape(len(X)).double().numpy()

    def _prepared(self, X: np.ndarray) -> torch.Tensor:
        if self.mean_ is not None:
            X = (X - self.mean_) / self.scale_
        return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))

    def _seed(self) -> int:
        if isinstance(self.random_state, _INTEGERS):
            return int(self.random_state) % 2**32
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    def _stage(
        self, network: nn.Module, method: Method, splits: Splits, *, epochs: int, select: str,
        seed: int, **schedule: Any,
    ) -> FitResult:  # fmt: skip
        """One ``fit`` call; its epochs are appended to ``history_``."""
        cfg = TrainConfig(
            epochs=epochs, batch_size=self.batch_size, lr=self.lr,
            weight_decay=self.weight_decay, optimizer="adam", select=select, seed=seed,
            device=self.device, progress=False, **schedule,
        )  # fmt: skip
        result = fit(network, method, splits, cfg, evaluator=DetectorRanking())
        offset = len(self.history_)
        self.history_ += [{**record, "epoch": record["epoch"] + offset}
                          for record in result.history]  # fmt: skip
        self.best_epoch_ = offset + result.best_epoch
        return result


class DROCC(DeepDetector):
    """Deep Robust One-Class Classification (Goyal et al., ICML 2020, arXiv 2002.12718).

    Normal points lie near a low-dimensional manifold; DROCC trains a classifier to call them
    normal and to call anomalous the points it finds, by gradient ascent, at a distance between
    ``radius`` and ``gamma·radius`` from them (``stalwart.anomaly.losses.DROCCLoss``). The
    first ``warmup_epochs`` train the BCE term alone; the learning rate then drops ×0.1 after
    30%, 60% and 90% of the remaining (DROCC) epochs, as in the reference code.

    >>> detector = DROCC(radius=16, gamma=2.0, lamda=1.0, ascent_steps=50).fit(X_normal)
    >>> detector.decision_function(X)   # higher = more anomalous

    Args:
        radius: r in the units of the z-scored inputs; ``"auto"``: the median distance from a
            training normal to its nearest neighbour (``nearest_neighbour_scale``). DROCC's
            negatives are the points at least r from every normal point, so r belongs at the
            data's local scale; the reference tunes r per dataset instead (16 for Arrhythmia,
            2.5 for Thyroid), on the test set.
        gamma: γ ≥ 1.
        lamda: λ, the weight of the searched negatives.
        ascent_steps: gradient-ascent steps of each search.
        ascent_step_size: η, the length of each normalised ascent step.
        project_every: project onto the annulus after every k-th ascent step.
        epochs: all epochs, warm-up included (the reference: 100 with 50 of warm-up).
        warmup_epochs: BCE-only epochs first.
        lr: Adam's learning rate.
        batch_size: training batch size.
        weight_decay: Adam's weight decay.
        hidden: width of the MLP's hidden layer (vectors).
        width: channels of the CNN's first block (images).
        standardize: z-score vector inputs with the training normals' statistics.
        select: the validation metric that selects the epoch when ``fit`` gets an
            ``eval_set`` with both classes: ``auroc``, ``auprc``, ``recall_at_3pct_fpr``,
            ``recall_at_5pct_fpr`` or ``last``.
        contamination: the fraction of training data ``predict`` calls anomalous.
        random_state: seed of the initialisation, data order and searches.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """

    metric = "euclidean"
    learns_from_negatives = True

    def __init__(
        self, radius: float | str = "auto", gamma: float = 2.0, lamda: float = 1.0,
        ascent_steps: int = 50, ascent_step_size: float = 0.001, project_every: int = 10,
        epochs: int = 100, warmup_epochs: int = 50, lr: float = 1e-3, batch_size: int = 128,
        weight_decay: float = 0.0, hidden: int = 128, width: int = 16, standardize: bool = True,
        select: str = "auroc", contamination: float = 0.1, random_state: Any = None,
        device: str = "auto",
    ) -> None:  # fmt: skip
        self.radius, self.gamma, self.lamda = radius, gamma, lamda
        self.ascent_steps, self.ascent_step_size = ascent_steps, ascent_step_size
        self.project_every, self.epochs, self.warmup_epochs = project_every, epochs, warmup_epochs
        self.lr, self.batch_size, self.weight_decay = lr, batch_size, weight_decay
        self.hidden, self.width, self.standardize = hidden, width, standardize
        self.select, self.contamination = select, contamination
        self.random_state, self.device = random_state, device

    def _network(self, x: torch.Tensor) -> nn.Module:
        if self.radius == "auto":
            self.radius_ = nearest_neighbour_scale(x)
        elif isinstance(self.radius, (int, float)) and not isinstance(self.radius, bool):
            self.radius_ = float(self.radius)
        else:
            raise ConfigError(f"{type(self).__name__}: radius must be a number or 'auto'; "
                              f"got {self.radius!r}")  # fmt: skip
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(
                f"{type(self).__name__}: warmup_epochs must lie in [0, epochs); got "
                f"{self.warmup_epochs} with epochs = {self.epochs}"
            )
        return drocc_network(tuple(x.shape[1:]), (self.hidden,), width=self.width)

    def _train(self, network: nn.Module, splits: Splits, select: str, seed: int) -> None:
        loss = DROCCLoss(
            self.radius_, self.gamma, self.lamda, self.ascent_steps, self.ascent_step_size,
            self.project_every, mahalanobis=self.metric == "mahalanobis",
        )  # fmt: skip
        if self.warmup_epochs:
            warmup = DROCCLoss(self.radius_, self.gamma, lamda=0.0)
            self._stage(network, warmup, splits, epochs=self.warmup_epochs, select="last",
                        seed=seed)  # fmt: skip
        epochs = self.epochs - self.warmup_epochs
        self._stage(
            network, loss, splits, epochs=epochs, select=select, seed=seed + 1,
            schedule="step", step_size=max(1, round(0.3 * epochs)), gamma=0.1,
        )  # fmt: skip


class DROCCLF(DROCC):
    """DROCC-LF: DROCC for one-class classification with limited negatives (arXiv 2002.12718).

    Training data holds the positives (normal, ``y = 0``) and a few labelled negatives
    (``y = 1``); the searched negatives are measured in a Mahalanobis metric whose diagonal is
    the magnitude of the loss's input gradient at each positive, projected by the paper's
    Proposition 1 (``stalwart.anomaly.mahalanobis``). The epoch is selected by the recall of
    normal points at a 3% false-positive rate on validation data, which should hold close
    negatives. Parameters as ``DROCC``; projection every 5 ascent steps, as the reference.
    """

    metric = "mahalanobis"

    def __init__(
        self, radius: float | str = "auto", gamma: float = 2.0, lamda: float = 1.0,
        ascent_steps: int = 50, ascent_step_size: float = 0.001, project_every: int = 5,
        epochs: int = 100, warmup_epochs: int = 50, lr: float = 1e-3, batch_size: int = 128,
        weight_decay: float = 0.0, hidden: int = 128, width: int = 16, standardize: bool = True,
        select: str = "recall_at_3pct_fpr", contamination: float = 0.1,
        random_state: Any = None, device: str = "auto",
    ) -> None:  # fmt: skip
        super().__init__(
            radius, gamma, lamda, ascent_steps, ascent_step_size, project_every, epochs,
            warmup_epochs, lr, batch_size, weight_decay, hidden, width, standardize, select,
            contamination, random_state, device,
        )  # fmt: skip


class DeepSVDD(DeepDetector):
    """Deep Support Vector Data Description (Ruff et al., ICML 2018), one-class objective.

    A bias-free encoder φ maps normal data close to a centre c fixed at initialisation (the
    mean of the initial representations); the score is ``‖φ(x) − c‖²``. The representation can
    still collapse onto c, making every score equal (the failure DROCC was built against, and a
    bug PyOD shipped in 3.6.0–3.6.2, pyod PR #711): ``fit`` sets ``collapsed_`` and warns when
    the training representations do not vary.

    Args:
        hidden: widths of φ's layers, the last being the representation's dimension.
        epochs, lr, batch_size, weight_decay, standardize, select, contamination,
        random_state, device: as ``DROCC``.
    """

    def __init__(
        self, hidden: tuple[int, ...] = (64, 32), epochs: int = 100, lr: float = 1e-3,
        batch_size: int = 128, weight_decay: float = 1e-6, standardize: bool = True,
        select: str = "auroc", contamination: float = 0.1, random_state: Any = None,
        device: str = "auto",
    ) -> None:  # fmt: skip
        self.hidden, self.epochs, self.lr, self.batch_size = hidden, epochs, lr, batch_size
        self.weight_decay, self.standardize, self.select = weight_decay, standardize, select
        self.contamination, self.random_state, self.device = contamination, random_state, device

    def _network(self, x: torch.Tensor) -> nn.Module:
        network = CenterDistance(tuple(x.shape[1:]), list(self.hidden))
        network.set_center(x)
        return network

    def _train(self, network: nn.Module, splits: Splits, select: str, seed: int) -> None:
        super()._train(network, splits, select, seed)
        normal = splits.train.x[splits.train.y == 0]
        with torch.no_grad():
            spread = network.eval().embed(normal).std(dim=0).max().item()
        self.collapsed_ = spread < 1e-6
        if self.collapsed_:
            warnings.warn(
                "DeepSVDD: the representation collapsed (every training point maps to the "
                f"same point, largest spread {spread:.2g}); its scores rank nothing. Try a "
                "lower lr, fewer epochs or more weight decay.", CollapseWarning, stacklevel=4,
            )  # fmt: skip


class AutoEncoder(DeepDetector):
    """An MLP autoencoder; the anomaly score is the mean squared reconstruction error.

    Args:
        hidden: widths of the encoder's layers (the decoder mirrors them); the last is the
            bottleneck.
        epochs, lr, batch_size, weight_decay, standardize, select, contamination,
        random_state, device: as ``DROCC``.
    """

    def __init__(
        self, hidden: tuple[int, ...] = (64, 32), epochs: int = 100, lr: float = 1e-3,
        batch_size: int = 128, weight_decay: float = 0.0, standardize: bool = True,
        select: str = "auroc", contamination: float = 0.1, random_state: Any = None,
        device: str = "auto",
    ) -> None:  # fmt: skip
        self.hidden, self.epochs, self.lr, self.batch_size = hidden, epochs, lr, batch_size
        self.weight_decay, self.standardize, self.select = weight_decay, standardize, select
        self.contamination, self.random_state, self.device = contamination, random_state, device

    def _network(self, x: torch.Tensor) -> nn.Module:
        return Reconstruction(tuple(x.shape[1:]), list(self.hidden))
