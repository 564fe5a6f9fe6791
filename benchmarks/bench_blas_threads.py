"""CPU time of one pyhf upper limit with OpenBLAS's default thread pool and with one thread
(``belle_rare.core.blas_threads``), on a 40-bin uncorrelated-background model.

    .venv/bin/python benchmarks/bench_blas_threads.py [--bins 40]
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import pyhf

from belle_rare.core.blas_threads import one_blas_thread
from belle_rare.stats import limits


def _limit(model: pyhf.pdf.Model, data: list[float], limited: bool) -> tuple[float, float]:
    start = time.process_time()
    if limited:
        with one_blas_thread():
            result = limits.upper_limit(model, data, calculator="asymptotics")
    else:
        result = limits.upper_limit(model, data, calculator="asymptotics")
    return time.process_time() - start, result.expected[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bins", type=int, default=40)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    bkg = rng.uniform(5.0, 50.0, args.bins)
    model = pyhf.simplemodels.uncorrelated_background(list(rng.uniform(0.5, 2.0, args.bins)), list(bkg), list(np.sqrt(bkg)))
    data = list(bkg) + model.config.auxdata
    # hypotest_point now limits itself: switch that off to measure the default pool
    real = limits.one_blas_thread
    limits.one_blas_thread = contextlib.nullcontext
    try:
        default_cpu, default_limit = _limit(model, data, limited=False)
    finally:
        limits.one_blas_thread = real
    one_cpu, one_limit = _limit(model, data, limited=True)
    print(f"{args.bins} bins: default BLAS threads {default_cpu:.1f} CPU s (expected limit {default_limit:.6g}); "
          f"one thread {one_cpu:.1f} CPU s ({one_limit:.6g}); ratio {default_cpu / one_cpu:.1f}")


if __name__ == "__main__":
    main()
