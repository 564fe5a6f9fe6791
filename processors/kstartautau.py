"""B0 -> K*0 tau+ tau- with a hadronic B tag: Belle (PRD 108, L011102) and Belle II (proceedings sec. 4).

One B0 is fully reconstructed in hadronic modes (the ``Btag`` collection: Belle's NeuroBayes-like or
Belle II's FEI-like tag, its existence probability carried by ``Btag_weight``); the signal B0 is
searched for in the rest of the event: exactly four tracks of zero net charge from the IP, a
K*0 -> K+ pi- candidate whose flavour is opposite the tag's, and two one-prong tau daughters.

* Belle: the six topologies (``ee``, ``emu``, ``mumu``, ``epi``, ``mupi``, ``pipi``) from the two tau
  tracks' PID, the paper's vetoes and kinematic cuts (M(tau tracks), M_tautau from the tag recoil,
  Table I on M_K*pi and M_miss^2, D veto, event shape for pi pi); the fit variable is E_ECL^extra
  (histogram ``eecl``, region ``SR`` = every cut but E_ECL^extra). The control sample B0 -> D- l+ nu,
  D- -> K*0 pi- (regions ``control``, ``control_low`` / ``control_high`` split at M_miss^2 = 0.5 GeV^2, and
  their ``_dlnu`` twins of simulated true B0 -> D- l+ nu; ``eecl`` and ``mmiss2``) feeds the branching-fraction
  fits of ``analyses/kstartautau_control.py``.
* Belle II: the four categories (``ll``, ``lpi``, ``rhoX``, ``pipi``; rho = a pion track with a pi0
  in the rho window), one k-fold BDT per category on the proceedings' features (missing energy,
  E_ECL^extra, q^2, the K*0 and tau-daughter masses), histogram ``bdt`` of its output in [0.4, 1].

Every cut is in ``configs/searches/kstartautau.yaml`` with the paper section it comes from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import awkward as ak
import hist
import numpy as np
import pydantic
from coffea.analysis_tools import Weights
from particle import Particle

from belle_rare.configs.loader import StrictModel
from belle_rare.core.errors import UserError
from belle_rare.core.histograms import count_axis, fill_counts, new_hist, regular
from belle_rare.core.units import pdg_mass
from belle_rare.processors import bdt
from belle_rare.processors import kinematics as kin
from belle_rare.processors.base import (
    CANDIDATE_WEIGHT_VALUE, Calibration, Selection, TriggerLines, fill_counts_of_variations, packed,
)
from belle_rare.processors.columns import expand, in_range
from belle_rare.processors.event_shape import cos_theta_thrust, fox_wolfram_r2_flat, thrust_axis_flat
from belle_rare.processors.extra_energy import ExtraEnergyCuts, counted_clusters
from belle_rare.processors.jagged_kernels import (
    flatten, list_index, offsets_of, pairs, segment_argmin, segment_count, segment_sum, take,
)
from belle_rare.processors.registry import Demo, Search, Training, builtin_file
from belle_rare.processors.vertex_fit import TrackParameters, covariance_branches, fit_pairs

Window = tuple[float, float]

BELLE_CHANNELS = ("ee", "emu", "mumu", "epi", "mupi", "pipi")
BELLE2_CHANNELS = ("ll", "lpi", "rhoX", "pipi")
CHANNELS = {"belle": BELLE_CHANNELS, "belle2": BELLE2_CHANNELS}
#: tau-daughter species codes
ELECTRON, MUON, PION, RHO = 0, 1, 2, 3
SPECIES_MASS = {ELECTRON: pdg_mass(11), MUON: pdg_mass(13), PION: pdg_mass(211)}
PION_MASS, KAON_MASS = pdg_mass(211), pdg_mass(321)
KSTAR_MASS, B0_MASS, PI0_MASS, KS_MASS = pdg_mass(313), pdg_mass(511), pdg_mass(111), pdg_mass(310)
RHO_MASS = pdg_mass(113)
#: BDT features this module computes (the YAML's ``features`` picks and orders them)
FEATURES = ("e_miss", "eecl", "q2", "m_kstar", "m_track1", "m_track2", "m_miss2", "p_track1", "p_track2", "m_kpi")
#: the fill value of features that do not exist for an event (xgboost treats it as a number)
MISSING_FEATURE = -999.0


# ---------------------------------------------------------------------------------------------
# configuration (configs/searches/kstartautau.yaml)


class TagCuts(StrictModel):
    ln_sig_prob_min: float  # ln(sigProb) above this (Belle: ln(o_NB); our Belle sigProb is o_NB)
    tight_channels: list[str] = []  # channels with the tighter cut below
    ln_sig_prob_min_tight: float | None = None
    mbc: Window  # GeV
    abs_delta_e_max: float  # GeV
    neutral: bool  # the tag is the companion of a B0: charge 0


class Curler(StrictModel):
    """Duplicate tracks of low-pT curlers: both below ``pt_max``, |dpT| < ``dpt_max`` and the cosine of
    their opening angle above ``cos_above`` or below ``cos_below``; the one farther from the IP is dropped."""

    pt_max: float
    dpt_max: float
    cos_above: float
    cos_below: float


class TrackCuts(StrictModel):
    dr_max: float  # cm
    dz_max: float  # cm
    n_tracks: int
    curler: Curler | None = None


class KstarCuts(StrictModel):
    kaon_branch: str
    kaon_id_min: float  # kaon: ID above
    pion_id_max: float  # pion: ID below
    p_min: float  # GeV (lab)
    mass: Window  # GeV
    flavour_opposite_tag: bool
    vertex_fit: bool  # a candidate whose K+ pi- vertex fit fails is rejected (``kstar_vertex_fits``)


class TauId(StrictModel):
    electron_branch: str
    electron_min: float
    muon_branch: str
    muon_min: float  # applied to tracks that fail the electron ID


class Pi0Quality(StrictModel):
    mass_half_window: float  # GeV around the PDG pi0 mass
    photon_e_min: float  # GeV, both photons
    e9e21_min: float  # shower shape, both photons (clusterE9E21)


class RhoCuts(StrictModel):
    mass: Window  # M(pi pi0), GeV
    pi0: Pi0Quality


class Vetoes(StrictModel):
    pi0: Pi0Quality | None = None  # no extra pi0 (neither photon in the tag)
    ks_half_window: float | None = None  # no extra K_S -> pi+ pi- V0 in |M - m_KS| < this (GeV)
    klm_max: int | None = None  # at most this many KLM clusters


class TopologyCut(StrictModel):
    m_kpi_min: float  # GeV
    m_miss2: Window  # GeV^2


class DVeto(StrictModel):
    channels: list[str]
    m_kpi: Window  # GeV, rejected


class ControlRegion(StrictModel):
    """The B0 -> D- l+ nu (D- -> K*0 pi-) control sample: every cut but M_miss^2 and the Table I M_K*pi
    cut, with the D veto reversed (M_K*pi inside ``m_kpi``)."""

    channels: list[str]
    m_kpi: Window  # GeV
    # the paper's two subsamples: regions ``control_low`` (M_miss^2 below, the E_ECL^extra fit) and
    # ``control_high`` (above: mostly background)
    m_miss2_split: float | None = None  # GeV^2


#: the control regions (their ``_dlnu`` twins hold the simulated events with a true B0 -> D- l+ nu)
CONTROL_REGIONS = ("control", "control_low", "control_high")
#: suffix of the truth-matched twin of a control region
TRUE_DLNU = "_dlnu"


# |PDG id| of the control decay's particles (the truth record's PDG column), from ``particle``
_B0, _D_PLUS = (int(Particle.from_name(name).pdgid) for name in ("B0", "D+"))
_LIGHT_LEPTONS = [int(Particle.from_name(name).pdgid) for name in ("e-", "mu-")]


def true_d_lnu(mc: ak.Array) -> np.ndarray:
    """Per event: a B0 / B0bar of the truth record decays to D-+ l+- nu (l = e, mu; exactly three
    daughters), whatever the D does -- the control sample's signal in generic B Bbar simulation."""
    offsets = offsets_of(ak.to_numpy(ak.num(mc.PDG)).astype(np.int64))
    event = list_index(offsets)
    pdg = np.abs(ak.to_numpy(ak.flatten(mc.PDG)))
    mother = ak.to_numpy(ak.flatten(mc.motherIndex)).astype(np.int64)
    has_mother = mother >= 0
    parent = np.where(has_mother, mother + offsets[event], 0)  # flat row of each particle's mother
    n_daughters = np.bincount(parent[has_mother], minlength=len(pdg))
    from_b0 = has_mother & (pdg[parent] == _B0)
    has_d, has_lepton = np.zeros(len(pdg), bool), np.zeros(len(pdg), bool)
    has_d[parent[from_b0 & (pdg == _D_PLUS)]] = True
    has_lepton[parent[from_b0 & np.isin(pdg, _LIGHT_LEPTONS)]] = True
    decays = has_d & has_lepton & (n_daughters == 3)
    return np.bincount(event[decays], minlength=len(offsets) - 1) > 0


