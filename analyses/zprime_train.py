"""``belle-rare train zprime``: the mass-parametrised classifier with a Punzi working point per mass (issue 14).

zprime's classifier is not the generic one-BDT recipe of ``analyses/train_command.py`` (``Search.training``):
one model serves every Z' mass (processors/zprime_classifier.py). Steps:

1. The zprime processor in training mode over the sample directory (no model; backgrounds PID-weighted: every
   muon candidate weighted by its probability to pass muonID > 0.5, processors/pid_weighting.py), at the
   search's 79.7 /fb; its ``classifier_inputs`` columns. Every sample of its ``signal_process`` (sig_zprime) is one trained mass
   (its ``mass`` parameter), every simulated background dataset background.
2. The training table: each trained mass sees the events of its window M^2 +- 2 sigma(M2_recoil) (sigma of the
   search YAML's ``paper_m2_resolution``), a background event once per window (``zprime_classifier.training_table``).
3. k-fold xgboost (folds ``__event__ % k``), out-of-fold scores.
4. Per mass, the Punzi working point (a = 3, >= ``min_background_events`` simulated background events kept) chosen
   on the half ``(__event__ // k) % 2 == 0`` and quoted on the other (``zprime_classifier.chosen_and_quoted``).
5. ``OUT/zprime_belle2.json`` and ``_meta.json`` (``working_points`` per mass): what the processor loads
   (``classifier`` block of configs/searches/zprime.yaml; ``belle-rare run --model-dir OUT``).

The shipped model (models/zprime_belle2*.json) was made with these defaults; ``benchmarks/bench_zprime_classifier.py``
calls ``train`` with its own options.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost
from coffea import processor

from belle_rare.analyses.datasets import fileset, load_datasets, of_process, validate_inputs
from belle_rare.analyses.executors import make_executor
from belle_rare.analyses.runner import _manifest_seed, luminosity_for
from belle_rare.analyses.zprime_scan import load_scan_config
from belle_rare.core.errors import UserError
from belle_rare.core.provenance import code_version
from belle_rare.processors import bdt
from belle_rare.processors import zprime_classifier as zc
from belle_rare.processors.registry import get_search
from belle_rare.processors.schema import BelleSchema

SEARCH = "zprime"
EXPERIMENT = "belle2"


@dataclass(frozen=True)
class Hyperparameters:
    """The shipped model's settings (README, zprime limits section: 3 folds, 200 trees of depth 3)."""

    folds: int = 3
    n_estimators: int = 200
    max_depth: int = 3
    min_background_events: int = 10   # plain estimate only: a working point keeps >= this many simulated background events
    # the background a working point is chosen on: "factorised" (window before the cut x the pass fraction within
    # sideband_half_width GeV^2 of the window, per process; zprime_classifier.factorised_working_points) or "plain"
    # (the simulated events above the cut in the window, >= min_background_events of them)
    working_point_estimate: str = "factorised"
    # GeV^2 each side of the window centre: ~8 x the window's simulated events; within the 1-16 GeV^2 ladder of the
    # scan's own factorised estimate (configs/stats/zprime.yaml factorised.sideband_widths); representative
    sideband_half_width: float = 4.0


@dataclass(frozen=True)
class Collected:
    """Signal columns per trained mass, the background columns, each mass's generated signal weight, run info."""

    signals: dict[float, dict[str, np.ndarray]]
    background: dict[str, np.ndarray]
    by_process: dict[str, dict[str, np.ndarray]]   # the background columns per process (datasets of a process joined)
    totals: dict[float, float]
    info: dict[str, Any]
    config: Any


def collect(samples: Path, executor: str = "iterative", workers: int = 1, chunksize: int = 100_000,
            progress: bool = False) -> Collected:
    """Run the zprime processor in training mode over ``samples``; weights at the search luminosity."""
    search = get_search(SEARCH)
    config = search.load_config()
    proc = search.processor(EXPERIMENT, config, training=True)
    datasets = load_datasets(samples, EXPERIMENT)
    validate_inputs(datasets, proc.required_branches(), False)
    with make_executor(executor, workers, None, None, status=progress) as ex:
        output = processor.Runner(executor=ex, schema=BelleSchema, chunksize=chunksize)(fileset(datasets), proc, treename="tree")
    lumi, _ = luminosity_for({k: v for k, v in datasets.items() if not v.is_data}, config, EXPERIMENT)
    processed = {name: sum(files.values()) for name, files in output.get("processed", {}).items()}
    cols = output.get("columns", {}).get("classifier_inputs", {})
    signals, totals, parts = {}, {}, []
    by_process: dict[str, list[dict[str, np.ndarray]]] = {}
    for name, ds in datasets.items():   # a loop over datasets
        if name not in cols or ds.is_data or "mumu" not in cols[name]:
            continue
        scale = ds.scale(lumi, processed.get(name, 0))
        c = {k: np.asarray(v.value) for k, v in cols[name]["mumu"].items()}
        c["weight"] = c["weight"] * scale
        if ds.kind == "signal":
            if not of_process(name, ds.process, config.signal_process) or "mass" not in ds.parameters:
                continue
            mass = float(ds.parameters["mass"])
            signals[mass] = c
            totals[mass] = scale * float(output["cutflow"][name]["mumu"]["weighted"]["all events"])
        else:
            parts.append(c)
            by_process.setdefault(ds.process or name, []).append(c)
    if not signals or not parts:
        raise UserError(f"belle-rare train zprime: {samples} needs {config.signal_process} signal samples (one per trained "
                        f"mass) and simulated backgrounds; found {len(signals)} signal and {len(parts)} background datasets "
                        "with selected events")
    background = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    info = {"luminosity_fb": lumi, "datasets": {n: {"events": processed.get(n, 0), "seed": _manifest_seed(d),
                                                   "manifest": str(d.manifest)} for n, d in datasets.items()}}
    joined = {p: {k: np.concatenate([c[k] for c in cs]) for k in cs[0]} for p, cs in by_process.items()}
    return Collected(signals, background, joined, totals, info, config)


