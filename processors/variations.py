"""Systematic variations as processors fill them.

Each variation is a name from ``corrections.VARIATIONS`` (``nominal``, ``<source>Up``,
``<source>Down``); ``syst(source)`` says which payload value (nominal / up / down) a correction
takes under it. Calibrations (momentum scale, photon-energy scale) shift quantities and re-run
the selection; the others are event weights. Data gets the nominal pass only and no weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from belle_rare.corrections import VARIATIONS, Syst, syst_for

# sources that shift reconstructed quantities (the selection is re-run), not weights
CALIBRATION_SOURCES = ("momentumScale", "photonEnergy")


@dataclass(frozen=True)
class Variation:
    name: str

    def syst(self, source: str) -> Syst:
        return syst_for(self.name, source)

    @property
    def calibration(self) -> tuple[Syst, Syst]:
        """(momentum-scale syst, photon-energy-scale syst): selections are cached on this key."""
        return self.syst("momentumScale"), self.syst("photonEnergy")


def variations(is_data: bool) -> list[Variation]:
    """Every variation for simulation; nominal only for (pseudo-)data."""
    return [Variation("nominal")] if is_data else [Variation(name) for name in VARIATIONS]
