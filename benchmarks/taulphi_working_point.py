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

``--limit-background`` (issue 11): B(cut) is the background estimate the limit uses (configs/stats/taulphi.yaml,
factorised per dataset), not the window sum: per background dataset and channel, its PID-weighted events above the
cut in the (SR + RSB) window when the window holds >= ``min_background_events`` effective events of it before the
cut ((sum w)^2 / sum w^2), else in the whole preselected (M_tau, dE) plane x the window's share of the plane
(``looser.window_share``), both x area(SR) / area(window); summed. ``min_background_events`` is counted in those
regions (simulated events above the cut, summed). Why: in paper mode charm has no event in the window, so the limit
spreads its plane flat over it (79-95 % of B), a background the window-only B never saw. The cut is chosen on the
events with (__event__ // folds) % 2 == 0 (sums x 2, as ``belle-rare train``) and quoted on the other half;
eps and B are printed per cut. B B (no event in the plane; the limit's dE tail fit) is left out of B here.
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
from belle_rare.stats.model_config import load_stats_config


def scored(samples: Path, model: bdt.KFoldModel, workers: int) -> dict[str, np.ndarray]:
    """Signal (nominal ID, in the SR) and preselected background of one sample set: scores, weights (x luminosity
    x area(SR) / area(window)), event numbers, the (dataset, channel) each background candidate belongs to, and
    whether it is in the window / the (M_tau, dE) plane of the ``m_de`` histogram."""
    search = get_search("taulphi")
    cfg = search.load_config()
    proc = search.processor("belle2", cfg, training=True)
    datasets = load_datasets(samples, "belle2")
    lumi, _ = luminosity_for(datasets, cfg, "belle2")
    executor = processor.FuturesExecutor(workers=workers) if workers > 1 else processor.IterativeExecutor()
    out = processor.Runner(executor=executor, schema=BelleSchema, chunksize=50_000)(fileset(datasets), proc, treename="tree")
    processed = {name: sum(files.values()) for name, files in out["processed"].items()}
    (_, m_lo, m_hi), (_, de_lo, de_hi) = cfg.histograms.m_tau, cfg.histograms.de
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("sig", "sig_event", "bkg_all", "bkg_w_all", "bkg_event", "bkg_group",
                                                          "bkg_in_window", "bkg_in_plane")}
    groups: list[tuple[str, str]] = []
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
                parts["sig_event"].append(cols["event"].value[keep])
            elif kind == "background":
                scale = datasets[name].scale(lumi, processed.get(name, 0)) * cfg.signal_region.sr_fraction(channel)
                m, de = cols["m"].value, cols["de"].value
                parts["bkg_all"].append(score)
                parts["bkg_w_all"].append(cols["weight"].value * scale)
                parts["bkg_event"].append(cols["event"].value)
                parts["bkg_group"].append(np.full(len(score), len(groups)))
                parts["bkg_in_window"].append(cols["in_window"].value.astype(bool))
                parts["bkg_in_plane"].append((m >= m_lo) & (m < m_hi) & (de >= de_lo) & (de < de_hi))
                groups.append((name, channel))
    res = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    for k in ("bkg_in_window", "bkg_in_plane"):
        res[k] = res[k].astype(bool)
    window = res["bkg_in_window"]
    res["bkg"], res["bkg_w"] = res["bkg_all"][window], res["bkg_w_all"][window]
    return {**res, "n_signal": n_signal, "groups": groups}


def window_share() -> dict[str, float]:
    """The window's share of the (M_tau, dE) plane per channel, as the limit spreads a dataset over it."""
    background = next(s for s in load_stats_config("taulphi").channels[0].samples if s.name == "background")
    return dict(background.data_driven.factorised.looser.window_share)


def limit_background(part: dict, half: int, folds: int, min_events: float, share: dict[str, float]) -> dict:
    """Signal and background of one half of a sample set as the limit counts it (module docstring): per (dataset,
    channel) the window if it holds >= ``min_events`` effective events before the cut, else the plane x ``share``;
    weights x 2 (one half of the events). Returns the candidates' scores and weights, and where each group came from."""
    in_half = (np.asarray(part["bkg_event"], np.int64) // folds) % 2 == half
    score, weight, source = [], [], {}
    for g, (name, channel) in enumerate(part["groups"]):
        mine = in_half & (part["bkg_group"] == g)
        w_window = part["bkg_w_all"][mine & part["bkg_in_window"]]
        n_eff = w_window.sum() ** 2 / (w_window**2).sum() if (w_window > 0).any() else 0.0
        region, factor = (part["bkg_in_window"], 2.0) if n_eff >= min_events else (part["bkg_in_plane"], 2.0 * share[channel])
        keep = mine & region
        score.append(part["bkg_all"][keep])
        weight.append(part["bkg_w_all"][keep] * factor)
        source[f"{name}/{channel}"] = {"region": "window" if n_eff >= min_events else "plane x share",
                                       "window_effective_events": float(n_eff), "events": int(keep.sum()),
                                       "weight": float(weight[-1].sum())}
    sig_half = (np.asarray(part["sig_event"], np.int64) // folds) % 2 == half
    return {"sig": part["sig"][sig_half], "sig_w": np.full(int(sig_half.sum()), 2.0), "n_signal": part["n_signal"],
            "bkg": np.concatenate(score), "bkg_w": np.concatenate(weight), "source": source}


def main_limit_background(args: argparse.Namespace, cfg, model: bdt.KFoldModel, settings, sets: list[dict]) -> None:
    """``--limit-background``: choose on the even half, quote on the odd half, print eps and B per cut, ``--write``
    if the expected Punzi figure of merit (quoted half) beats the shipped cut's."""
    share = window_share()
    halves = [[limit_background(p, h, model.folds, settings.min_background_events, share) for p in sets] for h in (0, 1)]

    def union(parts: list[dict]) -> dict[str, np.ndarray]:
        n = len(parts)
        return {"sig": np.concatenate([p["sig"] for p in parts]), "sig_w": np.concatenate([p["sig_w"] for p in parts]),
                "n_signal": sum(p["n_signal"] for p in parts), "bkg": np.concatenate([p["bkg"] for p in parts]),
                "bkg_w": np.concatenate([p["bkg_w"] for p in parts]) / n}

    choose, quote = union(halves[0]), union(halves[1])
    for h, parts in zip(("even", "odd"), halves):
        for path, p in zip(args.samples, parts):
            for g, src in p["source"].items():
                print(f"  [{h} half, {path}] {g}: from the {src['region']} (window n_eff {src['window_effective_events']:.1f}): "
                      f"{src['events']} events, B before the cut {src['weight']:.4g}")
    wp = bdt.punzi_working_point(choose["sig"], choose["sig_w"], choose["n_signal"], choose["bkg"], choose["bkg_w"],
                                 a=settings.punzi_a, min_background_events=settings.min_background_events)

    def at(u: dict[str, np.ndarray], cut: float) -> tuple[float, float, int, float]:
        eps = u["sig_w"][u["sig"] > cut].sum() / u["n_signal"]
        above = u["bkg"] > cut
        b = u["bkg_w"][above].sum()
        return eps, b, int(above.sum()), eps / (settings.punzi_a / 2 + np.sqrt(b))

    shipped = model.working_point
    print(f"chosen (even half): BDT > {wp['cut']:.4f}  eps {wp['efficiency']:.4f}  B {wp['background']:.4g}  "
          f"({wp['background_events_above_cut']} events above)  Punzi {wp['fom']:.4f}")
    print("  cut       | even half: eps      B   events  Punzi | odd half: eps      B   events  Punzi")
    for cut in sorted({-1e-12, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, shipped, wp["cut"]}):
        (e0, b0, n0, f0), (e1, b1, n1, f1) = at(choose, cut), at(quote, cut)
        print(f"  {cut:9.4f} | {e0:.4f} {b0:8.4g} {n0:6d} {f0:.4f} | {e1:.4f} {b1:8.4g} {n1:6d} {f1:.4f}")
    e1, b1, n1, f1 = at(quote, wp["cut"])
    f_shipped = at(quote, shipped)[3]
    print(f"quoted (odd half): BDT > {wp['cut']:.4f}: eps {e1:.4f}  B {b1:.4g}  Punzi {f1:.4f}; shipped BDT > {shipped:.4g}: "
          f"Punzi {f_shipped:.4f}")
    if args.write:
        if f1 <= f_shipped:
            print("not written: the new cut does not improve the quoted Punzi figure of merit")
            return
        _, meta_path = bdt.model_paths("taulphi", "belle2", args.model_dir)
        meta = json.loads(meta_path.read_text())
        meta.setdefault("working_point_training", meta["working_point"])
        meta["working_point"] = {
            **wp, "chosen_on": "events with (__event__ // folds) % 2 == 0 (sums x 2) of " + ", ".join(map(str, args.samples)),
            "background_as": "the limit's estimate (configs/stats/taulphi.yaml factorised per dataset): per dataset and channel "
                             "the window if >= min_background_events effective events before the cut, else the (M_tau, dE) plane "
                             "x window_share; x area(SR)/area(window); B B (tail fit) left out; benchmarks/taulphi_working_point.py "
                             "--limit-background",
            "quoted": {"efficiency": e1, "background": b1, "background_events_above_cut": n1, "fom": f1,
                       "fom_of_previous_cut": f_shipped, "previous_cut": shipped,
                       "on": "events with (__event__ // folds) % 2 == 1 (sums x 2)"},
            "background_sources": {h: halves[i][0]["source"] for i, h in enumerate(("chosen_half", "quoted_half"))},
        }
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        print(f"wrote the working point BDT > {wp['cut']:.4f} into {meta_path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, default=None, help="default: the shipped models")
    ap.add_argument("--samples", type=Path, action="append", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--write", action="store_true", help="store the union's cut in the model metadata")
    ap.add_argument("--limit-background", action="store_true",
                    help="B as the limit estimates it (window or plane x share per dataset), even / odd halves (docstring)")
    args = ap.parse_args()
    cfg = get_search("taulphi").load_config()
    model = bdt.load_model("taulphi", "belle2", cfg.features, args.model_dir)
    settings = cfg.bdt.settings()
    sets = [scored(s, model, args.workers) for s in args.samples]
    if args.limit_background:
        main_limit_background(args, cfg, model, settings, sets)
        return

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
