"""tau -> l phi (phi -> K+ K-) at Belle II (190 /fb): inclusive tag, continuum BDT, (M_tau, dE) counting.

A phi candidate (two opposite kaon candidates in a mass window) and an electron (``ephi``) or
muon (``muphi``) in the same thrust hemisphere form the signal tau; the rest of the event is used
inclusively for continuum-suppression features of a k-fold BDT (``processors.bdt``). Regions:
the rectangular signal region (SR) of (M_tau, dE) and the reduced sideband (RSB: the dE band
outside the SR box), after the BDT (``SR``, ``RSB``, ``other``) and before it (``*_presel``);
the expected background is N_RSB x r_MC with r_MC = N_SR / N_RSB in simulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping
from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea.analysis_tools import Weights

from belle_rare.configs.loader import StrictModel
from belle_rare.core.histograms import count_axis, fill_counts, new_hist, regular
from belle_rare.core.units import pdg_mass
from belle_rare.processors import bdt
from belle_rare.processors import kinematics as kin
from belle_rare.processors import jagged_kernels as jk
from belle_rare.processors import pid_weighting
from belle_rare.processors.base import Calibration, Selection, packed, signal_datasets_of
from belle_rare.processors.base import TriggerLines, fill_counts_of_variations
from belle_rare.processors.columns import expand, in_range
from belle_rare.processors.event_shape import fox_wolfram_r2_two_lists
from belle_rare.processors.registry import Demo, Search, Training, builtin_file
from belle_rare.processors.event_objects import (
    Bins, FlatChunk, FlatEventObjects, PhotonCuts, RoeCuts, TrackCuts, Window, flat_chunk, flat_event_objects,
    rest_of_event, scaled_tracks,
)

KAON_MASS = pdg_mass(321)
PHI_MASS = pdg_mass(333)
LEPTON_MASS = {"ephi": pdg_mass(11), "muphi": pdg_mass(13)}
LEPTON_PDG = {"ephi": 11, "muphi": 13}
SPECIES = {"ephi": "e", "muphi": "mu"}
CHANNELS = ("ephi", "muphi")
# the regions of the ``yields`` histogram: after the BDT, and before it (``_presel``)
REGIONS = ("SR", "RSB", "other", "SR_presel", "RSB_presel", "other_presel")
# cutflow labels of the preselection steps (a running AND), in order
PRESELECTION = (
    "phi -> K+K- and lepton in one hemisphere", "track multiplicity", "thrust", "missing-momentum polar angle",
)
# N-1 plots (report only): histogram name -> (the preselection step it undoes, the value filled, bins)
NMINUS1 = {
    "nminus1_thrust": ("thrust", "thrust", (50, 0.5, 1.0), "thrust"),
    "nminus1_cos_theta_miss": ("missing-momentum polar angle", "cos_theta_miss", (50, -1.0, 1.0),
                               r"$\cos\theta^*_{\mathrm{miss}}$"),
    "nminus1_n_tracks": ("track multiplicity", "n_tracks", (14, 2.5, 16.5), "good tracks"),
}
# BDT-score edges of the ``de_score`` histogram (the working point is added at booking): where a dataset's
# BDT pass fraction is read as a function of dE, at the working point and at looser cuts (issue 11: whether the
# bound of a dataset with no event near the window may be scaled by its pass fraction, `bound_efficiency` in
# stats/model_config.py; benchmarks/bench_taulphi_bound.py shows the fraction rising towards the window, so the
# shipped configs/stats/taulphi.yaml does not scale it)
SCORE_EDGES = (0.0, 0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.998, 0.999, 0.9995, 0.9999)
FEATURES = (
    "thrust", "fox_wolfram_r2", "roe_thrust", "cos_thrust_signal_roe", "roe_mass", "roe_delta_e", "n_tracks",
    "n_photons", "p_miss_t_cm", "cos_theta_miss_cm", "m_miss2", "lepton_p_cm", "phi_p_cm", "cos_lepton_phi",
)


# ---------------------------------------------------------------------------------------------- config
class PerChannel(StrictModel):
    """One number per channel."""

    ephi: float
    muphi: float

    def __getitem__(self, channel: str) -> float:
        return getattr(self, channel)


class KaonCuts(StrictModel):
    id_branch: str
    id_min: float
    phi_mass_window: Window


class LeptonCuts(StrictModel):
    id_branch: str
    id_min: float


class Leptons(StrictModel):
    ephi: LeptonCuts
    muphi: LeptonCuts

    def __getitem__(self, channel: str) -> LeptonCuts:
        return getattr(self, channel)


class TauLPhiSelection(StrictModel):
    thrust_max: float
    cos_theta_miss_cm: Window
    n_tracks_min: int


class TauLPhiBDT(bdt.BDTConfig):
    """The BDT block (training background is PID-weighted: processors/pid_weighting.py)."""


class Box(StrictModel):
    m_mean: float
    de_mean: float
    sigma_m: float
    sigma_de: float
    sr_n_sigma_m: float
    sr_n_sigma_de: float
    rsb_n_sigma_de: PerChannel
    rsb_m_range: Window

    def regions(self, m: np.ndarray, de: np.ndarray, channel: str) -> tuple[np.ndarray, np.ndarray]:
        """(in SR, in RSB): SR box; RSB = dE band x mass range, minus the SR box."""
        dm, dd = np.abs(m - self.m_mean), np.abs(de - self.de_mean)
        sr = (dm < self.sr_n_sigma_m * self.sigma_m) & (dd < self.sr_n_sigma_de * self.sigma_de)
        band = (dd < self.rsb_n_sigma_de[channel] * self.sigma_de) & in_range(m, self.rsb_m_range)
        return sr, band & ~sr

    def sr_fraction(self, channel: str) -> float:
        """Area of the SR over the area of SR + RSB (for a flat-background transfer)."""
        w_m = 2 * self.sr_n_sigma_m * self.sigma_m
        sr = w_m * 2 * self.sr_n_sigma_de * self.sigma_de
        band = (self.rsb_m_range[1] - self.rsb_m_range[0]) * 2 * self.rsb_n_sigma_de[channel] * self.sigma_de
        overlap = w_m * 2 * min(self.sr_n_sigma_de, self.rsb_n_sigma_de[channel]) * self.sigma_de
        return sr / (sr + band - overlap)


class TauLPhiHistograms(StrictModel):
    m_tau: Bins
    de: Bins
    # dE of the candidates in the window's mass range (rsb_m_range) down to the lowest reachable dE: where the
    # B B and charm tails are fitted and extrapolated into the window (configs/stats/taulphi.yaml `tail_fit`)
    de_tail: Bins
    m_kk: Bins
    bdt: Bins


class TauLPhiPlots(StrictModel):
    signal_branching_fraction: float  # BR(tau -> l phi) of the signal overlaid on the stacked backgrounds (report)


class TauLPhiPaper(StrictModel):
    """Table 3, per channel (validation.json)."""

    efficiency: PerChannel
    r_mc: PerChannel
    n_rsb: PerChannel
    expected_background: PerChannel
    observed: PerChannel


# config field types, checked at load: one signal dataset per channel (and the BDT features this module computes)
SignalDatasets = signal_datasets_of(CHANNELS)
Features = bdt.feature_list(FEATURES, "processors/taulphi.py")


class TauLPhiConfig(StrictModel):
    luminosity: str
    n_tautau: float
    signal_datasets: SignalDatasets
    trigger: TriggerLines  # L1 lines the paper used; their OR is the first cut (processors/base.py)
    tracks: TrackCuts
    kaons: KaonCuts
    leptons: Leptons
    photons: PhotonCuts
    roe: RoeCuts
    selection: TauLPhiSelection
    features: Features
    bdt: TauLPhiBDT
    signal_region: Box
    histograms: TauLPhiHistograms
    paper: TauLPhiPaper
    plots: TauLPhiPlots


# ---------------------------------------------------------------------------------------------- objects
@dataclass(frozen=True)
class PhiEvents:
    """Channel-independent objects of the events with two kaon candidates and three good tracks:
    the event objects shared with tau3mu, Fox-Wolfram R2, kaon four-momenta and phi candidates."""

    common: FlatEventObjects
    r2: np.ndarray
    pair_offsets: np.ndarray  # the kaon pairs of each event (flat, like the tracks)
    phi_a: np.ndarray     # track (content) indices of the kaon pairs
    phi_b: np.ndarray
    m_kk: np.ndarray      # M(K K) of every pair
    phi_ok: np.ndarray    # opposite charges, mass in the phi window


class TauLPhiProcessor(bdt.BDTProcessor):
    """tau -> l phi (Belle II, 190 /fb): (M_tau, dE) signal region, reduced sideband x r_MC."""

    name = "taulphi"
    experiments = ("belle2",)
    channels = CHANNELS
    config_model = TauLPhiConfig
    # background PID-weighted unless `belle-rare run --no-pid-weights`: the BDT working point and the
    # background estimate come from PID-weighted simulation (too few events pass the thrown ID)
    pid_weighting_default = True
    reads_declared_branches_only = True  # every branch it reads is a field of Track / Photon or in branches
    branches = (
        "nTrack", "Track_px", "Track_py", "Track_pz", "Track_E", "Track_charge", "Track_dr", "Track_dz",
        "Track_muonID", "Track_electronID", "Track_kaonID", "nPhoton", "Photon_E", "Photon_px", "Photon_py",
        "Photon_pz", "beamE", "beamPx", "beamPy", "beamPz", "__weight__", "__event__",
    )

    def setup(self) -> None:
        cfg = self.config
        self.kaon_cuts = cfg.kaons
        self.lepton_cuts = {ch: cfg.leptons[ch] for ch in CHANNELS}
        super().setup()

    def pid_requirements(self) -> list[tuple[str, float]]:
        cfg = self.config
        return [(cfg.kaons.id_branch, cfg.kaons.id_min)] + [(cfg.leptons[ch].id_branch, cfg.leptons[ch].id_min) for ch in CHANNELS]

    # ------------------------------------------------------------------ histograms
    def book(self) -> dict[str, hist.Hist]:
        cfg = self.config.histograms
        return {
            "yields": new_hist(count_axis(), systematics=True),
            "m_de": new_hist(regular(*cfg.m_tau, "m", r"$M_{\ell\phi}$ [GeV]"), regular(*cfg.de, "de", r"$\Delta E$ [GeV]")),
            "m_kk": new_hist(regular(*cfg.m_kk, "m_kk", r"$M_{K^+K^-}$ [GeV]")),
            "de_tail": new_hist(regular(*cfg.de_tail, "de", r"$\Delta E$ [GeV], $M_{\ell\phi}$ in the window's range")),
            "bdt_score": new_hist(regular(*cfg.bdt, "score", "BDT score (-1: no model)")),
            # dE (M in the window's mass range, as de_tail) x BDT score, before the BDT: the pass fraction vs dE
            "de_score": new_hist(regular(*cfg.de_tail, "de", r"$\Delta E$ [GeV], $M_{\ell\phi}$ in the window's range"),
                                 hist.axis.Variable(self._score_edges(), name="score", label="BDT score")),
            **{name: new_hist(regular(*bins, value, label)) for name, (_, value, bins, label) in NMINUS1.items()},
        }

    def _score_edges(self) -> list[float]:
        """SCORE_EDGES with the working point among them (a cut on the axis lands on the working point);
        -1 (no model) below and 1 above (scores are probabilities)."""
        wp = self.working_point
        inner = set(SCORE_EDGES) | ({float(wp)} if np.isfinite(wp) and 0.0 < wp < 1.0 else set())
        return [-1.0, *sorted(inner), 1.0 + 1e-9]

    # ------------------------------------------------------------------ physics
    def chunk_objects(self, events: ak.Array) -> FlatChunk:
        """Only events with two kaon candidates and three good tracks get the full computation
        (PID-weighted background: every good track is a kaon candidate); their tracks, photons and
        beams flattened once per chunk."""
        kc, cfg, weighted = self.kaon_cuts, self.config, self.pid_weighted(events)
        trk_fields = events.Track.fields
        ids = [(kc.id_branch, kc.id_min), *((lc.id_branch, lc.id_min) for lc in self.lepton_cuts.values())]
        pass_fields = [pid_weighting.pass_probability_field(trk_fields, v, cut) for v, cut in ids] if weighted else []
        fields = ["charge", cfg.kaons.id_branch, *(v for v, _ in ids), *(lc.id_branch for lc in self.lepton_cuts.values()),
                  *pass_fields, *(["mcPDG"] if "mcPDG" in trk_fields else [])]

        def two_kaons_three_tracks(offsets: np.ndarray, track: dict[str, np.ndarray], good: np.ndarray) -> np.ndarray:
            is_k = good if weighted else good & (track[kc.id_branch] > kc.id_min)
            return (jk.segment_count(offsets, is_k) >= 2) & (jk.segment_count(offsets, good) >= 3)

        return flat_chunk(events, cfg.tracks, fields, two_kaons_three_tracks)

    def objects(self, events: ak.Array, calibration: Calibration, chunk: FlatChunk | None = None) -> PhiEvents:
        """Event objects (flat), Fox-Wolfram R2 and the phi candidates under one calibration."""
        kc, cfg = self.kaon_cuts, self.config
        chunk = self.chunk_objects(events) if chunk is None else chunk
        o = flat_event_objects(chunk, calibration, cfg.photons)
        t = o.track
        is_k = o.good if self.pid_weighted(events) else o.good & (t[kc.id_branch] > kc.id_min)
        pair_offsets, a, b = jk.pairs(o.offsets, is_k)
        k_a, k_b = (kin.to_cm(*scaled_tracks(kin.P4(t["px"][i], t["py"][i], t["pz"][i], None), o.momentum_scale,
                                             KAON_MASS), *(c[o.event[i]] for c in o.beta)) for i in (a, b))
        m_kk = kin.mass(*(x + y for x, y in zip(k_a, k_b)))
        phi_ok = (t["charge"][a] + t["charge"][b] == 0) & in_range(m_kk, kc.phi_mass_window)
        tg_offsets = jk.offsets_of(jk.segment_count(o.offsets, o.good))
        r2 = fox_wolfram_r2_two_lists(tg_offsets, tuple(c[o.good] for c in o.t_cm[:3]), o.g_offsets, tuple(o.g_cm[:3]))
        return PhiEvents(common=o, r2=r2, pair_offsets=pair_offsets, phi_a=a, phi_b=b, m_kk=m_kk, phi_ok=phi_ok)

    def select(self, events: ak.Array, objects: PhiEvents, channel: str) -> Selection:
        v = expand(self._candidates(objects, channel, self.pid_weighted(events)), objects.common.keep)
        event_number = ak.to_numpy(events["__event__"]).astype(np.int64)
        steps = v.pop("steps")
        base = np.logical_and.reduce([steps[s] for s in PRESELECTION])
        score = np.full(len(events), bdt.NO_MODEL_SCORE)
        score[base] = self.score(v["features"][base], event_number[base])
        sr, rsb = self.config.signal_region.regions(v["m"], v["de"], channel)
        bdt_pass = score > self.working_point
        cuts = packed({**steps, "SR or RSB": sr | rsb, "signal region": sr, "BDT": bdt_pass})
        cutflow = [(label, PRESELECTION[: i + 1]) for i, label in enumerate(PRESELECTION)] + [
            ("SR or RSB", PRESELECTION + ("SR or RSB",)),
            ("signal region (no BDT)", PRESELECTION + ("signal region",)),
            ("BDT", PRESELECTION + ("SR or RSB", "BDT")),
            ("signal region", PRESELECTION + ("signal region", "BDT")),
        ]
        after = base & bdt_pass
        regions = {"SR": after & sr, "RSB": after & rsb, "other": after & ~sr & ~rsb,
                   "SR_presel": base & sr, "RSB_presel": base & rsb, "other_presel": base & ~sr & ~rsb, "presel": base,
                   "BDT": after}
        return Selection(cuts, values={**v, "score": score, "event": event_number, "in_sr": sr, "in_rsb": rsb},
                         regions=regions, cutflow=cutflow)

    def _candidates(self, p: PhiEvents, channel: str, weighted: bool = False) -> dict[str, Any]:
        """The best (phi, lepton) candidate of one channel, its features and the preselection steps.

        ``weighted`` (PID-weighted background): no ID cut; the candidate with the highest probability
        that both kaons and the lepton pass their ID (product of the three pass probabilities) is
        kept (ties: closest to the phi mass); the event's ``pid_weight`` is P(some candidate passes)
        (``pid_weighting.any_candidate``).

        Works on flat numpy arrays (``event_objects.flat_event_objects``, per-list numba kernels from
        ``processors/jagged_kernels.py``), every value bit-identical to the awkward version it
        replaced (README "Scale"). Every kept event has at least three tracks (``objects``)."""
        f, cfg = p.common, self.config
        lc, kc = self.lepton_cuts[channel], self.kaon_cuts
        pass_fields = ([pid_weighting.pass_probability_field(list(f.track), kc.id_branch, kc.id_min),
                        pid_weighting.pass_probability_field(list(f.track), lc.id_branch, lc.id_min)] if weighted else [])
        t, offsets, event, local, good, hemi = f.track, f.offsets, f.event, f.local, f.good, f.hemi
        start, beta, roots, n_events = offsets[:-1], f.beta, f.roots, len(offsets) - 1

        is_l = good if weighted else good & (t[lc.id_branch] > lc.id_min)
        # (phi, lepton) candidates: the lepton distinct from both kaons, all three in one hemisphere
        cand_offsets, cand_pair, gl = jk.cartesian(p.pair_offsets, p.phi_ok, offsets, is_l)
        ga, gb = p.phi_a[cand_pair], p.phi_b[cand_pair]  # content indices of the kaons and the lepton
        valid = (gl != ga) & (gl != gb) & (hemi[ga] == hemi[gl]) & (hemi[gb] == hemi[gl])
        closeness = -abs(p.m_kk[cand_pair] - PHI_MASS)
        if weighted:
            p_k, p_l = (t[name] for name in pass_fields)
            cand_prob = p_k[ga] * p_k[gb] * p_l[gl]
            # rank by probability; the mass term (< 0.03 GeV) x 1e-3 only breaks ties
            score = cand_prob + 1e-3 * closeness
        else:
            score = closeness
        # columns.best_index: the best valid candidate; none valid -> the event's first candidate
        best = jk.segment_argmax(cand_offsets, np.where(valid, score, -np.inf))
        has = jk.take(valid, np.where(best >= 0, cand_offsets[:-1] + best, -1), False)
        pick = np.where(np.diff(cand_offsets) > 0, cand_offsets[:-1] + np.where(has, best, 0), -1)
        # events with no candidate: track 0 exists (>= 3 tracks); the event fails ``has``
        ja, jb, jl = (np.where(pick >= 0, jk.take(x, pick, 0), start) for x in (ga, gb, gl))
        scale = f.momentum_scale
        ka, kb = (kin.to_cm(*scaled_tracks(kin.P4(t["px"][j], t["py"][j], t["pz"][j], None), scale, KAON_MASS), *beta)
                  for j in (ja, jb))
        l_lab_sel = scaled_tracks(kin.P4(t["px"][jl], t["py"][jl], t["pz"][jl], None), scale, LEPTON_MASS[channel])
        lep = kin.to_cm(*l_lab_sel, *beta)
        phi = kin.p4_add(ka, kb)
        tau = kin.p4_add(phi, lep)
        m_tau, de = kin.mass(*tau), tau.E - roots / 2
        m_kk = kin.mass(*phi)

        t_pt = np.sqrt((t["px"] * scale)**2 + (t["py"] * scale)**2)
        in_roe = (good & (t_pt > cfg.roe.track_pt_min) & (local != (ja - start)[event]) & (local != (jb - start)[event])
                  & (local != (jl - start)[event]))
        miss = f.miss
        cos_miss = kin.cos_theta(miss.px, miss.py, miss.pz)
        n_tracks = jk.segment_count(offsets, good).astype(float)
        sel = cfg.selection
        steps = dict(zip(PRESELECTION, (
            has,
            n_tracks >= sel.n_tracks_min,
            f.thrust < sel.thrust_max,
            in_range(cos_miss.astype(float), sel.cos_theta_miss_cm),
        )))
        # the features are read on preselected events only (BDT score, training columns): the
        # rest-of-event thrust, the costliest of them, is computed there only (NaN elsewhere)
        roe, roe_axis, roe_thrust = rest_of_event(f, in_roe, np.logical_and.reduce(list(steps.values())))
        feats = {
            "thrust": f.thrust, "fox_wolfram_r2": np.asarray(p.r2, dtype=float), "roe_thrust": roe_thrust.astype(float),
            "cos_thrust_signal_roe": np.abs(kin.cos_angle(roe_axis, tau).astype(float)),
            "roe_mass": kin.mass(*roe).astype(float), "roe_delta_e": (roe.E - roots / 2).astype(float),
            "n_tracks": n_tracks, "n_photons": np.diff(f.g_offsets).astype(float),
            "p_miss_t_cm": np.sqrt(miss.px**2 + miss.py**2).astype(float), "cos_theta_miss_cm": cos_miss.astype(float),
            "m_miss2": kin.mass2(*miss).astype(float), "lepton_p_cm": kin.momentum(*lep[:3]).astype(float),
            "phi_p_cm": kin.momentum(*phi[:3]).astype(float), "cos_lepton_phi": kin.cos_angle(lep, phi).astype(float),
        }
        kaon_id, lepton = t[cfg.kaons.id_branch], cfg.leptons[channel]
        nominal_pid = ((kaon_id[ja].astype(float) > cfg.kaons.id_min) & (kaon_id[jb].astype(float) > cfg.kaons.id_min)
                       & (t[lepton.id_branch][jl].astype(float) > lepton.id_min))
        # the event's pass probability, and its lower bound (the kept candidate's) for the closure benchmark
        # (pid_weighting.any_candidate; its ak.where(valid, 1 - p, 1.0) turns float32 into float64)
        pid = ({"pid_weight": 1.0 - jk.segment_prod(cand_offsets, (1.0 - cand_prob).astype(np.float64), valid),
                "pid_weight_lower": jk.take(cand_prob, pick, 0.0).astype(float)} if weighted else {})
        return {
            **pid, "steps": steps, "nominal_pid": nominal_pid, "m": m_tau.astype(float), "de": de.astype(float),
            "m_kk": m_kk.astype(float), "thrust": f.thrust, "cos_theta_miss": cos_miss.astype(float), "n_tracks": n_tracks,
            "features": np.stack([feats[name] for name in cfg.features], axis=1) if n_events else np.zeros((0, len(cfg.features))),
            "lepton_p": kin.momentum(*l_lab_sel[:3]).astype(float), "lepton_cos": kin.cos_theta(*l_lab_sel[:3]).astype(float),
            "lepton_pdg": (t["mcPDG"][jl].astype(float) if "mcPDG" in t
                           else np.full(n_events, float(LEPTON_PDG[channel]))),
        }

    # ------------------------------------------------------------------ weights
    def add_weights(self, weights: Weights, selection: Selection, channel: str) -> None:
        """Tracking (3 signal + 1 tag), trigger, luminosity, lepton ID (pion fake rate by truth)."""
        v = selection.values
        self.add_common_weights(weights, len(v["m"]), 4)
        p, cos = v["lepton_p"], v["lepton_cos"]   # NaN: no candidate (weight 1)
        self.add_lepton_id_weights(weights, SPECIES[channel], p, cos, np.abs(v["lepton_pdg"]) == LEPTON_PDG[channel])

    # ------------------------------------------------------------------ fills
    def fill(self, hists: dict[str, hist.Hist], selection: Selection, channel: str, variation: str, weight: np.ndarray) -> None:
        fill_counts(hists["yields"], channel, variation, weight, {r: selection.regions[r] for r in REGIONS})

    def fill_variations(self, hists: dict[str, hist.Hist], selection: Selection, channel: str,
                        weights: Mapping[str, np.ndarray]) -> None:
        fill_counts_of_variations(hists["yields"], channel, weights, {r: selection.regions[r] for r in REGIONS})

    def fill_nominal(self, hists: dict[str, hist.Hist], selection: Selection, channel: str, weight: np.ndarray) -> None:
        v, passed = selection.values, selection.regions["presel"]
        # the plane before and after the BDT (the SR / RSB split is a function of the plane itself)
        for region in ("presel", "BDT"):
            mask = selection.regions[region]
            hists["m_de"].fill(channel=channel, region=region, m=v["m"][mask], de=v["de"][mask], weight=weight[mask])
            tail = mask & in_range(v["m"], self.config.signal_region.rsb_m_range)
            hists["de_tail"].fill(channel=channel, region=region, de=v["de"][tail], weight=weight[tail])
        tail = passed & in_range(v["m"], self.config.signal_region.rsb_m_range)
        hists["de_score"].fill(channel=channel, region="presel", de=v["de"][tail], score=v["score"][tail], weight=weight[tail])
        hists["bdt_score"].fill(channel=channel, region="presel", score=v["score"][passed], weight=weight[passed])
        hists["m_kk"].fill(channel=channel, region="presel", m_kk=v["m_kk"][passed], weight=weight[passed])
        for name, (step, value, _, _) in NMINUS1.items():
            # every preselection step but ``step`` (and the trigger): the paper's kind of N-1 distribution
            mask = selection.passing(*(s for s in PRESELECTION if s != step))
            hists[name].fill(channel=channel, region="presel", **{value: v[value][mask]}, weight=weight[mask])

    def columns(self, events: ak.Array, selection: Selection, channel: str, weight: np.ndarray,
                dataset: str) -> dict[str, dict[str, np.ndarray]]:
        if not self.training:
            return {}
        v, m = selection.values, selection.regions["presel"]
        return {"features": {
            "X": v["features"][m], "event": v["event"][m], "weight": weight[m], "in_sr": v["in_sr"][m],
            "in_window": (v["in_sr"] | v["in_rsb"])[m], "nominal_pid": v["nominal_pid"][m], "m": v["m"][m], "de": v["de"][m],
        }}


# ---------------------------------------------------------------------------------------------- training
def sr_fraction(config: TauLPhiConfig, channel: str) -> float:
    """Area of the SR over SR + RSB of ``channel`` (flat-background transfer)."""
    return config.signal_region.sr_fraction(channel)


SEARCH = Search(
    name="taulphi",
    processor=TauLPhiProcessor,
    config_file=builtin_file("searches", "taulphi.yaml"),
    stats_file=builtin_file("stats", "taulphi.yaml"),
    report="belle_rare.analyses.taulphi:write_reports",
    training=Training(sr_fraction=sr_fraction),
    demo=Demo("belle2", {"sig_taumuphi": 10000, "sig_tauephi": 10000, "tautau": 20000}),
)
