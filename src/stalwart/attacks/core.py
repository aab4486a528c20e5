"""One projected-gradient search: an objective to climb, a set to stay in, a rule for each step.

Every gradient attack in stalwart is this loop with different parts:

- PGD and FGSM (Madry et al., ICLR 2018, arXiv 1706.06083; Goodfellow et al., ICLR 2015,
  arXiv 1412.6572): cross-entropy, an L∞ or L2 ball intersected with the input box, sign or
  normalised-gradient steps, uniform random starts, per-example early stopping, restarts;
- TRADES' inner maximisation (Zhang et al., ICML 2019, arXiv 1901.08573): the KL divergence
  from the clean prediction, from ``x + 0.001·N(0, I)``;
- the attack stage of complete verification (``stalwart.certify.complete``): the largest row of
  an unsafe conjunction, in an input box with per-coordinate bounds, keeping the best point;
- DROCC's search for negatives (Goyal et al., ICML 2020, arXiv 2002.12718): the BCE of calling
  a point anomalous, normalised gradient ascent from a Gaussian start, projected onto the
  annulus ``r ≤ ‖x̃ − x‖ ≤ γ·r`` around each normal point.

The search keeps a perturbation ``δ`` around an ``origin`` (the clean inputs); with no origin
it moves the points themselves. Objectives are maximised; a minimisation climbs the negative.
A ``Budget`` (ε, norm, input range) is validated once and gives the ball-and-box projection
and the step rule of its norm.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stalwart.errors import ConfigError

NORMS = ("linf", "l2")


def per_example_norm(t: Tensor) -> Tensor:
    """The L2 norm of each example of ``t``, shaped to broadcast against it."""
    return t.flatten(1).norm(dim=1).view(-1, *[1] * (t.dim() - 1))


# --- projections: each maps a perturbation δ (around ``origin``) to the nearest allowed one ---


class Projection(Protocol):
    """Maps ``δ`` to an allowed perturbation of ``origin`` (``None``: ``δ`` is the point)."""

    def __call__(self, delta: Tensor, origin: Tensor | None) -> Tensor:
        """The allowed perturbation nearest ``delta``."""
        ...


@dataclass(frozen=True)
class LinfBall:
    """``‖δ‖∞ ≤ ε``: clip each coordinate."""

    eps: float

    def __call__(self, delta: Tensor, origin: Tensor | None) -> Tensor:
        """Each coordinate of ``delta`` clipped to ``[−ε, ε]``."""
        return delta.clamp(-self.eps, self.eps)


@dataclass(frozen=True)
class L2Ball:
    """``‖δ‖₂ ≤ ε`` per example: shrink a perturbation that is too long onto the sphere."""

    eps: float

    def __call__(self, delta: Tensor, origin: Tensor | None) -> Tensor:
        """``delta`` scaled down to length ε where it is longer."""
        return delta * (self.eps / per_example_norm(delta).clamp(min=1e-12)).clamp(max=1.0)


@dataclass(frozen=True, eq=False)
class Box:
    """``lower ≤ origin + δ ≤ upper``; the bounds are numbers or per-coordinate tensors."""

    lower: float | Tensor
    upper: float | Tensor

    def __call__(self, delta: Tensor, origin: Tensor | None) -> Tensor:
        """``delta`` with ``origin + delta`` clipped into the box."""
        if origin is None:
            return delta.clamp(self.lower, self.upper)
        # Clamping into a box that holds the origin only shrinks each coordinate of δ, so a
        # ball constraint applied before still holds after.
        return (origin + delta).clamp(self.lower, self.upper) - origin


def check_annulus(radius: float, gamma: float, norm: str = "‖h‖") -> None:
    """Raise ``ConfigError`` unless ``r > 0`` and ``γ ≥ 1``, both finite (``r ≤ norm ≤ γ·r``)."""
    if not radius > 0 or not math.isfinite(radius):
        raise ConfigError(f"the annulus radius r must be > 0 and finite; got {radius}")
    if not gamma >= 1 or not math.isfinite(gamma):
        raise ConfigError(f"the annulus ratio gamma must be >= 1 (r ≤ {norm} ≤ γ·r); got {gamma}")


@dataclass(frozen=True)
class Annulus:
    """``r ≤ ‖δ‖₂ ≤ γ·r`` per example: rescale δ along its own direction (DROCC).

    A perturbation of length zero has no direction and stays zero; start from a random point.
    """

    radius: float
    gamma: float

    def __post_init__(self) -> None:
        check_annulus(self.radius, self.gamma)

    def __call__(self, delta: Tensor, origin: Tensor | None) -> Tensor:
        """``delta`` rescaled to the length ``clamp(‖δ‖, r, γ·r)``."""
        length = per_example_norm(delta)
        target = length.clamp(self.radius, self.gamma * self.radius)
        return delta * (target / length.clamp(min=1e-12))


@dataclass(frozen=True)
class Chain:
    """Projections applied in order (a ball, then the input box)."""

    projections: tuple[Projection, ...]

    def __call__(self, delta: Tensor, origin: Tensor | None) -> Tensor:
        """``delta`` through each projection in turn."""
        for projection in self.projections:
            delta = projection(delta, origin)
        return delta


# --- the budget of an attack ---


@dataclass(frozen=True)
class Budget:
    """What an adversary may do: move each input by at most ``eps`` in ``norm``, in the range.

    Validated on construction, so a budget that exists is a valid one.

    Attributes:
        eps: the radius ε, in the data's own units (models carry their normalisation).
        norm: ``"linf"`` or ``"l2"``.
        lower: smallest valid input value.
        upper: largest valid input value.

    Raises:
        ConfigError: an unsupported norm, ``lower ≥ upper`` or a bound that is not finite,
            a negative or NaN ε, or an ε beyond the input range.
    """

    eps: float
    norm: str = "linf"
    lower: float = 0.0
    upper: float = 1.0

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ConfigError(f"norm must be one of {list(NORMS)}; got {self.norm!r}")
        if not (math.isfinite(self.lower) and math.isfinite(self.upper)):
            raise ConfigError(
                f"the input range must be finite; got lower = {self.lower}, upper = {self.upper}"
            )
        if not self.lower < self.upper:
            raise ConfigError(
                f"the input range needs lower < upper; got [{self.lower}, {self.upper}]"
            )
        if self.eps < 0 or math.isnan(self.eps):
            raise ConfigError(f"eps must be >= 0; got {self.eps}")
        # Under L∞ an ε of the whole range already allows any input; under L2 the diameter does.
        largest = (self.upper - self.lower) if self.norm == "linf" else math.inf
        if self.eps > largest:
            raise ConfigError(
                f"eps = {self.eps} exceeds the input range [{self.lower}, {self.upper}] (at most "
                f"{largest} under {self.norm}); inputs are attacked in the data's own units"
            )

    def projection(self) -> Projection:
        """The ε-ball of the norm, then the input box."""
        ball = LinfBall(self.eps) if self.norm == "linf" else L2Ball(self.eps)
        return Chain((ball, Box(self.lower, self.upper)))

    def step_rule(self) -> StepRule:
        """Steepest ascent for the norm: the gradient's sign (L∞) or its direction (L2)."""
        return sign_step if self.norm == "linf" else normalized_step

    def step_size(self, steps: int) -> float:
        """The default step α = 2.5·ε/steps (Madry et al.)."""
        return 2.5 * self.eps / max(steps, 1)


