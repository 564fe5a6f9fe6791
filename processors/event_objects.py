"""Channel-independent objects of an inclusive tau-pair event at Belle II, shared by the searches
that use them (tau3mu, taulphi): tracks from the IP, calibrated tracks and photons, the CM frame,
thrust and hemispheres, missing momentum; plus the config blocks that configure them.

Two forms: ``event_objects`` on awkward arrays (the reference) and ``flat_chunk`` (once per chunk)
+ ``flat_event_objects`` (per calibration) on flat numpy arrays, which the searches use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import awkward as ak
import numpy as np

from belle_rare.configs.loader import StrictModel
from belle_rare.processors import kinematics as kin
from belle_rare.processors.base import Calibration
from belle_rare.processors.columns import in_range
from belle_rare.processors import jagged_kernels as jk
from belle_rare.processors.event_shape import hemisphere, hemisphere_flat, thrust_axis, thrust_axis_flat

Window = tuple[float, float]
Bins = tuple[int, float, float]  # [bins, low, high]


class TrackCuts(StrictModel):
    """Tracks from the IP inside the CDC acceptance."""

    dr_max: float
    dz_max: float
    cos_theta: Window


class PhotonCuts(StrictModel):
    e_min: float
    cos_theta: Window


class RoeCuts(StrictModel):
    track_pt_min: float


def good_tracks(trk: ak.Array, cfg: TrackCuts) -> ak.Array:
    """Tracks from the IP inside the CDC acceptance."""
    cos = kin.cos_theta(trk.px, trk.py, trk.pz)
    return (abs(trk.dr) < cfg.dr_max) & (abs(trk.dz) < cfg.dz_max) & in_range(cos, cfg.cos_theta)


def event_frame(events: ak.Array) -> tuple[kin.P4, kin.Vec3, Any]:
    """(beam four-momentum, CM boost, sqrt(s)) per event."""
    beam = kin.P4(events.beamPx, events.beamPy, events.beamPz, events.beamE)
    return beam, kin.cm_boost(*[beam.E, beam.px, beam.py, beam.pz]), kin.sqrt_s(beam.E, beam.px, beam.py, beam.pz)


def scaled_tracks(trk: ak.Array, scale: float, mass: float | None = None) -> kin.P4:
    """Track four-momenta with the momentum scale applied, in the stored (pion) or the given mass hypothesis."""
    px, py, pz = trk.px * scale, trk.py * scale, trk.pz * scale
    m2 = (trk.E**2 - trk.px**2 - trk.py**2 - trk.pz**2) if mass is None else mass**2
    return kin.P4(px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + m2))


def concat_momenta(*collections: kin.P4) -> tuple[ak.Array, ak.Array, ak.Array]:
    """px, py, pz of several jagged collections, concatenated per event (input of thrust / R2)."""
    return tuple(ak.concatenate([c[k] for c in collections], axis=1) for k in range(3))  # type: ignore[return-value]


@dataclass(frozen=True)
class EventObjects:
    """Channel-independent objects of the prefiltered events under one calibration.

    ``keep`` marks the chunk's events that passed the prefilter; every other field has one entry
    per kept event (``events`` is ``events[keep]``); ``expand(..., keep)`` scatters results back.
    """

    keep: np.ndarray
    events: ak.Array
    momentum_scale: float
    beta: kin.Vec3
    roots: ak.Array
    good: ak.Array        # good-track mask
    t_lab: kin.P4         # every track, stored (pion) mass hypothesis, momentum scale applied
    t_cm: kin.P4
    tg: kin.P4            # good tracks (CM)
    g_cm: kin.P4          # photons above threshold in the acceptance (CM), energy scale applied
    thrust_axis: kin.Vec3  # of the good tracks and photons (CM)
    thrust: ak.Array
    hemi: ak.Array        # thrust hemisphere of every track
    miss: kin.P4          # missing four-momentum (CM): sqrt(s) minus the good tracks and photons


def event_objects(events: ak.Array, keep: np.ndarray, calibration: Calibration, tracks: TrackCuts,
                  photons: PhotonCuts) -> EventObjects:
    """Frames, calibrated tracks and photons, thrust, hemispheres and missing momentum of ``events[keep]``
    (awkward): the reference ``flat_event_objects`` equals (tests/test_flat_event_objects.py); the
    searches use the flat one (~60 awkward calls per calibration here, ~0.1-1 ms each)."""
    events = events[keep]
    _, beta, roots = event_frame(events)
    trk = events.Track
    good = good_tracks(trk, tracks)
    t_lab = scaled_tracks(trk, calibration.momentum_scale)
    t_cm = kin.to_cm(*t_lab, *beta)
    pho, scale = events.Photon, calibration.photon_energy_scale
    g_lab = kin.P4(pho.px * scale, pho.py * scale, pho.pz * scale, pho.E * scale)
    g_ok = (g_lab.E > photons.e_min) & in_range(kin.cos_theta(g_lab.px, g_lab.py, g_lab.pz), photons.cos_theta)
    g_cm = kin.to_cm(*(c[g_ok] for c in g_lab), *beta)
    tg = kin.P4(*(c[good] for c in t_cm))
    axis, thrust = thrust_axis(*concat_momenta(tg, g_cm))
    vis = kin.p4_add(kin.p4_sum(*tg), kin.p4_sum(*g_cm))
    return EventObjects(
        keep=keep, events=events, momentum_scale=calibration.momentum_scale, beta=beta, roots=roots, good=good,
        t_lab=t_lab, t_cm=t_cm, tg=tg, g_cm=g_cm, thrust_axis=axis, thrust=thrust,
        hemi=hemisphere(t_cm.px, t_cm.py, t_cm.pz, axis), miss=kin.P4(-vis.px, -vis.py, -vis.pz, roots - vis.E),
    )


def _numpy(x: ak.Array) -> np.ndarray:
    return np.asarray(ak.to_numpy(x))


@dataclass(frozen=True)
class FlatEventObjects:
    """``EventObjects`` as numpy arrays, for selections written on flat arrays (one awkward call
    per column here, none after): per-track columns are the lists' contents (``offsets``), photons
    likewise (``g_offsets``), per-event columns plain arrays."""

    keep: np.ndarray      # the chunk's events these are (as EventObjects.keep)
    momentum_scale: float
    offsets: np.ndarray
    event: np.ndarray     # the (kept) event of every track
    local: np.ndarray     # index of every track within its event
    track: dict[str, np.ndarray]  # the requested Track fields
    good: np.ndarray
    hemi: np.ndarray
    t_cm: kin.P4
    beta: kin.Vec3
    roots: np.ndarray
    g_offsets: np.ndarray
    g_cm: kin.P4
    miss: kin.P4
    thrust: np.ndarray


def flatten_objects(o: EventObjects, fields: list[str]) -> FlatEventObjects:
    """``o`` flattened, with the Track ``fields`` a selection needs."""
    offsets, track = jk.flatten(o.events.Track, fields)
    event = jk.list_index(offsets)
    return FlatEventObjects(
        keep=o.keep, momentum_scale=o.momentum_scale, offsets=offsets, event=event, local=np.arange(len(event)) - offsets[:-1][event], track=track,
        good=_numpy(ak.flatten(o.good, axis=1)), hemi=_numpy(ak.flatten(o.hemi, axis=1)),
        t_cm=kin.P4(*(_numpy(ak.flatten(c, axis=1)) for c in o.t_cm)), beta=kin.Vec3(*(_numpy(c) for c in o.beta)),
        roots=_numpy(o.roots), g_offsets=jk.offsets_of(np.asarray(_numpy(ak.num(o.g_cm.E, axis=1)), dtype=np.int64)),
        g_cm=kin.P4(*(_numpy(ak.flatten(c, axis=1)) for c in o.g_cm)), miss=kin.P4(*(_numpy(c) for c in o.miss)),
        thrust=np.asarray(_numpy(o.thrust), dtype=float),
    )


def rest_of_event(f: FlatEventObjects, in_roe: np.ndarray, thrust_events: np.ndarray | None = None
                  ) -> tuple[kin.P4, kin.Vec3, np.ndarray]:
    """(four-momentum, thrust axis, thrust) of the ``in_roe`` tracks and every photon (CM), per event:
    ``p4_sum`` and ``thrust_axis(concat_momenta(...))`` of the awkward version, bit for bit.

    ``thrust_events`` (a mask of the events): the thrust axis and thrust of those events only, NaN
    for the others (as for an empty rest of event) -- the thrust kernel was most of a selection's
    cost, and the searches read the rest-of-event thrust of their preselected events only."""
    tracks = kin.P4(*(jk.segment_sum(f.offsets, c, in_roe) for c in f.t_cm))
    roe = kin.p4_add(tracks, kin.P4(*(jk.segment_sum(f.g_offsets, c) for c in f.g_cm)))
    g_offsets, g_cm = f.g_offsets, f.g_cm[:3]
    if thrust_events is not None:
        in_roe = in_roe & thrust_events[f.event]
        g_offsets = jk.offsets_of(np.where(thrust_events, np.diff(f.g_offsets), 0))
        g_cm = [c[thrust_events[jk.list_index(f.g_offsets)]] for c in g_cm]
    roe_offsets = jk.offsets_of(jk.segment_count(f.offsets, in_roe))
    merged = [jk.concat_lists(roe_offsets, c[in_roe], g_offsets, g) for c, g in zip(f.t_cm[:3], g_cm)]
    axis, thrust = thrust_axis_flat(merged[0][0], *(content for _, content in merged))
    return roe, axis, thrust


@dataclass(frozen=True)
class FlatChunk:
    """A chunk's prefiltered events flattened once (what every calibration shares): the Track
    ``fields`` asked for and the photons as list contents, the beam frame per event."""

    keep: np.ndarray
    offsets: np.ndarray
    event: np.ndarray
    track: dict[str, np.ndarray]
    track_fields: list[str]  # every Track field of the input (the PID-weighting branches are checked on it)
    good: np.ndarray
    photon_offsets: np.ndarray
    photon: dict[str, np.ndarray]
    beta: kin.Vec3
    roots: np.ndarray


def _keep_lists(offsets: np.ndarray, content: dict[str, np.ndarray], keep: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The lists of the kept events (``x[keep]`` of a jagged array), flat."""
    counts = np.diff(offsets)
    entries = np.repeat(keep, counts)
    return jk.offsets_of(counts[keep]), {k: v[entries] for k, v in content.items()}


