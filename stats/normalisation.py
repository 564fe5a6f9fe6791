"""Turn a limit on signal events (or on a signal strength) into a branching fraction or a cross section.

    BR    = s / (eps * N_parents)     N_parents = 2 N_tautau = 2 L sigma_tautau (tau decays),
                                      or 2 N_BB f (B decays, f = fraction of the B species)
    sigma = s / (eps * L)

Every conversion carries its formula and inputs, which are written next to the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from belle_rare.core.units import FB_PER_NB

Quantity = Literal["branching_fraction", "cross_section"]


def tau_pairs(luminosity_fb: float, sigma_tautau_nb: float) -> float:
    """N_tautau = L sigma(e+e- -> tau+ tau-)."""
    return luminosity_fb * sigma_tautau_nb * FB_PER_NB


@dataclass(frozen=True)
class Normalisation:
    """events = value x efficiency x exposure, with exposure = N_parents (BR) or L in /fb (sigma in fb)."""

    quantity: Quantity
    efficiency: float
    exposure: float
    exposure_label: str  # e.g. "2 N_tautau = 2 x 912e6" or "L = 79.7 /fb"
    unit: str = ""  # "" for a branching fraction, "fb" for a cross section

    def __post_init__(self) -> None:
        if not self.efficiency > 0:
            raise ValueError(f"signal efficiency must be positive, got {self.efficiency}")
        if not self.exposure > 0:
            raise ValueError(f"exposure ({self.exposure_label}) must be positive, got {self.exposure}")

    @property
    def events_per_unit(self) -> float:
        """Expected signal events for a branching fraction of 1 (or a cross section of 1 fb)."""
        return self.efficiency * self.exposure

    def from_events(self, signal_events: float) -> float:
        """The physics quantity that gives ``signal_events`` expected signal events."""
        return signal_events / self.events_per_unit

    @property
    def formula(self) -> str:
        name = "BR" if self.quantity == "branching_fraction" else "sigma"
        return f"{name} = s / (eps x {self.exposure_label}), eps = {self.efficiency:.4g}"

    def to_dict(self) -> dict:
        return {
            "quantity": self.quantity,
            "unit": self.unit,
            "efficiency": self.efficiency,
            "exposure": self.exposure,
            "exposure_label": self.exposure_label,
            "formula": self.formula,
        }


def tau_decay_normalisation(efficiency: float, n_tau_pairs: float, label: str | None = None) -> Normalisation:
    """BR of a tau decay: N_parents = 2 N_tautau (either tau of the pair can decay to the signal)."""
    text = label or f"2 N_tautau, N_tautau = {n_tau_pairs:.4g}"
    return Normalisation("branching_fraction", efficiency, 2.0 * n_tau_pairs, text)


def b_decay_normalisation(efficiency: float, n_bb: float, fraction: float = 1.0, label: str | None = None) -> Normalisation:
    """BR of a B decay: N_parents = 2 N_BB f, f the fraction of B pairs of the signal species."""
    text = label or f"2 N_BB f, N_BB = {n_bb:.4g}, f = {fraction:g}"
    return Normalisation("branching_fraction", efficiency, 2.0 * n_bb * fraction, text)


def cross_section_normalisation(efficiency: float, luminosity_fb: float) -> Normalisation:
    """Cross section in fb: exposure = L in /fb."""
    return Normalisation("cross_section", efficiency, luminosity_fb, f"L, L = {luminosity_fb:g} /fb", unit="fb")