def as_budget(
    budget: Budget | None, eps: float | None, norm: str | None, lower: float | None,
    upper: float | None,
) -> Budget:  # fmt: skip
    """The budget given, or one built from loose arguments (``None``: the default)."""
    if budget is not None:
        given = [name for name, value in
                 (("eps", eps), ("norm", norm), ("lower", lower), ("upper", upper))
                 if value is not None]  # fmt: skip
        if given:
            raise ConfigError(
                f"pass either budget= or {', '.join(given)}, not both (the budget holds them)"
            )
        if not isinstance(budget, Budget):
            raise ConfigError(f"budget must be a stalwart.attacks.Budget; got {budget!r}")
        return budget
    if eps is None:
        raise ConfigError("an attack needs eps= (or budget=Budget(eps, norm, lower, upper))")
    return Budget(
        eps,
        "linf" if norm is None else norm,
        0.0 if lower is None else lower,
        1.0 if upper is None else upper,
    )


# --- step rules: the move for a gradient and a step size ---

StepRule = Callable[[Tensor, "float | Tensor"], Tensor]


def sign_step(gradient: Tensor, alpha: float | Tensor) -> Tensor:
    """``α·sign(g)``: steepest ascent under L∞."""
    return alpha * gradient.sign()


def normalized_step(gradient: Tensor, alpha: float | Tensor) -> Tensor:
    """``α·g/‖g‖₂`` per example: steepest ascent under L2 (and DROCC's ascent)."""
    return alpha * gradient / per_example_norm(gradient).clamp(min=1e-12)


# --- starts: the first perturbation of each restart ---

