"""tau -> 3 mu signal efficiency, step by step against the paper's (issue 11, the efficiency gap).

Generates ``sig_tau3mu`` (Belle II; m_gamma* > 10 GeV, the signal's slice: the 20 % of tau pairs with harder ISR
select nothing, so the efficiency in the paper's definition is 0.798 x the sample's) and follows the selection of
``processors/tau3mu.py`` (thrown PID, the shipped BDT): trigger, the preselection steps, the 20 sigma window,
the ellipse, the BDT. Beside it, the truth-level losses that explain the preselection: the three signal muons
reconstructed as good tracks (IP cuts, 17-150 deg), their lab momenta (the muon ID collapses below 0.7 GeV/c in
our tables), and the muon-ID pass rate of events whose three signal muons are good tracks.

    .venv/bin/python benchmarks/bench_tau3mu_efficiency.py --events 20000 [--fsr off] [--low-p-muon-eff 0.88]
    .venv/bin/python benchmarks/bench_tau3mu_efficiency.py --sample OUT/samples/tau3mu/belle2_sig_tau3mu.json

``--sample`` reads an existing signal sample (e.g. a paper-mode run's) instead of generating one. Printed beside
the cutflow: the muon ID of the truth-matched good signal muons per momentum bin, thrown (the fraction passing)
and PID-weighted (the mean pass probability the PID-weighted backgrounds use), and the three-muon requirement
(all > 0.5, two > 0.9) on events with three good signal muons, thrown against PID-weighted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import awkward as ak
import numpy as np

from belle_rare.configs.processes import load_catalogue
from belle_rare.processors.base import calibrations
from belle_rare.processors.event_objects import good_tracks
from belle_rare.processors.registry import get_search
from belle_rare.simulation.detector import load_detector
from belle_rare.simulation.production import Request, produce

PROCESS = "sig_tau3mu"
SOFT_SHARE = 0.798  # share of sigma(tautau) with m_gamma* > 10 GeV (configs/processes.yaml, isr.gamma_star_mass_fraction)


def produce_signal(events: int, seed: int, out: Path, fsr: bool | None) -> dict:
    """``sig_tau3mu`` with the catalogue's ``tau_decay_fsr`` overridden when ``fsr`` is given."""
    catalogue = load_catalogue()  # cached: the override reaches produce(), and is undone after
    original = catalogue.get(PROCESS)
    if fsr is not None:
        catalogue.processes[PROCESS] = original.model_copy(update={"tau_decay_fsr": fsr})
    try:
        return produce(Request("belle2", PROCESS, events, seed, out, events_per_file=events), progress=False)
    finally:
        catalogue.processes[PROCESS] = original


def set_low_momentum_muon_efficiency(efficiency: float | None) -> list[float]:
    """What-if: the true-muon muonID > 0.5 efficiency below 0.7 GeV/c set to ``efficiency`` (the table's 0-0.5
    and 0.5-0.7 GeV/c bins, representative in configs/detector/belle2.yaml) in the cached detector of this
    process; returns the original values (pass them back to restore)."""
    table = load_detector("belle2").pid.variables["muonID"].efficiency.mu
    saved = list(table.values)
    if efficiency is not None:
        assert table.p_edges[:3] == [0.0, 0.5, 0.7], table.p_edges
        table.values[:2] = [efficiency, efficiency]
    return saved


def truth_losses(events: ak.Array, good: ak.Array, id_min: float, tight_min: float) -> dict[str, float]:
    """Counts of events by what happened to the three muons of the signal tau (truth-matched tracks)."""
    mc = events.MCParticle
    sig = ak.to_numpy(events.mcSignalIndex)
    trk = events.Track
    mother = mc.motherIndex[ak.where(trk.mcIndex >= 0, trk.mcIndex, 0)]
    from_signal = (trk.mcIndex >= 0) & (abs(trk.mcPDG) == 13) & (mother == ak.Array(sig)[:, None] * ak.ones_like(mother))
    is_sig_mu = (abs(mc.PDG) == 13) & (mc.motherIndex == ak.Array(sig)[:, None] * ak.ones_like(mc.motherIndex))
    p = np.sqrt(mc.px**2 + mc.py**2 + mc.pz**2)
    p_sig = ak.sort(p[is_sig_mu], axis=1)
    three = ak.to_numpy(ak.num(p_sig) == 3)
    p_min = ak.to_numpy(ak.fill_none(ak.firsts(p_sig), 0.0))
    n_good = ak.to_numpy(ak.sum(from_signal & good, axis=1))
    muid = trk.muonID
    n_id = ak.to_numpy(ak.sum(from_signal & good & (muid > id_min), axis=1))
    n_tight = ak.to_numpy(ak.sum(from_signal & good & (muid > tight_min), axis=1))
    ok3 = three & (n_good == 3)
    return {
        "three signal muons generated": float(three.sum()),
        "softest muon p < 0.5 GeV": float((three & (p_min < 0.5)).sum()),
        "softest muon p 0.5-0.7 GeV": float((three & (p_min >= 0.5) & (p_min < 0.7)).sum()),
        "softest muon p 0.7-1.0 GeV": float((three & (p_min >= 0.7) & (p_min < 1.0)).sum()),
        "three signal muons are good tracks": float(ok3.sum()),
        "... and all three muonID > 0.5": float((ok3 & (n_id == 3)).sum()),
        "... and two of them > 0.9": float((ok3 & (n_id == 3) & (n_tight >= 2)).sum()),
        "... with the softest muon above 0.7 GeV": float((ok3 & (p_min >= 0.7)).sum()),
        "... above 0.7 GeV, muon ID passed": float((ok3 & (p_min >= 0.7) & (n_id == 3) & (n_tight >= 2)).sum()),
    }


