"""Can taulphi's B B bound be scaled by B B's own BDT pass fraction? The dE dependence of the pass fraction.

Run: ``.venv/bin/python benchmarks/bench_taulphi_bound.py --results OUT/results/taulphi [--json FILE]``

A dataset with no simulated event near the (M_tau, dE) window (B B: its candidates end near dE = -1 GeV) carries
its MC bound before the BDT (configs/stats/taulphi.yaml ``factorised``). Scaling that bound by the dataset's BDT
pass fraction measured where it has events (``factorised.bound_efficiency``: its ``de_tail`` candidates in a dE
range) is the factorisation b = N_before x eps_BDT of the bifurcated / ABCD background methods (Nix et al.,
arXiv:0708.0318): it holds only if the BDT does not depend on the variable that separates the region where eps is
measured from the window -- here dE. Checked on the run's ``de_score`` histogram (dE x BDT score before the BDT,
M in the window's mass range, ``processors/taulphi.py``):

1. the trend: each process's pass fraction in dE slices, at the working point and looser cuts;
2. closure where both sides have statistics (processes with events in the window; every cut): the near-window
   band dE in [-0.05, 0.05] (it holds the windows' +-0.045 / +-0.030 GeV bands) after the cut, against its
   count before the cut x the pass fraction in a range below it (ratio factorised / plain; < 1: the factorised
   estimate is optimistic);
3. B B (``mixed``, ``charged``): its effective events and pass fraction per range, and the Beta mean
   1 / (n + 2) a range with no passing event gives.
Measured (README "taulphi's B B bound"): the pass fraction rises with dE by 1-3 orders of magnitude for every
process with statistics, so a pass fraction measured over B B's own dE range (mostly below -2 GeV) is optimistic
by x10-1000; only the band next to the window comes within a few.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from belle_rare import open_run
from belle_rare.processors.taulphi import SCORE_EDGES

SLICES = ((-4.0, -3.0), (-3.0, -2.5), (-2.5, -2.0), (-2.0, -1.5), (-1.5, -1.0), (-1.0, -0.5), (-0.5, -0.05), (-0.05, 0.05))
NEAR = (-0.05, 0.05)
# ranges below the window a pass fraction could be measured in (the first: all of de_tail below the window)
RANGES = ((-4.0, -0.05), (-2.0, -0.05), (-1.0, -0.05), (-0.5, -0.05))
LOOSER_CUTS = (0.9, 0.99, 0.998)
CHANNELS = ("ephi", "muphi")


def _grid(run, dataset: str, channel: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(dE edges, score edges, sumw, sumw2) of the de_score histogram before the BDT, or None if it is empty."""
    h = run.hist("de_score", dataset, channel=channel)
    if "presel" not in set(h.axes["region"]):
        return None
    cell = h[{"region": "presel"}]
    return (np.asarray(cell.axes["de"].edges, float), np.asarray(cell.axes["score"].edges, float),
            np.asarray(cell.values(), float), np.asarray(cell.variances(), float))


def band_counts(grid, lo: float, hi: float, cut: float) -> dict[str, float]:
    """Weighted counts (and variances) before and after ``score > cut`` in dE in [lo, hi]; the cut must be a score edge."""
    de, sc, v, v2 = grid
    rows = (de[:-1] >= lo - 1e-9) & (de[1:] <= hi + 1e-9)
    j = int(np.argmin(abs(sc - cut)))
    if abs(sc[j] - cut) > 1e-6:
        raise ValueError(f"cut {cut} is not a score edge of de_score ({sc.tolist()})")
    t, t2, p, p2 = v[rows].sum(), v2[rows].sum(), v[rows][:, j:].sum(), v2[rows][:, j:].sum()
    return {"before": float(t), "before_var": float(t2), "after": float(p), "after_var": float(p2),
            "effective_before": float(t * t / t2) if t2 > 0 else 0.0, "effective_after": float(p * p / p2) if p2 > 0 else 0.0}


def pass_fraction(c: dict[str, float]) -> tuple[float, float]:
    """(pass fraction, its relative uncertainty); none passing: the Beta(1, n + 1) mean 1 / (n + 2), +-100 %."""
    if c["before"] <= 0:
        return math.nan, math.nan
    if c["after"] <= 0:
        return 1.0 / (c["effective_before"] + 2.0), 1.0
    eps = c["after"] / c["before"]
    fail, fail_var = c["before"] - c["after"], max(c["before_var"] - c["after_var"], 0.0)
    rel2 = c["after_var"] / c["after"] ** 2 + (fail_var / fail**2 if fail > 0 else 0.0)
    return eps, (1 - eps) * math.sqrt(rel2)


