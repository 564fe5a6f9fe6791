"""Final-state radiation off the charged leptons of tau decays (PHOTOS-like, leading log).

Pythia's fast tau decays (``TauDecays:mode = 0``) and its forced signal channels (tau -> l gamma,
tau -> 3 mu, generated as phase space) emit no photon: its hadron-level QED radiation covers
two-body decays into a lepton pair only. Belle's and Belle II's signal MC runs PHOTOS on every decay,
so a signal lepton that radiated loses energy (dE, M_bc, M_3mu move off the peak) and gains a photon.

``radiate_tau_decays`` gives each charged lepton (e, mu) among the direct daughters of a decaying tau
at most one photon, the hardest one, in the tau rest frame:

- energy fraction x = omega / E_l (E_l the lepton energy before the emission) from the leading-log
  splitting density
      dP/dx = (alpha / 2 pi) (L - 2) (1 + (1 - x)^2) / x,   L = (1 / beta) ln((1 + beta) / (1 - beta)),
  exponentiated (the hardest photon: P(x_hard < x) = exp(-int_x^x_max dP)), between the infrared cut
  x_min = ``k_min`` / E_l and x_max = min(1, omega_max / E_l), omega_max the kinematic limit (the rest of
  the decay keeps its mass). L - 2 is the exact soft-photon (eikonal) coefficient of a tau -> l + neutral
  dipole integrated over the whole sphere in the tau rest frame (L -> ln(4 E_l^2 / m_l^2) for
  relativistic leptons); (1 + (1 - x)^2) / 2 is the fermion splitting function's hard-photon factor.
  The collinear structure-function form (L - 1) differs by the non-logarithmic constant only; (L - 2) reproduces
  BaBar's radiative leptonic tau decay rate (tests/test_decay_fsr.py, benchmarks/bench_decay_fsr.py);
- polar angle to the lepton from the eikonal distribution beta^2 sin^2(theta) / (1 - beta cos(theta))^2,
  azimuth uniform;
- recoil as PHOTOS does it: the lepton l and the rest of the decay R (all other daughters, earlier
  photons included) keep their directions in their new common rest frame, which recoils against the
  photon with mass^2 M^2 - 2 M omega; R's constituents follow R by the boost that takes R to its new
  momentum. Every daughter's mass and the tau's four-momentum are conserved exactly.

Only taus whose direct daughters are all final-state particles radiate (leptonic decays and the
forced signal channels tau -> l gamma, 3 mu; not tau -> l phi, whose phi decays further). Photons
are appended at the end of each event's particle list (status 91 as Pythia's decay products, mother = the tau, the lepton's
production vertex), so every existing index (mothers, ``signal_index``) stays valid. The draws come
from the generator-supplied rng only: give it a stream of its own.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from belle_rare.core import fourvector as fv
from belle_rare.simulation.truth import BEAM_FIELDS, MC_FIELDS, flat_mc, truth_from_flat

ALPHA = 1.0 / 137.035999  # fine-structure constant at q^2 = 0 (PDG): the scale of real photon emission
TAU, PHOTON = 15, 22
DECAY_PRODUCT = 91  # Pythia's status of particles produced in a decay (final state: > 0), as the tau's other daughters
RADIATING_LEPTONS = (11, 13)
# infrared cut: photons below 1 MeV in the tau rest frame (< 6 MeV in the lab at 10.58 GeV) are not
# generated; they are far below the 20 MeV ECL cluster threshold and move a momentum by < 1e-3
K_MIN_GEV = 0.001
_BISECTION_STEPS = 60  # in ln x: 2^-60 of the range, far below float precision of x


def collinear_log(beta: np.ndarray) -> np.ndarray:
    """L = (1/beta) ln((1+beta)/(1-beta)) (2 at rest, ln(4 E^2 / m^2) for beta -> 1)."""
    b = np.clip(beta, 1e-12, 1.0 - 1e-16)
    return np.where(beta < 1e-6, 2.0, np.log1p(2 * b / (1 - b)) / b)


def radiator_strength(beta: np.ndarray) -> np.ndarray:
    """c = (alpha / 2 pi)(L - 2): dP/dx = c (1 + (1 - x)^2) / x (zero for a lepton at rest)."""
    return ALPHA / (2 * np.pi) * np.maximum(collinear_log(beta) - 2.0, 0.0)


def splitting_integral(x: np.ndarray) -> np.ndarray:
    """G(x) = int^x (1 + (1 - t)^2) / t dt = 2 ln x - 2 x + x^2 / 2 (up to a constant)."""
    return 2.0 * np.log(x) - 2.0 * x + 0.5 * x * x


def emission_probability(c: np.ndarray, x0: np.ndarray, x_max: np.ndarray) -> np.ndarray:
    """Probability that the hardest photon has x > x0: 1 - exp(-c [G(x_max) - G(x0)])."""
    x0 = np.minimum(x0, x_max)
    return -np.expm1(-c * (splitting_integral(x_max) - splitting_integral(x0)))


def hardest_photon_fraction(c: np.ndarray, x_min: np.ndarray, x_max: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """x of the hardest photon per lepton (exponentiated leading log), 0 where none is above x_min."""
    target = -np.log(rng.random(len(c)))  # c [G(x_max) - G(x)] = target
    ok = (x_min < x_max) & (c > 0)
    total = np.where(ok, c * (splitting_integral(x_max) - splitting_integral(np.minimum(x_min, x_max))), 0.0)
    emit = ok & (total > target)
    lo, hi = np.log(np.where(emit, x_min, 0.5)), np.log(np.where(emit, x_max, 1.0))
    g_goal = splitting_integral(np.where(emit, x_max, 1.0)) - np.where(emit, target / np.where(c > 0, c, 1.0), 0.0)
    for _ in range(_BISECTION_STEPS):  # G increases with x: a loop over steps, columnar over leptons
        mid = 0.5 * (lo + hi)
        below = splitting_integral(np.exp(mid)) < g_goal
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return np.where(emit, np.exp(0.5 * (lo + hi)), 0.0)


def emission_cos_theta(mass: np.ndarray, energy: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """cos(theta) to the lepton from beta^2 sin^2 / (1 - beta cos)^2 (eikonal), by accept-reject.

    Proposal g ~ 1 / (1 - beta cos) (inverse CDF: 1 - beta cos = (1 + beta) r^u, r = (1 - beta) / (1 + beta)
    = m^2 / (E + p)^2, exact for beta -> 1); f / g = (1 - cos^2) / (1 - beta cos) <= 2.
    """
    p = np.sqrt(np.maximum(energy**2 - mass**2, 0.0))
    beta = p / energy
    ratio = np.maximum(mass**2, 1e-300) / (energy + p) ** 2
    out = np.zeros(len(energy))
    todo = np.arange(len(energy))
    while len(todo):  # acceptance > 1/2 per round
        b, r = beta[todo], ratio[todo]
        one_minus_bc = (1 + b) * r ** rng.random(len(todo))
        cos = np.clip((1 - one_minus_bc) / np.where(b > 0, b, 1.0), -1.0, 1.0)
        cos = np.where(b > 0, cos, 2 * rng.random(len(todo)) - 1)  # at rest: isotropic (c = 0 there anyway)
        accept = 2 * rng.random(len(todo)) * one_minus_bc < (1 - cos * cos)
        out[todo[accept]] = cos[accept]
        todo = todo[~accept]
    return out


def _to_frame(p: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Four-vectors p (n, 4: px py pz E) seen from a frame moving with velocity beta (n, 3)."""
    return np.stack(fv.boost(p[:, 0], p[:, 1], p[:, 2], p[:, 3], beta[:, 0], beta[:, 1], beta[:, 2]), axis=1)


