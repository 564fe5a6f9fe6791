"""Closure of taulphi's per-process background (configs/stats/taulphi.yaml ``estimate: factorised``) on a run.

Run: ``.venv/bin/python benchmarks/taulphi_factorised_closure.py --results OUT/results/taulphi``

The estimate b = sum_d N_d(SR + RSB, before the BDT) x A_SR / A_window x eps_d rests on assumptions checked
here per process and channel where the run has statistics (Weight() variances; effective events
n_eff = sum(w)^2 / sum(w^2)):

1. where eps_d is measured: eps_d in the window (SR + RSB after / before the BDT) against eps_d over all
   preselected events (pull). A large pull (the BDT has learned the (M_tau, dE) kinematics) is why the
   YAML measures eps in the window, not over the preselection;
2. the background is flat across the window: N_d(SR) / N_d(SR + RSB) before the BDT against the area
   fraction (the run metadata's ``sr_area_fraction``).

And the result: the plain count in the SR after the BDT (what the paper's N_RSB x r_MC estimates in
simulation) against the per-process estimate (the window after the BDT x the area fraction), both at
the run's luminosity.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from belle_rare import open_run

AFTER, PRESEL = ("SR", "RSB", "other"), ("SR_presel", "RSB_presel", "other_presel")


def count(run, dataset: str, channel: str, regions: tuple[str, ...]) -> tuple[float, float]:
    """(value, variance) of the nominal ``yields`` summed over ``regions``."""
    h = run.hist("yields", dataset, channel=channel, variation="nominal")
    v = var = 0.0
    present = set(h.axes["region"])
    for region in (r for r in regions if r in present):  # a region none of the dataset's events reached is not booked
        cell = h[{"region": region}]
        v += float(cell.values().sum())
        var += float(cell.variances().sum())
    return v, var


def ratio(num: tuple[float, float], den: tuple[float, float]) -> tuple[float, float]:
    """num / den for num a subset of den (weighted binomial): var = (var_num (1 - 2r) + r^2 var_den) / den^2."""
    if den[0] <= 0:
        return math.nan, math.nan
    r = num[0] / den[0]
    var = max(num[1] * (1 - 2 * r) + r * r * den[1], 0.0) / den[0] ** 2
    return r, math.sqrt(var)


def n_eff(c: tuple[float, float]) -> float:
    return c[0] ** 2 / c[1] if c[1] > 0 else 0.0


def closure(results: Path) -> list[dict]:
    run = open_run(results)
    area = run.metadata["sr_area_fraction"]
    rows = []
    for channel in ("ephi", "muphi"):
        for d in run.backgrounds():
            presel, window = count(run, d, channel, PRESEL), count(run, d, channel, PRESEL[:2])
            after, window_after = count(run, d, channel, AFTER), count(run, d, channel, AFTER[:2])
            sr_before, sr_after = count(run, d, channel, PRESEL[:1]), count(run, d, channel, AFTER[:1])
            (eps_all, d_all), (eps_window, d_window) = ratio(after, presel), ratio(window_after, window)
            if window[0] > 0 and d_window == 0:  # all (or none) of the window passes: the Beta(n + 1, 1) width, ~1 / (n + 2)
                d_window = 1.0 / (n_eff(window) + 2.0)
            pull = (eps_window - eps_all) / math.hypot(d_window, d_all) if window[0] > 0 else math.nan
            rows.append({
                "channel": channel, "dataset": d, "n_eff_presel": n_eff(presel), "n_eff_window": n_eff(window),
                "n_eff_window_after": n_eff(window_after), "eps_all": [eps_all, d_all], "eps_window": [eps_window, d_window],
                "eps_pull": pull, "sr_fraction_before": list(ratio(sr_before, window)), "area_fraction": area[channel],
                "factorised_window": [window_after[0] * area[channel], math.sqrt(window_after[1]) * area[channel]],
                "plain_sr_after": [sr_after[0], math.sqrt(sr_after[1])],
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="a taulphi run directory (RESULTS/taulphi)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args()
    rows = closure(args.results)
    print(f"{'ch':6} {'dataset':32} {'neff pre':>9} {'neff win':>9} {'eps all':>18} {'eps window':>18} {'pull':>6} "
          f"{'SR/win before':>16} {'area':>6} {'window x area':>18} {'plain SR after':>18}")
    for r in rows:
        (ea, dea), (ew, dew), (f, df), (p, dp) = r["eps_all"], r["eps_window"], r["sr_fraction_before"], r["plain_sr_after"]
        fw, dfw = r["factorised_window"]
        print(f"{r['channel']:6} {r['dataset']:32} {r['n_eff_presel']:9.1f} {r['n_eff_window']:9.1f} {ea:9.3g}+-{dea:<8.2g} "
              f"{ew:9.3g}+-{dew:<8.2g} {r['eps_pull']:6.2f} {f:8.3g}+-{df:<7.2g} {r['area_fraction']:6.3f} "
              f"{fw:9.3g}+-{dfw:<8.2g} {p:9.3g}+-{dp:<8.2g}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
