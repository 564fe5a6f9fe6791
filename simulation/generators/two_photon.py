"""e+e- -> e+e- l+l- through two photons (equivalent-photon approximation over the full Q^2 range).

No installed generator covers this at B-factory energies: Pythia's photon-photon machinery needs
W_gg >= 5 GeV (``Photon:Wmin`` has that minimum), while the lepton pairs that matter here have
W of 0.5-3 GeV. So this small generator does the multiperipheral (two-photon) diagram only:

* each beam lepton radiates a transverse photon with energy fraction x and virtuality Q^2 from the
  Budnev et al. density (Phys. Rep. 15 (1975) 181; Frixione et al., PLB 319 (1993) 339)
      dn = alpha / pi  dx / x  dQ^2 / Q^2 [ 1 - x + x^2 / 2 - (1 - x) Q2min / Q^2 ],
  over the whole kinematic range Q2min ~ m_e^2 x^2 / (1 - x) < Q^2 < Q2max ~ s (1 - x), so the
  scattered e+- reach any angle (single- and double-tag events); its angle follows from Q^2 exactly;
* the photons fuse into l+ l- with the transverse gamma* gamma cross section at the exact
  W^2 = (q1 + q2)^2 and the exact flux factor sqrt((q1.q2)^2 - q1^2 q2^2) (Budnev et al.):
      sigma_T(W^2, Q^2) = 4 pi alpha^2 / (W^2 + Q^2) { [x^2 + (1-x)^2 + a (1-x) - a^2/2] L
                                                       - beta [1 + a (1-x) - 4 x (1-x)] },
  x = Q^2 / (Q^2 + W^2), a = 4 m^2 / (Q^2 + W^2), L = ln((1 + beta) / (1 - beta)), which is
  4 pi^2 alpha F_T / Q^2 with F_T = F_2 - F_L the lowest-order QED structure functions of a real
  photon with the full lepton-mass dependence (Nisius, Phys. Rep. 332 (2000) 165; Nisius and
  Seymour, hep-ph/9812281) and the Breit-Wheeler cross section at Q^2 = 0;
  when both photons are virtual the two suppressions are multiplied (an approximation);
* the lepton angle in the pair frame is drawn from the real-photon d sigma / d cos(theta*).

What it leaves out, and where it degrades: bremsstrahlung and conversion diagrams, the
identical-particle interference of e+e- e+e-, longitudinal photons (sigma_L, sigma_TL: F_L / F_2 is
at most ~ 1/4 at large Q^2) and the cos(2 phi) correlation between the two scattering planes. These
are small where Q^2 << W^2 (untagged events, almost all of the cross section) and grow to O(20 %)
where Q^2 ~ W^2 (the tagged tail). For W > 0.5 GeV the e+e- mu+mu- cross section comes out at 18.3 nb
(the Belle II Physics Book's complete lowest-order value: 18.9 nb) with no Q^2 cut-off tuned;
see ``tests/test_two_photon.py``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import particle
from scipy.constants import fine_structure as ALPHA

from belle_rare.simulation.generators.isr import ELECTRON_MASS
from belle_rare.simulation.generators.phase_space import boost, decay_two_body, directions_about_axis
from belle_rare.simulation.generators.unweighting import hit_or_miss

LEPTON_MASS = {11: ELECTRON_MASS, 13: particle.Particle.from_pdgid(13).mass / 1000.0}


def q2_range(x: np.ndarray, energy: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """Kinematic limits of Q^2 = -(p - p')^2 for a beam lepton of ``energy`` keeping (1 - x) of it.

    Q^2 = 2 (E E' -+ p p') - 2 m^2; the lower limit is written without the cancellation in E E' - p p'.
    """
    m2 = ELECTRON_MASS**2
    e_out = (1 - x) * energy
    p_in, p_out = np.sqrt(energy**2 - m2), np.sqrt(np.clip(e_out**2 - m2, 0.0, None))
    q2_min = 2 * (m2 * (energy**2 + e_out**2) - m2 * m2) / (energy * e_out + p_in * p_out) - 2 * m2
    return q2_min, 2 * (energy * e_out + p_in * p_out) - 2 * m2


def photon_flux(x: np.ndarray, q2_max: np.ndarray) -> np.ndarray:
    """Transverse photon spectrum f(x) of an electron (per unit x) for Q2min < Q^2 < ``q2_max``, zero where empty.

    The integral over Q^2 of ``photon_density``: alpha / (pi x) [(1 - x + x^2 / 2) ln(Q2max / Q2min)
    - (1 - x)(1 - Q2min / Q2max)], Q2min = m_e^2 x^2 / (1 - x).
    """
    x = np.asarray(x, dtype=float)
    q2_min = ELECTRON_MASS**2 * x**2 / (1.0 - x)
    ok = q2_max > q2_min
    q2_min = np.where(ok, q2_min, 1.0)
    q2_max = np.where(ok, q2_max, 1.0)
    f = ALPHA / (2 * np.pi) * ((1 + (1 - x) ** 2) / x * np.log(q2_max / q2_min)
                               - 2 * ELECTRON_MASS**2 * x * (1 / q2_min - 1 / q2_max))
    return np.where(ok, np.clip(f, 0.0, None), 0.0)


def photon_density(x: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Budnev transverse photon density dn / dx dQ^2 (GeV^-2) with Q2min = m_e^2 x^2 / (1 - x)."""
    q2_min = ELECTRON_MASS**2 * x**2 / (1.0 - x)
    return np.where(q2 > q2_min, ALPHA / (np.pi * x * q2) * (1 - x + x * x / 2 - (1 - x) * q2_min / q2), 0.0)


def full_photon_flux(x: np.ndarray, sqrt_s: np.ndarray | float) -> np.ndarray:
    """``photon_flux`` over the whole kinematic Q^2 range of a beam of energy sqrt(s) / 2."""
    return photon_flux(x, q2_range(x, np.asarray(sqrt_s) / 2)[1])


def sample_q2(x: np.ndarray, q2_max: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Q^2 from ``photon_density`` at fixed x on [Q2min, q2_max]: ln Q^2 uniform, then hit-or-miss on the bracket.

    The bracket 1 - x + x^2/2 - (1 - x) Q2min / Q^2 is at most 1 - x + x^2/2 and (for x < 1) is
    positive above Q2min, so the acceptance is >= 1 - 1 / ln(Q2max / Q2min) ~ 95 % here.
    """
    x = np.asarray(x, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        q2_min = ELECTRON_MASS**2 * x**2 / (1.0 - x)
        log_range = np.log(q2_max / q2_min)
    out = np.empty(x.size)
    # x within m_e / E of 1 leaves no Q^2 range (Q2min >= q2_max; the flux is zero there): such an
    # entry gets q2_max without sampling -- hit-or-miss below Q2min would never accept and never end
    empty = ~(log_range > 0)
    out[empty] = np.asarray(np.broadcast_to(q2_max, x.shape))[empty]
    pending = np.flatnonzero(~empty)
    while pending.size:
        xp = x[pending]
        q2 = q2_min[pending] * np.exp(rng.uniform(size=pending.size) * log_range[pending])
        bracket_max = 1 - xp + xp * xp / 2
        keep = rng.uniform(size=pending.size) * bracket_max < bracket_max - (1 - xp) * q2_min[pending] / q2
        out[pending[keep]] = q2[keep]
        pending = pending[~keep]
    return out


def _bracket_integral(x: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Integral over ln Q^2 from ``low`` to ``high`` of the bracket of ``photon_density``, 1 - x + x^2/2 - (1 - x) Q2min / Q^2."""
    q2_min = ELECTRON_MASS**2 * x**2 / (1.0 - x)
    return (1 - x + x * x / 2) * np.log(high / low) - (1 - x) * q2_min * (1 / low - 1 / high)


def tag_q2(x: np.ndarray, energy: np.ndarray | float, cos_theta_max: float) -> np.ndarray:
    """Q^2 at which a beam lepton of ``energy`` keeping (1 - x) of it scatters to cos theta = ``cos_theta_max``."""
    m2 = ELECTRON_MASS**2
    e_out = (1 - x) * energy
    p_in, p_out = np.sqrt(energy**2 - m2), np.sqrt(np.clip(e_out**2 - m2, 0.0, None))
    return 2 * (energy * e_out - m2 - cos_theta_max * p_in * p_out)


def sample_q2_steered(x: np.ndarray, energy: np.ndarray | float, cos_theta_max: float, share: float,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Q^2 drawn with probability ``share`` from ``photon_density`` restricted to Q^2 > ``tag_q2`` (the
    scattered lepton at |cos theta| < cos_theta_max or backwards), else over the full range, and the
    ratio r = true / proposal density: 1 / ((1 - share) + share [Q^2 > tag_q2] / F), F the restricted share
    of the density (analytic, ``_bracket_integral``). Where the restricted range is empty, r = 1."""
    x = np.asarray(x, dtype=float)
    q2_min, q2_max = ELECTRON_MASS**2 * x**2 / (1.0 - x), q2_range(x, energy)[1]
    q2_low = tag_q2(x, energy, cos_theta_max)
    usable = (q2_low > q2_min) & (q2_low < q2_max)
    full = sample_q2(x, q2_max, rng)
    low = np.where(usable, q2_low, q2_min)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = np.where(usable, _bracket_integral(x, low, q2_max) / _bracket_integral(x, q2_min, q2_max), 1.0)
    # the restricted draw: ln Q^2 uniform above q2_low, hit-or-miss on the bracket (as sample_q2)
    out = full.copy()
    pending = np.flatnonzero(usable & (rng.uniform(size=x.size) < share))
    while pending.size:
        xp = x[pending]
        q2 = low[pending] * np.exp(rng.uniform(size=pending.size) * np.log(q2_max[pending] / low[pending]))
        bracket_max = 1 - xp + xp * xp / 2
        keep = rng.uniform(size=pending.size) * bracket_max < bracket_max - (1 - xp) * q2_min[pending] / q2
        out[pending[keep]] = q2[keep]
        pending = pending[~keep]
    ratio = np.where(usable, 1.0 / ((1 - share) + share * (out >= low) / fraction), 1.0)
    return out, ratio


def sigma_transverse(w2: np.ndarray, q2: np.ndarray, lepton_mass: float) -> np.ndarray:
    """gamma* gamma -> l+ l- for a transverse photon of virtuality ``q2`` on a real one (GeV^-2; Gilman flux).

    4 pi^2 alpha F_T / Q^2, F_T = F_2 - F_L of the lowest-order QED photon structure functions with the
    full lepton-mass dependence (see the module docstring); equal to ``sigma_gg`` at Q^2 = 0.
    """
    w2 = np.asarray(w2, dtype=float)
    q2 = np.asarray(q2, dtype=float)
    above = w2 > 4 * lepton_mass**2
    w2 = np.where(above, w2, 1.0)
    beta = np.sqrt(np.clip(1 - 4 * lepton_mass**2 / w2, 0.0, None))
    log = np.log((1 + beta) / np.where(beta < 1, 1 - beta, 1.0))
    x = q2 / (q2 + w2)
    a = 4 * lepton_mass**2 / (q2 + w2)
    bracket = (x * x + (1 - x) ** 2 + a * (1 - x) - a * a / 2) * log - beta * (1 + a * (1 - x) - 4 * x * (1 - x))
    return np.where(above, 4 * np.pi * ALPHA**2 / (w2 + q2) * bracket, 0.0)


def sigma_gg(w2: np.ndarray, lepton_mass: float) -> np.ndarray:
    """Breit-Wheeler cross section gamma gamma -> l+ l- (GeV^-2) at invariant mass squared ``w2``."""
    w2 = np.asarray(w2, dtype=float)
    r = np.clip(4 * lepton_mass**2 / w2, 0.0, 1.0)
    beta = np.sqrt(1 - r)
    log = np.log((1 + beta) / np.where(beta < 1, 1 - beta, 1.0))
    return np.where(r < 1, 4 * np.pi * ALPHA**2 / w2 * ((1 + r - r * r / 2) * log - beta * (1 + r)), 0.0)


def dsigma_dcos(cos_theta: np.ndarray, w2: np.ndarray, lepton_mass: float) -> np.ndarray:
    """d sigma / d cos(theta*) of gamma gamma -> l+ l- (GeV^-2), theta* the l- angle to a photon in the pair frame.

    From the spin-averaged |M|^2 = 2 e^4 [b/a + a/b + 2r (1/a + 1/b) - r^2 (1/a + 1/b)^2] with
    a, b = 1 -+ beta cos(theta*) and r = 4 m^2 / W^2 (e+e- -> gamma gamma crossed, Peskin-Schroeder 5.105).
    """
    c = np.asarray(cos_theta, dtype=float)
    r = 4 * lepton_mass**2 / np.asarray(w2, dtype=float)
    beta = np.sqrt(np.clip(1 - r, 0.0, None))
    a, b = 1 - beta * c, 1 + beta * c
    inv = 1 / a + 1 / b
    shape = b / a + a / b + 2 * r * inv - r * r * inv**2
    return np.pi * ALPHA**2 * beta / w2 * shape


def sample_cos_theta(w2: np.ndarray, lepton_mass: float, rng: np.random.Generator) -> np.ndarray:
    """cos(theta*) from ``dsigma_dcos``: proposals ~ 1 / (1 - beta^2 c^2) (the collinear peaks), then hit-or-miss."""
    w2 = np.asarray(w2, dtype=float)
    r = 4 * lepton_mass**2 / w2
    beta = np.sqrt(1 - r)
    out = np.empty(len(w2))
    pending = np.arange(len(w2))
    while pending.size:
        b = beta[pending]
        u = rng.uniform(-1, 1, pending.size) * np.arctanh(b) / b
        c = np.tanh(b * u) / b
        # shape <= (4 + 4 r) / (1 - beta^2 c^2): accept with the ratio
        envelope = np.pi * ALPHA**2 * b / w2[pending] * (4 + 4 * r[pending]) / (1 - b * b * c * c)
        keep = rng.uniform(size=pending.size) * envelope < dsigma_dcos(c, w2[pending], lepton_mass)
        out[pending[keep]] = c[keep]
        pending = pending[~keep]
    return out


def _fractions(tau: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.sqrt(tau) * np.exp(y), np.sqrt(tau) * np.exp(-y)


def sample_fractions(s: np.ndarray, w_min: float, lepton_mass: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Proposals (x1, x2) and their weights f(x1) f(x2) sigma_gg(x1 x2 s) / q (GeV^-2), f over the full Q^2 range.

    tau = x1 x2 = W^2 / s from q(tau) ~ 1 / tau^2 (sigma_gg falls like 1 / W^2 and f(x) like 1 / x),
    y = ln(x1 / x2) / 2 uniform in its range; dx1 dx2 = dtau dy. The mean weight is the collinear
    (Q^2 -> 0 kinematics) EPA cross section; ``sample_photons`` corrects it event by event.
    """
    s = np.asarray(s, dtype=float)
    tau_min = max(w_min**2, 4 * lepton_mass**2) / s
    z = 1 / tau_min - 1  # normalisation of 1 / tau^2 on [tau_min, 1]
    tau = 1 / (1 / tau_min - rng.uniform(size=s.size) * z)
    half_range = -np.log(tau) / 2
    y = rng.uniform(-1, 1, s.size) * half_range
    x1, x2 = _fractions(tau, y)
    sqrt_s = np.sqrt(s)
    weight = (full_photon_flux(x1, sqrt_s) * full_photon_flux(x2, sqrt_s) * sigma_gg(tau * s, lepton_mass)
              * z * tau**2 * 2 * half_range)
    return x1, x2, weight


def _scattered(energy: np.ndarray, x: np.ndarray, q2: np.ndarray, phi: np.ndarray, sign: float) -> np.ndarray:
    """The beam lepton (along ``sign`` x z) after radiating a photon of fraction x and virtuality Q^2."""
    m2 = ELECTRON_MASS**2
    e_out = (1 - x) * energy
    p_in, p_out = np.sqrt(energy**2 - m2), np.sqrt(np.clip(e_out**2 - m2, 0.0, None))
    # p_out = 0 only at x -> 1, where the photon flux (hence the weight) vanishes
    cos = np.clip(np.divide(energy * e_out - m2 - q2 / 2, p_in * p_out, out=np.ones_like(e_out), where=p_out > 0), -1.0, 1.0)
    sin = np.sqrt(1 - cos * cos)
    return np.column_stack([p_out * sin * np.cos(phi), p_out * sin * np.sin(phi), sign * p_out * cos, e_out])


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[:, 3] * b[:, 3] - np.sum(a[:, :3] * b[:, :3], axis=1)


def sample_photons(sqrt_s: np.ndarray, w_min: float, lepton_mass: float,
                   rng: np.random.Generator, steer: tuple[float, float] | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Weighted proposals: the scattered (e-, e+) four-momenta (n, 4) and their weights (GeV^-2).

    Mean weight = the EPA cross section with W > ``w_min``: x1, x2 from ``sample_fractions``, each Q^2
    from its density over the full range, the azimuths uniform; the weight then takes the exact
    W^2 = (q1 + q2)^2 into sigma_T and the cut, times the flux-factor ratio sqrt(X) / (2 omega1 omega2).
    ``steer = (cos_theta_max, share)``: each Q^2 drawn with probability ``share`` above the Q^2 at which
    the scattered lepton reaches |cos theta| = cos_theta_max (``sample_q2_steered``), the weight times
    the density ratio, so the mean weight is unchanged (tag-enhanced production only).
    """
    s = sqrt_s**2
    x1, x2, weight = sample_fractions(s, w_min, lepton_mass, rng)
    energy = sqrt_s / 2
    n = sqrt_s.size
    if steer is None:
        q2 = [sample_q2(x, q2_range(x, energy)[1], rng) for x in (x1, x2)]
    else:
        (q2a, ra), (q2b, rb) = (sample_q2_steered(x, energy, steer[0], steer[1], rng) for x in (x1, x2))
        q2, weight = [q2a, q2b], weight * ra * rb
    e_minus = _scattered(energy, x1, q2[0], rng.uniform(0, 2 * np.pi, n), +1.0)
    e_plus = _scattered(energy, x2, q2[1], rng.uniform(0, 2 * np.pi, n), -1.0)
    p_in = np.sqrt(energy**2 - ELECTRON_MASS**2)
    zero = np.zeros(n)
    photon1 = np.column_stack([zero, zero, p_in, energy]) - e_minus
    photon2 = np.column_stack([zero, zero, -p_in, energy]) - e_plus
    q1q2 = _dot(photon1, photon2)
    w2 = 2 * q1q2 - q2[0] - q2[1]
    flux_ratio = np.sqrt(np.clip(q1q2**2 - q2[0] * q2[1], 0.0, None)) / (x1 * x2 * s / 2)
    real = sigma_gg(x1 * x2 * s, lepton_mass)
    real_at_w = sigma_gg(w2, lepton_mass)
    virtual = sigma_transverse(w2, q2[0], lepton_mass) * sigma_transverse(w2, q2[1], lepton_mass)
    virtual = np.divide(virtual, real_at_w * real, out=np.zeros(n), where=(w2 > w_min**2) & (real > 0) & (real_at_w > 0))
    return weight * virtual * flux_ratio, [e_minus, e_plus]


@functools.lru_cache(maxsize=16)
def max_weight(sqrt_s: float, w_min: float, lepton: int) -> float:
    """1.5 x the largest of 200,000 pilot weights at ``sqrt_s`` (the weights are bounded: max / mean ~ 3).

    The pilot has its own fixed random stream, so the bound, and every sample, is the same
    whether or not it was cached.
    """
    pilot = sample_photons(np.full(200_000, sqrt_s), w_min, LEPTON_MASS[lepton], np.random.default_rng(20_240_101))[0]
    return 1.5 * float(pilot.max())


def sample_events(sqrt_s: np.ndarray, lepton: int, w_min: float, rng: np.random.Generator,
                  tries_per_round: int = 16) -> tuple[np.ndarray, ...]:
    """Unweighted (e-, e+, l-, l+) four-momenta ``(n, 4)`` in the CM frame of each ``sqrt_s`` (e- beam along +z)."""
    sqrt_s = np.asarray(sqrt_s, dtype=float)
    m = LEPTON_MASS[lepton]
    # the weights grow with s: a pilot at sqrt(s) rounded up to 50 MeV bounds them, and is computed once
    w_max = max_weight(math.ceil(sqrt_s.max() * 20) / 20, w_min, lepton)
    n = sqrt_s.size

    def propose(idx: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        return sample_photons(sqrt_s[idx], w_min, m, rng)

    e_minus, e_plus = hit_or_miss(n, propose, w_max, rng, [(4,), (4,)], tries_per_round)
    return _with_pair(sqrt_s, e_minus, e_plus, m, rng)


# ---------------------------------------------------------------- tag-enhanced production (issue 11)
# tau -> 3 mu's e e mu mu background needs the scattered e+- inside the tracker (a tagged lepton faking
# the third muon, README "eemumu_tagged"): ~1 % of the events, of which the double tags that reach its
# window are 4e-4 of the cross section. The enhanced production samples the events from the true density
# times a bias b = (1, factor, double_factor) by the number of tagged leptons and weights each back by
# N(sqrt s) / b (mean 1), N the mean bias of the true events (a pilot's, ``tag_normalisation``).
TAG_PILOT_EVENTS = 400_000
TAG_GRID_STEP = 0.25  # GeV: N(sqrt s) tabulated on this grid and fitted (it falls by ~1.6 over the ISR range)
TAG_GRID_LOW = 7.0    # GeV: below the lowest sqrt(s') of the dedicated generators' ISR (x <= 0.5: 7.48 GeV)


def tagged_leptons(e_minus: np.ndarray, e_plus: np.ndarray, cos_theta_max: float) -> np.ndarray:
    """Number of scattered beam leptons (0-2) with |cos theta| < ``cos_theta_max`` in their hard-process frame."""
    def inside(p: np.ndarray) -> np.ndarray:
        return np.abs(p[:, 2]) < cos_theta_max * np.sqrt(np.sum(p[:, :3] ** 2, axis=1))
    return inside(e_minus).astype(np.int64) + inside(e_plus).astype(np.int64)


TagBias = tuple[float, float, float]  # (cos_theta_max, factor for one tagged lepton, factor for two)
# share of each photon's Q^2 proposals drawn in the tag range (``sample_q2_steered``): without it the
# hit-or-miss bound, set by the double tags, would be 261 x the plain one at double_factor 1000 (216 us of
# proposals per event; 37 x and 37 us with it)
TAG_PROPOSAL_SHARE = 0.5


def tag_bias(e_minus: np.ndarray, e_plus: np.ndarray, bias: TagBias) -> np.ndarray:
    """How much more often the enhanced production makes each event: 1, factor or double_factor by its tags."""
    cos_theta_max, factor, double_factor = bias
    return np.array([1.0, factor, double_factor])[tagged_leptons(e_minus, e_plus, cos_theta_max)]


@functools.lru_cache(maxsize=64)
def _tag_pilot(sqrt_s: float, w_min: float, lepton: int, bias: TagBias) -> tuple[float, float]:
    """(N, 1.5 x max of W x r x bias) from ``TAG_PILOT_EVENTS`` proposals at ``sqrt_s`` (their own fixed stream).

    N = E[W bias] / E[W] is the mean bias of the true (unweighted) events: the normalisation that gives
    the weights N / bias a mean of 1 (statistical precision ~0.5 % per pilot, tests/test_two_photon_bias.py).
    """
    rng = np.random.default_rng([20_240_101, int(round(sqrt_s * 1000))])
    # steered proposals, their weights W x r: sums over them are integrals over the true density
    weight, (e_minus, e_plus) = sample_photons(np.full(TAG_PILOT_EVENTS, sqrt_s), w_min, LEPTON_MASS[lepton], rng,
                                               steer=(bias[0], TAG_PROPOSAL_SHARE))
    biased = weight * tag_bias(e_minus, e_plus, bias)
    return float(biased.sum() / weight.sum()), 1.5 * float(biased.max())


@functools.lru_cache(maxsize=16)
def _tag_normalisation_fit(w_min: float, lepton: int, bias: TagBias, top: float) -> np.ndarray:
    """Cubic in sqrt(s) fitted to the pilots' N on a ``TAG_GRID_STEP`` grid from ``TAG_GRID_LOW`` to ``top``
    (pooling the grid's pilots: ~0.2 % on N where a single pilot has ~0.5 %)."""
    grid = np.arange(TAG_GRID_LOW, top + TAG_GRID_STEP / 2, TAG_GRID_STEP)
    values = [_tag_pilot(float(g), w_min, lepton, bias)[0] for g in grid]
    return np.polyfit(grid, values, 3)


def tag_normalisation(sqrt_s: np.ndarray, w_min: float, lepton: int, bias: TagBias) -> np.ndarray:
    """N(sqrt s) = E[bias] over the true events at each ``sqrt_s`` (``_tag_normalisation_fit``)."""
    sqrt_s = np.asarray(sqrt_s, dtype=float)
    top = max(math.ceil(float(sqrt_s.max()) / TAG_GRID_STEP) * TAG_GRID_STEP, 10.75)  # one fit for every chunk of a run
    return np.polyval(_tag_normalisation_fit(w_min, lepton, bias, top), sqrt_s)


def sample_tag_enhanced_events(sqrt_s: np.ndarray, lepton: int, w_min: float, rng: np.random.Generator,
                               bias: TagBias, tries_per_round: int = 16) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """As ``sample_events``, events with one (two) scattered e+- inside |cos theta| < cos_theta_max
    (hard-process frame) made factor (double_factor) times more likely, ``bias`` = (cos_theta_max, factor,
    double_factor); returns the four-momenta and the weights N(sqrt s) / bias (true / biased probability,
    mean 1; ``tag_normalisation``)."""
    sqrt_s = np.asarray(sqrt_s, dtype=float)
    m = LEPTON_MASS[lepton]
    n = sqrt_s.size
    # the hit-or-miss bound of W x bias: a pilot at sqrt(s) rounded up to 50 MeV, as ``max_weight``
    w_max = _tag_pilot(math.ceil(sqrt_s.max() * 20) / 20, w_min, lepton, bias)[1]

    def propose(idx: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        weight, (e_minus, e_plus) = sample_photons(sqrt_s[idx], w_min, m, rng, steer=(bias[0], TAG_PROPOSAL_SHARE))
        return weight * tag_bias(e_minus, e_plus, bias), [e_minus, e_plus]

    e_minus, e_plus = hit_or_miss(n, propose, w_max, rng, [(4,), (4,)], tries_per_round)
    weight = tag_normalisation(sqrt_s, w_min, lepton, bias) / tag_bias(e_minus, e_plus, bias)
    return _with_pair(sqrt_s, e_minus, e_plus, m, rng), weight


def _with_pair(sqrt_s: np.ndarray, e_minus: np.ndarray, e_plus: np.ndarray, m: float,
               rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(e-, e+, l-, l+): the lepton pair of the two photons that left ``e_minus`` and ``e_plus``."""
    n = sqrt_s.size
    energy = sqrt_s / 2
    p_in = np.sqrt(energy**2 - ELECTRON_MASS**2)
    beam_minus = np.column_stack([np.zeros(n), np.zeros(n), p_in, energy])
    beam_plus = np.column_stack([np.zeros(n), np.zeros(n), -p_in, energy])
    photon1 = beam_minus - e_minus
    pair = photon1 + beam_plus - e_plus
    w2 = np.clip(_dot(pair, pair), 4 * m * m * 1.0001, None)
    # the l- angle is measured from photon 1 in the pair rest frame
    to_rest = np.column_stack([-pair[:, :3], pair[:, 3]])
    axis = boost(photon1, to_rest)[:, :3]
    direction = directions_about_axis(axis, sample_cos_theta(w2, m, rng), rng.uniform(0, 2 * np.pi, n))
    l_minus, l_plus = decay_two_body(np.sqrt(w2), m, m, direction)
    return e_minus, e_plus, boost(l_minus, pair), boost(l_plus, pair)
