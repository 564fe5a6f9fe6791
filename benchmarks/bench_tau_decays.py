"""Tau decays with spin correlations: speed of Pythia's tau-decay modes and a fast correlated decay.

Run: ``.venv/bin/python benchmarks/bench_tau_decays.py [--events N] [--experiment belle2]``

e+e- -> tau+ tau- at the experiment's beams, set up like the product's ``tautau`` process
(configs/processes.yaml, simulation/generators/pythia.py). Two tables:

1. rate (events/s on one core, generator only) per setting, generic tau decays;
2. spin correlation per setting, both taus forced to pi nu: correlation coefficient of the pion
   energy fractions x+- = E(pi+-)/E(tau+-) in the tau-pair rest frame (statistical error
   (1 - r^2)/sqrt(N)), and the transverse spin-correlation components C_rr, C_nn = 9 <h-_i h+_i>
   (h = polarimeter: the pion direction in the tau rest frame, with sign -1 for tau+).

"fast correlated" = ``TauDecays:mode = 0`` with the product's tau table, followed by
``correlate_tau_pair`` below: the tau+ decay system is rigidly rotated in the tau+ rest frame
(accept-reject on random rotations) so that the pair follows 1 + h-.C.h+, with C the Born
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


# ----------------------------------------------------------------------------- kinematics


def boost(p: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Boost four-vectors p (..., 4: px py pz E) by velocity beta (..., 3)."""
    b2 = np.sum(beta * beta, axis=-1)
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = np.sum(beta * p[..., :3], axis=-1)
    g2 = np.where(b2 > 0, (gamma - 1.0) / np.where(b2 > 0, b2, 1.0), 0.0)
    out = np.empty_like(p)
    out[..., :3] = p[..., :3] + (g2 * bp + gamma * p[..., 3])[..., None] * beta
    out[..., 3] = gamma * (p[..., 3] + bp)
    return out


def dot4(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 3] * b[..., 3] - np.sum(a[..., :3] * b[..., :3], axis=-1)


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    q = unit(rng.normal(size=(n, 4)))
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], axis=1)


class Flat:
    """The awkward event record as flat numpy arrays with global indices."""

    def __init__(self, prt: ak.Array) -> None:
        self.counts = ak.to_numpy(ak.num(prt.id))
        self.off = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        self.evt = np.repeat(np.arange(len(self.counts)), self.counts)
        f = lambda a: ak.to_numpy(ak.flatten(a))  # noqa: E731
        self.id = f(prt.id)
        self.status = f(prt.status)
        self.m1 = f(prt.mother1) + self.off[self.evt]
        self.p = np.stack([f(prt.p.px), f(prt.p.py), f(prt.p.pz), f(prt.p.e)], axis=1)
        vp = ak.fill_none(prt.vProd, {"px": 0.0, "py": 0.0, "pz": 0.0, "e": 0.0})
        self.v = np.stack([f(vp.px), f(vp.py), f(vp.pz), f(vp.e)], axis=1)
        # decay products and which tau (15 / -15) they descend from
        dec = (np.abs(self.status) >= 91) & (np.abs(self.status) <= 99)
        from_tau = dec & (np.abs(self.id[self.m1]) == 15)
        self.label = np.where(from_tau, self.id[self.m1], 0)
        for _ in range(12):
            upd = dec & (self.label == 0) & (self.label[self.m1] != 0)
            if not upd.any():
                break
            self.label[upd] = self.label[self.m1[upd]]
        n = len(self.counts)
        self.tau = {s: np.full(n, -1) for s in (15, -15)}
        for s in (15, -15):
            idx = np.unique(self.m1[from_tau & (self.id[self.m1] == s)])
            self.tau[s][self.evt[idx]] = idx
        self.direct = from_tau


def pair_frame(fl: Flat, ok: np.ndarray):
    """Boost to the tau-pair rest frame and the (k, r, n) axes; cos(theta) of tau- to the e- beam."""
    tm, tp = fl.tau[15][ok], fl.tau[-15][ok]
    q = fl.p[tm] + fl.p[tp]
    b_cm = -q[:, :3] / q[:, 3:4]
    ptm = boost(fl.p[tm], b_cm)
    beam = boost(fl.p[fl.off[ok] + 1], b_cm)  # entry 1 is the e- beam
    k = unit(ptm[:, :3])
    pe = unit(beam[:, :3])
    c = np.clip(np.sum(k * pe, axis=1), -1, 1)
    r = unit(pe - c[:, None] * k)
    nn = np.cross(k, r)
    beta2 = np.sum(ptm[:, :3] ** 2, axis=1) / ptm[:, 3] ** 2
    return b_cm, ptm, k, r, nn, c, beta2


