"""Run many configs: in this process, or in parallel worker processes.

Workers start with ``spawn`` (a forked PyTorch process can deadlock in its thread pools) and
split the machine's cores between them, so two workers on two cores each use one thread.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch

from stalwart.config import RunConfig
from stalwart.experiments.run import RunSummary, run

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Job:
    """One run, with the stages it may share with or reuse from other runs."""

    config: RunConfig
    shared_dir: Path | None = None
    reuse: dict[str, Path] = field(default_factory=dict)
    label: str = ""


def _limit_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def map_in_processes(
    function: Callable[[T], R], items: Sequence[T], workers: int = 1
) -> Iterator[tuple[int, R]]:
    """Yield ``(position, function(item))`` as each item finishes.

    With ``workers`` > 1 the items run in that many ``spawn``-started processes that share
    the cores; otherwise here, in order. ``function`` must be importable (module level).
    Like any spawning code, a script calling this with ``workers`` > 1 needs the
    ``if __name__ == "__main__":`` guard.
    """
    if workers <= 1 or len(items) <= 1:
        for position, item in enumerate(items):
            yield position, function(item)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_limit_threads,
                             initargs=(threads,)) as pool:  # fmt: skip
        futures = {pool.submit(function, item): position for position, item in enumerate(items)}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _run_job(job: Job) -> RunSummary:
    return run(job.config, shared_dir=job.shared_dir, reuse=job.reuse)


def run_jobs(
    jobs: Sequence[Job],
    workers: int = 1,
    on_done: Callable[[Job, RunSummary], None] | None = None,
) -> list[RunSummary]:
    """Run ``jobs`` and return their summaries in the same order.

    Args:
        jobs: the runs.
        workers: worker processes; 1 runs everything here, one after another.
        on_done: called as each job finishes (in completion order).
    """
    results: list[RunSummary | None] = [None] * len(jobs)
    for position, summary in map_in_processes(_run_job, jobs, workers):
        results[position] = summary
        if on_done:
            on_done(jobs[position], summary)
    return results  # type: ignore[return-value]
