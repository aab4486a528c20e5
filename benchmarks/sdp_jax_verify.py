"""SDP-FO per step: stalwart against DeepMind's jax_verify on the same problem, in one process.

jax_verify (``github.com/deepmind/jax_verify``, the SDP-FO paper's code, arXiv 2010.11645) does
one step as: the gradient of its dual objective (a Lanczos run of ``n_iter_lanczos`` products
with ``diag(κ) − M`` through ``jax.grad`` of the Lagrangian, then one differentiable product),
an optax Adam update, a projection onto the feasible duals; all jitted, in float32, for one
margin row at a time. This script times exactly that step (the body of its
``solve_sdp_dual``, without the per-step printing) against one step of
``stalwart.certify.sdp.optimise_rows`` on the same problem: the same MLP, the same L∞ box, IBP
activation bounds on both sides, the margin of the true label against one other class, the
same number of Lanczos iterations. stalwart also optimises all nine margin rows of a point as
one batch; that step is timed too and given per row.

Both start from the duals that reproduce IBP's bound; the script prints both values as a check
that the two sides encode the same problem (they must agree to float32 rounding).

jax_verify is not a dependency of stalwart: pass a checkout (its last commit predates the
removal of ``jax.ops.index_update``, ``jax.tree_map`` and ``jax.tree_multimap``, which this
script maps to their current spellings) and a folder where jax, jaxlib, optax, dm-tree and
absl-py were installed (``pip install --target DIR jax jaxlib optax dm-tree absl-py``). The
package's ``__init__`` (which imports cvxpy and more) is skipped; only ``src/sdp_verify`` runs.

    python benchmarks/sdp_jax_verify.py --jax-verify DIR --jax-deps DIR [--run RUN_DIR]
        [--width 500 --depth 2] [--eps 0.1] [--steps 20] [--lanczos 30] [--threads 2]

Without ``--run``, the network is a random ``784-w-…-w-10`` MLP and the point a random image.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch


def import_jax_verify(checkout: Path, deps: Path) -> types.SimpleNamespace:
    """jax_verify's SDP modules, with the jax spellings its 2020 code uses restored."""
    sys.path.append(str(deps))  # after stalwart's own packages: numpy etc. stay the venv's
    import jax

    jax.config.update("jax_enable_x64", False)
    jax.tree_map = jax.tree.map
    jax.tree_multimap = jax.tree.map
    jax.ops.index_update = lambda array, index, value: array.at[index].set(value)
    package = types.ModuleType("jax_verify")
    package.__path__ = [str(checkout / "jax_verify")]  # skip __init__, keep submodule imports
    sys.modules["jax_verify"] = package
    from jax_verify.src.sdp_verify import sdp_verify, utils

    return types.SimpleNamespace(jax=jax, sdp_verify=sdp_verify, utils=utils)


def network_and_point(args: argparse.Namespace):
    """The certifiable network, one input in [0, 1], and its label."""
    from stalwart.certify.bounds import as_network
    from stalwart.certify.network import Dense, Network

    if args.run is not None:
        from stalwart.experiments.run import load_run

        _, splits, model = load_run(args.run)
        test = splits.evaluation_sets()["test"]
        x = test.x[args.index].reshape(-1).to(torch.float32)
        net = as_network(model.eval(), tuple(test.x.shape[1:])).detach(dtype=torch.float32)
        net = Network(net.layers, (x.numel(),))
        return net, x, int(test.y[args.index])
    torch.manual_seed(0)
    sizes = [784, *([args.width] * args.depth), 10]
    layers = [
        Dense(torch.randn(o, i) / i**0.5, torch.randn(o) * 0.1)
        for i, o in zip(sizes, sizes[1:], strict=False)
    ]
    return Network(layers, (784,)), torch.rand(784), 0


def time_steps(run, steps: int) -> float:
    """Seconds per step of ``run(steps)``, after a two-step warm-up (compilation, allocator)."""
    run(2)
    start = time.perf_counter()
    run(steps)
    return (time.perf_counter() - start) / steps


