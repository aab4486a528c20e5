"""Run many configs: in this process, or in parallel worker processes.

Workers start with ``spawn`` (a forked PyTorch process can deadlock in its thread pools) and
split the machine's cores between them, so two workers on two cores each use one thread.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import torch

from stalwart.config import RunConfig
from stalwart.experiments.run import RunSummary, run


@dataclass(frozen=True)
class Job:
    """One run, with the stages it may share with or reuse from other runs."""

    config: RunConfig
    shared_dir: Path | None = None
    reuse: dict[str, Path] = field(default_factory=dict)
    label: str = ""


def _limit_threads(threads: int) -> None:
    torch.set_num_threads(threads)


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
    if workers <= 1 or len(jobs) <= 1:
        for position, job in enumerate(jobs):
            results[position] = _run_job(job)
            if on_done:
                on_done(job, results[position])
        return results  # type: ignore[return-value]
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_limit_threads,
                             initargs=(threads,)) as pool:  # fmt: skip
        futures = {pool.submit(_run_job, job): position for position, job in enumerate(jobs)}
        for future in as_completed(futures):
            position = futures[future]
            results[position] = future.result()
            if on_done:
                on_done(jobs[position], results[position])
    return results  # type: ignore[return-value]
