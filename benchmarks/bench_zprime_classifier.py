"""Train the mass-parametrised zprime classifier on a sample directory and choose a Punzi working point per mass.

The training is the product's (``belle-rare train zprime --experiment belle2 --samples DIR --out DIR``,
``analyses/zprime_train.py``); this script runs it with its hyperparameters as options.

Run: ``.venv/bin/python benchmarks/bench_zprime_classifier.py --samples DIR [--save models/]`` with sig_zprime
samples at several masses (``generate --process sig_zprime --mass M``) and the backgrounds (mumu, tau pairs,
e e mu mu, hard ISR; filtered / biased productions welcome) in DIR.

1. The zprime processor in training mode (no model; the backgrounds PID-weighted: every muon candidate
   weighted by its probability to pass muonID > 0.5 instead of cut, processors/pid_weighting.py, so
   pion-faked tau pairs contribute every event), iterative executor, at the search's 79.7 /fb.
2. The training table (processors/zprime_classifier.py): each trained mass sees the events of its M2_recoil
   window M^2 +- 2 sigma (sigma of the search YAML's paper_m2_resolution), a background event once per window.
3. k-fold xgboost (folds ``__event__ % k``), out-of-fold scores.
4. Per mass, the Punzi working point (a = 3) chosen on the half ``(__event__ // k) % 2 == 0`` and its
   efficiency and background quoted on the other half; the background factorised (window before the cut x the
   pass fraction within 4 GeV^2, ``zprime_classifier.factorised_working_points``) or, ``--estimate plain``, the
   simulated events above the cut in the window (``zprime_classifier.chosen_and_quoted``).
5. ``--save DIR``: the artefacts ``DIR/zprime_belle2.json`` and ``_meta.json`` (``working_points`` per mass),
   what ``processors/zprime.py`` loads (``classifier`` block of configs/searches/zprime.yaml).
Prints, per mass, the efficiency (of all generated signal) and background (events at 79.7 /fb in the window,
PID-weighted) before and after the cut.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from belle_rare.analyses import zprime_train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, required=True)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--n-estimators", type=int, default=200)
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--min-background-events", type=int, default=10,
                        help="a working point keeps at least this many simulated background events in the window (both halves)")
    parser.add_argument("--estimate", choices=["factorised", "plain"], default="factorised",
                        help="the background the working points are chosen on (analyses/zprime_train.Hyperparameters)")
    parser.add_argument("--sideband-half-width", type=float, default=4.0, help="GeV^2 (factorised estimate)")
    parser.add_argument("--save", type=Path, default=None, help="write zprime_belle2.json / _meta.json here")
    args = parser.parse_args()
    start, cpu = time.perf_counter(), time.process_time()
    hyper = zprime_train.Hyperparameters(args.folds, args.n_estimators, args.max_depth, args.min_background_events,
                                         args.estimate, args.sideband_half_width)
    result = zprime_train.train(args.samples, args.save, hyper, trainer="benchmarks/bench_zprime_classifier.py")
    print("\n".join(zprime_train.summary_lines(result)))
    if result["paths"]:
        print("wrote", *result["paths"])
    print(f"wall {time.perf_counter() - start:.0f} s, cpu {time.process_time() - cpu:.0f} s")


if __name__ == "__main__":
    main()
