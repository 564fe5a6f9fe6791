"""Where the scattered e+- of two-photon events and the ISR photons of the dedicated generators land (Belle II).

Run: ``.venv/bin/python benchmarks/bench_two_photon_tags.py [--events N]``

Prints, for e+e- -> e+e- mu+mu- (W > 0.5 GeV): the EPA cross section and the fraction of events with the
scattered e- / e+ inside the ECL (12.4-155.1 deg, lab), at generator level (hard process, weighted, z boost
only; ``tests/test_two_photon.py`` checks it against a quadrature) and after the full generator chain
(beams, ISR and crossing angle raise it to ~1.35 %; Pythia's FSR off the scattered e+- is vetoed, see
README, "Two-photon samples"). Then, for Bhabha, mu mu Z' and eemumu samples, the
fraction of events with a photon above 0.5 GeV inside the ECL (ISR at its first-order angle + FSR).
"""

from __future__ import annotations

import argparse

import awkward as ak
import numpy as np

from belle_rare.simulation.generators import two_photon
from belle_rare.simulation.generators.bhabha import HBARC2_GEV2_NB
from belle_rare.simulation.production import Chunk, Request, make_generator

ECL_DEG = (12.4, 155.1)  # configs/detector/belle2.yaml calorimeter regions
BETA_GAMMA = 0.287       # Belle II CM boost (7 GeV e-, 4 GeV e+)


def _theta_deg(px, py, pz):
    return np.degrees(np.arctan2(np.hypot(px, py), pz))


def generator_level(n: int) -> None:
    rng = np.random.default_rng(1)
    w, (e_minus, e_plus) = two_photon.sample_photons(np.full(n, 10.58), 0.5, two_photon.LEPTON_MASS[13], rng)
    gamma = np.hypot(1.0, BETA_GAMMA)
    sigma = w.mean() * HBARC2_GEV2_NB
    print(f"eemumu EPA cross section (W > 0.5 GeV): {sigma:.2f} nb (Belle II Physics Book, AAFH: 18.9 nb)")
    for name, p in (("e-", e_minus), ("e+", e_plus)):
        theta = _theta_deg(p[:, 0], p[:, 1], gamma * p[:, 2] + BETA_GAMMA * p[:, 3])
        inside = (theta > ECL_DEG[0]) & (theta < ECL_DEG[1])
        frac = (w * inside).sum() / w.sum()
        print(f"  generator level: scattered {name} inside the ECL in {100 * frac:.2f} % of events ({frac * sigma:.3f} nb)")


def _truth(process: str, events: int, params: dict[str, float]):
    gen = make_generator(Request("belle2", process, events, 1, None, parameters=params), Chunk(0, events, 1, 0))
    truth = gen.generate(events)
    gen.close()
    return truth


def full_chain(events: int) -> None:
    for process, params in (("eemumu", {}), ("ee", {}), ("sig_zprime", {"mass": 3.0})):
        mc = _truth(process, events, params).mc
        final = mc[mc.status > 0]
        theta = _theta_deg(final.px, final.py, final.pz)
        inside = (theta > ECL_DEG[0]) & (theta < ECL_DEG[1])
        photon = ak.to_numpy(ak.any((final.pdg == 22) & inside & (final.E > 0.5), axis=1)).mean()
        line = f"{process}: photon > 0.5 GeV inside the ECL in {100 * photon:.1f} % of events"
        if process == "eemumu":
            electron = ak.to_numpy(ak.any((abs(final.pdg) == 11) & inside, axis=1)).mean()
            line += f"; an e+- inside the ECL in {100 * electron:.2f} % (after Pythia FSR)"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000, help="events per full-chain sample")
    args = parser.parse_args()
    generator_level(1_000_000)
    full_chain(args.events)


if __name__ == "__main__":
    main()
