"""Certification: input sets, output properties, and bounds from IBP to SDP-FO.

>>> from stalwart import certify
>>> b = certify.bound("ibp", net, certify.LinfBall(x, eps=0.1), margin_of=label)
>>> certify.bound("sdp", net, box, margin_of=label, steps=300)  # options: bound_options("sdp")

Certificates are computed in float64 by default; ``dtype=torch.float32`` is faster and
subtracts a rigorous rounding allowance (``certify.rounding``).
"""

from stalwart.certify import crown as _crown  # noqa: F401  (registers "crown")
from stalwart.certify import lp as _lp  # noqa: F401  (registers "lp")
from stalwart.certify import sdp as _sdp  # noqa: F401  (registers "sdp")
from stalwart.certify.bounds import BOUNDS, as_network, bound, bound_options
from stalwart.certify.complete import SearchResult, milp_optimum, search
from stalwart.certify.deadline import Deadline, Expired
from stalwart.certify.ibp import ibp_rows, layer_bounds
from stalwart.certify.network import (
    Conv,
    Dense,
    Network,
    Normalize,
    Scale,
    compose,
    from_module,
    from_ops,
)
from stalwart.certify.spec import Bound, Box, LinfBall, OutputProperty

__all__ = [
    "BOUNDS",
    "Bound",
    "Box",
    "Conv",
    "Deadline",
    "Dense",
    "Expired",
    "LinfBall",
    "Network",
    "Normalize",
    "OutputProperty",
    "Scale",
    "SearchResult",
    "as_network",
    "bound",
    "bound_options",
    "compose",
    "from_module",
    "from_ops",
    "ibp_rows",
    "layer_bounds",
    "milp_optimum",
    "search",
]
