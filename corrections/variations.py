"""Names of the systematic variations the processors fill, and their map onto payload ``syst``.

A processor loops over ``VARIATIONS`` (``nominal``, ``<source>Up``, ``<source>Down``) and asks
each correction for ``syst_for(variation, source)``: "up"/"down" when the variation belongs to
that correction's source, else "nominal".
"""

from __future__ import annotations

from typing import Literal

Syst = Literal["nominal", "up", "down"]

# source name -> correction name in the payloads
SOURCES: dict[str, str] = {
    "leptonID": "lepton_id",
    "fakeRate": "pion_fake_rate",
    "tracking": "tracking",
    "photonEnergy": "photon_energy_scale",
    "photonEff": "photon_efficiency",
    "momentumScale": "momentum_scale",
    "trigger": "trigger",
    "luminosity": "luminosity",
}

VARIATIONS: tuple[str, ...] = ("nominal",) + tuple(
    f"{source}{direction}" for source in SOURCES for direction in ("Up", "Down")
)

SYSTS: tuple[Syst, ...] = ("nominal", "up", "down")


def syst_for(variation: str, source: str) -> Syst:
    """The payload ``syst`` value of ``source``'s correction under ``variation``."""
    if variation not in VARIATIONS:
        raise ValueError(f"unknown variation '{variation}' (choose from {', '.join(VARIATIONS)})")
    if source not in SOURCES:
        raise ValueError(f"unknown systematic source '{source}' (choose from {', '.join(SOURCES)})")
    if variation == f"{source}Up":
        return "up"
    if variation == f"{source}Down":
        return "down"
    return "nominal"
