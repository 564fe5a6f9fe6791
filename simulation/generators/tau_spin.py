"""Tau-pair spin correlations imposed after Pythia's fast (``TauDecays:mode = 0``) tau decays.

With ``TauDecays:mode = 0`` the two taus of e+e- -> gamma* -> tau+ tau- decay independently and
isotropically in their rest frames. ``correlate_tau_pairs`` restores the Born spin correlations
(realism issue, item 5; prototype and rates in ``benchmarks/bench_tau_decays.py``): per event the
whole tau+ decay system (every descendant of the tau+: momenta, and production vertices about the
tau+ decay vertex) is rigidly rotated in the tau+ rest frame, the rotation drawn by accept-reject
on random rotations R with weight

    W = 1 + h-^T C R h+,

where C is the Born gamma* -> tau+ tau- spin-correlation matrix in the tau-pair rest frame
(axes k = tau- direction, r = e- beam direction orthogonalised to k, n = k x r; the longitudinal
polarisation is zero for a pure photon) and h-+ are the decay polarimeters (the decay
distribution of a tau with spin s is 1 + h.s). A rotation leaves every mass, the tau+ momentum
and the tau+ decay spectrum unchanged; only the relative orientation of the two decays changes.
The result is right only if each tau's decay, summed over spins, already follows its unpolarised
matrix element: mode 0 decays rho and K* isotropically, so ``vector_decay_angles`` first gives
them the V - A decay angle (without it the rho polarimeter's analysing power for the rho direction
is 0.12 instead of (m_tau^2 - 2 m_rho^2) / (m_tau^2 + 2 m_rho^2) = 0.45).

Polarimeters, identified from the tau's direct decay products:
- pi nu, K nu: h = +-n (pion direction; + for tau-, - for tau+), exact;
- rho nu, K* nu (through the vector meson's two daughters): vector-current polarimeter
  h = +-m_tau [2 (J.N) J - J^2 N] / [2 (J.N)(J.P) - J^2 (N.P)]
  with J the transverse difference of the two meson four-momenta, N the neutrino, P the tau
  (exact for a vector current of any form factor);
- e nu nu, mu nu nu: the neutrino-integrated polarimeter of a massless lepton,
  h = -+(2x - 1) / (3 - 2x) n_l with x = 2 E_l / m_tau;
- a1 nu and the other hadronic modes (K pi0, K0bar pi and three or more mesons + nu, generated as
  phase space): the polarimeter of the hadronic
  system as a whole, integrated over its internal configuration, h = +-alpha(Q^2) n_Q with
  alpha = (m_tau^2 - 2 Q^2) / (m_tau^2 + 2 Q^2), n_Q its direction and Q^2 its mass squared (the
  analysing power of any spin-1 hadronic current, e.g. Bullock, Hagiwara, Martin, Nucl. Phys. B 395
  (1993) 499; Kuehn and Mirkes, Z. Phys. C 56 (1992) 661). Exact for the hadronic system's momentum;
  the analysing power of the a1 -> 3 pi internal structure (Kuehn-Mirkes structure functions),
  most of the a1's since alpha ~ 0 at the a1 mass, is not used;
- anything else (any signal decay such as tau -> mu gamma, generated as phase space without a
  neutrino) gets h = 0: such events are left exactly as they are.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from belle_rare.core import fourvector as fv
from belle_rare.core.units import pdg_mass

TAU, NU_TAU = 15, 16
PI, K, PI0, K0 = 211, 321, 111, 311
RHO, KSTAR = 213, 323
E, MU, NU_E, NU_MU = 11, 13, 12, 14
_MAX_GENERATIONS = 20  # depth of the decay chains below a tau (tau -> rho -> pi0 -> gamma ...: 3)


def to_frame(p: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Four-vectors p (..., 4: px py pz E) seen from the frame moving with velocity beta (..., 3)."""
    out = fv.boost(p[..., 0], p[..., 1], p[..., 2], p[..., 3], beta[..., 0], beta[..., 1], beta[..., 2])
    return np.stack(out, axis=-1)


