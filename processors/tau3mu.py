"""tau -> mu mu mu at Belle II (424 /fb, arXiv:2405.07386): inclusive three-muon selection + BDT.

Three muon candidates from the IP with total charge +-1 in one thrust hemisphere form the signal
tau; everything else in the event is the rest of the event (ROE), used inclusively. Signal
variables: M_3mu and dE_3mu = E*_3mu - sqrt(s)/2. A k-fold BDT (``processors.bdt``) on the
features listed in ``configs/searches/tau3mu.yaml`` separates signal; the signal region is a
rotated asymmetric 5 sigma ellipse and the background estimate is ABCD-like (BDT pass/fail x
inside the ellipse / in a wider distance-to-peak region): the ``region`` axis of the ``yields``
counting histogram the stats model reads.
"""

from __future__ import annotations

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
from belle_rare.processors import pid_weighting
from belle_rare.processors.base import Calibration, Selection, packed, signal_datasets_of
from belle_rare.processors.base import TriggerLines, fill_counts_of_variations
from belle_rare.processors import jagged_kernels as jk
from belle_rare.processors.columns import expand, in_range
from belle_rare.processors.event_objects import (
    Bins, FlatChunk, FlatEventObjects, PhotonCuts, RoeCuts, TrackCuts, Window, flat_chunk, flat_event_objects,
    rest_of_event, scaled_tracks,
)
from belle_rare.processors.signal_ellipse import fit_signal_ellipse
from belle_rare.processors.registry import Demo, Search, Training, builtin_file

TAU_MASS = pdg_mass(15)
MUON_MASS = pdg_mass(13)
CHANNELS = ("3mu",)
# ABCD (sec. 3.4): A = SR & BDT pass, B = outer & pass, C = SR & fail, D = outer & fail
REGIONS = {"A": "SR_pass", "B": "outer_pass", "C": "SR_fail", "D": "outer_fail"}
FAR_REGION = "far"
# the regions of the ``yields`` histogram (what configs/stats/tau3mu.yaml reads)
YIELD_REGIONS = (*REGIONS.values(), FAR_REGION)
# cutflow labels of the preselection steps (a running AND), in order
PRESELECTION = (
    "three muon candidates (|q| = 1, one hemisphere)", "thrust", "missing-momentum polar angle", "event charge",
)
# N-1 plots (report only; the paper's Fig. 1 shows thrust and the missing-momentum angle): histogram name ->
# (the preselection step it undoes, the value filled, bins, label); filled inside the outer (20 sigma) window
NMINUS1 = {
    "nminus1_thrust": ("thrust", "thrust", (50, 0.5, 1.0), "thrust"),
    "nminus1_cos_theta_miss": ("missing-momentum polar angle", "cos_theta_miss", (50, -1.0, 1.0),
                               r"$\cos\theta^*_{\mathrm{miss}}$"),
    "nminus1_event_charge": ("event charge", "event_charge", (7, -3.5, 3.5), "event charge"),
}



# ---------------------------------------------------------------------------------------------- config
class MuonCuts(StrictModel):
    id_branch: str
    id_min: float
    tight_min: float
    n_tight: int
    total_charge_abs: int


class Tau3MuSelection(StrictModel):
    thrust_max: float
    cos_theta_miss_cm: Window
    event_charge: int


class Tau3MuBDT(bdt.BDTConfig):
    """The BDT block (training background is PID-weighted: processors/pid_weighting.py)."""


