"""What a tighter B B generator filter would gain for taulphi (issue 11), measured on generated B B events.

Run: ``.venv/bin/python benchmarks/bench_taulphi_bb_filter.py [--events 20000] [--process mixed] [--json FILE]``

B B reaches taulphi's (M_tau, dE) window only through a three-track combination carrying nearly the beam energy
(one B's products end at dE = -1.87 GeV: benchmarks/bench_taulphi_tail.py), which the `taulphi` filter (>= 3 charged,
a K+K- pair in 0.98-1.06 GeV; keeps 86-89 % of B B) does not ask for. A tighter filter would keep only events with a
generator-level triplet like the search's candidate: an opposite-charge pair in the filter's M(KK) window (kaon
masses) and a third charged particle (pion mass: any track may be the lepton candidate of the PID-weighted run),
all in the CDC acceptance with pT > 0.05 GeV, the triplet's mass in [M_lo, M_hi] (the window's 1.60-1.95 GeV with
margins) and its CM energy above sqrt(s) / 2 + dE_min. Measured here, per generated event: the fraction of events
with such a triplet for several dE_min (the filter efficiency f), and the CPU time of the bare generator (Pythia +
truth record), of the triplet search and of the detector response, so that the gain per core-second in the bound of
an empty window (w = sigma L / N_generated) is (t_gen + f_now t_sim) / (t_gen + t_filter + f t_sim), f_now the
`taulphi` filter's 0.87-0.89.
The file writing and the later processing scale with the written events too (not timed here; the seed-7 run:
mixed 150 k written in 29 CPU s of production, all B B processing ~0.02 core-hours).
"""

from __future__ import annotations

import argparse
import json
import math
import time

import awkward as ak
import numpy as np

from belle_rare.configs.processes import load_catalogue
from belle_rare.core.units import pdg_mass
from belle_rare.simulation.production import Chunk, Request, _charge, make_generator

KAON, PION = pdg_mass(321), pdg_mass(211)
DE_MIN = (-2.0, -1.5, -1.0, -0.5)
MASS = (1.5, 2.1)  # GeV: the window's 1.60-1.95 with 0.1 / 0.15 GeV margins (generator level, before resolution and FSR)


def triplet_de(truth, spec) -> np.ndarray:
    """Per event, the largest CM dE of a (K+K- pair in the filter's window, third charged) triplet with M in MASS
    (-inf without one); the same charged-particle definition as the filter (production.passes_filter)."""
    mc = truth.mc
    p = np.sqrt(mc.px**2 + mc.py**2 + mc.pz**2)
    theta = np.degrees(np.arccos(np.minimum(np.maximum(mc.pz / ak.where(p > 0, p, 1.0), -1.0), 1.0)))
    charge = _charge(mc.pdg)
    lo, hi = spec.charged_theta_deg
    charged = (mc.status > 0) & (charge != 0) & (np.sqrt(mc.px**2 + mc.py**2) > spec.charged_pt_min) & (theta > lo) & (theta < hi)
    c = mc[charged]
    q = charge[charged]
    # boost of the CM: the beams' total four-momentum
    # (awkward arrays, so that they broadcast per event against the jagged triplets)
    beam = {k: ak.Array(ak.to_numpy(truth[f"beam_{k}"])) for k in ("px", "py", "pz", "E")}
    tracks = ak.zip({"px": c.px, "py": c.py, "pz": c.pz, "q": q})
    a, b, l = ak.unzip(ak.combinations(tracks, 3))
    out = np.full(len(truth), -np.inf)
    # each of the three may be the lepton: the other two form the K+K- pair
    for k1, k2, lep in ((a, b, l), (a, l, b), (b, l, a)):
        e1 = np.sqrt(k1.px**2 + k1.py**2 + k1.pz**2 + KAON**2)
        e2 = np.sqrt(k2.px**2 + k2.py**2 + k2.pz**2 + KAON**2)
        m_kk = np.sqrt(np.maximum((e1 + e2) ** 2 - (k1.px + k2.px) ** 2 - (k1.py + k2.py) ** 2 - (k1.pz + k2.pz) ** 2, 0.0))
        el = np.sqrt(lep.px**2 + lep.py**2 + lep.pz**2 + PION**2)
        E, px, py, pz = e1 + e2 + el, k1.px + k2.px + lep.px, k1.py + k2.py + lep.py, k1.pz + k2.pz + lep.pz
        m = np.sqrt(np.maximum(E**2 - px**2 - py**2 - pz**2, 0.0))
        # CM energy: E* = (E E_beam - p . p_beam) / sqrt(s)
        s = beam["E"] ** 2 - beam["px"] ** 2 - beam["py"] ** 2 - beam["pz"] ** 2
        roots = np.sqrt(s)
        e_cm = (E * beam["E"] - px * beam["px"] - py * beam["py"] - pz * beam["pz"]) / roots
        ok = (k1.q * k2.q < 0) & (m_kk > spec.track_pair_mass.window[0]) & (m_kk < spec.track_pair_mass.window[1]) \
            & (m > MASS[0]) & (m < MASS[1])
        de = ak.where(ok, e_cm - roots / 2, -np.inf)
        out = np.maximum(out, ak.to_numpy(ak.fill_none(ak.max(de, axis=1), -np.inf)))
    return out