def train(samples: Path, out: Path | None, hyper: Hyperparameters = Hyperparameters(), executor: str = "iterative",
          workers: int = 1, progress: bool = False, trainer: str = "belle-rare train zprime") -> dict[str, Any]:
    """Collect, train, choose the working points, write the artefacts to ``out`` (None: nothing written).
    Returns the metadata, the paths written and the per-mass windows."""
    start = time.perf_counter()
    c = collect(samples, executor, workers, progress=progress)
    masses = sorted(c.signals)
    windows = zc.m2_windows(masses, c.config.paper_m2_resolution)
    table = zc.training_table(c.signals, c.background, masses, windows)
    settings = bdt.TrainingSettings(folds=hyper.folds, n_estimators=hyper.n_estimators, max_depth=hyper.max_depth)
    model, oof = zc.train(table, settings)
    if hyper.working_point_estimate == "factorised":
        exclude = load_scan_config(None).factorised.exclude_m2   # the mu mu peak, as the scan's factorised estimate
        points = zc.factorised_working_points(model, table, oof, zc.BackgroundEvents.of(c.by_process), windows, c.totals,
                                              hyper.folds, half_width=hyper.sideband_half_width, exclude=exclude)
        punzi = {"a": settings.punzi_a, "background": "factorised", "sideband_half_width": hyper.sideband_half_width,
                 "exclude_m2": {k: list(v) for k, v in exclude.items()}}
    elif hyper.working_point_estimate == "plain":
        points = zc.chosen_and_quoted(table, oof, c.totals, hyper.folds, min_background_events=hyper.min_background_events)
        punzi = {"a": settings.punzi_a, "background": "plain", "min_background_events": hyper.min_background_events}
    else:
        raise UserError(f"zprime training: working_point_estimate '{hyper.working_point_estimate}' is not factorised or plain")
    meta = {"working_points": points, "masses": masses, "windows_m2": windows.tolist(),
            "mass_hypothesis": "an event is classified at the trained mass nearest sqrt(M2_recoil)",
            "chosen_on": "(__event__ // folds) % 2 == 0 (sums x 2); quoted_* on the other half",
            "punzi": punzi, "working_point_estimate": hyper.working_point_estimate,
            "hyperparameters": {"n_estimators": settings.n_estimators, "max_depth": settings.max_depth,
                                "learning_rate": settings.learning_rate, "seed": settings.seed},
            "training_samples": c.info["datasets"], "luminosity_fb": c.info["luminosity_fb"],
            "n_signal_rows": int((table.y == 1).sum()), "n_background_rows": int((table.y == 0).sum()),
            "xgboost": xgboost.__version__, "code_version": code_version(), "trainer": trainer}
    paths = list(bdt.save_model(model, zc.MODEL_NAME, EXPERIMENT, meta, out)) if out is not None else []
    return {"meta": meta, "paths": paths, "windows": windows, "seconds": time.perf_counter() - start}


def summary_lines(result: dict[str, Any]) -> list[str]:
    """Per trained mass: window, efficiency and background before -> after (quoted on the independent half)."""
    lumi = result["meta"]["luminosity_fb"]
    lines = [f"{'M':>5} {'window GeV^2':>14} {'eff before':>10} {'eff after':>9} {'B before':>10} {'B after':>9} "
             f"{'(sim. events)':>14} cut"]
    for (mass, wp), (lo, hi) in zip(result["meta"]["working_points"].items(), result["windows"]):
        lines.append(f"{mass:>5} {lo:6.2f}-{hi:6.2f} {wp['efficiency_before']:10.3f} {wp['quoted_efficiency']:9.3f} "
                     f"{wp['background_before']:10.3g} {wp['quoted_background']:9.3g} "
                     f"{wp['background_events_before']:6d}->{wp['quoted_background_events']:<6d} {wp['cut']:.4f}"
                     + (f" plain {wp['quoted_background_plain']:.3g}" if "quoted_background_plain" in wp else ""))
    lines.append(f"(after: quoted on the half the working point was not chosen on, x 2; background at {lumi:g} /fb, PID-weighted; "
                 f"B after: {result['meta'].get('working_point_estimate', 'plain')}, plain: the simulated events above the cut)")
    return lines