class RotatedEllipse(StrictModel):
    """Asymmetric ellipse in (M, dE) rotated by ``angle``; widths differ above / below the peak."""

    n_sigma: float
    outer_n_sigma: float
    m_mean: float
    de_mean: float
    sigma_m_high: float
    sigma_m_low: float
    sigma_de_high: float
    sigma_de_low: float
    angle: float

    def distance(self, m: np.ndarray, de: np.ndarray) -> np.ndarray:
        """Distance to the peak in units of sigma along the rotated axes (NaN input -> NaN)."""
        dm, dd = np.asarray(m) - self.m_mean, np.asarray(de) - self.de_mean
        c, s = np.cos(self.angle), np.sin(self.angle)
        u, v = c * dm + s * dd, -s * dm + c * dd
        su = np.where(u > 0, self.sigma_m_high, self.sigma_m_low)
        sv = np.where(v > 0, self.sigma_de_high, self.sigma_de_low)
        return np.sqrt((u / su) ** 2 + (v / sv) ** 2)

    def area_ratio(self) -> float:
        """Area of the SR over the area of the outer region (both asymmetric ellipses)."""
        return (self.n_sigma / self.outer_n_sigma) ** 2


class Tau3MuHistograms(StrictModel):
    m3mu: Bins
    de: Bins
    bdt: Bins


class Tau3MuPlots(StrictModel):
    signal_branching_fraction: float  # BR(tau -> 3 mu) of the signal overlaid on the stacked backgrounds (report)


class Tau3MuPaper(StrictModel):
    """The paper's numbers, written beside ours in validation.json."""

    efficiency: float
    efficiency_one_prong: float
    m_mean: float
    sigma_m_high: float
    sigma_m_low: float
    de_mean: float
    sigma_de_high: float
    sigma_de_low: float
    expected_background: float
    background_before_bdt: float


# every feature the processor can compute (the YAML picks and orders them)
FEATURES = (
    "mu1_e_cm", "mu2_e_cm", "mu3_e_cm", "mu1_cos_theta_cm", "mu2_cos_theta_cm", "mu3_cos_theta_cm",
    "mu1_pt_cm", "mu2_pt_cm", "mu3_pt_cm", "tau_closest_track_angle", "roe_mass", "roe_delta_e",
    "roe_n_mu", "roe_n_pi", "roe_n_e", "roe_charge_x_signal_charge", "roe_thrust", "cos_roe_thrust_signal",
    "cos_roe_thrust_z", "thrust", "n_tracks", "n_photons", "photon_e_cm", "p_miss_t_cm", "cos_theta_miss_cm",
    "cos_miss_mu1", "cos_miss_mu2", "cos_miss_mu3", "m_miss2",
)


# config field types, checked at load: one signal dataset per channel (and the BDT features this module computes)
SignalDatasets = signal_datasets_of(CHANNELS)
Features = bdt.feature_list(FEATURES, "processors/tau3mu.py")


class Tau3MuConfig(StrictModel):
    luminosity: str
    n_tautau: float
    signal_datasets: SignalDatasets
    trigger: TriggerLines  # L1 lines the paper used; their OR is the first cut (processors/base.py)
    tracks: TrackCuts
    muons: MuonCuts
    photons: PhotonCuts
    roe: RoeCuts
    selection: Tau3MuSelection
    features: Features
    bdt: Tau3MuBDT
    signal_region: RotatedEllipse
    histograms: Tau3MuHistograms
    paper: Tau3MuPaper
    plots: Tau3MuPlots




# the ROE tracks' most likely species, in this order (the features count muons, pions, electrons)
ROE_ID_BRANCHES = ("muonID", "pionID", "electronID", "kaonID", "protonID")


def _first_argmax(columns: list[np.ndarray]) -> np.ndarray:
    """Per entry, which column is largest (``ak.argmax`` over a list of them: the first of equal
    values, a later one only if strictly greater, so NaN never wins unless first)."""
    best = np.zeros(len(columns[0]), dtype=np.int64)
    top = columns[0]
    for k, col in enumerate(columns[1:], start=1):
        better = col > top
        best = np.where(better, k, best)
        top = np.where(better, col, top)
    return best


