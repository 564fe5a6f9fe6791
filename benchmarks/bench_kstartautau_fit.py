"""Cost and result of the kstartautau limits with pyhf's own fits and with the analytic-gradient likelihood.

    belle-rare run kstartautau --experiment belle  --samples S --out BELLE_DIR
    belle-rare run kstartautau --experiment belle2 --samples S --out BELLE2_DIR
    python benchmarks/bench_kstartautau_fit.py --belle BELLE_DIR --belle2 BELLE2_DIR [--engines pyhf pyhf-1thread analytic]

For each limit of configs/stats/kstartautau.yaml (Belle E_ECL^extra fit, Belle II four-category BDT fit,
their combination) and each engine: the number of parameters, the CPU seconds of the limit (workspace
built beforehand, no plots) and the observed / expected 90 % CL limits on the POI, then the relative
difference of each engine's limits from pyhf's. Engines: ``pyhf`` (pyhf 0.7.6, numpy backend, scipy
SLSQP with numerical gradients, the machine's BLAS threads), ``pyhf-1thread`` (the same inside a
one-thread BLAS limit: on a loaded machine OpenBLAS's threads slow scipy's minimisers several times) and
``analytic`` (stats/binned_likelihood.py, what the YAML's ``fit_engine: analytic`` selects). CPU seconds,
not wall time: the machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

from belle_rare.configs.loader import config_path
from belle_rare.stats.combination import combined_spec, experiment_parts
from belle_rare.stats.histograms import load_run_output
from belle_rare.stats.limits import model_and_data, upper_limit, workspace_from_spec
from belle_rare.stats.model_config import read_stats_file
from belle_rare.stats.workspace import build_workspace, hypotheses

SEARCH = "kstartautau"
SIGNAL = "kstartautau"
ENGINES = ("pyhf", "pyhf-1thread", "analytic")


def workspaces(belle: Path, belle2: Path) -> dict[str, dict]:
    """name -> workspace spec of the three limits, built as `belle-rare limit` builds them."""
    stats_file = read_stats_file(config_path("stats", "kstartautau.yaml"))
    runs = {"belle": load_run_output(belle, SEARCH), "belle2": load_run_output(belle2, SEARCH)}
    out = {}
    for experiment, run in runs.items():
        config = stats_file.part(experiment)
        built = build_workspace(config, run, {SIGNAL: hypotheses(config, run, SIGNAL)[0]})
        out[experiment] = built.spec
    out["belle+belle2"] = combined_spec(experiment_parts(SEARCH, stats_file, runs, SIGNAL, []), SIGNAL)
    return out


def timed_limit(spec: dict, engine: str) -> tuple[float, int, object]:
    """(CPU seconds, parameters, LimitResult) of the 90 % CL asymptotic limit with ``engine``."""
    model, data = model_and_data(workspace_from_spec(spec, "bench"), measurement=SIGNAL)
    limit = threadpool_limits(1, user_api="blas") if engine == "pyhf-1thread" else contextlib.nullcontext()
    start = time.process_time()
    with limit:
        res = upper_limit(model, data, cl=0.90, calculator="asymptotics", engine="analytic" if engine == "analytic" else "pyhf")
    return time.process_time() - start, model.config.npars, res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--belle", type=Path, required=True, help="results directory of the Belle run (holds kstartautau/)")
    parser.add_argument("--belle2", type=Path, required=True, help="results directory of the Belle II run")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--limits", nargs="+", choices=("belle", "belle2", "belle+belle2"), default=["belle", "belle2", "belle+belle2"])
    args = parser.parse_args()
    specs = workspaces(args.belle, args.belle2)
    results: dict[tuple[str, str], object] = {}
    print(f"{'limit':14s} {'engine':13s} {'pars':>5s} {'CPU s':>8s} {'points':>6s}  observed    expected (-2 .. +2 sigma)")
    for name in args.limits:
        for engine in args.engines:
            cpu, npars, res = timed_limit(specs[name], engine)
            results[name, engine] = res
            band = " ".join(f"{v:.5g}" for v in res.expected)
            print(f"{name:14s} {engine:13s} {npars:5d} {cpu:8.1f} {len(res.points):6d}  {res.observed:.6g}  {band}", flush=True)
    for (name, engine), res in results.items():
        ref = results.get((name, "pyhf")) or results.get((name, "pyhf-1thread"))
        if ref is None or ref is res:
            continue
        diffs = [abs(a / b - 1) for a, b in zip([res.observed, *res.expected], [ref.observed, *ref.expected])]
        print(f"{name}: {engine} vs pyhf, largest relative difference of the six limits {max(diffs):.2e}")


if __name__ == "__main__":
    main()
