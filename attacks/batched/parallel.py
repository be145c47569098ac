"""Spread independent attack jobs over worker processes, one torch thread each.

On a few CPU cores, one process per core with ``torch.set_num_threads(1)``
beats one process with several intra-op threads (on the project's 2-core machine two threads
under contention were 50-90x slower). Jobs are pickled to 'spawn' workers
(no fork of a process that may already hold OpenMP or CUDA state); each
returns a list of Reconstructions. With ``workers <= 1`` or a single job,
everything runs here, in order, without a pool.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import torch

from attacks.core import AttackConfig, ObservedUpdate, Reconstruction

JobFn = Callable[..., list[Reconstruction]]
Job = tuple[Sequence[ObservedUpdate], AttackConfig, str, Sequence[int], int]  # updates, config, attack, seeds, slots


def default_workers() -> int:
    """One worker per core this process may use (at least 1)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _init_worker() -> None:
    torch.set_num_threads(1)


def _call(task: tuple[JobFn, Job]) -> list[Reconstruction]:
    job_fn, job = task
    return job_fn(*job)


def map_jobs(job_fn: JobFn, jobs: Sequence[Job], workers: int = 1) -> list[list[Reconstruction]]:
    """``job_fn(*job)`` for every job, over ``workers`` processes; outputs in the order of ``jobs``.

    Parameters
    ----------
    job_fn : callable
        A module-level function (it is pickled by reference to the workers),
        e.g. ``attacks.batched.engine.reconstruct_job``.
    jobs : sequence of (observed updates, config, attack name, one seed per update)
    workers : int
        Processes to use; capped at the number of jobs. A job that cannot be
        pickled or a worker that dies fails the call (attacks themselves never raise).
    """
    workers = min(workers, len(jobs))
    if workers <= 1:
        return [_call((job_fn, job)) for job in jobs]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_init_worker) as pool:
        return list(pool.map(_call, [(job_fn, job) for job in jobs]))
