"""Scan speed: the vectorised fast path against a plain loop of pyhf limit calls.

Run: ``.venv/bin/python benchmarks/bench_scan.py [--hypotheses 1000] [--pyhf-calls 20] [--cl 0.95]``

H one-bin hypotheses (a mass scan: background b +- 10 %, observed counts drawn from b) are
solved three ways in one run, since these machines are shared and noisy:

* fast asymptotic: ``stats.fast_scan.asymptotic_limits`` on all H at once (closed-form qtilde);
* fast exact Poisson: ``stats.fast_scan.poisson_limits`` on all H at once (no uncertainties);
* pyhf: a plain loop of ``pyhf.infer.intervals.upper_limits.toms748_scan`` (level = 1 - CL) on
  the same models, for the first ``--pyhf-calls`` hypotheses; its per-call time is scaled to H.

Printed: time per method, the pyhf / fast ratio for H hypotheses, and the largest relative
difference between the fast asymptotic and pyhf limits on the hypotheses pyhf ran.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyhf
from rich.console import Console
from rich.table import Table

from belle_rare.stats import fast_scan


def hypotheses(n: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    b = rng.uniform(2.0, 60.0, n)
    return rng.poisson(b).astype(float), b, 0.1 * b


def pyhf_limit(n: float, b: float, db: float, cl: float) -> tuple[float, list[float]]:
    """One full pyhf limit, in signal events (signal = 1 event per unit POI)."""
    model = pyhf.simplemodels.uncorrelated_background([1.0], [b], [db])
    bounds = model.config.suggested_bounds()
    bounds[model.config.poi_index] = (0.0, 10.0 * (n + b + 5.0))
    obs, exp = pyhf.infer.intervals.upper_limits.toms748_scan(
        [n] + model.config.auxdata, model, 0.5, 2.0 * np.sqrt(b) + 5.0, level=1.0 - cl, par_bounds=bounds
    )
    return float(obs), [float(e) for e in exp]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hypotheses", type=int, default=1000)
    parser.add_argument("--pyhf-calls", type=int, default=20)
    parser.add_argument("--cl", type=float, default=0.95)
    args = parser.parse_args()
    pyhf.set_backend("numpy")
    n, b, db = hypotheses(args.hypotheses)

    fast_scan.asymptotic_limits(n[:10], b[:10], db[:10], cl=args.cl)  # warm-up (imports, caches)
    start = time.perf_counter()
    fast = fast_scan.asymptotic_limits(n, b, db, cl=args.cl)
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    fast_scan.poisson_limits(n, b, cl=args.cl)
    t_poisson = time.perf_counter() - start

    k = min(args.pyhf_calls, args.hypotheses)
    pyhf_limit(n[0], b[0], db[0], args.cl)  # warm-up
    start = time.perf_counter()
    ref = [pyhf_limit(n[i], b[i], db[i], args.cl) for i in range(k)]
    t_pyhf_each = (time.perf_counter() - start) / k
    t_pyhf = t_pyhf_each * args.hypotheses

    rel = max(
        max(abs(fast.observed[i] / ref[i][0] - 1), *(abs(fast.expected[j, i] / ref[i][1][j] - 1) for j in range(5)))
        for i in range(k)
    )
    table = Table(title=f"{args.hypotheses} one-bin hypotheses, {100 * args.cl:g}% CL (observed + 5 expected)")
    table.add_column("method")
    table.add_column("time", justify="right")
    table.add_column("pyhf / this", justify="right")
    table.add_row("fast asymptotic (vectorised)", f"{t_fast * 1e3:.1f} ms", f"{t_pyhf / t_fast:.0f}")
    table.add_row("fast exact Poisson (vectorised)", f"{t_poisson * 1e3:.1f} ms", f"{t_pyhf / t_poisson:.0f}")
    table.add_row(f"pyhf toms748 loop ({k} calls, scaled)", f"{t_pyhf:.1f} s ({t_pyhf_each:.2f} s/call)", "1")
    console = Console()
    console.print(table)
    console.print(f"largest relative difference fast asymptotic vs pyhf over {k} hypotheses: {rel:.1e}")


if __name__ == "__main__":
    main()