def jax_verify_steps(jv, net, x: torch.Tensor, label: int, target: int, args: argparse.Namespace):
    """(IBP bound, dual at IBP's duals, ``run(k)``: k jitted steps) on ``target − label``."""
    import optax

    jax, jnp, utils, sdp_verify = jv.jax, jv.jax.numpy, jv.utils, jv.sdp_verify
    params = [
        (layer.dense_weight().T.numpy().astype(np.float32), layer.bias.numpy().astype(np.float32))
        for layer in net.layers
    ]
    start = utils.init_bound(x.numpy().astype(np.float32), args.eps, input_bounds=(0.0, 1.0))
    bounds = utils.boundprop(params, start)
    instance = utils.make_relu_robust_verif_instance(
        params, bounds, target_label=target, label=label, input_bounds=(0.0, 1.0)
    )
    ibp_value = utils.ibp_bound_elided(instance)
    problem = utils.make_sdp_verif_instance(instance)
    duals = jax.tree.map(lambda s: None if s is None else jnp.zeros(s), problem.dual_shapes)
    duals = sdp_verify.init_duals_ibp(problem, duals)
    key = jax.random.PRNGKey(0)
    initial = float(sdp_verify.dual_fun(problem, duals, key, n_iter=args.lanczos))
    opt = optax.adam(1e-3)

    def loss(d):
        return sdp_verify.dual_fun(problem, d, key, n_iter=args.lanczos)

    @jax.jit
    def grad_step(d, state):
        g = jax.grad(loss)(d)
        updates, state = opt.update(g, state)
        return sdp_verify.project_duals(optax.apply_updates(d, updates), problem.dual_types), state

    state = {"duals": duals, "opt": opt.init(duals)}

    def run(steps: int) -> None:
        for _ in range(steps):
            state["duals"], state["opt"] = grad_step(state["duals"], state["opt"])
        jax.block_until_ready(state["duals"])

    return ibp_value, initial, run


def stalwart_steps(net, x: torch.Tensor, label: int, targets: list[int], args: argparse.Namespace):
    """(IBP bound of the first row, ``run(k)``: ``optimise_rows`` for k steps on those rows)."""
    from stalwart.certify import sdp
    from stalwart.certify.ibp import ibp_rows

    lower, upper = (x - args.eps).clamp(0, 1), (x + args.eps).clamp(0, 1)
    C = torch.zeros(len(targets), net.out_features)
    C[:, label] = 1.0
    C[torch.arange(len(targets)), targets] = -1.0
    d = torch.zeros(len(targets))
    ibp_value = -float(ibp_rows(net, lower[None], upper[None], C, d)[0, 0])
    boxes = sdp.activation_boxes(net, lower, upper)
    problem = sdp.rows_problem(net, boxes, C, d).to(sdp.OPTIMISE_DTYPE)
    generator = torch.Generator().manual_seed(0)

    def run(steps: int) -> None:
        with torch.enable_grad():
            sdp.optimise_rows(
                problem, steps=steps, lr=1.0, lanczos_iters=args.lanczos, generator=generator
            )

    return ibp_value, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jax-verify", type=Path, required=True, help="a jax_verify checkout")
    parser.add_argument("--jax-deps", type=Path, required=True, help="pip --target folder")
    parser.add_argument("--run", type=Path, default=None, help="a run of an MNIST MLP")
    parser.add_argument("--index", type=int, default=0, help="test point of --run")
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--eps", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--lanczos", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    jv = import_jax_verify(args.jax_verify, args.jax_deps)

    net, x, label = network_and_point(args)
    others = [k for k in range(net.out_features) if k != label]
    n = 1 + sum(layer.in_features for layer in net.layers)
    print(
        f"{platform.machine()}, {torch.get_num_threads()} torch thread(s), jax "
        f"{jv.jax.__version__} on {jv.jax.devices()[0].platform}, torch {torch.__version__}; "
        f"network {'-'.join(str(s) for s in [net.layers[0].in_features] + [la.out_features for la in net.layers])}"  # noqa: E501
        f" (N = {n}), eps {args.eps}, label {label}, row against class {others[0]}, "
        f"Lanczos {args.lanczos}, mean over {args.steps} steps"
    )
    jv_ibp, jv_initial, jv_step = jax_verify_steps(jv, net, x, label, others[0], args)
    ours_ibp, one_row = stalwart_steps(net, x, label, others[:1], args)
    _, all_rows = stalwart_steps(net, x, label, others, args)
    print(
        f"IBP bound on logit[{others[0]}] - logit[{label}]: jax_verify {jv_ibp:.6f}, "
        f"stalwart {ours_ibp:.6f}; jax_verify's dual at its IBP duals {jv_initial:.6f}"
    )
    theirs = time_steps(jv_step, args.steps)
    ours = time_steps(one_row, args.steps)
    batched = time_steps(all_rows, args.steps) / len(others)
    print(f"{'':32} {'s/step/row':>10} {'ratio':>8}")
    print(f"{'jax_verify (jit, 1 row)':32} {theirs:10.4f} {1.0:7.2f}x")
    print(f"{'stalwart (1 row)':32} {ours:10.4f} {theirs / ours:7.2f}x")
    print(f"{f'stalwart ({len(others)} rows batched)':32} {batched:10.4f} {theirs / batched:7.2f}x")
    print("ratio: jax_verify's time over this line's (above 1: faster than jax_verify)")


if __name__ == "__main__":
    main()
