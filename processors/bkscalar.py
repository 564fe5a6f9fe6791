"""B -> K S, S long-lived (Belle II, 189 /fb; arXiv:2306.02830): displaced vertex, bump hunt in M_red.

Eight channels: B+ -> K+ S and B0 -> K*0 (-> K+ pi-) S, times S -> e+e-, mu+mu-, pi+pi-, K+K-
(``K_ee`` ... ``Kst_KK``). The B is fully reconstructed from prompt tracks (the kaon, the K*0's pion)
and the two S daughters, which may come from anywhere: every opposite-charge track pair is fitted to a
common vertex from the stored perigee parameters (``processors/vertex_fit.py``; basf2 fits such vertices
in the analysis, the V0Finder only covers K_S / Lambda / photon mass windows), giving the vertex chi^2,
d_v and the transverse pointing cos(alpha). The paper's cuts (values and sections in
``configs/searches/bkscalar.yaml``): M_bc, |dE|, R2, cos(alpha), the displaced tracks' extrapolated polar
angle, the K_S veto, the peaking-background vetoes of its Table I, the conversion vetoes at the PXD / SVD
radii for e+e-; best candidate by smallest |dE|. The fit variable is the reduced mass
M_red = sqrt(M^2 - 4 m_x^2) per channel (``m_reduced``), also for every configured lifetime by
reweighting the generated one (``processors/lifetime.py``; region ``SR_ctau<c tau>``), for signal
datasets whose generation parameters carry ``ctau``, for targets up to twice the generated c tau.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import awkward as ak
import hist
import numpy as np
import pydantic
from coffea.analysis_tools import Weights

from belle_rare.configs.loader import StrictModel
from belle_rare.core.errors import UserError
from belle_rare.core.histograms import count_axis, fill_counts, new_hist, regular
from belle_rare.core.units import pdg_mass
from belle_rare.processors import jagged_kernels as jagged
from belle_rare.processors import kinematics as kin
from belle_rare.processors.base import Calibration, SearchProcessor, Selection, packed
from belle_rare.processors.columns import in_range
from belle_rare.processors.event_objects import Bins, PhotonCuts, TrackCuts, Window, event_frame, good_tracks
from belle_rare.processors.event_shape import fox_wolfram_r2_two_lists
from belle_rare.processors.lifetime import lifetime_weight, proper_decay_length
from belle_rare.processors.registry import Demo, Search, builtin_file
from belle_rare.processors.vertex_fit import (
    TrackParameters, VertexFit, closest_approach_pairs, covariance_branches, fit_pairs, measured_lines,
)

DECAYS = ("ee", "mumu", "pipi", "KK")
DAUGHTER_MASS = {"ee": pdg_mass(11), "mumu": pdg_mass(13), "pipi": pdg_mass(211), "KK": pdg_mass(321)}
B_MODES = ("K", "Kst")
CHANNELS = tuple(f"{b}_{x}" for b in B_MODES for x in DECAYS)
KAON_MASS, PION_MASS = pdg_mass(321), pdg_mass(211)
#: candidate-level cuts, in cutflow order (then the event-level R2 cut)
CANDIDATE_CUTS = (
    "B candidate", "S daughter ID", "vertex fit", "displaced tracks 32-150 deg", "pointing cos(alpha)",
    "K_S veto", "peaking-background vetoes", "conversion veto", "M_bc", "delta E",
)
#: those that depend on the S pair alone (evaluated per pair)
PAIR_CUTS = CANDIDATE_CUTS[1:-2]
TRACK_FIELDS = ("px", "py", "pz", "charge", "dr", "dz")
#: the perigee-covariance track fields the vertex fit reads
TRACK_COVARIANCE_FIELDS = tuple(name for name, _, _ in covariance_branches())


def decay_of(channel: str) -> str:
    return channel.split("_", 1)[1]


def b_mode_of(channel: str) -> str:
    return channel.split("_", 1)[0]


# ---------------------------------------------------------------------------------------------- config
class PerDecay(StrictModel):
    """One value per S decay."""

    ee: Any
    mumu: Any
    pipi: Any
    KK: Any

    def __getitem__(self, decay: str) -> Any:
        return getattr(self, decay)


class IdCut(StrictModel):
    id_branch: str
    id_min: float


class DaughterId(PerDecay):
    ee: IdCut
    mumu: IdCut
    pipi: IdCut
    KK: IdCut


class PerDecayFloat(PerDecay):
    ee: float
    mumu: float
    pipi: float
    KK: float


class PerDecayWindows(PerDecay):
    ee: list[Window]
    mumu: list[Window]
    pipi: list[Window]
    KK: list[Window]


class Vertex(StrictModel):
    prefit_cos_alpha_min: float
    chi2_max: float
    cos_alpha_min: PerDecayFloat
    daughter_theta_deg: Window
    cdc_outer_radius: float = pydantic.Field(gt=0)


class BCandidate(StrictModel):
    mbc_min: float
    de_max: PerDecayFloat
    r2_max: PerDecayFloat
    kstar_mass_window: Window


class ConversionVeto(StrictModel):
    mass_max: float
    dv_windows: list[Window]


class Histograms(StrictModel):
    m_reduced: Bins
    mbc: Bins
    de: Bins
    dv: Bins
    cos_alpha: Bins


class BKScalarConfig(StrictModel):
    luminosity: str
    tracks: TrackCuts
    photons: PhotonCuts
    kaon: IdCut
    pion: IdCut
    daughters: DaughterId
    vertex: Vertex
    b_candidate: BCandidate
    ks_veto: Window
    peaking_vetoes: PerDecayWindows
    conversion_veto: ConversionVeto
    lifetimes_cm: list[float] = pydantic.Field(default_factory=list)
    histograms: Histograms


# ---------------------------------------------------------------------------------------------- objects
@dataclass(frozen=True)
class Pairs:
    """The opposite-charge track pairs of the chunk that pass the prefit pointing and whose tracks pass
    some channel's daughter ID, flat: event, global track indices (positive first), its vertex fit
    (momenta at momentum scale 1) and whether both daughters pass the polar-angle window. Tracks are
    straight lines, so the fit's geometry does not depend on the momentum scale: one fit per chunk
    serves every calibration (``ScalarEvents.p1`` / ``p2`` carry the scaled momenta). The pairs whose
    tracks pass no daughter ID (about half) are kept apart, unfitted and before the prefit pointing
    (``unidentified``: event, i, j; ``pointing_ok(index)`` the pointing requirement of those at ``index``,
    computed once per pair on first use): every channel drops
    them at "S daughter ID", so they only count towards "B candidate", which needs them only in the
    events that have no candidate with an identified pair."""

    event: np.ndarray       # sorted
    i: np.ndarray
    j: np.ndarray
    fit: VertexFit
    theta_ok: np.ndarray
    unidentified: tuple[np.ndarray, np.ndarray, np.ndarray]
    pointing_ok: Callable[[np.ndarray], np.ndarray]

    def per_event_max(self, values: np.ndarray, n: int) -> np.ndarray:
        """The largest of ``values`` (one per pair, integer) per event of ``n``, -1 where the event has no pair."""
        out = np.full(n, -1, dtype=values.dtype)
        if len(values):
            first = np.flatnonzero(np.r_[True, self.event[1:] != self.event[:-1]])
            out[self.event[first]] = np.maximum.reduceat(values, first)
        return out


@dataclass(frozen=True)
class ScalarChunk:
    """What every calibration of a chunk shares (``chunk_objects``): flat track columns (unscaled),
    the prompt-track mask, the event frame, the fitted pairs, and a cache of the candidate-level
    selection by (momentum scale, channel) -- the photon-energy calibrations change only R2."""

    n: int
    start: np.ndarray       # first global track index of each event
    track_event: np.ndarray
    tracks: dict[str, np.ndarray]
    prompt: np.ndarray      # good track from the IP
    beta: tuple[np.ndarray, np.ndarray, np.ndarray]
    roots: np.ndarray
    pairs: Pairs
    cache: dict[Any, Any]
    # the event shape's inputs in the stored dtypes (float32), as the awkward expressions had them
    offsets: np.ndarray                                # tracks per event, int64 offsets
    momenta: tuple[np.ndarray, np.ndarray, np.ndarray]  # track px, py, pz
    photon_offsets: np.ndarray
    photons: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # photon px, py, pz, E
    beta_stored: tuple[np.ndarray, np.ndarray, np.ndarray]          # CM velocity per event


@dataclass(frozen=True)
class ScalarEvents:
    """Channel-independent objects of one chunk under one calibration (flat track arrays, global indices)."""

    chunk: ScalarChunk      # what every calibration shares (event frame, prompt tracks, fitted pairs, cache)
    tracks: dict[str, np.ndarray]  # the chunk's tracks at this calibration's momentum scale
    r2: np.ndarray
    p1: np.ndarray          # the pairs' refitted momenta at this calibration's momentum scale
    p2: np.ndarray
    lifetime_weights: dict[float, np.ndarray]  # nominal calibration only (fill_nominal)
    momentum_scale: float


def _cartesian(event_a: np.ndarray, event_b: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (into a, into b) of every a x b combination within the same event (a, b sorted by event),
    a outer, b inner."""
    offsets_a, offsets_b = (jagged.offsets_of(np.bincount(e, minlength=n)) for e in (event_a, event_b))
    _, ia, ib = jagged.cartesian(offsets_a, np.ones(len(event_a), dtype=bool), offsets_b, np.ones(len(event_b), dtype=bool))
    return ia, ib


