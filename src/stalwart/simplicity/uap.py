"""A universal adversarial perturbation and where its budget goes (arXiv 2006.07710, Sec. 5).

Shah et al. show that extreme simplicity bias makes models fragile to *universal* adversarial
perturbations (UAPs): one small perturbation δ, added to every input, that moves the simple
feature across the decision boundary. On LMS-5 an ℓ2 UAP drives accuracy to near 0 with about
99.7% of its squared norm on the linear coordinate (their 06_uaps notebook).

``universal_perturbation`` finds δ by projected gradient ascent on the mean cross-entropy of
random minibatches, with the attack core's ball projections and steepest-ascent steps
(``stalwart.attacks.core``), and reports the share of ‖δ‖² that lies on each input block in
latent coordinates (the rotation preserves ‖δ‖, so the shares of a partition sum to 1).

One δ for every input can push only one way along a feature, so on two classes separated by
a linear coordinate it flips at most one class (accuracy ≥ ~50%). ``per_class=True`` finds one
δ per class (a class-universal perturbation, still blind to the instance), which can flip both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stalwart.attacks.core import L2Ball, LinfBall, evaluation_mode, normalized_step, sign_step
from stalwart.data.core import GroupedDataset
from stalwart.engine.device import model_device
from stalwart.errors import ConfigError
from stalwart.simplicity.randomized import BlocksArg, logits_of, resolve_blocks


@dataclass(frozen=True)
class UniversalPerturbation:
    """One perturbation for every input, and what it does.

    Attributes:
        delta: the perturbation, of one input's shape; with ``per_class``, one per class,
            shape ``(n_classes, *input_shape)`` (zeros for a class with no example).
        eps: its budget (the radius of the ``norm`` ball).
        norm: ``"l2"`` or ``"linf"``.
        accuracy: accuracy on the clean inputs.
        perturbed_accuracy: accuracy with ``delta`` added to every input.
        share: block name → the fraction of ‖δ‖² on that block, in latent coordinates
            (summed over the classes' perturbations with ``per_class``).
    """

    delta: Tensor
    eps: float
    norm: str
    accuracy: float
    perturbed_accuracy: float
    share: dict[str, float]


def universal_perturbation(
    model: nn.Module,
    dataset: GroupedDataset,
    eps: float,
    *,
    norm: str = "l2",
    steps: int = 200,
    step_size: float | None = None,
    batch_size: int = 1024,
    blocks: BlocksArg = None,
    per_class: bool = False,
    seed: int = 0,
) -> UniversalPerturbation:
    """A universal perturbation of ``norm`` at most ``eps`` that lowers ``model``'s accuracy.

    Args:
        model: a trained classifier (in eval mode during the search, then restored).
        dataset: the inputs to perturb; its blocks give the budget shares.
        eps: the radius of the ball, in the data's units.
        norm: ``"l2"`` (the paper's) or ``"linf"``.
        steps: ascent steps, each on a random minibatch.
        step_size: the step α (default 2.5·ε/steps, as for PGD).
        batch_size: examples per step.
        blocks: the blocks to report shares for (see ``randomized.BlocksArg``).
        per_class: one perturbation per class instead of one for all inputs.
        seed: seed of the minibatch draws.

    Raises:
        ConfigError: a non-positive ``eps``, ``steps`` or ``batch_size``, or an unknown norm.
    """
    if norm not in ("l2", "linf"):
        raise ConfigError(f"norm must be 'l2' or 'linf'; got {norm!r}")
    if not eps > 0 or steps < 1 or batch_size < 1:
        raise ConfigError(
            f"eps must be > 0 and steps, batch_size ≥ 1; got {eps!r}, {steps!r}, {batch_size!r}"
        )
    chosen = resolve_blocks(dataset, blocks)
    ball = L2Ball(eps) if norm == "l2" else LinfBall(eps)
    rule = normalized_step if norm == "l2" else sign_step
    alpha = 2.5 * eps / steps if step_size is None else step_size
    x, y = dataset.x, dataset.y
    generator = torch.Generator().manual_seed(seed)

    device = model_device(model)

    def search(rows_of: Tensor) -> Tensor:
        delta = torch.zeros(1, *dataset.input_shape, device=device)
        for _ in range(steps):
            rows = rows_of[torch.randint(len(rows_of), (min(batch_size, len(rows_of)),),
                                         generator=generator)]  # fmt: skip
            delta.requires_grad_(True)
            loss = F.cross_entropy(model(x[rows].to(device) + delta), y[rows].to(device))
            (gradient,) = torch.autograd.grad(loss, delta)
            delta = ball(delta.detach() + rule(gradient, alpha), None)
        return delta.detach().cpu()[0]

    everyone = torch.arange(len(x))
    with evaluation_mode(model):
        if per_class:
            delta = torch.zeros(dataset.n_classes, *dataset.input_shape)
            for label in range(dataset.n_classes):
                if (y == label).any():
                    delta[label] = search(everyone[y == label])
            added = delta[y]
        else:
            delta = search(everyone)
            added = delta[None]
    clean = (logits_of(model, x).argmax(1) == y).float().mean()
    perturbed = (logits_of(model, x + added).argmax(1) == y).float().mean()
    flat = delta.double().reshape(-1, *dataset.input_shape)
    latent = chosen.to_latent(flat.reshape(len(flat), -1)).reshape(flat.shape)
    energy = float((latent**2).sum())
    share = {
        name: float((latent[:, chosen.mask(name)] ** 2).sum()) / energy if energy > 0 else 0.0
        for name in chosen.names
    }
    return UniversalPerturbation(delta, float(eps), norm, float(clean), float(perturbed), share)