def _dot4(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 3] * b[..., 3] - np.sum(a[..., :3] * b[..., :3], axis=-1)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norm > 0, norm, 1.0)


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rotation matrices uniform in SO(3) (from uniform unit quaternions)."""
    w, x, y, z = _unit(rng.normal(size=(n, 4))).T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], axis=1)


def born_correlation(c: np.ndarray, beta2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Born e+e- -> gamma* -> tau+ tau- spin correlations (C_kk, C_rr, C_nn, C_kr) at cos(theta) = c.

    theta is the angle between the tau- and the e- beam in the pair rest frame, beta the tau velocity
    there. Limits: threshold (beta -> 0) C = b b^T with b the beam axis; beta -> 1: C_kk = 1,
    C_rr = -C_nn = sin^2 / (1 + cos^2).
    """
    s2 = 1.0 - c * c
    d = 2.0 - beta2 * s2  # the production weight 1 + c^2 + (1 - beta^2) s^2
    ckk = (1.0 + c * c - (1.0 - beta2) * s2) / d
    crr = (2.0 - beta2) * s2 / d
    cnn = -beta2 * s2 / d
    ckr = 2.0 * np.sqrt(np.clip(1.0 - beta2, 0.0, None)) * np.sqrt(s2) * c / d
    return ckk, crr, cnn, ckr


class TauPairRecord:
    """Pythia's awkward event record as flat numpy columns (global indices), with the tau pair found."""

    def __init__(self, prt: ak.Array) -> None:
        self.counts = ak.to_numpy(ak.num(prt.id)).astype(np.int64)
        self.n_events = len(self.counts)
        self.offsets = np.concatenate([[0], np.cumsum(self.counts)[:-1]]).astype(np.int64)
        self.evt = np.repeat(np.arange(self.n_events), self.counts)
        flat = lambda a: ak.to_numpy(ak.flatten(a))  # noqa: E731
        self.id = flat(prt.id).astype(np.int64)
        self.status = flat(prt.status)
        self.mother = flat(prt.mother1).astype(np.int64) + self.offsets[self.evt]
        self.p = np.stack([flat(prt.p.px), flat(prt.p.py), flat(prt.p.pz), flat(prt.p.e)], axis=1)
        self.has_vertex = ~ak.to_numpy(ak.flatten(ak.is_none(prt.vProd, axis=1)))
        vp = ak.fill_none(prt.vProd, {"px": 0.0, "py": 0.0, "pz": 0.0, "e": 0.0})
        self.v = np.stack([flat(vp.px), flat(vp.py), flat(vp.pz), flat(vp.e)], axis=1)
        # decay products (status 91-99) and the tau (15 / -15) each descends from, 0 for none
        decay = (np.abs(self.status) >= 91) & (np.abs(self.status) <= 99)
        self.direct = decay & (np.abs(self.id[self.mother]) == TAU)
        self.label = np.where(self.direct, self.id[self.mother], 0)
        for _ in range(_MAX_GENERATIONS):  # one pass per generation, columnar over all particles
            update = decay & (self.label == 0) & (self.label[self.mother] != 0)
            if not update.any():
                break
            self.label[update] = self.label[self.mother[update]]
        # the decaying copy of each tau; events need exactly one of each sign
        self.tau = {}
        ok = np.ones(self.n_events, dtype=bool)
        for sign in (TAU, -TAU):
            idx = np.unique(self.mother[self.direct & (self.id[self.mother] == sign)])
            per_event = np.bincount(self.evt[idx], minlength=self.n_events)
            ok &= per_event == 1
            self.tau[sign] = np.full(self.n_events, -1, dtype=np.int64)
            self.tau[sign][self.evt[idx]] = idx
        self.ok = ok


def pair_frame(rec: TauPairRecord, ok: np.ndarray):
    """Velocity of the pair frame, its (k, r, n) axes, cos(theta) and beta^2 of the taus."""
    tm, tp = rec.tau[TAU][ok], rec.tau[-TAU][ok]
    q = rec.p[tm] + rec.p[tp]
    b_pair = q[:, :3] / q[:, 3:4]
    ptm = to_frame(rec.p[tm], b_pair)
    beam = to_frame(rec.p[rec.offsets[ok] + 1], b_pair)  # entry 1: beam A, the e-
    k = _unit(ptm[:, :3])
    pe = _unit(beam[:, :3])
    c = np.clip(np.sum(k * pe, axis=1), -1.0, 1.0)
    r = _unit(pe - c[:, None] * k)
    n = np.cross(k, r)
    beta2 = np.sum(ptm[:, :3] ** 2, axis=1) / ptm[:, 3] ** 2
    return b_pair, k, r, n, c, beta2


