"""What fills zprime's mass windows: per background dataset, before and after the classifier (issue 14).

For each requested M_Z' the scan's window (the nearest hypothesis of ``analyses/zprime_scan.py``: M^2 +- 2 sigma
of our signal's core, all theta_recoil bins) is summed per background dataset in region ``selected`` (before the
classifier) and ``classified`` (after), raw (unsmoothed) at the run's luminosity, with the number of simulated
events behind each sum; beside it the window half-width against the Punzi-net example's resolution table
(``paper_m2_resolution``: feichtip/punzinet examples/width.txt) and the classifier's working point per trained mass
(the model metadata: chosen cut, how many simulated background events it keeps, the estimate it was chosen on).

    .venv/bin/python benchmarks/bench_zprime_background.py --results OUT/results [--masses 3 4 5 6] [--model-dir models]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from belle_rare.analyses import zprime_scan as zs
from belle_rare.processors import bdt
from belle_rare.processors.registry import get_search
from belle_rare.stats.histograms import load_run_output


def window_sums(values: np.ndarray, variances: np.ndarray, m2_edges: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """(yield, effective simulated events) of the M2 bins whose centres lie in (lo, hi), all theta bins."""
    mid = 0.5 * (m2_edges[1:] + m2_edges[:-1])
    inside = (mid > lo) & (mid < hi)
    s, v = float(values[inside].sum()), float(variances[inside].sum())
    return s, (s * s / v if v > 0 else 0.0)


def punzi_sensitivity(efficiency: float, background: float, luminosity_fb: float, a: float = 3.0, b: float = 1.28155) -> float:
    """The Punzi-net's figure of merit in fb (feichtip/punzinet src/punzinet/fom.py punzi_sensitivity)."""
    return (a**2 / 8 + 9 * b**2 / 13 + a * np.sqrt(background) + b * np.sqrt(b**2 + 4 * a * np.sqrt(background) + 4 * background) / 2) \
        / efficiency / luminosity_fb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", required=True, help="the run's results directory (DIR/zprime/histograms.coffea)")
    ap.add_argument("--masses", type=float, nargs="+", default=[3.0, 4.0, 5.0, 6.0])
    ap.add_argument("--model-dir", default=None, help="the classifier's directory (default: the shipped models)")
    args = ap.parse_args()
    cfg = zs.load_scan_config(None)
    config = get_search("zprime").load_config()
    run = load_run_output(args.results, "zprime")
    samples, _ = zs.signal_samples(run, cfg, config.paper_m2_resolution)
    hyp = zs.hypotheses(samples, cfg)
    p = zs.plan(hyp, samples, np.linspace(-0.5, 81.0, 2), cfg)
    table = sorted(config.paper_m2_resolution.items())
    backgrounds = [n for n, i in run.datasets.items() if i.get("kind") == "background"]
    for mass in args.masses:
        k = int(np.argmin(np.abs(p.mass - mass)))
        sigma_paper = float(np.interp(p.mass[k], [m for m, _ in table], [s for _, s in table]))
        lo, hi = p.mass[k] ** 2 - cfg.scan.half_width_sigma * p.sigma[k], p.mass[k] ** 2 + cfg.scan.half_width_sigma * p.sigma[k]
        print(f"\nM = {p.mass[k]:.3f} GeV: window {lo:.2f}-{hi:.2f} GeV^2 (sigma(M2) {p.sigma[k]:.3f}; Punzi-net table "
              f"{sigma_paper:.3f}, ratio {p.sigma[k] / sigma_paper:.2f})")
        print(f"  {'dataset':40s} {'before':>10s} {'(sim)':>7s} {'after':>9s} {'(sim)':>6s}")
        tot_b = tot_a = 0.0
        for name in backgrounds:
            out = []
            for region in ("selected", "classified"):
                values, variances, edges, _ = zs._hist2d(run, name, cfg, region)
                out.append(window_sums(values, variances, edges, lo, hi))
            tot_b, tot_a = tot_b + out[0][0], tot_a + out[1][0]
            print(f"  {name:40s} {out[0][0]:10.4g} {out[0][1]:7.0f} {out[1][0]:9.4g} {out[1][1]:6.0f}")
        print(f"  {'total':40s} {tot_b:10.4g} {'':7s} {tot_a:9.4g}")
    model_dir = Path(args.model_dir) if args.model_dir else None
    meta_path = bdt.model_paths("zprime", "belle2", model_dir)[1]
    meta = json.loads(meta_path.read_text())
    print(f"\nworking points ({meta_path}; estimate: {meta.get('working_point_estimate', 'plain window count')}):")
    print(f"  {'M':>4s} {'cut':>7s} {'eff':>6s} {'B chosen':>9s} {'sim. bkg kept':>13s} {'B quoted':>9s} {'B before':>9s}"
          f" {'S(50/fb) fb':>11s}")
    lumi = float(meta.get("luminosity_fb", run.luminosity_fb))
    for m, wp in meta["working_points"].items():
        # the Punzi-net example's own figure of merit at its 50 /fb (examples/punzi_training.ipynb, last figure:
        # ~2.6-3 fb at 2-5 GeV, ~4 fb at 6 GeV, ~10 fb at 0.7 and 7 GeV, read off the plot)
        s50 = punzi_sensitivity(max(wp["quoted_efficiency"], 1e-6), wp["quoted_background"] * 50.0 / lumi, 50.0)
        print(f"  {m:>4s} {wp['cut']:7.4f} {wp['quoted_efficiency']:6.3f} {wp['background']:9.4g} "
              f"{wp['background_events_above_cut']:13d} {wp['quoted_background']:9.4g} {wp['background_before']:9.4g} {s50:11.3g}")


if __name__ == "__main__":
    main()