class EventShape(StrictModel):
    channels: list[str]
    thrust_max: float
    cos_thrust_max: float  # |cos| between the B_sig and B_tag thrust axes
    r2_max: float


class ExperimentCuts(StrictModel):
    trigger: TriggerLines | None = None
    tag: TagCuts
    tracks: TrackCuts
    kstar: KstarCuts
    tau_id: TauId
    rho: RhoCuts | None = None  # Belle II rho X category
    m_tau_tracks_max: float | None = None  # GeV
    m_tautau_min: float | None = None  # GeV
    vetoes: Vetoes
    topology_cuts: dict[str, TopologyCut] | None = None
    d_veto: DVeto | None = None
    event_shape: EventShape | None = None
    extra_energy: ExtraEnergyCuts
    signal_eecl_max: float | None = None  # E_ECL^extra signal window (GeV), Belle
    control: ControlRegion | None = None  # region ``control`` (Belle)
    bdt_min: float | None = None  # BDT signal region lower edge, Belle II


class Binning(StrictModel):
    eecl: tuple[int, float, float]
    bdt: tuple[int, float, float]


class PaperNumbers(StrictModel):
    efficiency: float | None = None  # None: not published
    background_signal_region: float | None = None
    upper_limit: float
    fitted_branching_fraction: list[float] | None = None


# config field type, checked at load: the BDT features this module computes
Features = bdt.feature_list(FEATURES, "processors/kstartautau.py")


class KstarTauTauConfig(StrictModel):
    luminosity: str
    signal_dataset: str
    belle: ExperimentCuts
    belle2: ExperimentCuts
    features: Features
    bdt: bdt.BDTConfig
    histograms: Binning
    paper: dict[str, PaperNumbers]

    @property
    def signal_datasets(self) -> dict[str, str]:
        """Every channel of both experiments -> the signal dataset (what training and PID weighting read)."""
        return {c: self.signal_dataset for c in (*BELLE_CHANNELS, *BELLE2_CHANNELS)}

    @pydantic.model_validator(mode="after")
    def _channels_known(self) -> "KstarTauTauConfig":
        for experiment, channels in CHANNELS.items():
            cuts: ExperimentCuts = getattr(self, experiment)
            named = list(cuts.tag.tight_channels)
            named += list(cuts.topology_cuts or {}) + list(cuts.d_veto.channels if cuts.d_veto else [])
            named += list(cuts.event_shape.channels if cuts.event_shape else [])
            named += list(cuts.control.channels if cuts.control else [])
            unknown = sorted(set(named) - set(channels))
            if unknown:
                raise ValueError(f"{experiment}: unknown channels {unknown} (channels: {', '.join(channels)})")
            if cuts.topology_cuts is not None and set(cuts.topology_cuts) != set(channels):
                raise ValueError(f"{experiment}.topology_cuts: one entry per channel ({', '.join(channels)})")
        return self


# ---------------------------------------------------------------------------------------------
# physics


def lab_p4(px: Any, py: Any, pz: Any, mass: Any, scale: float = 1.0) -> kin.P4:
    """Lab four-momenta of tracks with their momenta scaled by ``scale`` and energy in ``mass``."""
    px, py, pz = px * scale, py * scale, pz * scale
    return kin.P4(px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + mass**2))


def p4_of(records: Any, mass: Any, scale: float = 1.0) -> kin.P4:
    """``lab_p4`` of a track record collection."""
    return lab_p4(records.px, records.py, records.pz, mass, scale)


def kstar_vertex_fits(tracks: TrackParameters, n_events: int, n_tracks: int) -> np.ndarray:
    """(n_events, n_tracks^2): whether the vertex fit of the event's tracks a and b succeeds, at a n_tracks + b
    (symmetric; ``tracks`` holds each event's ``n_tracks`` tracks in a row). Belle "reject[s] candidates if the
    vertex fit fails": here when ``VertexFit.succeeded`` is False (no convergence in ``vertex_fit.MAX_STEPS``
    steps, or a singular normal matrix: two tracks on one line)."""
    a, b = np.triu_indices(n_tracks, 1)
    first = np.arange(n_events)[:, None] * n_tracks
    fit = fit_pairs(tracks, (first + a).ravel(), (first + b).ravel())
    ok = fit.succeeded.reshape(n_events, len(a))
    out = np.zeros((n_events, n_tracks * n_tracks), dtype=bool)
    out[:, a * n_tracks + b] = out[:, b * n_tracks + a] = ok
    return out