# ---------------------------------------------------------------------------------------------- processor
class Tau3MuProcessor(bdt.BDTProcessor):
    """tau -> 3 mu (Belle II, 424 /fb): M_3mu, dE_3mu in a rotated 5 sigma ellipse after a k-fold BDT."""

    name = "tau3mu"
    experiments = ("belle2",)
    channels = CHANNELS
    config_model = Tau3MuConfig
    # background PID-weighted unless `belle-rare run --no-pid-weights`: the BDT working point and the
    # background estimate come from PID-weighted simulation (too few events pass the thrown ID)
    pid_weighting_default = True
    reads_declared_branches_only = True  # every branch it reads is a field of Track / Photon or in branches
    branches = (
        "nTrack", "Track_px", "Track_py", "Track_pz", "Track_E", "Track_charge", "Track_dr", "Track_dz",
        "Track_muonID", "Track_electronID", "Track_pionID", "Track_kaonID", "Track_protonID",
        "nPhoton", "Photon_E", "Photon_px", "Photon_py", "Photon_pz",
        "beamE", "beamPx", "beamPy", "beamPz", "__weight__", "__event__",
    )

    def setup(self) -> None:
        self.muon_cuts = self.config.muons
        super().setup()

    def pid_requirements(self) -> list[tuple[str, float]]:
        mu = self.config.muons
        return [(mu.id_branch, mu.id_min), (mu.id_branch, mu.tight_min)]

    # ------------------------------------------------------------------ histograms
    def book(self) -> dict[str, hist.Hist]:
        cfg = self.config.histograms
        m = regular(*cfg.m3mu, "m", r"$M_{3\mu}$ [GeV]")
        de = regular(*cfg.de, "de", r"$\Delta E_{3\mu}$ [GeV]")
        score = regular(*cfg.bdt, "score", "BDT score (-1: no model)")
        return {
            "yields": new_hist(count_axis(), systematics=True),
            "m_de": new_hist(m, de),
            "bdt_score": new_hist(score),
            "distance": new_hist(regular(60, 0, 30, "d", "distance to peak [sigma]")),
            **{name: new_hist(regular(*bins, value, label)) for name, (_, value, bins, label) in NMINUS1.items()},
        }

    # ------------------------------------------------------------------ physics
    def chunk_objects(self, events: ak.Array) -> FlatChunk:
        """Only events with at least three muon candidates (PID-weighted: three good tracks) get the
        full computation; their tracks, photons and beams flattened once per chunk."""
        mu, weighted = self.muon_cuts, self.pid_weighted(events)
        trk_fields = events.Track.fields
        pass_fields = ([pid_weighting.pass_probability_field(trk_fields, mu.id_branch, cut)
                        for cut in (mu.id_min, mu.tight_min)] if weighted else [])
        fields = ["charge", mu.id_branch, *ROE_ID_BRANCHES, *pass_fields, *(["mcPDG"] if "mcPDG" in trk_fields else [])]

        def three_muons(offsets: np.ndarray, track: dict[str, np.ndarray], good: np.ndarray) -> np.ndarray:
            is_mu = good if weighted else good & (track[mu.id_branch] > mu.id_min)
            return jk.segment_count(offsets, is_mu) >= 3

        return flat_chunk(events, self.config.tracks, fields, three_muons)

    def objects(self, events: ak.Array, calibration: Calibration, chunk: FlatChunk | None = None) -> FlatEventObjects:
        """The event objects of the prefiltered events under one calibration (flat)."""
        chunk = self.chunk_objects(events) if chunk is None else chunk
        return flat_event_objects(chunk, calibration, self.config.photons)

    def select(self, events: ak.Array, objects: FlatEventObjects, channel: str) -> Selection:
        v = expand(self._candidates(objects, self.pid_weighted(events)), objects.keep)
        ell = self.config.signal_region
        event_number = ak.to_numpy(events["__event__"]).astype(np.int64)
        base = np.logical_and.reduce([v["steps"][s] for s in PRESELECTION])
        score = np.full(len(events), bdt.NO_MODEL_SCORE)
        score[base] = self.score(v["features"][base], event_number[base])
        d = ell.distance(v["m"], v["de"])
        bdt_pass = score > self.working_point
        in_sr = base & (d < ell.n_sigma)
        outer = base & (d >= ell.n_sigma) & (d < ell.outer_n_sigma)
        cuts = packed({**v.pop("steps"), "outer region": d < ell.outer_n_sigma, "signal region": d < ell.n_sigma,
                       "BDT": bdt_pass})
        steps = [(label, PRESELECTION[: i + 1]) for i, label in enumerate(PRESELECTION)] + [
            ("outer region", PRESELECTION + ("outer region",)),
            ("signal region (no BDT)", PRESELECTION + ("signal region",)),
            ("BDT", PRESELECTION + ("outer region", "BDT")),
            ("signal region", PRESELECTION + ("signal region", "BDT")),
        ]
        regions = {
            REGIONS["A"]: in_sr & bdt_pass, REGIONS["B"]: outer & bdt_pass, REGIONS["C"]: in_sr & ~bdt_pass,
            REGIONS["D"]: outer & ~bdt_pass, FAR_REGION: base & ~(d < ell.outer_n_sigma),
            "SR": in_sr, "outer": outer, "presel": base,
        }
        return Selection(cuts, values={**v, "score": score, "distance": d, "event": event_number}, regions=regions,
                         cutflow=steps)

    def _candidates(self, f: FlatEventObjects, weighted: bool = False) -> dict[str, Any]:
        """The best three-muon candidate, its features and the preselection steps (kept events).

        ``weighted`` (PID-weighted background): every good track is a muon candidate, the triplet
        with the highest probability to pass the muon ID (all three > id_min, n_tight > tight_min)
        is kept, and the event's ``pid_weight`` is P(some triplet passes) (``pid_weighting.any_candidate``;
        tau pair events mostly have one triplet).

        Works on flat numpy arrays (each track field flattened once, per-list numba kernels from
        ``processors/jagged_kernels.py``): the awkward version paid ~0.1-1 ms of dispatch per call,
        ~500 calls per calibration. Every value is bit-identical to that version's (README "Scale").
        Every kept event has at least three tracks (``chunk_objects``), so the chosen indices exist."""
        cfg, mcfg, n_events = self.config, self.muon_cuts, len(f.offsets) - 1
        pass_fields = ([pid_weighting.pass_probability_field(list(f.track), mcfg.id_branch, cut)
                        for cut in (mcfg.id_min, mcfg.tight_min)] if weighted else [])
        t, offsets, event, local, good, hemi, t_cm = f.track, f.offsets, f.event, f.local, f.good, f.hemi, f.t_cm
        beta, roots, start = f.beta, f.roots, f.offsets[:-1]
        charge, muid = t["charge"], t[mcfg.id_branch]

        # triplets of muon candidates: |sum q| = 1, one hemisphere, >= n_tight tight muons
        is_mu = good if weighted else good & (muid > mcfg.id_min)
        tri_offsets, a, b, c = jk.triplets(offsets, is_mu)
        tri_charge = charge[a] + charge[b] + charge[c]
        same = (hemi[a] == hemi[b]) & (hemi[b] == hemi[c])
        n_tight = sum((muid[i] > mcfg.tight_min).astype(np.int64) for i in (a, b, c))
        valid = (abs(tri_charge) == mcfg.total_charge_abs) & same
        if weighted:
            p_loose, p_tight = (t[f] for f in pass_fields)
            cand_prob = pid_weighting.at_least_tight([p_loose[i] for i in (a, b, c)], [p_tight[i] for i in (a, b, c)],
                                                     mcfg.n_tight)
            score, usable = cand_prob, valid
        else:
            score, usable = muid[a] + muid[b] + muid[c], valid & (n_tight >= mcfg.n_tight)
        # columns.best_index: the highest-score usable triplet; none usable -> the event's first triplet
        best = jk.segment_argmax(tri_offsets, np.where(usable, score, -np.inf))
        has = jk.take(usable, np.where(best >= 0, tri_offsets[:-1] + best, -1), False)
        pick = np.where(np.diff(tri_offsets) > 0, tri_offsets[:-1] + np.where(has, best, 0), -1)
        ja, jb, jc = (np.where(pick >= 0, jk.take(x, pick, 0), start) for x in (a, b, c))  # content indices

        # the signal candidates in the muon mass hypothesis (stored energies assume a pion)
        scale = f.momentum_scale
        mus_lab = [scaled_tracks(kin.P4(t["px"][j], t["py"][j], t["pz"][j], None), scale, MUON_MASS) for j in (ja, jb, jc)]
        mus = [kin.to_cm(*m_, *beta) for m_ in mus_lab]
        tau = kin.p4_add(*mus)
        m3 = kin.mass(*tau)
        de = tau.E - roots / 2
        sig_charge = charge[ja] + charge[jb] + charge[jc]
        chosen_id = [muid[j].astype(float) for j in (ja, jb, jc)]
        nominal_pid = (np.min(chosen_id, axis=0) > cfg.muons.id_min) & (
            sum((x > cfg.muons.tight_min).astype(int) for x in chosen_id) >= cfg.muons.n_tight)

        # ROE: other good tracks with pT > threshold, photons above threshold
        t_pt = np.sqrt((t["px"] * scale)**2 + (t["py"] * scale)**2)
        in_roe = (good & (t_pt > cfg.roe.track_pt_min) & (local != (ja - start)[event]) & (local != (jb - start)[event])
                  & (local != (jc - start)[event]))
        g_offsets, g_cm = f.g_offsets, f.g_cm
        # event-level and missing momentum (CM), and the preselection they make
        miss = f.miss
        p_miss_t = np.sqrt(miss.px**2 + miss.py**2)
        cos_miss = kin.cos_theta(miss.px, miss.py, miss.pz)
        event_charge = jk.segment_sum(offsets, charge, good)
        thrust = f.thrust
        sel = cfg.selection
        steps = dict(zip(PRESELECTION, (
            has,
            thrust < sel.thrust_max,
            in_range(cos_miss.astype(float), sel.cos_theta_miss_cm),
            event_charge.astype(float) == sel.event_charge,
        )))
        # the features are read on preselected events only (BDT score, training columns): the
        # rest-of-event thrust, the costliest of them, is computed there only (NaN elsewhere)
        roe, roe_axis, roe_thrust = rest_of_event(f, in_roe, np.logical_and.reduce(list(steps.values())))
        roe_mass = kin.mass(*roe)
        roe_de = roe.E - roots / 2
        best_id = _first_argmax([t[n] for n in ROE_ID_BRANCHES])
        roe_charge = jk.segment_sum(offsets, charge, in_roe)
        # closest ROE track to the tau direction
        cos_trk = kin.cos_angle(kin.Vec3(*(comp[event] for comp in tau[:3])), t_cm)
        closest = np.arccos(jk.segment_max(offsets, cos_trk, in_roe, -1.0))

        pts = [np.sqrt(m_.px**2 + m_.py**2) for m_ in mus]
        pt_arr = np.stack([p.astype(float) for p in pts], axis=1)
        order = np.argsort(-pt_arr, axis=1)

        def ordered_feature(per_mu: list[Any]) -> list[np.ndarray]:
            arr = np.stack([np.asarray(x, dtype=float) for x in per_mu], axis=1)
            arr = np.take_along_axis(arr, order, axis=1)
            return [arr[:, k] for k in range(3)]

        feats: dict[str, Any] = {}
        for name, per_mu in (("e_cm", [m_.E for m_ in mus]), ("cos_theta_cm", [kin.cos_theta(m_.px, m_.py, m_.pz) for m_ in mus]),
                             ("pt_cm", pts), ("cos_miss", [kin.cos_angle(miss, m_) for m_ in mus])):
            for k, val in enumerate(ordered_feature(per_mu), start=1):
                feats[f"mu{k}_{name}" if name != "cos_miss" else f"cos_miss_mu{k}"] = val
        in_roe_count = [jk.segment_count(offsets, in_roe & (best_id == k)).astype(float) for k in range(3)]
        feats.update({
            "tau_closest_track_angle": closest.astype(float),
            "roe_mass": roe_mass.astype(float), "roe_delta_e": roe_de.astype(float),
            "roe_n_mu": in_roe_count[0], "roe_n_pi": in_roe_count[1], "roe_n_e": in_roe_count[2],
            "roe_charge_x_signal_charge": (roe_charge.astype(np.int64) * sig_charge).astype(float),
            "roe_thrust": roe_thrust.astype(float),
            "cos_roe_thrust_signal": np.abs(kin.cos_angle(roe_axis, tau).astype(float)),
            "cos_roe_thrust_z": np.abs(roe_axis.z.astype(float)),
            "thrust": thrust, "n_tracks": jk.segment_count(offsets, good).astype(float),
            "n_photons": np.diff(g_offsets).astype(float),
            "photon_e_cm": jk.segment_sum(g_offsets, g_cm.E).astype(float), "p_miss_t_cm": p_miss_t.astype(float),
            "cos_theta_miss_cm": cos_miss.astype(float), "m_miss2": kin.mass2(*miss).astype(float),
        })
        lab_p = np.stack([kin.momentum(m_.px, m_.py, m_.pz).astype(float) for m_ in mus_lab], axis=1)
        lab_cos = np.stack([kin.cos_theta(m_.px, m_.py, m_.pz).astype(float) for m_ in mus_lab], axis=1)
        pdg = (np.stack([t["mcPDG"][j].astype(float) for j in (ja, jb, jc)], axis=1) if "mcPDG" in t
               else np.full((n_events, 3), 13.0))
        # the event's pass probability, and its lower bound (the kept candidate's) for the closure benchmark
        # (pid_weighting.any_candidate; its ak.where(valid, 1 - p, 1.0) turns float32 into float64)
        pid = ({"pid_weight": 1.0 - jk.segment_prod(tri_offsets, (1.0 - cand_prob).astype(np.float64), valid),
                "pid_weight_lower": jk.take(cand_prob, pick, 0.0).astype(float)} if weighted else {})
        return {
            **pid, "steps": steps, "m": m3.astype(float), "de": de.astype(float),
            "features": np.stack([feats[name] for name in cfg.features], axis=1) if n_events else np.zeros((0, len(cfg.features))),
            "mu_p": lab_p, "mu_cos": lab_cos, "mu_pdg": pdg, "nominal_pid": nominal_pid,
            "thrust": thrust, "cos_theta_miss": cos_miss.astype(float), "event_charge": event_charge.astype(float),
        }

    # ------------------------------------------------------------------ weights
    def add_weights(self, weights: Weights, selection: Selection, channel: str) -> None:
        """Tracking (3 signal + 1 tag track), trigger, luminosity, muon ID (pion fake rate by truth)."""
        v = selection.values
        self.add_common_weights(weights, len(v["m"]), 4)
        p, cos = v["mu_p"].ravel(), v["mu_cos"].ravel()   # NaN: no candidate (weight 1)
        self.add_lepton_id_weights(weights, "mu", p, cos, (np.abs(v["mu_pdg"]) == 13).ravel(), tracks_per_event=3)

    # ------------------------------------------------------------------ fills
    def fill(self, hists: dict[str, hist.Hist], selection: Selection, channel: str, variation: str, weight: np.ndarray) -> None:
        fill_counts(hists["yields"], channel, variation, weight, {r: selection.regions[r] for r in YIELD_REGIONS})

    def fill_variations(self, hists: dict[str, hist.Hist], selection: Selection, channel: str,
                        weights: Mapping[str, np.ndarray]) -> None:
        fill_counts_of_variations(hists["yields"], channel, weights, {r: selection.regions[r] for r in YIELD_REGIONS})

    def fill_nominal(self, hists: dict[str, hist.Hist], selection: Selection, channel: str, weight: np.ndarray) -> None:
        v, regions = selection.values, selection.regions
        for region in YIELD_REGIONS:
            mask = regions[region]
            hists["m_de"].fill(channel=channel, region=region, m=v["m"][mask], de=v["de"][mask], weight=weight[mask])
        for region in ("SR", "outer"):
            mask = regions[region]
            hists["bdt_score"].fill(channel=channel, region=region, score=v["score"][mask], weight=weight[mask])
        passed = regions["presel"]
        hists["distance"].fill(channel=channel, region="all", d=np.nan_to_num(v["distance"][passed], nan=1e9),
                               weight=weight[passed])
        for name, (step, value, _, _) in NMINUS1.items():
            # every preselection step but ``step`` (and the trigger), inside the outer window
            mask = selection.passing(*(s for s in PRESELECTION if s != step), "outer region")
            hists[name].fill(channel=channel, region="outer", **{value: v[value][mask]}, weight=weight[mask])

    def columns(self, events: ak.Array, selection: Selection, channel: str, weight: np.ndarray,
                dataset: str) -> dict[str, dict[str, np.ndarray]]:
        v, ell = selection.values, self.config.signal_region
        passed = selection.regions["presel"]
        out: dict[str, dict[str, np.ndarray]] = {}
        if dataset == self.config.signal_datasets[channel]:
            # unbinned signal candidates before the BDT: the report fits the signal ellipse on them
            out["candidates"] = {"m": v["m"][passed], "de": v["de"][passed], "weight": weight[passed]}
        if self.training:
            d = v["distance"][passed]
            out["features"] = {
                "X": v["features"][passed], "event": v["event"][passed], "weight": weight[passed],
                "in_sr": d < ell.n_sigma, "in_window": d < ell.outer_n_sigma, "nominal_pid": v["nominal_pid"][passed],
                "m": v["m"][passed], "de": v["de"][passed],
            }
        return out


