"""tau -> mu mu mu at Belle II (424 /fb, arXiv:2405.07386): inclusive three-muon selection + BDT.

Three muon candidates from the IP with total charge +-1 in one thrust hemisphere form the signal
tau; everything else in the event is the rest of the event (ROE), used inclusively. Signal
variables: M_3mu and dE_3mu = E*_3mu - sqrt(s)/2. A k-fold BDT (``processors.bdt``) on the
features listed in ``configs/searches/tau3mu.yaml`` separates signal; the signal region is a
rotated asymmetric 5 sigma ellipse and the background estimate is ABCD-like (BDT pass/fail x
inside the ellipse / in a wider distance-to-peak region), filled as the ``region`` axis.
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
from belle_rare.processors.event_shape import hemisphere, thrust_axis
from belle_rare.processors.histograms import new_hist, regular
from belle_rare.processors.variations import Variation, variations

TAU_MASS = particle.Particle.from_pdgid(15).mass / 1000.0
MUON_MASS = particle.Particle.from_pdgid(13).mass / 1000.0
CHANNELS = ("3mu",)
# ABCD (sec. 3.4): A = SR & BDT pass, B = outer & pass, C = SR & fail, D = outer & fail
REGIONS = {"A": "SR_pass", "B": "outer_pass", "C": "SR_fail", "D": "outer_fail"}
FAR_REGION = "far"


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


class Tau3MuConfig(StrictModel):
    luminosity: str
    n_tautau: float
    signal_dataset: str
    tracks: dict[str, Any]
    muons: dict[str, Any]
    photons: dict[str, Any]
    roe: dict[str, Any]
    selection: dict[str, Any]
    features: list[str]
    bdt: dict[str, Any]
    signal_region: RotatedEllipse
    histograms: dict[str, list[float]]
    paper: dict[str, float]

    @pydantic.field_validator("features")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - set(FEATURES))
        if unknown:
            raise ValueError(f"features not computed by processors/tau3mu.py: {unknown}")
        return v


# every feature the processor can compute (the YAML picks and orders them)
FEATURES = (
    "mu1_e_cm", "mu2_e_cm", "mu3_e_cm", "mu1_cos_theta_cm", "mu2_cos_theta_cm", "mu3_cos_theta_cm",
    "mu1_pt_cm", "mu2_pt_cm", "mu3_pt_cm", "tau_closest_track_angle", "roe_mass", "roe_delta_e",
    "roe_n_mu", "roe_n_pi", "roe_n_e", "roe_charge_x_signal_charge", "roe_thrust", "cos_roe_thrust_signal",
    "cos_roe_thrust_z", "thrust", "n_tracks", "n_photons", "photon_e_cm", "p_miss_t_cm", "cos_theta_miss_cm",
    "cos_miss_mu1", "cos_miss_mu2", "cos_miss_mu3", "m_miss2",
)


def _in(x: Any, lo_hi: list[float]) -> Any:
    return (x > lo_hi[0]) & (x < lo_hi[1])


def _np(x: Any, fill: float = np.nan) -> np.ndarray:
    return np.asarray(ak.to_numpy(ak.fill_none(x, fill)), dtype=float)


def expand(values: Any, keep: np.ndarray) -> Any:
    """Scatter per-selected-event results back to all events (False / NaN / 0 for the others)."""
    if isinstance(values, dict):
        return {k: expand(v, keep) for k, v in values.items()}
    values = np.asarray(values)
    fill = False if values.dtype == bool else (np.nan if values.dtype.kind == "f" else 0)
    out = np.full((len(keep),) + values.shape[1:], fill, dtype=values.dtype)
    out[keep] = values
    return out


def good_tracks(trk: ak.Array, cfg: dict[str, Any]) -> ak.Array:
    """Tracks from the IP inside the CDC acceptance."""
    cos = kin.cos_theta(trk.px, trk.py, trk.pz)
    return (abs(trk.dr) < cfg["dr_max"]) & (abs(trk.dz) < cfg["dz_max"]) & _in(cos, cfg["cos_theta"])


def event_frame(events: ak.Array) -> tuple[kin.P4, kin.Vec3, Any]:
    beam = kin.P4(events.beamPx, events.beamPy, events.beamPz, events.beamE)
    return beam, kin.cm_boost(*[beam.E, beam.px, beam.py, beam.pz]), kin.sqrt_s(beam.E, beam.px, beam.py, beam.pz)


def scaled_tracks(trk: ak.Array, scale: float, mass: float | None = None) -> kin.P4:
    """Track four-momenta with the momentum scale applied, in the stored (pion) or the given mass hypothesis."""
    px, py, pz = trk.px * scale, trk.py * scale, trk.pz * scale
    m2 = (trk.E**2 - trk.px**2 - trk.py**2 - trk.pz**2) if mass is None else mass**2
    return kin.P4(px, py, pz, np.sqrt(px**2 + py**2 + pz**2 + m2))


def thrust_of(px: ak.Array, py: ak.Array, pz: ak.Array) -> tuple[kin.Vec3, Any]:
    axis, value = thrust_axis(px, py, pz)
    return axis, value


def best_index(score: ak.Array, valid: ak.Array) -> ak.Array:
    """Index of the highest-score valid candidate per event (None if there is none)."""
    masked = ak.where(valid, score, -np.inf)
    idx = ak.argmax(masked, axis=1, keepdims=True)
    ok = ak.fill_none(ak.firsts(valid[idx]), False)
    return ak.mask(ak.firsts(idx), ok)


def take(values: ak.Array, index: ak.Array) -> ak.Array:
    """values[event][index[event]] (None where the event's list is empty or the index is None)."""
    return ak.firsts(ak.pad_none(values, 1, axis=1)[ak.singletons(index)])


class Tau3MuProcessor(SearchProcessor):
    """tau -> 3 mu (Belle II, 424 /fb): M_3mu, dE_3mu in a rotated 5 sigma ellipse after a k-fold BDT."""

    name = "tau3mu"
    experiments = ("belle2",)
    config_model = Tau3MuConfig
    branches = (
        "nTrack", "Track_px", "Track_py", "Track_pz", "Track_E", "Track_charge", "Track_dr", "Track_dz",
        "Track_muonID", "Track_electronID", "Track_pionID", "Track_kaonID", "Track_protonID",
        "nPhoton", "Photon_E", "Photon_px", "Photon_py", "Photon_pz",
        "beamE", "beamPx", "beamPy", "beamPz", "__weight__", "__event__",
    )

    def __init__(self, experiment: str, config: Any, corrections: Any = None, collect_features: bool = False,
                 models_dir: Path | None = None, use_model: bool = True, training_pid: bool = False) -> None:
        super().__init__(experiment, config, corrections)
        self.collect_features = collect_features
        # training samples: muon-ID thresholds loosened (config bdt.training_pid) so that the tiny
        # simulated backgrounds leave events to learn from; ``nominal_pid`` flags the ones that pass
        self.muon_cuts = {**config.muons, **(config.bdt.get("training_pid", {}) if training_pid else {})}
        self.model = bdt.load_model(self.name, experiment, config.features, models_dir) if use_model else None

    # ------------------------------------------------------------------ histograms
    def _book(self) -> dict[str, hist.Hist]:
        cfg = self.config.histograms
        m = regular(int(cfg["m3mu"][0]), cfg["m3mu"][1], cfg["m3mu"][2], "m", r"$M_{3\mu}$ [GeV]")
        de = regular(int(cfg["de"][0]), cfg["de"][1], cfg["de"][2], "de", r"$\Delta E_{3\mu}$ [GeV]")
        score = regular(int(cfg["bdt"][0]), cfg["bdt"][1], cfg["bdt"][2], "score", "BDT score (-1: no model)")
        return {"m_de": new_hist(m, de), "bdt_score": new_hist(score),
                "distance": new_hist(regular(60, 0, 30, "d", "distance to peak [sigma]"))}

    # ------------------------------------------------------------------ physics
    def _select(self, events: ak.Array, momentum_scale: float, photon_scale: float) -> dict[str, Any]:
        """Only events with at least three muon candidates go through the full computation."""
        mu = self.muon_cuts
        good = good_tracks(events.Track, self.config.tracks)
        n_mu = ak.sum(good & (events.Track[mu["id_branch"]] > mu["id_min"]), axis=1)
        keep = ak.to_numpy(n_mu >= 3)
        return expand(self._select_candidates(events[keep], momentum_scale, photon_scale), keep)

    def _select_candidates(self, events: ak.Array, momentum_scale: float, photon_scale: float) -> dict[str, Any]:
        cfg = self.config
        beam, beta, roots = event_frame(events)
        trk = events.Track
        good = good_tracks(trk, cfg.tracks)
        t_lab = scaled_tracks(trk, momentum_scale)
        t_cm = kin.to_cm(*t_lab, *beta)
        pho = events.Photon
        g_lab = kin.P4(pho.px * photon_scale, pho.py * photon_scale, pho.pz * photon_scale, pho.E * photon_scale)
        g_ok = (g_lab.E > cfg.photons["e_min"]) & _in(kin.cos_theta(g_lab.px, g_lab.py, g_lab.pz), cfg.photons["cos_theta"])
        g_cm = kin.to_cm(*(c[g_ok] for c in g_lab), *beta)

        # thrust of all good tracks and photons (CM), hemispheres
        tg = kin.P4(*(c[good] for c in t_cm))
        axis, thrust = thrust_of(ak.concatenate([tg.px, g_cm.px], axis=1), ak.concatenate([tg.py, g_cm.py], axis=1),
                                 ak.concatenate([tg.pz, g_cm.pz], axis=1))
        hemi = hemisphere(t_cm.px, t_cm.py, t_cm.pz, axis)

        # triplets of muon candidates: |sum q| = 1, one hemisphere, >= n_tight tight muons
        mcfg = self.muon_cuts
        muid = trk[mcfg["id_branch"]]
        is_mu = good & (muid > mcfg["id_min"])
        idx = ak.local_index(trk.px)[is_mu]
        tri = ak.combinations(idx, 3, fields=["a", "b", "c"])
        a, b, c = tri.a, tri.b, tri.c
        charge = trk.charge[a] + trk.charge[b] + trk.charge[c]
        same = (hemi[a] == hemi[b]) & (hemi[b] == hemi[c])
        n_tight = sum(ak.values_astype(muid[i] > mcfg["tight_min"], np.int64) for i in (a, b, c))
        valid = (abs(charge) == mcfg["total_charge_abs"]) & same & (n_tight >= mcfg["n_tight"])
        best = best_index(muid[a] + muid[b] + muid[c], valid)
        has = ~ak.is_none(best)
        best = ak.fill_none(best, 0)
        ia, ib, ic = (take(x, best) for x in (a, b, c))
        ia, ib, ic = (ak.fill_none(x, 0) for x in (ia, ib, ic))

        def pick(x: ak.Array, i: ak.Array) -> ak.Array:
            return take(x, i)

        # the signal candidates in the muon mass hypothesis (stored energies assume a pion)
        mu_lab = scaled_tracks(trk, momentum_scale, MUON_MASS)
        mu_cm = kin.to_cm(*mu_lab, *beta)
        mus = [kin.P4(*(pick(comp, i) for comp in mu_cm)) for i in (ia, ib, ic)]
        mus_lab = [kin.P4(*(pick(comp, i) for comp in mu_lab)) for i in (ia, ib, ic)]
        tau = kin.p4_add(*mus)
        m3 = kin.mass(*tau)
        de = tau.E - roots / 2
        sig_charge = pick(trk.charge, ia) + pick(trk.charge, ib) + pick(trk.charge, ic)
        chosen_id = [_np(pick(muid, i), 0.0) for i in (ia, ib, ic)]
        nominal_pid = (np.min(chosen_id, axis=0) > cfg.muons["id_min"]) & (
            sum((x > cfg.muons["tight_min"]).astype(int) for x in chosen_id) >= cfg.muons["n_tight"])

        # ROE: other good tracks with pT > threshold, photons above threshold
        li = ak.local_index(trk.px)
        t_pt = np.sqrt(t_lab.px**2 + t_lab.py**2)
        in_roe = good & (t_pt > cfg.roe["track_pt_min"]) & (li != ia) & (li != ib) & (li != ic)
        roe_t = kin.P4(*(c_[in_roe] for c_ in t_cm))
        roe = kin.p4_add(kin.p4_sum(*roe_t), kin.p4_sum(*g_cm))
        roe_mass = kin.mass(*roe)
        roe_de = roe.E - roots / 2
        ids = ak.concatenate([trk[n][:, :, None] for n in ("muonID", "pionID", "electronID", "kaonID", "protonID")], axis=2)
        best_id = ak.argmax(ids, axis=2)[in_roe]
        roe_charge = ak.sum(trk.charge[in_roe], axis=1)
        roe_axis, roe_thrust = thrust_of(ak.concatenate([roe_t.px, g_cm.px], axis=1), ak.concatenate([roe_t.py, g_cm.py], axis=1),
                                         ak.concatenate([roe_t.pz, g_cm.pz], axis=1))
        # closest ROE track to the tau direction
        cos_trk = kin.cos_angle(tau, roe_t)
        closest = np.arccos(ak.fill_none(ak.max(cos_trk, axis=1), -1.0))

        # event-level and missing momentum (CM)
        vis = kin.p4_add(kin.p4_sum(*tg), kin.p4_sum(*g_cm))
        miss = kin.P4(-vis.px, -vis.py, -vis.pz, roots - vis.E)
        p_miss_t = np.sqrt(miss.px**2 + miss.py**2)
        cos_miss = kin.cos_theta(miss.px, miss.py, miss.pz)
        event_charge = ak.sum(trk.charge[good], axis=1)
        pts = [np.sqrt(m_.px**2 + m_.py**2) for m_ in mus]
        pt_arr = np.stack([_np(p) for p in pts], axis=1)
        order = np.argsort(-pt_arr, axis=1)

        def ordered_feature(per_mu: list[Any]) -> list[np.ndarray]:
            arr = np.stack([_np(x) for x in per_mu], axis=1)
            arr = np.take_along_axis(arr, order, axis=1)
            return [arr[:, k] for k in range(3)]

        feats: dict[str, Any] = {}
        for name, per_mu in (("e_cm", [m_.E for m_ in mus]), ("cos_theta_cm", [kin.cos_theta(m_.px, m_.py, m_.pz) for m_ in mus]),
                             ("pt_cm", pts), ("cos_miss", [kin.cos_angle(miss, m_) for m_ in mus])):
            for k, v in enumerate(ordered_feature(per_mu), start=1):
                feats[f"mu{k}_{name}" if name != "cos_miss" else f"cos_miss_mu{k}"] = v
        feats.update({
            "tau_closest_track_angle": _np(closest, np.pi),
            "roe_mass": _np(roe_mass), "roe_delta_e": _np(roe_de),
            "roe_n_mu": _np(ak.sum(best_id == 0, axis=1)), "roe_n_pi": _np(ak.sum(best_id == 1, axis=1)),
            "roe_n_e": _np(ak.sum(best_id == 2, axis=1)),
            "roe_charge_x_signal_charge": _np(roe_charge * sig_charge),
            "roe_thrust": _np(roe_thrust, 0.0),
            "cos_roe_thrust_signal": np.abs(_np(kin.cos_angle(roe_axis, tau), 0.0)),
            "cos_roe_thrust_z": np.abs(_np(roe_axis.z, 0.0)),
            "thrust": _np(thrust), "n_tracks": _np(ak.sum(good, axis=1)), "n_photons": _np(ak.num(g_cm.E)),
            "photon_e_cm": _np(ak.sum(g_cm.E, axis=1)), "p_miss_t_cm": _np(p_miss_t), "cos_theta_miss_cm": _np(cos_miss),
            "m_miss2": _np(kin.mass2(*miss)),
        })
        sel = cfg.selection
        steps = {
            "three muon candidates (|q| = 1, one hemisphere)": _np(has, 0) > 0,
            "thrust": _np(thrust) < sel["thrust_max"],
            "missing-momentum polar angle": _in(_np(cos_miss), sel["cos_theta_miss_cm"]),
            "event charge": _np(event_charge, 99) == sel["event_charge"],
        }
        running = np.ones(len(events), bool)
        for k in steps:
            running = running & steps[k]
            steps[k] = running
        lab_p = np.stack([_np(kin.momentum(m_.px, m_.py, m_.pz), 1.0) for m_ in mus_lab], axis=1)
        lab_cos = np.stack([_np(kin.cos_theta(m_.px, m_.py, m_.pz), 0.0) for m_ in mus_lab], axis=1)
        pdg = (np.stack([_np(pick(trk.mcPDG, i), 0) for i in (ia, ib, ic)], axis=1) if "mcPDG" in trk.fields
               else np.full((len(events), 3), 13.0))
        return {
            "base": running, "steps": steps,
            "m": _np(m3), "de": _np(de),
            "features": np.stack([feats[f] for f in cfg.features], axis=1) if len(events) else np.zeros((0, len(cfg.features))),
            "mu_p": lab_p, "mu_cos": lab_cos, "mu_pdg": pdg, "nominal_pid": nominal_pid,
        }

    # ------------------------------------------------------------------ weights
    def _weight(self, sel: dict[str, Any], variation: Variation) -> np.ndarray:
        """Tracking (3 signal + 1 tag track), trigger, luminosity, muon ID (pion fake rate by truth)."""
        cset = corrections.load(self.experiment)
        n = len(sel["m"])
        w = float(corrections.tracking_weight(cset, 4, variation.syst("tracking"))
                  * corrections.trigger_weight(cset, "tau3mu", variation.syst("trigger"))
                  * corrections.luminosity_weight(cset, self.config.luminosity, variation.syst("luminosity")))
        p, cos = np.nan_to_num(sel["mu_p"], nan=1.0), np.nan_to_num(sel["mu_cos"], nan=0.0)
        lep = np.asarray(corrections.lepton_id_weight(cset, "mu", p.ravel(), cos.ravel(), variation.syst("leptonID")), float)
        fake = np.asarray(corrections.fake_rate_weight(cset, "mu", p.ravel(), cos.ravel(), variation.syst("fakeRate")), float)
        true_mu = (np.abs(sel["mu_pdg"]) == 13).ravel()
        per_mu = np.where(true_mu, lep, fake).reshape(n, 3)
        return np.full(n, w) * np.prod(per_mu, axis=1)

    def score(self, X: np.ndarray, event_number: np.ndarray) -> np.ndarray:
        if self.model is None or len(X) == 0:
            return np.full(len(X), bdt.NO_MODEL_SCORE)
        return self.model.score(X, event_number)

    @property
    def working_point(self) -> float:
        return self.model.working_point if self.model is not None else np.inf

    def analyse(self, events: ak.Array, dataset: str) -> tuple[dict[str, Any], dict[str, Cutflow]]:
        hists = self._book()
        self._features_out: dict[str, Any] = {}
        self._candidates_out: dict[str, Any] = {}
        channel = CHANNELS[0]
        gen_w = ak.to_numpy(events["__weight__"]).astype(float)
        event_number = ak.to_numpy(events["__event__"]).astype(np.int64)
        is_data = events.metadata.get("is_data", False)
        cset = corrections.load(self.experiment)
        ell = self.config.signal_region
        cutflow = Cutflow()
        cutflow.add("all events", np.ones(len(events), bool), gen_w)
        selections: dict[tuple[str, str], dict[str, Any]] = {}
        for variation in (variations(True) if self.collect_features else variations(is_data)):
            key = variation.calibration
            if key not in selections:
                s = self._select(events, corrections.momentum_scale(cset, key[0]), corrections.photon_energy_scale(cset, key[1]))
                s["score"] = np.full(len(events), bdt.NO_MODEL_SCORE)
                s["score"][s["base"]] = self.score(s["features"][s["base"]], event_number[s["base"]])
                s["distance"] = ell.distance(s["m"], s["de"])
                selections[key] = s
            sel = selections[key]
            weight = gen_w if is_data else gen_w * self._weight(sel, variation)
            passed, d = sel["base"], sel["distance"]
            bdt_pass = sel["score"] > self.working_point
            in_sr = passed & (d < ell.n_sigma)
            outer = passed & (d >= ell.n_sigma) & (d < ell.outer_n_sigma)
            masks = {REGIONS["A"]: in_sr & bdt_pass, REGIONS["B"]: outer & bdt_pass, REGIONS["C"]: in_sr & ~bdt_pass,
                     REGIONS["D"]: outer & ~bdt_pass, FAR_REGION: passed & ~(d < ell.outer_n_sigma)}
            for region, mask in masks.items():
                hists["m_de"].fill(dataset=dataset, channel=channel, region=region, variation=variation.name,
                                   m=sel["m"][mask], de=sel["de"][mask], weight=weight[mask])
            for region, mask in (("SR", in_sr), ("outer", outer)):
                hists["bdt_score"].fill(dataset=dataset, channel=channel, region=region, variation=variation.name,
                                        score=sel["score"][mask], weight=weight[mask])
            if variation.name != "nominal":
                continue
            hists["distance"].fill(dataset=dataset, channel=channel, region="all", variation="nominal",
                                   d=np.nan_to_num(d[passed], nan=1e9), weight=weight[passed])
            for step, mask in sel["steps"].items():
                cutflow.add(step, mask, weight)
            if dataset == self.config.signal_dataset:
                # unbinned signal candidates before the BDT: the report fits the signal ellipse on them
                self._candidates_out = {dataset: {"m": column_accumulator(sel["m"][passed]),
                                                  "de": column_accumulator(sel["de"][passed]),
                                                  "weight": column_accumulator(weight[passed])}}
            cutflow.add("outer region", passed & (d < ell.outer_n_sigma), weight)
            cutflow.add("signal region (no BDT)", in_sr, weight)
            cutflow.add("BDT", passed & (d < ell.outer_n_sigma) & bdt_pass, weight)
            cutflow.add("signal region", in_sr & bdt_pass, weight)
            if self.collect_features:
                m = passed
                self._features_out = {dataset: {
                    "X": column_accumulator(sel["features"][m]), "event": column_accumulator(event_number[m]),
                    "weight": column_accumulator(weight[m]), "distance": column_accumulator(d[m]),
                    "m": column_accumulator(sel["m"][m]), "de": column_accumulator(sel["de"][m]),
                    "in_sr": column_accumulator(d[m] < ell.n_sigma), "in_window": column_accumulator(d[m] < ell.outer_n_sigma),
                    "nominal_pid": column_accumulator(sel["nominal_pid"][m]),
                }}
        return hists, {channel: cutflow}

    def process(self, events: ak.Array) -> dict[str, Any]:
        out = super().process(events)
        out["candidates"] = self._candidates_out
        if self.collect_features:
            out["features"] = self._features_out
        return out