def curler_duplicates(tracks: ak.Array, cfg: Curler) -> ak.Array:
    """Per track: True if it is the worse of a duplicate pair (Belle's curler removal: the pair member
    with the larger IP distance sqrt((5 dr)^2 + dz^2) is dropped)."""
    i, j = ak.unzip(ak.argcombinations(tracks, 2))
    a, b = tracks[i], tracks[j]
    pt_a, pt_b = np.hypot(a.px, a.py), np.hypot(b.px, b.py)
    cos = kin.cos_angle(kin.Vec3(a.px, a.py, a.pz), kin.Vec3(b.px, b.py, b.pz))
    dup = (pt_a < cfg.pt_max) & (pt_b < cfg.pt_max) & (abs(pt_a - pt_b) < cfg.dpt_max) & ((cos > cfg.cos_above) | (cos < cfg.cos_below))
    ip_a, ip_b = np.hypot(5 * a.dr, a.dz), np.hypot(5 * b.dr, b.dz)
    worse = ak.where(ip_a > ip_b, i, j)[dup]
    local = ak.local_index(tracks.px)
    # flag every track index that is the worse member of some duplicate pair (a loop-free "isin")
    hits = ak.cartesian([local, worse], nested=True)
    li, wi = ak.unzip(hits)
    return ak.any(li == wi, axis=2)


def curler_duplicates_flat(offsets: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray, dr: np.ndarray,
                           dz: np.ndarray, cfg: Curler) -> np.ndarray:
    """``curler_duplicates`` on flat track columns (lists by ``offsets``): per track, True if it is the
    worse of a duplicate pair; the same operations on the same pairs, so the same flags."""
    _, i, j = pairs(offsets, np.ones(offsets[-1], dtype=bool))  # every two tracks of an event, content rows
    pt = np.hypot(px, py)
    pt_a, pt_b = pt[i], pt[j]
    cos = kin.cos_angle(kin.Vec3(px[i], py[i], pz[i]), kin.Vec3(px[j], py[j], pz[j]))
    dup = (pt_a < cfg.pt_max) & (pt_b < cfg.pt_max) & (abs(pt_a - pt_b) < cfg.dpt_max) & ((cos > cfg.cos_above) | (cos < cfg.cos_below))
    ip = np.hypot(5 * dr, dz)
    worse = np.where(ip[i] > ip[j], i, j)[dup]
    out = np.zeros(len(px), bool)
    out[worse] = True
    return out


@dataclass
class EventShapeInputs:
    """Where each track and photon of the kept events goes in the per-event list "tracks, then
    photons" (``ak.concatenate(..., axis=1)``'s order) the event-shape variables read, and which are the tag's."""

    offsets: np.ndarray  # of the merged lists
    track_px: np.ndarray  # every track of the kept events (the tag's too), flat
    track_py: np.ndarray
    track_pz: np.ndarray
    track_event: np.ndarray  # kept event of each track
    track_row: np.ndarray  # row of each track in the merged content
    photon_row: np.ndarray
    in_tag: np.ndarray  # merged content: the particle is in the tag
    tag_offsets: np.ndarray  # of the merged lists' tag particles

    @classmethod
    def of(cls, track_offsets: np.ndarray, tracks: dict[str, np.ndarray], photon_offsets: np.ndarray,
           photon_in_tag: np.ndarray) -> "EventShapeInputs":
        n_trk, n_pho = np.diff(track_offsets), np.diff(photon_offsets)
        offsets = offsets_of(n_trk + n_pho)
        track_event, photon_event = list_index(track_offsets), list_index(photon_offsets)
        track_row = offsets[track_event] + np.arange(len(track_event)) - track_offsets[track_event]
        photon_row = offsets[photon_event] + n_trk[photon_event] + np.arange(len(photon_event)) - photon_offsets[photon_event]
        in_tag = np.zeros(offsets[-1], bool)
        in_tag[track_row] = tracks["inTag"] != 0
        in_tag[photon_row] = photon_in_tag
        return cls(offsets, tracks["px"], tracks["py"], tracks["pz"], track_event, track_row, photon_row, in_tag,
                   offsets_of(segment_count(offsets, in_tag)))

    def merged(self, track_values: np.ndarray, photon_values: np.ndarray) -> np.ndarray:
        """One flat column of the merged lists from a track and a photon column."""
        out = np.empty(len(self.in_tag), np.result_type(track_values, photon_values))
        out[self.track_row] = track_values
        out[self.photon_row] = photon_values
        return out


@dataclass
class KstarChunk:
    """What every calibration of a chunk shares (``chunk_objects``): the kept events (a tag and exactly
    ``n_tracks`` clean tracks of zero net charge), the per-event masks and values that do not depend on
    the calibration (every event), and the kept events' inputs as numpy: the signal-side tracks as
    (events, n_tracks) blocks, the first tag and the beams per event, photons and pi0s flat with offsets."""

    keep: np.ndarray
    values: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]
    tracks: dict[str, np.ndarray]
    tag: dict[str, np.ndarray]
    beam: dict[str, np.ndarray]
    photon_offsets: np.ndarray
    photons: dict[str, np.ndarray]
    photon_event: np.ndarray
    photon_in_tag: np.ndarray
    pi0_offsets: np.ndarray
    pi0: dict[str, np.ndarray]  # gamma1Index / gamma2Index: rows of ``photons``
    pi0_event: np.ndarray
    pi0_free: np.ndarray  # neither photon in the tag
    n_ks: np.ndarray
    n_klm: np.ndarray
    shape: EventShapeInputs | None
    pair_fit_ok: np.ndarray | None  # (events, n_tracks^2): the vertex fit of tracks (a, b) succeeds, at a n_tracks + b


@dataclass
class SignalSide:
    """The per-event quantities of the chosen candidate (prefiltered events: ``keep``)."""

    keep: np.ndarray
    values: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]


