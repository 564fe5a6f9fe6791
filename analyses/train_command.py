"""``belle-rare train SEARCH``: k-fold BDT training on a sample directory, Punzi working point, artefacts.

Any installed search whose ``Search`` has a ``Training`` recipe can be trained. The features come
from the search's own processor in training mode (its ``features`` columns), run with coffea
over the samples like ``belle-rare run``; signal is the search's signal dataset(s), background
every simulated background, each weighted to the search luminosity. Folds are ``__event__ % k``.

The background is PID-weighted (processors/pid_weighting.py; the processor's training mode): no
PID cut, each candidate weighted by its probability to pass the search's PID requirements, so the
BDT sees the background's kinematics with the acceptance of the nominal ID without learning the ID
itself (PID depends on momentum, a BDT input) and every process contributes events. Signal keeps
its thrown (nominal) PID. The Punzi working point is chosen on the out-of-fold scores of one half
of the events (``(__event__ // k) % 2 == 0``, independent of the fold key) and its efficiency and
background are quoted on the other half, so the quoted efficiency is not biased by the choice.
Writes ``OUT/<search>_<experiment>.json`` (boosters) and ``..._meta.json`` (``processors.bdt``).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost
from coffea import processor

from belle_rare.analyses.datasets import fileset, load_datasets, validate_inputs
from belle_rare.core.errors import UserError
from belle_rare.analyses.executors import EXECUTORS, make_executor
from belle_rare.analyses.runner import _manifest_seed, luminosity_for
from belle_rare.configs.experiment import EXPERIMENTS
from belle_rare.processors import bdt
from belle_rare.processors.registry import get_search, searches
from belle_rare.processors.schema import BelleSchema
from belle_rare.core.provenance import code_version

@dataclass
class TrainOptions:
    search: str
    experiment: str
    samples: Path
    out: Path
    executor: str = "iterative"
    workers: int = 1
    chunksize: int = 100_000
    progress: bool = False


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train a search's k-fold BDT and store it (models/)")
    p.add_argument("search", help="a search with a BDT (see `belle-rare list`)")
    p.add_argument("--experiment", choices=EXPERIMENTS, required=True)
    p.add_argument("--samples", type=Path, required=True, help="sample directory or one manifest")
    p.add_argument("--out", type=Path, required=True,
                   help="directory for the model artefacts (use it with `belle-rare run --model-dir`)")
    p.add_argument("--executor", choices=EXECUTORS, default="iterative")
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(handler=_train)


def collect(opts: TrainOptions) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Run the search processor in training mode; returns (processor, coffea output, datasets)."""
    search = get_search(opts.search)
    if search.training is None:
        trainable = [name for name, s in searches().items() if s.training is not None]
        raise UserError(f"search '{opts.search}' has no BDT (trainable: {', '.join(trainable) or 'none'})")
    config = search.load_config()
    if opts.experiment not in search.experiments:
        raise UserError(f"--experiment: search '{search.name}' is defined for {', '.join(search.experiments)}, not '{opts.experiment}'")
    proc = search.processor(opts.experiment, config, training=True)
    datasets = load_datasets(opts.samples, opts.experiment)
    validate_inputs(datasets, proc.required_branches(), False)
    with make_executor(opts.executor, opts.workers, None, None, status=opts.progress) as executor:
        runner = processor.Runner(executor=executor, schema=BelleSchema, chunksize=opts.chunksize)
        output = runner(fileset(datasets), proc, treename="tree")
    return proc, output, {"datasets": datasets, "config": config, "search": search}


