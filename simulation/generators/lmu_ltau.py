"""The L_mu - L_tau Z': widths, branching fractions and the e+e- -> mu+ mu- Z' matrix element.

Model (He, Joshi, Lew, Volkas, PRD 43 (1991) R22; the MadGraph model basf2 ships,
generators/madgraph/models/Lmu_minus_Ltau_UFO, written for BaBar PRD 94 011102): a vector Z' with
coupling g' to the muon and tau vector currents and to the left-handed nu_mu, nu_tau. Partial widths
(the UFO's decays.py):

    Gamma(Z' -> l+ l-)     = g'^2 M / (12 pi) (1 + 2 m_l^2 / M^2) sqrt(1 - 4 m_l^2 / M^2),   l = mu, tau,
    Gamma(Z' -> nu nubar)  = g'^2 M / (24 pi) per flavour (nu_mu, nu_tau; one helicity).

"vanilla": the Z' decays only as above (BR(inv) = BR(nu nu), 1 below 2 m_mu, 1/2 above, ~1/3 above
2 m_tau); "fully invisible": a dark-fermion channel makes BR(inv) = 1.

Process e-(p1) e+(p2) -> gamma*(q) -> mu-(k1) mu+(k2) Z'(k), the Z' off either muon line (two
diagrams, their interference kept; the Z-boson s-channel, 1e-3 of the photon's at 10.58 GeV, is left out):

    M = (e^2 g' / s) [vbar(p2) gamma_a u(p1)] ubar(k1) O^{b a} v(k2) eps*_b(k),
    O^{b a} = gamma^b (k1sl + ksl + m) gamma^a / ((k1 + k)^2 - m^2) + gamma^a (-k2sl - ksl + m) gamma^b / ((k2 + k)^2 - m^2).

Spin sum (electron mass neglected, Z' polarisations summed with -g_bb': the k_b k_b' / M^2 term
drops because the muon vector current is conserved, which ``ward_identity`` checks):

    (1/4) sum |M|^2 = e^4 g'^2 / (4 s^2) L_{a a'} H^{a a'},
    L^{a a'} = Tr[p2sl gamma^a p1sl gamma^a'] = 4 (p1^a p2^a' + p2^a p1^a' - g^{a a'} p1.p2),
    H^{a a'} = -g_bb Tr[(k1sl + m) O^{b a} (k2sl - m) Obar^{b a'}],   Obar = gamma^0 O^dagger gamma^0,

evaluated with explicit Dirac matrices, vectorised over events (numpy). With the Z' mass -> 0 and the
muon mass -> 0 this is e+e- -> q qbar g's (x1^2 + x2^2) / ((1 - x1)(1 - x2)); with both masses it is the
crossing of q qbar -> V1 V2 (``massless_muon_density``, used as the independent check in the tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from belle_rare.core.units import pdg_mass
from belle_rare.simulation.generators.phase_space import three_body

MUON_MASS = pdg_mass(13)
TAU_MASS = pdg_mass(15)
# hbar^2 c^2 in GeV^2 nb (PDG): converts a cross section in GeV^-2 to nb
GEV2_NB = 0.3893794e6
_CHUNK = 4096  # events per matrix-element block: the (n, 4, 4, 4, 4) complex arrays stay ~16 MB

# Dirac representation, metric (+, -, -, -); four-vectors are (px, py, pz, E) as everywhere in the product
_I2, _Z2 = np.eye(2), np.zeros((2, 2))
_PAULI = [np.array([[0, 1], [1, 0]], complex), np.array([[0, -1j], [1j, 0]]), np.array([[1, 0], [0, -1]], complex)]
GAMMA = np.array([np.block([[_I2, _Z2], [_Z2, -_I2]]).astype(complex)]
                 + [np.block([[_Z2, s], [-s, _Z2]]) for s in _PAULI])  # gamma^mu, mu = 0..3
METRIC = np.array([1.0, -1.0, -1.0, -1.0])


def _upper(p4: np.ndarray) -> np.ndarray:
    """(px, py, pz, E) rows -> contravariant components (E, px, py, pz)."""
    return np.concatenate([p4[:, 3:4], p4[:, :3]], axis=1)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[:, 3] * b[:, 3] - np.sum(a[:, :3] * b[:, :3], axis=1)


def slash(p4: np.ndarray) -> np.ndarray:
    """p-slash = gamma^mu p_mu, ``(n, 4, 4)``."""
    return np.einsum("nm,mij->nij", _upper(p4) * METRIC, GAMMA)


def partial_widths(mass: float | np.ndarray, coupling: float = 1.0) -> dict[str, np.ndarray]:
    """Z' partial widths (GeV) of the vanilla L_mu - L_tau model: nu nubar (mu and tau flavours), mu mu, tau tau."""
    m = np.asarray(mass, dtype=float)
    out = {"nunu": 2 * coupling**2 * m / (24 * math.pi)}
    for name, ml in (("mumu", MUON_MASS), ("tautau", TAU_MASS)):
        r = np.clip(1 - 4 * ml**2 / m**2, 0.0, None)
        out[name] = np.where(m > 2 * ml, coupling**2 * m / (12 * math.pi) * (1 + 2 * ml**2 / m**2) * np.sqrt(r), 0.0)
    return out