def flat_chunk(events: ak.Array, tracks: TrackCuts, fields: list[str],
               prefilter: Callable[[np.ndarray, dict[str, np.ndarray], np.ndarray], np.ndarray]) -> FlatChunk:
    """Flatten a chunk's tracks (``fields`` plus what ``good_tracks`` needs), photons and beams once,
    and keep the events ``prefilter(offsets, track, good)`` marks (numpy, all events)."""
    offsets, track = jk.flatten(events.Track, list(dict.fromkeys([*fields, "px", "py", "pz", "E", "dr", "dz"])))
    cos = kin.cos_theta(track["px"], track["py"], track["pz"])
    good = (abs(track["dr"]) < tracks.dr_max) & (abs(track["dz"]) < tracks.dz_max) & in_range(cos, tracks.cos_theta)
    keep = np.asarray(prefilter(offsets, track, good), dtype=bool)
    track["good"] = good
    kept_offsets, kept = _keep_lists(offsets, track, keep)
    good = kept.pop("good")
    photon_offsets, photon = jk.flatten(events.Photon, ["px", "py", "pz", "E"])
    photon_offsets, photon = _keep_lists(photon_offsets, photon, keep)
    beam = [_numpy(events[name])[keep] for name in ("beamE", "beamPx", "beamPy", "beamPz")]
    return FlatChunk(keep=keep, offsets=kept_offsets, event=jk.list_index(kept_offsets), track=kept,
                     track_fields=list(events.Track.fields), good=good, photon_offsets=photon_offsets, photon=photon,
                     beta=kin.cm_boost(*beam), roots=kin.sqrt_s(*beam))


