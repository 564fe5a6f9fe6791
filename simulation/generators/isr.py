"""Initial-state radiation: one photon with the Kuraev-Fadin energy spectrum and the first-order angular distribution.

Energy: the fraction x = 2 E_gamma / sqrt(s) (CM frame) follows the Kuraev-Fadin radiator
(Sov. J. Nucl. Phys. 41 (1985) 466; the form of Jadach, Ward and Was, and of the CERN Z-physics reports)

    D(x) = beta x^(beta - 1) (1 + 3 beta / 4) - beta (1 - x / 2),   beta = (2 alpha / pi) (ln(s / m_e^2) - 1),

the soft-photon-exponentiated leading term plus the first-order hard-photon correction. It integrates to
exactly 1 over 0 < x < 1 and reduces at first order to (alpha / pi)(L - 1)(1 + (1 - x)^2) / x.

Angle: at fixed x the photon polar angle theta (CM frame, from the e- beam) follows the first-order
e+e- -> gamma* gamma distribution (Bonneau and Martin, Nucl. Phys. B27 (1971) 381; Berends and Kleiss,
Nucl. Phys. B178 (1981) 141), with the collinear poles regulated by the electron velocity v:

    d sigma / dx dcos(theta)
        ~ [1 + (1 - x)^2 - x^2 sin^2(theta) / 2] v^2 sin^2(theta) / (1 - v^2 cos^2(theta))^2 / x,

where v^2 sin^2 / (1 - v^2 cos^2)^2 integrates over cos(theta) to (1 + v^2) / (2 v) ln((1 + v) / (1 - v)) - 1
= L - 1 (L = ln(s / m_e^2), v -> 1): the radiator's logarithm, so the soft limit is beta / x again. The photon is placed in the CM frame at that
angle (azimuth uniform); the hard system takes the recoil, ``total - photon``, so the final state is
boosted and tilted by it. Only one photon is emitted (multiple ISR photons share x in the real world).
"""

from __future__ import annotations

import math

import numpy as np
import particle
from scipy.constants import fine_structure

from belle_rare.simulation.generators.phase_space import boost, directions_about_axis

ELECTRON_MASS = particle.Particle.from_pdgid(11).mass / 1000.0


def isr_beta(sqrt_s: float) -> float:
    """Leading-log ISR exponent for e+e- at ``sqrt_s`` (GeV)."""
    return 2.0 * fine_structure / math.pi * (math.log(sqrt_s**2 / ELECTRON_MASS**2) - 1.0)


def radiator(x: np.ndarray, beta: float) -> np.ndarray:
    """Kuraev-Fadin radiator D(x) (per unit x), see the module docstring."""
    x = np.asarray(x, dtype=float)
    return beta * x ** (beta - 1) * (1 + 0.75 * beta) - beta * (1 - x / 2)


def radiator_integral(x_min: float, x_max: float, beta: float) -> float:
    """Integral of ``radiator`` over [x_min, x_max] (closed form)."""
    return ((x_max**beta - x_min**beta) * (1 + 0.75 * beta)
            - beta * ((x_max - x_min) - (x_max**2 - x_min**2) / 4))


def angular_density(cos_theta: np.ndarray, x: np.ndarray, velocity: float) -> np.ndarray:
    """First-order ISR photon angular shape at energy fraction x (unnormalised, per unit cos(theta))."""
    c = np.asarray(cos_theta, dtype=float)
    sin2 = 1 - c * c
    hard = 1 + (1 - x) ** 2 - x * x * sin2 / 2
    return hard * velocity**2 * sin2 / (1 - velocity**2 * c * c) ** 2


def sample_x(n: int, beta: float, x_max: float, rng: np.random.Generator) -> np.ndarray:
    """x from ``radiator`` truncated to x < x_max.

    Proposals from the leading term beta x^(beta - 1) (x = u^(1 / beta), u < x_max^beta), accepted
    with D(x) / leading = 1 - x^(1 - beta) (1 - x / 2) / (1 + 3 beta / 4), which is > 0.5 for x < 1.
    """
    out = np.empty(n)
    pending = np.arange(n)
    while pending.size:
        x = (rng.uniform(size=pending.size) * x_max**beta) ** (1.0 / beta)
        keep = rng.uniform(size=pending.size) < 1 - x ** (1 - beta) * (1 - x / 2) / (1 + 0.75 * beta)
        out[pending[keep]] = x[keep]
        pending = pending[~keep]
    return out


