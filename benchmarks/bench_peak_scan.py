"""bkscalar scan speed: the vectorised peak scan (stats/peak_scan.py) against a plain loop of pyhf fits.

Run: ``.venv/bin/python benchmarks/bench_peak_scan.py [--spectra 32] [--workers 2] [--executor local|dask]
[--pyhf-calls 10] [--seed 1]``

The issue's workload: 8 channels x 4 lifetimes = 32 reduced-mass spectra (2400 bins of 2 MeV, a smooth
falling background, Poisson-fluctuated), each scanned at step sigma(m)/2 over 0.025-4.78 GeV with the
resolution sigma(m) = 1.5 MeV + 0.0019 m (a straight line through the mu mu values of
``benchmarks/bench_bkscalar.py --parts mass``: 2, 3, 5, 7, 10 MeV at 0.3, 1, 2, 3.5, 4.5 GeV), which gives
about 2000 hypotheses per spectrum, as the paper's "approximately 2000". Every hypothesis is a fit of
peak + linear background in +-5 sigma and its observed and expected (-2..+2 sigma) 95 % CLs limits.

Printed: the fast scan's wall time for all hypotheses (the spectra spread over ``--workers`` processes or
dask workers as ``belle-rare limit bkscalar`` does, ``stats.peak_scan.scan_spectrum``), a pyhf
``toms748_scan`` loop over ``--pyhf-calls`` hypotheses with its time per call scaled to all, the ratio, the
largest relative difference between the two on the hypotheses pyhf ran, and the local significance of
the fast path (``peak_scan.local_significance``) against pyhf's discovery test (q0) on the same models.

Measured (first half, one process): 64,800 hypotheses in 96 s on one core (1.5 ms each; the machine shared);
pyhf 3.4 s per hypothesis, 2300 x slower; largest relative difference to pyhf observed 1.4e-5, expected 5.2e-5;
to fully converged fits 4e-10. Measured (defaults, --workers 2, load ~8 on the 2 cores): 156 s wall (294 s
summed over the spectra); pyhf 2.08 s per hypothesis, 861 x slower; same differences; local Z against pyhf q0
9.7e-7 (10 hypotheses with Z > 1).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyhf
from rich.console import Console
from scipy.stats import norm

from belle_rare.core.parallel import parallel_map
from belle_rare.stats import peak_scan

SCAN_RANGE = (0.025, 4.78)
SIGMA_CONSTANT, SIGMA_SLOPE = 0.0015, 0.0019  # GeV, GeV per GeV


def sigma_of(m: np.ndarray) -> np.ndarray:
    return SIGMA_CONSTANT + SIGMA_SLOPE * m


def hypotheses() -> np.ndarray:
    """Masses at step sigma(m) / 2 over the scan range."""
    masses = [SCAN_RANGE[0]]
    while masses[-1] < SCAN_RANGE[1]:
        masses.append(masses[-1] + 0.5 * sigma_of(masses[-1]))
    return np.asarray(masses[:-1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spectra", type=int, default=32, help="channels x lifetimes (default 8 x 4)")
    ap.add_argument("--pyhf-calls", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="processes / dask workers for the spectra (default 2)")
    ap.add_argument("--executor", choices=("local", "dask"), default="local")
    args = ap.parse_args(argv)
    console = Console()
    rng = np.random.default_rng(args.seed)
    edges = np.linspace(0.0, 4.8, 2401)
    centres = 0.5 * (edges[1:] + edges[:-1])
    masses = hypotheses()
    console.print(f"{len(masses)} hypotheses per spectrum x {args.spectra} spectra = {len(masses) * args.spectra}")

    spectra = []
    for k in range(args.spectra):  # channels x lifetimes: ~2000 hypotheses each, vectorised per spectrum
        level = rng.uniform(5.0, 50.0)
        counts = rng.poisson(level * np.exp(-centres / rng.uniform(1.0, 3.0)) + 1.0).astype(float)
        spectra.append(peak_scan.SpectrumScan((k,), edges, counts, masses, sigma_of(masses)))
    start = time.perf_counter()
    results = parallel_map(peak_scan.scan_spectrum, spectra, executor=args.executor, workers=args.workers)
    fast_time = time.perf_counter() - start
    console.print(f"fast scan: {fast_time:.1f} s wall for {len(masses) * args.spectra} hypotheses on {args.workers} "
                  f"{args.executor} worker(s) ({1e3 * fast_time / (len(masses) * args.spectra):.2f} ms per hypothesis; "
                  f"{sum(r.seconds for r in results):.1f} s summed over the spectra)")
    w = peak_scan.windows(edges, spectra[0].counts, masses, sigma_of(masses))
    first = (w, peak_scan.FastLimits(results[0].observed, results[0].expected, "peak scan"))
    assert first is not None
    w, limits = first
    # convergence: the first spectrum again with every fit run to convergence (12 Newton steps, 60 root steps)
    warm = peak_scan.WARM_STEPS
    peak_scan.WARM_STEPS = peak_scan.NEWTON_STEPS
    converged = peak_scan.upper_limits(w, iterations=60)
    peak_scan.WARM_STEPS = warm
    console.print(f"against fully converged fits ({len(masses)} hypotheses): largest relative difference observed "
                  f"{np.max(np.abs(limits.observed / converged.observed - 1)):.1e}, expected "
                  f"{np.max(np.abs(limits.expected / converged.expected - 1)):.1e}")
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer())
    picks = np.linspace(0, len(masses) - 1, args.pyhf_calls).astype(int)
    worst_obs = worst_exp = 0.0
    start = time.perf_counter()
    for h in picks:
        ws = pyhf.Workspace(peak_scan.pyhf_spec(w, int(h)))
        model = ws.model()
        obs, exp = pyhf.infer.intervals.upper_limits.toms748_scan(ws.data(model), model, 0.0, 500.0, level=0.05, rtol=1e-5)
        worst_obs = max(worst_obs, abs(limits.observed[h] / float(obs) - 1.0))
        worst_exp = max(worst_exp, float(np.max(np.abs(limits.expected[:, h] / np.asarray(exp, dtype=float) - 1.0))))
    per_call = (time.perf_counter() - start) / len(picks)
    loop_time = per_call * len(masses) * args.spectra
    console.print(f"pyhf loop: {per_call:.2f} s per hypothesis -> {loop_time / 3600:.1f} h for all; "
                  f"fast / pyhf speed-up {loop_time / fast_time:.0f} x")
    console.print(f"largest relative difference on {len(picks)} hypotheses: observed {worst_obs:.1e}, expected {worst_exp:.1e}")

    # local significance: the fast path's signed Z against pyhf's discovery test q0 where the fit sees an excess
    z_fast = results[0].local_significance
    excess = np.flatnonzero(z_fast > 1.0)
    picks = excess[np.linspace(0, len(excess) - 1, min(args.pyhf_calls, len(excess))).astype(int)] if len(excess) else []
    worst_z = 0.0
    for h in picks:
        ws = pyhf.Workspace(peak_scan.pyhf_spec(w, int(h)))
        model = ws.model()
        p0 = float(pyhf.infer.hypotest(0.0, ws.data(model), model, test_stat="q0"))
        worst_z = max(worst_z, abs(z_fast[h] / norm.isf(p0) - 1.0))
    console.print(f"local significance against pyhf q0 on {len(picks)} hypotheses with Z > 1: largest relative difference {worst_z:.1e}")


if __name__ == "__main__":
    main()
