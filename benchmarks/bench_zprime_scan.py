"""zprime scan: the vectorised per-mass 2D fit (stats/template_scan.py) against pyhf full fits, and its speed.

Run: ``.venv/bin/python benchmarks/bench_zprime_scan.py --results DIR [--pyhf-masses 3]`` on the output of
``belle-rare run zprime`` (signal samples at several masses plus backgrounds). Builds every hypothesis's
window exactly as ``belle-rare limit zprime`` does (analyses/zprime_scan.py), times the fast limits of all
hypotheses, then, at ``--pyhf-masses`` hypotheses spread over the scan, the same model as a pyhf workspace
(``template_scan.pyhf_spec``: normfactor, normsys, histosys, shapesys) through the stats layer's pyhf
limit (``stats.limits.upper_limit``, asymptotics); prints both, their ratio (the brief: within 5 %) and
the time per hypothesis of each.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from belle_rare.analyses import zprime_scan as zs
from belle_rare.processors.registry import get_search
from belle_rare.stats import template_scan as ts
from belle_rare.stats.histograms import load_run_output
from belle_rare.stats.limits import upper_limit, workspace_from_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True)
    parser.add_argument("--pyhf-masses", type=int, default=3, help="pyhf spot checks spread over the scan")
    parser.add_argument("--masses", type=float, nargs="*", help="pyhf spot checks at the hypotheses nearest these masses (GeV) instead")
    parser.add_argument("--theta-rebin", type=int, help="theta bins merged (default: the stats YAML's); coarser keeps "
                        "pyhf's fits (one shapesys parameter per bin) affordable")
    parser.add_argument("--mc-bound", choices=("on", "off"), default="on")
    args = parser.parse_args()
    shipped = zs.load_scan_config()
    cfg = shipped.model_copy(update={
        "scan": shipped.scan.model_copy(update={"theta_rebin": args.theta_rebin or shipped.scan.theta_rebin}),
        "mc_bound": shipped.mc_bound.model_copy(update={"enabled": args.mc_bound == "on"})})
    run = load_run_output(args.results, "zprime")
    samples, notes = zs.signal_samples(run, cfg, get_search("zprime").load_config().paper_m2_resolution)
    spec = zs.spectra(run, cfg)
    masses = zs.hypotheses(samples, cfg)
    plan = zs.plan(masses, samples, spec.m2_edges, cfg)
    model = zs.build(samples, spec, plan, cfg, run.luminosity_fb)
    start = time.perf_counter()
    fast, _ = ts.upper_limits(model.windows, cfg.cl)
    fast_seconds = time.perf_counter() - start
    print(f"fast path: {len(masses)} hypotheses in {fast_seconds:.2f} s ({1e3 * fast_seconds / len(masses):.1f} ms each)")
    if args.masses:
        picks = np.unique([int(np.argmin(np.abs(masses - m))) for m in args.masses])
    else:
        picks = np.unique(np.linspace(0, len(masses) - 1, args.pyhf_masses + 2).round().astype(int)[1:-1])
    ratios, pyhf_seconds = [], []
    for h in picks:  # a loop over a few pyhf spot checks
        workspace = workspace_from_spec(ts.pyhf_spec(model.windows, h))
        pyhf_model = workspace.model()
        t0 = time.perf_counter()
        result = upper_limit(pyhf_model, workspace.data(pyhf_model), cl=cfg.cl, calculator="asymptotics")
        pyhf_seconds.append(time.perf_counter() - t0)
        per_fb = model.signal_per_fb[h]
        exp_fast, exp_pyhf = fast.expected[:, h], np.asarray(result.expected, float)
        ratio = np.concatenate([[fast.observed[h] / result.observed], exp_fast / exp_pyhf])
        ratios.append(ratio)
        print(f"M = {masses[h]:.3f} GeV ({int(model.windows.mask[h].sum())} bins): observed {fast.observed[h] / per_fb:.4g} fb "
              f"(pyhf {result.observed / per_fb:.4g}), expected {exp_fast[2] / per_fb:.4g} fb (pyhf {exp_pyhf[2] / per_fb:.4g}); "
              f"fast / pyhf: {' '.join(f'{r:.4f}' for r in ratio)}; pyhf {pyhf_seconds[-1]:.1f} s")
    worst = float(np.max(np.abs(np.array(ratios) - 1.0))) if ratios else float("nan")
    print(f"largest |fast / pyhf - 1| over observed and the five expected limits: {100 * worst:.2f} % (brief: < 5 %)")
    if pyhf_seconds:
        print(f"pyhf {np.mean(pyhf_seconds):.1f} s per hypothesis; a pyhf loop over the scan would take "
              f"{np.mean(pyhf_seconds) * len(masses) / 60:.0f} min against {fast_seconds:.1f} s "
              f"(ratio {np.mean(pyhf_seconds) * len(masses) / fast_seconds:.0f})")


if __name__ == "__main__":
    main()
