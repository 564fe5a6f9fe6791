"""How much zprime's systematic uncertainties weaken its expected limits, beside the paper's statement.

PRL 130 231801: "Our upper limits are dominated by statistical uncertainties for M_Z' < 6 GeV/c^2, where
systematic uncertainties degrade them by less than 5%. Above 6 GeV/c^2, upper limits are dominated by
systematic uncertainties (mainly due to background shapes), degrading them by about 40%." The 25 % per-bin
background-shape uncertainty above M2 = 36 GeV^2 can only do that where the fit bins hold many background
events, so the degradation measures, like with like, how much background the fit sees there. This runs the
scan of a run twice -- the stats YAML as shipped (or ``--scan-config``) and with every systematic set to zero --
without toys or benchmarks, and prints the ratio of the Asimov expected limits by M_Z' range and at a few masses.
``--scale-background K ...``: the same ratio at a few masses with the background (and its uncertainties, and the
Asimov data) multiplied by K: how much background our binning needs for a given degradation.

    .venv/bin/python benchmarks/bench_zprime_systematics.py --results OUT/results --scale-background 10 100
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from belle_rare.analyses import zprime_scan as zs
from belle_rare.processors.registry import get_search
from belle_rare.stats import template_scan as ts
from belle_rare.stats.histograms import load_run_output

RANGES_GEV = ((0.5, 3.0), (3.0, 6.0), (6.0, 7.0), (7.0, 8.01))
MASSES_GEV = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 7.9)


def without_systematics(cfg: zs.ScanConfig) -> zs.ScanConfig:
    """``cfg`` with zero efficiency, background-shape, photon-veto, resolution and luminosity uncertainties."""
    s = cfg.systematics
    ranges = [r.model_copy(update={"efficiency": 0.0, "background_shape": 0.0}) for r in s.ranges]
    return cfg.model_copy(update={"systematics": s.model_copy(update={"resolution": 0.0, "luminosity": 0.0, "ranges": ranges,
                                                                       "photon_veto": None})})


def scaled_background_ratios(results: str, cfg: zs.ScanConfig, masses: tuple[float, ...], factors: list[float]) -> None:
    """Print, per factor K, the with / without systematics ratio of the expected limits at the hypotheses nearest
    ``masses`` with the background K x the simulated one (relative uncertainties kept)."""
    run = load_run_output(results, "zprime")
    samples, _ = zs.signal_samples(run, cfg, get_search("zprime").load_config().paper_m2_resolution)
    spec = zs.spectra(run, cfg)
    grid = zs.hypotheses(samples, cfg)
    chosen = grid[[int(np.argmin(np.abs(grid - m))) for m in masses]]
    windows = {}
    for name, c in (("with", cfg), ("without", without_systematics(cfg))):
        windows[name] = zs.build(samples, spec, zs.plan(chosen, samples, spec.m2_edges, c), c, run.luminosity_fb).windows
    w = windows["with"]
    print(f"  fit bins per window {w.mask.sum(axis=1).tolist()}, background per window "
          f"{np.round((w.b * w.mask).sum(axis=1), 1).tolist()} at {np.round(chosen, 2).tolist()} GeV")
    for k in factors:
        limit = {name: ts.upper_limits(dataclasses.replace(v, b=k * v.b, sigma_b=k * v.sigma_b, n=k * v.n), cfg.cl)[0].expected[2]
                 for name, v in windows.items()}
        ratio = limit["with"] / limit["without"]
        print(f"  background x {k:g}: " + ", ".join(f"{m:.2f} GeV {r:.3f}" for m, r in zip(chosen, ratio)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, help="a zprime run's results directory")
    ap.add_argument("--scan-config", type=Path, help="stats YAML (default: the shipped configs/stats/zprime.yaml)")
    ap.add_argument("--scale-background", type=float, nargs="*", default=[], metavar="K",
                    help="also the ratio with the background x K (at 3, 5, 6.5, 7, 7.5 GeV)")
    args = ap.parse_args()

    cfg = zs.load_scan_config(args.scan_config)
    cfg = cfg.model_copy(update={"benchmarks": [],
                                 "look_elsewhere": cfg.look_elsewhere.model_copy(update={"toys": 0}),
                                 "background_toys": cfg.background_toys.model_copy(update={"toys": 0})})
    shipped, _ = zs.compute(args.results, cfg=cfg)
    bare, _ = zs.compute(args.results, cfg=without_systematics(cfg))
    m = shipped.frame["mass"].to_numpy()
    ratio = shipped.frame["expected"].to_numpy() / bare.frame["expected"].to_numpy()
    background = shipped.frame["window_background"].to_numpy()
    print("expected limit with / without systematics (paper: < 1.05 below 6 GeV, ~1.4 above)")
    for lo, hi in RANGES_GEV:
        sel = (m >= lo) & (m < hi)
        if sel.any():
            print(f"  M_Z' {lo:g}-{hi:g} GeV: {sel.sum()} hypotheses, median {np.median(ratio[sel]):.3f} "
                  f"(range {ratio[sel].min():.3f}-{ratio[sel].max():.3f}), window background median {np.median(background[sel]):.1f}")
    for mass in MASSES_GEV:
        i = int(np.argmin(np.abs(m - mass)))
        print(f"  {m[i]:.2f} GeV: {shipped.frame['expected'].iloc[i]:.3g} / {bare.frame['expected'].iloc[i]:.3g} fb = "
              f"{ratio[i]:.3f}, window background {background[i]:.1f}")
    if args.scale_background:
        scaled_background_ratios(args.results, cfg, (3.0, 5.0, 6.5, 7.0, 7.5), args.scale_background)


if __name__ == "__main__":
    main()
