"""tau -> l phi (phi -> K+ K-) at Belle II (190 /fb): inclusive tag, continuum BDT, (M_tau, dE) counting.

A phi candidate (two opposite kaon candidates in a mass window) and an electron (``ephi``) or
muon (``muphi``) in the same thrust hemisphere form the signal tau; the rest of the event is used
inclusively for continuum-suppression features of a k-fold BDT (``processors.bdt``). Regions:
the rectangular signal region (SR) of (M_tau, dE) and the reduced sideband (RSB: the dE band
outside the SR box), after the BDT (``SR``, ``RSB``, ``other``) and before it (``*_presel``);
the expected background is N_RSB x r_MC with r_MC = N_SR / N_RSB in simulation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import awkward as ak
from belle_rare import corrections
import hist
import numpy as np
import particle
import pydantic
from coffea.processor import column_accumulator

from belle_rare.configs.loader import StrictModel
from belle_rare.processors import bdt
from belle_rare.processors import kinematics as kin
from belle_rare.processors.base import Cutflow, SearchProcessor
from belle_rare.processors.event_shape import fox_wolfram_r2, hemisphere
from belle_rare.processors.histograms import new_hist, regular
from belle_rare.processors.tau3mu import _in, _np, best_index, event_frame, expand, good_tracks, scaled_tracks, take, thrust_of
from belle_rare.processors.variations import Variation, variations

KAON_MASS = particle.Particle.from_pdgid(321).mass / 1000.0
PHI_MASS = particle.Particle.from_pdgid(333).mass / 1000.0
LEPTON_MASS = {"ephi": particle.Particle.from_pdgid(11).mass / 1000.0, "muphi": particle.Particle.from_pdgid(13).mass / 1000.0}
LEPTON_PDG = {"ephi": 11, "muphi": 13}
SPECIES = {"ephi": "e", "muphi": "mu"}
CHANNELS = ("ephi", "muphi")
FEATURES = (
    "thrust", "fox_wolfram_r2", "roe_thrust", "cos_thrust_signal_roe", "roe_mass", "roe_delta_e", "n_tracks",
    "n_photons", "p_miss_t_cm", "cos_theta_miss_cm", "m_miss2", "lepton_p_cm", "phi_p_cm", "cos_lepton_phi",
)


class Box(StrictModel):
    m_mean: float
    de_mean: float
    sigma_m: float
    sigma_de: float
    sr_n_sigma_m: float
    sr_n_sigma_de: float
    rsb_n_sigma_de: dict[str, float]
    rsb_m_range: list[float]

    def regions(self, m: np.ndarray, de: np.ndarray, channel: str) -> tuple[np.ndarray, np.ndarray]:
        """(in SR, in RSB): SR box; RSB = dE band x mass range, minus the SR box."""
        dm, dd = np.abs(m - self.m_mean), np.abs(de - self.de_mean)
        sr = (dm < self.sr_n_sigma_m * self.sigma_m) & (dd < self.sr_n_sigma_de * self.sigma_de)
        band = (dd < self.rsb_n_sigma_de[channel] * self.sigma_de) & _in(m, self.rsb_m_range)
        return sr, band & ~sr

    def sr_fraction(self, channel: str) -> float:
        """Area of the SR over the area of SR + RSB (for a flat-background transfer)."""
        w_m = 2 * self.sr_n_sigma_m * self.sigma_m
        sr = w_m * 2 * self.sr_n_sigma_de * self.sigma_de
        band = (self.rsb_m_range[1] - self.rsb_m_range[0]) * 2 * self.rsb_n_sigma_de[channel] * self.sigma_de
        overlap = w_m * 2 * min(self.sr_n_sigma_de, self.rsb_n_sigma_de[channel]) * self.sigma_de
        return sr / (sr + band - overlap)


class TauLPhiConfig(StrictModel):
    luminosity: str
    n_tautau: float
    signal_datasets: dict[str, str]
    tracks: dict[str, Any]
    kaons: dict[str, Any]
    leptons: dict[str, dict[str, Any]]
    photons: dict[str, Any]
    roe: dict[str, Any]
    selection: dict[str, Any]
    features: list[str]
    bdt: dict[str, Any]
    signal_region: Box
    histograms: dict[str, list[float]]
    paper: dict[str, dict[str, float]]

    @pydantic.field_validator("features")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(FEATURES))
        if unknown:
            raise ValueError(f"features not computed by processors/taulphi.py: {unknown}")
        return v


class TauLPhiProcessor(SearchProcessor):
    """tau -> l phi (Belle II, 190 /fb): (M_tau, dE) signal region, reduced sideband x r_MC."""

    name = "taulphi"
    experiments = ("belle2",)
    config_model = TauLPhiConfig
    branches = (
        "nTrack", "Track_px", "Track_py", "Track_pz", "Track_E", "Track_charge", "Track_dr", "Track_dz",
        "Track_muonID", "Track_electronID", "Track_kaonID", "nPhoton", "Photon_E", "Photon_px", "Photon_py",
        "Photon_pz", "beamE", "beamPx", "beamPy", "beamPz", "__weight__", "__event__",
    )

    def __init__(self, experiment: str, config: Any, corrections: Any = None, collect_features: bool = False,
                 models_dir: Path | None = None, use_model: bool = True, training_pid: bool = False) -> None:
        super().__init__(experiment, config, corrections)
        self.collect_features = collect_features
        # training samples: kaon / lepton ID loosened (config bdt.training_pid); ``nominal_pid`` flags the rest
        loose = config.bdt.get("training_pid", {}) if training_pid else {}
        self.kaon_cuts = {**config.kaons, **({"id_min": loose["kaon_id_min"]} if "kaon_id_min" in loose else {})}
        self.lepton_cuts = {ch: {**c, **({"id_min": loose["lepton_id_min"]} if "lepton_id_min" in loose else {})}
                            for ch, c in config.leptons.items()}
        self.model = bdt.load_model(self.name, experiment, config.features, models_dir) if use_model else None

    def _book(self) -> dict[str, hist.Hist]:
        cfg = self.config.histograms
        m = regular(int(cfg["m_tau"][0]), cfg["m_tau"][1], cfg["m_tau"][2], "m", r"$M_{\ell\phi}$ [GeV]")
        de = regular(int(cfg["de"][0]), cfg["de"][1], cfg["de"][2], "de", r"$\Delta E$ [GeV]")
        return {"m_de": new_hist(m, de),
                "m_kk": new_hist(regular(int(cfg["m_kk"][0]), cfg["m_kk"][1], cfg["m_kk"][2], "m_kk", r"$M_{K^+K^-}$ [GeV]")),
                "bdt_score": new_hist(regular(int(cfg["bdt"][0]), cfg["bdt"][1], cfg["bdt"][2], "score", "BDT score (-1: no model)"))}

    def _select(self, events: ak.Array, channel: str, momentum_scale: float, photon_scale: float) -> dict[str, Any]:
        kc = self.kaon_cuts
        good = good_tracks(events.Track, self.config.tracks)
        n_k = ak.sum(good & (events.Track[kc["id_branch"]] > kc["id_min"]), axis=1)
        keep = ak.to_numpy((n_k >= 2) & (ak.sum(good, axis=1) >= 3))
        return expand(self._select_candidates(events[keep], channel, momentum_scale, photon_scale), keep)

    def _select_candidates(self, events: ak.Array, channel: str, momentum_scale: float, photon_scale: float) -> dict[str, Any]:
        cfg = self.config
        beam, beta, roots = event_frame(events)
        trk = events.Track
        good = good_tracks(trk, cfg.tracks)
        t_lab = scaled_tracks(trk, momentum_scale)
        t_cm = kin.to_cm(*t_lab, *beta)
        k_cm = kin.to_cm(*scaled_tracks(trk, momentum_scale, KAON_MASS), *beta)
        l_lab = scaled_tracks(trk, momentum_scale, LEPTON_MASS[channel])
        l_cm = kin.to_cm(*l_lab, *beta)
        pho = events.Photon
        g_lab = kin.P4(pho.px * photon_scale, pho.py * photon_scale, pho.pz * photon_scale, pho.E * photon_scale)
        g_ok = (g_lab.E > cfg.photons["e_min"]) & _in(kin.cos_theta(g_lab.px, g_lab.py, g_lab.pz), cfg.photons["cos_theta"])
        g_cm = kin.to_cm(*(c[g_ok] for c in g_lab), *beta)
        tg = kin.P4(*(c[good] for c in t_cm))
        all_p = [ak.concatenate([a, b], axis=1) for a, b in zip(tg[:3], g_cm[:3])]
        axis, thrust = thrust_of(*all_p)
        r2 = fox_wolfram_r2(*all_p)
        hemi = hemisphere(t_cm.px, t_cm.py, t_cm.pz, axis)

        kc, lc = self.kaon_cuts, self.lepton_cuts[channel]
        li = ak.local_index(trk.px)
        is_k = good & (trk[kc["id_branch"]] > kc["id_min"])
        is_l = good & (trk[lc["id_branch"]] > lc["id_min"])
        pairs = ak.combinations(li[is_k], 2, fields=["a", "b"])
        a, b = pairs.a, pairs.b
        m_kk_all = kin.mass(*(x[a] + x[b] for x in k_cm))
        phi_ok = (trk.charge[a] + trk.charge[b] == 0) & _in(m_kk_all, kc["phi_mass_window"])
        # (phi, lepton) candidates: the lepton distinct from both kaons, all three in one hemisphere
        cand = ak.cartesian({"p": ak.local_index(a)[phi_ok], "l": li[is_l]}, axis=1)
        ca, cb, cl = a[cand.p], b[cand.p], cand.l
        valid = (cl != ca) & (cl != cb) & (hemi[ca] == hemi[cl]) & (hemi[cb] == hemi[cl])
        best = best_index(-abs(m_kk_all[cand.p] - PHI_MASS), valid)
        has = ~ak.is_none(best)
        best = ak.fill_none(best, 0)
        ia, ib, il = (ak.fill_none(take(x, best), 0) for x in (ca, cb, cl))
        # events with no candidate: index 0 exists (>= 3 tracks); the event fails ``has``
        ka, kb = (kin.P4(*(take(c, i) for c in k_cm)) for i in (ia, ib))
        lep = kin.P4(*(take(c, il) for c in l_cm))
        phi = kin.p4_add(ka, kb)
        tau = kin.p4_add(phi, lep)
        m_tau, de = kin.mass(*tau), tau.E - roots / 2
        m_kk = kin.mass(*phi)

        t_pt = np.sqrt(t_lab.px**2 + t_lab.py**2)
        in_roe = good & (t_pt > cfg.roe["track_pt_min"]) & (li != ia) & (li != ib) & (li != il)
        roe_t = kin.P4(*(c[in_roe] for c in t_cm))
        roe = kin.p4_add(kin.p4_sum(*roe_t), kin.p4_sum(*g_cm))
        roe_axis, roe_thrust = thrust_of(*[ak.concatenate([x, y], axis=1) for x, y in zip(roe_t[:3], g_cm[:3])])
        vis = kin.p4_add(kin.p4_sum(*tg), kin.p4_sum(*g_cm))
        miss = kin.P4(-vis.px, -vis.py, -vis.pz, roots - vis.E)
        cos_miss = kin.cos_theta(miss.px, miss.py, miss.pz)
        feats = {
            "thrust": _np(thrust), "fox_wolfram_r2": _np(r2), "roe_thrust": _np(roe_thrust, 0.0),
            "cos_thrust_signal_roe": np.abs(_np(kin.cos_angle(roe_axis, tau), 0.0)),
            "roe_mass": _np(kin.mass(*roe)), "roe_delta_e": _np(roe.E - roots / 2),
            "n_tracks": _np(ak.sum(good, axis=1)), "n_photons": _np(ak.num(g_cm.E)),
            "p_miss_t_cm": _np(np.sqrt(miss.px**2 + miss.py**2)), "cos_theta_miss_cm": _np(cos_miss),
            "m_miss2": _np(kin.mass2(*miss)), "lepton_p_cm": _np(kin.momentum(*lep[:3])),
            "phi_p_cm": _np(kin.momentum(*phi[:3])), "cos_lepton_phi": _np(kin.cos_angle(lep, phi)),
        }
        sel = cfg.selection
        steps = {
            "phi -> K+K- and lepton in one hemisphere": _np(has, 0) > 0,
            "track multiplicity": _np(ak.sum(good, axis=1)) >= sel["n_tracks_min"],
            "thrust": _np(thrust) < sel["thrust_max"],
            "missing-momentum polar angle": _in(_np(cos_miss), sel["cos_theta_miss_cm"]),
        }
        running = np.ones(len(events), bool)
        for k in steps:
            running = running & steps[k]
            steps[k] = running
        nominal_pid = ((_np(take(trk[cfg.kaons["id_branch"]], ia), 0) > cfg.kaons["id_min"])
                       & (_np(take(trk[cfg.kaons["id_branch"]], ib), 0) > cfg.kaons["id_min"])
                       & (_np(take(trk[cfg.leptons[channel]["id_branch"]], il), 0) > cfg.leptons[channel]["id_min"]))
        l_lab_sel = kin.P4(*(take(c, il) for c in l_lab))
        return {
            "base": running, "steps": steps, "nominal_pid": nominal_pid, "m": _np(m_tau), "de": _np(de), "m_kk": _np(m_kk),
            "features": np.stack([feats[f] for f in cfg.features], axis=1) if len(events) else np.zeros((0, len(cfg.features))),
            "lepton_p": _np(kin.momentum(*l_lab_sel[:3]), 1.0), "lepton_cos": _np(kin.cos_theta(*l_lab_sel[:3]), 0.0),
            "lepton_pdg": _np(take(trk.mcPDG, il), 0) if "mcPDG" in trk.fields else np.full(len(events), float(LEPTON_PDG[channel])),
        }

    def _weight(self, sel: dict[str, Any], channel: str, variation: Variation) -> np.ndarray:
        """Tracking (3 signal + 1 tag), trigger, luminosity, lepton ID (pion fake rate by truth)."""
        cset = corrections.load(self.experiment)
        w = float(corrections.tracking_weight(cset, 4, variation.syst("tracking"))
                  * corrections.trigger_weight(cset, "taulphi", variation.syst("trigger"))
                  * corrections.luminosity_weight(cset, self.config.luminosity, variation.syst("luminosity")))
        p, cos = np.nan_to_num(sel["lepton_p"], nan=1.0), np.nan_to_num(sel["lepton_cos"], nan=0.0)
        lep = np.asarray(corrections.lepton_id_weight(cset, SPECIES[channel], p, cos, variation.syst("leptonID")), float)
        fake = np.asarray(corrections.fake_rate_weight(cset, SPECIES[channel], p, cos, variation.syst("fakeRate")), float)
        return w * np.where(np.abs(sel["lepton_pdg"]) == LEPTON_PDG[channel], lep, fake)

    def score(self, X: np.ndarray, event_number: np.ndarray) -> np.ndarray:
        if self.model is None or len(X) == 0:
            return np.full(len(X), bdt.NO_MODEL_SCORE)
        return self.model.score(X, event_number)

    def analyse(self, events: ak.Array, dataset: str) -> tuple[dict[str, Any], dict[str, Cutflow]]:
        hists = self._book()
        features_out: dict[str, Any] = {}
        gen_w = ak.to_numpy(events["__weight__"]).astype(float)
        event_number = ak.to_numpy(events["__event__"]).astype(np.int64)
        is_data = events.metadata.get("is_data", False)
        cset = corrections.load(self.experiment)
        box = self.config.signal_region
        wp = self.model.working_point if self.model is not None else np.inf
        cutflows: dict[str, Cutflow] = {}
        for channel in CHANNELS:
            cutflow = Cutflow()
            cutflow.add("all events", np.ones(len(events), bool), gen_w)
            selections: dict[tuple[str, str], dict[str, Any]] = {}
            for variation in (variations(True) if self.collect_features else variations(is_data)):
                key = variation.calibration
                if key not in selections:
                    s = self._select(events, channel, corrections.momentum_scale(cset, key[0]), corrections.photon_energy_scale(cset, key[1]))
                    s["score"] = np.full(len(events), bdt.NO_MODEL_SCORE)
                    s["score"][s["base"]] = self.score(s["features"][s["base"]], event_number[s["base"]])
                    selections[key] = s
                sel = selections[key]
                weight = gen_w if is_data else gen_w * self._weight(sel, channel, variation)
                passed = sel["base"]
                sr, rsb = box.regions(sel["m"], sel["de"], channel)
                bdt_pass = passed & (sel["score"] > wp)
                masks = {"SR": bdt_pass & sr, "RSB": bdt_pass & rsb, "other": bdt_pass & ~sr & ~rsb,
                         "SR_presel": passed & sr, "RSB_presel": passed & rsb, "other_presel": passed & ~sr & ~rsb}
                for region, mask in masks.items():
                    hists["m_de"].fill(dataset=dataset, channel=channel, region=region, variation=variation.name,
                                       m=sel["m"][mask], de=sel["de"][mask], weight=weight[mask])
                hists["bdt_score"].fill(dataset=dataset, channel=channel, region="presel", variation=variation.name,
                                        score=sel["score"][passed], weight=weight[passed])
                if variation.name != "nominal":
                    continue
                hists["m_kk"].fill(dataset=dataset, channel=channel, region="presel", variation="nominal",
                                   m_kk=sel["m_kk"][passed], weight=weight[passed])
                for step, mask in sel["steps"].items():
                    cutflow.add(step, mask, weight)
                cutflow.add("SR or RSB", passed & (sr | rsb), weight)
                cutflow.add("signal region (no BDT)", passed & sr, weight)
                cutflow.add("BDT", bdt_pass & (sr | rsb), weight)
                cutflow.add("signal region", bdt_pass & sr, weight)
                if self.collect_features:
                    m = passed
                    features_out[channel] = {
                        "X": column_accumulator(sel["features"][m]), "event": column_accumulator(event_number[m]),
                        "weight": column_accumulator(weight[m]), "in_sr": column_accumulator(sr[m]),
                        "in_rsb": column_accumulator(rsb[m]), "m": column_accumulator(sel["m"][m]),
                        "in_window": column_accumulator((sr | rsb)[m]), "nominal_pid": column_accumulator(sel["nominal_pid"][m]),
                        "de": column_accumulator(sel["de"][m]),
                    }
            cutflows[channel] = cutflow
        self._features_out = {dataset: features_out}
        return hists, cutflows

    def process(self, events: ak.Array) -> dict[str, Any]:
        out = super().process(events)
        if self.collect_features:
            out["features"] = self._features_out
        return out
