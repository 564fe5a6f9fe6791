"""tau -> mu gamma / e gamma at Belle (JHEP 10 (2021) 019): two-track, thrust-hemisphere selection.

One tau decays to a lepton and a photon (signal side); the other to one charged track plus
neutrinos and possibly photons (tag side: leptonic, pi or rho class). Every cut is in
``configs/searches/taulgamma.yaml`` with its paper section. Signal extraction uses M_bc and
dE/sqrt(s) of the lepton-photon pair in the CM frame, inside a 2 sigma ellipse.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any, Literal

import awkward as ak
import hist
import numpy as np

from belle_rare import corrections
from belle_rare.configs.loader import StrictModel
from belle_rare.core.histograms import new_hist, regular
from belle_rare.core.units import pdg_mass
from belle_rare.processors import jagged_kernels as jk
from belle_rare.processors import kinematics as kin
from belle_rare.processors import pid_weighting
from belle_rare.processors.base import Calibration, SearchProcessor, Selection, add_varied, calibrations, packed, signal_datasets_of
from belle_rare.processors.base import TriggerLines
from belle_rare.processors.brems_recovery import BremsRecovery, recover_brems_flat
from belle_rare.processors.columns import expand, in_range
from belle_rare.processors.event_shape import hemisphere_flat, thrust_axis_flat
from belle_rare.processors.registry import Demo, Search, builtin_file

TAU_MASS = pdg_mass(15)
# tracks are stored in the pion hypothesis (Track_E); the signal lepton gets its own mass
PION_MASS = pdg_mass(211)
LEPTON_PDG = {"mugamma": 13, "egamma": 11}
CHANNELS = ("mugamma", "egamma")
TAG_CLASSES = ("lepton", "pi", "rho")
Window = tuple[float, float]


# ---------------------------------------------------------------------------------------------
# configuration (configs/searches/taulgamma.yaml)


class Ellipse(StrictModel):
    mbc_mean: float
    de_mean: float
    sigma_mbc_high: float
    sigma_mbc_low: float
    sigma_de_high: float
    sigma_de_low: float

    def contains(self, mbc: np.ndarray, de: np.ndarray, n_sigma: float) -> np.ndarray:
        """Eq. 2.6: the ellipse with the averaged high/low widths."""
        s_mbc = 0.5 * (self.sigma_mbc_high + self.sigma_mbc_low)
        s_de = 0.5 * (self.sigma_de_high + self.sigma_de_low)
        return ((mbc - self.mbc_mean) / (n_sigma * s_mbc)) ** 2 + ((de - self.de_mean) / (n_sigma * s_de)) ** 2 < 1.0


class PerChannel(StrictModel):
    mugamma: float
    egamma: float


class WindowPerChannel(StrictModel):
    mugamma: Window
    egamma: Window


class PerTag(StrictModel):
    lepton: float
    pi: float
    rho: float


class WindowPerTag(StrictModel):
    lepton: Window
    pi: Window
    rho: Window


class Pid(StrictModel):
    muon_branch: str
    electron_branch: str
    muon_cut: float
    electron_cut: float
    extra_lepton_veto: float


class Tracks(StrictModel):
    n_tracks: int
    dr_max: float  # cm: only tracks from the IP count (beam-background and conversion tracks do not)
    dz_max: float  # cm
    p_cm_max_over_sqrt_s: float
    pt_min: float
    cos_theta: Window
    ecl_acceptance_cos_theta: list[Window]


class Photons(StrictModel):
    e_min: float
    cos_theta: Window
    signal_e_min: float
    signal_cos_theta: Window


class Cuts(StrictModel):
    e_total_cm_max: PerTag
    e_sum_cm_max_rho: float
    cos_tracks_max: float
    cos_lgamma: Window
    p_miss_min: float
    cos_theta_miss: Window
    cos_miss_tag_track: WindowPerChannel
    m_nu2: WindowPerTag
    energy_asymmetry_max: float
    xi: Window


class EllipsePerChannel(StrictModel):
    mugamma: Ellipse
    egamma: Ellipse


class SignalRegion(StrictModel):
    n_sigma: float
    ellipse: Literal["own", "paper"]  # which ellipse the search applies
    own: EllipsePerChannel  # fitted on our own signal simulation (provenance in the YAML)
    paper: EllipsePerChannel  # the paper's sec. 2 values
    sideband_mbc: dict[Literal["mugamma", "egamma"], list[Window]]


class Binning(StrictModel):
    mbc: tuple[int, float, float]
    de: tuple[int, float, float]


class PaperNumbers(StrictModel):
    efficiency: PerChannel
    sigma_mbc_high: PerChannel
    sigma_mbc_low: PerChannel
    sigma_de_high: PerChannel
    sigma_de_low: PerChannel
    expected_background: PerChannel


# the config's per-channel signal datasets
SignalDatasets = signal_datasets_of(CHANNELS)


class Plots(StrictModel):
    signal_branching_fraction: float  # BR(tau -> l gamma) of the signal overlaid on the background plots


class TauLGammaConfig(StrictModel):
    luminosity: str
    mbc_photon_energy: Literal["beam_constrained", "measured"]
    n_tautau: float
    signal_datasets: SignalDatasets
    trigger: TriggerLines  # L1 lines the paper used; their OR is the first cut (processors/base.py)
    pid: Pid
    tracks: Tracks
    photons: Photons
    selection: Cuts
    signal_region: SignalRegion
    histograms: Binning
    paper: PaperNumbers
    plots: Plots
    brems_recovery: BremsRecovery | None = None  # electron candidates; None: no recovery

    def ellipse(self, channel: str, which: Literal["own", "paper"] | None = None) -> Ellipse:
        """The signal ellipse of ``channel``: the configured choice (``signal_region.ellipse``) or ``which``."""
        return getattr(getattr(self.signal_region, which or self.signal_region.ellipse), channel)

    def sideband_plane(self, channel: str) -> dict[str, Any]:
        """The applied ellipse (centre, half-axes = n_sigma x the averaged widths, as ``Ellipse.contains``)
        and the M_bc sidebands of ``channel``: the geometry of the stats layer's sideband fit
        (stats/sideband_fit.py ``PlaneGeometry``)."""
        e, n = self.ellipse(channel), self.signal_region.n_sigma
        return {"mbc_mean": e.mbc_mean, "de_mean": e.de_mean,
                "mbc_half_axis": n * 0.5 * (e.sigma_mbc_high + e.sigma_mbc_low),
                "de_half_axis": n * 0.5 * (e.sigma_de_high + e.sigma_de_low),
                "sideband_mbc": tuple(tuple(w) for w in self.signal_region.sideband_mbc[channel])}


# ---------------------------------------------------------------------------------------------
# physics


def with_mass(p4: kin.P4, old_mass: float, new_mass: float) -> kin.P4:
    """The four-vector with its mass hypothesis changed: E^2 = E_old^2 - m_old^2 + m_new^2 at fixed
    momentum (keeps whatever a brems recovery added to E - |p|)."""
    return kin.P4(p4.px, p4.py, p4.pz, np.sqrt(np.maximum(p4.E**2 - old_mass**2 + new_mass**2, 0.0)))


@dataclass
class TwoTrackInputs:
    """The calibration-independent part of ``TwoTrackEvents``, flattened once per chunk: the events
    with ``n_tracks`` opposite IP tracks (``keep``), their tracks' stored columns (n, n_tracks),
    their photons' (flat, lists by ``g_offsets``) and the beams."""

    keep: np.ndarray
    track_columns: dict[str, np.ndarray]
    photon_columns: dict[str, np.ndarray]
    g_offsets: np.ndarray
    beam: kin.P4
    #: ``for_variations`` of this chunk, once computed (the four calibration variations share it)
    variation_inputs: "TwoTrackInputs | None" = None

    def restricted(self, rows: np.ndarray) -> "TwoTrackInputs":
        """The same inputs for the kept events where ``rows`` (one entry per kept event) is true only."""
        keep = self.keep.copy()
        keep[keep] = rows
        photon_rows = rows[jk.list_index(self.g_offsets)]
        return TwoTrackInputs(
            keep=keep, track_columns={name: np.asfortranarray(v[rows]) for name, v in self.track_columns.items()},
            photon_columns={name: v[photon_rows] for name, v in self.photon_columns.items()},
            g_offsets=jk.offsets_of(np.diff(self.g_offsets)[rows]), beam=kin.P4(*(c[rows] for c in self.beam)),
        )