Start = Callable[[Tensor], Tensor]


def uniform_ball_start(eps: float, norm: str, generator: torch.Generator) -> Start:
    """A random point of the ε-ball for each example.

    Uniform per coordinate (L∞), or a uniform direction at a uniform radius (L2). Draws come
    from ``generator`` on the CPU, so a seed gives the same starts on every device.
    """

    def start(x: Tensor) -> Tensor:
        noise = torch.rand(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        if norm == "linf":
            return (2 * noise - 1) * eps
        direction = torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
        direction = direction / per_example_norm(direction).clamp(min=1e-12)
        radius = torch.rand(len(x), generator=generator, dtype=x.dtype).to(x.device)
        return direction * eps * radius.view(-1, *[1] * (x.dim() - 1))

    return start


def gaussian_start(scale: float = 1.0, generator: torch.Generator | None = None) -> Start:
    """``scale·N(0, I)`` for each example.

    Drawn from ``generator`` on the CPU, or without one from torch's global generator on the
    input's device (TRADES' reference draws it that way).
    """

    def start(x: Tensor) -> Tensor:
        if generator is None:
            return scale * torch.randn_like(x)
        return scale * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)

    return start


# --- objectives: what the search climbs ---


def _take(t: Tensor | None, index: Tensor | None) -> Tensor | None:
    return t if index is None or t is None else t[index]


class Objective:
    """What a search maximises, on the model's outputs for the examples at ``index``.

    ``index`` is ``None`` when every example is in the batch. ``__call__`` gives the scalar
    whose input gradient is climbed; ``scores`` a value per example (for keeping the best
    point); ``succeeded`` whether each example has reached the attack's goal, for objectives
    with ``has_success`` (early stopping and restarts use it).
    """

    has_success: ClassVar[bool] = False

    def __call__(self, outputs: Tensor, index: Tensor | None) -> Tensor:
        """The scalar whose gradient the search climbs."""
        raise NotImplementedError

    def scores(self, outputs: Tensor, index: Tensor | None) -> Tensor:
        """A value per example; higher is better for the search."""
        raise NotImplementedError(f"{type(self).__name__} has no per-example score")

    def succeeded(self, outputs: Tensor, index: Tensor | None) -> Tensor:
        """Whether each example has reached the goal."""
        raise NotImplementedError(f"{type(self).__name__} has no success criterion")


class CrossEntropy(Objective):
    """The cross-entropy of the label (untargeted), or minus that of the target (targeted).

    Success: the prediction is no longer the label, or it is the target.
    """

    has_success = True

    def __init__(self, y: Tensor, target: Tensor | None = None) -> None:
        self.y, self.target = y, target

    def __call__(self, outputs: Tensor, index: Tensor | None) -> Tensor:
        """The mean cross-entropy of the batch (minus that of the target, targeted)."""
        if self.target is None:
            return F.cross_entropy(outputs, _take(self.y, index))
        return -F.cross_entropy(outputs, _take(self.target, index))

    def scores(self, outputs: Tensor, index: Tensor | None) -> Tensor:
        """The cross-entropy of each example (minus that of the target, targeted)."""
        if self.target is None:
            return F.cross_entropy(outputs, _take(self.y, index), reduction="none")
        return -F.cross_entropy(outputs, _take(self.target, index), reduction="none")

    def succeeded(self, outputs: Tensor, index: Tensor | None) -> Tensor:
        """Whether each prediction left the label (or reached the target)."""
        predictions = outputs.argmax(dim=1)
        if self.target is None:
            return predictions != _take(self.y, index)
        return predictions == _take(self.target, index)


def trades_kl(clean_logits: Tensor, adversarial_logits: Tensor) -> Tensor:
    """KL(p_clean ‖ p_adversarial) averaged over the batch (the TRADES regulariser)."""
    return F.kl_div(
        F.log_softmax(adversarial_logits, dim=1), F.softmax(clean_logits, dim=1),
        reduction="batchmean",
    )  # fmt: skip


class TradesKL(Objective):
    """``KL(f(x) ‖ f(x'))`` from fixed clean logits (TRADES' inner maximisation)."""

    def __init__(self, clean_logits: Tensor) -> None:
        self.clean = clean_logits

    def __call__(self, outputs: Tensor, index: Tensor | None) -> Tensor:
        """The KL divergence averaged over the batch."""
        return trades_kl(_take(self.clean, index), outputs)

    def scores(self, outputs: Tensor, index: Tensor | None) -> Tensor:
        """The KL divergence of each example."""
        clean = _take(self.clean, index)
        return F.kl_div(
            F.log_softmax(outputs, dim=1), F.softmax(clean, dim=1), reduction="none"
        ).sum(dim=1)