def correlation_matrix(k, r, nn, c, beta2) -> np.ndarray:
    """Born e+e- -> gamma* -> tau+ tau- spin correlations C (Cartesian, pair rest frame)."""
    s2 = 1 - c * c
    d = 2 - beta2 * s2
    ckk = (1 + c * c - (1 - beta2) * s2) / d
    crr = (2 - beta2) * s2 / d
    cnn = -beta2 * s2 / d
    ckr = 2 * np.sqrt(np.clip(1 - beta2, 0, None)) * np.sqrt(s2) * c / d
    outer = lambda a, b: a[:, :, None] * b[:, None, :]  # noqa: E731
    return (ckk[:, None, None] * outer(k, k) + crr[:, None, None] * outer(r, r) + cnn[:, None, None] * outer(nn, nn)
            + ckr[:, None, None] * (outer(k, r) + outer(r, k)))


def polarimeters(fl: Flat, ok: np.ndarray, sign: int, b_cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polarimeter h (Cartesian, tau rest frame reached from the pair frame) and boost to that frame."""
    n = int(ok.sum())
    evmap = np.full(len(ok), -1)
    evmap[ok] = np.arange(n)
    tau = fl.tau[sign][ok]
    ptau = boost(fl.p[tau], b_cm)
    b_rest = -ptau[:, :3] / ptau[:, 3:4]
    h = np.zeros((n, 3))
    # direct daughters of this tau, in its rest frame
    sel = fl.direct & (fl.id[fl.m1] == sign) & ok[fl.evt]
    idx = np.nonzero(sel)[0]
    ev = evmap[fl.evt[idx]]
    prest = boost(boost(fl.p[idx], b_cm[ev]), b_rest[ev])
    aid = np.abs(fl.id[idx])
    s = 1.0 if sign == 15 else -1.0
    ndau = np.bincount(ev, minlength=n)
    nhad = np.bincount(ev, weights=np.isin(aid, (211, 321)), minlength=n)
    # leptons (neutrino-integrated, massless): h = -s (2x-1)/(3-2x) n_l
    lep = np.isin(aid, (11, 13))
    x = np.clip(2 * prest[lep, 3] / M_TAU, 0, 1)
    h[ev[lep]] = (-s * (2 * x - 1) / (3 - 2 * x))[:, None] * unit(prest[lep, :3])
    # pi nu / K nu: h = s n_h
    one = np.isin(aid, (211, 321)) & (ndau[ev] == 2)
    h[ev[one]] = s * unit(prest[one, :3])
    # two mesons + nu (pi pi0, K pi0, K0 pi): vector-current polarimeter; rho / K* resolved to daughters
    nu = aid == 16
    pnu = np.zeros((n, 4))
    pnu[ev[nu]] = prest[nu]
    vec = np.isin(aid, (213, 323))
    nlep = np.bincount(ev, weights=np.isin(aid, (11, 13)), minlength=n)
    two_direct = (ndau == 3) & (nhad >= 1) & (nlep == 0)
    mesons = {}
    # rho / K* -> two mesons: the vector meson's two daughters
    vidx = idx[vec]
    if len(vidx):
        kids = np.nonzero(np.isin(fl.m1, vidx) & ~fl.direct & (fl.label == sign))[0]
        kids = kids[np.argsort(fl.m1[kids], kind="stable")]
        par, cnt = np.unique(fl.m1[kids], return_counts=True)
        good = np.repeat(cnt == 2, cnt)
        kids = kids[good].reshape(-1, 2)
        e = evmap[fl.evt[kids[:, 0]]]
        mesons["vec"] = (e, boost(boost(fl.p[kids], b_cm[e][:, None]), b_rest[e][:, None]))
    sel2 = two_direct[ev] & ~nu
    if sel2.any():
        i2 = np.nonzero(sel2)[0]  # two per tau, consecutive
        mesons["direct"] = (ev[i2].reshape(-1, 2)[:, 0], prest[i2].reshape(-1, 2, 4))
    for es, m in mesons.values():
        q = m[:, 0] - m[:, 1]
        nv = pnu[es]
        ptau_rest = np.zeros_like(nv)
        ptau_rest[:, 3] = M_TAU
        qn, q2 = dot4(q, nv), dot4(q, q)
        num = M_TAU * (2 * qn[:, None] * q[:, :3] - q2[:, None] * nv[:, :3])
        den = 2 * qn * dot4(q, ptau_rest) - q2 * dot4(nv, ptau_rest)
        h[es] = s * num / den[:, None]
    return h, b_rest


def correlate_tau_pair(prt: ak.Array, rng: np.random.Generator) -> ak.Array:
    """Impose the gamma* spin correlations on uncorrelated (mode 0) tau pairs; see module docstring."""
    fl = Flat(prt)
    ok = (fl.tau[15] >= 0) & (fl.tau[-15] >= 0)
    b_cm, _, k, r, nn, c, beta2 = pair_frame(fl, ok)
    cmat = correlation_matrix(k, r, nn, c, beta2)
    hm, _ = polarimeters(fl, ok, 15, b_cm)
    hp, b_rest = polarimeters(fl, ok, -15, b_cm)
    a = np.einsum("ni,nij->nj", hm, cmat)
    wmax = 1 + np.linalg.norm(a, axis=1) * np.linalg.norm(hp, axis=1)
    n = len(a)
    rot = np.tile(np.eye(3), (n, 1, 1))
    todo = np.nonzero(wmax > 1 + 1e-12)[0]
    while len(todo):
        rr = random_rotations(len(todo), rng)
        w = 1 + np.einsum("ni,nij,nj->n", a[todo], rr, hp[todo])
        acc = rng.random(len(todo)) * wmax[todo] < w
        rot[todo[acc]] = rr[acc]
        todo = todo[~acc]
    # rotate every descendant of the tau+ (momenta, and vertices about the tau+ decay vertex)
    evmap = np.full(len(ok), -1)
    evmap[ok] = np.arange(n)
    j = np.nonzero((fl.label == -15) & ok[fl.evt])[0]
    ev = evmap[fl.evt[j]]
    vdec = np.zeros((n, 4))
    dd = np.nonzero(fl.direct & (fl.id[fl.m1] == -15) & ok[fl.evt])[0]
    vdec[evmap[fl.evt[dd]]] = fl.v[dd]

    def transform(x4):
        y = boost(boost(x4, b_cm[ev]), b_rest[ev])
        y[:, :3] = np.einsum("nij,nj->ni", rot[ev], y[:, :3])
        return boost(boost(y, -b_rest[ev]), -b_cm[ev])

    p = fl.p.copy()
    v = fl.v.copy()
    p[j] = transform(fl.p[j])
    v[j] = vdec[ev] + transform(fl.v[j] - vdec[ev])
    unf = lambda x: ak.unflatten(x, fl.counts)  # noqa: E731
    out = ak.with_field(prt, ak.zip({"px": unf(p[:, 0]), "py": unf(p[:, 1]), "pz": unf(p[:, 2]), "e": unf(p[:, 3])}), "p")
    vp = ak.zip({"px": unf(v[:, 0]), "py": unf(v[:, 1]), "pz": unf(v[:, 2]), "e": unf(v[:, 3])})
    return ak.with_field(out, ak.where(ak.is_none(prt.vProd), prt.vProd, vp), "vProd")


# ----------------------------------------------------------------------------- observables


def pipi_observables(prt: ak.Array) -> dict[str, tuple[float, float]]:
    fl = Flat(prt)
    ok = (fl.tau[15] >= 0) & (fl.tau[-15] >= 0)
    b_cm, _, k, r, nn, c, beta2 = pair_frame(fl, ok)
    hm, _ = polarimeters(fl, ok, 15, b_cm)
    hp, _ = polarimeters(fl, ok, -15, b_cm)
    good = (np.linalg.norm(hm, axis=1) > 0.5) & (np.linalg.norm(hp, axis=1) > 0.5)
    x = {}
    for s in (15, -15):
        sel = fl.direct & (np.abs(fl.id) == 211) & (fl.id[fl.m1] == s) & ok[fl.evt]
        xs = np.full(len(ok), np.nan)
        pcm = boost(fl.p[sel], b_cm[np.cumsum(ok)[fl.evt[sel]] - 1])
        tcm = boost(fl.p[fl.tau[s][fl.evt[sel]]], b_cm[np.cumsum(ok)[fl.evt[sel]] - 1])
        xs[fl.evt[sel]] = pcm[:, 3] / tcm[:, 3]
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
        prt = correlate_tau_pair(prt, rng)
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