class KstarTauTauProcessor(bdt.BDTProcessor):
    """B0 -> K*0 tau tau (Belle 711 /fb: E_ECL^extra fit; Belle II 365 /fb: BDT per tau category)."""

    name = "kstartautau"
    # a calibration variation's weights only where a region reads them: every Selection value is one entry per event
    region_weights_only = True
    experiments = ("belle", "belle2")
    channels = BELLE_CHANNELS
    config_model = KstarTauTauConfig
    branches = (
        "nTrack", "Track_px", "Track_py", "Track_pz", "Track_charge", "Track_dr", "Track_dz", "Track_inTag",
        "nPhoton", "Photon_E", "Photon_px", "Photon_py", "Photon_pz", "Photon_clusterReg", "Photon_clusterE9E21",
        "Photon_inTag", "nBtag", "Btag_px", "Btag_py", "Btag_pz", "Btag_E", "Btag_Mbc", "Btag_deltaE", "Btag_sigProb",
        "Btag_charge", "Btag_flavour", "Btag_weight", "nPi0", "Pi0_px", "Pi0_py", "Pi0_pz", "Pi0_E", "Pi0_M",
        "Pi0_gamma1Index", "Pi0_gamma2Index", "nV0", "V0_M", "V0_hypothesis", "V0_trackIndex1", "V0_trackIndex2",
        "nKLMCluster", "beamE", "beamPx", "beamPy", "beamPz", "__weight__", "__event__",
    )

    def __init__(self, experiment: str, config: Any, **kwargs: Any) -> None:
        # the channels and cuts of the experiment this instance runs on
        self.channels = CHANNELS.get(experiment, BELLE_CHANNELS)
        super().__init__(experiment, config, **kwargs)

    @property
    def cuts(self) -> ExperimentCuts:
        return getattr(self.config, self.experiment)

    @property
    def trigger_lines(self) -> tuple[str, ...]:
        return tuple(self.cuts.trigger or ())

    def required_branches(self) -> list[str]:
        c = self.cuts
        pid = [f"Track_{c.kstar.kaon_branch}", f"Track_{c.tau_id.electron_branch}", f"Track_{c.tau_id.muon_branch}"]
        fit = [f"Track_{name}" for name, _, _ in covariance_branches()] if c.kstar.vertex_fit else []
        return super().required_branches() + pid + fit

    def setup(self) -> None:
        """Belle II: one stored k-fold model per category (``kstartautau_<category>_belle2``); Belle: none.
        No PID-weighted mode: the selection (and the BDT training, whose background keeps its thrown PID)
        uses the thrown PID, so ``--pid-weights`` is refused."""
        if self.pid_weighting and not self.training:
            raise UserError("search 'kstartautau' has no PID-weighted mode (--pid-weights): its selection uses the thrown PID")
        self.models: dict[str, bdt.KFoldModel] = {}
        self.model = None
        if self.experiment == "belle2" and not self.training:
            self.models = {ch: bdt.load_model(model_name(ch), self.experiment, self.config.features, self.model_dir)
                           for ch in self.channels}

    # ------------------------------------------------------------------ histograms
    def book(self) -> dict[str, hist.Hist]:
        b = self.config.histograms
        return {
            "yields": new_hist(count_axis(), systematics=True),
            "eecl": new_hist(regular(*b.eecl, "eecl", r"$E_{ECL}^{extra}$ [GeV]"), systematics=True),
            "bdt": new_hist(regular(*b.bdt, "bdt", "BDT output"), systematics=True),
            # control distributions after every cut (nominal only)
            # M_miss^2 (the control sample's second fit variable): every region, every variation
            "mmiss2": new_hist(regular(44, -2.0, 20.0, "mmiss2", r"$M_{miss}^2$ [GeV$^2$]"), systematics=True),
            "m_kpi": new_hist(regular(40, 0.5, 4.5, "m_kpi", r"$M_{K^{*0}\pi}$ [GeV]")),
            "m_tautau": new_hist(regular(40, 1.5, 5.5, "m_tautau", r"$M_{\tau\tau}$ [GeV]")),
        }

    # ------------------------------------------------------------------ objects
    def chunk_objects(self, events: ak.Array) -> KstarChunk:
        """The calibration-independent part, once per chunk: the clean tracks outside the tag (curler
        removal, IP cuts), the events with a tag and exactly ``n_tracks`` of them, the tag cuts, and the
        kept events' tracks, photons, pi0s, K_S and K_L counts as flat numpy columns."""
        c = self.cuts
        # every track once as flat columns; the signal side: outside the tag, not a curler duplicate, from the IP
        covariance = [name for name, _, _ in covariance_branches()] if c.kstar.vertex_fit else []
        fields = ["px", "py", "pz", "charge", "dr", "dz", "inTag", c.kstar.kaon_branch, c.tau_id.electron_branch,
                  c.tau_id.muon_branch] + (["mcPDG"] if "mcPDG" in events.Track.fields else []) + covariance
        trk_offsets, trk = flatten(events.Track, list(dict.fromkeys(fields)))
        outside = trk["inTag"] == 0
        side_offsets = offsets_of(segment_count(trk_offsets, outside))
        clean = np.ones(int(outside.sum()), bool)
        if c.tracks.curler is not None:
            clean = ~curler_duplicates_flat(side_offsets, *(trk[f][outside] for f in ("px", "py", "pz", "dr", "dz")), c.tracks.curler)
        signal_side = np.zeros(len(outside), bool)
        signal_side[outside] = clean
        signal_side &= (abs(trk["dr"]) < c.tracks.dr_max) & (abs(trk["dz"]) < c.tracks.dz_max)
        tag_offsets, tags = flatten(events.Btag, ["px", "py", "pz", "E", "flavour", "sigProb", "Mbc", "deltaE", "charge", "weight"])
        has_tag = np.diff(tag_offsets) > 0
        four = (segment_count(trk_offsets, signal_side) == c.tracks.n_tracks) & (segment_sum(trk_offsets, trk["charge"], signal_side) == 0)
        keep = has_tag & four
        # the first tag of each event; the tag cuts and the track count also for the dropped events (cutflow)
        first = tag_offsets[:-1][has_tag]
        tag = {f: col[first] for f, col in tags.items()}
        masks = {"tag": np.zeros(len(keep), bool), "tag (tight)": np.zeros(len(keep), bool), "four tracks": four}
        masks["tag"][has_tag] = self._tag_ok(tag, c.tag.ln_sig_prob_min)
        masks["tag (tight)"][has_tag] = self._tag_ok(tag, c.tag.ln_sig_prob_min_tight if c.tag.ln_sig_prob_min_tight is not None
                                                     else c.tag.ln_sig_prob_min)
        candidate_weight = np.zeros(len(keep))
        candidate_weight[has_tag] = tag["weight"]
        values = {
            # the tag's existence probability (efficiency x purity), carried as a weight (processors/base.py)
            CANDIDATE_WEIGHT_VALUE: candidate_weight,
            "event": ak.to_numpy(events["__event__"]).astype(np.int64),
            # simulated events with a true B0 -> D- l+ nu (the control sample's signal); none in data
            "true_dlnu": (true_d_lnu(events.MCParticle) if c.control is not None and "MCParticle" in events.fields
                          and not events.metadata.get("is_data", False) else np.zeros(len(events), bool)),
        }
        ev = events[keep]
        n_kept = int(keep.sum())
        kept_track = np.repeat(keep, np.diff(trk_offsets))
        kept_side = signal_side & kept_track  # the kept events' signal-side tracks
        # exactly n_tracks per kept event: a regular (events, n_tracks) block per field
        tracks = {f: col[kept_side].reshape(n_kept, c.tracks.n_tracks) for f, col in trk.items()
                  if f not in ("dr", "dz", "inTag") and f not in covariance}
        pair_fit_ok = None
        if c.kstar.vertex_fit:
            fitted = TrackParameters.from_columns({f: trk[f][kept_side] for f in ("dr", "dz", "px", "py", "pz", *covariance)})
            pair_fit_ok = kstar_vertex_fits(fitted, n_kept, c.tracks.n_tracks)
        tag_cols = {f: tag[f][keep[has_tag]] for f in ("px", "py", "pz", "E", "flavour")}
        beam = {f: ak.to_numpy(ev[f]) for f in ("beamPx", "beamPy", "beamPz", "beamE")}
        photon_fields = ["E", "px", "py", "pz", "clusterReg", "clusterE9E21", "inTag"]
        photon_fields += [f for f in ("clusterTiming", "clusterErrorTiming") if f in ev.Photon.fields]
        pho_offsets, pho = flatten(ev.Photon, photon_fields)
        pi0_offsets, pi0 = flatten(ev.Pi0, ["px", "py", "pz", "E", "InvM", "gamma1Index", "gamma2Index"])
        pi0_event = list_index(pi0_offsets)
        n_photons = np.diff(pho_offsets)[pi0_event]
        for g in ("gamma1Index", "gamma2Index"):  # content rows of the pi0's photons (awkward's negative indices wrap)
            local = pi0[g].astype(np.int64)
            pi0[g] = np.where(local < 0, local + n_photons, local) + pho_offsets[pi0_event]
        pho_in_tag = pho["inTag"] != 0
        n_ks = np.zeros(n_kept, np.int64)
        if c.vetoes.ks_half_window is not None:
            # extra K_S: not two tag tracks; the V0 record (px.. and x, y, z) has no four-vector behaviour: read it plainly
            v0 = ak.Array(ev.layout).V0
            all_in_tag = ev.Track.inTag != 0
            tag_pair = all_in_tag[v0.trackIndex1] & all_in_tag[v0.trackIndex2]
            n_ks = ak.to_numpy(ak.sum((v0.hypothesis == 310) & (abs(v0.InvM - KS_MASS) < c.vetoes.ks_half_window) & ~tag_pair, axis=1))
        n_klm = ak.to_numpy(ak.num(ev.KLMCluster.theta)) if "KLMCluster" in ev.fields else np.zeros(n_kept, np.int64)
        shape = None
        if c.event_shape is not None:
            kept_offsets = offsets_of(np.diff(trk_offsets)[keep])
            shape = EventShapeInputs.of(kept_offsets, {f: trk[f][kept_track] for f in ("px", "py", "pz", "inTag")}, pho_offsets, pho_in_tag)
        return KstarChunk(keep, values, masks, tracks, tag_cols, beam, pho_offsets, pho, list_index(pho_offsets), pho_in_tag,
                          pi0_offsets, pi0, pi0_event, ~(pho_in_tag[pi0["gamma1Index"]] | pho_in_tag[pi0["gamma2Index"]]),
                          n_ks, n_klm, shape, pair_fit_ok)

    def objects(self, events: ak.Array, calibration: Calibration, chunk: KstarChunk | None = None) -> SignalSide:
        """The signal side of the events with a tag and exactly ``n_tracks`` clean tracks outside it."""
        chunk = self.chunk_objects(events) if chunk is None else chunk
        values, masks = self._signal_side(chunk, calibration)
        masks = expand(masks, chunk.keep) | chunk.masks
        values = expand(values, chunk.keep) | chunk.values
        return SignalSide(chunk.keep, values, masks)

    def _tag_ok(self, tag: dict[str, np.ndarray], ln_min: float) -> np.ndarray:
        """The tag cuts on the first tag of each event that has one (columns by field)."""
        c = self.cuts.tag
        ok = (np.log(np.maximum(tag["sigProb"], 1e-300)) > ln_min) & in_range(tag["Mbc"], c.mbc) & (abs(tag["deltaE"]) < c.abs_delta_e_max)
        if c.neutral:
            ok = ok & (tag["charge"] == 0)
        return ok

    def _signal_side(self, chunk: KstarChunk, calibration: Calibration) -> tuple[dict[str, Any], dict[str, Any]]:
        """K*0, tau tracks, species, vetoes and the kinematic variables of the kept events (numpy: the
        tracks are (events, n_tracks) blocks, photons and pi0s flat with offsets)."""
        c = self.cuts
        b = chunk.beam
        beta = kin.cm_boost(b["beamE"], b["beamPx"], b["beamPy"], b["beamPz"])
        roots = kin.sqrt_s(b["beamE"], b["beamPx"], b["beamPy"], b["beamPz"])
        per_track = kin.Vec3(*(x[:, None] for x in beta))  # the event's boost beside each of its tracks
        scale = calibration.momentum_scale
        trk = chunk.tracks
        n_events, n_tracks = trk["px"].shape
        rows = np.arange(n_events)
        p_lab = np.sqrt(trk["px"] ** 2 + trk["py"] ** 2 + trk["pz"] ** 2) * scale

        # K*0 -> K+ pi-: every ordered (kaon, pion) pair of opposite charges (ak.argcartesian's order); the one closest to m_K*0
        ks = c.kstar
        kid = trk[ks.kaon_branch]
        ik, ip = np.divmod(np.arange(n_tracks * n_tracks), n_tracks)
        k_charge = trk["charge"][:, ik]
        ok = (ik != ip) & (k_charge != trk["charge"][:, ip]) & (kid[:, ik] > ks.kaon_id_min) & (kid[:, ip] < ks.pion_id_max)
        ok = ok & (p_lab[:, ik] > ks.p_min) & (p_lab[:, ip] > ks.p_min)
        if chunk.pair_fit_ok is not None:
            ok = ok & chunk.pair_fit_ok  # the closest to m_K*0 among the candidates whose fit succeeded (paper)
        if ks.flavour_opposite_tag:
            # a K+ (K*0) comes from a B0 (flavour +1): its tag is a B0bar (flavour -1)
            ok = ok & (k_charge == -chunk.tag["flavour"][:, None])
        as_kaon = kin.to_cm(*lab_p4(trk["px"], trk["py"], trk["pz"], KAON_MASS, scale), *per_track)
        as_pion = kin.to_cm(*lab_p4(trk["px"], trk["py"], trk["pz"], PION_MASS, scale), *per_track)
        pair = kin.p4_add(kin.P4(*(x[:, ik] for x in as_kaon)), kin.P4(*(x[:, ip] for x in as_pion)))
        m_pair = kin.mass(*pair)
        best = np.argmin(np.where(ok, abs(m_pair - KSTAR_MASS), np.inf), axis=1)
        has_kstar, m_kstar, kaon_charge = ok[rows, best], m_pair[rows, best], k_charge[rows, best]
        kstar = kin.P4(*(x[rows, best] for x in pair))
        # the tau tracks: the first two not in the K*0 pair
        outside = (np.arange(n_tracks) != ik[best][:, None]) & (np.arange(n_tracks) != ip[best][:, None])
        order = np.argsort(~outside, axis=1, kind="stable")
        t1, t2 = ({f: col[rows, order[:, k]] for f, col in trk.items()} for k in (0, 1))

        # tau-daughter species from PID: electron, else muon, else pion
        tid = c.tau_id

        def species(t: dict[str, np.ndarray]) -> np.ndarray:
            return np.where(t[tid.electron_branch] > tid.electron_min, ELECTRON,
                            np.where(t[tid.muon_branch] > tid.muon_min, MUON, PION))

        s1, s2 = species(t1), species(t2)

        def tau_p4(t: dict[str, np.ndarray], s: np.ndarray) -> kin.P4:
            mass = np.where(s == ELECTRON, SPECIES_MASS[ELECTRON], np.where(s == MUON, SPECIES_MASS[MUON], PION_MASS))
            return kin.to_cm(*lab_p4(t["px"], t["py"], t["pz"], mass, scale), *beta)

        tau1, tau2 = tau_p4(t1, s1), tau_p4(t2, s2)

        # photons: tag flags, pi0 candidates (photon rows), and rho candidates of the pion tracks
        pho, pi0 = chunk.photons, chunk.pi0
        escale = calibration.photon_energy_scale
        used_photon = chunk.photon_in_tag.copy()
        rho1 = rho2 = np.zeros(n_events, bool)
        m_track = [np.where(s1 == PION, PION_MASS, kin.mass(*tau1)), np.where(s2 == PION, PION_MASS, kin.mass(*tau2))]
        if c.rho is not None:
            good = chunk.pi0_free & self._pi0_quality(chunk, c.rho.pi0, escale)
            of_pi0 = chunk.pi0_event
            pi0_cm = kin.to_cm(pi0["px"] * escale, pi0["py"] * escale, pi0["pz"] * escale, pi0["E"] * escale,
                               *(x[of_pi0] for x in beta))
            tau_out = []
            for t_cm, s in ((tau1, s1), (tau2, s2)):  # the two tau tracks, not a loop over events
                m = kin.mass(*(t_c[of_pi0] + p_c for t_c, p_c in zip(t_cm, pi0_cm)))
                cand = good & (s == PION)[of_pi0] & in_range(m, c.rho.mass)
                pick = segment_argmin(chunk.pi0_offsets, np.where(cand, abs(m - RHO_MASS), np.inf))
                is_rho = take(cand, pick, False)
                m_rho = take(m, pick, np.nan)
                # the rho's photons belong to the signal side: not in E_ECL^extra
                for g in ("gamma1Index", "gamma2Index"):
                    used_photon[pi0[g][pick[is_rho]]] = True
                add = [np.where(is_rho, tc + take(pc, pick, 0.0), tc) for tc, pc in zip(t_cm, pi0_cm)]
                tau_out.append((is_rho, m_rho, kin.P4(*add)))
            (rho1, m_rho1, tau1), (rho2, m_rho2, tau2) = tau_out
            m_track = [np.where(rho1, m_rho1, m_track[0]), np.where(rho2, m_rho2, m_track[1])]
        s1 = np.where(rho1, RHO, s1)
        s2 = np.where(rho2, RHO, s2)

        # the signal B: opposite the tag in the CM frame, E = sqrt(s)/2, |p| from the B0 mass
        tag = chunk.tag
        tag_cm = kin.to_cm(tag["px"], tag["py"], tag["pz"], tag["E"], *beta)
        p_sig = np.sqrt(np.maximum((roots / 2) ** 2 - B0_MASS**2, 0.0))
        unit = 1.0 / np.maximum(kin.momentum(tag_cm.px, tag_cm.py, tag_cm.pz), 1e-12)
        b_sig = kin.P4(-tag_cm.px * unit * p_sig, -tag_cm.py * unit * p_sig, -tag_cm.pz * unit * p_sig, roots / 2)
        tautau = kin.P4(*(b - k for b, k in zip(b_sig, kstar)))
        visible = kin.p4_add(kstar, tau1, tau2)
        miss = kin.P4(*(b - v for b, v in zip(b_sig, visible)))
        # M_K*pi: the K*0 with the tau track of charge opposite the kaon's, as a pion
        opposite1 = t1["charge"] == -kaon_charge
        t_opp = kin.P4(*(np.where(opposite1, a, b) for a, b in zip(
            kin.to_cm(*lab_p4(t1["px"], t1["py"], t1["pz"], PION_MASS, scale), *beta),
            kin.to_cm(*lab_p4(t2["px"], t2["py"], t2["pz"], PION_MASS, scale), *beta))))
        m_kpi = kin.mass(*kin.p4_add(kstar, t_opp))

        # vetoes: extra pi0 (photons outside the tag); the extra K_S and K_L clusters are per chunk
        v = c.vetoes
        n_pi0 = np.zeros(n_events, np.int64)
        if v.pi0 is not None:
            n_pi0 = segment_count(chunk.pi0_offsets, chunk.pi0_free & self._pi0_quality(chunk, v.pi0, escale))

        # E_ECL^extra: counted clusters (region thresholds) outside the tag and the signal side
        scaled = {f: pho[f] for f in pho if f not in ("px", "py", "pz")} | {"E": pho["E"] * escale}
        counted = np.asarray(ak.to_numpy(counted_clusters(ak.Array(scaled), c.extra_energy))) & ~used_photon
        # ak.where with a float fill is float64: so is this sum
        eecl = segment_sum(chunk.photon_offsets, np.where(counted, scaled["E"], 0.0).astype(np.float64))

        f64 = partial(np.asarray, dtype=float)
        values = {
            "s1": s1, "s2": s2,
            "m_kstar": f64(m_kstar), "m_tau_tracks": f64(kin.invariant_mass(tau1, tau2)),
            "m_tautau": f64(kin.mass(*tautau)), "q2": f64(kin.mass2(*tautau)),
            "m_miss2": f64(kin.mass2(*miss)), "e_miss": f64(miss.E), "m_kpi": f64(m_kpi),
            "eecl": f64(eecl), "n_pi0": n_pi0, "n_ks": chunk.n_ks, "n_klm": chunk.n_klm,
            "m_track1": f64(m_track[0]), "m_track2": f64(m_track[1]),
            "p_track1": f64(kin.momentum(*tau1[:3])), "p_track2": f64(kin.momentum(*tau2[:3])),
            # lab momentum, cos(theta) and true species (0: no truth) of the tau tracks, for the lepton-ID corrections
            **{f"{name}{k}": col for k, t in ((1, t1), (2, t2)) for name, col in (
                ("p_lab", f64(np.sqrt(t["px"] ** 2 + t["py"] ** 2 + t["pz"] ** 2) * scale)),
                ("cos_lab", f64(kin.cos_theta(t["px"], t["py"], t["pz"]))),
                ("pdg", np.abs(t["mcPDG"]) if "mcPDG" in t else np.zeros(n_events, np.int64)))},
        }
        if c.event_shape is not None:
            # only for the events that reach its step (NaN elsewhere): it comes after the tag, K*0 and
            # "topology" steps in the cutflow and in every region, so no other event ever reads it
            needed = (np.isin(self.channel_of(s1, s2), c.event_shape.channels) & has_kstar & in_range(m_kstar, ks.mass)
                      & chunk.masks["tag"][chunk.keep])
            values.update(expand(self._event_shape(chunk, needed, beta, scale, escale), needed))
        masks = {"K*0 candidate": has_kstar, "K*0 mass": np.asarray(in_range(m_kstar, ks.mass), dtype=bool)}
        return values, masks

    @staticmethod
    def _pi0_quality(chunk: KstarChunk, q: Pi0Quality, escale: float) -> np.ndarray:
        """pi0 candidates in the mass window whose two photons pass the energy and shower-shape cuts."""
        pho, pi0 = chunk.photons, chunk.pi0
        g1, g2 = pi0["gamma1Index"], pi0["gamma2Index"]
        e1, e2 = pho["E"][g1] * escale, pho["E"][g2] * escale
        s1, s2 = pho["clusterE9E21"][g1], pho["clusterE9E21"][g2]
        return ((abs(pi0["InvM"] - PI0_MASS) < q.mass_half_window) & (e1 > q.photon_e_min) & (e2 > q.photon_e_min)
                & (s1 > q.e9e21_min) & (s2 > q.e9e21_min))

    @staticmethod
    def _event_shape(chunk: KstarChunk, needed: np.ndarray, beta: kin.Vec3, scale: float, escale: float) -> dict[str, np.ndarray]:
        """Thrust of all tracks and photons, |cos| between the B_sig (signal tracks) and B_tag (tag
        tracks and photons) thrust axes, and R2 of all particles (CM), of the ``needed`` kept events."""
        shape, pho, trk = chunk.shape, chunk.photons, chunk.tracks
        assert shape is not None
        all_t = kin.to_cm(*lab_p4(shape.track_px, shape.track_py, shape.track_pz, PION_MASS, scale),
                          *(x[shape.track_event] for x in beta))
        all_g = kin.to_cm(pho["px"] * escale, pho["py"] * escale, pho["pz"] * escale, pho["E"] * escale,
                          *(x[chunk.photon_event] for x in beta))
        in_needed = needed[list_index(shape.offsets)]
        offsets = offsets_of(np.diff(shape.offsets)[needed])
        px, py, pz = (shape.merged(t, g)[in_needed] for t, g in zip(all_t[:3], all_g[:3]))
        _, thrust = thrust_axis_flat(offsets, px, py, pz)
        n_tracks = trk["px"].shape[1]
        sig = kin.to_cm(*lab_p4(*(trk[f][needed] for f in ("px", "py", "pz")), PION_MASS, scale), *(x[needed, None] for x in beta))
        sig_axis, _ = thrust_axis_flat(np.arange(int(needed.sum()) + 1, dtype=np.int64) * n_tracks, *(x.ravel() for x in sig[:3]))
        tag = shape.in_tag[in_needed]
        tag_axis, _ = thrust_axis_flat(offsets_of(np.diff(shape.tag_offsets)[needed]), px[tag], py[tag], pz[tag])
        return {"thrust": np.asarray(thrust, dtype=float), "cos_thrust": np.asarray(cos_theta_thrust(sig_axis, tag_axis), dtype=float),
                "r2": np.asarray(fox_wolfram_r2_flat(offsets, px, py, pz), dtype=float)}

    # ------------------------------------------------------------------ selection
    def channel_of(self, s1: np.ndarray, s2: np.ndarray) -> np.ndarray:
        """The channel name of each event from its two tau-daughter species."""
        lo, hi = np.minimum(s1, s2), np.maximum(s1, s2)
        if self.experiment == "belle":
            table = {(ELECTRON, ELECTRON): "ee", (ELECTRON, MUON): "emu", (MUON, MUON): "mumu",
                     (ELECTRON, PION): "epi", (MUON, PION): "mupi", (PION, PION): "pipi"}
            out = np.full(len(s1), "", dtype=object)
            for (a, b), name in table.items():  # six topologies, not a loop over events
                out[(lo == a) & (hi == b)] = name
            return out
        leptons = (s1 <= MUON).astype(int) + (s2 <= MUON).astype(int)
        rho = (s1 == RHO) | (s2 == RHO)
        return np.where(rho, "rhoX", np.where(leptons == 2, "ll", np.where(leptons == 1, "lpi", "pipi"))).astype(object)

    def select(self, events: ak.Array, objects: SignalSide, channel: str) -> Selection:
        c, v, m = self.cuts, objects.values, objects.masks
        ln_tight = channel in c.tag.tight_channels
        steps: dict[str, np.ndarray] = {
            "tag": m["tag"],
            "four tracks": m["four tracks"],
            "K*0 candidate": m["K*0 candidate"],
            "K*0 mass": m["K*0 mass"],
            "topology": self.channel_of(v["s1"], v["s2"]) == channel,
        }
        if ln_tight:
            steps["tag (tight)"] = m["tag (tight)"]
        if c.m_tau_tracks_max is not None:
            steps["M(tau tracks)"] = v["m_tau_tracks"] < c.m_tau_tracks_max
        if c.vetoes.pi0 is not None:
            steps["pi0 veto"] = v["n_pi0"] == 0
        if c.vetoes.ks_half_window is not None:
            steps["K_S veto"] = v["n_ks"] == 0
        if c.vetoes.klm_max is not None:
            steps["K_L veto"] = v["n_klm"] <= c.vetoes.klm_max
        if c.m_tautau_min is not None:
            steps["M_tautau"] = v["m_tautau"] > c.m_tautau_min
        if c.topology_cuts is not None:
            t = c.topology_cuts[channel]
            steps["M_K*pi"] = v["m_kpi"] > t.m_kpi_min
            steps["M_miss^2"] = in_range(v["m_miss2"], t.m_miss2)
        if c.d_veto is not None and channel in c.d_veto.channels:
            steps["D veto"] = ~((v["m_kpi"] >= c.d_veto.m_kpi[0]) & (v["m_kpi"] <= c.d_veto.m_kpi[1]))
        if c.event_shape is not None and channel in c.event_shape.channels:
            es = c.event_shape
            steps["event shape"] = (v["thrust"] < es.thrust_max) & (v["cos_thrust"] < es.cos_thrust_max) & (v["r2"] < es.r2_max)
        steps = {name: np.nan_to_num(np.asarray(mask), nan=0).astype(bool) for name, mask in steps.items()}
        cuts = packed(steps)
        sr = cuts.all(*cuts.names)
        values = dict(v)
        if self.experiment == "belle2":
            values["bdt"] = self._score(v, sr, channel)
            signal = sr & (values["bdt"] >= c.bdt_min)
            cuts.add("BDT signal region", values["bdt"] >= c.bdt_min)
        else:
            signal = sr & (v["eecl"] < c.signal_eecl_max)
            cuts.add("E_ECL^extra signal window", v["eecl"] < c.signal_eecl_max)
        regions = {"SR": sr, "signal": signal}
        if c.control is not None and channel in c.control.channels:
            kept = [name for name in cuts.names if name not in ("M_K*pi", "M_miss^2", "D veto", "E_ECL^extra signal window")]
            control = cuts.all(*kept) & in_range(v["m_kpi"], c.control.m_kpi)
            regions["control"] = control
            if c.control.m_miss2_split is not None:
                low = np.nan_to_num(v["m_miss2"], nan=np.inf) < c.control.m_miss2_split
                regions["control_low"], regions["control_high"] = control & low, control & ~low
            for name in [r for r in regions if r in CONTROL_REGIONS]:
                regions[name + TRUE_DLNU] = regions[name] & v["true_dlnu"]
        return Selection(cuts=cuts, values=values, regions=regions)

    def feature_matrix(self, v: dict[str, np.ndarray]) -> np.ndarray:
        return np.nan_to_num(np.stack([v[f] for f in self.config.features], axis=1), nan=MISSING_FEATURE)

    def _score(self, v: dict[str, np.ndarray], sr: np.ndarray, channel: str) -> np.ndarray:
        """The channel's k-fold BDT output for the SR events (``NO_MODEL_SCORE`` elsewhere and in training)."""
        score = np.full(len(sr), bdt.NO_MODEL_SCORE)
        model = self.models.get(channel)
        if model is not None and sr.any():
            score[sr] = model.score(self.feature_matrix(v)[sr], v["event"][sr])
        return score

    # ------------------------------------------------------------------ weights and fills
    def add_weights(self, weights: Weights, selection: Selection, channel: str) -> None:
        """Tracking (the four signal-side tracks), trigger, luminosity; lepton ID (data / MC efficiency) on
        the tau tracks identified as e or mu that are one, the pion fake rate on those that are not."""
        v = selection.values
        n = len(v["eecl"])
        self.add_common_weights(weights, n, 4)
        # the two tau tracks of each event, interleaved; no truth (pdg 0) is taken as a true lepton
        s, pdg = (np.stack([v[f"{name}1"], v[f"{name}2"]], axis=1).ravel() for name in ("s", "pdg"))
        species = np.where(s == ELECTRON, "e", np.where(s == MUON, "mu", ""))
        is_lepton = (pdg == 0) | np.where(s == ELECTRON, pdg == 11, pdg == 13)
        p, cos = (np.stack([v[f"{name}1"], v[f"{name}2"]], axis=1).ravel() for name in ("p_lab", "cos_lab"))
        self.add_lepton_id_weights(weights, species, p, cos, is_lepton, tracks_per_event=2)

    def fill(self, hists: dict[str, hist.Hist], selection: Selection, channel: str, variation: str, weight: np.ndarray) -> None:
        v, sr = selection.values, selection.regions["SR"]
        fill_counts(hists["yields"], channel, variation, weight, selection.regions)
        for region, mask in selection.regions.items():
            hists["mmiss2"].fill(channel=channel, region=region, variation=variation, mmiss2=v["m_miss2"][mask], weight=weight[mask])
        if self.experiment == "belle":
            for region in ("SR", *(r for r in selection.regions if r.startswith("control"))):
                mask = selection.regions.get(region)
                if mask is not None:
                    hists["eecl"].fill(channel=channel, region=region, variation=variation, eecl=v["eecl"][mask], weight=weight[mask])
        else:
            hists["bdt"].fill(channel=channel, region="SR", variation=variation, bdt=v["bdt"][sr], weight=weight[sr])

    def fill_variations(self, hists: dict[str, hist.Hist], selection: Selection, channel: str,
                        weights: Mapping[str, np.ndarray]) -> None:
        """``fill`` of every variation, one fill per histogram and region instead of one per variation too:
        the same bins, each summed over the same entries in the same order."""
        v, names, regions = selection.values, list(weights), selection.regions
        fill_counts_of_variations(hists["yields"], channel, weights, regions)

        def fill_all(name: str, value: str, region: str, mask: np.ndarray) -> None:
            n = int(np.count_nonzero(mask))
            hists[name].fill(channel=channel, region=region, variation=np.repeat(names, n), **{name: np.tile(v[value][mask], len(names))},
                             weight=np.concatenate([w[mask] for w in weights.values()]))

        for region, mask in regions.items():
            fill_all("mmiss2", "m_miss2", region, mask)
        if self.experiment == "belle":
            for region in ("SR", *(r for r in regions if r.startswith("control"))):
                if region in regions:
                    fill_all("eecl", "eecl", region, regions[region])
        else:
            fill_all("bdt", "bdt", "SR", regions["SR"])

    def fill_nominal(self, hists: dict[str, hist.Hist], selection: Selection, channel: str, weight: np.ndarray) -> None:
        v = selection.values
        for region, mask in selection.regions.items():
            for name in ("m_kpi", "m_tautau"):
                hists[name].fill(channel=channel, region=region, **{name: v[name][mask]}, weight=weight[mask])

    def columns(self, events: ak.Array, selection: Selection, channel: str, weight: np.ndarray, dataset: str) -> dict[str, dict[str, np.ndarray]]:
        """Training mode: the BDT features of the SR events (``belle-rare train``)."""
        if not self.training:
            return {}
        v, sr = selection.values, selection.regions["SR"]
        n = int(sr.sum())
        return {"features": {"X": self.feature_matrix(v)[sr], "event": v["event"][sr], "weight": weight[sr],
                             "in_sr": np.ones(n, bool), "in_window": np.ones(n, bool), "nominal_pid": np.ones(n, bool),
                             "m": v["eecl"][sr], "de": v["q2"][sr]}}


def model_name(channel: str) -> str:
    """The stored-model name of a Belle II category (``<name>_belle2.json``)."""
    return f"kstartautau_{channel}"


# ---------------------------------------------------------------------------------------------- training
def sr_fraction(config: KstarTauTauConfig, channel: str) -> float:
    """The BDT is trained and its Punzi point chosen on the whole SR (no transfer factor)."""
    return 1.0


SEARCH = Search(
    name="kstartautau",
    processor=KstarTauTauProcessor,
    config_file=builtin_file("searches", "kstartautau.yaml"),
    # one part per experiment (Belle E_ECL^extra fit, Belle II BDT fit) and their combination
    stats_file=builtin_file("stats", "kstartautau.yaml"),
    report="belle_rare.analyses.kstartautau:write_reports",
    training=Training(sr_fraction=sr_fraction, model_per_channel=model_name),
    # make run: Belle (E_ECL^extra fit) and Belle II (BDT fit, the shipped per-category models), combined
    demo=Demo(("belle", "belle2"), {"sig_kstartautau": 20_000, "ctl_dlnu": 20_000}),
)