def train(opts: TrainOptions) -> dict[str, Any]:
    """Collect features, train k folds, choose the Punzi working point, write the artefacts."""
    start = time.perf_counter()
    proc, output, info = collect(opts)
    config, datasets = info["config"], info["datasets"]
    lumi, lumi_source = luminosity_for({k: v for k, v in datasets.items() if not v.is_data}, config, opts.experiment)
    processed = {name: sum(files.values()) for name, files in output.get("processed", {}).items()}
    search = info["search"]
    signals = dict(config.signal_datasets)  # channel -> signal dataset
    features_out = output.get("columns", {}).get("features", {})
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("X", "y", "w", "event", "in_sr", "in_window", "nominal", "channel", "m", "de")}
    n_signal_total = 0.0
    used: dict[str, int] = {}
    for name, ds in datasets.items():
        if ds.is_data or name not in features_out:
            continue
        channels = features_out[name]
        is_signal_ds = name in signals.values()
        if ds.kind == "signal" and not is_signal_ds:
            continue
        scale = ds.scale(lumi, processed.get(name, 0))
        for channel, cols in channels.items():
            if is_signal_ds and signals.get(channel) != name:
                continue  # a signal sample counts only in its own channel
            n = len(cols["X"].value)
            if n == 0:
                continue
            rows["X"].append(cols["X"].value)
            rows["y"].append(np.full(n, int(is_signal_ds)))
            rows["w"].append(cols["weight"].value * (1.0 if is_signal_ds else scale))
            rows["event"].append(cols["event"].value)
            rows["in_sr"].append(cols["in_sr"].value.astype(bool))
            rows["in_window"].append(cols["in_window"].value.astype(bool))
            rows["nominal"].append(cols["nominal_pid"].value.astype(bool))
            rows["channel"].append(np.full(n, channel))
            rows["m"].append(cols["m"].value)
            rows["de"].append(cols["de"].value)
            used[f"{name}/{channel}"] = n
    signal_all = {channel: float(output["cutflow"].get(name, {}).get(channel, {}).get("weighted", {}).get("all events", 0.0))
                  for channel, name in signals.items() if name in datasets}
    n_signal_total = sum(signal_all.values())
    if not rows["X"] or n_signal_total == 0:
        raise UserError(f"no signal / background events to train on in {opts.samples}")
    data = {k: np.concatenate(v) for k, v in rows.items()}
    common = {"opts": opts, "config": config, "datasets": datasets, "search": search, "lumi": lumi, "lumi_source": lumi_source,
              "used": used, "start": start}
    if search.training.model_per_channel is None:
        return _fit(data, n_signal_total, opts.search, **common)
    # one model per channel (e.g. kstartautau's Belle II tau categories), each on its channel's events only
    per_channel = {}
    for channel in sorted(set(data["channel"])):
        part = {k: v[data["channel"] == channel] for k, v in data.items()}
        per_channel[channel] = _fit(part, signal_all.get(channel, 0.0), search.training.model_per_channel(channel), **common)
    return {"per_channel": per_channel}


