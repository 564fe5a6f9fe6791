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
Before that, rho / K* decay angles are given their unpolarised V-A distribution (mode 0 decays
them isotropically). Polarimeters: pi/K nu (exact), rho / K* nu (vector-current polarimeter),
leptons (neutrino-integrated, massless-lepton formula), a1 and other multi-meson modes (the hadronic
system as a spin-1 system, alpha = (m_tau^2 - 2 Q^2) / (m_tau^2 + 2 Q^2)).

``--spectra``: the tag-side spectra the searches use, ours against Pythia mode 1 (its own tau table
and hadronic currents), both with the product's ISR and FSR: channel fractions, CM energies of the
charged product / visible system per channel, visible masses, the pi energy fraction in rho decays,
the opening angle of the two visible systems (KS test each), and the CM energy correlation of the two
charged products in events where both taus decay to e nu nu or pi nu (Pearson r).
Run: ``.venv/bin/python benchmarks/bench_tau_decays.py --spectra --events 20000 --pair-events 20000``

``--generator-rate tautau``: the product's generator with the switch off / on (events per CPU second).
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


# ----------------------------------------------------------------------------- tag-side spectra vs mode 1

E_OR_PI = ["15:onMode = off", "15:onIfMatch = 16 -211", "15:onIfMatch = 16 11 -12"]
E_OR_PI_TABLE = ["15:oneChannel = 1 0.5 22 16 11 -12", "15:addChannel = 1 0.5 0 16 -211"]
_COUNTED = (11, 13, 211, 321, 111)  # visible products that define a channel (pi0 not opened)


def tau_channels(prt: ak.Array) -> dict:
    """Per tau (15: tau-, -15: tau+) of each event: its channel (e, mu, pi, rho = pi pi0, 3pi, pi 2pi0,
    other), the e+e- CM energy of its charged product (1-prong) and of its visible system (tau minus
    neutrinos), the charged product's energy fraction of the visible system; and the cosine of the
    opening angle between the two visible systems in the CM."""
    rec = TauPairRecord(prt)
    ok = rec.ok
    beams = rec.p[rec.offsets + 1] + rec.p[rec.offsets + 2]
    b_cm = beams[:, :3] / beams[:, 3:4]
    cm = lambda i: to_frame(rec.p[i], b_cm[rec.evt[i]])  # noqa: E731
    # descendants that define the channel: counted ids whose mother is not itself counted or a K0
    mother_id = np.abs(rec.id[rec.mother])
    top = np.isin(np.abs(rec.id), _COUNTED) & ~np.isin(mother_id, (111, 211, 321, 310, 130, 311))
    neutrino = np.isin(np.abs(rec.id), (12, 14, 16)) & (rec.label != 0)
    out = {}
    vis_dir = {}
    for s in (15, -15):
        mine = (rec.label == s) & ok[rec.evt]
        cnt = {pid: np.bincount(rec.evt[mine & top & (np.abs(rec.id) == pid)], minlength=rec.n_events) for pid in _COUNTED}
        n_ch = cnt[11] + cnt[13] + cnt[211] + cnt[321] + 10 * np.bincount(  # no neutral kaon in a named channel
            rec.evt[mine & np.isin(np.abs(rec.id), (130, 310, 311))], minlength=rec.n_events)
        chan = np.full(rec.n_events, "other", dtype=object)
        chan[(cnt[11] == 1) & (n_ch == 1) & (cnt[111] == 0)] = "e"
        chan[(cnt[13] == 1) & (n_ch == 1) & (cnt[111] == 0)] = "mu"
        chan[(cnt[211] == 1) & (n_ch == 1) & (cnt[111] == 0)] = "pi"
        chan[(cnt[211] == 1) & (n_ch == 1) & (cnt[111] == 1)] = "rho"
        chan[(cnt[211] == 3) & (n_ch == 3) & (cnt[111] == 0)] = "3pi"
        chan[(cnt[211] == 1) & (n_ch == 1) & (cnt[111] == 2)] = "pi2pi0"
        charged = mine & top & np.isin(np.abs(rec.id), (11, 13, 211, 321))
        e_ch = np.full(rec.n_events, np.nan)
        one_prong = n_ch == 1
        sel = charged & one_prong[rec.evt]
        e_ch[rec.evt[sel]] = cm(np.nonzero(sel)[0])[:, 3]
        nus = mine & neutrino
        nu_sum = np.stack([np.bincount(rec.evt[nus], weights=rec.p[nus, i], minlength=rec.n_events) for i in range(4)], 1)
        tau = np.where(ok, rec.tau[s], 0)
        vis = rec.p[tau] - nu_sum
        vis_cm = to_frame(vis, b_cm)
        vis_dir[s] = vis_cm[:, :3] / np.linalg.norm(vis_cm[:, :3], axis=1, keepdims=True)
        m_vis = np.sqrt(np.clip(vis[:, 3] ** 2 - np.sum(vis[:, :3] ** 2, axis=1), 0, None))
        out[s] = {"chan": np.where(ok, chan, "none"), "E_charged": e_ch, "E_vis": vis_cm[:, 3], "m_vis": m_vis,
                  "x_charged": e_ch / vis_cm[:, 3]}
    out["cos_open"] = np.sum(vis_dir[15] * vis_dir[-15], axis=1)
    return out


