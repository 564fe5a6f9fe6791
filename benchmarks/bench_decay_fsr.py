"""Radiative leptonic tau decays from the FSR in tau decays (simulation/generators/decay_fsr.py) on Pythia
tau pairs, against BaBar (PRD 91 (2015) 051103(R)): B(tau -> l gamma nu nu) for a photon above 10 MeV in the
tau rest frame, divided by B(tau -> l nu nu) (PDG 17.82 / 17.39 %).

Pythia's ``tautau`` (Belle II beams; its V-A leptonic decays and the spin correlations, then the FSR): of the
taus that decay to l nu nu, the fraction whose FSR photon has more than 10 MeV in the tau rest frame; and the
CPU time of the FSR step against the generation.

    .venv/bin/python benchmarks/bench_decay_fsr.py --events 20000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from belle_rare.configs.experiment import load_experiment
from belle_rare.configs.processes import load_catalogue
from belle_rare.core import fourvector as fv
from belle_rare.simulation.generators.decay_fsr import radiate_tau_decays
from belle_rare.simulation.generators.pythia import PythiaGenerator
from belle_rare.simulation.truth import flat_mc

BABAR = {11: (1.847e-2, 0.054e-2, 0.1782), 13: (3.69e-3, 0.10e-3, 0.1739)}  # B(l gamma nu nu), error, B(l nu nu)


def radiative_fractions(truth, k_min: float = 0.010) -> dict[int, tuple[int, int]]:
    """Per lepton flavour: (leptonic tau decays, those with a decay photon above ``k_min`` in the tau rest frame)."""
    offsets, mc = flat_mc(truth)
    evt = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    mother = np.where(mc["mother"] >= 0, mc["mother"] + offsets[evt], -1)
    pdg = np.abs(mc["pdg"])
    from_tau = (mother >= 0) & (np.abs(mc["pdg"][np.maximum(mother, 0)]) == 15)
    n_rows = len(pdg)
    count = lambda mask: np.bincount(mother[from_tau & mask], minlength=n_rows)  # noqa: E731
    n_nu = count((pdg == 12) | (pdg == 14) | (pdg == 16))
    n_gamma = count(pdg == 22)
    taus = np.nonzero((np.abs(mc["pdg"]) == 15) & (n_nu == 2) & (count(np.ones(n_rows, bool)) == 3 + n_gamma))[0]
    # the rest-frame energy of the (at most one) photon of each leptonic decay
    p = np.stack([mc["px"], mc["py"], mc["pz"], mc["E"]], axis=1)
    photon = np.nonzero(from_tau & (pdg == 22))[0]
    tau_of = mother[photon]
    beta = p[tau_of, :3] / p[tau_of, 3:4]
    rest_e = fv.boost(*(p[photon, i] for i in range(4)), *(beta[:, i] for i in range(3))).E
    hard = np.zeros(n_rows, bool)
    hard[tau_of[rest_e > k_min]] = True
    out = {}
    for lep in (11, 13):
        mine = taus[count(pdg == lep)[taus] == 1]
        out[lep] = (len(mine), int(hard[mine].sum()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=61)
    args = parser.parse_args()
    catalogue = load_catalogue()
    original = catalogue.get("tautau")
    catalogue.processes["tautau"] = original.model_copy(update={"tau_decay_fsr": False})  # FSR timed separately
    try:
        gen = PythiaGenerator(catalogue, "tautau", load_experiment("belle2"), args.seed)
        t0 = time.process_time()
        truth = gen.generate(args.events)
        t1 = time.process_time()
    finally:
        catalogue.processes["tautau"] = original
    radiated = radiate_tau_decays(truth, np.random.default_rng([args.seed, 7]))
    t2 = time.process_time()
    print(f"tautau, {args.events} events: generation {t1 - t0:.2f} CPU s, FSR {t2 - t1:.3f} CPU s "
          f"({1e6 * (t2 - t1) / args.events:.1f} us per event)")
    for lep, (n, k) in radiative_fractions(radiated).items():
        b, err, b_lnn = BABAR[lep]
        f = k / n
        print(f"tau -> {'e' if lep == 11 else 'mu'} nu nu: {n} decays, photon > 10 MeV (tau frame) in {f:.4f} +- "
              f"{np.sqrt(f * (1 - f) / n):.4f}; x B(l nu nu) = {f * b_lnn:.3e}; BaBar {b:.3e} +- {err:.1e} "
              f"(ratio {f * b_lnn / b:.3f})")


if __name__ == "__main__":
    main()
