"""Units (GeV, cm, ns, nb, /fb) and PDG masses in GeV, from ``particle`` (which gives MeV)."""

from __future__ import annotations

from functools import lru_cache

# 1 nb = 1e6 fb, so L [/fb] x sigma [nb] x FB_PER_NB is a number of events
FB_PER_NB = 1.0e6
GEV_PER_MEV = 1.0e-3


@lru_cache(maxsize=None)
def pdg_mass(pdgid: int) -> float:
    """The PDG mass of ``pdgid`` in GeV."""
    import particle

    return float(particle.Particle.from_pdgid(pdgid).mass) * GEV_PER_MEV