def spectra_comparison(experiment: str, n: int, n_pair: int) -> None:
    """Tag-side spectra: ours (mode 0 + product table + correlate_tau_pairs) against Pythia mode 1,
    both with the product's ISR (lepton PDFs) and FSR; KS test per observable (per channel,
    shapes), and the CM energy correlation of the two taus' charged products in e / pi events."""
    from scipy.stats import ks_2samp

    console = Console(width=170)
    samples = {}
    for label, name in (("ours", "fast correlated (mode 0 + table + ours)"), ("off", "mode 0 + product table (today)"),
                        ("mode 1", "mode 1 (Pythia default)")):
        extra, table, ours = SETTINGS[name]
        for kind, lines, count in (("generic", [], n), ("e/pi", E_OR_PI_TABLE if table else E_OR_PI, n_pair)):
            py = build(experiment, extra + lines, table, seed=3 if kind == "generic" else 4)
            py.nextBatch(20)
            start = time.perf_counter()
            prt = py.nextBatch(count).prt
            if ours:
                prt = correlate_tau_pairs(prt, np.random.default_rng(3))
            rate = count / (time.perf_counter() - start)
            samples[label, kind] = tau_channels(prt)
            console.print(f"{label} {kind}: {count} events, {rate:,.0f} ev/s/core")
    fractions = Table(title="tau decay channel fractions (per tau, generic sample)")
    for col in ("channel", "ours", "mode 1"):
        fractions.add_column(col, justify="right")
    for chan in ("e", "mu", "pi", "rho", "3pi", "pi2pi0", "other"):
        frac = [np.mean(np.concatenate([samples[label, "generic"][s]["chan"] for s in (15, -15)]) == chan)
                for label in ("ours", "mode 1")]
        fractions.add_row(chan, f"{frac[0]:.4f}", f"{frac[1]:.4f}")
    console.print(fractions)
    table = Table(title=f"tag-side spectra, ours vs Pythia mode 1 ({experiment}, ISR + FSR as in the product)")
    for col in ("observable", "N ours", "N mode 1", "mean ours", "mean mode 1", "KS D", "KS p", "KS p, switch off"):
        table.add_column(col, justify="right")

    def per_tau(label: str, chan: str, key: str) -> np.ndarray:
        d = samples[label, "generic"]
        return np.concatenate([d[s][key][d[s]["chan"] == chan] for s in (15, -15)])

    rows = [(f"E_cm({c}) [{c} nu]", c, "E_charged") for c in ("e", "mu", "pi")]
    rows += [("E_cm(pi pi0) [rho]", "rho", "E_vis"), ("m(pi pi0) [rho]", "rho", "m_vis"),
             ("E(pi)/E(pi pi0) [rho]", "rho", "x_charged"),
             ("E_cm(3 pi) [3pi]", "3pi", "E_vis"), ("m(3 pi) [3pi]", "3pi", "m_vis"),
             ("E_cm(pi 2pi0) [pi 2pi0]", "pi2pi0", "E_vis"), ("m(pi 2pi0) [pi 2pi0]", "pi2pi0", "m_vis")]
    for title, chan, key in rows:
        a, b, off = (per_tau(label, chan, key) for label in ("ours", "mode 1", "off"))
        a, b, off = a[np.isfinite(a)], b[np.isfinite(b)], off[np.isfinite(off)]
        ks = ks_2samp(a, b)
        table.add_row(title, f"{len(a):,}", f"{len(b):,}", f"{a.mean():.4f}", f"{b.mean():.4f}", f"{ks.statistic:.4f}",
                      f"{ks.pvalue:.3f}", f"{ks_2samp(off, b).pvalue:.3f}")
    for title, chans in (("cos(open) [1-prong x 1-prong]", ("e", "mu", "pi", "rho")),):
        vals = []
        for label in ("ours", "mode 1", "off"):
            d = samples[label, "generic"]
            sel = np.isin(d[15]["chan"], chans) & np.isin(d[-15]["chan"], chans)
            vals.append(d["cos_open"][sel])
        ks = ks_2samp(vals[0], vals[1])
        table.add_row(title, f"{len(vals[0]):,}", f"{len(vals[1]):,}", f"{vals[0].mean():.4f}", f"{vals[1].mean():.4f}",
                      f"{ks.statistic:.4f}", f"{ks.pvalue:.3f}", f"{ks_2samp(vals[2], vals[1]).pvalue:.3f}")
    console.print(table)
    corr = Table(title="CM energy correlation of the two charged products, e / pi sample (Pearson r)")
    for col in ("pair", "N ours", "r ours", "N mode 1", "r mode 1", "difference / sigma", "r switch off"):
        corr.add_column(col, justify="right")
    for a_chan, b_chan in (("pi", "pi"), ("e", "pi"), ("e", "e")):
        rs = []
        for label in ("ours", "mode 1", "off"):
            d = samples[label, "e/pi"]
            sel = (((d[15]["chan"] == a_chan) & (d[-15]["chan"] == b_chan))
                   | ((d[15]["chan"] == b_chan) & (d[-15]["chan"] == a_chan)))
            # order each pair as (a_chan, b_chan)
            first = np.where(d[15]["chan"] == a_chan, d[15]["E_charged"], d[-15]["E_charged"])[sel]
            second = np.where(d[15]["chan"] == a_chan, d[-15]["E_charged"], d[15]["E_charged"])[sel]
            r = float(np.corrcoef(first, second)[0, 1])
            rs.append((int(sel.sum()), r, (1 - r * r) / np.sqrt(sel.sum())))
        diff = (rs[0][1] - rs[1][1]) / np.hypot(rs[0][2], rs[1][2])
        corr.add_row(f"{a_chan}-{b_chan}", f"{rs[0][0]:,}", f"{rs[0][1]:+.3f} ± {rs[0][2]:.3f}", f"{rs[1][0]:,}",
                     f"{rs[1][1]:+.3f} ± {rs[1][2]:.3f}", f"{diff:+.1f}", f"{rs[2][1]:+.3f} ± {rs[2][2]:.3f}")
    console.print(corr)


