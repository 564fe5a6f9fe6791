"""taulphi's background from PID-weighted simulation, against the thrown PID where both have statistics.

Run: ``.venv/bin/python benchmarks/bench_taulphi_background.py --samples DIR [--workers 2]``
(DIR: a ``belle-rare generate`` sample directory, e.g. the training samples of README's taulphi section).

The taulphi processor (training mode: nominal pass, no stored model, the preselected candidates as
columns) runs over every dataset twice, PID-weighted (processors/pid_weighting.py) and with the
thrown PID. Printed per channel and background dataset, at the search luminosity: the preselected
yield, the yield in a broad |dE| < 0.1 GeV band, in the SR + RSB window and in the SR (events and weighted
sum); then the closure of the fractions a transfer factor like r_MC rests on, summed over the
backgrounds: M(l phi) in the RSB's mass range / all preselected, dE > -2 GeV / all, and the PID-weighted
r_MC = N_SR / N_RSB before the BDT (the thrown PID has no event near the signal region in 10^5-event
samples: its 1 / (scale x pass probability) is ~ 10^3-10^4 events per selected one).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from coffea import processor

from belle_rare.analyses.datasets import fileset, load_datasets
from belle_rare.analyses.runner import luminosity_for
from belle_rare.processors.registry import get_search
from belle_rare.processors.schema import BelleSchema


def collect(samples: Path, weighted: bool, workers: int) -> tuple[dict[str, dict[str, dict[str, np.ndarray]]], float]:
    """dataset -> channel -> columns (m, de, weight at the search luminosity, in_sr, in_window); wall seconds."""
    search = get_search("taulphi")
    cfg = search.load_config()
    proc = search.processor("belle2", cfg, training=True)
    proc.pid_weighting = weighted
    datasets = load_datasets(samples, "belle2")
    lumi, _ = luminosity_for(datasets, cfg, "belle2")
    start = time.perf_counter()
    executor = processor.FuturesExecutor(workers=workers) if workers > 1 else processor.IterativeExecutor()
    out = processor.Runner(executor=executor, schema=BelleSchema, chunksize=50_000)(fileset(datasets), proc, treename="tree")
    processed = {name: sum(files.values()) for name, files in out["processed"].items()}
    cols: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for name, channels in out["columns"]["features"].items():
        if datasets[name].kind != "background":
            continue
        scale = datasets[name].scale(lumi, processed.get(name, 0))
        cols[name] = {c: {k: c_cols[k].value * (scale if k == "weight" else 1) for k in ("m", "de", "weight", "in_sr", "in_window")}
                      for c, c_cols in channels.items()}
    return cols, time.perf_counter() - start


def fraction(w: np.ndarray, num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """Weighted fraction sum(w, num & den) / sum(w, den) and its error (delta method over the events)."""
    total = w[den].sum()
    if total <= 0:
        return float("nan"), float("nan")
    r = w[num & den].sum() / total
    var = ((w[num & den] * (1 - r)) ** 2).sum() + ((w[den & ~num] * r) ** 2).sum()
    return float(r), float(np.sqrt(var) / total)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=Path, required=True)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    cfg = get_search("taulphi").load_config()
    lo, hi = cfg.signal_region.rsb_m_range
    runs = {}
    for label, weighted in (("weighted", True), ("thrown", False)):
        runs[label], wall = collect(args.samples, weighted, args.workers)
        print(f"{label}: {wall:.0f} s")
    for channel in ("ephi", "muphi"):
        print(f"\n== {channel}: yields at the search luminosity (events selected, weighted sum)")
        print(f"{'dataset':26s} {'':9s} {'preselected':>20s} {'|dE| < 0.1':>18s} {'SR + RSB':>18s} {'SR':>16s}")
        for name in sorted(runs["weighted"]):
            for label in ("weighted", "thrown"):
                c = runs[label][name][channel]
                band = np.abs(c["de"]) < 0.1
                cells = [(np.ones_like(band), 20), (band, 18), (c["in_window"].astype(bool), 18), (c["in_sr"].astype(bool), 16)]
                texts = [(f"{int(m.sum())} / {c['weight'][m].sum():.3g}", width) for m, width in cells]
                print(f"{name if label == 'weighted' else '':26s} {label:9s} " + " ".join(f"{t:>{width}s}" for t, width in texts))
        print(f"-- {channel}: closure of the fractions, all backgrounds (weighted vs thrown, pull)")
        joined = {label: {k: np.concatenate([runs[label][n][channel][k] for n in runs[label]]) for k in ("m", "de", "weight", "in_sr", "in_window")}
                  for label in runs}
        for what, num in (("M(l phi) in the RSB mass range / all", lambda c: (c["m"] > lo) & (c["m"] < hi)),
                          ("dE > -2 GeV / all", lambda c: c["de"] > -2.0)):
            (rw, ew), (rt, et) = (fraction(joined[label]["weight"], num(joined[label]), np.ones(len(joined[label]["m"]), bool))
                                  for label in ("weighted", "thrown"))
            print(f"  {what:40s} weighted {rw:.4f} +- {ew:.4f}   thrown {rt:.4f} +- {et:.4f}   pull {(rw - rt) / np.hypot(ew, et):+.2f}")
        c = joined["weighted"]
        sr, win = c["in_sr"].astype(bool), c["in_window"].astype(bool)
        r, e = fraction(c["weight"], sr, win)  # N_SR / N_window; r_MC = N_SR / N_RSB = f / (1 - f)
        if np.isfinite(r) and r < 1:
            print(f"  PID-weighted r_MC before the BDT = {r / (1 - r):.3f} +- {e / (1 - r) ** 2:.3f} "
                  f"(SR {c['weight'][sr].sum():.3g}, RSB {c['weight'][win & ~sr].sum():.3g} events at the search luminosity; "
                  f"SR / (SR + RSB) area {cfg.signal_region.sr_fraction(channel):.3f} for a flat background)")


if __name__ == "__main__":
    main()
