"""`stalwart rl`: meta-reinforcement learning (DREAM, arXiv 2008.02790, against E-RL²).

``train`` meta-trains a learner from a YAML run config (``stalwart.rl.config``) with a progress
bar of held-out returns, and resumes a killed run exactly; ``eval`` meta-tests a trained run on
held-out problems and shows what its exploration did; ``render`` draws one problem played by
the trained learner as a PNG strip or a GIF. All are thin over ``stalwart.rl``, imported when a
command runs.
"""

from __future__ import annotations

import json
import time
from itertools import groupby
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from stalwart.cli import app as root_app
from stalwart.cli import console, friendly_errors

rl_app = typer.Typer(
    help="Meta-RL exploration: DREAM and E-RL² on Gymnasium meta-environments.",
    no_args_is_help=True,
)
root_app.add_typer(rl_app, name="rl")

RUNS = Path("runs") / "rl"
"""Where ``stalwart rl train CONFIG`` writes by default: ``runs/rl/<CONFIG's stem>``."""

RunArgument = Annotated[
    Path, typer.Argument(help="A run directory written by `stalwart rl train`.")
]
ThreadsOption = Annotated[
    int,
    typer.Option(
        min=1, help="Torch threads (1 is fastest for these small networks; more for wide ones)."
    ),
]


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.3f}"


@rl_app.command("train")
@friendly_errors
def train_command(
    config: Annotated[Path, typer.Argument(help="A YAML run config (keys: docs/rl.md).")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a key: --set total_steps=60000 (repeatable)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default runs/rl/<config name>).")
    ] = None,
    threads: ThreadsOption = 1,
) -> None:
    """Meta-train a learner; rerunning the same command resumes a killed run exactly."""
    import torch
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from stalwart.config import read_config_file
    from stalwart.rl.config import validate_rl_config
    from stalwart.rl.loop import train

    cfg = validate_rl_config(read_config_file(config, set_ or []), str(config))
    root = out if out is not None else RUNS / config.stem
    resuming = (root / "checkpoints" / "last.pt").is_file()
    torch.set_num_threads(threads)
    console.print(
        f"[bold]{cfg.learner}[/] on [bold]{cfg.env.name}[/], {cfg.total_steps:,} environment "
        f"steps, seed {cfg.seed} → {root}" + (" (resuming)" if resuming else "")
    )
    started = time.perf_counter()
    with Progress(
        "{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console, disable=not console.is_terminal,
    ) as progress:  # fmt: skip
        task = progress.add_task("held-out return  -", total=cfg.total_steps)

        def show(event: dict[str, Any]) -> None:
            progress.update(task, completed=min(event["step"], cfg.total_steps))
            if "evaluation" not in event:
                return
            record, refs = event["evaluation"], event["references"]
            progress.update(task, description=f"held-out return {_signed(record['return'])}")
            progress.console.print(
                f"step {record['step']:>9,}  held-out return {_signed(record['return'])}  "
                f"(oracle {_signed(refs.get('oracle'))}, random {_signed(refs.get('random'))})"
                f"  train {_signed(record['train_return'])}  ε {record['epsilon']:.2f}  "
                f"updates {record['updates']:,}",
                highlight=False,
            )

        result = train(cfg, run_dir=root, resume=True, on_progress=show)
    last = result.curve[-1]
    best = max(result.curve, key=lambda record: record["return"])
    console.print(
        f"done: held-out return {_signed(last['return'])} at step {last['step']:,} (best "
        f"{_signed(best['return'])} at {best['step']:,}; oracle "
        f"{_signed(result.references['oracle'])}, random {_signed(result.references['random'])})"
        f" in {time.perf_counter() - started:.0f} s; written {root / 'summary.json'}",
        highlight=False,
    )


def _runs(actions: list[str]) -> str:
    """``right right ride up`` as ``right×2 ride up``: traces stay one line."""
    parts = []
    for name, same in groupby(actions):
        count = len(list(same))
        parts.append(name if count == 1 else f"{name}×{count}")
    return " ".join(parts) or "-"


