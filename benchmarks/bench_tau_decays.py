"""Tau decays with spin correlations: speed of Pythia's tau-decay modes and a fast correlated decay.

Run: ``.venv/bin/python benchmarks/bench_tau_decays.py [--events N] [--experiment belle2]``

e+e- -> tau+ tau- at the experiment's beams, set up like the product's ``tautau`` process
(configs/processes.yaml, simulation/generators/pythia.py). Two tables:

1. rate (events/s on one core, generator only) per setting, generic tau decays;
2. spin correlation per setting, both taus forced to pi nu: correlation coefficient of the pion
   energy fractions x+- = E(pi+-)/E(tau+-) in the tau-pair rest frame (statistical error
   (1 - r^2)/sqrt(N)), and the transverse spin-correlation components C_rr, C_nn = 9 <h-_i h+_i>
   (h = polarimeter: the pion direction in the tau rest frame, with sign -1 for tau+).

"fast correlated" = ``TauDecays:mode = 0`` with the product's tau table, followed by the
generator's ``correlate_tau_pairs`` (``simulation/generators/tau_spin.py``): the tau+ decay
system is rigidly rotated in the tau+ rest frame (accept-reject on random rotations) so that the
pair follows 1 + h-.C.h+, with C the Born
e+e- -> gamma* -> tau+ tau- spin-correlation matrix (polarisation zero for pure gamma*).
Polarimeters: pi/K nu (exact), two mesons nu such as rho -> pi pi0 (vector-current polarimeter),
leptons (neutrino-integrated, massless-lepton formula); other channels (a1, multi-hadron) get h = 0,
i.e. stay uncorrelated.
"""

from __future__ import annotations

import argparse
import time

import awkward as ak
import numpy as np
from rich.console import Console
from rich.table import Table

from belle_rare.configs.experiment import load_experiment
from belle_rare.configs.processes import load_catalogue
from belle_rare.core.units import pdg_mass
from belle_rare.simulation.generators.pythia import beam_settings, tau_table_settings
from belle_rare.simulation.generators.tau_spin import (
    TauPairRecord, correlate_tau_pairs, pair_frame, polarimeters, to_frame,
)

M_TAU = pdg_mass(15)
PI_NU = ["15:onMode = off", "15:onIfMatch = 16 -211"]
PI_NU_TABLE = ["15:oneChannel = 1 1.0 0 16 -211"]  # for the product's own table (mode 0)


def build(experiment: str, extra: list[str], product_table: bool, seed: int = 1):
    import pythia8mc

    cat = load_catalogue()
    common = [s for s in cat.pythia_common if not s.startswith("TauDecays:mode")]
    lines = [*common, "Random:setSeed = on", f"Random:seed = {seed}",
             *beam_settings(load_experiment(experiment)), *cat.pythia_settings("tautau")]
    if product_table:
        lines += tau_table_settings(cat)
    lines += extra
    py = pythia8mc.Pythia("", False)
    for line in lines:
        if not py.readString(line):
            raise ValueError(line)
    if not py.init():
        raise RuntimeError("init failed")
    return py


# ----------------------------------------------------------------------------- observables


def pipi_observables(prt: ak.Array) -> dict[str, tuple[float, float]]:
    """r(x+, x-) and C_kk, C_rr, C_nn of tau+ tau- -> pi nu pi nu, with the generator's own
    pair frame and polarimeters (``simulation/generators/tau_spin.py``)."""
    rec = TauPairRecord(prt)
    ok = rec.ok
    b_pair, k, r, nn, _, _ = pair_frame(rec, ok)
    hm, _ = polarimeters(rec, ok, 15, b_pair)
    hp, _ = polarimeters(rec, ok, -15, b_pair)
    good = (np.linalg.norm(hm, axis=1) > 0.5) & (np.linalg.norm(hp, axis=1) > 0.5)
    pair_index = np.cumsum(ok) - 1  # event -> row of the ok events
    x = {}
    for s in (15, -15):
        sel = rec.direct & (np.abs(rec.id) == 211) & (rec.id[rec.mother] == s) & ok[rec.evt]
        beta = b_pair[pair_index[rec.evt[sel]]]
        xs = np.full(len(ok), np.nan)
        xs[rec.evt[sel]] = to_frame(rec.p[sel], beta)[:, 3] / to_frame(rec.p[rec.tau[s][rec.evt[sel]]], beta)[:, 3]
        x[s] = xs[ok]
    g = good & np.isfinite(x[15]) & np.isfinite(x[-15])
    nev = int(g.sum())
    rho = float(np.corrcoef(x[15][g], x[-15][g])[0, 1])
    out = {"N": (nev, 0.0), "r(x+,x-)": (rho, (1 - rho * rho) / np.sqrt(nev))}
    for name, axis in (("C_kk", k), ("C_rr", r), ("C_nn", nn)):
        prod = 9 * np.sum(hm[g] * axis[g], 1) * np.sum(hp[g] * axis[g], 1)
        out[name] = (float(prod.mean()), float(prod.std() / np.sqrt(nev)))
    return out


