"""taulphi's Punzi working point on the background of several independent sample sets.

Run: ``.venv/bin/python benchmarks/taulphi_working_point.py --model-dir models --samples DIR [--samples DIR2 ...] [--write]``

Why: the continuum that reaches taulphi's SR + RSB window is rare and heavy (a uds event weighs
~2600 events at 190 /fb times its PID pass probability, ~0.03 for real kaons and a pion taken for a
muon): one 10^5-event filtered sample may hold none of it (seed 202: 0 / 2 light ones) and the next two
that weigh 55 events (seed 303). The bootstrap of one sample cannot see events that were not generated,
so the working point is chosen here on all the sample sets together. Each DIR is run through the
taulphi processor in training mode (PID-weighted background, the preselected candidates), scored with
the stored k-fold model (on its own training samples this is the out-of-fold score: booster i only scores
fold i), and the Punzi cut (a, min_background_events from the search YAML) is chosen on the union: signal
efficiency over all generated signal events, B = the PID-weighted window background x SR / window area,
averaged over the sets. Printed: per set and for the union, the cut, eps and B, and the figure of merit
at a few cuts. ``--write`` stores the union's cut as the model's working point (the single-sample choice
of ``belle-rare train`` is kept as ``working_point_training``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from coffea import processor

from belle_rare.analyses.datasets import fileset, load_datasets
from belle_rare.analyses.runner import luminosity_for
from belle_rare.processors import bdt
from belle_rare.processors.registry import get_search
from belle_rare.processors.schema import BelleSchema


def scored(samples: Path, model: bdt.KFoldModel, workers: int) -> dict[str, np.ndarray]:
    """Signal (nominal ID, in the SR) and window background of one sample set: scores and weights."""
    search = get_search("taulphi")
    cfg = search.load_config()
    proc = search.processor("belle2", cfg, training=True)
    datasets = load_datasets(samples, "belle2")
    lumi, _ = luminosity_for(datasets, cfg, "belle2")
    executor = processor.FuturesExecutor(workers=workers) if workers > 1 else processor.IterativeExecutor()
    out = processor.Runner(executor=executor, schema=BelleSchema, chunksize=50_000)(fileset(datasets), proc, treename="tree")
    processed = {name: sum(files.values()) for name, files in out["processed"].items()}
    parts: dict[str, list[np.ndarray]] = {"sig": [], "bkg": [], "bkg_w": []}
    n_signal = 0
    for channel, name in cfg.signal_datasets.items():
        n_signal += processed.get(name, 0)
    for name, channels in out["columns"]["features"].items():
        kind = datasets[name].kind
        for channel, cols in channels.items():
            score = model.score(np.nan_to_num(cols["X"].value, nan=-999.0), cols["event"].value)
            if kind == "signal" and cfg.signal_datasets[channel] == name:
                keep = cols["in_sr"].value.astype(bool) & cols["nominal_pid"].value.astype(bool)
                parts["sig"].append(score[keep])
            elif kind == "background":
                keep = cols["in_window"].value.astype(bool)
                scale = datasets[name].scale(lumi, processed.get(name, 0)) * cfg.signal_region.sr_fraction(channel)
                parts["bkg"].append(score[keep])
                parts["bkg_w"].append(cols["weight"].value[keep] * scale)
    return {**{k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}, "n_signal": n_signal}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=None, help="default: the shipped models")
    ap.add_argument("--samples", type=Path, action="append", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--write", action="store_true", help="store the union's cut in the model metadata")
    args = ap.parse_args()
    cfg = get_search("taulphi").load_config()
    model = bdt.load_model("taulphi", "belle2", cfg.features, args.model_dir)
    settings = cfg.bdt.settings()
    sets = [scored(s, model, args.workers) for s in args.samples]

    def choose(parts: list[dict[str, np.ndarray]]) -> dict[str, float]:
        n = len(parts)
        return bdt.punzi_working_point(np.concatenate([p["sig"] for p in parts]), np.ones(sum(len(p["sig"]) for p in parts)),
                                       sum(p["n_signal"] for p in parts), np.concatenate([p["bkg"] for p in parts]),
                                       np.concatenate([p["bkg_w"] for p in parts]) / n, a=settings.punzi_a,
                                       min_background_events=settings.min_background_events)

    rows = {}
    for path, part in zip(args.samples, sets):
        rows[str(path)] = choose([part])
    rows["union"] = choose(sets)
    for label, wp in rows.items():
        print(f"{label}: BDT > {wp['cut']:.4f}  eps {wp['efficiency']:.4f}  B {wp['background']:.4g}  "
              f"({wp['background_events_above_cut']} window events above)  Punzi {wp['fom']:.4f}")
    for cut in (-1e-12, 0.99, 0.995, rows["union"]["cut"], 0.998, 0.999):
        eps = sum((p["sig"] > cut).sum() for p in sets) / sum(p["n_signal"] for p in sets)
        b = sum(p["bkg_w"][p["bkg"] > cut].sum() for p in sets) / len(sets)
        print(f"  cut {cut:8.4f}: eps {eps:.4f}  B {b:.4g}  Punzi {eps / (settings.punzi_a / 2 + np.sqrt(b)):.4f}")
    if args.write:
        _, meta_path = bdt.model_paths("taulphi", "belle2", args.model_dir)
        meta = json.loads(meta_path.read_text())
        meta.setdefault("working_point_training", meta["working_point"])
        meta["working_point"] = {**rows["union"], "chosen_on": "the union of the sample sets (PID-weighted window background "
                                 "averaged over the sets; benchmarks/taulphi_working_point.py)",
                                 "sample_sets": {k: v for k, v in rows.items() if k != "union"}}
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        print(f"wrote the working point BDT > {rows['union']['cut']:.4f} into {meta_path}")


if __name__ == "__main__":
    main()