@dataclass
class TwoTrackEvents:
    """Channel-independent objects of the events with two opposite tracks (``keep`` of the chunk),
    as numpy arrays: per kept event (n,), per track (n, n_tracks), and photons flat over the kept
    events in lists by ``g_offsets`` (processors/jagged_kernels.py says why not awkward)."""

    keep: np.ndarray
    beam: kin.P4
    beta: kin.Vec3
    roots: np.ndarray
    #: stored per-track branches the selection reads (PID, pass probabilities, truth), (n, n_tracks)
    track_columns: dict[str, np.ndarray]
    t_lab: kin.P4
    t_cm: kin.P4
    t_cos: np.ndarray
    t_pt: np.ndarray
    t_hemi: np.ndarray
    g_offsets: np.ndarray
    g_event: np.ndarray  # the kept event of each photon
    g_lab: kin.P4
    g_cm: kin.P4
    g_cos: np.ndarray
    g_hemi: np.ndarray
    #: PID-weighted background with brems recovery: the objects recomputed with track k (0, 1) as the
    #: only electron candidate (the e gamma candidate whose signal lepton is track k; its tag track
    #: fails the eID veto, so it is no electron candidate); None otherwise
    electron_is_track: tuple[TwoTrackEvents, TwoTrackEvents] | None = None
    #: truth link (MCParticle index, -1 beam background) of each kept photon, when the input has it
    g_mc_index: np.ndarray | None = None