def correlation_matrix(k, r, n, c, beta2) -> np.ndarray:
    """The Born C as a Cartesian 3x3 matrix per event (pair rest frame)."""
    ckk, crr, cnn, ckr = born_correlation(c, beta2)
    outer = lambda a, b: a[:, :, None] * b[:, None, :]  # noqa: E731
    return (ckk[:, None, None] * outer(k, k) + crr[:, None, None] * outer(r, r) + cnn[:, None, None] * outer(n, n)
            + ckr[:, None, None] * (outer(k, r) + outer(r, k)))


def _vector_polarimeter(m1: np.ndarray, m2: np.ndarray, nu: np.ndarray, m_tau: float) -> np.ndarray:
    """Vector-current polarimeter (tau- convention) from two mesons and the neutrino, tau rest frame."""
    big_q = m1 + m2
    j = m1 - m2
    j = j - (_dot4(big_q, j) / _dot4(big_q, big_q))[:, None] * big_q  # transverse current
    ptau = np.zeros_like(nu)
    ptau[:, 3] = m_tau
    jn, j2 = _dot4(j, nu), _dot4(j, j)
    num = m_tau * (2 * jn[:, None] * j[:, :3] - j2[:, None] * nu[:, :3])
    den = 2 * jn * _dot4(j, ptau) - j2 * _dot4(nu, ptau)
    return num / den[:, None]


