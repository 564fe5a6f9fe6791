"""tau -> mu gamma / e gamma at Belle (JHEP 10 (2021) 019): two-track, thrust-hemisphere selection.

One tau decays to a lepton and a photon (signal side); the other to one charged track plus
neutrinos and possibly photons (tag side: leptonic, pi or rho class). Every cut is in
``configs/searches/taulgamma.yaml`` with its paper section. Signal extraction uses M_bc and
dE/sqrt(s) of the lepton-photon pair in the CM frame, inside a 2 sigma ellipse.
"""

from __future__ import annotations

from typing import Any, Literal

import awkward as ak
from belle_rare import corrections
import hist
import numpy as np
import particle
import pydantic

from belle_rare.configs.loader import StrictModel
from belle_rare.processors import kinematics as kin
from belle_rare.processors.base import Cutflow, SearchProcessor
from belle_rare.processors.event_shape import hemisphere, thrust_axis
from belle_rare.processors.histograms import new_hist, regular
from belle_rare.processors.variations import Variation, variations

TAU_MASS = particle.Particle.from_pdgid(15).mass / 1000.0
CHANNELS = ("mugamma", "egamma")
TAG_CLASSES = ("lepton", "pi", "rho")


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


class TauLGammaConfig(StrictModel):
    luminosity: str
    mbc_photon_energy: Literal["beam_constrained", "measured"]
    n_tautau: float
    signal_datasets: dict[str, str]
    pid: dict[str, Any]
    tracks: dict[str, Any]
    photons: dict[str, Any]
    selection: dict[str, Any]
    signal_region: dict[str, Any]
    histograms: dict[str, list[float]]
    paper: dict[str, dict[str, float]]

    @pydantic.field_validator("signal_region")
    @classmethod
    def _ellipses(cls, v: dict[str, Any]) -> dict[str, Any]:
        for ch in CHANNELS:
            Ellipse.model_validate(v[ch])
        return v

    def ellipse(self, channel: str) -> Ellipse:
        return Ellipse.model_validate(self.signal_region[channel])


def _in(x: Any, lo_hi: list[float]) -> Any:
    return (x > lo_hi[0]) & (x < lo_hi[1])


def _pick(values: ak.Array, mask: ak.Array) -> ak.Array:
    """The single entry of ``values`` where ``mask`` is true (None where there is not exactly one)."""
    return ak.firsts(values[mask])


def _expand(values: Any, keep: np.ndarray) -> Any:
    """Scatter per-selected-event results back to all events (False / NaN / 0 for the others)."""
    if isinstance(values, dict):
        return {k: _expand(v, keep) for k, v in values.items()}
    if values is None:
        return None
    values = np.asarray(values)
    fill = False if values.dtype == bool else (np.nan if values.dtype.kind == "f" else 0)
    out = np.full(len(keep), fill, dtype=values.dtype)
    out[keep] = values
    return out