def invisible_branching_fraction(mass: float | np.ndarray, model: str) -> np.ndarray:
    """BR(Z' -> invisible): nu nubar over the total in "vanilla", 1 in "fully_invisible"."""
    if model == "fully_invisible":
        return np.ones_like(np.asarray(mass, dtype=float))
    if model != "vanilla":
        raise ValueError(f"Z' model '{model}': choose vanilla or fully_invisible")
    widths = partial_widths(mass)
    return widths["nunu"] / sum(widths.values())


def born_muon_pair_density(p1: np.ndarray, p2: np.ndarray, k1: np.ndarray, k2: np.ndarray, alpha: float) -> np.ndarray:
    """(1/4) sum |M|^2 of e+e- -> gamma* -> mu+ mu- from the same traces (the tests' check of the tensors)."""
    s = _dot(p1 + p2, p1 + p2)
    a, b = slash(k1) + MUON_MASS * np.eye(4), slash(k2) - MUON_MASS * np.eye(4)
    h = np.einsum("nij,ajk,nkl,cli->nac", a, GAMMA, b, GAMMA)
    return (4 * math.pi * alpha) ** 2 / (4 * s * s) * _contract_lepton(p1, p2, h)


def _contract_lepton(p1: np.ndarray, p2: np.ndarray, h: np.ndarray) -> np.ndarray:
    """L_{a a'} H^{a a'} for massless e-(p1) e+(p2)."""
    u1, u2 = _upper(p1), _upper(p2)
    lep = 4 * (u1[:, :, None] * u2[:, None, :] + u2[:, :, None] * u1[:, None, :]
               - np.diag(METRIC)[None] * _dot(p1, p2)[:, None, None])
    lower = METRIC[:, None] * METRIC[None, :]
    return np.real(np.einsum("nab,nab->n", lep * lower, h))


def muon_tensor(k1: np.ndarray, k2: np.ndarray, k: np.ndarray) -> np.ndarray:
    """H^{a a'} of the module docstring, ``(n, 4, 4)`` complex (Z' polarisations summed)."""
    m = MUON_MASS
    one = np.eye(4)
    d1 = _dot(k1 + k, k1 + k) - m * m
    d2 = _dot(k2 + k, k2 + k) - m * m
    s1 = (slash(k1 + k) + m * one) / d1[:, None, None]
    s2 = (-slash(k2 + k) + m * one) / d2[:, None, None]
    # O[n, b, a] = gamma^b s1 gamma^a + gamma^a s2 gamma^b (batched 4x4 products: matmul, not einsum, for speed)
    s1_ga = s1[:, None] @ GAMMA[None]                                  # (n, a, 4, 4)
    s2_gb = s2[:, None] @ GAMMA[None]                                  # (n, b, 4, 4)
    o = GAMMA[None, :, None] @ s1_ga[:, None] + GAMMA[None, None, :] @ s2_gb[:, :, None]
    # Obar = gamma^0 O^dagger gamma^0
    obar = GAMMA[0] @ np.conj(np.swapaxes(o, -1, -2)) @ GAMMA[0]
    left = (slash(k1) + m * one)[:, None, None] @ o                    # (n, b, a, 4, 4)
    right = (slash(k2) - m * one)[:, None, None] @ obar                # (n, b, c, 4, 4)
    # Tr[left^{b a} right^{b c}] = sum_ik left_ik right_ki
    right_t = np.swapaxes(right, -1, -2).reshape(len(k1), 4, 4, 16)
    traces = left.reshape(len(k1), 4, 4, 16) @ np.swapaxes(right_t, -1, -2)   # (n, b, a, c)
    return -np.einsum("b,nbac->nac", METRIC, traces)


