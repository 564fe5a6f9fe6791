"""E_ECL^extra of B0 B0bar events with both B's reconstructed by truth, and where it comes from.

Run: ``.venv/bin/python benchmarks/bench_extra_energy.py [--events N] [--seed S]``

Generic Upsilon(4S) -> B0 B0bar events go through the detector response. Both B's are taken as
perfectly reconstructed (a correct hadronic tag and a fully reconstructed signal side), so every
Photon cluster that is a *true photon* descending from either B (mcIndex ancestry, tagging.b_ancestor)
is "used"; tracks own their matched clusters. What remains is E_ECL^extra: hadronic split-offs,
clusters of hadrons without a track, K_L / neutron clusters and beam background. "Clean" events
have no K_L or neutron in the final state: the shape expected for a peaking channel such as the
Belle K*0 tau tau control sample B0 -> D- l+ nu, D- -> K*0 pi- (signal side and hadronic tags
without neutral hadrons).

Published reference (Belle, PRD 108 (2023) L011102, B0 -> K*0 tau tau): E_extra counts clusters above
50 / 100 / 150 MeV (barrel / forward / backward); "in signal events E_ECL^extra should be zero or have
a small value"; the signal region is E_extra < 0.2 GeV (sideband up to 2 GeV). The control-sample
E_extra distribution is shown (Fig. 1) but no number for its mean or for the fraction below 0.2 GeV
is quoted, and none was found for Belle II B -> K nu nu / B -> tau nu either: the comparison is with
that qualitative statement (a peak at zero, most clean events below 0.2 GeV).
"""

from __future__ import annotations

import argparse
import time

import awkward as ak
import numpy as np
from rich.console import Console
from rich.table import Table

from belle_rare.processors.extra_energy import ExtraEnergyCuts, extra_energy
from belle_rare.simulation.detector import load_detector, simulate_detector
from belle_rare.simulation.detector import pdg as pdgtab
from belle_rare.simulation.detector.flat import FlatTruth
from belle_rare.simulation.detector.tagging import b_ancestor, b_pair_rows
from belle_rare.simulation.production import Chunk, Request, make_generator

#: the papers' / basf2's region thresholds (GeV): Belle goodBelleGamma and Belle II goodGamma
#: (basf2 analysis/variables ECLVariables; NOTES-realism.md section C)
CUTS = {
    "belle": {"thresholds": {"forward": 0.100, "barrel": 0.050, "backward": 0.150}},
    "belle2": {"thresholds": {"forward": 0.100, "barrel": 0.090, "backward": 0.160}},
}
#: Belle II timing selections in use: |t| < 2 t99 (graFEI photon cuts), |t| < 200 ns (common tight cut)
BELLE2_TIMING = {"none": {}, "|t| < 200 ns": {"max_abs_timing": 200.0}, "|t| < 2 t99": {"max_timing_significance": 2.0}}
NEUTRAL_HADRONS = (pdgtab.KLONG, pdgtab.NEUTRON)


def generate(experiment: str, events: int, seed: int) -> tuple[ak.Array, dict[str, ak.Array]]:
    req = Request(experiment, "mixed", events, seed, None)  # type: ignore[arg-type]
    gen = make_generator(req, Chunk(0, events, seed, 0))
    truth = gen.generate(events)
    gen.close()
    return truth, simulate_detector(truth, load_detector(experiment), np.random.default_rng(seed))


