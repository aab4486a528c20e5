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
3. complete search, picked by the problem's shape (``auto``): splitting the input box when the
   network has few inputs (at most ``INPUT_SPLIT_MAX_INPUTS``, ACAS Xu), else branch and bound
   over ReLU splits with batched β-CROWN bounds (``bab+beta``, the mnist_fc shape). The MILP
   is there on request: on mnist_fc's 256×2 network, with 60 to 150 unstable ReLUs, HiGHS took
   up to 115 s where bab+beta took 11 (docs/results.md). The verdict's ``decided_by`` names
   the method that answered.

The time-out is a wall-clock promise: every stage checks one shared deadline, iterative bounds
stop early with what they have, and each solver call gets the time left as its own limit.
Certificates are computed in float64 by default (``dtype=torch.float32`` is faster and
subtracts rigorous rounding allowances); a counterexample is always re-checked alone in float64
inside the box as written before ``violated`` is said.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from stalwart.certify.bounds import bound, check_bound_names, check_option_table
from stalwart.certify.complete import find_counterexample, prepare, search
from stalwart.certify.deadline import Deadline, Expired
from stalwart.certify.network import Network
from stalwart.certify.rounding import check_float, ieee_float32
from stalwart.certify.spec import Box, OutputProperty
from stalwart.errors import ConfigError

# Bounds of the default cascade, cheapest first.
DEFAULT_BOUNDS = ("ibp", "crown", "crown+alpha", "lp")
# The MILP and the LP-per-subdomain search encode every unstable ReLU; past this many they are
# not attempted when asked for (β-CROWN's branch and bound encodes none and has no such limit).
COMPLETE_MAX_UNSTABLE = 400
# Input splitting pays off while each bisection shrinks a large share of the box.
INPUT_SPLIT_MAX_INPUTS = 16
COMPLETE = ("auto", "milp", "bab", "bab+beta", "input", "none")

Instance = tuple[Box, OutputProperty] | tuple[Box, OutputProperty, Box]


@dataclass
class Verdict:
    """The answer for a whole property.

    Attributes:
        status: ``holds``, ``violated`` or ``unknown``.
        counterexample: for ``violated``, the input (float64, shaped like one network input,
            on the CPU).
        output: the network's float64 output on it (on the CPU).
        decided_by: the stage that answered (``attack``, a bound's name, ``input``, ``milp``,
            ``bab``); empty for ``unknown``.
        seconds: wall time.
        log: one line per stage run, for ``--verbose`` and bug reports.
    """

    status: Literal["holds", "violated", "unknown"]
    counterexample: Tensor | None = None
    output: Tensor | None = None
    decided_by: str = ""
    seconds: float = 0.0
    log: list[str] = field(default_factory=list)


def _unstable_relus(net: Network, lo: Tensor, hi: Tensor, rounding: bool, deadline) -> int:
    from stalwart.certify.crown import crown_layer_bounds

    bounds = crown_layer_bounds(net, lo, hi, rounding=rounding, deadline=deadline)[:-1]
    return int(sum(((lb < 0) & (ub > 0)).sum() for lb, ub in bounds))