CUT_VALUES = ("e_total", "e_sum_rho", "cos_tracks", "cos_lgamma", "p_miss", "cos_theta_miss", "cos_miss_tag", "m_nu2",
              "energy_asymmetry", "xi")
STEPS = ("two opposite tracks", "track kinematics", "signal side (1 photon, lepton ID)", "tag-side lepton veto")


class TauLGammaProcessor(SearchProcessor):
    """tau -> mu gamma / e gamma (Belle, 988 /fb): M_bc and dE/sqrt(s) in a 2 sigma ellipse."""

    name = "taulgamma"
    experiments = ("belle",)
    channels = CHANNELS
    config_model = TauLGammaConfig
    region_weights_only = True  # every Selection value is one entry per event
    reads_declared_branches_only = True  # every branch it reads is a field of Track / Photon or in branches
    #: the candidate's truth links (``lepton_mc_index``, ``photon_mc_index`` among the selection values)
    #: for benchmarks/bench_taulgamma_background.py, which sets it; off in runs (nothing reads them
    #: there): Track_mcIndex and Photon_mcIndex are not read (issue 15: fewer branches per chunk)
    truth_links = False
    branches = (
        "nTrack", "Track_px", "Track_py", "Track_pz", "Track_E", "Track_charge", "Track_dr", "Track_dz", "Track_eIDBelle",
        "Track_muIDBelle", "nPhoton", "Photon_E", "Photon_px", "Photon_py", "Photon_pz",
        "beamE", "beamPx", "beamPy", "beamPz", "__weight__",
    )

    def book(self) -> dict[str, hist.Hist]:
        b = self.config.histograms
        tag = hist.axis.StrCategory(list(TAG_CLASSES), name="tag", label="tag class")
        n1 = {
            "e_total": regular(60, 0.3, 1.1, "x", "E_total(CM)/√s"),
            "cos_tracks": regular(50, -1, 1, "x", r"$\cos\theta_{tracks}$"),
            "cos_lgamma": regular(50, -1, 1, "x", r"$\cos\theta_{\ell\gamma}$"),
            "p_miss": regular(50, 0, 5, "x", r"$|p_{miss}|$ [GeV]"),
            "cos_theta_miss": regular(50, -1, 1, "x", r"$\cos\theta_{miss}$"),
            "cos_miss_tag": regular(50, -1, 1, "x", r"$\cos\theta_{miss,tag}$"),
            "m_nu2": regular(60, -2, 4, "x", r"$m_\nu^2$ [GeV$^2$]"),
            "energy_asymmetry": regular(50, 0, 1, "x", "energy asymmetry"),
            "xi": regular(60, -2, 2, "x", r"$\xi$"),
            "e_sum_rho": regular(60, 0.3, 1.1, "x", "E_sum(CM)/√s"),
        }
        return {
            # what the stats model reads: events per region and tag class, every variation
            "yields": new_hist(tag, systematics=True),
            # the (M_bc, dE/sqrt(s)) plane after all cuts, nominal only
            "mbc_de": new_hist(tag, regular(*b.mbc, "mbc", r"$M_{bc}$ [GeV]"), regular(*b.de, "de", "ΔE/√s")),
            **{f"nminus1_{name}": new_hist(tag, axis) for name, axis in n1.items()},
        }

    def objects(self, events: ak.Array, calibration: Calibration, inputs: TwoTrackInputs | None = None) -> TwoTrackEvents:
        """Frames, calibrated tracks and photons, thrust hemispheres -- for the events with two
        opposite tracks from the IP only (most background has not): the rest cannot pass.

        Tracks outside the IP window (beam background, conversions, decays in flight) are dropped
        from the event altogether, as an analysis's good-track list does."""
        inputs = self.chunk_objects(events) if inputs is None else inputs
        weighted = self.pid_weighted(events)
        if not calibration.is_nominal and not weighted:
            inputs = self._variation_inputs(inputs)
        o = self._two_track_objects(inputs, calibration)
        if weighted and self.config.brems_recovery is not None:
            # the brems recovery follows the thrown eID: with the eID weighted instead, each e gamma
            # candidate needs the photons as recovered with its own signal track as the electron
            o.electron_is_track = (self._two_track_objects(inputs, calibration, 0), self._two_track_objects(inputs, calibration, 1))
        return o

    def _variation_inputs(self, inputs: TwoTrackInputs) -> TwoTrackInputs:
        """The inputs of a calibration variation (thrown PID): only the events that can reach a
        region under some calibration. ``SearchProcessor.process`` reads nothing but the regions (and
        the values and weights inside them) of a calibration variation, and an event reaches a region
        only with a track passing the channel's lepton ID (signal side), another below the tag-side
        lepton veto and a photon above the signal photon's energy cut -- requirements no momentum
        scale changes, nor a photon-energy scale up to the largest of the calibrations (the product
        rounds monotonically; the brems recovery only removes photons). Most two-track tau-pair
        events have none: the same regions, values and weights there, for a fraction of the work."""
        if inputs.variation_inputs is None:
            pid, col = self.config.pid, inputs.track_columns
            rows = np.zeros(len(inputs.beam.E), dtype=bool)
            for branch, cut in ((pid.muon_branch, pid.muon_cut), (pid.electron_branch, pid.electron_cut)):
                lepton_id = col[branch]
                rows |= (lepton_id > cut).any(axis=1) & (lepton_id < pid.extra_lepton_veto).any(axis=1)
            largest = max(c.photon_energy_scale for c in calibrations(self.experiment, nominal_only=False))
            hard = inputs.photon_columns["E"] * largest > self.config.photons.signal_e_min
            rows &= jk.segment_count(inputs.g_offsets, hard) > 0
            inputs.variation_inputs = inputs.restricted(rows)
        return inputs.variation_inputs

    def _track_fields(self, events: ak.Array) -> list[str]:
        """The stored track branches the objects and the selection read (no others are materialised)."""
        pid, fields = self.config.pid, events.Track.fields
        names = ["px", "py", "pz", "E", "charge", "dr", "dz", pid.muon_branch, pid.electron_branch]
        if self.pid_weighted(events):
            names += [pid_weighting.pass_probability_field(fields, v, c) for v, c in self.pid_requirements()]
        truth = ("mcPDG", "mcIndex") if self.truth_links else ("mcPDG",)
        return list(dict.fromkeys(names + [f for f in truth if f in fields]))

    def chunk_objects(self, events: ak.Array) -> TwoTrackInputs:
        """The events with two opposite tracks from the IP, their tracks and photons, flattened to
        numpy once per chunk (every calibration starts from them)."""
        cfg = self.config
        k = cfg.tracks.n_tracks
        t_off, trk = jk.flatten(events.Track, self._track_fields(events))
        g_fields = ["px", "py", "pz", "E"] + (["mcIndex"] if self.truth_links and "mcIndex" in events.Photon.fields else [])
        g_off, pho = jk.flatten(events.Photon, g_fields)
        ip = (abs(trk["dr"]) < cfg.tracks.dr_max) & (abs(trk["dz"]) < cfg.tracks.dz_max)
        keep = (jk.segment_count(t_off, ip) == k) & (jk.segment_sum(t_off, trk["charge"], ip) == 0)
        # the kept events' IP tracks, k per event in their stored order; their photons, flat
        t_kept = ip & keep[jk.list_index(t_off)]
        g_kept = keep[jk.list_index(g_off)]
        return TwoTrackInputs(
            # (n, k) in Fortran order: the event axis contiguous, so that numpy's elementwise loops
            # (and (n, 1) per-event broadcasts) run along it, not over rows of k = 2 (~10 x slower)
            keep=keep, track_columns={name: np.asfortranarray(v[t_kept].reshape(-1, k)) for name, v in trk.items()},
            photon_columns={name: v[g_kept] for name, v in pho.items()}, g_offsets=jk.offsets_of(np.diff(g_off)[keep]),
            beam=kin.P4(*(np.asarray(ak.to_numpy(events[b]))[keep] for b in ("beamPx", "beamPy", "beamPz", "beamE"))),
        )

    def _two_track_objects(self, inputs: TwoTrackInputs, calibration: Calibration, electron_track: int | None = None) -> TwoTrackEvents:
        """``objects`` with the electron candidates of the brems recovery from the thrown eID, or
        (``electron_track``) only the track of that index. numpy (and numba) on the flattened inputs."""
        cfg = self.config
        k = cfg.tracks.n_tracks
        keep, col, pho, g_off, beam = inputs.keep, inputs.track_columns, inputs.photon_columns, inputs.g_offsets, inputs.beam
        n = len(beam.E)
        beta = kin.cm_boost(beam.E, beam.px, beam.py, beam.pz)
        roots = kin.sqrt_s(beam.E, beam.px, beam.py, beam.pz)

        scale = calibration.momentum_scale
        px, py, pz, E = col["px"], col["py"], col["pz"], col["E"]
        t_px, t_py, t_pz = px * scale, py * scale, pz * scale
        t_E = np.sqrt(t_px**2 + t_py**2 + t_pz**2 + (E**2 - px**2 - py**2 - pz**2))

        escale = calibration.photon_energy_scale
        g_px, g_py, g_pz, g_E = pho["px"] * escale, pho["py"] * escale, pho["pz"] * escale, pho["E"] * escale
        with np.errstate(invalid="ignore", divide="ignore"):
            g_cos = kin.cos_theta(g_px, g_py, g_pz)
        good = (g_E > cfg.photons.e_min) & in_range(g_cos, cfg.photons.cos_theta)
        if cfg.brems_recovery is not None:
            # electron candidates take back their brems photons, which leave the photon list
            if electron_track is None:
                electron = col[cfg.pid.electron_branch] > cfg.pid.electron_cut
            else:
                electron = np.arange(k)[None, :] == np.full((n, 1), electron_track)
            rec = recover_brems_flat(np.arange(0, n * k + 1, k, dtype=np.int64), kin.P4(*(c.ravel() for c in (t_px, t_py, t_pz, t_E))),
                                     electron.ravel(), g_off, kin.P4(g_px, g_py, g_pz, g_E), cfg.brems_recovery)
            t_px, t_py, t_pz, t_E = (np.asfortranarray(c.reshape(n, k)) for c in rec.tracks)
            good = good & rec.photon_free
        per_track = [b[:, None] for b in beta]
        t_cm = kin.to_cm(t_px, t_py, t_pz, t_E, *per_track)
        g_event = jk.list_index(g_off)[good]
        g_off = jk.offsets_of(jk.segment_count(g_off, good))
        g_lab = kin.P4(g_px[good], g_py[good], g_pz[good], g_E[good])
        g_cm = kin.to_cm(*g_lab, *(b[g_event] for b in beta))

        # thrust hemispheres (CM) of tracks and photons together, each event's tracks first
        both = jk.offsets_of(k + np.diff(g_off))
        t_at = (both[:-1, None] + np.arange(k)[None, :]).ravel()
        g_at = both[g_event] + k + np.arange(len(g_event)) - g_off[g_event]
        momenta = []
        for t_c, g_c in zip(t_cm[:3], g_cm[:3]):
            c = np.empty(both[-1], dtype=np.float64)
            c[t_at], c[g_at] = t_c.ravel(), g_c
            momenta.append(c)
        axis, _ = thrust_axis_flat(both, *momenta)
        return TwoTrackEvents(
            keep=keep, beam=beam, beta=beta, roots=roots, track_columns=col,
            t_lab=kin.P4(t_px, t_py, t_pz, t_E), t_cm=t_cm, t_cos=kin.cos_theta(t_px, t_py, t_pz),
            t_pt=np.sqrt(t_px**2 + t_py**2), t_hemi=hemisphere_flat(*t_cm[:3], kin.Vec3(*(a[:, None] for a in axis))),
            g_offsets=g_off, g_event=g_event, g_lab=g_lab, g_cm=g_cm, g_cos=g_cos[good],
            g_hemi=hemisphere_flat(*g_cm[:3], kin.Vec3(*(a[g_event] for a in axis))),
            g_mc_index=pho["mcIndex"][good] if "mcIndex" in pho else None,
        )

    def pid_requirements(self) -> list[tuple[str, float]]:
        """The signal lepton's ID and the tag-side lepton veto of both channels (configs/searches/taulgamma.yaml pid)."""
        pid = self.config.pid
        return [(pid.muon_branch, pid.muon_cut), (pid.electron_branch, pid.electron_cut),
                (pid.muon_branch, pid.extra_lepton_veto), (pid.electron_branch, pid.extra_lepton_veto)]

    def select(self, events: ak.Array, objects: TwoTrackEvents, channel: str) -> Selection:
        if self.pid_weighted(events):
            part = self._pid_weighted_candidate(objects, channel)
        else:
            part = self._select_two_track(objects, channel)
        values, masks = (expand(x, objects.keep) for x in part)
        n_sigma = self.config.signal_region.n_sigma
        in_sr = self.config.ellipse(channel).contains(values["mbc"], values["de"], n_sigma)
        cuts = packed({**{step: masks[step] for step in STEPS}, **{name: masks[name] for name in CUT_VALUES}})
        passed = cuts.all(*cuts.names)
        cuts.add("signal region", in_sr)
        return Selection(cuts=cuts, values=values, regions={"signal": passed & in_sr, "outside": passed & ~in_sr})

    def _pid_weighted_candidate(self, o: TwoTrackEvents, channel: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """PID-weighted background (processors/pid_weighting.py): (values, cut masks) without the lepton
        ID and the tag-side veto, ``pid_weight`` = p(signal track passes the ID) x (1 - p(tag track
        passes the veto's cut)).

        Each track k whose hemisphere has one hard photon makes a candidate (signal lepton k). With
        the thrown PID, candidate A passes when L(A) > cut and L(B) < veto, candidate B when L(B) > cut
        and L(A) < veto (veto < cut): the two outcomes exclude each other, so P(pass) is their sum.
        The event keeps the candidate that passes every other cut with the larger probability, and
        that probability as its weight: exact unless both candidates pass every cut (then a lower
        bound, by the other's probability; `pid_weight_lower` = `pid_weight` here). With brems
        recovery, e gamma candidate k uses the photons recovered with track k as the electron."""
        per_track = o.electron_is_track if (channel == "egamma" and o.electron_is_track is not None) else (o, o)
        (v_a, m_a), (v_b, m_b) = (self._select_two_track(per_track[k], channel, k) for k in (0, 1))
        score_a, score_b = (np.where(np.logical_and.reduce(list(m.values())), v["pid_weight"], 0.0) for v, m in ((v_a, m_a), (v_b, m_b)))
        take_b = (score_b > score_a) | ((score_b == score_a) & (v_b["pid_weight"] > v_a["pid_weight"]))
        values = {k: np.where(take_b, v_b[k], v_a[k]) for k in v_a}
        masks = {k: np.where(take_b, m_b[k], m_a[k]) for k in m_a}
        values["pid_weight_lower"] = values["pid_weight"]
        return values, masks

    def _select_two_track(self, o: TwoTrackEvents, channel: str, signal_track: int | None = None
                          ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(values, cut masks) of one channel on the two-track events. With ``signal_track`` (0 or 1):
        the candidate with that track as the signal lepton, without the PID cuts, and its PID pass
        probability as ``pid_weight`` (``_pid_weighted_candidate``).

        numpy on the flat objects: per-track arrays are (n, n_tracks), photons flat by ``o.g_offsets``;
        "the first track / photon where" is ``first_in_row`` / ``first_index`` (``ak.firsts(x[mask])``)."""
        with np.errstate(invalid="ignore", divide="ignore"):  # NaN of events without a candidate fail every cut
            return self._select_two_track_values(o, channel, signal_track)

    def _select_two_track_values(self, o: TwoTrackEvents, channel: str, signal_track: int | None
                                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        weighted = signal_track is not None
        cfg = self.config
        col = o.track_columns
        roots, beta, off = o.roots, o.beta, o.g_offsets
        t_cm, g_cm, g_E, g_cos, t_cos = o.t_cm, o.g_cm, o.g_lab.E, o.g_cos, o.t_cos

        # preselection: the paper's track kinematics (inside the ECL acceptance for e gamma)
        p_cm = kin.momentum(t_cm.px, t_cm.py, t_cm.pz)
        trk_ok = (p_cm <= cfg.tracks.p_cm_max_over_sqrt_s * roots[:, None]) & (o.t_pt >= cfg.tracks.pt_min) & in_range(t_cos, cfg.tracks.cos_theta)
        if channel == "egamma":
            in_ecl = np.zeros(t_cos.shape, dtype=bool)
            for window in cfg.tracks.ecl_acceptance_cos_theta:
                in_ecl = in_ecl | in_range(t_cos, window)
            trk_ok = trk_ok & in_ecl

        pid = cfg.pid
        muon, electron = (pid.muon_branch, pid.muon_cut), (pid.electron_branch, pid.electron_cut)
        (lepton_branch, lepton_cut), (other_branch, other_cut) = (muon, electron) if channel == "mugamma" else (electron, muon)
        lepton_id, other_id = col[lepton_branch], col[other_branch]

        # signal side: the hemisphere with exactly one photon, that photon hard and central, and a lepton
        chosen = np.zeros(len(roots), dtype=np.int64)
        hard_photon = (g_E > cfg.photons.signal_e_min) & in_range(g_cos, cfg.photons.signal_cos_theta)
        for h in (-1, 1):
            in_h = o.g_hemi == h
            one = jk.segment_count(off, in_h) == 1
            hard = jk.take(hard_photon, jk.first_index(off, in_h), False)
            if weighted:  # no lepton ID: the hemisphere of the candidate's signal track
                lep = o.t_hemi[:, signal_track] == h
            else:
                lep = jk.take_in_row(lepton_id > lepton_cut, jk.first_in_row(o.t_hemi == h), False)
            chosen = np.where((chosen == 0) & one & hard & lep, h, chosen)
        has_signal = chosen != 0
        side = np.where(has_signal, chosen, 1)
        sig_t, tag_t = o.t_hemi == side[:, None], o.t_hemi == -side[:, None]
        sig_g, tag_g = o.g_hemi == side[o.g_event], o.g_hemi == -side[o.g_event]
        one_each = (sig_t.sum(axis=1) == 1) & (tag_t.sum(axis=1) == 1)
        sig_col, tag_col, sig_photon = jk.first_in_row(sig_t), jk.first_in_row(tag_t), jk.first_index(off, sig_g)

        # the signal-side track in the lepton hypothesis (lab energy, then the CM frame): in the pion
        # hypothesis M_bc peaked 8 (mu) / 14 (e) MeV above m_tau
        as_lepton = with_mass(o.t_lab, PION_MASS, pdg_mass(LEPTON_PDG[channel]))
        t_lab = kin.P4(*(np.where(sig_t, lep_c, pi_c) for lep_c, pi_c in zip(as_lepton, o.t_lab)))
        t_cm = kin.to_cm(*t_lab, *(b[:, None] for b in beta))

        lep = kin.P4(*(jk.take_in_row(c, sig_col, np.nan) for c in t_cm))
        gam = kin.P4(*(jk.take(c, sig_photon, np.nan) for c in g_cm))
        tag_trk = kin.P4(*(jk.take_in_row(c, tag_col, np.nan) for c in t_cm))
        tag_pho = kin.P4(*(jk.segment_sum(off, c, tag_g) for c in g_cm))
        tag_is_lepton = jk.take_in_row(other_id > other_cut, tag_col, False)
        if weighted:
            veto_ok = one_each
        else:
            veto_ok = jk.take_in_row(lepton_id < pid.extra_lepton_veto, tag_col, False)
        tag_class = np.where(tag_is_lepton, 0, np.where(jk.segment_count(off, tag_g) == 0, 1, 2))

        lg = kin.p4_add(lep, gam)
        de = kin.delta_e_over_sqrt_s(lg.E, roots)
        if cfg.mbc_photon_energy == "beam_constrained":
            # the photon energy from E_lgamma = sqrt(s)/2, its direction as measured (README, taulgamma)
            e_gamma = roots / 2 - lep.E
            unit = 1.0 / kin.momentum(gam.px, gam.py, gam.pz)
            gam_c = kin.P4(gam.px * unit * e_gamma, gam.py * unit * e_gamma, gam.pz * unit * e_gamma, e_gamma)
            mbc, _ = kin.mbc_deltae(*kin.p4_add(lep, gam_c), roots)
        else:
            mbc, _ = kin.mbc_deltae(*lg, roots)

        def track_sum(p4: kin.P4) -> kin.P4:
            return kin.P4(*(c.sum(axis=1) for c in p4))

        def photon_sum(p4: kin.P4) -> kin.P4:
            return kin.P4(*(jk.segment_sum(off, c) for c in p4))

        vis_cm = kin.p4_add(track_sum(t_cm), photon_sum(g_cm))
        tag_sys = kin.p4_add(tag_trk, tag_pho)
        vis_lab = kin.p4_add(track_sum(t_lab), photon_sum(o.g_lab))
        miss_lab = kin.missing_four_momentum(o.beam, vis_lab)
        tag_lab = kin.to_lab(*tag_trk, *beta)

        # m_nu^2 = (E_lgamma - E_tag)^2 - |p_miss^CM|^2 (sec. 2): the tag tau carries E_lgamma
        miss_cm = kin.to_cm(*miss_lab, *beta)
        m_nu2 = (lg.E - tag_sys.E) ** 2 - (miss_cm.px**2 + miss_cm.py**2 + miss_cm.pz**2)

        # xi (eqs. 2.1-2.3): cosine between the tag tau and the tag track (+ tag photons for rho)
        track_for_xi = kin.P4(*(np.where(tag_class == 2, a, b) for a, b in zip(tag_sys, tag_trk)))
        recoil = kin.P4(-lg.px - track_for_xi.px, -lg.py - track_for_xi.py, -lg.pz - track_for_xi.pz, roots - lg.E - track_for_xi.E)
        m2_miss, m2_track = kin.mass2(*recoil), kin.mass2(*track_for_xi)
        dot = (m2_miss - TAU_MASS**2 - m2_track + roots * track_for_xi.E) / 2.0
        p_tau = np.sqrt(np.clip((roots / 2) ** 2 - TAU_MASS**2, 0, None))
        xi = dot / (p_tau * kin.momentum(track_for_xi.px, track_for_xi.py, track_for_xi.pz))

        values = {
            "e_total": vis_cm.E / roots,
            "e_sum_rho": (lep.E + gam.E + tag_trk.E) / roots,
            "cos_tracks": kin.cos_angle(lep, tag_trk),
            "cos_lgamma": kin.cos_angle(lep, gam),
            "p_miss": kin.momentum(miss_lab.px, miss_lab.py, miss_lab.pz),
            "cos_theta_miss": kin.cos_theta(miss_lab.px, miss_lab.py, miss_lab.pz),
            "cos_miss_tag": kin.cos_angle(miss_lab, tag_lab),
            "m_nu2": m_nu2,
            "energy_asymmetry": abs(lep.E - gam.E) / (lep.E + gam.E),
            "xi": xi,
        }
        sel = cfg.selection

        def per_tag(table: PerTag) -> np.ndarray:
            return np.where(tag_class == 0, table.lepton, np.where(tag_class == 1, table.pi, table.rho))

        m_nu2_window = [per_tag(PerTag(**{t: getattr(sel.m_nu2, t)[i] for t in TAG_CLASSES})) for i in (0, 1)]  # (low, high)
        cuts = {
            "e_total": values["e_total"] < per_tag(sel.e_total_cm_max),
            "e_sum_rho": (tag_class != 2) | (values["e_sum_rho"] < sel.e_sum_cm_max_rho),
            "cos_tracks": values["cos_tracks"] < sel.cos_tracks_max,
            "cos_lgamma": in_range(values["cos_lgamma"], sel.cos_lgamma),
            "p_miss": values["p_miss"] > sel.p_miss_min,
            "cos_theta_miss": in_range(values["cos_theta_miss"], sel.cos_theta_miss),
            "cos_miss_tag": in_range(values["cos_miss_tag"], getattr(sel.cos_miss_tag_track, channel)),
            "m_nu2": (m_nu2 > m_nu2_window[0]) & (m_nu2 < m_nu2_window[1]),
            "energy_asymmetry": values["energy_asymmetry"] < sel.energy_asymmetry_max,
            "xi": in_range(xi, sel.xi),
        }
        # the steps are cumulative as written in the paper's preselection; cuts follow in order
        masks = {
            "two opposite tracks": np.ones(len(roots), bool),
            "track kinematics": trk_ok.all(axis=1),
            "signal side (1 photon, lepton ID)": has_signal & one_each,
            "tag-side lepton veto": veto_ok,
            **cuts,
        }
        out = {name: np.asarray(v, dtype=float) for name, v in values.items()}
        out.update({
            "tag_class": tag_class,
            "lepton_p": jk.take_in_row(kin.momentum(*t_lab[:3]), sig_col, 1.0).astype(float),
            "lepton_cos": jk.take_in_row(t_cos, sig_col, 0.0).astype(float),
            "mbc": np.asarray(mbc, dtype=float),
            "de": np.asarray(de, dtype=float),
        })
        if weighted:
            # P(signal track passes the lepton ID) x P(tag track fails the veto's cut): the thrown cuts
            # `lepton_id > lepton_cut` and `lepton_id < extra_lepton_veto` above
            p_lep = col[pid_weighting.pass_probability_field(list(col), lepton_branch, lepton_cut)]
            p_veto = col[pid_weighting.pass_probability_field(list(col), lepton_branch, pid.extra_lepton_veto)]
            prob = jk.take_in_row(p_lep, sig_col, 0.0) * (1.0 - jk.take_in_row(p_veto, tag_col, 1.0))
            out["pid_weight"] = np.where(has_signal & one_each, prob, 0.0).astype(float)
        if "mcPDG" in col:
            out["lepton_pdg"] = jk.take_in_row(col["mcPDG"], sig_col, 0)
        if "mcIndex" in col and o.g_mc_index is not None:
            # truth links of the candidate (-2: none), for background-composition studies
            # (benchmarks/bench_taulgamma_background.py)
            out["lepton_mc_index"] = jk.take_in_row(col["mcIndex"], sig_col, -2)
            out["photon_mc_index"] = jk.take(o.g_mc_index, sig_photon, -2)
        return out, {name: np.asarray(m, dtype=bool) for name, m in masks.items()}

    def add_weights(self, weights: Any, selection: Selection, channel: str) -> None:
        """Tracking (2 tracks), photon efficiency (1 photon), trigger, luminosity, and lepton ID
        (or the pion fake rate, by truth) of the signal lepton."""
        cset, v = self.corrections, selection.values
        n = len(v["mbc"])
        species, lepton_pdg = ("mu", 13) if channel == "mugamma" else ("e", 11)
        true_lepton = np.abs(v["lepton_pdg"]) == lepton_pdg if "lepton_pdg" in v else np.ones(n, bool)
        p, cos = v["lepton_p"], v["lepton_cos"]
        self.add_common_weights(weights, n, 2, f"taulgamma_{channel}")
        add_varied(weights, "photonEff", lambda s: corrections.photon_efficiency_weight(cset, 1, s), n)
        self.add_lepton_id_weights(weights, species, p, cos, true_lepton)

    def fill(self, hists: dict[str, hist.Hist], selection: Selection, channel: str, variation: str, weight: np.ndarray) -> None:
        self.fill_variations(hists, selection, channel, {variation: weight})

    def fill_variations(self, hists: dict[str, hist.Hist], selection: Selection, channel: str,
                        weights: Mapping[str, np.ndarray]) -> None:
        """The yields of every variation, one fill per region (the same bins as one fill per
        variation, each summed over the same entries in the same order)."""
        names, tag_class = list(weights), selection.values["tag_class"]
        for region, mask in selection.regions.items():
            tags = np.asarray(TAG_CLASSES)[tag_class[mask]]
            hists["yields"].fill(channel=channel, region=region, variation=np.repeat(names, len(tags)),
                                 tag=np.tile(tags, len(names)), weight=np.concatenate([w[mask] for w in weights.values()]))

    def fill_nominal(self, hists: dict[str, hist.Hist], selection: Selection, channel: str, weight: np.ndarray) -> None:
        v = selection.values
        tags = np.asarray(TAG_CLASSES)[v["tag_class"]]
        for region, mask in selection.regions.items():
            hists["mbc_de"].fill(channel=channel, region=region, tag=tags[mask], mbc=v["mbc"][mask], de=v["de"][mask], weight=weight[mask])
        # N-1: every cut but the one plotted
        for name in CUT_VALUES:
            others = selection.passing(*STEPS, *(c for c in CUT_VALUES if c != name))
            hists[f"nminus1_{name}"].fill(channel=channel, region="all", tag=tags[others], x=v[name][others], weight=weight[others])


SEARCH = Search(
    name="taulgamma",
    processor=TauLGammaProcessor,
    config_file=builtin_file("searches", "taulgamma.yaml"),
    stats_file=builtin_file("stats", "taulgamma.yaml"),
    report="belle_rare.analyses.taulgamma:write_reports",
    demo=Demo("belle", {"sig_taumugamma": 20_000, "sig_tauegamma": 20_000, "tautau": 20_000}),
)
