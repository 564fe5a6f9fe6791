"""Level-1 trigger emulation from the reconstructed objects of an event, stored as trigger bits.

The inputs are what the L1 hardware sees, approximated from the reconstructed collections:

* trigger tracks: ``Track`` rows above the finder's pT threshold with enough CDC hits (the hits stand
  for the axial superlayers the 2D Hough finder needs), each kept with a per-track efficiency;
* trigger clusters: every ECL cluster above threshold -- the ``Photon`` collection *and* the clusters
  matched to tracks (``Track.clusterE``, placed where the helix meets the calorimeter);
* KLM trigger tracks: trigger tracks with at least ``min_layers`` KLM layers, with a per-track efficiency;
* energy sums over the theta rings of the total-energy trigger, CM-frame pair topologies (Delta phi,
  theta_1 + theta_2) for the Bhabha veto / selection and the low-multiplicity bits.

Lines (``configs/detector/<name>.yaml`` ``trigger.lines``; logic per experiment below): Belle II
follows basf2's GDL menu (``trg/gdl/dbobjects/log/ftd_0031``) and the ECL bits of
``trg/ecl/src/TrgEclMaster.cc``; Belle follows the sub-triggers of NIM A479 (2002) 117 (the final
trigger conditions are representative). Not emulated: the injection veto, trigger timing, the
neural z-vertex trigger and TC-level cluster merging. Each line is then kept with its event-level
``efficiency`` and its ``prescale`` (a random 1/prescale acceptance, not a counter).

Branch names follow basf2's habit: the variable ``L1PSNM(hie)`` (the prescaled bit, "output
trigger bit after prescaling and masking", basf2 ``trg/doc/index.rst``) goes through
``makeROOTCompatible`` ("(" -> "__bo", ")" -> "__bc", ``framework/utilities/src/MakeROOTCompatible.cc``)
and is stored as ``L1PSNM__bohie__bc`` -- the name real Belle II ntuples carry, so a search runs
unchanged on them. Belle lines use the same form (our convention: b2bii has no L1PSNM). Bits are
booleans; a search tests ``bit > 0.5``, which also works on basf2's float-valued branches.

Random numbers: one dedicated stream (``production.produce_chunk`` passes
``np.random.default_rng([seed, 6])``), so the trigger does not reshuffle any other detector draw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import awkward as ak
import numpy as np

from belle_rare.core import fourvector as fv
from belle_rare.simulation.detector.flat import pairs_within_events
from belle_rare.simulation.detector.kinematics import direction, helix_radius_cm
from belle_rare.simulation.detector.params import DetectorParams, PairTopology, Range, TriggerTracks

PREFIX = "L1PSNM"


def branch_name(line: str) -> str:
    """Ntuple branch of a trigger line: ``L1PSNM(line)`` made ROOT-compatible as basf2 does."""
    if not line.isidentifier():
        raise ValueError(f"trigger line '{line}' is not an identifier")
    return f"{PREFIX}__bo{line}__bc"


def _in(values: np.ndarray, window: Range) -> np.ndarray:
    return (values > window.low) & (values < window.high)


def _per_event(event: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """Number of rows passing ``mask`` in each event."""
    return np.bincount(event[mask], minlength=n)


@dataclass
class TriggerInputs:
    """Per-event quantities the lines are built from (every array has one entry per event)."""

    n_tracks: np.ndarray
    n_short_tracks: np.ndarray
    n_klm_tracks: np.ndarray
    track_open: np.ndarray  # some trigger-track pair inside the opening-angle window
    track_back_to_back: np.ndarray
    short_open: np.ndarray  # the same among short tracks (Belle)
    n_clusters: np.ndarray  # in the cluster-count theta range (c4 / icn4)
    n_clusters_all: np.ndarray
    energy_sum: np.ndarray  # lab, over the total-energy theta rings
    energy_total: np.ndarray  # lab, all clusters
    max_cluster_lab: np.ndarray
    bhabha_veto: np.ndarray
    bhabha_selection: np.ndarray
    cluster_event: np.ndarray  # flat cluster rows for the low-multiplicity bits
    cluster_e_lab: np.ndarray
    cluster_e_cm: np.ndarray
    cluster_barrel: np.ndarray
    pair_event: np.ndarray  # flat cluster pairs
    pair_delta_phi: np.ndarray  # deg, CM
    pair_theta_sum: np.ndarray  # deg, CM
    pair_e_lab_min: np.ndarray

    @property
    def n(self) -> int:
        return len(self.n_tracks)

    def any_pair(self, mask: np.ndarray) -> np.ndarray:
        return _per_event(self.pair_event, mask, self.n) > 0

    def pair_in(self, topology: PairTopology) -> np.ndarray:
        """Per pair: inside the Delta phi and theta-sum windows."""
        return _in(self.pair_delta_phi, topology.delta_phi_deg) & _in(self.pair_theta_sum, topology.theta_sum_deg)

    def clusters(self, mask: np.ndarray) -> np.ndarray:
        return _per_event(self.cluster_event, mask, self.n)


def _track_pairs(event: np.ndarray, phi: np.ndarray, n: int, window: Range) -> np.ndarray:
    """Events with a pair of rows whose Delta phi (deg, in [0, 360)) lies in ``window``."""
    pair_event, i, j = pairs_within_events(event, n)
    dphi = np.degrees(np.abs(phi[i] - phi[j])) % 360.0
    return _per_event(pair_event, _in(dphi, window), n) > 0


def _trigger_tracks(tracks: ak.Array, event: np.ndarray, cfg: TriggerTracks, rng: np.random.Generator) -> np.ndarray:
    """Mask of the track rows the track finder reports."""
    pt = np.hypot(ak.to_numpy(ak.flatten(tracks.px)), ak.to_numpy(ak.flatten(tracks.py)))
    hits = ak.to_numpy(ak.flatten(tracks.nCDCHits))
    return (pt > cfg.pt_min) & (hits >= cfg.min_cdc_hits) & (rng.random(len(event)) < cfg.efficiency)


def trigger_inputs(reco: dict[str, ak.Array], beam: np.ndarray, params: DetectorParams, rng: np.random.Generator) -> TriggerInputs:
    """The L1 inputs of every event. ``beam``: (n, 4) lab four-momentum (px, py, pz, E) of the e+e- system."""
    cfg = params.trigger
    tracks, photons = reco["Track"], reco["Photon"]
    n = len(tracks)
    f64 = np.float64
    track_event = np.repeat(np.arange(n), ak.to_numpy(ak.num(tracks)))
    px, py, pz = (ak.to_numpy(ak.flatten(tracks[c])).astype(f64) for c in ("px", "py", "pz"))
    phi0 = np.arctan2(py, px)

    # --- track trigger (draws: full-track efficiency, short-track efficiency, KLM efficiency)
    full = _trigger_tracks(tracks, track_event, cfg.tracks, rng)
    short = _trigger_tracks(tracks, track_event, cfg.short_tracks, rng) | full if cfg.short_tracks else full
    klm_layers = ak.to_numpy(ak.flatten(tracks.klmLayers))
    klm = full & (klm_layers >= cfg.klm.min_layers) & (rng.random(len(track_event)) < cfg.klm.efficiency)

    # --- trigger clusters: photons and track-matched clusters (where the helix meets the ECL)
    cal = params.calorimeter
    track_cluster_e = ak.to_numpy(ak.flatten(tracks.clusterE)).astype(f64)
    charge = ak.to_numpy(ak.flatten(tracks.charge))
    pt = np.hypot(px, py)
    theta_trk = np.arctan2(pt, pz)
    r_face = np.where(pz >= 0, cal.geometry.forward_z, -cal.geometry.backward_z) * np.tan(np.minimum(theta_trk, np.pi - theta_trk))
    radius = np.minimum(cal.geometry.barrel_radius, np.abs(r_face))
    # B along +z: a positive track turns clockwise, its position angle at radius r is phi0 - asin(r / 2R)
    bend = np.arcsin(np.clip(radius / (2.0 * helix_radius_cm(np.maximum(pt, 1e-6), params.tracking.magnetic_field)), 0.0, 1.0))
    phi_trk = phi0 - charge * bend
    has_cluster = track_cluster_e > 0
    photon_event = np.repeat(np.arange(n), ak.to_numpy(ak.num(photons)))
    energy = np.concatenate([track_cluster_e[has_cluster], ak.to_numpy(ak.flatten(photons.E)).astype(f64)])
    theta = np.concatenate([theta_trk[has_cluster], ak.to_numpy(ak.flatten(photons.clusterTheta)).astype(f64)])
    phi = np.concatenate([phi_trk[has_cluster], ak.to_numpy(ak.flatten(photons.clusterPhi)).astype(f64)])
    event = np.concatenate([track_event[has_cluster], photon_event])
    order = np.argsort(event, kind="stable")  # rows grouped by event
    energy, theta, phi, event = energy[order], theta[order], phi[order], event[order]
    seen = (energy > cfg.clusters.energy_min) & (rng.random(len(energy)) < cfg.clusters.efficiency)
    energy, theta, phi, event = energy[seen], theta[seen], phi[seen], event[seen]

    # CM frame (massless clusters pointing from the IP)
    ux, uy, uz = direction(theta, phi)
    beta = fv.cm_boost(beam[:, 3], beam[:, 0], beam[:, 1], beam[:, 2])
    cm = fv.to_cm(energy * ux, energy * uy, energy * uz, energy, beta.x[event], beta.y[event], beta.z[event])
    theta_cm = np.degrees(np.arctan2(np.hypot(cm.px, cm.py), cm.pz))
    phi_cm = np.degrees(np.arctan2(cm.py, cm.px))
    pair_event, i, j = pairs_within_events(event, n)
    e_hi, e_lo = np.maximum(cm.E[i], cm.E[j]), np.minimum(cm.E[i], cm.E[j])
    delta_phi, theta_sum = np.abs(phi_cm[i] - phi_cm[j]) % 360.0, theta_cm[i] + theta_cm[j]

    def bhabha(v) -> np.ndarray:
        both = (e_lo > v.energy_both) & (e_hi > v.energy_one)
        return _per_event(pair_event, both & _in(delta_phi, v.delta_phi_deg) & _in(theta_sum, v.theta_sum_deg), n) > 0

    theta_deg = np.degrees(theta)
    barrel = cal.regions_deg.barrel
    return TriggerInputs(
        n_tracks=_per_event(track_event, full, n),
        n_short_tracks=_per_event(track_event, short, n),
        n_klm_tracks=_per_event(track_event, klm, n),
        track_open=_track_pairs(track_event[full], phi0[full], n, cfg.track_pairs.open_deg),
        track_back_to_back=_track_pairs(track_event[full], phi0[full], n, cfg.track_pairs.back_to_back_deg),
        short_open=_track_pairs(track_event[short], phi0[short], n, cfg.track_pairs.open_deg),
        n_clusters=_per_event(event, _in(theta_deg, cfg.clusters.count_theta_deg), n),
        n_clusters_all=np.bincount(event, minlength=n),
        energy_sum=np.bincount(event, weights=energy * _in(theta_deg, cfg.energy.theta_deg), minlength=n),
        energy_total=np.bincount(event, weights=energy, minlength=n),
        max_cluster_lab=_per_event_max(event, energy, n),
        bhabha_veto=bhabha(cfg.bhabha_veto),
        bhabha_selection=bhabha(cfg.bhabha_selection),
        cluster_event=event,
        cluster_e_lab=energy,
        cluster_e_cm=cm.E,
        cluster_barrel=(theta_deg >= barrel.low) & (theta_deg <= barrel.high),
        pair_event=pair_event,
        pair_delta_phi=delta_phi,
        pair_theta_sum=theta_sum,
        pair_e_lab_min=np.minimum(energy[i], energy[j]),
    )


def _per_event_max(event: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Largest non-negative value per event (0 for events without rows)."""
    largest = np.zeros(n)
    np.maximum.at(largest, event, values)
    return largest