@ieee_float32()
def verify(
    net: Network,
    instances: Sequence[Instance],
    *,
    timeout: float | None = None,
    deadline: Deadline | None = None,
    bounds: Sequence[str] = DEFAULT_BOUNDS,
    complete: Literal["auto", "milp", "bab", "bab+beta", "input", "none"] = "auto",
    attack_restarts: int = 32,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    dtype: torch.dtype = torch.float64,
) -> Verdict:
    """Decide a property given as instances ``(input box, unsafe region[, written box])``.

    Args:
        net: the network; everything runs on its device (``net.detach(device="cuda")``).
        instances: boxes shaped like one input, each with its unsafe output region and,
            optionally, the box a counterexample must lie in (a VNN-LIB box rounded inward:
            ``VnnInstance.inner``); the first box is then the one rounded outward.
        timeout: wall-clock seconds for everything; then the answer is ``unknown``.
        deadline: or a deadline started earlier (the command line starts it at launch).
        bounds: the bounds to try, in order (``ibp``, ``crown``, ``crown+alpha``, ``lp``,
            ``sdp``).
        complete: the complete search for what bounds leave open: ``input`` splits, ``milp``,
            ``bab`` (ReLU splits, an LP per subdomain), ``bab+beta`` (ReLU splits, batched
            β-CROWN), ``auto`` (input splits for few inputs, else ``bab+beta``) or ``none``.
        attack_restarts: random starts of the attack per instance (0: skip the attack).
        options: per bound, its options: ``{"sdp": {"steps": 300}}`` (see ``bound_options``).
        dtype: float64 (default) or float32 (faster; rounding allowances keep it sound).

    Raises:
        ConfigError: a non-positive timeout, an unknown bound, option or complete method, a
            negative ``attack_restarts``, no instances.
    """
    if deadline is None:
        if timeout is None or not timeout > 0:
            raise ConfigError(f"timeout must be > 0 seconds; got {timeout}")
        deadline = Deadline(timeout)
    if complete not in COMPLETE:
        raise ConfigError(f"complete must be one of {list(COMPLETE)}; got {complete!r}")
    if not instances:
        raise ConfigError("the property has no instances (no input box with an unsafe region)")
    if attack_restarts < 0:
        raise ConfigError(f"attack_restarts must be >= 0; got {attack_restarts}")
    check_float(dtype)
    bounds = list(bounds)
    check_bound_names(bounds)
    options = check_option_table(options, bounds)
    start = time.perf_counter()
    net = net.detach()
    log: list[str] = []

    def verdict(status, decided_by="", x=None, note=None) -> Verdict:
        if note:
            log.append(note)
        output = None
        if x is not None:
            x = x.to(torch.float64)
            with torch.no_grad():
                output = net.detach(dtype=torch.float64)(x.reshape(1, -1))[0].cpu()
            x = x.reshape(net.input_shape).cpu()
        return Verdict(status, x, output, decided_by, time.perf_counter() - start, log)

    if deadline.passed:
        return verdict("unknown", note="time out before the first stage")
    jobs = []
    for instance in instances:
        box, prop = instance[0], instance[1]
        inside = instance[2] if len(instance) > 2 else None
        jobs.append((box, prop, inside, prepare(net, box, prop, deadline, dtype=dtype,
                                                inside=inside)))  # fmt: skip

    # 1. Attack every instance first: a counterexample anywhere answers the whole property.
    if attack_restarts > 0:
        for i, (_, prop, _, job) in enumerate(jobs):
            found = find_counterexample(job.net, job.lo, job.hi, prop.to(dtype), deadline=deadline,
                                        restarts=attack_restarts, checker=job.checker)  # fmt: skip
            if found is not None:
                return verdict("violated", "attack", found,
                               f"instance {i}: attack found a counterexample")  # fmt: skip
            if deadline.passed:
                return verdict("unknown", note="time out during the attack")

    # 2. Bounds, then 3. complete search, instance by instance.
    deciders = []
    for i, (box, prop, inside, job) in enumerate(jobs):
        decided = None
        for name in bounds:
            if deadline.passed:
                return verdict("unknown", note="time out during the bounds")
            try:
                result = bound(name, net, box, prop=prop, dtype=dtype, deadline=deadline,
                               **options.get(name, {}))  # fmt: skip
            except Expired:
                return verdict("unknown", note=f"instance {i}: time out during {name}")
            worst = float(result.lower.min())
            log.append(f"instance {i}: {name} lowest row {worst:.4g} ({result.seconds:.2f}s)")
            if result.sound and prop.holds_given(result.lower):
                decided = name
                break
        if decided is None and complete != "none":
            method = complete
            if method == "auto":
                method = "input" if net.in_features <= INPUT_SPLIT_MAX_INPUTS else "bab+beta"
            try:
                unstable = (
                    _unstable_relus(job.net64, job.lo64, job.hi64, False, deadline)
                    if method in ("milp", "bab") else 0
                )  # fmt: skip
            except Expired:
                return verdict("unknown", note=f"instance {i}: time out before {method}")
            if unstable > COMPLETE_MAX_UNSTABLE:
                log.append(f"instance {i}: {unstable} unstable ReLUs, too many for {method}")
            elif not deadline.passed:
                found = search(net, box, prop, deadline=deadline, method=method,
                               attack_restarts=0, dtype=dtype, inside=inside)  # fmt: skip
                log.append(f"instance {i}: {method} says {found.status} ({found.detail})")
                if found.status == "violated":
                    return verdict("violated", method, found.counterexample)
                if found.status == "holds":
                    decided = method
        if decided is None:
            return verdict("unknown")
        deciders.append(decided)
    return verdict("holds", ", ".join(sorted(set(deciders))))
