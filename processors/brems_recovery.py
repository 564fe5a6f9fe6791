"""Bremsstrahlung recovery for electron candidates, basf2-style, columnar on awkward collections.

Electrons radiate in the material in front of the drift chamber (``simulation/detector/material.py``):
the track measures the reduced momentum and the photon makes its own ECL cluster close to the
track direction. The recovery adds those clusters back to the electron and removes them from the
photon list, as basf2 does:

* ``belle`` -- ``modularAnalysis.correctBremsBelle`` (module ``BelleBremRecovery``): every photon
  within ``max_angle`` (default 0.05 rad) of the electron's momentum is added
  (``multiplePhotons=True``). The energy cut is the one of the photon list passed in.
* ``belle2`` -- ``modularAnalysis.correctBrems`` (module ``BremsFinder``) adds at most one photon
  (``multiplePhotons=False``), the best-matched one, and each photon only once
  (``usePhotonOnlyOnce=True``). basf2 matches with the ECLTrackBremFinder relation (cluster
  position vs the track extrapolated from its brems point); here the match is the smallest
  opening angle inside ``max_angle``, which the parametric ECL can express.

In both a photon inside the cones of several electrons goes to the closest one only, so no
cluster is counted twice. Angles are between the track momentum (at the IP) and the cluster
direction (from the IP), in the laboratory frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import awkward as ak
import numba
import numpy as np

from belle_rare.configs.loader import StrictModel
from belle_rare.processors.jagged_kernels import list_index, offsets_of
from belle_rare.processors.kinematics import P4, cos_angle


class BremsRecovery(StrictModel):
    """A search's brems-recovery settings (YAML ``brems_recovery:``)."""

    method: Literal["belle", "belle2"]
    max_angle: float  # rad
    photon_e_min: float = 0.0  # GeV, photons used for recovery


@dataclass
class Recovered:
    """Electron candidates with their brems photons added, and the photons still free."""

    tracks: P4  # jagged, same layout as the input tracks (non-electrons unchanged)
    n_photons: ak.Array  # photons added per track
    photon_free: ak.Array  # jagged bool over the input photons: not used by any electron


def _records(p4: P4, **extra: ak.Array) -> ak.Array:
    return ak.zip({"px": p4.px, "py": p4.py, "pz": p4.pz, "E": p4.E, **extra})


def _angles(a: ak.Array, b: ak.Array) -> tuple[ak.Array, ak.Array, ak.Array]:
    """Nested pairs (event x a x b) of two collections and their opening angles."""
    pairs = ak.cartesian([a, b], nested=True)
    first, second = pairs["0"], pairs["1"]
    angle = np.arccos(cos_angle(P4(first.px, first.py, first.pz, first.E), P4(second.px, second.py, second.pz, second.E)))
    return first, second, angle


def recover_brems(tracks: P4, electron: ak.Array, photons: P4, cfg: BremsRecovery) -> Recovered:
    """Add brems photons to the tracks flagged ``electron`` (jagged bool, same layout as ``tracks``)."""
    index_t = ak.local_index(tracks.px)
    usable = photons.E > cfg.photon_e_min
    trk = _records(tracks, electron=electron, index=index_t)
    pho = _records(photons, usable=usable)

    # photon-major: the closest electron of each photon inside the cone
    _, t_of, angle_pt = _angles(pho, trk)
    inside_pt = t_of.electron & (angle_pt < cfg.max_angle)
    closest = ak.fill_none(ak.min(ak.where(inside_pt, angle_pt, np.inf), axis=2), np.inf)

    # track-major: the photons a track takes (it is their closest electron)
    pho = ak.with_field(pho, closest, "closest")
    t_side, g_side, angle_tp = _angles(trk, pho)
    takes = t_side.electron & g_side.usable & (angle_tp < cfg.max_angle) & (angle_tp <= g_side.closest)
    if cfg.method == "belle2":
        # one photon per electron: the best-matched
        # (a track without photons has no minimum: inf, not None, which would not broadcast)
        best = ak.fill_none(ak.min(ak.where(takes, angle_tp, np.inf), axis=2), np.inf)
        takes = takes & (angle_tp <= best)
        # a photon is used if the track it went to chose it
        trk = ak.with_field(trk, best, "best")
        _, t_of, angle_pt = _angles(pho, trk)
        used = ak.any(t_of.electron & (angle_pt < cfg.max_angle) & (angle_pt <= pho.closest) & (angle_pt <= t_of.best)
                      & pho.usable, axis=2)
    else:
        used = pho.usable & (pho.closest < cfg.max_angle)

    def added(component: ak.Array) -> ak.Array:
        return ak.sum(ak.where(takes, component, 0.0), axis=2)

    corrected = P4(
        tracks.px + added(g_side.px), tracks.py + added(g_side.py), tracks.pz + added(g_side.pz), tracks.E + added(g_side.E)
    )
    return Recovered(tracks=corrected, n_photons=ak.sum(takes, axis=2), photon_free=~ak.fill_none(used, False))


