"""e+e- -> mu+ mu- Z', Z' -> invisible, in the L_mu - L_tau model, with ISR.

No installed generator has this process. The hard process is the tree-level 2 -> 3 matrix element of
``lmu_ltau.py`` (Z' off either muon line, both diagrams and their interference, the full Z' mass and,
if the model has one, its width), unweighted by hit-or-miss. ISR (``isr.py``) enters in two steps: the
photon's energy fraction x is accepted with the probability sigma_hat(s (1 - x)) / max sigma_hat, so that
the events follow D(x) sigma_hat(s') and not the radiator alone, and the hard process is sampled at that
event's s'. The sample's cross section is the same convolution (``ZprimeSampler.cross_section_with_isr``).
The matrix element takes the beams along +-z of the hard system's rest frame (the e- along +z): the
crossing angle and the ISR photon's tilt of the beam axis (<= x / 2 rad) are left out there, as in the
Bhabha generator.

The recoil mass against the muon pair equals the Z' mass (before ISR/FSR and detector; an ISR photon, at
its first-order angle from ``isr.py``, takes part of the recoil and may itself reach the ECL).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from belle_rare.simulation.generators import lmu_ltau
from belle_rare.simulation.generators.isr import isr_beta, radiator
from belle_rare.simulation.generators.unweighting import hit_or_miss

MUON_MASS = lmu_ltau.MUON_MASS
TABLE_POINTS = 12            # sqrt(s') nodes of the sigma_hat table
TABLE_EVENTS = 10_000        # weighted events per node (0.5-1.5 % statistical error each)


@dataclass(frozen=True)
class ZprimeModel:
    """Z' mass (GeV), total width (GeV; 0: negligible), invisible-BR model, coupling g' and alpha_em."""

    mass: float
    width: float
    model: str
    coupling: float
    alpha: float


def _weighted(sqrt_s: np.ndarray, zp: ZprimeModel, rng: np.random.Generator):
    """Weighted events (mu-, mu+, Z', d sigma in nb) on the phase space suited to the mass."""
    return lmu_ltau.event_weights(sqrt_s, zp.mass, zp.width, zp.model, rng, zp.alpha, zp.coupling)


class ZprimeSampler:
    """sigma_hat(sqrt(s')) on a table (for the ISR acceptance and the cross section) and the unweighted hard process."""

    def __init__(self, zp: ZprimeModel, sqrt_s_max: float, rng: np.random.Generator) -> None:
        if not 0 < zp.mass < sqrt_s_max - 2 * MUON_MASS:
            raise ValueError(f"--mass {zp.mass} GeV: Z' must be lighter than sqrt(s) - 2 m_mu")
        self.zp = zp
        self.threshold = zp.mass + 2 * MUON_MASS
        # nodes denser near threshold, where sigma_hat rises steeply
        u = np.linspace(0.0, 1.0, TABLE_POINTS)
        self.nodes = self.threshold + (sqrt_s_max - self.threshold) * (0.02 + 0.98 * u**2)
        self.nodes[-1] = sqrt_s_max
        self.sigma = np.array([_weighted(np.full(TABLE_EVENTS, r), zp, rng)[3].mean() for r in self.nodes])
        self._w_max: float | None = None  # found on the first ``sample`` (a cross-section-only sampler never needs it)

    def _hit_or_miss_max(self, rng: np.random.Generator) -> float:
        """Hit-or-miss runs on d sigma / sigma_hat(s'), a density whose maximum hardly depends on s': its
        largest value in a pilot over the table's range, x 1.5 for safety."""
        if self._w_max is None:
            pilot_s = rng.uniform(self.nodes[0], self.nodes[-1], 40_000)
            self._w_max = 1.5 * float((_weighted(pilot_s, self.zp, rng)[3] / self.sigma_hat(pilot_s)).max())
        return self._w_max

    def sigma_hat(self, sqrt_s: np.ndarray) -> np.ndarray:
        """sigma(e+e- -> mu mu Z') x BR(inv) (nb) at sqrt(s') without ISR; 0 at and below threshold."""
        return np.interp(sqrt_s, np.concatenate([[self.threshold], self.nodes]), np.concatenate([[0.0], self.sigma]))

    def isr_acceptance(self, sqrt_s_hard: np.ndarray) -> np.ndarray:
        """Probability to keep an ISR photon leaving ``sqrt_s_hard``: sigma_hat(s') / max sigma_hat."""
        return self.sigma_hat(sqrt_s_hard) / self.sigma.max()

    def cross_section_with_isr(self, sqrt_s: float, x_max: float) -> float:
        """sigma x BR(inv) (nb) with ISR: int_0^x_max D(x) sigma_hat(s (1 - x)) dx (Kuraev-Fadin D, isr.py)."""
        beta = isr_beta(sqrt_s)
        # x = y^(1/beta) takes out the integrable x^(beta - 1) spike at 0
        y = (np.arange(200_000) + 0.5) / 200_000 * x_max**beta
        x = y ** (1 / beta)
        jacobian = x ** (1 - beta) / beta
        integrand = radiator(x, beta) * jacobian * self.sigma_hat(sqrt_s * np.sqrt(1 - x))
        return float(integrand.mean() * x_max**beta)

    def sample(self, sqrt_s: np.ndarray, rng: np.random.Generator, tries_per_round: int = 8):
        """Unweighted (mu-, mu+, Z') four-momenta ``(n, 4)`` in the CM frame of each ``sqrt_s``."""
        def propose(idx: np.ndarray):
            k1, k2, k, dsigma = _weighted(sqrt_s[idx], self.zp, rng)
            return dsigma / self.sigma_hat(sqrt_s[idx]), [k1, k2, k]

        w_max = self._hit_or_miss_max(rng)
        mu_minus, mu_plus, zp = hit_or_miss(len(sqrt_s), propose, w_max, rng, [(4,)] * 3, tries_per_round)
        return mu_minus, mu_plus, zp