# ------------------------------------------------------------------------------------ lines
def belle2_lines(x: TriggerInputs, params: DetectorParams) -> dict[str, np.ndarray]:
    """Belle II GDL output lines (ftd_0031 logic; ECL bits from TrgEclMaster.cc)."""
    cfg = params.trigger
    lm = cfg.low_multiplicity
    e = cfg.energy
    veto = x.bhabha_veto
    high_cm = x.clusters(x.cluster_e_cm >= lm.high_cluster_cm)
    n_1gev_cm = x.clusters(x.cluster_e_cm >= lm.lml6_cluster_cm)
    n_1gev_barrel = x.clusters((x.cluster_e_cm >= lm.lml6_cluster_cm) & x.cluster_barrel)
    taub2b_pairs = x.any_pair(x.pair_in(lm.taub2b))
    return {
        "f": (x.n_tracks >= 1) & ~veto,
        "ff": (x.n_tracks >= 2) & ~veto,
        "fff": x.n_tracks >= 3,
        "ffo": (x.n_tracks >= 2) & ~veto & x.track_open,
        "ffb": (x.n_tracks >= 2) & ~veto & x.track_back_to_back,
        "hie": (x.energy_sum > e.high) & ~veto,
        "lowe": x.energy_sum > e.low,
        "lume": x.energy_sum > e.lum,
        "c4": (x.n_clusters >= 4) & ~veto,
        "bha3d": x.bhabha_selection,
        "lml0": (x.n_clusters_all >= lm.lml0_clusters) & (x.max_cluster_lab > lm.lml0_cluster_lab) & ~veto,
        "lml1": x.clusters((x.cluster_e_cm >= lm.high_cluster_cm) & x.cluster_barrel) > 0,
        "lml6": (n_1gev_cm == 1) & (n_1gev_barrel == 1) & (x.clusters(x.cluster_e_lab > lm.lml6_other_lab) >= 2),
        "lml8": x.any_pair(_in(x.pair_delta_phi, lm.lml8_delta_phi_deg) & (x.pair_e_lab_min > lm.lml8_cluster_lab))
        & (high_cm == 0),
        "lml10": x.any_pair(x.pair_in(lm.lml10)) & (high_cm == 0),
        "ecltaub2b": taub2b_pairs & (x.energy_total < lm.taub2b_energy_max) & (x.max_cluster_lab < lm.taub2b_cluster_max),
        "mu_pair": (x.n_klm_tracks >= 1) & (x.n_tracks >= 2),
    }