MOMENTUM_EDGES = [0.0, 0.5, 0.6, 0.7, 1.0, 1.5, 3.0, 10.0]  # GeV/c (lab); 0.6: our KLM threshold, 0.7: the paper's


def muon_id_by_momentum(events: ak.Array, good: ak.Array, id_min: float, tight_min: float) -> dict[str, np.ndarray]:
    """Sums per momentum bin over truth-matched good signal muons: count, thrown passes of muonID > id_min /
    tight_min and the summed pass probabilities (``Track_muonID_passProb_*``); and, per event with three good
    signal muons, the thrown three-muon requirement against its probability (``pid_weighting.at_least_tight``)."""
    from belle_rare.processors.pid_weighting import at_least_tight
    from belle_rare.simulation.detector.pid import pass_probability_branch

    mc, trk = events.MCParticle, events.Track
    sig = ak.Array(ak.to_numpy(events.mcSignalIndex))
    mother = mc.motherIndex[ak.where(trk.mcIndex >= 0, trk.mcIndex, 0)]
    sel = good & (trk.mcIndex >= 0) & (abs(trk.mcPDG) == 13) & (mother == sig[:, None] * ak.ones_like(mother))
    p = np.sqrt(trk.px**2 + trk.py**2 + trk.pz**2)[sel]
    thrown = {c: trk.muonID[sel] > c for c in (id_min, tight_min)}
    prob = {c: trk[pass_probability_branch("muonID", c)][sel] for c in (id_min, tight_min)}
    flat_p = ak.to_numpy(ak.flatten(p))
    out = {"count": np.histogram(flat_p, MOMENTUM_EDGES)[0].astype(float)}
    for c in (id_min, tight_min):
        out[f"thrown > {c}"] = np.histogram(flat_p, MOMENTUM_EDGES, weights=ak.to_numpy(ak.flatten(thrown[c])).astype(float))[0]
        out[f"weighted > {c}"] = np.histogram(flat_p, MOMENTUM_EDGES, weights=ak.to_numpy(ak.flatten(prob[c])).astype(float))[0]
    three = ak.to_numpy(ak.num(p) == 3)
    loose, tight = (ak.to_numpy(ak.pad_none(prob[c][three], 3)).astype(float) for c in (id_min, tight_min))
    n_loose = ak.to_numpy(ak.sum(thrown[id_min][three], axis=1))
    n_tight = ak.to_numpy(ak.sum(thrown[tight_min][three], axis=1))
    out["three good signal muons"] = np.array([float(three.sum())])
    out["three-muon ID thrown"] = np.array([float(((n_loose == 3) & (n_tight >= 2)).sum())])
    out["three-muon ID weighted"] = np.array([float(np.sum(at_least_tight([loose[:, i] for i in range(3)],
                                                                           [tight[:, i] for i in range(3)], 2)))])
    return out


