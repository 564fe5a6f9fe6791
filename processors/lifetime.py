"""Lifetime reweighting of a long-lived particle's signal sample (bkscalar, issue 13).

A sample generated at ``c tau0`` serves any other ``c tau1``: the proper decay time t of an exponential
decay has density exp(-t/tau) / tau, so the event weight

    w = (tau0 / tau1) exp(-t (1/tau1 - 1/tau0))

turns the generated distribution into the target one event by event. Everything else in the event (the
production, the decay kinematics in the rest frame, the detector response) does not depend on t, so
every efficiency of the reweighted sample is that of a sample generated at c tau1, with the statistical
power of the generated one (effective events (sum w)^2 / sum w^2, which falls when tau1 is far from tau0;
``effective_fraction``).

The proper decay length c t = L m / |p| comes from the truth record (``MCParticle``): the particle's
production vertex, its daughters' production vertex (its decay point), its momentum and its mass.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

#: PDG code of the long-lived scalar S of sig_bkscalar (configs/processes.yaml ``scalar.pdg``)
SCALAR_PDG = 9000025


def proper_decay_length(mc: ak.Array, pdg: int = SCALAR_PDG) -> np.ndarray:
    """Per event, c t (cm) of the first particle ``pdg`` (either sign) that has daughters; NaN if none.

    ``mc`` is the ``MCParticle`` collection (fields ``PDG``, ``motherIndex``, ``px``, ``py``, ``pz``,
    ``prodVertexX/Y/Z`` and the generated mass, ``InvM`` through BelleSchema or ``mass``).
    """
    mother = mc.motherIndex
    safe_mother = ak.where(mother >= 0, mother, 0)
    from_particle = (mother >= 0) & (np.abs(mc.PDG[safe_mother]) == pdg)
    # the first daughter: its production vertex is the decay point, its mother index the particle
    daughter = ak.firsts(mc[from_particle])
    parent_index = ak.fill_none(daughter.motherIndex, 0)
    parent = ak.firsts(mc[ak.singletons(parent_index)])
    mass = parent.InvM if "InvM" in ak.fields(mc) else parent.mass

    def column(field_of) -> np.ndarray:
        return np.asarray(ak.to_numpy(ak.fill_none(field_of, np.nan)), dtype=np.float64)

    flight = np.sqrt(
        (column(daughter.prodVertexX) - column(parent.prodVertexX)) ** 2
        + (column(daughter.prodVertexY) - column(parent.prodVertexY)) ** 2
        + (column(daughter.prodVertexZ) - column(parent.prodVertexZ)) ** 2
    )
    momentum = np.sqrt(column(parent.px) ** 2 + column(parent.py) ** 2 + column(parent.pz) ** 2)
    has = ~ak.to_numpy(ak.is_none(daughter))
    with np.errstate(divide="ignore", invalid="ignore"):
        ct = flight * column(mass) / momentum
    return np.where(has, ct, np.nan)


def lifetime_weight(ct: np.ndarray, ctau_generated: float, ctau_target: float) -> np.ndarray:
    """w = (tau0/tau1) exp(-t (1/tau1 - 1/tau0)) for proper decay lengths ``ct`` (cm) generated at
    ``ctau_generated`` and wanted at ``ctau_target``; events without the particle (NaN) keep weight 1."""
    if ctau_generated <= 0 or ctau_target <= 0:
        raise ValueError(f"c tau must be positive (generated {ctau_generated}, target {ctau_target})")
    w = (ctau_generated / ctau_target) * np.exp(-np.asarray(ct, dtype=np.float64) * (1.0 / ctau_target - 1.0 / ctau_generated))
    return np.where(np.isnan(ct), 1.0, w)


def effective_fraction(weights: np.ndarray) -> float:
    """(sum w)^2 / (n sum w^2): the reweighted sample's statistical power per generated event."""
    w = np.asarray(weights, dtype=np.float64)
    return float(np.sum(w) ** 2 / (len(w) * np.sum(w * w))) if len(w) else 0.0
