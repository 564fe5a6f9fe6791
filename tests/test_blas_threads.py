"""The stats layer's fits run with one BLAS thread (core/blas_threads.py): the pool's hand-offs cost more
than the small matrix operations of a likelihood fit."""

from __future__ import annotations

import pyhf
from threadpoolctl import threadpool_info

from belle_rare.core.blas_threads import one_blas_thread
from belle_rare.stats import limits


def _blas_threads() -> set[int]:
    return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}


def test_one_blas_thread_inside_and_restored_after():
    before = _blas_threads()
    with one_blas_thread():
        assert _blas_threads() <= {1}
    assert _blas_threads() == before


def test_pyhf_hypotest_runs_with_one_blas_thread(monkeypatch):
    seen = []
    real = pyhf.infer.hypotest

    def spy(*args, **kwargs):
        seen.append(_blas_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(pyhf.infer, "hypotest", spy)
    model = pyhf.simplemodels.uncorrelated_background([5.0, 2.0], [20.0, 10.0], [4.0, 3.0])
    point = limits.hypotest_point(model, [20.0, 10.0] + model.config.auxdata, 1.0)
    assert seen and all(threads <= {1} for threads in seen)
    assert 0.0 < point.cls_obs < 1.0