def measure(manifest: dict, out: Path) -> dict[str, float]:
    """Cutflow counts (cumulative, per generated event) of the selection and the truth losses."""
    from bench_taulgamma_background import read_events  # same directory

    search = get_search("tau3mu")
    proc = search.processor("belle2", search.load_config())
    nominal = calibrations("belle2", nominal_only=True)[0]
    cfg = proc.config
    counts: dict[str, float] = {"generated": 0.0}
    by_p: dict[str, np.ndarray] = {}
    for f in manifest["files"]:
        events = read_events(str(out / f["path"]), manifest["dataset"], "signal")
        counts["generated"] += len(events)
        fired = proc.trigger_fired(events)
        base = fired if fired is not None else np.ones(len(events), bool)
        counts["trigger"] = counts.get("trigger", 0.0) + float(base.sum())
        sel = proc.select(events, proc.objects(events, nominal), "3mu")
        for label, names in sel.cutflow:
            counts[label] = counts.get(label, 0.0) + float((base & sel.passing(*names)).sum())
        # the same without the trigger (how much the trigger costs after the selection)
        final = sel.passing(*sel.cutflow[-1][1])
        # the paper (sec. 3.3): of the selected signal, 88 % have one ROE track, 12 % three
        n_roe = sel.values["features"][:, cfg.features.index("n_tracks")] - 3
        for n_trk in (1, 3):
            key = f"selected, {n_trk} ROE track{'s' if n_trk > 1 else ''} (paper: {88 if n_trk == 1 else 12} % of selected)"
            counts[key] = counts.get(key, 0.0) + float((base & final & (n_roe == n_trk)).sum())
        counts["signal region, no trigger"] = counts.get("signal region, no trigger", 0.0) + float(final.sum())
        good = good_tracks(events.Track, cfg.tracks)
        for k, v in truth_losses(events, good, cfg.muons.id_min, cfg.muons.tight_min).items():
            counts[k] = counts.get(k, 0.0) + v
        for k, v in muon_id_by_momentum(events, good, cfg.muons.id_min, cfg.muons.tight_min).items():
            by_p[k] = by_p.get(k, 0.0) + v
    counts["muon_id_by_momentum"] = by_p  # type: ignore[assignment]
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=51)
    parser.add_argument("--fsr", choices=("on", "off"), help="FSR in the tau decays (default: the catalogue's)")
    parser.add_argument("--low-p-muon-eff", type=float,
                        help="what-if: true-muon muonID > 0.5 efficiency below 0.7 GeV/c (table default 0.05 / 0.50)")
    parser.add_argument("--sample", type=Path, help="an existing sig_tau3mu manifest (JSON) instead of generating")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    saved = set_low_momentum_muon_efficiency(args.low_p_muon_eff)
    try:
        if args.sample is not None:
            counts = measure(json.loads(args.sample.read_text()), args.sample.parent)
        else:
            with tempfile.TemporaryDirectory(prefix="tau3mu-eff-") as tmp:
                manifest = produce_signal(args.events, args.seed, Path(tmp), None if args.fsr is None else args.fsr == "on")
                counts = measure(manifest, Path(tmp))
    finally:
        load_detector("belle2").pid.variables["muonID"].efficiency.mu.values[:] = saved
    by_p = counts.pop("muon_id_by_momentum")
    n = counts["generated"]
    paper = get_search("tau3mu").load_config().paper.efficiency
    final = counts["signal region"] / n
    err = np.sqrt(final * (1 - final) / n)
    what_if = "" if args.low_p_muon_eff is None else f", muon ID below 0.7 GeV/c set to {args.low_p_muon_eff}"
    print(f"sig_tau3mu, {int(n)} events (m_gamma* > 10 GeV), FSR {args.fsr or 'catalogue'}{what_if}:")
    for k, v in counts.items():
        print(f"    {k:48s} {v / n:.4f}")
    print(f"efficiency per sample event {final:.4f} +- {err:.4f}; paper's definition (x {SOFT_SHARE}) "
          f"{SOFT_SHARE * final:.4f} +- {SOFT_SHARE * err:.4f}; paper {paper}")
    keys = [k for k in by_p if k.startswith(("thrown >", "weighted >"))]
    print("muon ID of good signal muons by lab momentum (thrown pass fraction / mean pass probability):")
    print(f"    {'p [GeV/c]':12s} {'share':>7s} " + " ".join(f"{k:>16s}" for k in keys))
    for i, (lo, hi) in enumerate(zip(MOMENTUM_EDGES[:-1], MOMENTUM_EDGES[1:])):
        c = by_p["count"][i]
        cells = " ".join(f"{by_p[k][i] / c if c else float('nan'):16.3f}" for k in keys)
        print(f"    {lo:4.1f}-{hi:<7.1f} {c / by_p['count'].sum():7.3f} {cells}")
    n3 = float(by_p["three good signal muons"][0])
    print(f"three-muon ID (all > 0.5, two > 0.9) of the {int(n3)} events with three good signal muons: thrown "
          f"{by_p['three-muon ID thrown'][0] / n3:.4f}, PID-weighted {by_p['three-muon ID weighted'][0] / n3:.4f}")
    if args.json:
        args.json.write_text(json.dumps({"counts": counts, "efficiency": final, "error": err, "paper": paper,
                                         "muon_id_by_momentum": {k: np.asarray(v).tolist() for k, v in by_p.items()},
                                         "momentum_edges": MOMENTUM_EDGES}, indent=1))


if __name__ == "__main__":
    main()