def polarimeters(rec: TauPairRecord, ok: np.ndarray, sign: int, b_pair: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polarimeter h of the tau ``sign`` (15: tau-, -15: tau+) in its rest frame reached from the pair
    frame, and the velocity of that frame in the pair frame; h = 0 for channels without one."""
    m_tau = pdg_mass(TAU)
    n_ok = int(ok.sum())
    evmap = np.full(rec.n_events, -1)
    evmap[ok] = np.arange(n_ok)
    ptau = to_frame(rec.p[rec.tau[sign][ok]], b_pair)
    b_rest = ptau[:, :3] / ptau[:, 3:4]
    h = np.zeros((n_ok, 3))
    s = 1.0 if sign == TAU else -1.0
    q = -1 if sign == TAU else 1  # charge sign of the tau's charged decay products
    idx = np.nonzero(rec.direct & (rec.id[rec.mother] == sign) & ok[rec.evt])[0]
    ev = evmap[rec.evt[idx]]
    pid = rec.id[idx]
    prest = to_frame(to_frame(rec.p[idx], b_pair[ev]), b_rest[ev])
    count = lambda mask: np.bincount(ev[mask], minlength=n_ok)  # noqa: E731
    ndau = count(np.ones(len(idx), dtype=bool))
    has_nu = count(pid == s * NU_TAU) == 1
    # leptons: l nu_l-bar nu_tau (tau-), l+ nu_l nu_tau-bar (tau+)
    is_lep = (pid == q * -E) | (pid == q * -MU)
    lep_ev = has_nu & (ndau == 3) & (count(is_lep) == 1) & (count((pid == -q * -NU_E) | (pid == -q * -NU_MU)) == 1)
    sel = is_lep & lep_ev[ev]
    x = np.clip(2 * prest[sel, 3] / m_tau, 0.0, 1.0)
    h[ev[sel]] = (-s * (2 * x - 1) / (3 - 2 * x))[:, None] * _unit(prest[sel, :3])
    # pi nu, K nu
    is_one = (pid == q * PI) | (pid == q * K)
    sel = is_one & (has_nu & (ndau == 2))[ev]
    h[ev[sel]] = s * _unit(prest[sel, :3])
    # vector meson (rho, K*) + nu with two daughters: the full vector-current polarimeter (valid
    # because vector_decay_angles has given the daughters their unpolarised angular distribution)
    nu4 = np.zeros((n_ok, 4))
    sel_nu = pid == s * NU_TAU
    nu4[ev[sel_nu]] = prest[sel_nu]
    is_vec = (pid == q * RHO) | (pid == q * KSTAR)
    vec_sel = is_vec & (has_nu & (ndau == 2))[ev]
    vidx = idx[vec_sel]
    if len(vidx):
        kids = np.nonzero(np.isin(rec.mother, vidx) & (rec.label == sign) & ~rec.direct)[0]
        kids = kids[np.argsort(rec.mother[kids], kind="stable")]
        parents, nkids = np.unique(rec.mother[kids], return_counts=True)
        kids = kids[np.repeat(nkids == 2, nkids)].reshape(-1, 2)
        if len(kids):
            es = evmap[rec.evt[kids[:, 0]]]
            m = to_frame(to_frame(rec.p[kids], b_pair[es][:, None]), b_rest[es][:, None])
            h[es] = s * _vector_polarimeter(m[:, 0], m[:, 1], nu4[es], m_tau)
    # a1 nu, direct (phase-space) two- and multi-meson modes: the hadronic system Q = P_tau - p_nu
    # as a spin-1 system (its internal configuration is phase space in mode 0, so only its direction
    # can carry the analysing power)
    hadronic = has_nu & (count(np.abs(pid) > 100) == ndau - 1)  # nu_tau + hadrons only
    multi = hadronic & ~((ndau == 2) & (count(is_one | is_vec) == 1))
    if multi.any():
        q = -nu4[multi]
        q[:, 3] += m_tau
        q2 = _dot4(q, q)
        alpha = (m_tau**2 - 2 * q2) / (m_tau**2 + 2 * q2)
        h[multi] = s * alpha[:, None] * _unit(q[:, :3])
    return h, b_rest


def vector_decay_angles(rec: TauPairRecord, rng: np.random.Generator) -> np.ndarray:
    """Give tau -> V nu, V -> two mesons (rho, K*) its unpolarised decay-angle distribution, in place.

    Mode 0 decays the vector meson isotropically in its rest frame; the V - A matrix element
    (summed over the tau spin) gives, with psi the angle between a daughter and the neutrino in
    the V rest frame and Q^2 the V mass squared, dN/dcos(psi) ~ Q^2 sin^2(psi) + m_tau^2 cos^2(psi)
    (longitudinal fraction m_tau^2 / (m_tau^2 + 2 Q^2); e.g. Kuehn and Mirkes, Z. Phys. C 56 (1992)
    661). The V's decay system (daughters and their descendants, momenta and vertices about the V
    decay vertex) is rotated in the V rest frame by a random rotation accepted with weight
    [Q^2 + (m_tau^2 - Q^2) cos^2(psi)] / m_tau^2 <= 1. Returns the mask of particles changed.
    """
    m2 = pdg_mass(TAU) ** 2
    n = len(rec.id)
    changed = np.zeros(n, dtype=bool)
    ndau = np.bincount(rec.mother[rec.direct], minlength=n)
    v = np.nonzero(rec.direct & np.isin(np.abs(rec.id), (RHO, KSTAR)) & (ndau[rec.mother] == 2) & rec.ok[rec.evt])[0]
    if not len(v):
        return changed
    is_v = np.zeros(n, dtype=bool)
    is_v[v] = True
    decay = (np.abs(rec.status) >= 91) & (np.abs(rec.status) <= 99)
    kids = np.nonzero(decay & is_v[rec.mother])[0]
    if not len(kids):
        return changed
    kids = kids[np.argsort(rec.mother[kids], kind="stable")]
    parents, nkids = np.unique(rec.mother[kids], return_counts=True)
    first = kids[np.concatenate([[0], np.cumsum(nkids)[:-1]])][nkids == 2]
    parents = parents[nkids == 2]
    nu_of_tau = np.full(n, -1)
    nus = np.nonzero(rec.direct & (np.abs(rec.id) == NU_TAU))[0]
    nu_of_tau[rec.mother[nus]] = nus
    nu = nu_of_tau[rec.mother[parents]]
    keep = nu >= 0
    parents, first, nu = parents[keep], first[keep], nu[keep]
    beta = rec.p[parents, :3] / rec.p[parents, 3:4]
    n_nu = _unit(to_frame(rec.p[nu], beta)[:, :3])
    u1 = _unit(to_frame(rec.p[first], beta)[:, :3])
    q2 = _dot4(rec.p[parents], rec.p[parents])
    rot = np.tile(np.eye(3), (len(parents), 1, 1))
    todo = np.arange(len(parents))
    while len(todo):  # acceptance >= Q^2 / m_tau^2 + 1/3 (1 - Q^2 / m_tau^2) > 1/3 per round
        trial = random_rotations(len(todo), rng)
        cos = np.einsum("ni,nij,nj->n", n_nu[todo], trial, u1[todo])
        accept = rng.random(len(todo)) * m2 < q2[todo] + (m2 - q2[todo]) * cos**2
        rot[todo[accept]] = trial[accept]
        todo = todo[~accept]
    # every descendant of each V, labelled with its row
    row = np.full(n, -1)
    vrow = np.full(n, -1)
    vrow[parents] = np.arange(len(parents))
    row[decay] = vrow[rec.mother[decay]]
    for _ in range(_MAX_GENERATIONS):
        update = decay & (row == -1) & (row[rec.mother] >= 0)
        if not update.any():
            break
        row[update] = row[rec.mother[update]]
    j = np.nonzero(row >= 0)[0]
    r = row[j]
    v_decay = rec.v[first]

    def transform(x4: np.ndarray) -> np.ndarray:
        y = to_frame(x4, beta[r])
        y[:, :3] = np.einsum("nij,nj->ni", rot[r], y[:, :3])
        return to_frame(y, -beta[r])

    rec.p[j] = transform(rec.p[j])
    rec.v[j] = v_decay[r] + transform(rec.v[j] - v_decay[r])
    changed[j] = True
    return changed


def correlate_tau_pairs(prt: ak.Array, rng: np.random.Generator) -> ak.Array:
    """The event record with the tau+ decay system rotated to follow the Born spin correlations.

    First each tau -> rho / K* nu decay gets its unpolarised decay angle (``vector_decay_angles``).
    Events without a decaying tau+ tau- pair are returned unchanged; where either tau's channel
    has no polarimeter (h = 0: weight 1 for every rotation) the pair is not rotated.
    """
    rec = TauPairRecord(prt)
    ok = rec.ok
    if not ok.any():
        return prt
    changed = vector_decay_angles(rec, rng)
    b_pair, k, r, n, c, beta2 = pair_frame(rec, ok)
    hm, _ = polarimeters(rec, ok, TAU, b_pair)
    hp, b_rest = polarimeters(rec, ok, -TAU, b_pair)
    a = np.einsum("ni,nij->nj", hm, correlation_matrix(k, r, n, c, beta2))
    w_max = 1.0 + np.linalg.norm(a, axis=1) * np.linalg.norm(hp, axis=1)
    n_ok = len(a)
    rot = np.tile(np.eye(3), (n_ok, 1, 1))
    todo = np.nonzero(w_max > 1.0 + 1e-12)[0]
    while len(todo):  # acceptance >= 1/2 per round: a few tens of rounds at most
        trial = random_rotations(len(todo), rng)
        w = 1.0 + np.einsum("ni,nij,nj->n", a[todo], trial, hp[todo])
        accept = rng.random(len(todo)) * w_max[todo] < w
        rot[todo[accept]] = trial[accept]
        todo = todo[~accept]
    moved = np.nonzero(w_max > 1.0 + 1e-12)[0]
    if not len(moved) and not changed.any():
        return prt
    # every descendant of a rotated tau+: momenta, and vertices about the tau+ decay vertex
    evmap = np.full(rec.n_events, -1)
    evmap[np.nonzero(ok)[0][moved]] = moved
    j = np.nonzero((rec.label == -TAU) & (evmap[rec.evt] >= 0))[0]
    ev = evmap[rec.evt[j]]
    tau_plus = rec.tau[-TAU][ok]
    v_decay = np.zeros((n_ok, 4))
    direct = np.nonzero(rec.direct & (rec.id[rec.mother] == -TAU) & (evmap[rec.evt] >= 0))[0]
    v_decay[evmap[rec.evt[direct]]] = rec.v[direct]
    assert np.all(tau_plus[ev] >= 0)

    def transform(x4: np.ndarray) -> np.ndarray:
        y = to_frame(to_frame(x4, b_pair[ev]), b_rest[ev])
        y[:, :3] = np.einsum("nij,nj->ni", rot[ev], y[:, :3])
        return to_frame(to_frame(y, -b_rest[ev]), -b_pair[ev])

    p, v = rec.p.copy(), rec.v.copy()
    p[j] = transform(rec.p[j])
    v[j] = v_decay[ev] + transform(rec.v[j] - v_decay[ev])
    unflat = lambda x: ak.unflatten(x, rec.counts)  # noqa: E731
    four = lambda x: ak.zip({"px": unflat(x[:, 0]), "py": unflat(x[:, 1]), "pz": unflat(x[:, 2]), "e": unflat(x[:, 3])},  # noqa: E731
                           with_name="Momentum4D")
    out = ak.with_field(prt, four(p), "p")
    return ak.with_field(out, ak.mask(four(v), unflat(rec.has_vertex)), "vProd")