class MarginRows(Objective):
    """Minus the largest row of ``C·f(x) + d`` (``stalwart.certify``'s unsafe conjunctions).

    A point where every row is negative lies in the unsafe region of a verification property.
    ``C`` is ``(rows, outputs)`` with ``d`` ``(rows,)``, shared by every example, or
    ``(examples, rows, outputs)`` with ``d`` ``(examples, rows)``: each example its own rows.
    """

    def __init__(self, C: Tensor, d: Tensor) -> None:
        self.C, self.d = C, d

    def scores(self, outputs: Tensor, index: Tensor | None) -> Tensor:
        """Minus the largest row, per example."""
        if self.C.dim() == 3:
            C, d = _take(self.C, index), _take(self.d, index)
            return -(torch.einsum("bo,bmo->bm", outputs, C) + d).max(dim=1).values
        return -(outputs @ self.C.T + self.d).max(dim=1).values

    def __call__(self, outputs: Tensor, index: Tensor | None) -> Tensor:
        """The sum over examples (each start climbs its own score)."""
        return self.scores(outputs, index).sum()


class NegativeBCE(Objective):
    """``BCE(f(x̃), 0)`` for a one-logit model (DROCC's search for negatives).

    High where the model still calls a point normal; DROCC labels the points found anomalous.
    """

    def __call__(self, outputs: Tensor, index: Tensor | None) -> Tensor:
        """The mean BCE of the batch against label 0."""
        logits = outputs.reshape(len(outputs))
        return F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))

    def scores(self, outputs: Tensor, index: Tensor | None) -> Tensor:
        """The BCE of each example against label 0."""
        logits = outputs.reshape(len(outputs))
        return F.binary_cross_entropy_with_logits(
            logits, torch.zeros_like(logits), reduction="none"
        )


# --- the search ---


@contextmanager
def evaluation_mode(model: object) -> Iterator[None]:
    """Run a module in eval mode, then restore its mode.

    Batch-norm statistics are then not moved by attack points.
    """
    if not isinstance(model, nn.Module):
        yield
        return
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@dataclass(frozen=True)
class SearchResult:
    """What a search found.

    Attributes:
        points: one point per example (detached).
        scores: with ``keep_best``, the objective's score at each returned point.
        succeeded: for objectives with a success criterion, whether each example reached it.
    """

    points: Tensor
    scores: Tensor | None = None
    succeeded: Tensor | None = None


def _at(origin: Tensor | None, delta: Tensor, index: Tensor | None) -> Tensor:
    """The points ``origin + δ`` of the examples at ``index`` (``δ`` for every example)."""
    if origin is None:
        return _take(delta, index)
    if index is None:
        return origin + delta
    return origin[index] + delta[index]


def _shift(origin: Tensor | None, moved: Tensor, index: Tensor | None) -> Tensor:
    """The points ``origin + δ`` for a ``δ`` already restricted to the examples at ``index``."""
    return moved if origin is None else _take(origin, index) + moved


def _input_gradient(
    model: Callable[[Tensor], Tensor], objective: Objective, points: Tensor,
    index: Tensor | None, best: _Best | None,
) -> Tensor:  # fmt: skip
    """The gradient of the objective at ``points`` (recording scores into ``best``)."""
    points = points.detach().requires_grad_(True)
    with torch.enable_grad():
        outputs = model(points)
        if best is not None:
            best.update(points.detach(), objective.scores(outputs.detach(), index), index)
        loss = objective(outputs, index)
        if not loss.requires_grad:
            raise ConfigError(
                "the model's output does not depend differentiably on its input (no "
                "gradient); gradient attacks need a differentiable model"
            )
        (gradient,) = torch.autograd.grad(loss, points, allow_unused=True)
    if gradient is None:
        raise ConfigError("the model's output does not depend on its input; nothing to attack")
    return gradient


class _Best:
    """The highest-scoring point seen for each example."""

    def __init__(self, reference: Tensor) -> None:
        self.points = reference.detach().clone()
        self.scores = torch.full(
            (len(reference),), -torch.inf, dtype=reference.dtype, device=reference.device
        )

    def update(self, points: Tensor, scores: Tensor, index: Tensor | None) -> None:
        better = scores > _take(self.scores, index)
        rows = better if index is None else index[better]
        self.points[rows], self.scores[rows] = points[better], scores[better]


