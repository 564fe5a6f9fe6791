"""coffea executors: iterative (tests, notebooks), futures (local processes) and dask
(a LocalCluster, an existing scheduler, or a batch cluster through dask-jobqueue)."""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def dask_client(workers: int, scheduler: str | None, cluster: str | None) -> Iterator[Any]:
    """A dask client: an existing scheduler, a jobqueue cluster profile, or a LocalCluster."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    if cluster:
        import dask_jobqueue

        profiles = load_profiles().profiles
        if cluster not in profiles:
            raise UserError(f"--cluster: unknown profile '{cluster}' (configs/clusters.yaml has {', '.join(profiles)})")
        profile = profiles[cluster]
        with getattr(dask_jobqueue, profile.kind)(**profile.options) as jq, Client(jq) as client:
            jq.scale(jobs=profile.jobs)
            yield client
        return
    # the dashboard listens on localhost only
    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
    ) as local, Client(local) as client:
        yield client


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
        yield processor.FuturesExecutor(workers=workers, status=status)
    else:
        with dask_client(workers, scheduler, cluster) as client:
            yield processor.DaskExecutor(client=client, status=status)