def _fit(data: dict[str, np.ndarray], n_signal_total: float, model_name: str, opts: TrainOptions, config: Any,
         datasets: dict[str, Any], search: Any, lumi: float, lumi_source: str, used: dict[str, int], start: float) -> dict[str, Any]:
    """Train the k folds on ``data``, choose and quote the Punzi working point, write ``model_name``'s artefacts."""
    y = data["y"]
    if n_signal_total == 0:
        raise UserError(f"{model_name}: no signal events to train on in {opts.samples}")
    if not ((y == 1).any() and (y == 0).any()):
        raise UserError(f"training needs both signal ({', '.join(sorted(set(config.signal_datasets.values())))}) and background samples in {opts.samples}")
    settings = config.bdt.settings()
    # nominal-ID signal (as selected) against PID-weighted background (weights: pass probabilities)
    train_mask = (y == 0) | data["nominal"]
    X = np.nan_to_num(data["X"][train_mask], nan=-999.0)
    model, oof_part = bdt.train_kfold(X, y[train_mask], data["w"][train_mask], data["event"][train_mask], config.features, settings)
    oof = np.full(len(y), np.nan)
    oof[train_mask] = oof_part
    # Punzi: signal in the SR over all generated; B = PID-weighted background in the window x SR/window area.
    # Chosen on the "choose" half, quoted on the other (each half's sums x 2)
    sig = (y == 1) & data["nominal"] & data["in_sr"]
    bkg = (y == 0) & data["in_window"]
    frac = np.array([search.training.sr_fraction(config, c) for c in data["channel"]])
    choose = working_point_half(data["event"], settings.folds)
    b_weight = data["w"] * frac
    wp = bdt.punzi_working_point(oof[sig & choose], 2 * data["w"][sig & choose], n_signal_total, oof[bkg & choose],
                                 2 * b_weight[bkg & choose], a=settings.punzi_a,
                                 min_background_events=settings.min_background_events // 2)
    quote = {"efficiency": float(2 * data["w"][sig & ~choose & (oof > wp["cut"])].sum() / n_signal_total),
             "background": float(2 * b_weight[bkg & ~choose & (oof > wp["cut"])].sum()),
             "background_events_above_cut": int((bkg & ~choose & (oof > wp["cut"])).sum())}
    stability = working_point_stability(oof, data["w"], b_weight, sig, bkg, choose, n_signal_total, settings)
    meta = {
        "working_point": {**wp, "chosen_on": "events with (__event__ // folds) % 2 == 0 (sums x 2)",
                          "quoted": {**quote, "on": "events with (__event__ // folds) % 2 == 1 (sums x 2)"},
                          "stability": stability},
        "punzi": {"a": settings.punzi_a, "background": "PID-weighted background (pass-probability weights, every background "
                  "process) in the outer window x SR/window area",
                  "background_events": int(bkg.sum()), "background_weighted": float(b_weight[bkg].sum()),
                  "min_background_events": settings.min_background_events},
        "hyperparameters": {"n_estimators": settings.n_estimators, "max_depth": settings.max_depth, "learning_rate": settings.learning_rate},
        "seeds": {"bdt": settings.seed, "samples": {name: _manifest_seed(ds) for name, ds in datasets.items()}},
        "training_samples": {"samples": str(opts.samples), "events": used, "manifests": {n: str(d.manifest) for n, d in datasets.items()},
                             "n_signal": int((y[train_mask] == 1).sum()), "n_background": int((y[train_mask] == 0).sum())},
        "luminosity_fb": lumi, "luminosity_source": lumi_source,
        "xgboost": xgboost.__version__, "code_version": code_version(),
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    if search.training.extra_metadata is not None:
        meta.update(search.training.extra_metadata(data, config))
    model_path, meta_path = bdt.save_model(model, model_name, opts.experiment, meta, opts.out)
    return {"model": model, "meta": model.meta, "paths": (model_path, meta_path), "oof": oof, "data": data}


def working_point_stability(oof: np.ndarray, w: np.ndarray, b_weight: np.ndarray, sig: np.ndarray, bkg: np.ndarray,
                            choose: np.ndarray, n_signal_total: float, settings: bdt.TrainingSettings,
                            replicas: int = 200) -> dict[str, Any]:
    """How stable the Punzi working point is: (1) the halves swapped (chosen on the quoting half, quoted on
    the choosing one); (2) a bootstrap of the choosing half (events resampled with replacement, signal
    and background alike; a dedicated generator seeded from the BDT seed), each replica's cut quoted on
    the other half. Returns the swapped choice and the 16 / 50 / 84 % quantiles over the replicas."""

    def choose_on(half: np.ndarray, repeat_sig: np.ndarray | None = None, repeat_bkg: np.ndarray | None = None) -> dict[str, float]:
        s, b = sig & half, bkg & half
        s_score, s_w, b_score, b_w = oof[s], 2 * w[s], oof[b], 2 * b_weight[b]
        if repeat_sig is not None:
            s_score, s_w = np.repeat(s_score, repeat_sig), np.repeat(s_w, repeat_sig)
            b_score, b_w = np.repeat(b_score, repeat_bkg), np.repeat(b_w, repeat_bkg)
        return bdt.punzi_working_point(s_score, s_w, n_signal_total, b_score, b_w, a=settings.punzi_a,
                                       min_background_events=settings.min_background_events // 2)

    def quoted(cut: float, half: np.ndarray) -> tuple[float, float]:
        above = half & (oof > cut)
        return float(2 * w[sig & above].sum() / n_signal_total), float(2 * b_weight[bkg & above].sum())

    swapped = choose_on(~choose)
    eff_swapped, b_swapped = quoted(swapped["cut"], choose)
    rng = np.random.default_rng([settings.seed, 2])
    rows = []
    for _ in range(replicas):  # a loop over bootstrap replicas, each one vectorised
        wp = choose_on(choose, rng.poisson(1.0, int((sig & choose).sum())), rng.poisson(1.0, int((bkg & choose).sum())))
        rows.append((wp["cut"], *quoted(wp["cut"], ~choose)))
    cut, eff, background = (np.quantile(np.array(rows)[:, k], [0.16, 0.5, 0.84]).tolist() for k in range(3))
    return {"swapped_halves": {"cut": swapped["cut"], "efficiency": eff_swapped, "background": b_swapped,
                               "chosen_on": "(__event__ // folds) % 2 == 1", "quoted_on": "(__event__ // folds) % 2 == 0"},
            "bootstrap": {"replicas": replicas, "quantiles": [0.16, 0.5, 0.84], "cut": cut, "quoted_efficiency": eff,
                          "quoted_background": background,
                          "what": "the choosing half resampled with replacement; each replica's cut quoted on the other half"}}


def working_point_half(event_number: np.ndarray, folds: int) -> np.ndarray:
    """True for the events the working point is chosen on: ``(__event__ // folds) % 2 == 0``.
    Independent of the fold key (``__event__ % folds``): each half holds every fold's scores."""
    return (np.asarray(event_number, dtype=np.int64) // folds) % 2 == 0


def _train(args: argparse.Namespace) -> int:
    from rich.console import Console

    console = Console(stderr=True)
    result = train(TrainOptions(search=args.search, experiment=args.experiment, samples=args.samples, out=args.out,
                                executor=args.executor, workers=args.workers, progress=console.is_terminal))
    for channel, part in result.get("per_channel", {}).items():
        wp = part["meta"]["working_point"]
        console.print(f"{args.search} ({channel}): working point BDT > {wp['cut']:.4f} (eps {wp['efficiency']:.3g}, "
                      f"B {wp['background']:.3g}; on the independent half: eps {wp['quoted']['efficiency']:.3g}, "
                      f"B {wp['quoted']['background']:.3g}) -> {part['paths'][0]}")
    if "per_channel" in result:
        return 0
    wp = result["meta"]["working_point"]
    console.print(f"{args.search}: working point BDT > {wp['cut']:.4f} (eps {wp['efficiency']:.3f}, B {wp['background']:.3g}, "
                  f"Punzi {wp['fom']:.4g}; on the independent half: eps {wp['quoted']['efficiency']:.3f}, "
                  f"B {wp['quoted']['background']:.3g}) -> {result['paths'][0]}, {result['paths'][1]}")
    boot, swap = wp["stability"]["bootstrap"], wp["stability"]["swapped_halves"]
    console.print(f"stability: halves swapped BDT > {swap['cut']:.4f} (eps {swap['efficiency']:.3f}); bootstrap ({boot['replicas']}) "
                  f"cut {boot['cut'][1]:.4f} [{boot['cut'][0]:.4f}, {boot['cut'][2]:.4f}], quoted eps {boot['quoted_efficiency'][1]:.3f} "
                  f"[{boot['quoted_efficiency'][0]:.3f}, {boot['quoted_efficiency'][2]:.3f}] (16-84 %)")
    ellipse = result["meta"].get("signal_region_fit")
    if ellipse and "fitted" in ellipse:
        fitted, configured = ellipse["fitted"], ellipse["configured"]
        console.print("signal ellipse fitted on the training signal (configured value in brackets): "
                      + ", ".join(f"{k} {fitted[k]:.4g} ({configured[k]:.4g})" for k in fitted))
    return 0