def projected_gradient(
    model: Callable[[Tensor], Tensor],
    origin: Tensor | None,
    objective: Objective,
    projection: Projection,
    *,
    steps: int,
    step_size: float | Tensor | Callable[[int], float | Tensor],
    step_rule: StepRule = sign_step,
    start: Start | Tensor | None = None,
    restarts: int = 1,
    early_stop: bool = False,
    keep_best: bool = False,
    project_every: int = 1,
    project_start: bool = True,
) -> SearchResult:
    """Maximise ``objective`` by projected gradient steps from ``start``, per example.

    Each step moves every active example by ``step_rule(∇, α)`` and projects back (after every
    ``project_every``-th step). With an objective that has a success criterion, examples that
    already meet it are left at their origin, an example met in one restart is not attacked in
    the next, and ``early_stop`` also freezes an example within a restart once it succeeds (it
    keeps its first successful point); the rest end at the last point of the last restart.
    ``keep_best`` instead returns, per example, the highest-scoring point seen over every
    iterate of every restart.

    Args:
        model: maps a batch of points to outputs (put it in eval mode first).
        origin: the clean inputs ``(n, …)``; ``None`` to move the points themselves (then
            ``start`` is a tensor of starting points).
        objective: what to maximise.
        projection: the allowed set, as a projection of ``δ``.
        steps: gradient steps per restart.
        step_size: α, a tensor α (per coordinate), or a function of the step number.
        step_rule: ``sign_step`` (L∞) or ``normalized_step`` (L2).
        start: a function of the origin giving each restart's first δ, a fixed first δ, or
            ``None`` for δ = 0.
        restarts: independent starts.
        early_stop: freeze an example within a restart once it succeeds.
        keep_best: return the best point seen (needs ``objective.scores``).
        project_every: project after every k-th step only (DROCC projects every 10th).
        project_start: project the first δ of each restart.

    Returns:
        The points found, with their scores (``keep_best``) and success flags.
    """
    if steps < 0 or restarts < 1:
        raise ConfigError(f"steps must be >= 0 and restarts >= 1; got {steps}, {restarts}")
    if project_every < 1:
        raise ConfigError(f"project_every must be >= 1; got {project_every}")
    if early_stop and not objective.has_success:
        raise ValueError(f"early_stop needs an objective with a success criterion; got {objective}")
    if early_stop and keep_best:
        raise ValueError("early_stop keeps the first success; keep_best the best point: pick one")
    if origin is None and not isinstance(start, Tensor):
        raise ValueError("a search without an origin needs start= points")
    origin = origin.detach() if origin is not None else None
    reference = origin if origin is not None else start.detach()
    best = _Best(reference) if keep_best else None
    done, result = None, None
    if objective.has_success:  # examples that already meet the goal are left alone
        with torch.no_grad():
            done = objective.succeeded(model(reference), None)
        result = reference.clone()
    delta = torch.zeros_like(reference)
    for _ in range(restarts):
        if done is not None and done.all():
            break
        if isinstance(start, Tensor):
            delta = start.detach().clone()
        elif start is not None:
            delta = start(reference)
        else:
            delta = torch.zeros_like(reference)
        if project_start:
            delta = projection(delta, origin)
        active = None if done is None else ~done
        for step in range(steps):
            index = None
            if active is not None and not active.all():
                index = torch.nonzero(active).flatten()
                if len(index) == 0:
                    break
            gradient = _input_gradient(model, objective, _at(origin, delta, index), index, best)
            alpha = step_size(step) if callable(step_size) else step_size
            moved = _take(delta, index) + step_rule(gradient, alpha)
            if (step + 1) % project_every == 0:
                moved = projection(moved, _take(origin, index))
            if index is None:
                delta = moved
            else:
                delta[index] = moved
            if early_stop:  # freeze what succeeded: it keeps its first successful point
                with torch.no_grad():
                    reached = objective.succeeded(model(_shift(origin, moved, index)), index)
                active[reached if index is None else index[reached]] = False
        if best is not None:  # the last iterate is scored too
            with torch.no_grad():
                points = _at(origin, delta, None)
                best.update(points, objective.scores(model(points), None), None)
        if done is not None:  # what an earlier restart broke keeps that restart's point
            points = _at(origin, delta, None)
            result[~done] = points[~done]
            with torch.no_grad():
                done = done | objective.succeeded(model(points), None)
    if best is not None:
        return SearchResult(best.points, best.scores)
    if done is not None:
        return SearchResult(result.detach(), succeeded=done)
    return SearchResult(_at(origin, delta, None).detach())
