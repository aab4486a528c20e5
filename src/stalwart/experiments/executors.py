"""Executors: one interface for running many independent tasks (runs, study cells).

- ``LocalExecutor`` (the default): in this process, or in ``spawn``-started worker processes
  that split the machine's cores (a forked PyTorch process can deadlock in its thread pools),
  so two workers on two cores each use one thread.
- ``RayExecutor``: each task a Ray task with its own CPU (and GPU) request, on a local Ray
  instance or an existing cluster (``address="auto"`` or ``"ray://HOST:10001"``). Tasks write
  their run directories as locally, so a cluster needs a filesystem its nodes share.

A task is a picklable module-level function and a picklable item; an executor yields
``(position, result)`` as tasks finish. Results do not depend on the executor: every run is a
pure function of its config (each task runs with a fixed number of threads).
"""

from __future__ import annotations

import multiprocessing
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import torch

from stalwart.config import RunConfig
from stalwart.errors import ConfigError, DataMissingError, closest
from stalwart.experiments.run import RunSummary, run

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("local", "ray")
RAY_INSTALL = 'pip install "stalwart[ray]"  (or: pip install ray==2.60.0)'


class Executor(ABC):
    """Runs ``function`` on every item; yields ``(position, result)`` as each finishes."""

    @abstractmethod
    def map(self, function: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        """Yield ``(position, function(item))`` for every item, in completion order."""


def _limit_threads(threads: int) -> None:
    torch.set_num_threads(threads)


@dataclass(frozen=True)
class LocalExecutor(Executor):
    """Here, in order (``workers`` = 1), or in ``workers`` spawned processes sharing the cores.

    Like any spawning code, a script using ``workers`` > 1 needs the
    ``if __name__ == "__main__":`` guard.
    """

    workers: int = 1

    def map(self, function: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        """Yield ``(position, function(item))`` as each item finishes."""
        if self.workers <= 1 or len(items) <= 1:
            for position, item in enumerate(items):
                yield position, function(item)
            return
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.workers, mp_context=context, initializer=_limit_threads,
                                 initargs=(threads,)) as pool:  # fmt: skip
            futures = {pool.submit(function, item): n for n, item in enumerate(items)}
            for future in as_completed(futures):
                yield futures[future], future.result()


def _threaded(function: Callable[[T], R], threads: int, item: T) -> R:
    _limit_threads(threads)
    return function(item)


@dataclass(frozen=True)
class RayExecutor(Executor):
    """Every item a Ray task requesting ``cpus`` CPUs and ``gpus`` GPUs.

    Args:
        address: an existing cluster (``"auto"``, ``"ray://HOST:10001"``); None starts a local
            Ray instance (limited to ``num_cpus`` CPUs if given) for the duration of the map.
        cpus: CPUs per task (each task runs PyTorch with that many threads).
        gpus: GPUs per task.
        num_cpus: CPUs of a local instance started here (None: all).
    """

    address: str | None = None
    cpus: float = 1.0
    gpus: float = 0.0
    num_cpus: int | None = None
    runtime_env: dict = field(default_factory=dict)

    def map(self, function: Callable[[T], R], items: Sequence[T]) -> Iterator[tuple[int, R]]:
        """Submit every item as a task, then yield results as tasks finish."""
        ray = require_ray()
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(
                address=self.address, num_cpus=self.num_cpus if self.address is None else None,
                include_dashboard=False, log_to_driver=False, runtime_env=self.runtime_env or None,
            )  # fmt: skip
        try:
            task = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus)(_threaded)
            threads = max(1, int(self.cpus))
            pending = {task.remote(function, threads, item): n for n, item in enumerate(items)}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for reference in done:
                    yield pending.pop(reference), ray.get(reference)
        finally:
            if started_here:
                ray.shutdown()


def require_ray():
    """The ``ray`` module, or a clear error with the install command."""
    try:
        import ray
    except ImportError:
        raise DataMissingError(f"--executor ray needs Ray; install it with {RAY_INSTALL}") from None
    return ray


def build_executor(
    name: str = "local", *, workers: int = 1, address: str | None = None
) -> Executor:
    """The executor ``name`` (``local`` or ``ray``).

    ``workers`` sizes the local process pool, and the local Ray instance started when no
    ``address`` is given (that many CPUs, one per task), so a config's parallelism is the same
    on both.
    """
    if name == "local":
        if address is not None:
            raise ConfigError("--address goes with --executor ray")
        return LocalExecutor(workers)
    if name == "ray":
        return RayExecutor(address=address, num_cpus=None if address else max(1, workers))
    raise ConfigError(
        f"unknown executor {name!r}{closest(name, EXECUTORS)}; choose from {list(EXECUTORS)}"
    )


@dataclass(frozen=True)
class Job:
    """One run, with the stages it may share with or reuse from other runs."""

    config: RunConfig
    shared_dir: Path | None = None
    reuse: dict[str, Path] = field(default_factory=dict)
    label: str = ""


def _run_job(job: Job) -> RunSummary:
    return run(job.config, shared_dir=job.shared_dir, reuse=job.reuse)


def run_jobs(
    jobs: Sequence[Job],
    executor: Executor | None = None,
    on_done: Callable[[Job, RunSummary], None] | None = None,
) -> list[RunSummary]:
    """Run ``jobs`` and return their summaries in the same order.

    Args:
        jobs: the runs.
        executor: where they run (default: one after another, here).
        on_done: called as each job finishes (in completion order).
    """
    results: list[RunSummary | None] = [None] * len(jobs)
    for position, summary in (executor or LocalExecutor()).map(_run_job, jobs):
        results[position] = summary
        if on_done:
            on_done(jobs[position], summary)
    return results  # type: ignore[return-value]
