"""One BLAS thread for the likelihood fits.

The fits of the stats layer (pyhf's and the analytic engine's) make many small matrix operations; with
OpenBLAS's default thread pool each of them pays a thread hand-off that costs far more than the work:
a 40-bin pyhf limit took 6 x the CPU time with the default threads as with one on this project's 2-core
machines. Parallelism belongs to the callers (limits over mass points in worker processes)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import lru_cache

from threadpoolctl import ThreadpoolController


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    # created at first use, once numpy / scipy have loaded their BLAS
    return ThreadpoolController()


def one_blas_thread() -> AbstractContextManager:
    """Context manager limiting the loaded BLAS libraries to one thread inside it."""
    return _controller().limit(limits=1, user_api="blas")