# ----------------------------------------------------------------------------- settings

SETTINGS = {
    # name: (extra Pythia settings, use the product's tau table, apply our fast correlation)
    "mode 0 + product table (today)": (["TauDecays:mode = 0"], True, False),
    "mode 0, Pythia table": (["TauDecays:mode = 0"], False, False),
    "mode 1 (Pythia default)": ([], False, False),
    "mode 1, externalMode = 0": (["TauDecays:externalMode = 0"], False, False),
    "mode 4 (internal only)": (["TauDecays:mode = 4"], False, False),
    "mode 1, mMinForZ = 1": (["TauDecays:mMinForZ = 1."], False, False),
    "mode 1, PDF:lepton = off": (["PDF:lepton = off"], False, False),
    "mode 3, pol 0 (uncorrelated)": (["TauDecays:mode = 3", "TauDecays:tauPolarization = 0"], False, False),
    "fast correlated (mode 0 + table + ours)": (["TauDecays:mode = 0"], True, True),
}
SLOW = {"mode 1 (Pythia default)", "mode 1, externalMode = 0", "mode 4 (internal only)", "mode 1, mMinForZ = 1",
        "mode 1, PDF:lepton = off", "mode 3, pol 0 (uncorrelated)"}


def run(experiment: str, name: str, n: int, pipi: bool, seed: int = 1):
    extra, table, ours = SETTINGS[name]
    if pipi:
        extra = extra + (PI_NU_TABLE if table else PI_NU)
    py = build(experiment, extra, table, seed)
    rng = np.random.default_rng(seed)
    py.nextBatch(20)
    start = time.perf_counter()
    prt = py.nextBatch(n).prt
    if ours:
        prt = correlate_tau_pairs(prt, rng)
    return n / (time.perf_counter() - start), prt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="events per fast setting (slow ones: N/40)")
    parser.add_argument("--pipi-events", type=int, default=None, help="pi-pi events per setting for the correlation")
    parser.add_argument("--experiment", default="belle2", choices=["belle", "belle2"])
    parser.add_argument("--only", nargs="*", default=None, help="subset of setting names")
    args = parser.parse_args()
    npipi = args.pipi_events or args.events
    console = Console(width=170)
    table = Table(title=f"e+e- -> tau+ tau-, {args.experiment}, one core")
    for col in ("setting", "ev/s/core (generic)", "ev/s/core (pi pi)", "r(x+,x-) pi pi", "C_kk", "C_rr", "C_nn", "N pi pi"):
        table.add_column(col, justify="right")
    for name in SETTINGS:
        if args.only and name not in args.only:
            continue
        slow = name in SLOW
        rate, _ = run(args.experiment, name, max(args.events // 40, 200) if slow else args.events, False)
        rate_pp, prt = run(args.experiment, name, max(npipi // 10, 500) if slow else npipi, True, seed=2)
        obs = pipi_observables(prt)
        fmt = lambda v: f"{v[0]:+.3f} ± {v[1]:.3f}"  # noqa: E731
        table.add_row(name, f"{rate:,.0f}", f"{rate_pp:,.0f}", fmt(obs["r(x+,x-)"]), fmt(obs["C_kk"]), fmt(obs["C_rr"]),
                      fmt(obs["C_nn"]), f"{obs['N'][0]:,}")
        console.print(f"done: {name}")
    console.print(table)


if __name__ == "__main__":
    main()
