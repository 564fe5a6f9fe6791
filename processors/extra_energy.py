"""E_ECL^extra: the calorimeter energy left after the tag and the signal side, columnar on events.

E_extra = sum of the energies of the ``Photon`` clusters that pass region-dependent energy
thresholds (and, optionally, a timing cut) and are not in an explicit mask of clusters *used* by
the B tag or the signal side. Clusters matched to tracks are not in the ``Photon`` collection
(their energy is ``Track.clusterE``), so E_extra counts only unmatched clusters, as basf2's
``ROE`` extra energy and Belle's E_ECL do. What is left is mostly hadronic split-offs, K_L /
neutron clusters, photons the reconstruction missed and beam background.

The thresholds are passed in (from a search config), for example Belle's ``goodBelleGamma``
(forward / barrel / backward > 100 / 50 / 150 MeV) or Belle II's ``goodGamma`` (100 / 90 / 160 MeV),
basf2 analysis/variables ECLVariables. Clusters in the gaps between the ECL parts (clusterReg
11 / 13) or outside it never count, as in those basf2 variables, unless ``gap`` is given.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import pydantic

from belle_rare.configs.loader import StrictModel

# basf2 clusterReg codes
FORWARD, BARREL, BACKWARD = 1, 2, 3
FORWARD_GAP, BACKWARD_GAP = 11, 13


class RegionThresholds(StrictModel):
    """Minimum cluster energy (GeV) per ECL region; ``gap``: None = gap clusters never count."""

    forward: float = pydantic.Field(ge=0)
    barrel: float = pydantic.Field(ge=0)
    backward: float = pydantic.Field(ge=0)
    gap: float | None = pydantic.Field(default=None, ge=0)


class ExtraEnergyCuts(StrictModel):
    """Which Photon clusters enter E_extra."""

    thresholds: RegionThresholds
    max_abs_timing: float | None = pydantic.Field(default=None, gt=0, description="ns, |clusterTiming| below")
    max_timing_significance: float | None = pydantic.Field(
        default=None, gt=0, description="|clusterTiming| / clusterErrorTiming below (basf2: t99 units)"
    )


def region_threshold(region: ak.Array, thresholds: RegionThresholds) -> ak.Array:
    """Energy threshold (GeV) of each cluster from its clusterReg; +inf where it can never count."""
    gap = np.inf if thresholds.gap is None else thresholds.gap
    table = {FORWARD: thresholds.forward, BARREL: thresholds.barrel, BACKWARD: thresholds.backward,
             FORWARD_GAP: gap, BACKWARD_GAP: gap}
    flat = ak.to_numpy(ak.flatten(region, axis=None)).astype(np.int64)
    values = np.full(len(flat), np.inf)
    for code, value in table.items():  # five region codes, not a loop over clusters
        values[flat == code] = value
    return ak.unflatten(values, ak.num(region)) if region.ndim > 1 else values


def counted_clusters(photons: ak.Array, cuts: ExtraEnergyCuts) -> ak.Array:
    """Mask of the Photon clusters that pass the thresholds and the timing cuts (before the used mask)."""
    keep = photons.E > region_threshold(photons.clusterReg, cuts.thresholds)
    if cuts.max_abs_timing is not None:
        keep = keep & (abs(photons.clusterTiming) < cuts.max_abs_timing)
    if cuts.max_timing_significance is not None:
        if "clusterErrorTiming" not in ak.fields(photons):
            raise KeyError("max_timing_significance needs the Photon_clusterErrorTiming branch")
        keep = keep & (abs(photons.clusterTiming) < cuts.max_timing_significance * photons.clusterErrorTiming)
    return keep


def extra_energy(photons: ak.Array, used: ak.Array | None, cuts: ExtraEnergyCuts) -> ak.Array:
    """E_ECL^extra per event (GeV): counted Photon clusters not flagged in ``used``.

    ``photons`` is the jagged ``Photon`` collection; ``used`` a jagged boolean mask of the same
    shape (True: the tag or the signal side took the cluster), or None for no exclusion.
    """
    keep = counted_clusters(photons, cuts)
    if used is not None:
        keep = keep & ~used
    return ak.sum(ak.where(keep, photons.E, 0.0), axis=1)


def n_extra_clusters(photons: ak.Array, used: ak.Array | None, cuts: ExtraEnergyCuts) -> ak.Array:
    """Number of clusters entering E_extra per event."""
    keep = counted_clusters(photons, cuts)
    if used is not None:
        keep = keep & ~used
    return ak.sum(keep, axis=1)
