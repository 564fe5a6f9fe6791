"""tau -> 3 mu signal efficiency, step by step against the paper's (issue 11, the efficiency gap).

Generates ``sig_tau3mu`` (Belle II; m_gamma* > 10 GeV, the signal's slice: the 20 % of tau pairs with harder ISR
select nothing, so the efficiency in the paper's definition is 0.798 x the sample's) and follows the selection of
``processors/tau3mu.py`` (thrown PID, the shipped BDT): trigger, the preselection steps, the 20 sigma window,
the ellipse, the BDT. Beside it, the truth-level losses that explain the preselection: the three signal muons
reconstructed as good tracks (IP cuts, 17-150 deg), their lab momenta (the muon ID collapses below 0.7 GeV/c in
our tables), and the muon-ID pass rate of events whose three signal muons are good tracks.

    .venv/bin/python benchmarks/bench_tau3mu_efficiency.py --events 20000 [--fsr off] [--low-p-muon-eff 0.88]
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


def measure(manifest: dict, out: Path) -> dict[str, float]:
    """Cutflow counts (cumulative, per generated event) of the selection and the truth losses."""
    from bench_taulgamma_background import read_events  # same directory

    search = get_search("tau3mu")
    proc = search.processor("belle2", search.load_config())
    nominal = calibrations("belle2", nominal_only=True)[0]
    cfg = proc.config
    counts: dict[str, float] = {"generated": 0.0}
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
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=51)
    parser.add_argument("--fsr", choices=("on", "off"), help="FSR in the tau decays (default: the catalogue's)")
    parser.add_argument("--low-p-muon-eff", type=float,
                        help="what-if: true-muon muonID > 0.5 efficiency below 0.7 GeV/c (table default 0.05 / 0.50)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    saved = set_low_momentum_muon_efficiency(args.low_p_muon_eff)
    try:
        with tempfile.TemporaryDirectory(prefix="tau3mu-eff-") as tmp:
            manifest = produce_signal(args.events, args.seed, Path(tmp), None if args.fsr is None else args.fsr == "on")
            counts = measure(manifest, Path(tmp))
    finally:
        load_detector("belle2").pid.variables["muonID"].efficiency.mu.values[:] = saved
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
    if args.json:
        args.json.write_text(json.dumps({"counts": counts, "efficiency": final, "error": err, "paper": paper}, indent=1))


if __name__ == "__main__":
    main()