def _working_point(run, datasets: list[str]) -> float:
    """The working point the processor added to the score edges (processors/taulphi.py ``_score_edges``)."""
    for d in datasets:
        for ch in CHANNELS:
            grid = _grid(run, d, ch)
            if grid is not None:
                extra = [e for e in grid[1] if 0.0 < e < 1.0 and not np.isclose(SCORE_EDGES, e).any()]
                if extra:
                    return float(extra[0])
    raise SystemExit("no working point among the de_score edges (a run with a BDT model and the de_score histogram?)")


def study(results: Path) -> dict:
    run = open_run(results.parent, results.name)
    backgrounds = sorted(d for d, i in run.metadata["datasets"].items() if i.get("kind") == "background")
    wp = _working_point(run, backgrounds)
    out: dict = {"working_point": wp, "trend": {}, "closure": [], "b_b": {}}
    for d in backgrounds:
        for ch in CHANNELS:
            grid = _grid(run, d, ch)
            if grid is None:
                continue
            cuts = sorted({wp, *LOOSER_CUTS})
            out["trend"][f"{d} {ch}"] = {f"{cut:g}": [{"slice": s, **dict(zip(("eps", "rel"), pass_fraction(band_counts(grid, *s, cut)))),
                                                       "effective_before": band_counts(grid, *s, cut)["effective_before"],
                                                       "none_passing": band_counts(grid, *s, cut)["after"] <= 0}
                                                      for s in SLICES] for cut in cuts}
            for cut in cuts:
                near = band_counts(grid, *NEAR, cut)
                if near["effective_before"] < 5 or near["effective_after"] < 3:
                    continue  # the plain count has no statistics: no closure
                plain = near["after"]
                plain_rel = math.sqrt(near["after_var"]) / plain
                for r in RANGES:
                    c = band_counts(grid, *r, cut)
                    if c["effective_after"] < 3:
                        continue  # the factorised side has no statistics either
                    eps, rel = pass_fraction(c)
                    fact = near["before"] * eps
                    out["closure"].append({"dataset": d, "channel": ch, "cut": cut, "range": list(r), "plain": plain,
                                           "plain_rel": plain_rel, "factorised": fact, "factorised_rel": rel,
                                           "ratio": fact / plain, "near_pass_fraction": plain / near["before"], "range_pass_fraction": eps})
            if d.startswith(("mixed", "charged")):
                out["b_b"][f"{d} {ch}"] = {f"{r[0]:g}..{r[1]:g}": dict(zip(("eps", "rel"), pass_fraction(band_counts(grid, *r, wp))))
                                           | {"effective_events": band_counts(grid, *r, wp)["effective_before"]}
                                           for r in ((-4.0, 0.3), *RANGES)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, required=True, help="OUT/results/taulphi of a run with the de_score histogram")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    res = study(args.results)
    print(f"working point BDT > {res['working_point']:g}")
    print("\n1. BDT pass fraction per dE slice (M in the window's range, before the BDT): eps (effective events before); "
          "'0/n': none of n effective events passes")
    print("   slices: " + " ".join(f"[{lo:g},{hi:g}]" for lo, hi in SLICES))
    for key, per_cut in res["trend"].items():
        for cut, rows in per_cut.items():
            cells = " ".join("-" if r["effective_before"] <= 0 else f"0/{r['effective_before']:.0f}" if r["none_passing"]
                             else f"{r['eps']:.2g}({r['effective_before']:.0f})" for r in rows)
            print(f"   {key:38s} > {cut:7s} {cells}")
    print("\n2. closure, near-window band [-0.05, 0.05] after the cut: plain vs count before x pass fraction in a range below")
    for c in res["closure"]:
        print(f"   {c['dataset']:32s} {c['channel']:5s} > {c['cut']:<7g} range [{c['range'][0]:g},{c['range'][1]:g}]: "
              f"plain {c['plain']:.3g} +- {c['plain_rel']:.0%}, factorised {c['factorised']:.3g} +- {c['factorised_rel']:.0%}, "
              f"ratio {c['ratio']:.3g} (pass fraction near {c['near_pass_fraction']:.3g}, in range {c['range_pass_fraction']:.3g})")
    print("\n3. B B at the working point: pass fraction per range (Beta mean 1 / (n + 2) when none passes)")
    for key, per_range in res["b_b"].items():
        print(f"   {key:32s} " + "  ".join(f"[{k}] {v['eps']:.3g} ({v['effective_events']:.0f} eff.)" for k, v in per_range.items()))
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=float))


if __name__ == "__main__":
    main()