def sample_cos_theta(x: np.ndarray, velocity: float, rng: np.random.Generator) -> np.ndarray:
    """cos(theta) from ``angular_density`` at each x.

    Proposals ~ 1 / (1 - v^2 c^2) (c = tanh(v u) / v, u uniform), accepted with
    [1 + (1 - x)^2 - x^2 sin^2 / 2] v^2 sin^2 / (1 - v^2 c^2) / [1 + (1 - x)^2] <= 1.
    """
    x = np.asarray(x, dtype=float)
    out = np.empty(x.size)
    pending = np.arange(x.size)
    u_max = math.atanh(velocity) / velocity
    while pending.size:
        c = np.tanh(velocity * rng.uniform(-u_max, u_max, pending.size)) / velocity
        xp = x[pending]
        ratio = angular_density(c, xp, velocity) * (1 - velocity**2 * c * c) / (1 + (1 - xp) ** 2)
        keep = rng.uniform(size=pending.size) < ratio
        out[pending[keep]] = c[keep]
        pending = pending[~keep]
    return out


def sample_isr(
    total: np.ndarray, her: np.ndarray, ler: np.ndarray, x_max: float, rng: np.random.Generator,
    x: np.ndarray | None = None, cos_theta: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One ISR photon per event, at its first-order polar angle.

    ``total``, ``her``, ``ler``: ``(n, 4)`` (px, py, pz, E) lab four-momenta of the beams (``her`` the e-).
    Returns the photon four-momenta ``(n, 4)`` and the four-momentum of the hard system
    (``total - photon``). Photons harder than ``x_max`` (which would leave the hard system below
    its threshold) are not generated: the spectrum is truncated there. ``x`` / ``cos_theta`` (CM, from
    the e- beam) given: the photon is placed there instead (``IsrSlice``: a slice, a biased angle).
    """
    n = len(total)
    s = total[:, 3] ** 2 - np.sum(total[:, :3] ** 2, axis=1)
    sqrt_s = float(np.sqrt(np.mean(s)))
    velocity = math.sqrt(1 - 4 * ELECTRON_MASS**2 / sqrt_s**2)
    if x is None:
        x = sample_x(n, isr_beta(sqrt_s), x_max, rng)
    if cos_theta is None:
        cos_theta = sample_cos_theta(x, velocity, rng)
    # the photon in the CM frame of the beams, theta measured from the e- beam
    to_cm = np.column_stack([-total[:, :3], total[:, 3]])
    axis = boost(her, to_cm)[:, :3]
    direction = directions_about_axis(axis, cos_theta, rng.uniform(0, 2 * np.pi, n))
    energy = x * np.sqrt(s) / 2
    photon = boost(np.column_stack([direction * energy[:, None], energy]), total)
    return photon, total - photon


def gamma_star_mass_fraction(sqrt_s: float, fermion_mass: float, m_min: float, m_max: float | None) -> float:
    """Share of e+e- -> gamma* (ISR) -> f fbar with the gamma* mass in [m_min, m_max] (GeV; None: sqrt(s)).

    sigma = integral dx D(x) sigma_Born(s (1 - x)), with the radiator ``D`` above and the Born point cross
    section of a fermion of mass m_f, sigma_Born(s') ~ b (3 - b^2) / 2 / s' (b = sqrt(1 - 4 m_f^2 / s')), from
    x = 0 to the threshold x = 1 - 4 m_f^2 / s. m^2 = s (1 - x): a mass slice is an ISR-energy slice. The
    x^(beta - 1) pole is integrated in u = x^beta. Used for the cross sections of the gamma* mass slices
    of tau and mu pairs (configs/processes.yaml ``gamma_star_mass``; issue 11).
    """
    from scipy.integrate import quad

    s = sqrt_s**2
    beta = isr_beta(sqrt_s)

    def born(x: float) -> float:
        sp = s * (1.0 - x)
        b2 = 1.0 - 4.0 * fermion_mass**2 / sp
        if b2 <= 0:
            return 0.0
        b = math.sqrt(b2)
        return b * (3.0 - b2) / 2.0 / (1.0 - x)

    def integral(x_lo: float, x_hi: float) -> float:
        # leading term (1 + 3 beta / 4) d(x^beta) in u, the hard correction -beta (1 - x / 2) dx in x
        lead = quad(lambda u: born(u ** (1.0 / beta)), x_lo**beta, x_hi**beta, limit=400)[0] * (1 + 0.75 * beta)
        hard = quad(lambda x: -beta * (1 - x / 2) * born(x), x_lo, x_hi, limit=400)[0]
        return lead + hard

    x_threshold = 1.0 - 4.0 * fermion_mass**2 / s
    x_lo = 0.0 if m_max is None else max(0.0, 1.0 - m_max**2 / s)
    x_hi = min(x_threshold, 1.0 - m_min**2 / s)
    if x_hi <= x_lo:
        return 0.0
    return integral(x_lo, x_hi) / integral(0.0, x_threshold)


def _born_point(x: np.ndarray, s: float, fermion_mass: float) -> np.ndarray:
    """Born e+e- -> f fbar at s' = s (1 - x), up to a constant: b (3 - b^2) / 2 / (1 - x)."""
    b2 = np.clip(1.0 - 4.0 * fermion_mass**2 / (s * (1.0 - x)), 0.0, None)
    return np.sqrt(b2) * (3.0 - b2) / 2.0 / (1.0 - x)


class IsrSlice:
    """ISR photons of e+e- -> gamma gamma* (-> f fbar) with the gamma* mass in [m_min, m_max], optionally with
    the photon's CM polar angle biased into the barrel (issue 11: the tau -> l gamma background).

    Energy: x ~ D(x) sigma_Born(s (1 - x)) on the slice (the product whose integral
    ``gamma_star_mass_fraction`` normalises), unweighted. Angle: the first-order distribution at that x;
    with ``central = (c0, share)`` a share of the events is drawn from it restricted to |cos theta| < c0
    (the rest from the whole of it), weight = 1 / ((1 - share) + share [|cos| < c0] / F(x)), F(x) the
    distribution's fraction inside c0 (exact: the density is linear in 1 + (1 - x)^2 and x^2), so the
    weights average to 1 and weighted rates are unbiased.
    """

    def __init__(self, sqrt_s: float, fermion_mass: float, m_min: float, m_max: float,
                 central: tuple[float, float] | None = None) -> None:
        self.s = sqrt_s**2
        self.fermion_mass = fermion_mass
        self.beta = isr_beta(sqrt_s)
        self.velocity = math.sqrt(1 - 4 * ELECTRON_MASS**2 / self.s)
        self.x_lo, self.x_hi = 1.0 - m_max**2 / self.s, 1.0 - m_min**2 / self.s
        grid = np.linspace(self.x_lo, self.x_hi, 2001)
        self.born_max = 1.05 * float(np.max(_born_point(grid, self.s, fermion_mass)))
        self.central = central
        if central is not None:
            # the angular density is A(c) [1 + (1 - x)^2] - B(c) x^2 / 2 with A = v^2 s^2 / (1 - v^2 c^2)^2,
            # B = A s^2 (s^2 = 1 - c^2): four integrals over c, in u (c = tanh(v u) / v, dc = (1 - v^2 c^2) du)
            v = self.velocity
            u_max = math.atanh(v) / v
            u = np.linspace(-u_max, u_max, 400_001)
            c = np.tanh(v * u) / v
            a = v**2 * (1 - c * c) / (1 - v**2 * c * c)
            inside = np.abs(c) < central[0]
            self._integrals = (a[inside].sum(), (a * (1 - c * c))[inside].sum(), a.sum(), (a * (1 - c * c)).sum())

    def central_fraction(self, x: np.ndarray) -> np.ndarray:
        """F(x): the share of the photon's angular distribution at x inside |cos theta| < c0."""
        a_in, b_in, a_all, b_all = self._integrals
        hard = 1 + (1 - x) ** 2
        return (a_in * hard - b_in * x * x / 2) / (a_all * hard - b_all * x * x / 2)

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, cos theta in the CM from the e- beam, weight) of ``n`` photons."""
        x = np.empty(n)
        pending = np.arange(n)
        while pending.size:
            xp = (rng.uniform(self.x_lo**self.beta, self.x_hi**self.beta, pending.size)) ** (1.0 / self.beta)
            radiator_ok = rng.uniform(size=pending.size) < 1 - xp ** (1 - self.beta) * (1 - xp / 2) / (1 + 0.75 * self.beta)
            born_ok = rng.uniform(size=pending.size) * self.born_max < _born_point(xp, self.s, self.fermion_mass)
            keep = radiator_ok & born_ok
            x[pending[keep]] = xp[keep]
            pending = pending[~keep]
        cos_theta = sample_cos_theta(x, self.velocity, rng)
        if self.central is None:
            return x, cos_theta, np.ones(n)
        c0, share = self.central
        redo = np.flatnonzero(rng.uniform(size=n) < share)  # these are drawn inside c0
        while redo.size:
            outside = np.abs(cos_theta[redo]) >= c0
            redo = redo[outside]
            cos_theta[redo] = sample_cos_theta(x[redo], self.velocity, rng)
        weight = 1.0 / ((1.0 - share) + share * (np.abs(cos_theta) < c0) / self.central_fraction(x))
        return x, cos_theta, weight