@rl_app.command("eval")
@friendly_errors
def eval_command(
    run_dir: RunArgument,
    episodes: Annotated[
        int | None,
        typer.Option(min=1, help="Held-out (problem, goal) pairs to play (default: all)."),
    ] = None,
    traces: Annotated[int, typer.Option(min=0, help="Episodes whose actions are shown.")] = 5,
    seed: Annotated[int, typer.Option(help="Seeds which pairs are drawn and random play.")] = 0,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    threads: ThreadsOption = 1,
) -> None:
    """Meta-test a trained run on held-out problems: exploitation return and exploration traces.

    Writes RUN_DIR/eval.json with every episode played.
    """
    import torch

    from stalwart.io import write_json
    from stalwart.rl.evaluate import meta_test
    from stalwart.rl.loop import load_trained, make_env

    torch.set_num_threads(threads)
    trained = load_trained(run_dir)
    cfg = trained.config
    found = meta_test(trained.learner, lambda: make_env(cfg, "test"), episodes=episodes, seed=seed)
    step = trained.curve[-1]["step"] if trained.curve else 0
    report = {
        "run": str(run_dir), "learner": cfg.learner, "env": cfg.env.name, "step": step,
        "episodes": len(found.episodes), "held_out_pairs": found.total_pairs,
        "return": found.mean, "sem": found.sem, "oracle": found.oracle, "random": found.random,
    }  # fmt: skip
    write_json(run_dir / "eval.json", {**report, "played": found.episodes})
    if json_:
        print(json.dumps({**report, "played": found.episodes}, indent=2))
        return
    state = "finished" if trained.finished else "unfinished"
    console.print(
        f"{cfg.learner} on {cfg.env.name} after {step:,} environment steps ({state}): "
        f"{len(found.episodes)} of {found.total_pairs} held-out (problem, goal) pairs",
        highlight=False,
    )
    table = Table("policy", "mean exploitation return", "± s.e.")
    table.add_row(cfg.learner, _signed(found.mean), f"{found.sem:.3f}")
    table.add_row("oracle (knows μ)", _signed(found.oracle), "")
    table.add_row("random", _signed(found.random), "")
    console.print(table)
    if traces:
        shown = Table("problem", "goal", "exploration", "exploitation", "return", "oracle")
        for one in found.episodes[:traces]:
            shown.add_row(
                str(one["problem"]), str(one["goal"]), _runs(one["exploration"]),
                _runs(one["exploitation"]), _signed(one["return"]), _signed(one["oracle"]),
            )  # fmt: skip
        console.print(shown)
    console.print(f"written {run_dir / 'eval.json'}", highlight=False)


@rl_app.command("render")
@friendly_errors
def render_command(
    run_dir: RunArgument,
    problem: Annotated[int, typer.Option(help="The problem id μ to play (any split).")],
    goal: Annotated[
        int | None, typer.Option(help="The exploitation goal (default: drawn with --seed).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="A .png strip or a .gif (default RUN_DIR/render/problemP.png)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seeds the goal drawn when none is given.")] = 0,
    threads: ThreadsOption = 1,
) -> None:
    """Draw one problem played by the trained learner: exploration, then exploitation."""
    from functools import partial

    import torch

    from stalwart.rl.envs.catalog import make
    from stalwart.rl.loop import load_trained
    from stalwart.rl.render import record, save

    torch.set_num_threads(threads)
    trained = load_trained(run_dir)
    cfg = trained.config
    env = partial(make, cfg.env.name, **cfg.env.params)
    recording = record(trained.learner.policy(training=False), env, problem, goal, seed=seed)
    path = save(recording, out if out is not None else run_dir / "render" / f"problem{problem}.png")
    console.print(
        f"problem {recording.problem}, goal {recording.goal}: explored with "
        f"{_runs(recording.exploration_actions)}; exploited with "
        f"{_runs(recording.exploitation_actions)}, return "
        f"{recording.exploitation_return:+.3f}; written {path}",
        highlight=False,
    )
