"""coffea executors: iterative (tests, notebooks), futures (local processes) and dask
(a LocalCluster, an existing scheduler, or a batch cluster through dask-jobqueue)."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any

from coffea import processor

from belle_rare.core.errors import UserError
from belle_rare.configs.loader import StrictModel, config_path, load_config

EXECUTORS = ("iterative", "futures", "dask")


class ClusterProfile(StrictModel):
    """A dask-jobqueue cluster: the class name and its keyword arguments."""

    kind: str  # SLURMCluster | HTCondorCluster | ...
    options: dict[str, Any]
    jobs: int = 1


class ClusterProfiles(StrictModel):
    profiles: dict[str, ClusterProfile]


def load_profiles() -> ClusterProfiles:
    return load_config(config_path("clusters.yaml"), ClusterProfiles)


def jobqueue_cluster(name: str) -> tuple[Any, int]:
    """The dask-jobqueue cluster of profile ``name`` (not yet scaled) and its number of jobs.

    Creating it starts a scheduler in this process and submits nothing; ``cluster.job_script()``
    is the batch script each job would run (tests/test_run_interrupts.py checks it).
    """
    try:
        import dask_jobqueue
    except ImportError:
        raise UserError("--cluster needs dask-jobqueue: pip install 'belle-rare[cluster]'") from None
    profiles = load_profiles().profiles
    if name not in profiles:
        raise UserError(f"--cluster: unknown profile '{name}' (configs/clusters.yaml has {', '.join(profiles)})")
    profile = profiles[name]
    kind = getattr(dask_jobqueue, profile.kind, None)
    if kind is None:
        raise UserError(f"configs/clusters.yaml: profiles.{name}.kind: dask_jobqueue has no '{profile.kind}'")
    # the workers run this interpreter (a shared file system: the checkout's .venv) unless the profile says otherwise
    options = {"python": sys.executable, **profile.options}
    return kind(**options), profile.jobs


@contextlib.contextmanager
def killable_pool(workers: int) -> Iterator[Any]:
    """loky worker processes for the futures executor. On an interrupt (or any error) the queued
    chunks are dropped and the workers killed at once: coffea's own pool would wait for every
    queued chunk before the interrupt reaches the user (minutes on a large run)."""
    import loky

    pool = loky.ProcessPoolExecutor(max_workers=workers)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, kill_workers=True)
        raise
    pool.shutdown(wait=True)


@contextlib.contextmanager
def dask_client(workers: int, scheduler: str | None, cluster: str | None) -> Iterator[Any]:
    """A dask client: an existing scheduler, a jobqueue cluster profile, or a LocalCluster."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    if cluster:
        jq, jobs = jobqueue_cluster(cluster)
        with jq, Client(jq) as client:
            jq.scale(jobs=jobs)
            yield client
        return
    # the dashboard listens on localhost only
    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
    ) as local, Client(local) as client:
        try:
            yield client
        except BaseException:
            # an interrupt cancels the running chunks: distributed's warnings about them are expected
            logging.getLogger("distributed").setLevel(logging.CRITICAL)
            raise


@contextlib.contextmanager
def make_executor(
    name: str, workers: int = 1, scheduler: str | None = None, cluster: str | None = None, status: bool = True
) -> Iterator[processor.executor.ExecutorBase]:
    """The executor for ``--executor NAME`` (a context: dask clients are closed afterwards)."""
    if name not in EXECUTORS:
        raise UserError(f"--executor: unknown executor '{name}' (choose from {', '.join(EXECUTORS)})")
    if workers < 1:
        raise UserError(f"--workers: must be at least 1, got {workers}")
    if name == "iterative":
        yield processor.IterativeExecutor(status=status)
    elif name == "futures":
        with killable_pool(workers) as pool:
            yield processor.FuturesExecutor(pool=pool, workers=workers, status=status)
    else:
        with dask_client(workers, scheduler, cluster) as client:
            yield processor.DaskExecutor(client=client, status=status)