# ---------------------------------------------------------------------------------------------
# the same on flat arrays (offsets + content): taulgamma's hot path (processors/jagged_kernels.py says why)


@dataclass
class RecoveredFlat:
    """``Recovered`` on flat arrays: tracks in the input order (float64 where a photon could be
    added, as ``recover_brems``), photons added per track, photons still free."""

    tracks: P4
    n_photons: np.ndarray
    photon_free: np.ndarray


@numba.njit(cache=True)
def _recover_kernel(t_off, g_off, pair_off, angle, electron, usable, max_angle, one_per_electron,
                    takes_out, used_out):
    """The cone logic of ``recover_brems`` event by event; ``angle[pair_off[t] + g - g_off[i]]`` is
    the opening angle of track t and photon g of event i (computed in numpy, so in the same float
    precision as the awkward version)."""
    for i in range(len(t_off) - 1):
        t0, t1, g0, g1 = t_off[i], t_off[i + 1], g_off[i], g_off[i + 1]
        for g in range(g0, g1):
            # the closest electron of each photon inside the cone
            closest = np.inf
            for t in range(t0, t1):
                a = angle[pair_off[t] + g - g0]
                if electron[t] and a < max_angle and a < closest:
                    closest = a
            for t in range(t0, t1):
                a = angle[pair_off[t] + g - g0]
                # the photons a track takes: it is their closest electron
                takes_out[pair_off[t] + g - g0] = electron[t] and usable[g] and a < max_angle and a <= closest
            if not one_per_electron:
                used_out[g] = usable[g] and closest < max_angle
        if one_per_electron:
            # one photon per electron, the best-matched; a photon is used if its track chose it
            for t in range(t0, t1):
                best = np.inf
                for g in range(g0, g1):
                    k = pair_off[t] + g - g0
                    if takes_out[k] and angle[k] < best:
                        best = angle[k]
                for g in range(g0, g1):
                    k = pair_off[t] + g - g0
                    takes_out[k] = takes_out[k] and angle[k] <= best
                    if takes_out[k]:
                        used_out[g] = True


def recover_brems_flat(t_offsets: np.ndarray, tracks: P4, electron: np.ndarray, g_offsets: np.ndarray, photons: P4,
                       cfg: BremsRecovery) -> RecoveredFlat:
    """``recover_brems`` on flat arrays: ``tracks`` / ``electron`` lists by ``t_offsets``, ``photons``
    by ``g_offsets`` (the same events); the same photons are added and freed, bit for bit."""
    n_photons_of_track = np.diff(g_offsets)[list_index(t_offsets)]
    pair_off = offsets_of(n_photons_of_track)
    pair_t = np.repeat(np.arange(len(n_photons_of_track), dtype=np.int64), n_photons_of_track)
    pair_g = (g_offsets[:-1][list_index(t_offsets)] - pair_off[:-1])[pair_t] + np.arange(len(pair_t), dtype=np.int64)
    t3 = [c[pair_t] for c in tracks[:3]]
    g3 = [c[pair_g] for c in photons[:3]]
    angle = np.arccos(cos_angle(P4(*g3, None), P4(*t3, None)))
    takes = np.zeros(len(pair_t), dtype=np.bool_)
    used = np.zeros(len(photons.E), dtype=np.bool_)
    usable = np.asarray(photons.E > cfg.photon_e_min)
    _recover_kernel(t_offsets, g_offsets, pair_off, angle, np.asarray(electron, dtype=np.bool_), usable,
                    float(cfg.max_angle), cfg.method == "belle2", takes, used)
    # sums over the taken photons in photon order, in float64 (``ak.where(takes, comp, 0.0)``)
    taken_t = pair_t[takes]
    added = [np.bincount(taken_t, weights=c[pair_g[takes]].astype(np.float64), minlength=len(pair_off) - 1)
             for c in photons]
    corrected = P4(*(c + a for c, a in zip(tracks, added)))
    return RecoveredFlat(tracks=corrected, n_photons=np.bincount(taken_t, minlength=len(pair_off) - 1), photon_free=~used)