def belle_lines(x: TriggerInputs, params: DetectorParams) -> dict[str, np.ndarray]:
    """Belle GDL lines modelled on the NIM A479 sub-triggers (conditions representative)."""
    e = params.trigger.energy
    veto = x.bhabha_veto
    return {
        "two_track": (x.n_short_tracks >= 2) & (x.n_tracks >= 1) & x.short_open & ~veto,
        "three_track": (x.n_short_tracks >= 3) & (x.n_tracks >= 1),
        "hie": (x.energy_sum > e.high) & ~veto,
        "lowe": (x.energy_sum > e.low) & (x.n_tracks >= 1),
        "icn4": (x.n_clusters >= 4) & ~veto,
        "bhabha": x.bhabha_selection,
        "klm_mu": (x.n_klm_tracks >= 1) & (x.n_tracks >= 1),
    }


LINE_LOGIC: dict[str, Callable[[TriggerInputs, DetectorParams], dict[str, np.ndarray]]] = {
    "belle2": belle2_lines,
    "belle": belle_lines,
}


def emulate_trigger(reco: dict[str, ak.Array], beam: np.ndarray, params: DetectorParams, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Trigger bits per event: ``{branch_name(line): bool array}`` for every configured line.

    ``reco`` is ``simulate_detector``'s output; ``beam`` the (n, 4) lab (px, py, pz, E) of the beams.
    """
    inputs = trigger_inputs(reco, beam, params, rng)
    fired = LINE_LOGIC[params.name](inputs, params)
    bits = {}
    for line, setting in params.trigger.lines.items():
        keep = rng.random(inputs.n) < setting.efficiency / setting.prescale
        bits[branch_name(line)] = np.asarray(fired[line] & keep, dtype=bool)
    return bits


def beam_four_momentum(truth: ak.Array) -> np.ndarray:
    """(n, 4) lab four-momentum (px, py, pz, E) of the beams from a truth record."""
    return np.stack([ak.to_numpy(truth[c]) for c in ("beam_px", "beam_py", "beam_pz", "beam_E")], axis=1).astype(np.float64)
