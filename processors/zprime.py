"""e+e- -> mu+ mu- Z', Z' -> invisible at Belle II (PRL 130 231801, arXiv:2212.03066; 79.7 /fb).

Two opposite-charge muons from the IP and nothing else in the event beyond beam background (no
other IP track, no calorimeter energy above the photon veto), the recoil against the pair in the
ECL barrel, where a radiated photon carrying the recoil would have been seen. The signal is a peak
in the squared recoil mass M2_recoil at M_Z'^2; the paper fits (M2_recoil, theta_recoil) in the CM
frame per mass window, after one classifier trained over all masses (the Punzi-net, whose four
inputs ``FEATURES`` are this processor's columns). Every cut is in ``configs/searches/zprime.yaml``
with its source; the paper's own cut values are mostly not in the text we have ([NF] there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import awkward as ak
import hist
import numpy as np

from belle_rare.configs.loader import StrictModel
from belle_rare.core.histograms import count_axis, fill_counts, new_hist, regular
from belle_rare.core.units import pdg_mass
from belle_rare.processors import kinematics as kin
from belle_rare.processors import pid_weighting
from belle_rare.processors.base import Calibration, SearchProcessor, Selection, TriggerLines, packed
from belle_rare.processors.columns import expand
from belle_rare.processors.event_objects import TrackCuts, event_frame, good_tracks, scaled_tracks
from belle_rare.processors import jagged_kernels as jk
from belle_rare.processors.extra_energy import ExtraEnergyCuts, region_threshold
from belle_rare.processors.registry import Demo, Search, builtin_file

MUON_MASS = pdg_mass(13)
CHANNELS = ("mumu",)
STEPS = ("two opposite IP tracks", "muon ID", "photon veto", "recoil in the ECL barrel", "M2_recoil range")
# the Punzi-net inputs (feichtip/punzinet examples/punzi_training.ipynb ``features``), in its names; our
# reading of them: the harder muon's transverse momentum to the two-muon thrust axis, the harder muon's
# momentum transverse / along the softer muon's direction, and the pT of the dimuon, all in the CM frame
FEATURES = ("pt_thrustFrame_max", "pt_max_wrt_min_CMS", "pl_max_wrt_min_CMS", "Z0_pt_CMS")
Window = tuple[float, float]
Bins = tuple[int, float, float]


class Muons(StrictModel):
    id_branch: str
    id_min: float


class PhotonVeto(StrictModel):
    """Calorimeter energy not matched to the muons (processors/extra_energy.py) below ``max_extra_energy``."""

    clusters: ExtraEnergyCuts
    max_extra_energy: float


class Recoil(StrictModel):
    theta_lab_deg: Window   # recoil momentum (lab) inside the ECL barrel
    m2_range: Window        # GeV^2


class Binning(StrictModel):
    m2: Bins
    theta_cm_deg: Bins


class Classifier(StrictModel):
    """The mass-parametrised classifier (processors/zprime_classifier.py) applied at its per-mass Punzi working point."""

    apply: bool           # fill the ``classified`` region (the scan's input); false: only ``selected``
    model: str            # artefact name: models/<model>_<experiment>.json and _meta.json


class ZprimeConfig(StrictModel):
    luminosity: str
    signal_process: str     # the catalogue process of the trained masses' samples (sig_zprime_m<mass>)
    trigger: TriggerLines
    tracks: TrackCuts
    muons: Muons
    photon_veto: PhotonVeto
    recoil: Recoil
    histograms: Binning
    classifier: Classifier
    # sigma(M2_recoil) (GeV^2) vs M_Z' (GeV) of the Punzi-net example (feichtip/punzinet examples/width.txt)
    paper_m2_resolution: dict[float, float]


# ---------------------------------------------------------------------------------------------
# physics


@dataclass
class DimuonEvents:
    """Events with exactly two IP tracks (``keep``) and their CM-frame kinematics, one row per kept event."""

    keep: np.ndarray
    lab: np.ndarray       # (n, 2, 4) the two tracks (px, py, pz, E), muon mass, calibrated
    cm: np.ndarray        # (n, 2, 4) the same in the CM frame
    charge: np.ndarray    # (n, 2)
    muon_id: np.ndarray   # (n, 2) the ID variable, or its pass probability (PID-weighted mode)
    pdg: np.ndarray       # (n, 2) true species (0: unknown / data)
    recoil_lab: np.ndarray  # (n, 4)
    sqrt_s: np.ndarray    # (n,)
    extra_energy: np.ndarray  # (n,) GeV
    nominal: bool = True  # the nominal calibration (the only one whose m2_pass is filled)


@dataclass
class DimuonChunk:
    """What the calibrations of a chunk share (``chunk_objects``): the calibration-independent objects of
    the events with two IP tracks, and the kinematics / extra energy per momentum / photon-energy scale
    (a momentum variation leaves the photons nominal and vice versa: 3 of each for 5 calibrations)."""

    keep: np.ndarray
    tracks: kin.P4         # the two IP tracks of each kept event, (n, 2) numpy arrays, as stored
    photons: "FlatPhotons"  # the kept events' Photon collection, flat
    boost: tuple[np.ndarray, np.ndarray, np.ndarray]  # CM velocity, (n, 1) columns (broadcast onto the tracks)
    sqrt_s: np.ndarray
    beam_lab: np.ndarray   # (n, 4)
    charge: np.ndarray
    muon_id: np.ndarray
    pdg: np.ndarray
    kinematics: dict[float, tuple[np.ndarray, np.ndarray]]  # momentum scale -> (lab, cm)
    extra_energy: dict[float, np.ndarray]                    # photon-energy scale -> E_extra


@dataclass(frozen=True)
class FlatPhotons:
    """The Photon clusters of the kept events, flat, and what ``extra_energy.counted_clusters`` reads
    of them that no photon-energy scale changes (threshold per cluster, timing cuts)."""

    offsets: np.ndarray
    E: np.ndarray          # as stored (float32)
    threshold: np.ndarray  # GeV, from clusterReg (+inf: never counted)
    timing_ok: np.ndarray  # passes the timing cuts

    @classmethod
    def of(cls, photons: ak.Array, cuts: ExtraEnergyCuts) -> "FlatPhotons":
        def flat(field: str) -> np.ndarray:
            return ak.to_numpy(ak.flatten(photons[field]))

        E = flat("E")
        timing_ok = np.ones(len(E), bool)
        if cuts.max_abs_timing is not None:
            timing_ok = timing_ok & (abs(flat("clusterTiming")) < cuts.max_abs_timing)
        if cuts.max_timing_significance is not None:
            if "clusterErrorTiming" not in ak.fields(photons):
                raise KeyError("max_timing_significance needs the Photon_clusterErrorTiming branch")
            timing_ok = timing_ok & (abs(flat("clusterTiming")) < cuts.max_timing_significance * flat("clusterErrorTiming"))
        return cls(jk.offsets_of(ak.to_numpy(ak.num(photons))), E, region_threshold(flat("clusterReg"), cuts.thresholds),
                   timing_ok)

    def extra_energy(self, scale: float) -> np.ndarray:
        """``extra_energy.extra_energy(photons with E x scale, None, cuts)``: the same clusters, the same
        float64 sum in the same order (``jagged_kernels.segment_sum``)."""
        E = self.E * scale if scale != 1.0 else self.E
        counted = (E > self.threshold) & self.timing_ok
        return jk.segment_sum(self.offsets, E.astype(np.float64), counted)


def recoil_kinematics(cm: np.ndarray, sqrt_s: np.ndarray) -> dict[str, np.ndarray]:
    """M2_recoil (GeV^2), theta_recoil (deg) and the Punzi-net inputs from the two muons' CM four-momenta (n, 2, 4)."""
    pair = cm.sum(axis=1)
    recoil = np.column_stack([-pair[:, :3], sqrt_s - pair[:, 3]])
    p_rec = np.linalg.norm(recoil[:, :3], axis=1)
    m2 = recoil[:, 3] ** 2 - p_rec**2
    theta = np.degrees(np.arccos(np.clip(recoil[:, 2] / np.where(p_rec > 0, p_rec, 1.0), -1.0, 1.0)))
    p3 = cm[:, :, :3]
    mag = np.linalg.norm(p3, axis=2)
    hard = np.argmax(mag, axis=1)
    rows = np.arange(len(cm))
    p_max, p_min = p3[rows, hard], p3[rows, 1 - hard]
    u_min = p_min / np.linalg.norm(p_min, axis=1, keepdims=True)
    pl = np.sum(p_max * u_min, axis=1)
    pt = np.sqrt(np.clip(np.sum(p_max**2, axis=1) - pl**2, 0.0, None))
    # thrust of two momenta: the axis along the longer of p1 - p2 and p1 + p2
    diff, summ = p3[:, 0] - p3[:, 1], p3[:, 0] + p3[:, 1]
    axis = np.where((np.linalg.norm(diff, axis=1) >= np.linalg.norm(summ, axis=1))[:, None], diff, summ)
    axis = axis / np.linalg.norm(axis, axis=1, keepdims=True)
    along = np.einsum("nkc,nc->nk", p3, axis)
    pt_thrust = np.sqrt(np.clip(mag**2 - along**2, 0.0, None)).max(axis=1)
    return {"m2_recoil": m2, "theta_recoil": theta, "pt_thrustFrame_max": pt_thrust, "pt_max_wrt_min_CMS": pt,
            "pl_max_wrt_min_CMS": pl, "Z0_pt_CMS": np.hypot(pair[:, 0], pair[:, 1])}