def measure(process: str, events: int, seed: int) -> dict:
    from belle_rare.simulation.detector import load_detector, simulate_detector

    catalogue = load_catalogue()
    spec = catalogue.search_filters["taulphi"]
    gen = make_generator(Request("belle2", process, events, seed, None), Chunk(0, events, seed, 0))  # type: ignore[arg-type]
    gen.generate(200)  # warm-up: initialisation, numba
    t0 = time.process_time()
    truth = gen.generate(events)
    t_gen = (time.process_time() - t0) / events
    t0 = time.process_time()
    simulate_detector(truth, load_detector("belle2"), np.random.default_rng(seed))
    t_sim = (time.process_time() - t0) / events
    gen.close()
    de = triplet_de(truth, spec)
    from belle_rare.simulation.production import passes_filter

    f_now = float(np.mean(passes_filter(truth, spec)))
    # the shipped `taulphi_bb` filter (configs/processes.yaml): the same triplet at its de_min, in production's code
    bb = catalogue.search_filters["taulphi_bb"]
    t0 = time.process_time()
    f_bb = float(np.mean(passes_filter(truth, bb)))
    t_filter = (time.process_time() - t0) / events
    f_bb_here = float(np.mean(de > bb.track_triplet.de_min))
    rows = []
    for cut in DE_MIN:
        k = int(np.sum(de > cut))
        f = k / events
        # per generated event: generator (+ the triplet search of the filter) + the response of the kept events
        gain = (t_gen + f_now * t_sim) / (t_gen + t_filter + f * t_sim)
        rows.append({"de_min": cut, "passing": k, "efficiency": f, "efficiency_error": math.sqrt(max(k, 1)) / events,
                     "gain_per_core_second": gain, "written_per_million_generated": f * 1e6})
    return {"process": process, "events": events, "seed": seed, "cpu_ms_generator": t_gen * 1e3, "cpu_ms_response": t_sim * 1e3,
            "taulphi_filter_efficiency": f_now, "max_triplet_de": float(de.max()), "rows": rows,
            "taulphi_bb_filter_efficiency": f_bb, "taulphi_bb_same_triplet_here": f_bb_here, "cpu_ms_taulphi_bb_filter": t_filter * 1e3}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--process", default="mixed")
    ap.add_argument("--seed", type=int, default=31)
    ap.add_argument("--json")
    args = ap.parse_args()
    r = measure(args.process, args.events, args.seed)
    print(f"{r['process']}: {r['events']} generated; CPU per event: generator {r['cpu_ms_generator']:.3f} ms, "
          f"detector response {r['cpu_ms_response']:.3f} ms; `taulphi` filter keeps {r['taulphi_filter_efficiency']:.3f}; "
          f"highest generator-level triplet dE {r['max_triplet_de']:.2f} GeV")
    print(f"  `taulphi_bb` filter (production code): keeps {r['taulphi_bb_filter_efficiency']:.3e} (this script's triplet at its "
          f"de_min: {r['taulphi_bb_same_triplet_here']:.3e}), {r['cpu_ms_taulphi_bb_filter']:.3f} CPU ms per event")
    for row in r["rows"]:
        print(f"  triplet with M in {MASS} GeV and dE > {row['de_min']:+.1f} GeV: {row['passing']} events, f = {row['efficiency']:.2e} "
              f"+- {row['efficiency_error']:.1e}; gain per core-second in the bound x{row['gain_per_core_second']:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(r, fh, indent=1)


if __name__ == "__main__":
    main()
