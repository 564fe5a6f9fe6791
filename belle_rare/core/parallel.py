"""One parallel map for the whole product: local processes (spawned) or dask workers."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Literal

Executor = Literal["local", "dask"]


def parallel_map(fn: Callable, items: list, executor: Executor = "local", workers: int = 1, scheduler: str | None = None) -> list:
    """``[fn(x) for x in items]`` on local processes or dask workers (results in order)."""
    if not items:
        return []
    if executor == "dask":
        from dask.distributed import Client, LocalCluster  # optional dependency

        if scheduler:
            with Client(scheduler) as client:
                return client.gather(client.map(fn, items, pure=False))
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True) as cluster, Client(cluster) as client:
            return client.gather(client.map(fn, items, pure=False))
    if workers <= 1 or len(items) == 1:
        return [fn(x) for x in items]
    # spawn, not fork: pyhf/scipy may hold threads, and forked BLAS pools can deadlock
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(fn, items))
