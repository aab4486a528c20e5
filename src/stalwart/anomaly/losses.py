"""The training objectives of the deep detectors, as ``Method`` objects that ``fit`` trains.

Every deep detector's network outputs one number per example, its *normality*: DROCC's logit
of "normal", minus Deep SVDD's squared distance to the centre, minus an autoencoder's
reconstruction error. Labels follow the house's anomaly convention: ``y = 1`` marks an anomaly
(a labelled negative, in the limited-negatives setting), ``y = 0`` a normal point.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stalwart.anomaly.mahalanobis import MahalanobisAnnulus, gradient_metric
from stalwart.attacks.core import (
    Annulus,
    NegativeBCE,
    evaluation_mode,
    gaussian_start,
    normalized_step,
    projected_gradient,
)
from stalwart.data.core import Batch
from stalwart.engine.method import Method


def normality(model: nn.Module, x: Tensor) -> Tensor:
    """The model's one output per example, shape ``(n,)``."""
    return model(x).reshape(len(x))


class DROCCLoss(Method):
    """DROCC (Goyal et al., ICML 2020, arXiv 2002.12718, Algorithm 1).

    ``BCE(f(x), normal) + λ · BCE(f(x̃), anomalous)`` where, for each normal ``x`` of the
    batch, ``x̃ = x + h`` is found by normalised gradient ascent on ``BCE(f(x̃), anomalous)``
    (towards points the model still calls normal) from ``h ~ N(0, I)``, projecting ``h`` onto
    the annulus ``r ≤ ‖h‖ ≤ γr`` every ``project_every`` steps. Labelled anomalies in the batch
    (the limited-negatives setting) enter the first term with their label.

    With ``mahalanobis=True`` this is DROCC-LF: the annulus is measured in the metric of the
    input gradient's magnitudes at each positive (``stalwart.anomaly.mahalanobis``), projected
    by the paper's Proposition 1.

    ``lamda = 0`` trains the BCE term alone (the reference's warm-up epochs) and skips the
    search.

    Args:
        radius: r, in the units of the (standardised) inputs.
        gamma: γ ≥ 1, the outer radius over the inner one.
        lamda: λ, the weight of the searched negatives.
        ascent_steps: gradient-ascent steps of the search.
        ascent_step_size: η, the length of each normalised step.
        project_every: project after every k-th step (the reference: 10; DROCC-LF: 5).
        mahalanobis: DROCC-LF's metric instead of the Euclidean one.
    """

    def __init__(
        self,
        radius: float,
        gamma: float = 2.0,
        lamda: float = 1.0,
        ascent_steps: int = 50,
        ascent_step_size: float = 0.001,
        project_every: int = 10,
        mahalanobis: bool = False,
    ) -> None:
        super().__init__()
        Annulus(radius, gamma)  # validates r and γ once, with the attack core's messages
        self.radius, self.gamma, self.lamda = radius, gamma, lamda
        self.ascent_steps, self.ascent_step_size = ascent_steps, ascent_step_size
        self.project_every, self.mahalanobis = project_every, mahalanobis

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """BCE on the batch plus λ times the BCE of the searched negatives."""
        normal = (batch.y == 0).float()
        loss = F.binary_cross_entropy_with_logits(normality(model, batch.x), normal)
        positives = batch.x[batch.y == 0]
        if self.lamda == 0 or len(positives) == 0:
            return loss
        negatives = self.search(model, positives)
        logits = normality(model, negatives)
        return loss + self.lamda * F.binary_cross_entropy_with_logits(
            logits, torch.zeros_like(logits)
        )

    def search(self, model: nn.Module, positives: Tensor) -> Tensor:
        """The searched negatives ``x̃`` around ``positives`` (detached)."""
        if self.mahalanobis:
            projection = MahalanobisAnnulus(
                gradient_metric(model, positives), self.radius, self.gamma
            )
        else:
            projection = Annulus(self.radius, self.gamma)
        with evaluation_mode(model):
            found = projected_gradient(
                model, positives, NegativeBCE(), projection,
                steps=self.ascent_steps, step_size=self.ascent_step_size,
                step_rule=normalized_step, start=gaussian_start(1.0),
                project_every=self.project_every, project_start=False,
            )  # fmt: skip
        return found.points


class NormalityLoss(Method):
    """Minus the mean normality of the normal points of the batch.

    Deep SVDD's objective (the mean squared distance to the centre; Ruff et al., ICML 2018)
    and an autoencoder's (the mean reconstruction error), for networks that output minus
    those quantities. Labelled anomalies are left out: these detectors learn normal data only.
    """

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """``−mean f(x)`` over the batch's normal points."""
        x = batch.x[batch.y == 0]
        if len(x) == 0:
            return normality(model, batch.x).sum() * 0.0  # a batch of anomalies teaches nothing
        return -normality(model, x).mean()