class TauLGammaProcessor(SearchProcessor):
    """tau -> mu gamma / e gamma (Belle, 988 /fb): M_bc and dE/sqrt(s) in a 2 sigma ellipse."""

    name = "taulgamma"
    experiments = ("belle",)
    config_model = TauLGammaConfig
    branches = (
        "nTrack", "Track_px", "Track_py", "Track_pz", "Track_E", "Track_charge", "Track_eIDBelle",
        "Track_muIDBelle", "nPhoton", "Photon_E", "Photon_px", "Photon_py", "Photon_pz",
        "beamE", "beamPx", "beamPy", "beamPz", "__weight__",
    )

    # ------------------------------------------------------------------ histograms
    def _book(self) -> dict[str, hist.Hist]:
        cfg = self.config.histograms
        tag = hist.axis.StrCategory(list(TAG_CLASSES), name="tag", label="tag class")
        mbc = regular(int(cfg["mbc"][0]), cfg["mbc"][1], cfg["mbc"][2], "mbc", r"$M_{bc}$ [GeV]")
        de = regular(int(cfg["de"][0]), cfg["de"][1], cfg["de"][2], "de", "ΔE/√s")
        return {
            "mbc_de": new_hist(tag, mbc, de),
            "nminus1_e_total": new_hist(tag, regular(60, 0.3, 1.1, "x", "E_total(CM)/√s")),
            "nminus1_cos_tracks": new_hist(tag, regular(50, -1, 1, "x", r"$\cos\theta_{tracks}$")),
            "nminus1_cos_lgamma": new_hist(tag, regular(50, -1, 1, "x", r"$\cos\theta_{\ell\gamma}$")),
            "nminus1_p_miss": new_hist(tag, regular(50, 0, 5, "x", r"$|p_{miss}|$ [GeV]")),
            "nminus1_cos_theta_miss": new_hist(tag, regular(50, -1, 1, "x", r"$\cos\theta_{miss}$")),
            "nminus1_cos_miss_tag": new_hist(tag, regular(50, -1, 1, "x", r"$\cos\theta_{miss,tag}$")),
            "nminus1_m_nu2": new_hist(tag, regular(60, -2, 4, "x", r"$m_\nu^2$ [GeV$^2$]")),
            "nminus1_energy_asymmetry": new_hist(tag, regular(50, 0, 1, "x", "energy asymmetry")),
            "nminus1_xi": new_hist(tag, regular(60, -2, 2, "x", r"$\xi$")),
            "nminus1_e_sum_rho": new_hist(tag, regular(60, 0.3, 1.1, "x", "E_sum(CM)/√s")),
        }

    # ------------------------------------------------------------------ physics
    def _select(self, events: ak.Array, channel: str, momentum_scale: float, photon_energy_scale: float) -> dict[str, Any]:
        """All selection variables and cut masks for one channel under one calibration.

        Only events with two opposite tracks go through the full computation (most background
        does not); the results are expanded back to one entry per input event.
        """
        trk = events.Track
        keep = ak.to_numpy((ak.num(trk.px) == self.config.tracks["n_tracks"]) & (ak.sum(trk.charge, axis=1) == 0))
        return _expand(self._select_two_track(events[keep], channel, momentum_scale, photon_energy_scale), keep)

    def _select_two_track(self, events: ak.Array, channel: str, momentum_scale: float, photon_energy_scale: float) -> dict[str, Any]:
        """``_select`` on events that already have two opposite tracks."""
        cfg = self.config
        beam = kin.P4(events.beamPx, events.beamPy, events.beamPz, events.beamE)
        beta = kin.cm_boost(beam.E, beam.px, beam.py, beam.pz)
        roots = kin.sqrt_s(beam.E, beam.px, beam.py, beam.pz)

        trk = events.Track
        t_px, t_py, t_pz = trk.px * momentum_scale, trk.py * momentum_scale, trk.pz * momentum_scale
        t_E = np.sqrt(t_px**2 + t_py**2 + t_pz**2 + (trk.E**2 - trk.px**2 - trk.py**2 - trk.pz**2))
        t_cm = kin.to_cm(t_px, t_py, t_pz, t_E, *beta)
        t_cos = kin.cos_theta(t_px, t_py, t_pz)
        t_pt = np.sqrt(t_px**2 + t_py**2)

        pho = events.Photon
        escale = photon_energy_scale
        g_px, g_py, g_pz, g_E = pho.px * escale, pho.py * escale, pho.pz * escale, pho.E * escale
        g_cos = kin.cos_theta(g_px, g_py, g_pz)
        good_g = (g_E > cfg.photons["e_min"]) & _in(g_cos, cfg.photons["cos_theta"])
        g_px, g_py, g_pz, g_E, g_cos = g_px[good_g], g_py[good_g], g_pz[good_g], g_E[good_g], g_cos[good_g]
        g_cm = kin.to_cm(g_px, g_py, g_pz, g_E, *beta)

        # preselection: exactly two opposite tracks with the paper's kinematic cuts
        two = (ak.num(trk.px) == cfg.tracks["n_tracks"]) & (ak.sum(trk.charge, axis=1) == 0)
        p_cm = kin.momentum(t_cm.px, t_cm.py, t_cm.pz)
        trk_ok = (p_cm <= cfg.tracks["p_cm_max_over_sqrt_s"] * roots) & (t_pt >= cfg.tracks["pt_min"]) & _in(t_cos, cfg.tracks["cos_theta"])
        if channel == "egamma":
            in_ecl = ak.zeros_like(t_cos, dtype=bool)
            for window in cfg.tracks["ecl_acceptance_cos_theta"]:
                in_ecl = in_ecl | _in(t_cos, window)
            trk_ok = trk_ok & in_ecl
        presel = two & ak.fill_none(ak.all(trk_ok, axis=1), False)

        # thrust hemispheres (CM) of tracks and photons together
        all_px = ak.concatenate([t_cm.px, g_cm.px], axis=1)
        all_py = ak.concatenate([t_cm.py, g_cm.py], axis=1)
        all_pz = ak.concatenate([t_cm.pz, g_cm.pz], axis=1)
        axis, _ = thrust_axis(all_px, all_py, all_pz)
        t_hemi = hemisphere(t_cm.px, t_cm.py, t_cm.pz, axis)
        g_hemi = hemisphere(g_cm.px, g_cm.py, g_cm.pz, axis)

        pid = cfg.pid
        lepton_id = trk[pid["muon_branch"] if channel == "mugamma" else pid["electron_branch"]]
        lepton_cut = pid["muon_cut"] if channel == "mugamma" else pid["electron_cut"]
        other_id = trk[pid["electron_branch"] if channel == "mugamma" else pid["muon_branch"]]
        other_cut = pid["electron_cut"] if channel == "mugamma" else pid["muon_cut"]

        # signal side: the hemisphere with exactly one photon, that photon hard and central, and a lepton
        sig_e_min = cfg.photons["signal_e_min"]
        sig_cos = cfg.photons["signal_cos_theta"]
        chosen = ak.zeros_like(roots, dtype=np.int64)
        for h in (-1, 1):
            in_h = g_hemi == h
            one = ak.sum(in_h, axis=1) == 1
            hard = ak.fill_none(_pick((g_E > sig_e_min) & _in(g_cos, sig_cos), in_h), False)
            lep = ak.fill_none(_pick(lepton_id > lepton_cut, t_hemi == h), False)
            chosen = ak.where((chosen == 0) & one & hard & lep, h, chosen)
        has_signal = chosen != 0
        side = ak.where(has_signal, chosen, 1)
        sig_t = t_hemi == side
        tag_t = t_hemi == -side
        sig_g = g_hemi == side
        tag_g = g_hemi == -side
        one_each = (ak.sum(sig_t, axis=1) == 1) & (ak.sum(tag_t, axis=1) == 1)

        def first(x: ak.Array, m: ak.Array) -> ak.Array:
            return ak.fill_none(_pick(x, m), np.nan)

        lep = kin.P4(*(first(c, sig_t) for c in t_cm))
        gam = kin.P4(*(first(c, sig_g) for c in g_cm))
        tag_trk = kin.P4(*(first(c, tag_t) for c in t_cm))
        tag_pho = kin.P4(*(ak.sum(c[tag_g], axis=1) for c in g_cm))
        n_tag_photons = ak.sum(tag_g, axis=1)

        tag_is_lepton = ak.fill_none(_pick(other_id > other_cut, tag_t), False)
        veto_ok = ak.fill_none(_pick(lepton_id < pid["extra_lepton_veto"], tag_t), False)
        tag_class = ak.where(tag_is_lepton, 0, ak.where(n_tag_photons == 0, 1, 2))

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

        vis_cm = kin.p4_add(kin.p4_sum(*t_cm), kin.p4_sum(*g_cm))
        e_total = vis_cm.E / roots
        tag_sys = kin.p4_add(tag_trk, tag_pho)
        e_sum_rho = (lep.E + gam.E + tag_trk.E) / roots
        cos_tracks = kin.cos_angle(lep, tag_trk)
        cos_lgamma = kin.cos_angle(lep, gam)

        vis_lab = kin.p4_add(kin.p4_sum(t_px, t_py, t_pz, t_E), kin.p4_sum(g_px, g_py, g_pz, g_E))
        miss_lab = kin.missing_four_momentum(beam, vis_lab)
        p_miss = kin.momentum(miss_lab.px, miss_lab.py, miss_lab.pz)
        cos_theta_miss = kin.cos_theta(miss_lab.px, miss_lab.py, miss_lab.pz)
        tag_lab = kin.to_lab(*tag_trk, *beta)
        cos_miss_tag = kin.cos_angle(miss_lab, tag_lab)

        # m_nu^2 = (E_lgamma - E_tag)^2 - |p_miss^CM|^2 (sec. 2): the tag tau carries E_lgamma
        miss_cm = kin.to_cm(*miss_lab, *beta)
        m_nu2 = (lg.E - tag_sys.E) ** 2 - (miss_cm.px**2 + miss_cm.py**2 + miss_cm.pz**2)
        asym = abs(lep.E - gam.E) / (lep.E + gam.E)

        # xi (eqs. 2.1-2.3): cosine between the tag tau and the tag track (+ tag photons for rho)
        track_for_xi = kin.P4(*(ak.where(tag_class == 2, a, b) for a, b in zip(tag_sys, tag_trk)))
        recoil = kin.P4(-lg.px - track_for_xi.px, -lg.py - track_for_xi.py, -lg.pz - track_for_xi.pz, roots - lg.E - track_for_xi.E)
        m2_miss = kin.mass2(*recoil)
        m2_track = kin.mass2(*track_for_xi)
        dot = (m2_miss - TAU_MASS**2 - m2_track + roots * track_for_xi.E) / 2.0
        p_tau = np.sqrt(np.clip((roots / 2) ** 2 - TAU_MASS**2, 0, None))
        xi = dot / (p_tau * kin.momentum(track_for_xi.px, track_for_xi.py, track_for_xi.pz))

        sel = cfg.selection
        e_total_max = ak.where(tag_class == 0, sel["e_total_cm_max"]["lepton"], ak.where(tag_class == 1, sel["e_total_cm_max"]["pi"], sel["e_total_cm_max"]["rho"]))
        m_nu2_lo = ak.where(tag_class == 0, sel["m_nu2"]["lepton"][0], ak.where(tag_class == 1, sel["m_nu2"]["pi"][0], sel["m_nu2"]["rho"][0]))
        m_nu2_hi = ak.where(tag_class == 0, sel["m_nu2"]["lepton"][1], ak.where(tag_class == 1, sel["m_nu2"]["pi"][1], sel["m_nu2"]["rho"][1]))
        cuts = {
            "e_total": e_total < e_total_max,
            "e_sum_rho": (tag_class != 2) | (e_sum_rho < sel["e_sum_cm_max_rho"]),
            "cos_tracks": cos_tracks < sel["cos_tracks_max"],
            "cos_lgamma": _in(cos_lgamma, sel["cos_lgamma"]),
            "p_miss": p_miss > sel["p_miss_min"],
            "cos_theta_miss": _in(cos_theta_miss, sel["cos_theta_miss"]),
            "cos_miss_tag": _in(cos_miss_tag, sel["cos_miss_tag_track"][channel]),
            "m_nu2": (m_nu2 > m_nu2_lo) & (m_nu2 < m_nu2_hi),
            "energy_asymmetry": asym < sel["energy_asymmetry_max"],
            "xi": _in(xi, sel["xi"]),
        }
        steps = {
            "two opposite tracks": two,
            "track kinematics": presel,
            "signal side (1 photon, lepton ID)": presel & has_signal & one_each,
            "tag-side lepton veto": presel & has_signal & one_each & veto_ok,
        }
        base = steps["tag-side lepton veto"]
        values = {
            "e_total": e_total, "e_sum_rho": e_sum_rho, "cos_tracks": cos_tracks, "cos_lgamma": cos_lgamma,
            "p_miss": p_miss, "cos_theta_miss": cos_theta_miss, "cos_miss_tag": cos_miss_tag, "m_nu2": m_nu2,
            "energy_asymmetry": asym, "xi": xi,
        }
        return {
            "base": ak.to_numpy(ak.fill_none(base, False)),
            "steps": {k: ak.to_numpy(ak.fill_none(v, False)) for k, v in steps.items()},
            "cuts": {k: ak.to_numpy(ak.fill_none(v, False)) for k, v in cuts.items()},
            "values": {k: np.asarray(ak.to_numpy(ak.fill_none(v, np.nan)), dtype=float) for k, v in values.items()},
            "tag_class": ak.to_numpy(ak.fill_none(tag_class, 0)),
            "lepton_p": np.asarray(ak.to_numpy(ak.fill_none(_pick(kin.momentum(t_px, t_py, t_pz), sig_t), 1.0)), dtype=float),
            "lepton_cos": np.asarray(ak.to_numpy(ak.fill_none(_pick(t_cos, sig_t), 0.0)), dtype=float),
            "lepton_pdg": (np.asarray(ak.to_numpy(ak.fill_none(_pick(trk.mcPDG, sig_t), 0))) if "mcPDG" in trk.fields else None),
            "mbc": np.asarray(ak.to_numpy(ak.fill_none(mbc, np.nan)), dtype=float),
            "de": np.asarray(ak.to_numpy(ak.fill_none(de, np.nan)), dtype=float),
        }

    def _weight(self, events: ak.Array, sel: dict[str, Any], channel: str, variation: Variation) -> np.ndarray:
        """Correction weights of one variation: tracking (2 tracks), photon efficiency (1 photon),
        trigger, luminosity, and lepton ID (or the pion fake rate, by truth) of the signal lepton."""
        cset = self._corrections
        species = "mu" if channel == "mugamma" else "e"
        lepton_pdg = 13 if channel == "mugamma" else 11
        weight = np.full(len(events), float(
            corrections.tracking_weight(cset, 2, variation.syst("tracking"))
            * corrections.photon_efficiency_weight(cset, 1, variation.syst("photonEff"))
            * corrections.trigger_weight(cset, f"taulgamma_{channel}", variation.syst("trigger"))
            * corrections.luminosity_weight(cset, self.config.luminosity, variation.syst("luminosity"))
        ))
        p, cos = sel["lepton_p"], sel["lepton_cos"]
        true_lepton = np.abs(sel["lepton_pdg"]) == lepton_pdg if sel["lepton_pdg"] is not None else np.ones(len(p), bool)
        lep_w = np.asarray(corrections.lepton_id_weight(cset, species, p, cos, variation.syst("leptonID")), dtype=float)
        fake_w = np.asarray(corrections.fake_rate_weight(cset, species, p, cos, variation.syst("fakeRate")), dtype=float)
        return weight * np.where(true_lepton, lep_w, fake_w)

    @property
    def _corrections(self):
        return corrections.load(self.experiment)

    def analyse(self, events: ak.Array, dataset: str) -> tuple[dict[str, Any], dict[str, Cutflow]]:
        hists = self._book()
        cutflows: dict[str, Cutflow] = {}
        generator_weight = ak.to_numpy(events["__weight__"]).astype(float)
        is_data = events.metadata.get("is_data", False)
        cset = self._corrections
        for channel in CHANNELS:
            cutflow = Cutflow()
            cutflow.add("all events", np.ones(len(events), bool), generator_weight)
            selections: dict[tuple[str, str], dict[str, Any]] = {}
            for variation in variations(is_data):
                key = variation.calibration
                if key not in selections:
                    scales = (corrections.momentum_scale(cset, key[0]), corrections.photon_energy_scale(cset, key[1]))
                    selections[key] = self._select(events, channel, *scales)
                sel = selections[key]
                weight = generator_weight if is_data else generator_weight * self._weight(events, sel, channel, variation)
                passed = sel["base"] & np.all(np.stack(list(sel["cuts"].values())), axis=0)
                tags = np.asarray(TAG_CLASSES)[sel["tag_class"]]
                in_sr = self.config.ellipse(channel).contains(sel["mbc"], sel["de"], self.config.signal_region["n_sigma"])
                for region, mask in (("signal", passed & in_sr), ("outside", passed & ~in_sr)):
                    hists["mbc_de"].fill(dataset=dataset, channel=channel, region=region, variation=variation.name,
                                         tag=tags[mask], mbc=sel["mbc"][mask], de=sel["de"][mask], weight=weight[mask])
                if variation.name != "nominal":
                    continue
                for step, mask in sel["steps"].items():
                    cutflow.add(step, mask, weight)
                running = sel["base"].copy()
                for name, mask in sel["cuts"].items():
                    running &= mask
                    cutflow.add(name, running, weight)
                cutflow.add("signal region", passed & in_sr, weight)
                # N-1: every cut but the one plotted
                for name in sel["cuts"]:
                    others = sel["base"] & np.all(np.stack([m for k, m in sel["cuts"].items() if k != name]), axis=0)
                    hists[f"nminus1_{name}"].fill(dataset=dataset, channel=channel, region="all", variation="nominal",
                                                   tag=tags[others], x=sel["values"][name][others], weight=weight[others])
            cutflows[channel] = cutflow
        return hists, cutflows