def _first_per_event(event: np.ndarray, score: np.ndarray, valid: np.ndarray, n: int) -> np.ndarray:
    """Index of the lowest-score valid candidate per event, -1 where none; ``event`` sorted. Ties (and
    events whose valid scores are all NaN) go to the first candidate, as a stable sort by (event, score)
    would: the minimum per event run, then its first occurrence, without sorting."""
    best = np.full(n, -1)
    idx = np.flatnonzero(valid)
    if len(idx) == 0:
        return best
    ev, sc = event[idx], score[idx]
    starts = np.flatnonzero(np.r_[True, ev[1:] != ev[:-1]])
    run = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(idx)]))
    lowest = np.fmin.reduceat(sc, starts)[run]  # NaN only where every score of the event is
    hits = np.flatnonzero((sc == lowest) | np.isnan(lowest))
    first = hits[np.r_[True, run[hits][1:] != run[hits][:-1]]]
    best[ev[first]] = idx[first]
    return best


class BKScalarProcessor(SearchProcessor):
    """B -> K(*) S, S -> e e / mu mu / pi pi / K K (Belle II, 189 /fb): displaced vertex, reduced mass."""

    name = "bkscalar"
    experiments = ("belle2",)
    channels = CHANNELS
    config_model = BKScalarConfig
    # every Selection value is one entry per event (the lifetime weights, a dict, are nominal only)
    region_weights_only = True
    branches = (
        "nTrack", "Track_px", "Track_py", "Track_pz", "Track_E", "Track_charge", "Track_dr", "Track_dz",
        *(f"Track_{f}" for f in TRACK_COVARIANCE_FIELDS),
        "nPhoton", "Photon_E", "Photon_px", "Photon_py", "Photon_pz",
        "beamE", "beamPx", "beamPy", "beamPz", "__weight__",
    )

    def required_branches(self) -> list[str]:
        """The class's branches and the particle-ID branch of every ID cut of the config."""
        return super().required_branches() + [f"Track_{f}" for f in self.id_fields() if f"Track_{f}" not in self.branches]

    def id_fields(self) -> list[str]:
        """The track ID fields the config's cuts read (kaon, pion, each S daughter decay)."""
        cfg = self.config
        cuts = [cfg.kaon, cfg.pion, *(getattr(cfg.daughters, d) for d in DaughterId.model_fields)]
        return sorted({cut.id_branch for cut in cuts})

    def setup(self) -> None:
        if self.pid_weighting:
            raise UserError("search 'bkscalar' has no PID-weighted mode yet (--pid-weights): its selection uses the thrown PID")

    # ------------------------------------------------------------------ histograms
    def book(self) -> dict[str, hist.Hist]:
        h = self.config.histograms
        return {
            "yields": new_hist(count_axis(), systematics=True),
            "m_reduced": new_hist(regular(*h.m_reduced, "m_reduced", r"$M_{\mathrm{red}}$ [GeV]")),
            "mbc_de": new_hist(regular(*h.mbc, "mbc", r"$M_{bc}$ [GeV]"), regular(*h.de, "de", r"$\Delta E$ [GeV]")),
            "dv": new_hist(regular(*h.dv, "dv", r"$d_v$ [cm]")),
            "cos_alpha": new_hist(regular(*h.cos_alpha, "cos_alpha", r"$\cos\alpha$")),
        }

    # ------------------------------------------------------------------ physics
    def chunk_objects(self, events: ak.Array) -> ScalarChunk:
        """Flat tracks and photons, prompt mask, event frame and the vertex-fitted pairs, once per chunk (the
        fit was the top cost, then awkward dispatch: profiled in README "Scale")."""
        cfg = self.config
        n = len(events)
        _, beta, roots = event_frame(events)
        trk = events.Track
        offsets, stored = jagged.flatten(trk, [*TRACK_FIELDS, *self.id_fields(), *TRACK_COVARIANCE_FIELDS])
        start = offsets[:-1]
        flat = dict(stored)
        for f in ("px", "py", "pz"):
            flat[f] = stored[f].astype(np.float64)
        track_event = jagged.list_index(offsets)
        prompt = ak.to_numpy(ak.flatten(good_tracks(trk, cfg.tracks)))
        pairs = self._fitted_pairs(flat, offsets, track_event, prompt, n)
        photon_offsets, photons = jagged.flatten(events.Photon, ["px", "py", "pz", "E"])
        beta_stored = tuple(np.asarray(ak.to_numpy(c)) for c in beta)
        return ScalarChunk(n, start, track_event, flat, prompt, tuple(np.asarray(c, dtype=np.float64) for c in beta_stored),
                           np.asarray(ak.to_numpy(roots), dtype=np.float64), pairs, {}, offsets,
                           (stored["px"], stored["py"], stored["pz"]), photon_offsets,
                           (photons["px"], photons["py"], photons["pz"], photons["E"]), beta_stored)

    def objects(self, events: ak.Array, calibration: Calibration, chunk: ScalarChunk | None = None) -> ScalarEvents:
        chunk = self.chunk_objects(events) if chunk is None else chunk
        scale = calibration.momentum_scale
        flat = dict(chunk.tracks)
        for f in ("px", "py", "pz"):
            flat[f] = chunk.tracks[f] * scale
        fit = chunk.pairs.fit
        p1, p2 = (fit.p1, fit.p2) if scale == 1.0 else (fit.p1 * scale, fit.p2 * scale)
        return ScalarEvents(chunk, flat, self._r2(chunk, calibration), p1, p2,
                            self.lifetime_weights(events) if calibration.is_nominal else {}, scale)

    def _r2(self, chunk: ScalarChunk, calibration: Calibration) -> np.ndarray:
        """Fox-Wolfram R2 per event of the good tracks (pion mass) and photons in the CM frame, on flat
        arrays with the stored dtypes: the same operations as the awkward expressions it replaced."""
        cfg = self.config
        g, scale = calibration.photon_energy_scale, calibration.momentum_scale

        def photons_cm() -> tuple[np.ndarray, Any]:
            px, py, pz, e = (c * g for c in chunk.photons)
            g_ok = (e > cfg.photons.e_min) & in_range(kin.cos_theta(px, py, pz), cfg.photons.cos_theta)
            photon_event = jagged.list_index(chunk.photon_offsets)[g_ok]
            g_cm = kin.to_cm(px[g_ok], py[g_ok], pz[g_ok], e[g_ok], *(b[photon_event] for b in chunk.beta_stored))
            return jagged.offsets_of(jagged.segment_count(chunk.photon_offsets, g_ok)), g_cm

        def tracks_cm() -> tuple[np.ndarray, Any]:
            tx, ty, tz = chunk.momenta
            t_lab = (tx * scale, ty * scale, tz * scale, np.sqrt((tx**2 + ty**2 + tz**2) * scale**2 + PION_MASS**2))
            good = chunk.prompt
            t_cm = kin.to_cm(*(c[good] for c in t_lab), *(b[chunk.track_event[good]] for b in chunk.beta_stored))
            return jagged.offsets_of(jagged.segment_count(chunk.offsets, good)), t_cm

        # the 5 calibrations have 3 momentum and 3 photon-energy scales: each side boosted once per scale
        for key, make in ((("R2 photons", g), photons_cm), (("R2 tracks", scale), tracks_cm)):
            if key not in chunk.cache:
                chunk.cache[key] = make()
        g_offsets, g_cm = chunk.cache[("R2 photons", g)]
        t_offsets, t_cm = chunk.cache[("R2 tracks", scale)]
        return fox_wolfram_r2_two_lists(t_offsets, tuple(t_cm[:3]), g_offsets, tuple(g_cm[:3]))

    def _fitted_pairs(self, flat: dict[str, np.ndarray], offsets: np.ndarray, track_event: np.ndarray, prompt: np.ndarray,
                      n: int) -> Pairs:
        """Every opposite-charge pair of the events with a prompt kaon candidate, vertex-fitted."""
        cfg = self.config
        # every opposite-charge pair (in ak.argcombinations' order), positive track first, fitted to a common
        # vertex; only in events with a prompt kaon candidate (every channel needs one)
        has_kaon = np.bincount(track_event[prompt & (flat[cfg.kaon.id_branch] > cfg.kaon.id_min)], minlength=n) > 0
        pair_offsets, i, j = jagged.pairs(offsets, has_kaon[track_event])
        pe = jagged.list_index(pair_offsets)
        keep = flat["charge"][i] * flat["charge"][j] < 0
        pe, i, j = pe[keep], i[keep], j[keep]
        swap = flat["charge"][i] < 0
        i, j = np.where(swap, j, i), np.where(swap, i, j)
        tracks = TrackParameters.from_columns(flat)
        lines: list[Any] = []

        def pointing(i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """A loose pointing requirement at the lines' closest approach before the fit (far below the
            cut), and that starting point; row by row, so the same bits for any subset of pairs."""
            if not lines:
                lines.append(measured_lines(tracks))
            start_point = closest_approach_pairs(tracks, i, j, lines[0])
            p_pair = flat["px"][i] + flat["px"][j], flat["py"][i] + flat["py"][j]
            cos_alpha = (start_point[:, 0] * p_pair[0] + start_point[:, 1] * p_pair[1]) / np.maximum(
                np.hypot(start_point[:, 0], start_point[:, 1]) * np.hypot(*p_pair), np.finfo(float).tiny)
            return cos_alpha > cfg.vertex.prefit_cos_alpha_min, start_point

        # only pairs whose two tracks pass some channel's daughter ID are fitted (about half are not:
        # every channel's selection drops them at "S daughter ID", before any fitted value is read);
        # the rest are kept apart for the "B candidate" step
        identified = np.zeros(len(i), dtype=bool)
        for ident in (cfg.daughters[x] for x in DECAYS):
            identified |= (flat[ident.id_branch][i] > ident.id_min) & (flat[ident.id_branch][j] > ident.id_min)
        unidentified = (pe[~identified], i[~identified], j[~identified])
        known = np.full(len(unidentified[0]), -1, dtype=np.int8)  # their pointing: -1 not yet computed

        def unidentified_pointing(index: np.ndarray) -> np.ndarray:
            todo = index[known[index] < 0]
            known[todo] = pointing(unidentified[1][todo], unidentified[2][todo])[0]
            return known[index] == 1

        pe, i, j = pe[identified], i[identified], j[identified]
        keep, start_point = pointing(i, j)
        pe, i, j, start_point = pe[keep], i[keep], j[keep], start_point[keep]
        fit = fit_pairs(tracks, i, j, start_point)
        return Pairs(pe, i, j, fit, self._daughter_theta_ok(fit), unidentified, unidentified_pointing)

    def _daughter_theta_ok(self, fit: VertexFit) -> np.ndarray:
        """Both daughters' polar angle, seen from the IP, where their line from the vertex leaves the CDC
        (the paper's "extrapolated polar angle ... from track kinematics and the track vertex")."""
        v, radius = fit.vertex, self.config.vertex.cdc_outer_radius
        lo, hi = np.radians(self.config.vertex.daughter_theta_deg)
        ok = np.ones(len(v), dtype=bool)
        for p in (fit.p1, fit.p2):
            pt = np.maximum(np.hypot(p[:, 0], p[:, 1]), np.finfo(float).tiny)
            b = (v[:, 0] * p[:, 0] + v[:, 1] * p[:, 1]) / pt
            s = -b + np.sqrt(np.maximum(b * b + radius**2 - (v[:, 0] ** 2 + v[:, 1] ** 2), 0.0))
            theta = np.arctan2(radius, v[:, 2] + s * p[:, 2] / pt)
            ok &= (theta > lo) & (theta < hi)
        return ok

    def select(self, events: ak.Array, objects: ScalarEvents, channel: str) -> Selection:
        cfg, o = self.config, objects
        # the candidate-level cuts and values depend on the momentum scale only: the photon-energy
        # calibrations take the nominal calibration's and change R2
        key = ("candidates", o.momentum_scale, channel)
        if key not in o.chunk.cache:
            o.chunk.cache[key] = self._candidates(o, channel)
        candidate_cuts, candidate_values = o.chunk.cache[key]
        event_cuts, values = dict(candidate_cuts), dict(candidate_values)
        event_cuts["R2"] = np.nan_to_num(o.r2, nan=1.0) < cfg.b_candidate.r2_max[decay_of(channel)]
        cuts = packed(event_cuts)
        signal = cuts.all(*cuts.names)
        if o.lifetime_weights:
            values["lifetime_weights"] = o.lifetime_weights
        return Selection(cuts, values=values, regions={"SR": signal})

    def _b_system(self, o: ScalarEvents, mode: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The prompt K+ (or K*0 -> K+ pi-) four-momenta, and every (system, S pair) combination in the same
        event with no shared track: (system, system index, pair index, event) per B candidate; and per
        event whether it has a B candidate, with an identified or an unidentified pair."""
        cfg, t, pairs = self.config, o.tracks, o.chunk.pairs
        kaons = np.flatnonzero(o.chunk.prompt & (t[cfg.kaon.id_branch] > cfg.kaon.id_min))
        if mode == "K":
            first = kaons
            system = {"px": t["px"][first], "py": t["py"][first], "pz": t["pz"][first]}
            system["E"] = np.sqrt(system["px"] ** 2 + system["py"] ** 2 + system["pz"] ** 2 + KAON_MASS**2)
            members = (first,)
            sys_event = o.chunk.track_event[first]
        else:
            pions = np.flatnonzero(o.chunk.prompt & (t[cfg.pion.id_branch] > cfg.pion.id_min))
            ka, pi = _cartesian(o.chunk.track_event[kaons], o.chunk.track_event[pions], o.chunk.n)
            ka, pi = kaons[ka], pions[pi]
            ok = (ka != pi) & (t["charge"][ka] * t["charge"][pi] < 0)
            ka, pi = ka[ok], pi[ok]
            e_k = np.sqrt(t["px"][ka] ** 2 + t["py"][ka] ** 2 + t["pz"][ka] ** 2 + KAON_MASS**2)
            e_p = np.sqrt(t["px"][pi] ** 2 + t["py"][pi] ** 2 + t["pz"][pi] ** 2 + PION_MASS**2)
            system = {c: t[c][ka] + t[c][pi] for c in ("px", "py", "pz")}
            system["E"] = e_k + e_p
            m_kpi = kin.mass(system["px"], system["py"], system["pz"], system["E"])
            window = (m_kpi > cfg.b_candidate.kstar_mass_window[0]) & (m_kpi < cfg.b_candidate.kstar_mass_window[1])
            system = {c: v[window] for c, v in system.items()}
            members = (ka[window], pi[window])
            sys_event = o.chunk.track_event[members[0]]

        def combine(event: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            # B candidates: (K or K*0) x S pair in the same event, no shared track
            cs, cp = _cartesian(sys_event, event, o.chunk.n)
            distinct = np.ones(len(cs), dtype=bool)
            for m in members:
                distinct &= (m[cs] != i[cp]) & (m[cs] != j[cp])
            return cs[distinct], cp[distinct]

        def candidates() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            cs, cp = combine(pairs.event, pairs.i, pairs.j)
            has = np.bincount(pairs.event[cp], minlength=o.chunk.n) > 0
            # the unidentified pairs (that pass the prefit pointing) only of the events without a candidate so far
            event, i, j = pairs.unidentified
            rest = np.flatnonzero(~has[event])
            rest = rest[pairs.pointing_ok(rest)]
            _, cp_rest = combine(event[rest], i[rest], j[rest])
            return cs, cp, has | (np.bincount(event[rest][cp_rest], minlength=o.chunk.n) > 0)

        if mode == "K":
            # the prompt kaons do not depend on the momentum scale: one set of combinations per chunk
            if ("K combinations",) not in o.chunk.cache:
                o.chunk.cache[("K combinations",)] = candidates()
            cs, cp, has_candidate = o.chunk.cache[("K combinations",)]
        else:
            cs, cp, has_candidate = candidates()
        return system, cs, cp, pairs.event[cp], has_candidate

    def _pair_masses(self, o: ScalarEvents, x: str) -> dict[str, np.ndarray]:
        """Per fitted pair, in the S decay's mass hypothesis (refitted momenta at the vertex): energies,
        momentum sum, M, M_red, and M with both tracks as pions (the K_S veto)."""
        m_x = DAUGHTER_MASS[x]
        # |p|^2 of each daughter, the hypothesis-independent part (summed x, y, z in that order, as np.sum),
        # and M with both tracks as pions (the K_S veto of every decay)
        p1_sq, p2_sq, s4, m_pipi = self._cached(o, ("pair momenta",), lambda: self._pair_momenta(o))
        e1 = np.sqrt(p1_sq + m_x**2)
        e2 = np.sqrt(p2_sq + m_x**2)
        m_s = kin.mass(s4[:, 0], s4[:, 1], s4[:, 2], e1 + e2)
        return {"E1": e1, "E2": e2, "px": s4[:, 0], "py": s4[:, 1], "pz": s4[:, 2], "m_s": m_s,
                "m_red": np.sqrt(np.maximum(m_s**2 - 4 * m_x**2, 0.0)), "m_pipi": m_pipi}

    @staticmethod
    def _pair_momenta(o: ScalarEvents) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per fitted pair: each daughter's |p|^2, the momentum sum and the pi pi mass."""
        p1_sq, p2_sq = (p[:, 0] ** 2 + p[:, 1] ** 2 + p[:, 2] ** 2 for p in (o.p1, o.p2))
        s4 = o.p1 + o.p2
        e1_pi, e2_pi = (np.sqrt(p_sq + PION_MASS**2) for p_sq in (p1_sq, p2_sq))
        return p1_sq, p2_sq, s4, kin.mass(s4[:, 0], s4[:, 1], s4[:, 2], e1_pi + e2_pi)

    def _cached(self, o: ScalarEvents, key: tuple[Any, ...], make: Any) -> Any:
        """``make()`` once per chunk, momentum scale and ``key`` (shared by channels and calibrations)."""
        full = (key[0], o.momentum_scale, *key[1:])
        if full not in o.chunk.cache:
            o.chunk.cache[full] = make()
        return o.chunk.cache[full]

    def _pair_cuts(self, o: ScalarEvents, x: str) -> dict[str, np.ndarray]:
        """The candidate cuts that depend on the S pair alone (daughter ID ... conversion veto), per fitted
        pair in the decay's hypothesis, each ANDed with the ones before it (cutflow order)."""
        cfg, t, pairs, fit = self.config, o.tracks, o.chunk.pairs, o.chunk.pairs.fit
        pair = self._cached(o, ("pair masses", x), lambda: self._pair_masses(o, x))
        m_s, m_pipi = pair["m_s"], pair["m_pipi"]
        ident = cfg.daughters[x]
        in_windows = lambda value, windows: np.logical_or.reduce(  # noqa: E731
            [(value > lo) & (value < hi) for lo, hi in windows] + [np.zeros(len(value), dtype=bool)])
        conversion = (x == "ee") & (m_s < cfg.conversion_veto.mass_max) & in_windows(fit.dv, cfg.conversion_veto.dv_windows)
        masks = {
            "S daughter ID": (t[ident.id_branch][pairs.i] > ident.id_min) & (t[ident.id_branch][pairs.j] > ident.id_min),
            "vertex fit": np.isfinite(fit.chi2) & (fit.chi2 < cfg.vertex.chi2_max),
            "displaced tracks 32-150 deg": pairs.theta_ok,
            "pointing cos(alpha)": fit.cos_alpha > cfg.vertex.cos_alpha_min[x],
            "K_S veto": ~((m_pipi > cfg.ks_veto[0]) & (m_pipi < cfg.ks_veto[1])),
            "peaking-background vetoes": ~in_windows(m_s, cfg.peaking_vetoes[x]),
            "conversion veto": ~conversion,
        }
        cuts, running = {}, np.ones(len(pairs.i), dtype=bool)
        for name in PAIR_CUTS:
            running = running & masks[name]
            cuts[name] = running
        return cuts

    def _candidates(self, o: ScalarEvents, channel: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The candidate-level event cuts (cutflow order, before R2) and the best candidate's values.

        The cuts on the S pair alone are evaluated per pair (``_pair_cuts``); the B kinematics (boost to
        the CM frame, M_bc, dE) only for the candidates that pass them -- the cutflow needs no more."""
        cfg = self.config
        x, mode = decay_of(channel), b_mode_of(channel)
        fit = o.chunk.pairs.fit
        system, cs, cp, event, has_candidate = self._cached(o, ("system", mode), lambda: self._b_system(o, mode))
        pair = self._cached(o, ("pair masses", x), lambda: self._pair_masses(o, x))
        pair_cuts = self._cached(o, ("pair cuts", x), lambda: self._pair_cuts(o, x))

        # an event passes the k-th pair cut if one of its pairs in a B candidate passes the first k: the
        # highest stage per event over the (identified) pairs in a candidate (-1: none)
        stage = self._cached(o, ("pair stage", x), lambda: np.sum(list(pair_cuts.values()), axis=0, dtype=np.int8))
        in_candidate = self._cached(o, ("in candidate", mode), lambda: np.bincount(cp, minlength=len(o.chunk.pairs.i)) > 0)
        best_stage = o.chunk.pairs.per_event_max(np.where(in_candidate, stage, np.int8(-1)), o.chunk.n)
        event_cuts = {"B candidate": has_candidate}
        for k, name in enumerate(pair_cuts, start=1):
            event_cuts[name] = best_stage >= k
        # every candidate cut but M_bc and dE passed: the (M_bc, dE) control plane
        before = np.flatnonzero(pair_cuts["conversion veto"][cp])
        cs, cp, event = cs[before], cp[before], event[before]

        # the B in the CM frame
        b_lab = kin.P4(system["px"][cs] + pair["px"][cp], system["py"][cs] + pair["py"][cp], system["pz"][cs] + pair["pz"][cp],
                       system["E"][cs] + pair["E1"][cp] + pair["E2"][cp])
        b_cm = kin.to_cm(*b_lab, *(c[event] for c in o.chunk.beta))
        mbc, de = kin.mbc_deltae(*b_cm, o.chunk.roots[event])
        running = mbc > cfg.b_candidate.mbc_min
        event_cuts["M_bc"] = np.bincount(event[running], minlength=o.chunk.n) > 0
        running = running & (np.abs(de) < cfg.b_candidate.de_max[x])
        event_cuts["delta E"] = np.bincount(event[running], minlength=o.chunk.n) > 0

        def best_of(valid: np.ndarray) -> Any:
            best = _first_per_event(event, np.abs(de), valid, o.chunk.n)
            return lambda values: np.where(best >= 0, values[np.maximum(best, 0)] if len(values) else np.nan, np.nan)

        take, take_pre = best_of(running), best_of(np.ones(len(cp), dtype=bool))
        values = {"m_s": take(pair["m_s"][cp]), "m_reduced": take(pair["m_red"][cp]), "mbc": take(mbc), "de": take(de),
                  "dv": take(fit.dv[cp]), "cos_alpha": take(fit.cos_alpha[cp]), "chi2": take(fit.chi2[cp]),
                  "mbc_before_b_cuts": take_pre(mbc), "de_before_b_cuts": take_pre(de)}
        return event_cuts, values

    # ------------------------------------------------------------------ weights
    def add_weights(self, weights: Weights, selection: Selection, channel: str) -> None:
        """Tracking (3 or 4 tracks), trigger, luminosity."""
        self.add_common_weights(weights, len(selection.values["mbc"]), 3 if b_mode_of(channel) == "K" else 4)

    # ------------------------------------------------------------------ fills
    def fill(self, hists: dict[str, hist.Hist], selection: Selection, channel: str, variation: str, weight: np.ndarray) -> None:
        fill_counts(hists["yields"], channel, variation, weight, {"SR": selection.regions["SR"]})

    def fill_nominal(self, hists: dict[str, hist.Hist], selection: Selection, channel: str, weight: np.ndarray) -> None:
        v, sr = selection.values, selection.regions["SR"]
        hists["m_reduced"].fill(channel=channel, region="SR", m_reduced=v["m_reduced"][sr], weight=weight[sr])
        for ctau, w in selection.values.get("lifetime_weights", {}).items():
            hists["m_reduced"].fill(channel=channel, region=f"SR_ctau{ctau:g}", m_reduced=v["m_reduced"][sr], weight=(weight * w)[sr])
        # control plane: every cut but M_bc and dE (the best |dE| candidate among those passing the others)
        before_b = selection.cuts.all(*[c for c in selection.cuts.names if c not in ("M_bc", "delta E")])
        hists["mbc_de"].fill(channel=channel, region="no M_bc, dE cut", mbc=v["mbc_before_b_cuts"][before_b],
                             de=v["de_before_b_cuts"][before_b], weight=weight[before_b])
        hists["dv"].fill(channel=channel, region="SR", dv=v["dv"][sr], weight=weight[sr])
        hists["cos_alpha"].fill(channel=channel, region="SR", cos_alpha=v["cos_alpha"][sr], weight=weight[sr])

    def lifetime_weights(self, events: ak.Array) -> dict[float, np.ndarray]:
        """For a signal dataset generated at a c tau (fileset metadata ``parameters``), each configured
        lifetime's per-event reweighting factor (filled as ``SR_ctau<c tau>``). Only targets up to twice
        the generated c tau: beyond, the weight's variance is infinite (generate at the longest c tau of
        interest and reweight down)."""
        ctau = (events.metadata.get("parameters") or {}).get("ctau")
        targets = [c for c in self.config.lifetimes_cm if ctau and c <= 2.0 * float(ctau)]
        if not targets or "MCParticle" not in events.fields or events.metadata.get("is_data", False):
            return {}
        ct = proper_decay_length(events.MCParticle)
        return {c: lifetime_weight(ct, float(ctau), c) for c in targets}


SEARCH = Search(
    name="bkscalar",
    processor=BKScalarProcessor,
    config_file=builtin_file("searches", "bkscalar.yaml"),
    # a bump hunt at every hypothesis: its own stats YAML schema (analyses/bkscalar_scan.py ScanConfig)
    stats_file=builtin_file("stats", "bkscalar.yaml"),
    scan="belle_rare.analyses.bkscalar_scan:limit",
    # make run: the demo samples (sig_bkscalar at 1 GeV, 1 cm; B B and continuum) and the reduced scan
    # (K_mumu, c tau 10 cm, ~200 masses; the efficiencies come from the shipped signal grid)
    demo=Demo("belle2", scan_config=builtin_file("stats", "bkscalar_demo.yaml")),
)