def _kallen_momentum(m2: np.ndarray, m1: np.ndarray, m2b: np.ndarray) -> np.ndarray:
    """Two-body momentum of masses m1, m2b in the rest frame of mass sqrt(m2)."""
    lam = (m2 - (m1 + m2b) ** 2) * (m2 - (m1 - m2b) ** 2)
    return np.sqrt(np.maximum(lam, 0.0)) / (2 * np.sqrt(m2))


def _orthonormal(n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors completing the unit vectors n (rows) to a right-handed basis."""
    helper = np.where(np.abs(n[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    e1 = np.cross(helper, n)
    e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
    return e1, np.cross(n, e1)


def _emit(p: np.ndarray, mass: np.ndarray, tau_of: np.ndarray, lepton: np.ndarray, n_taus: int, k_min: float,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One emission off the lepton rows ``lepton`` (one per radiating tau, ``tau_of[lepton]`` distinct).

    ``p`` (rows, 4) are the lab momenta of every daughter row, ``tau_of`` the decay each belongs to (-1:
    none). Returns the updated ``p`` and the photons' lab momenta (rows of ``lepton``; 0 where none).
    """
    t_of_l = tau_of[lepton]
    slot = np.full(n_taus, -1)
    slot[t_of_l] = np.arange(len(lepton))
    rows = np.nonzero((tau_of >= 0) & (slot[np.maximum(tau_of, 0)] >= 0))[0]
    k = slot[tau_of[rows]]  # which emitting decay each daughter row belongs to
    total = np.zeros((len(lepton), 4))
    np.add.at(total, k, p[rows])
    b_tau = total[:, :3] / total[:, 3:4]
    rest = _to_frame(p[rows], b_tau[k])
    m_tau = np.sqrt(np.maximum(total[:, 3] ** 2 - np.sum(total[:, :3] ** 2, axis=1), 0.0))
    is_lep = rows == lepton[k]
    lep = np.zeros((len(lepton), 4))
    lep[k[is_lep]] = rest[is_lep]
    other = np.zeros((len(lepton), 4))
    np.add.at(other, k[~is_lep], rest[~is_lep])
    n_other = np.bincount(k[~is_lep], minlength=len(lepton))
    m_l = mass[lepton]
    m_r2 = other[:, 3] ** 2 - np.sum(other[:, :3] ** 2, axis=1)
    single_mass = np.zeros(len(lepton))
    single_mass[k[~is_lep]] = mass[rows[~is_lep]]  # the mass of R where R is one particle
    m_r = np.where(n_other > 1, np.sqrt(np.maximum(m_r2, 0.0)), single_mass)
    e_l = lep[:, 3]
    p_l = np.linalg.norm(lep[:, :3], axis=1)
    beta_l = p_l / e_l
    omega_max = (m_tau**2 - (m_l + m_r) ** 2) / (2 * m_tau)
    x_max = np.clip(omega_max / e_l, 0.0, 1.0)
    # a composite rest of zero mass cannot be boosted to rest: such (measure-zero) decays do not radiate
    x_max = np.where((n_other > 1) & (m_r < 1e-6), 0.0, x_max)
    x = hardest_photon_fraction(radiator_strength(beta_l), k_min / e_l, x_max, rng)
    cos = emission_cos_theta(m_l, e_l, rng)
    phi = 2 * np.pi * rng.random(len(lepton))
    emit = x > 0
    omega = x * e_l
    n = lep[:, :3] / np.where(p_l > 0, p_l, 1.0)[:, None]
    e1, e2 = _orthonormal(n)
    sin = np.sqrt(1 - cos * cos)
    k_vec = omega[:, None] * (sin[:, None] * (np.cos(phi)[:, None] * e1 + np.sin(phi)[:, None] * e2) + cos[:, None] * n)
    # (l R) recoils against the photon; in its rest frame l and R stay back to back along n
    m_new2 = m_tau**2 - 2 * m_tau * omega
    q = _kallen_momentum(m_new2, m_l, m_r)
    v_new = -k_vec / (m_tau - omega)[:, None]
    lep_new = _to_frame(np.concatenate([q[:, None] * n, np.sqrt(q * q + m_l**2)[:, None]], axis=1), -v_new)
    oth_new = _to_frame(np.concatenate([-q[:, None] * n, np.sqrt(q * q + m_r**2)[:, None]], axis=1), -v_new)
    # every daughter row of an emitting decay, rest frame -> its new momentum
    sel = emit[k]
    new = rest.copy()
    new[is_lep & sel] = lep_new[k[is_lep & sel]]
    single = sel & ~is_lep & (n_other[k] == 1)
    new[single] = oth_new[k[single]]
    multi = sel & ~is_lep & (n_other[k] > 1)
    if multi.any():
        km = k[multi]
        b_old = other[km, :3] / other[km, 3:4]
        b_new = oth_new[km, :3] / oth_new[km, 3:4]
        new[multi] = _to_frame(_to_frame(rest[multi], b_old), -b_new)
    p = p.copy()
    p[rows[sel]] = _to_frame(new[sel], -b_tau[k[sel]])
    photon = np.zeros((len(lepton), 4))
    photon[emit] = _to_frame(np.concatenate([k_vec, omega[:, None]], axis=1)[emit], -b_tau[emit])
    return p, photon


def radiate_tau_decays(truth: ak.Array, rng: np.random.Generator, k_min: float = K_MIN_GEV) -> ak.Array:
    """The truth record with one (the hardest) FSR photon per charged lepton of every tau decay whose
    direct daughters are all final-state particles; photons appended at the end of each event."""
    offsets, mc = flat_mc(truth)
    n_rows = int(offsets[-1])
    n_events = len(offsets) - 1
    if n_rows == 0:
        return truth
    evt = np.repeat(np.arange(n_events), np.diff(offsets))
    mother = np.where(mc["mother"] >= 0, mc["mother"] + offsets[evt], -1)
    pdg = mc["pdg"].astype(np.int64)
    has_mother = mother >= 0
    from_tau = has_mother & (np.abs(pdg[np.maximum(mother, 0)]) == TAU)
    n_dau = np.bincount(mother[from_tau], minlength=n_rows)
    n_unstable = np.bincount(mother[from_tau & (mc["status"] <= 0)], minlength=n_rows)
    is_lep = from_tau & np.isin(np.abs(pdg), RADIATING_LEPTONS)
    n_lep = np.bincount(mother[is_lep], minlength=n_rows)
    taus = np.nonzero((np.abs(pdg) == TAU) & (n_dau > 0) & (n_unstable == 0) & (n_lep > 0))[0]
    if not len(taus):
        return truth
    tau_index = np.full(n_rows, -1)
    tau_index[taus] = np.arange(len(taus))
    tau_of = np.where(from_tau, tau_index[np.maximum(mother, 0)], -1)
    p = np.stack([mc["px"], mc["py"], mc["pz"], mc["E"]], axis=1).astype(np.float64)
    mass = mc["mass"].astype(np.float64)
    # the lepton rows of each radiating decay in record order; one emission round per lepton slot
    leptons = np.nonzero(is_lep & (tau_of >= 0))[0]
    order = np.lexsort((leptons, tau_of[leptons]))
    leptons = leptons[order]
    first = np.searchsorted(tau_of[leptons], tau_of[leptons], side="left")
    rank = np.arange(len(leptons)) - first
    photons_p, photons_tau, photons_from = [], [], []
    for slot in range(int(rank.max()) + 1):  # at most 3 (tau -> 3 mu)
        lep = leptons[rank == slot]
        # the photons emitted in earlier rounds are daughters of their decay from now on
        if photons_p:
            all_p = np.concatenate([p, *photons_p])
            all_tau = np.concatenate([tau_of, *photons_tau])
            all_mass = np.concatenate([mass, np.zeros(sum(len(x) for x in photons_p))])
        else:
            all_p, all_tau, all_mass = p, tau_of, mass
        all_p, photon = _emit(all_p, all_mass, all_tau, lep, len(taus), k_min, rng)
        p = all_p[:n_rows]
        done = n_rows
        for i, block in enumerate(photons_p):
            photons_p[i] = all_p[done:done + len(block)]
            done += len(block)
        emitted = photon[:, 3] > 0
        photons_p.append(photon[emitted])
        photons_tau.append(tau_of[lep[emitted]])
        photons_from.append(lep[emitted])
    new_p = np.concatenate(photons_p)
    source = np.concatenate(photons_from)  # the lepton row each photon came off
    if not len(new_p):
        columns = {**mc, "px": p[:, 0], "py": p[:, 1], "pz": p[:, 2], "E": p[:, 3]}
        return _rebuild(truth, offsets, columns)
    new_evt = evt[source]
    new_cols = {
        "pdg": np.full(len(new_p), PHOTON), "status": np.full(len(new_p), DECAY_PRODUCT),
        "mother": mother[source] - offsets[new_evt],
        "px": new_p[:, 0], "py": new_p[:, 1], "pz": new_p[:, 2], "E": new_p[:, 3], "mass": np.zeros(len(new_p)),
        **{f: mc[f][source] for f in ("x", "y", "z", "t")},
    }
    old_cols = {**mc, "px": p[:, 0], "py": p[:, 1], "pz": p[:, 2], "E": p[:, 3]}
    # append per event: stable sort of (event, old rows before new rows)
    order = np.argsort(np.concatenate([evt, new_evt]), kind="stable")
    columns = {f: np.concatenate([np.asarray(old_cols[f]), np.asarray(new_cols[f])])[order] for f in MC_FIELDS}
    counts = np.diff(offsets) + np.bincount(new_evt, minlength=n_events)
    new_offsets = np.concatenate([[0], np.cumsum(counts)])
    return _rebuild(truth, new_offsets, columns)


def _rebuild(truth: ak.Array, offsets: np.ndarray, columns: dict[str, np.ndarray]) -> ak.Array:
    """A truth record with new ``mc`` columns and the event-level fields of ``truth``."""
    beam = np.stack([ak.to_numpy(truth[f]) for f in BEAM_FIELDS], axis=1)
    out = truth_from_flat(offsets, columns, beam, signal_index=ak.to_numpy(truth.signal_index), weight=ak.to_numpy(truth.weight))
    for field in truth.fields:  # anything a generator added beyond the standard record
        if field not in out.fields:
            out = ak.with_field(out, truth[field], field)
    return out