def flat_event_objects(chunk: FlatChunk, calibration: Calibration, photons: PhotonCuts) -> FlatEventObjects:
    """``event_objects`` then ``flatten_objects``, computed on the flat chunk (no awkward call):
    the same operations on the lists' contents, with the per-event beta repeated per entry."""
    t, event, offsets = chunk.track, chunk.event, chunk.offsets
    t_lab = scaled_tracks(kin.P4(t["px"], t["py"], t["pz"], t["E"]), calibration.momentum_scale)
    t_cm = kin.to_cm(*t_lab, *(b[event] for b in chunk.beta))
    pho, scale = chunk.photon, calibration.photon_energy_scale
    g_lab = kin.P4(pho["px"] * scale, pho["py"] * scale, pho["pz"] * scale, pho["E"] * scale)
    g_ok = (g_lab.E > photons.e_min) & in_range(kin.cos_theta(g_lab.px, g_lab.py, g_lab.pz), photons.cos_theta)
    g_offsets = jk.offsets_of(jk.segment_count(chunk.photon_offsets, g_ok))
    g_event = jk.list_index(chunk.photon_offsets)[g_ok]
    g_cm = kin.to_cm(*(c[g_ok] for c in g_lab), *(b[g_event] for b in chunk.beta))
    tg_offsets = jk.offsets_of(jk.segment_count(offsets, chunk.good))
    tg = kin.P4(*(c[chunk.good] for c in t_cm))
    merged = [jk.concat_lists(tg_offsets, c, g_offsets, g) for c, g in zip(tg[:3], g_cm[:3])]
    axis, thrust = thrust_axis_flat(merged[0][0], *(content for _, content in merged))
    vis = kin.p4_add(kin.P4(*(jk.segment_sum(tg_offsets, c) for c in tg)), kin.P4(*(jk.segment_sum(g_offsets, c) for c in g_cm)))
    return FlatEventObjects(
        keep=chunk.keep, momentum_scale=calibration.momentum_scale, offsets=offsets, event=event,
        local=np.arange(len(event)) - offsets[:-1][event], track=t, good=chunk.good,
        hemi=hemisphere_flat(t_cm.px, t_cm.py, t_cm.pz, kin.Vec3(*(c[event] for c in axis))), t_cm=t_cm,
        beta=chunk.beta, roots=chunk.roots, g_offsets=g_offsets, g_cm=g_cm,
        miss=kin.P4(-vis.px, -vis.py, -vis.pz, chunk.roots - vis.E), thrust=np.asarray(thrust, dtype=float),
    )

