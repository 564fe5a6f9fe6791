"""sigma(e+e- -> mu+ mu- Z') x BR(Z' -> invisible) of the L_mu - L_tau model at Belle II, g' = 1.

Run: ``.venv/bin/python benchmarks/bench_zprime_cross_section.py [--points N]``

Per Z' mass: the tree-level cross section at sqrt(s) = 10.58 GeV (simulation/generators/lmu_ltau.py) with
the alpha of basf2's MadGraph model (1/127.9) and with alpha(0), the same with ISR (the samples'
normalisation, zprime.py), BR(inv) of the vanilla model, and what the paper's coupling curve implies:
the 90 % CL sigma x BR limit that corresponds to its quoted g' (arXiv:2212.03066: 3e-3 at low mass, 1 at
8 GeV; the per-mass curve is on HEPData, ins2611344, not in this repository).
"""

from __future__ import annotations

import argparse

import numpy as np

from belle_rare.configs.experiment import load_experiment
from belle_rare.simulation.generators import lmu_ltau, zprime
from belle_rare.simulation.generators.dedicated import zprime_isr_x_max

MASSES = (0.05, 0.2, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)
ALPHA_MG = 1 / 127.9  # aEWM1 in basf2 generators/madgraph/models/Lmu_minus_Ltau_UFO/parameters.py
PAPER_COUPLING = {0.05: 3e-3, 8.0: 1.0}  # arXiv:2212.03066 abstract: "from 3e-3 at low masses to 1 at 8 GeV"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    args = parser.parse_args()
    exp = load_experiment("belle2")
    print("M_Z' [GeV] | sigma(g'=1) [fb], alpha=1/127.9 | alpha(0) | with ISR (1/127.9) | BR_inv vanilla | "
          "sigma x BR vanilla with ISR [fb] | sigma_UL implied by the paper's g' (vanilla) [fb]")
    for mass in MASSES:
        sigma, err = lmu_ltau.cross_section(exp.sqrt_s, mass, model="fully_invisible", alpha=ALPHA_MG, points=args.points)
        sigma0, _ = lmu_ltau.cross_section(exp.sqrt_s, mass, model="fully_invisible", points=args.points)
        model = zprime.ZprimeModel(mass=mass, width=0.0, model="fully_invisible", coupling=1.0, alpha=ALPHA_MG)
        sampler = zprime.ZprimeSampler(model, exp.sqrt_s + 0.03, np.random.default_rng(0))
        with_isr = sampler.cross_section_with_isr(exp.sqrt_s, zprime_isr_x_max(exp, mass))
        br = float(lmu_ltau.invisible_branching_fraction(mass, "vanilla"))
        implied = f"{PAPER_COUPLING[mass] ** 2 * with_isr * br * 1e6:.3g}" if mass in PAPER_COUPLING else "-"
        print(f"{mass:5.2f} | {sigma * 1e6:.4g} +- {err * 1e6:.2g} | {sigma0 * 1e6:.4g} | {with_isr * 1e6:.4g} | "
              f"{br:.3f} | {with_isr * br * 1e6:.4g} | {implied}")


if __name__ == "__main__":
    main()
