"""The mass-parametrised zprime classifier on a sample directory: training and a Punzi working point per mass.

Run: ``.venv/bin/python benchmarks/bench_zprime_classifier.py --samples DIR`` with sig_zprime samples at
several masses and the backgrounds (mumu, tautau, eemumu, eeee, ee) in DIR. Runs the zprime processor
(iterative), builds the training table (processors/zprime_classifier.py: windows M^2 +- 2 sigma of the
search YAML's paper_m2_resolution), trains the k-fold boosters and prints, per mass, the Punzi working
point, the signal efficiency (all generated events) and the background in the window at 79.7 /fb.
With the small samples of this machine the background in a window is a handful of simulated events:
the numbers show the machinery, not the paper's sensitivity.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from belle_rare.analyses.runner import RunOptions, run_search
from belle_rare.processors import bdt
from belle_rare.processors import zprime_classifier as zc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, required=True)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--pid-weights", action="store_true", help="backgrounds PID-weighted (more of them survive)")
    args = parser.parse_args()
    result = run_search(RunOptions(search="zprime", experiment="belle2", samples=args.samples,
                                   out=Path("/tmp/zprime-classifier-run"), executor="iterative", progress=False,
                                   pid_weighting=args.pid_weights))
    meta, cols = result["metadata"]["datasets"], result["columns"]["classifier_inputs"]
    config = result["processor"].config

    def scaled(name: str) -> dict[str, np.ndarray]:
        c = {k: v.value for k, v in cols[name]["mumu"].items()}
        c["weight"] = c["weight"] * meta[name]["scale"]
        return c

    signals = {float(meta[n]["parameters"]["mass"]): scaled(n) for n in cols if meta[n]["kind"] == "signal"}
    bkg_names = [n for n in cols if meta[n]["kind"] == "background"]
    background = {k: np.concatenate([scaled(n)[k] for n in bkg_names]) for k in scaled(bkg_names[0])}
    masses = sorted(signals)
    table = zc.training_table(signals, background, masses, zc.m2_windows(masses, config.paper_m2_resolution))
    for mass in masses:
        print(f"M_Z' = {mass:g} GeV window: {np.sum((table.y == 1) & (table.mass == mass))} signal, "
              f"{np.sum((table.y == 0) & (table.mass == mass))} background simulated events")
    model, oof = zc.train(table, bdt.TrainingSettings(folds=args.folds))
    events = result["metadata"]["events"]
    totals = {m: meta[n]["scale"] * events[n]["read"] for m, n in
              ((float(meta[n]["parameters"]["mass"]), n) for n in cols if meta[n]["kind"] == "signal")}
    for mass, wp in zc.working_points(table, oof, totals).items():
        n_b = int(np.sum((table.y == 0) & (table.mass == mass)))
        print(f"M_Z' = {mass:g} GeV: cut {wp['cut']:.3f}, signal efficiency {wp['efficiency']:.3f}, background in the "
              f"window {wp['background']:.3g} events at {result['metadata']['luminosity_fb']:g} /fb "
              f"({wp['background_events_above_cut']} of {n_b} simulated events)")


if __name__ == "__main__":
    main()