def truth_classes(truth: ak.Array, reco: dict[str, ak.Array]) -> dict[str, ak.Array]:
    """Per Photon cluster: used (true photon of a B), source class; per event: clean (no K_L / n)."""
    flat = FlatTruth.from_truth(truth)
    is_b, _ = b_pair_rows(flat)
    photons = reco["Photon"]
    counts = ak.to_numpy(ak.num(photons))
    event = np.repeat(np.arange(len(counts)), counts)
    mc_index = ak.to_numpy(ak.flatten(photons.mcIndex)).astype(np.int64)
    mc_pdg = np.abs(ak.to_numpy(ak.flatten(photons.mcPDG)))
    truth_row = flat.global_index(event, np.maximum(mc_index, 0))
    from_b = np.zeros(len(mc_index), dtype=bool)
    matched = mc_index >= 0
    from_b[matched] = b_ancestor(flat, truth_row[matched], is_b) >= 0
    used = from_b & (mc_pdg == pdgtab.PHOTON)

    # hadron clusters whose hadron has a track are split-offs; without a track, the hadron's own cluster
    trk = reco["Track"]
    trk_event = np.repeat(np.arange(len(counts)), ak.to_numpy(ak.num(trk)))
    key = event * 100000 + mc_index
    tracked = np.isin(key, trk_event * 100000 + ak.to_numpy(ak.flatten(trk.mcIndex)).astype(np.int64))
    charged_hadron = np.isin(mc_pdg, (pdgtab.PION, pdgtab.KAON, pdgtab.PROTON))
    source = np.select(
        [~matched, charged_hadron & tracked, charged_hadron, np.isin(mc_pdg, NEUTRAL_HADRONS), used],
        ["beam background", "split-off", "untracked hadron", "K_L / n", "used"],
        "other",
    )
    final = flat["status"] > 0
    neutral_hadron_events = np.unique(flat.event[final & np.isin(np.abs(flat["pdg"]), NEUTRAL_HADRONS)])
    clean = np.ones(len(counts), dtype=bool)
    clean[neutral_hadron_events] = False
    return {"used": ak.unflatten(used, counts), "source": ak.unflatten(source, counts), "clean": clean}


def summarise(name: str, photons: ak.Array, classes: dict, cuts: ExtraEnergyCuts, rows: list) -> None:
    e_extra = ak.to_numpy(extra_energy(photons, classes["used"], cuts))
    for sample, mask in (("clean", classes["clean"]), ("all", np.ones(len(e_extra), dtype=bool))):
        e = e_extra[mask]
        rows.append([name, sample, f"{mask.sum()}", f"{e.mean():.3f}", f"{np.mean(e == 0):.2f}",
                     f"{np.mean(e < 0.2):.2f}", f"{np.mean(e < 0.25):.2f}"])


def contributions(photons: ak.Array, classes: dict, cuts: ExtraEnergyCuts) -> dict[str, tuple[float, float]]:
    """Mean clusters and mean energy per clean event entering E_extra, by source."""
    from belle_rare.processors.extra_energy import counted_clusters

    clean = classes["clean"]
    keep = (counted_clusters(photons, cuts) & ~classes["used"])[clean]
    source = classes["source"][clean]
    energy = photons.E[clean]
    out = {}
    for name in ("split-off", "untracked hadron", "K_L / n", "beam background", "other"):
        sel = keep & (source == name)
        out[name] = (float(ak.mean(ak.sum(sel, axis=1))), float(ak.mean(ak.sum(ak.where(sel, energy, 0.0), axis=1))))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    console = Console()
    table = Table(title=f"E_ECL^extra, B0 B0bar with both B's reconstructed by truth ({args.events} events)")
    for col in ("experiment / timing cut", "events", "n", "mean (GeV)", "P(E=0)", "P(E<0.2)", "P(E<0.25)"):
        table.add_column(col, justify="right")
    rows: list = []
    sources = {}
    for experiment in ("belle", "belle2"):
        start = time.perf_counter()
        truth, reco = generate(experiment, args.events, args.seed)
        classes = truth_classes(truth, reco)
        photons = reco["Photon"]
        timings = BELLE2_TIMING if experiment == "belle2" else {"none": {}}
        for label, timing in timings.items():
            cuts = ExtraEnergyCuts.model_validate({**CUTS[experiment], **timing})
            summarise(f"{experiment} / {label}", photons, classes, cuts, rows)
            sources[f"{experiment} / {label}"] = contributions(photons, classes, cuts)
        console.print(f"{experiment}: {time.perf_counter() - start:.0f} s")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    breakdown = Table(title="clean events: clusters / energy (GeV) per event entering E_extra, by source")
    breakdown.add_column("experiment / timing cut")
    names = list(next(iter(sources.values())))
    for name in names:
        breakdown.add_column(name, justify="right")
    for key, values in sources.items():
        breakdown.add_row(key, *(f"{n:.3f} / {e:.3f}" for n, e in values.values()))
    console.print(breakdown)


if __name__ == "__main__":
    main()
