"""Train the mass-parametrised zprime classifier on a sample directory and choose a Punzi working point per mass.

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
   efficiency and background quoted on the other half (``zprime_classifier.chosen_and_quoted``).
5. ``--save DIR``: the artefacts ``DIR/zprime_belle2.json`` and ``_meta.json`` (``working_points`` per mass),
   what ``processors/zprime.py`` loads (``classifier`` block of configs/searches/zprime.yaml).
Prints, per mass, the efficiency (of all generated signal) and background (events at 79.7 /fb in the window,
PID-weighted) before and after the cut.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import xgboost
from coffea import processor

from belle_rare.analyses.datasets import fileset, load_datasets, validate_inputs
from belle_rare.analyses.runner import _manifest_seed, luminosity_for
from belle_rare.core.provenance import code_version
from belle_rare.processors import bdt
from belle_rare.processors import zprime_classifier as zc
from belle_rare.processors.registry import get_search
from belle_rare.processors.schema import BelleSchema


def collect(samples: Path) -> tuple[dict[float, dict], dict[str, np.ndarray], dict[float, float], dict, object]:
    """(signal columns per mass, background columns, signal totals per mass, run info, config), weights at the search luminosity."""
    search = get_search("zprime")
    config = search.load_config()
    proc = search.processor("belle2", config, training=True)
    datasets = load_datasets(samples, "belle2")
    validate_inputs(datasets, proc.required_branches(), False)
    runner = processor.Runner(executor=processor.IterativeExecutor(), schema=BelleSchema, chunksize=100_000)
    output = runner(fileset(datasets), proc, treename="tree")
    lumi, _ = luminosity_for({k: v for k, v in datasets.items() if not v.is_data}, config, "belle2")
    processed = {name: sum(files.values()) for name, files in output.get("processed", {}).items()}
    cols = output["columns"]["classifier_inputs"]
    signals, totals, parts = {}, {}, []
    for name, ds in datasets.items():
        scale = ds.scale(lumi, processed.get(name, 0))
        if name not in cols or ds.is_data:
            continue
        c = {k: np.asarray(v.value) for k, v in cols[name]["mumu"].items()}
        c["weight"] = c["weight"] * scale
        if ds.kind == "signal":
            mass = float(ds.parameters["mass"])
            signals[mass] = c
            totals[mass] = scale * float(output["cutflow"][name]["mumu"]["weighted"]["all events"])
        else:
            parts.append(c)
    background = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    info = {"luminosity_fb": lumi, "datasets": {n: {"events": processed.get(n, 0), "seed": _manifest_seed(d),
                                                   "manifest": str(d.manifest)} for n, d in datasets.items()}}
    return signals, background, totals, info, config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path, required=True)
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--n-estimators", type=int, default=200)
    parser.add_argument("--max-depth", type=int, default=3)
    parser.add_argument("--min-background-events", type=int, default=10,
                        help="a working point keeps at least this many simulated background events in the window (both halves)")
    parser.add_argument("--save", type=Path, default=None, help="write zprime_belle2.json / _meta.json here")
    args = parser.parse_args()
    start, cpu = time.perf_counter(), time.process_time()
    signals, background, totals, info, config = collect(args.samples)
    masses = sorted(signals)
    windows = zc.m2_windows(masses, config.paper_m2_resolution)
    table = zc.training_table(signals, background, masses, windows)
    settings = bdt.TrainingSettings(folds=args.folds, n_estimators=args.n_estimators, max_depth=args.max_depth)
    model, oof = zc.train(table, settings)
    points = zc.chosen_and_quoted(table, oof, totals, args.folds, min_background_events=args.min_background_events)
    lumi = info["luminosity_fb"]
    print(f"{'M':>5} {'window GeV^2':>14} {'eff before':>10} {'eff after':>9} {'B before':>10} {'B after':>9} "
          f"{'(sim. events)':>14} cut")
    for (mass, wp), (lo, hi) in zip(points.items(), windows):
        print(f"{mass:>5} {lo:6.2f}-{hi:6.2f} {wp['efficiency_before']:10.3f} {wp['quoted_efficiency']:9.3f} "
              f"{wp['background_before']:10.3g} {wp['quoted_background']:9.3g} "
              f"{wp['background_events_before']:6d}->{wp['quoted_background_events']:<6d} {wp['cut']:.4f}")
    print(f"(after: quoted on the half the working point was not chosen on, x 2; background at {lumi:g} /fb, PID-weighted)")
    if args.save is not None:
        meta = {"working_points": points, "masses": masses, "windows_m2": windows.tolist(),
                "mass_hypothesis": "an event is classified at the trained mass nearest sqrt(M2_recoil)",
                "chosen_on": "(__event__ // folds) % 2 == 0 (sums x 2); quoted_* on the other half",
                "punzi": {"a": settings.punzi_a, "min_background_events": args.min_background_events},
                "hyperparameters": {"n_estimators": settings.n_estimators, "max_depth": settings.max_depth,
                                    "learning_rate": settings.learning_rate, "seed": settings.seed},
                "training_samples": info["datasets"], "luminosity_fb": lumi,
                "n_signal_rows": int((table.y == 1).sum()), "n_background_rows": int((table.y == 0).sum()),
                "xgboost": xgboost.__version__, "code_version": code_version(),
                "trainer": "benchmarks/bench_zprime_classifier.py"}
        paths = bdt.save_model(model, zc.MODEL_NAME, "belle2", meta, args.save)
        print("wrote", *paths)
    print(f"wall {time.perf_counter() - start:.0f} s, cpu {time.process_time() - cpu:.0f} s")


if __name__ == "__main__":
    main()