def matrix_element_squared(
    p1: np.ndarray, p2: np.ndarray, k1: np.ndarray, k2: np.ndarray, k: np.ndarray,
    coupling: float = 1.0, alpha: float = 1 / 137.035999,
) -> np.ndarray:
    """Spin-averaged |M|^2 of e-(p1) e+(p2) -> mu-(k1) mu+(k2) Z'(k), rows of (px, py, pz, E) in any frame."""
    out = np.empty(len(k1))
    for lo in range(0, len(k1), _CHUNK):
        sl = slice(lo, lo + _CHUNK)
        s = _dot(p1[sl] + p2[sl], p1[sl] + p2[sl])
        h = muon_tensor(k1[sl], k2[sl], k[sl])
        out[sl] = (4 * math.pi * alpha) ** 2 * coupling**2 / (4 * s * s) * _contract_lepton(p1[sl], p2[sl], h)
    return out


def ward_identity(k1: np.ndarray, k2: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Per event, max over a of |Tr[(k1sl + m) W^a (k2sl - m) Wbar^a]| with W^a = k_b O^{b a}: the
    spin-summed |amplitude|^2 with the Z' polarisation replaced by its momentum. Current conservation
    makes it zero when the two diagrams are summed with the same sign (opposite sign: ~100 at 3 GeV)."""
    m = MUON_MASS
    one = np.eye(4)
    d1 = _dot(k1 + k, k1 + k) - m * m
    d2 = _dot(k2 + k, k2 + k) - m * m
    ks = slash(k)
    s1 = (slash(k1 + k) + m * one) / d1[:, None, None]
    s2 = (-slash(k2 + k) + m * one) / d2[:, None, None]
    o = np.einsum("nij,njk,akl->nail", ks, s1, GAMMA) + np.einsum("aij,njk,nkl->nail", GAMMA, s2, ks)
    obar = GAMMA[0] @ np.conj(np.swapaxes(o, -1, -2)) @ GAMMA[0]
    t = np.einsum("nij,najk,nkl,nali->na", slash(k1) + m * one, o, slash(k2) - m * one, obar)
    return np.abs(t).max(axis=1)


def massless_muon_density(s: np.ndarray, x1: np.ndarray, x2: np.ndarray, mass: float) -> np.ndarray:
    """Orientation-averaged shape for massless muons: the crossing of q qbar -> V1 V2
    (t/u + u/t + 2 (m1^2 + m2^2) s12 / (t u) - m1^2 m2^2 (1/t^2 + 1/u^2)) with V1 = gamma*(s), V2 = Z'(mass),
    t = (k2 + k)^2 = s (1 - x1), u = (k1 + k)^2 = s (1 - x2), s12 = (k1 + k2)^2."""
    t, u = s * (1 - x1), s * (1 - x2)
    s12 = s * (x1 + x2 - 1) + mass**2
    return t / u + u / t + 2 * (s + mass**2) * s12 / (t * u) - s * mass**2 * (1 / t**2 + 1 / u**2)


# ---------------------------------------------------------------- phase space and cross section
def dalitz_log_phase_space(
    sqrt_s: np.ndarray, mass: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """mu-(k1), mu+(k2), Z'(k) in the CM frame (+z: the e- beam) and a weight whose mean estimates Phi_3.

    The matrix element peaks where a propagator (k1 + k)^2 - m^2 or (k2 + k)^2 - m^2 is small (Z'
    collinear with a muon, or soft), so the two Dalitz invariants t - m^2 = (k2 + k)^2 - m^2 and
    u - m^2 = (k1 + k)^2 - m^2 are drawn uniform in their logarithms over their full ranges (points outside
    the Dalitz region get weight 0) and the event is given a uniformly random orientation. Orientation-
    integrated, dPhi_3 = dt du / (128 pi^3 s), so weight = (t - m^2)(u - m^2) ln(r_t) ln(r_u) / (128 pi^3 s).
    """
    sqrt_s = np.asarray(sqrt_s, dtype=float)
    n = len(sqrt_s)
    mass = np.broadcast_to(np.asarray(mass, dtype=float), (n,))
    m = MUON_MASS
    s = sqrt_s**2
    lo = (m + mass) ** 2 - m * m
    hi = (sqrt_s - m) ** 2 - m * m
    log_range = np.log(hi / lo)
    t_m = lo * np.exp(rng.uniform(size=n) * log_range)
    u_m = lo * np.exp(rng.uniform(size=n) * log_range)
    e1 = (s - t_m) / (2 * sqrt_s)  # t = (P - k1)^2 = s + m^2 - 2 sqrt(s) E1
    e2 = (s - u_m) / (2 * sqrt_s)
    e3 = sqrt_s - e1 - e2
    q1 = np.sqrt(np.clip(e1**2 - m * m, 0.0, None))
    q2 = np.sqrt(np.clip(e2**2 - m * m, 0.0, None))
    q3_sq = e3**2 - mass**2
    cos12 = np.divide(q3_sq - q1**2 - q2**2, 2 * q1 * q2, out=np.full(n, 2.0), where=q1 * q2 > 0)
    inside = (e1 > m) & (e2 > m) & (q3_sq > 0) & (np.abs(cos12) <= 1)
    cos12 = np.clip(cos12, -1.0, 1.0)
    # event plane: k1 along a random direction, k2 at angle acos(cos12) from it, random azimuth about k1
    axis = _random_unit_vectors(n, rng)
    helper = np.where(np.abs(axis[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    e_perp = np.cross(axis, helper)
    e_perp /= np.linalg.norm(e_perp, axis=1, keepdims=True)
    e_perp2 = np.cross(axis, e_perp)
    phi = rng.uniform(0.0, 2 * np.pi, n)
    sin12 = np.sqrt(1 - cos12**2)
    dir2 = cos12[:, None] * axis + sin12[:, None] * (np.cos(phi)[:, None] * e_perp + np.sin(phi)[:, None] * e_perp2)
    p1 = q1[:, None] * axis
    p2 = q2[:, None] * dir2
    k1 = np.column_stack([p1, e1])
    k2 = np.column_stack([p2, e2])
    k = np.column_stack([-(p1 + p2), e3])
    weight = np.where(inside, t_m * u_m * log_range**2 / (128 * np.pi**3 * s), 0.0)
    return k1, k2, k, weight


def sequential_phase_space(
    sqrt_s: np.ndarray, mass: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The sequential three-body phase space (phase_space.three_body, m12 uniform) with the muon masses."""
    return three_body(sqrt_s, MUON_MASS, MUON_MASS, mass, rng)


# Below this Z' mass the matrix element peaks where the Z' is collinear with a muon or soft, and the
# log-Dalitz phase space unweights 2-50 x faster than the sequential one (w_max / mean 3.1 against 243
# at 0.05 GeV); above it the sequential one is faster (3.5 against 6.5 at 3 GeV, 2.1 against 16 at 8 GeV)
LOG_PHASE_SPACE_BELOW = 2.0  # GeV


def default_phase_space(mass: float) -> "PhaseSpace":
    """The phase-space sampler that unweights best at this Z' mass."""
    return dalitz_log_phase_space if mass < LOG_PHASE_SPACE_BELOW else sequential_phase_space


def _random_unit_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    c = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(0.0, 2 * np.pi, n)
    s = np.sqrt(1 - c * c)
    return np.column_stack([s * np.cos(phi), s * np.sin(phi), c])


def beams_cm(sqrt_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """e-(+z) and e+ four-momenta in the CM frame, electron mass neglected."""
    e = np.asarray(sqrt_s, dtype=float) / 2
    zero = np.zeros_like(e)
    return np.column_stack([zero, zero, e, e]), np.column_stack([zero, zero, -e, e])


def zprime_masses(
    sqrt_s: np.ndarray, mass: float, width: float, model: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Per-event Z' masses and the weight that makes each event count sigma x BR(invisible).

    ``width`` = 0: narrow Z' of mass ``mass`` (weight BR(inv)); ``width`` > 0: total width in GeV, m drawn
    from the fixed-width Breit-Wigner in m^2 over the kinematic range (below sqrt(s) - 2 m_mu) with the
    invisible partial width running as m (neutrinos and a light dark-fermion pair alike):
    rho(m^2) = (1/pi) m Gamma_inv(m) / ((m^2 - M^2)^2 + M^2 Gamma^2), which integrates to BR(inv) as width -> 0;
    the weight is rho over the proposal density.
    """
    n = len(sqrt_s)
    br = float(invisible_branching_fraction(mass, model))
    if width <= 0:
        return np.full(n, float(mass)), np.full(n, br)
    # the whole kinematic range (1 MeV to sqrt(s) - 2 m_mu): a window of +-k Gamma would lose
    # (2 / pi) arctan(2k)-complement of the rate (3 % at k = 10) even as Gamma -> 0
    m_lo = np.full(n, 1e-3)
    m_hi = sqrt_s - 2 * MUON_MASS - 1e-6
    scale = mass * width
    a_lo, a_hi = np.arctan((m_lo**2 - mass**2) / scale), np.arctan((m_hi**2 - mass**2) / scale)
    m_z = np.sqrt(mass**2 + scale * np.tan(a_lo + rng.uniform(size=n) * (a_hi - a_lo)))
    # rho / proposal = (fraction of the Cauchy inside the range) x BR(inv) x m^2 / M^2
    return m_z, (a_hi - a_lo) / np.pi * br * m_z**2 / mass**2


PhaseSpace = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


def event_weights(
    sqrt_s: np.ndarray, mass: float, width: float, model: str, rng: np.random.Generator,
    alpha: float, coupling: float = 1.0, phase_space: PhaseSpace | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted e+e- -> mu mu Z'(-> invisible) events at each ``sqrt_s``: (k1, k2, k, d sigma in nb).

    The mean of the last array estimates sigma x BR(invisible) in nb (``zprime_masses`` for the width);
    ``phase_space(sqrt_s, m_z, rng)`` returns CM momenta (+z: the e- beam) and weights averaging to Phi_3
    (default: ``default_phase_space(mass)``).
    """
    sqrt_s = np.asarray(sqrt_s, dtype=float)
    n = len(sqrt_s)
    m_z, bw_weight = zprime_masses(sqrt_s, mass, width, model, rng)
    k1, k2, k, ps_weight = (phase_space or default_phase_space(mass))(sqrt_s, m_z, rng)
    p1, p2 = beams_cm(sqrt_s)
    me = np.zeros(n)
    inside = ps_weight > 0
    me[inside] = matrix_element_squared(p1[inside], p2[inside], k1[inside], k2[inside], k[inside], coupling, alpha)
    dsigma = ps_weight * me * bw_weight / (2 * sqrt_s**2) * GEV2_NB
    return k1, k2, k, dsigma


def cross_section(
    sqrt_s: float, mass: float, width: float = 0.0, model: str = "fully_invisible", coupling: float = 1.0,
    alpha: float = 1 / 137.035999, points: int = 100_000, seed: int = 0,
) -> tuple[float, float]:
    """sigma(e+e- -> mu+ mu- Z') x BR(Z' -> invisible) in nb at fixed ``sqrt_s`` (no ISR) and its MC error."""
    rng = np.random.default_rng(seed)
    *_, dsigma = event_weights(np.full(points, float(sqrt_s)), mass, width, model, rng, alpha, coupling)
    return float(dsigma.mean()), float(dsigma.std() / math.sqrt(points))


def coupling_limit(sigma_limit: float | np.ndarray, sigma_at_unit_coupling: float | np.ndarray) -> np.ndarray:
    """g' upper limit from a limit on sigma x BR(inv) and the model's sigma x BR(inv) at g' = 1 (same units).

    sigma x BR scales exactly as g'^2 for a narrow Z' and for a fixed Gamma / M (BR(inv) does not depend
    on g'), so g'_UL = sqrt(sigma_UL / sigma(g' = 1)): the one place a cross-section limit becomes a coupling.
    """
    return np.sqrt(np.asarray(sigma_limit, dtype=float) / np.asarray(sigma_at_unit_coupling, dtype=float))
