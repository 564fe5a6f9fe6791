"""PID-weighted background estimates against the thrown PID, tau3mu and taulphi (Belle II), taulgamma (Belle).

Run: ``.venv/bin/python benchmarks/bench_pid_weights.py [--events N] [--seed S] [--samples DIR]``

Generates (or reuses) ``belle-rare generate`` samples of tau pairs and uds continuum and runs each
search's processor over them twice: with the thrown PID (the nominal cuts) and PID-weighted (no PID
cut, each candidate weighted by its probability to pass, processors/pid_weighting.py). Printed per
selection stage: the weighted event sums (generator weight x corrections x pass probability)
with their Monte Carlo errors sqrt(sum w^2), the error ratio, the pull of the difference and the
lower bound of the weighted estimate (each event weighted by its most probable candidate's pass
probability instead of P(some candidate passes), processors/pid_weighting.py). Both
estimates use the same events, so the error of their difference is sqrt(sum_i (w_thrown,i -
w_weighted,i)^2) over events (the per-event PID outcome against its probability).

* Closure (analytic expectation: the weighted sum equals the thrown sum in expectation): loosened
  selections in which the thrown PID keeps many events, a pion-ID stand-in for each search's ID
  (tau3mu: pionID > 0.5 for three tracks, > 0.9 for two; taulphi: "kaons" pionID > 0.5, mu phi
  lepton pionID > 0.9). Same candidate building, combinatorics and weights as the real searches.
* The searches' own PID (muonID > 0.5 / 0.9; kaonID > 0.5 and muonID / electronID > 0.9): the thrown
  estimate of these small samples is mostly zero events, the weighted one is not.
* taulgamma (Belle tau pairs): the search's own lepton ID and tag-side veto at the preselection and
  after all cuts but xi, and a loosened closure (muIDBelle > 0.9, every photon a signal-photon candidate).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from coffea.nanoevents import NanoEventsFactory

from belle_rare.processors.base import Calibration, with_trigger
from belle_rare.processors.registry import get_search
from belle_rare.processors.schema import BelleSchema

PROCESSES = ("tautau", "uds")


def ensure_samples(directory: Path, events: int, seed: int, experiment: str = "belle2",
                   processes: tuple[str, ...] = PROCESSES) -> dict[str, list[Path]]:
    """``belle-rare generate`` each process into ``directory`` unless its files are there."""
    out = {}
    for k, process in enumerate(processes):
        files = sorted(directory.glob(f"{experiment}_{process}_*.root"))
        if not files:
            subprocess.run([str(Path(sys.executable).with_name("belle-rare")), "generate", "--experiment", experiment, "--process", process,
                            "--events", str(events), "--seed", str(seed + k), "--out", str(directory)], check=True)
            files = sorted(directory.glob(f"{experiment}_{process}_*.root"))
        out[process] = files
    return out


def stage_weights(proc: Any, path: Path, process: str, weighted: bool, stages: dict[str, Any]) -> dict[str, dict[str, np.ndarray]]:
    """channel -> stage -> per-event weight in the stage (0 outside), over one file, nominal calibration.
    A stage is a region name or a tuple of cut names (``Selection.passing``)."""
    meta = {"dataset": process, "filename": str(path), "kind": "background", "is_data": False}
    events = NanoEventsFactory.from_root({str(path): "tree"}, schemaclass=BelleSchema, metadata=meta, mode="eager").events()
    proc.pid_weighting = weighted
    objects = proc.objects(events, Calibration())
    fired = proc.trigger_fired(events)
    out: dict[str, dict[str, np.ndarray]] = {}
    for channel in proc.channels:
        selection = with_trigger(proc.select(events, objects, channel), fired)
        w = proc.event_weights(events, selection, channel, is_data=False).weight()
        if weighted:  # the lower bound: the kept candidate's probability in place of P(some candidate passes)
            v = selection.values
            lower = w * np.nan_to_num(v["pid_weight_lower"]) / np.where(v["pid_weight"] > 0, v["pid_weight"], 1.0)
            out[channel + " lower"] = {label: np.where(_in_stage(selection, r), lower, 0.0) for label, r in stages.items()}
        out[channel] = {label: np.where(_in_stage(selection, r), w, 0.0) for label, r in stages.items()}
    return out


def _in_stage(selection: Any, stage: str | tuple[str, ...]) -> np.ndarray:
    return selection.passing(*stage) if isinstance(stage, tuple) else selection.regions[stage]


def compare(search: str, config: Any, files: dict[str, list[Path]], stages: dict[str, Any], title: str,
            experiment: str = "belle2") -> list[dict[str, Any]]:
    """Thrown and PID-weighted sums per process, channel and stage; printed and returned."""
    s = get_search(search)
    proc = s.processor(experiment, config)
    rows = []
    print(f"\n== {search}: {title}")
    print(f"{'process':8s} {'channel':7s} {'stage':22s} {'thrown (events)':>24s} {'weighted (events)':>26s} {'pull':>6s} {'err ratio':>9s}")
    for process, paths in files.items():
        per_event: dict[str, dict[tuple[str, str], list[np.ndarray]]] = {"thrown": {}, "weighted": {}}
        for mode in per_event:
            for path in paths:
                for channel, per_stage in stage_weights(proc, path, process, mode == "weighted", stages).items():
                    for label, w in per_stage.items():
                        per_event[mode].setdefault((channel, label), []).append(w)
        for key in per_event["thrown"]:
            w_t, w_w = (np.concatenate(per_event[m][key]) for m in ("thrown", "weighted"))
            lower = np.concatenate(per_event["weighted"][(key[0] + " lower", key[1])]).sum()
            n_t, n_w, raw_t, raw_w = w_t.sum(), w_w.sum(), int((w_t > 0).sum()), int((w_w > 0).sum())
            e_t, e_w, e_diff = np.sqrt((w_t**2).sum()), np.sqrt((w_w**2).sum()), np.sqrt(((w_t - w_w) ** 2).sum())
            pull = (n_w - n_t) / e_diff if e_diff > 0 else 0.0
            ratio = e_w / e_t if e_t > 0 else np.nan
            rel_t = e_t / n_t if n_t > 0 else np.inf
            rel_w = e_w / n_w if n_w > 0 else np.inf
            print(f"{process:8s} {key[0]:7s} {key[1]:22s} {n_t:10.4g} +- {e_t:7.3g} ({int(raw_t):5d}) "
                  f"{n_w:10.4g} +- {e_w:7.3g} ({int(raw_w):6d}) {pull:6.2f} {ratio:9.3f}   lower bound {lower:.4g}")
            rows.append({"search": search, "title": title, "process": process, "channel": key[0], "stage": key[1], "thrown": n_t,
                         "thrown_err": e_t, "weighted": n_w, "weighted_err": e_w, "pull": pull,
                         "rel_err_thrown": rel_t, "rel_err_weighted": rel_w, "lower": lower})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--samples", type=Path, default=Path("/tmp/pidweights-bench"))
    parser.add_argument("--searches", nargs="+", default=["tau3mu", "taulphi", "taulgamma"], help="which searches to compare")
    args = parser.parse_args()
    args.samples.mkdir(parents=True, exist_ok=True)
    rows = belle2_searches(args) if {"tau3mu", "taulphi"} & set(args.searches) else []
    if "taulgamma" in args.searches:
        rows += taulgamma_rows(args)
    summarise(rows)


def belle2_searches(args: argparse.Namespace) -> list[dict[str, Any]]:
    """tau3mu and taulphi on Belle II tau pairs and uds."""
    files = ensure_samples(args.samples, args.events, args.seed)

    t3m = get_search("tau3mu").load_config()
    t3m_stages = {"preselection": "presel", "outer region": "outer", "signal region (no BDT)": "SR"}
    loose = t3m.model_copy(update={"muons": t3m.muons.model_copy(update={"id_branch": "pionID", "id_min": 0.5, "tight_min": 0.9})})
    rows = compare("tau3mu", loose, files, t3m_stages, "closure, pionID > 0.5 (3 tracks) and > 0.9 (>= 2)")
    rows += compare("tau3mu", t3m, files, t3m_stages, "the search's muon ID")

    tlp = get_search("taulphi").load_config()
    tlp_stages = {"preselection": "presel", "SR (no BDT)": "SR_presel", "RSB (no BDT)": "RSB_presel"}
    leptons = tlp.leptons.model_copy(update={"muphi": tlp.leptons.muphi.model_copy(update={"id_branch": "pionID", "id_min": 0.9}),
                                             "ephi": tlp.leptons.ephi.model_copy(update={"id_branch": "pionID", "id_min": 0.5})})
    loose = tlp.model_copy(update={"kaons": tlp.kaons.model_copy(update={"id_branch": "pionID"}), "leptons": leptons})
    rows += compare("taulphi", loose, files, tlp_stages, "closure, 'kaons' pionID > 0.5, lepton pionID > 0.9 (mu phi) / 0.5 (e phi)")
    rows += compare("taulphi", tlp, files, tlp_stages, "the search's kaon and lepton ID")
    return rows


def taulgamma_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """taulgamma on Belle tau pairs: a loosened closure and the search's own PID."""
    from belle_rare.processors.taulgamma import CUT_VALUES, STEPS

    belle_files = ensure_samples(args.samples, args.events, args.seed + 10, "belle", ("tautau",))
    tlg = get_search("taulgamma").load_config()
    tlg_stages = {"preselection": STEPS, "all cuts but xi": STEPS + tuple(c for c in CUT_VALUES if c != "xi"),
                  "all cuts (no ellipse)": STEPS + CUT_VALUES, "signal region": "signal"}
    loose = tlg.model_copy(update={"pid": tlg.pid.model_copy(update={"muon_cut": 0.9}),
                                   "photons": tlg.photons.model_copy(update={"signal_e_min": 0.1, "signal_cos_theta": tlg.photons.cos_theta})})
    rows = compare("taulgamma", loose, belle_files, tlg_stages, "closure, muIDBelle > 0.9, every photon a signal-photon candidate", "belle")
    rows += compare("taulgamma", tlg, belle_files, tlg_stages, "the search's lepton ID and tag-side veto", "belle")
    return rows


def summarise(rows: list[dict[str, Any]]) -> None:
    closure = [r for r in rows if r["title"].startswith("closure") and r["thrown"] > 0]
    if closure:
        pulls = np.array([r["pull"] for r in closure])
        ratio = np.array([r["weighted_err"] / r["thrown_err"] for r in closure])
        print(f"\nclosure stages: {len(pulls)}, pull mean {pulls.mean():.2f}, rms {np.sqrt((pulls**2).mean()):.2f}, "
              f"max |pull| {np.abs(pulls).max():.2f}; error ratio weighted / thrown {ratio.min():.2f}-{ratio.max():.2f}")


if __name__ == "__main__":
    main()