def generator_rate(experiment: str, process: str, n: int, repeats: int = 3) -> None:
    """The product's generator (``PythiaGenerator.generate``: Pythia + spin step + truth record) with
    ``tau_spin_correlations`` off and on, interleaved; events per CPU second of this process (the
    machine is shared, so wall time is also printed)."""
    from belle_rare.simulation.generators.pythia import PythiaGenerator

    cat = load_catalogue()
    exp = load_experiment(experiment)
    for _ in range(repeats):
        for on in (False, True):
            cat.processes[process] = cat.processes[process].model_copy(update={"tau_spin_correlations": on})
            gen = PythiaGenerator(cat, process, exp, 7, 0)
            gen.generate(200)
            wall, cpu = time.perf_counter(), time.process_time()
            gen.generate(n)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            gen.close()
            print(f"{process} tau_spin_correlations {'on ' if on else 'off'}: {n / cpu:,.0f} events per CPU second "
                  f"({n / wall:,.0f} per wall second)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="events per fast setting (slow ones: N/40)")
    parser.add_argument("--pipi-events", type=int, default=None, help="pi-pi events per setting for the correlation")
    parser.add_argument("--experiment", default="belle2", choices=["belle", "belle2"])
    parser.add_argument("--only", nargs="*", default=None, help="subset of setting names")
    parser.add_argument("--spectra", action="store_true", help="only the tag-side spectra against Pythia mode 1")
    parser.add_argument("--pair-events", type=int, default=20000, help="e / pi events per generator for --spectra")
    parser.add_argument("--generator-rate", metavar="PROCESS", default=None,
                        help="only the product generator's rate with the switch off / on for PROCESS")
    args = parser.parse_args()
    if args.generator_rate:
        generator_rate(args.experiment, args.generator_rate, args.events)
        return
    if args.spectra:
        spectra_comparison(args.experiment, args.events, args.pair_events)
        return
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