# ---------------------------------------------------------------------------------------------- training
def sr_fraction(config: Tau3MuConfig, channel: str) -> float:
    """Area of the 5 sigma ellipse over the outer (20 sigma) region (flat-background transfer)."""
    return config.signal_region.area_ratio()


def ellipse_fit(data: dict[str, np.ndarray], config: Tau3MuConfig) -> dict[str, Any]:
    """The signal ellipse fitted on the nominal-ID training signal, recorded beside the configured one."""
    signal = (data["y"] == 1) & data["nominal"]
    try:
        fit = fit_signal_ellipse(data["m"][signal], data["de"][signal], data["w"][signal])
    except (ValueError, RuntimeError) as err:
        return {"signal_region_fit": {"error": str(err)}}
    configured = config.signal_region
    return {"signal_region_fit": {"fitted": fit.as_config(), "profile_slope": [fit.slope, fit.slope_error],
                                  "signal_events": fit.n_events,
                                  "configured": {k: getattr(configured, k) for k in fit.as_config()}}}


SEARCH = Search(
    name="tau3mu",
    processor=Tau3MuProcessor,
    config_file=builtin_file("searches", "tau3mu.yaml"),
    stats_file=builtin_file("stats", "tau3mu.yaml"),
    report="belle_rare.analyses.tau3mu:write_reports",
    training=Training(sr_fraction=sr_fraction, extra_metadata=ellipse_fit),
    demo=Demo("belle2", {"sig_tau3mu": 20000, "tautau": 20000}),
)
