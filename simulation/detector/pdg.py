"""PDG-code lookups (mass, charge) from the ``particle`` package, vectorised over numpy arrays.

The package is queried once per distinct PDG code (a few dozen per sample) and cached; arrays of
codes are mapped with ``np.unique`` so no Python loop runs over particles.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from particle import Particle, pdgid
from particle.particle import InvalidParticle, ParticleNotFound

# PDG codes of the species the response treats specially (codes, not response numbers)
PHOTON = 22
ELECTRON = 11
MUON = 13
PION = 211
KAON = 321
PROTON = 2212
KLONG = 130
NEUTRON = 2112
PI0 = 111
UPSILON_4S = 300553
B_MESONS = (511, 521)

#: charged species that leave a track, in the PID-table order of params.PID_SPECIES
TRACKED = (ELECTRON, MUON, PION, KAON, PROTON)


@lru_cache(maxsize=None)
def properties(pdg: int) -> tuple[float, float]:
    """(mass in GeV, charge in e) of one PDG code; NaN mass and the quark-model charge if unknown."""
    try:
        entry = Particle.from_pdgid(pdg)
    except (ParticleNotFound, InvalidParticle):
        # e.g. generator-specific codes (9000025 dark scalar, 90 system): no table mass
        charge = pdgid.charge(pdg) if pdg != 0 else 0.0
        return float("nan"), float(charge or 0.0)
    mass = float("nan") if entry.mass is None else entry.mass / 1000.0
    charge = 0.0 if entry.charge is None else float(entry.charge)
    return mass, charge


def mass(pdg: int) -> float:
    """PDG mass in GeV of one code (e.g. ``mass(211)``)."""
    return properties(int(pdg))[0]


def lookup(pdg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masses (GeV) and charges (e) for an array of PDG codes."""
    pdg = np.asarray(pdg)
    if pdg.size == 0:
        return np.zeros(0), np.zeros(0)
    codes, inverse = _distinct(pdg)
    table = np.array([properties(int(code)) for code in codes], dtype=np.float64)
    return table[inverse, 0], table[inverse, 1]


def _distinct(pdg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(pdg, return_inverse=True)`` without its sort when the codes span a small range.

    Final-state codes span -2212..2212 or so: marking them in a table of the range is ~10x faster
    than sorting 10^5 codes. Nuclei or new-particle codes widen the range: then ``np.unique``.
    """
    lo, hi = int(pdg.min()), int(pdg.max())
    if hi - lo >= 1 << 20:
        return np.unique(pdg, return_inverse=True)
    shifted = pdg - lo
    present = np.zeros(hi - lo + 1, dtype=bool)
    present[shifted] = True
    codes = np.flatnonzero(present)
    slot = np.zeros(hi - lo + 1, dtype=np.intp)
    slot[codes] = np.arange(len(codes))
    return (codes + lo).astype(pdg.dtype), slot[shifted]