class ZprimeProcessor(SearchProcessor):
    """e+e- -> mu mu Z' (Z' -> invisible), Belle II: two muons, recoil mass squared and recoil angle."""

    name = "zprime"
    experiments = ("belle2",)
    channels = CHANNELS
    branches = (
        "nTrack", "Track_px", "Track_py", "Track_pz", "Track_E", "Track_charge", "Track_dr", "Track_dz", "Track_muonID",
        "nPhoton", "Photon_E", "Photon_clusterReg", "Photon_clusterTiming", "Photon_clusterErrorTiming", "beamE", "beamPx", "beamPy", "beamPz", "__weight__", "__event__",
    )
    config_model = ZprimeConfig

    def setup(self) -> None:
        """The shipped classifier and its working points (none in training mode or with ``classifier.apply`` false)."""
        self.classifier = None
        if self.config.classifier.apply and not self.training:
            from belle_rare.processors import bdt, zprime_classifier  # the classifier module imports this one

            model = bdt.load_model(self.config.classifier.model, self.experiment, zprime_classifier.MODEL_FEATURES, self.model_dir)
            self.classifier = zprime_classifier.ClassifierCut.from_model(model)

    def book(self) -> dict[str, hist.Hist]:
        b = self.config.histograms
        hists = {
            "yields": new_hist(count_axis(), systematics=True),
            "m2_theta": new_hist(regular(*b.m2, "m2", r"$M^2_{recoil}$ [GeV$^2$]"),
                                 regular(*b.theta_cm_deg, "theta", r"$\theta_{recoil}$ (CM) [deg]")),
        }
        if self.classifier is not None:
            # M2_recoil of the selected events passing the working point of each trained mass when classified at that
            # mass (every event at every mass): the factorised background's sideband pass fractions at the window's
            # own hypothesis (analyses/zprime_background.py); the trained masses are fixed categories, so a dataset
            # with no selected event books the same axes
            hists["m2_pass"] = new_hist(regular(*b.m2, "m2", r"$M^2_{recoil}$ [GeV$^2$]"),
                                        hist.axis.StrCategory(self.trained_mass_names(), name="trained",
                                                              label="trained mass [GeV]"))
        return hists

    def trained_mass_names(self) -> list[str]:
        """The classifier's trained masses as the ``trained`` categories of ``m2_pass`` (GeV, ``%g``)."""
        return [f"{m:g}" for m in self.classifier.masses]

    def pid_requirements(self) -> list[tuple[str, float]]:
        return [(self.config.muons.id_branch, self.config.muons.id_min)]

    def chunk_objects(self, events: ak.Array) -> DimuonChunk:
        """The two IP tracks, beam frame, muon ID and truth once per chunk; kinematics per scale, on demand."""
        good = good_tracks(events.Track, self.config.tracks)
        keep = ak.to_numpy(ak.sum(good, axis=1) == 2)
        ev = events[keep]
        trk = ev.Track[good[keep]]
        beam, boost, roots = event_frame(ev)
        mu = self.config.muons
        weighted = self.pid_weighted(events)
        muon_id = pid_weighting.pass_probability(trk, mu.id_branch, mu.id_min) if weighted else trk[mu.id_branch]
        pdg = trk.mcPDG if "mcPDG" in trk.fields else ak.zeros_like(trk.charge)
        tracks = kin.P4(*(ak.to_numpy(ak.flatten(trk[c])).reshape(-1, 2) for c in ("px", "py", "pz", "E")))
        return DimuonChunk(
            keep=keep, tracks=tracks, photons=FlatPhotons.of(ev.Photon, self.config.photon_veto.clusters),
            boost=tuple(ak.to_numpy(b)[:, None] for b in boost), sqrt_s=ak.to_numpy(roots),
            beam_lab=np.column_stack([ak.to_numpy(c) for c in (beam.px, beam.py, beam.pz, beam.E)]),
            charge=ak.to_numpy(ak.flatten(trk.charge)).reshape(-1, 2),
            muon_id=ak.to_numpy(ak.flatten(muon_id)).reshape(-1, 2).astype(float),
            pdg=ak.to_numpy(ak.flatten(pdg)).reshape(-1, 2), kinematics={}, extra_energy={},
        )

    def objects(self, events: ak.Array, calibration: Calibration, shared: DimuonChunk | None = None) -> DimuonEvents:
        """Only events with exactly two IP tracks get kinematics."""
        c = self.chunk_objects(events) if shared is None else shared
        scale = calibration.momentum_scale
        if scale not in c.kinematics:
            # the jagged code's element-wise operations on the (n, 2) arrays: the same values, bit for bit
            p = scaled_tracks(c.tracks, scale, MUON_MASS)
            cm = kin.to_cm(p.px, p.py, p.pz, p.E, *c.boost)
            c.kinematics[scale] = (np.stack(list(p), axis=-1), np.stack(list(cm), axis=-1))
        lab, cm = c.kinematics[scale]
        e_scale = calibration.photon_energy_scale
        if e_scale not in c.extra_energy:
            c.extra_energy[e_scale] = c.photons.extra_energy(e_scale)
        return DimuonEvents(
            keep=c.keep, lab=lab, cm=cm, charge=c.charge, muon_id=c.muon_id, pdg=c.pdg,
            recoil_lab=c.beam_lab - lab.sum(axis=1), sqrt_s=c.sqrt_s, extra_energy=c.extra_energy[e_scale],
            nominal=calibration.is_nominal,
        )

    def select(self, events: ak.Array, objects: DimuonEvents, channel: str) -> Selection:
        o, cfg = objects, self.config
        v = recoil_kinematics(o.cm, o.sqrt_s)
        weighted = self.pid_weighted(events)
        p_rec = np.linalg.norm(o.recoil_lab[:, :3], axis=1)
        theta_lab = np.degrees(np.arccos(np.clip(o.recoil_lab[:, 2] / np.where(p_rec > 0, p_rec, 1.0), -1, 1)))
        steps = {
            "two opposite IP tracks": o.charge[:, 0] * o.charge[:, 1] < 0,
            "muon ID": np.ones(len(o.charge), bool) if weighted else np.all(o.muon_id > cfg.muons.id_min, axis=1),
            "photon veto": o.extra_energy < cfg.photon_veto.max_extra_energy,
            "recoil in the ECL barrel": (theta_lab > cfg.recoil.theta_lab_deg[0]) & (theta_lab < cfg.recoil.theta_lab_deg[1]),
            "M2_recoil range": (v["m2_recoil"] > cfg.recoil.m2_range[0]) & (v["m2_recoil"] < cfg.recoil.m2_range[1]),
        }
        mu_p = np.linalg.norm(o.lab[:, :, :3], axis=2)
        values = {**v, "extra_energy": o.extra_energy, "mu_p": mu_p, "mu_cos": o.lab[:, :, 2] / mu_p,
                  "mu_pdg": o.pdg.astype(float)}
        if weighted:
            values["pid_weight"] = np.prod(o.muon_id, axis=1)
        full = expand({**{k: np.asarray(s, bool) for k, s in steps.items()}, **values}, o.keep)
        cuts = packed({name: full[name] for name in STEPS})
        selected = cuts.all(*STEPS)
        regions = {"selected": selected}
        if self.classifier is not None:
            # the classifier at the Punzi working point of the event's nearest trained mass: the scan's input region
            event = np.asarray(ak.to_numpy(events["__event__"]), dtype=np.int64)[selected]
            inputs = {k: full[k][selected] for k in (*FEATURES, "m2_recoil")}
            passed = np.zeros(len(selected), bool)
            # m2_pass (every event classified at every trained mass) feeds the factorised background's sidebands
            # only: filled with the nominal calibration (fill_nominal), not for signal datasets
            if o.nominal and self.dataset_kind(events) != "signal":
                every = np.zeros((len(selected), len(self.classifier.masses)), bool)
                passed[selected], every[selected] = self.classifier.passes_with_every_mass(inputs, event)
                values["pass_by_mass"] = every
                full["pass_by_mass"] = every
            else:
                passed[selected] = self.classifier.passes(inputs, event)
            regions["classified"] = passed
        return Selection(cuts=cuts, values={k: full[k] for k in values}, regions=regions)

    def add_weights(self, weights: Any, selection: Selection, channel: str) -> None:
        """Tracking (2 tracks), trigger, luminosity, muon ID (pion fake rate for tracks that are not muons)."""
        v = selection.values
        self.add_common_weights(weights, len(v["m2_recoil"]), 2)
        p, cos = v["mu_p"].ravel(), v["mu_cos"].ravel()   # NaN: no candidate (weight 1)
        self.add_lepton_id_weights(weights, "mu", p, cos, (np.abs(np.nan_to_num(v["mu_pdg"])) == 13).ravel(), tracks_per_event=2)

    def fill(self, hists: dict[str, hist.Hist], selection: Selection, channel: str, variation: str, weight: np.ndarray) -> None:
        fill_counts(hists["yields"], channel, variation, weight, selection.regions)

    def fill_nominal(self, hists: dict[str, hist.Hist], selection: Selection, channel: str, weight: np.ndarray) -> None:
        v = selection.values
        for region, keep in selection.regions.items():
            hists["m2_theta"].fill(channel=channel, region=region, m2=v["m2_recoil"][keep], theta=v["theta_recoil"][keep],
                                   weight=weight[keep])
        if "pass_by_mass" in v and "m2_pass" in hists:
            rows, cols = np.nonzero(v["pass_by_mass"] & selection.regions["selected"][:, None])
            names = np.array(self.trained_mass_names())
            hists["m2_pass"].fill(channel=channel, region="selected", m2=v["m2_recoil"][rows], trained=names[cols],
                                  weight=weight[rows])

    def columns(self, events: ak.Array, selection: Selection, channel: str, weight: np.ndarray, dataset: str) -> dict[str, dict[str, np.ndarray]]:
        """The classifier inputs, M2_recoil and theta_recoil of the selected events (the Punzi-net's training table)."""
        keep = selection.regions["selected"]
        v = selection.values
        names = (*FEATURES, "m2_recoil", "theta_recoil")
        event = np.asarray(ak.to_numpy(events["__event__"]), dtype=np.int64)[keep]  # the classifier's folds
        return {"classifier_inputs": {**{k: v[k][keep] for k in names}, "weight": weight[keep], "event": event}}


SEARCH = Search(
    name="zprime",
    processor=ZprimeProcessor,
    config_file=builtin_file("searches", "zprime.yaml"),
    # a 2D fit at every M_Z' hypothesis: its own stats YAML schema (analyses/zprime_scan.py ScanConfig)
    stats_file=builtin_file("stats", "zprime.yaml"),
    scan="belle_rare.analyses.zprime_scan:limit",
    # make run: the Belle II demo samples (one signal mass, sig_zprime at 3 GeV: a one-hypothesis scan) and the
    # reduced scan configuration
    demo=Demo(experiment="belle2", scan_config=builtin_file("stats", "zprime_demo.yaml")),
)
