"""The verification cascade: attack, then bounds from cheap to tight, then complete search.

Follows the VNN-COMP conventions: a property is a set of instances (an input box and an unsafe
output region each, as parsed from VNN-LIB); the answer is ``violated`` when some input of some
instance reaches its unsafe region (with that input, checked by running the network),
``holds`` when every instance was ruled out by a sound bound or a complete search, and
``unknown`` otherwise, including on time-out. The stages run in order of cost and stop at the
first definite answer:

1. a short gradient attack on the property (counterexamples are usually easy when they exist);
2. sound bounds, cheapest first (default IBP, CROWN, α-CROWN, LP); a bound that is only an
   estimate (SDP-FO beyond its exact-eigenvalue size) never proves anything;
3. complete search where the network is small enough: splitting the input box when it has
   few inputs (``auto``: at most ``INPUT_SPLIT_MAX_INPUTS``), else a MILP.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from stalwart.certify.bounds import bound, bound_call, check_bound_names
from stalwart.certify.complete import Deadline, find_counterexample, search
from stalwart.certify.network import Network
from stalwart.certify.spec import Box, OutputProperty
from stalwart.errors import ConfigError

# Bounds of the default cascade, with their options; "crown+alpha" is optimised CROWN.
DEFAULT_BOUNDS = ("ibp", "crown", "crown+alpha", "lp")
# Complete search encodes every unstable ReLU; past this many it is not attempted.
COMPLETE_MAX_UNSTABLE = 400
# Input splitting pays off while each bisection shrinks a large share of the box.
INPUT_SPLIT_MAX_INPUTS = 16
COMPLETE = ("auto", "milp", "bab", "input", "none")


@dataclass
class Verdict:
    """The answer for a whole property.

    Attributes:
        status: ``holds``, ``violated`` or ``unknown``.
        counterexample: for ``violated``, the input (shaped like one network input).
        output: the network's output on it.
        decided_by: the stage that answered (``attack``, a bound's name, ``milp``, ``bab``).
        seconds: wall time.
        log: one line per stage run, for ``--verbose`` and bug reports.
    """

    status: Literal["holds", "violated", "unknown"]
    counterexample: Tensor | None = None
    output: Tensor | None = None
    decided_by: str = ""
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)


def _unstable_relus(net: Network, lo: Tensor, hi: Tensor) -> int:
    from stalwart.certify.crown import crown_layer_bounds

    bounds = crown_layer_bounds(net, lo, hi)[:-1]
    return int(sum(((lb < 0) & (ub > 0)).sum() for lb, ub in bounds))


def verify(
    net: Network,
    instances: Sequence[tuple[Box, OutputProperty]],
    *,
    timeout: float,
    bounds: Sequence[str] = DEFAULT_BOUNDS,
    complete: Literal["auto", "milp", "bab", "input", "none"] = "auto",
    attack_restarts: int = 8,
) -> Verdict:
    """Decide a property given as instances ``(input box, unsafe region)``.

    Args:
        net: the network.
        instances: boxes shaped like one input, each with its unsafe output region.
        timeout: wall-clock seconds for everything; then the answer is ``unknown``.
        bounds: the bounds to try, in order (``ibp``, ``crown``, ``crown+alpha``, ``lp``,
            ``sdp``).
        complete: the complete search for what bounds leave open: ``input`` splits, ``milp``,
            ``bab`` (ReLU splits), ``auto`` (input splits for few inputs, else MILP) or
            ``none``.
        attack_restarts: random starts of the attack per instance (0: skip the attack).

    Raises:
        ConfigError: a non-positive timeout, an unknown bound or complete method, no instances.
    """
    if not timeout > 0:
        raise ConfigError(f"timeout must be > 0 seconds; got {timeout}")
    if complete not in COMPLETE:
        raise ConfigError(f"complete must be one of {list(COMPLETE)}; got {complete!r}")
    if not instances:
        raise ConfigError("the property has no instances (no input box with an unsafe region)")
    check_bound_names(bounds)
    start = time.perf_counter()
    deadline = Deadline(timeout)
    net = net.detach()
    dtype, device = net.layers[0].bias.dtype, net.layers[0].bias.device
    log: list[str] = []

    def verdict(status, decided_by="", x=None) -> Verdict:
        output = None
        if x is not None:
            with torch.no_grad():
                output = net(x.reshape(1, -1))[0]
            x = x.reshape(net.input_shape)
        return Verdict(status, x, output, decided_by, time.perf_counter() - start, log)

    flat = []
    for box, prop in instances:
        lower, upper, _ = box.to(dtype, device).flat(net.input_shape)
        flat.append((lower[0], upper[0], prop.to(dtype, device)))

    # 1. Attack every instance first: a counterexample anywhere answers the whole property.
    if attack_restarts > 0:
        for i, (lo, hi, prop) in enumerate(flat):
            found = find_counterexample(net, lo, hi, prop, restarts=attack_restarts,
                                        deadline=deadline)  # fmt: skip
            if found is not None:
                log.append(f"instance {i}: attack found a counterexample")
                return verdict("violated", "attack", found)
            if deadline.passed:
                log.append("time out during the attack")
                return verdict("unknown")

    # 2. Bounds, then 3. complete search, instance by instance.
    deciders = []
    for i, (lo, hi, prop) in enumerate(flat):
        decided = None
        box = Box(lo.reshape(net.input_shape), hi.reshape(net.input_shape))
        for name in bounds:
            if deadline.passed:
                log.append("time out during the bounds")
                return verdict("unknown")
            method, options = bound_call(name)
            result = bound(method, net, box, prop=prop, **options)
            worst = float(result.lower.min())
            log.append(f"instance {i}: {name} lowest row {worst:.4g} ({result.seconds:.2f}s)")
            if result.sound and prop.holds_given(result.lower):
                decided = name
                break
        if decided is None and complete != "none":
            search_method = complete
            if search_method == "auto":
                search_method = "input" if net.in_features <= INPUT_SPLIT_MAX_INPUTS else "milp"
            unstable = 0 if search_method == "input" else _unstable_relus(net, lo, hi)
            if unstable > COMPLETE_MAX_UNSTABLE:
                log.append(f"instance {i}: {unstable} unstable ReLUs, too many for {search_method}")
            elif not deadline.passed:
                found = search(net, box, prop, timeout=deadline.left, method=search_method,
                               attack_restarts=0)  # fmt: skip
                log.append(f"instance {i}: {search_method} says {found.status} ({found.detail})")
                if found.status == "violated":
                    return verdict("violated", search_method, found.counterexample)
                if found.status == "holds":
                    decided = search_method
        if decided is None:
            return verdict("unknown")
        deciders.append(decided)
    return verdict("holds", ", ".join(sorted(set(deciders))))
