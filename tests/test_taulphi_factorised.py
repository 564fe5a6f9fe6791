"""taulphi's background per process (issue 11; stats/factorised.py ``summed_estimate``, configs/stats/taulphi.yaml
``estimate: factorised``) beside the paper's N_RSB x r_MC.

b = sum_d N_d(SR + RSB before the BDT) x A_SR / A_(SR + RSB) x eps_d, eps_d measured in the window (the BDT
efficiency over all preselected events fails the closure: benchmarks/taulphi_factorised_closure.py). A
process with no event in the window is counted in the preselected (M_tau, dE) plane (``m_de``) x the
window's share of its area, with the plane's eps; one empty there too carries its bound x that share.
Closure against the plain estimate where both have statistics; the uncertainty by hand.
"""

from __future__ import annotations

import math

import hist
import pytest

from belle_rare.processors.registry import get_search
from belle_rare.stats.factorised import summed_estimate
from belle_rare.stats.mc_bound import BoundedCount
from belle_rare.stats.model_config import FactorisedEfficiency, load_stats_config
from belle_rare.stats.search_limits import Settings, compute_search_limits
from belle_rare.stats.synthetic import SIGMA_TAUTAU_NB, book, count_axis, set_bins, write_run_output

CHANNELS = ("ephi", "muphi")
AREA = {"ephi": 0.05, "muphi": 0.08}  # SR / (SR + RSB), the runner's sr_area_fraction
SYSTS = ("leptonID", "tracking", "trigger", "momentumScale", "luminosity")


def _run(tmp_path, backgrounds: dict[str, tuple[float, dict[str, float]]]) -> None:
    """Asimov taulphi output: per background dataset (weight per event w, simulated events per region of
    ``yields``; ``plane``/``plane_BDT``: of the ``m_de`` plane before / after the BDT, one bin here);
    the same counts in both channels; signal 40 events in SR (and in SR_presel)."""
    histograms = {}
    h = book(histograms, "yields", count_axis())
    plane = book(histograms, "m_de", hist.axis.Regular(1, 1.60, 1.95, name="m"), hist.axis.Regular(1, -0.5, 0.3, name="de"),
                 systematics=False)
    datasets = {}
    for channel, sig in (("ephi", "sig_tauephi"), ("muphi", "sig_taumuphi")):
        for region in ("SR", "SR_presel"):
            set_bins(h, sig, channel, region, 40.0, 1.0)
        for syst in SYSTS:
            for suffix, f in (("Up", 1.01), ("Down", 0.99)):
                set_bins(h, sig, channel, "SR", 40.0 * f, 1.0, variation=syst + suffix)
        datasets[sig] = {"kind": "signal", "process": sig, "cross_section_nb": 2 * SIGMA_TAUTAU_NB * 1e-6 * 0.491, "parameters": {}}
        for name, (w, counts) in backgrounds.items():
            for region, n in counts.items():
                if n > 0 and region.startswith("plane"):
                    set_bins(plane, name, channel, "presel" if region == "plane" else "BDT", n * w, n * w * w)
                elif n > 0:
                    set_bins(h, name, channel, region, n * w, n * w * w)
    for name, (w, _) in backgrounds.items():
        plane.of(name)  # every run has the plane (empty here if no count was given)
        datasets[name] = {"kind": "background", "cross_section_nb": 1.0, "parameters": {}, "scale": w}
    write_run_output(tmp_path, "taulphi", "belle2", 190.0, datasets, histograms, {"sr_area_fraction": AREA})


def _presel(after: dict[str, float], fail: dict[str, float]) -> dict[str, float]:
    """Region counts: ``after`` the BDT in SR / RSB / other, the ``*_presel`` totals = after + ``fail``."""
    out = dict(after)
    for r in ("SR", "RSB", "other"):
        out[f"{r}_presel"] = after.get(r, 0.0) + fail.get(r, 0.0)
    return out


def _estimates(tmp_path, estimate: str | None = None) -> dict[str, dict[str, dict]]:
    """channel -> estimate name -> record (limits.json background_estimates)."""
    doc = compute_search_limits("taulphi", tmp_path, Settings(background_estimate=estimate, calculator="asymptotics")).document
    out: dict[str, dict[str, dict]] = {}
    for entry in doc["limits"]:
        for e in entry["background_estimates"]:
            out.setdefault(e["channel"], {})[e["estimate"]] = {**e, "background_events": entry["background_events"],
                                                               "from_bound": entry["background_from_mc_bound"]}
    return out


WINDOW_SHARE = {"ephi": 0.1125, "muphi": 0.07706}  # configs/stats/taulphi.yaml factorised.looser.window_share


def test_the_yaml_uses_the_per_process_estimate_and_keeps_the_papers_beside_it():
    for channel in load_stats_config("taulphi").channels:
        dd = next(s for s in channel.samples if s.data_driven is not None).data_driven
        assert dd.estimate == "factorised" and dd.transfer_factor is not None
        fz = dd.factorised
        assert fz.per_dataset and fz.before_from == "window_area"
        assert fz.pass_regions == ["SR", "RSB"] and fz.total_regions == ["SR_presel", "RSB_presel"]
        assert fz.looser.histogram == "m_de" and fz.looser.window_share == WINDOW_SHARE


def test_window_share_is_the_window_area_over_the_m_de_plane_of_the_search_config():
    cfg = get_search("taulphi").load_config()
    box, bins = cfg.signal_region, cfg.histograms
    plane = (bins.m_tau[2] - bins.m_tau[1]) * (bins.de[2] - bins.de[1])
    sr = (2 * box.sr_n_sigma_m * box.sigma_m) * (2 * box.sr_n_sigma_de * box.sigma_de)
    assert tuple(box.rsb_m_range) == (bins.m_tau[1], bins.m_tau[2])  # the window spans the plane's mass range
    for channel, share in WINDOW_SHARE.items():
        assert sr / box.sr_fraction(channel) / plane == pytest.approx(share, rel=1e-3)


def test_closure_with_the_plain_and_the_papers_estimate_when_the_window_is_filled_and_flat(tmp_path):
    """Two processes with different BDT efficiencies in the window (0.9, 0.2), the SR holding the area
    fraction of the window before and after the BDT: the per-process sum equals the plain N_SR after
    the BDT, which is also the paper's N_RSB x r_MC (Asimov)."""
    backgrounds = {}
    for name, w, eps in (("tautau", 0.5, 0.9), ("uds", 20.0, 0.2)):
        before = {"SR": 2000 * AREA["ephi"], "RSB": 2000 * (1 - AREA["ephi"]), "other": 50000}
        after = {"SR": before["SR"] * eps, "RSB": before["RSB"] * eps, "other": before["other"] * 0.01}
        backgrounds[name] = (w, _presel(after, {r: v - after[r] for r, v in before.items()}))
    _run(tmp_path, backgrounds)
    est = _estimates(tmp_path)["ephi"]
    plain = sum(w * counts["SR"] for w, counts in backgrounds.values())
    assert est["factorised"]["used"] and not est["transfer_factor"]["used"]
    assert est["factorised"]["value"] == pytest.approx(plain, rel=1e-9)
    assert est["transfer_factor"]["value"] == pytest.approx(plain, rel=1e-9)
    assert est["factorised"]["background_events"] == pytest.approx(plain, rel=1e-9)
    parts = est["factorised"]["per_dataset"]
    assert parts["tautau"]["efficiency"] == pytest.approx(0.9) and parts["uds"]["efficiency"] == pytest.approx(0.2)


def test_a_process_empty_in_the_window_is_counted_in_the_plane_or_carries_its_bound_spread_over_it(tmp_path):
    """charm: no event in the window, 200 in the m_de plane (20 after the BDT): N = 200 w x share, eps 0.1.
    B B: none in the plane either: its bound w x share, eps 1 -- against the paper's estimate, whose SR
    and RSB carry B B's full w."""
    w_bb, w_cc, w_tt = 3000.0, 50.0, 0.5
    bb = _presel({"other": 4}, {"other": 1996})
    cc = {**_presel({"other": 30}, {"other": 2970}), "plane": 200, "plane_BDT": 20}
    tt = _presel({"SR": 5, "RSB": 95}, {"SR": 45, "RSB": 855})
    _run(tmp_path, {"mixed": (w_bb, bb), "charm": (w_cc, cc), "tautau": (w_tt, tt)})
    f_sr = AREA["ephi"]
    est = _estimates(tmp_path)["ephi"]
    f = est["factorised"]
    parts = f["per_dataset"]
    assert parts["tautau"]["value"] == pytest.approx(w_tt * 1000 * f_sr * 0.1)
    assert parts["charm"]["value"] == pytest.approx(w_cc * 200 * WINDOW_SHARE["ephi"] * f_sr * 0.1)
    assert parts["mixed"]["n_before_from_mc_bound"] and parts["mixed"]["efficiency"] == 1.0
    assert parts["mixed"]["value"] == pytest.approx(w_bb * WINDOW_SHARE["ephi"] * f_sr)
    assert f["from_looser_regions"] == ["charm"] and f["efficiency_taken_as_one"] == ["mixed"]
    assert f["from_mc_bound"] and est["factorised"]["from_bound"]
    # the paper's estimate: the B B bound sits in N_RSB with its full weight per event
    assert est["transfer_factor"]["value"] > 50 * f["value"]


def test_summed_uncertainty_by_hand():
    """Two parts: MC variances of counts and efficiencies add over the parts; the Poisson term is
    1 / (summed window count)."""
    def count(n: float, w: float) -> BoundedCount:
        return BoundedCount(n * w, n * w * w, None)

    parts = {"a": (count(100, 0.5), count(10, 0.5), count(990, 0.5)),
             "b": (count(4, 10.0), count(2, 10.0), count(398, 10.0))}
    est = summed_estimate(parts, poisson_before=True, before_scale=0.1)
    va, vb = 50 * 0.1 * 10 / 1000, 40 * 0.1 * 2 / 400
    assert est.value == pytest.approx(va + vb)
    rel_before_a, rel_before_b = 1 / math.sqrt(100), 1 / math.sqrt(4)
    rel_eff_a = (990 / 1000) * math.sqrt(1 / 10 + 1 / 990)
    rel_eff_b = (398 / 400) * math.sqrt(1 / 2 + 1 / 398)
    sim = math.sqrt(va**2 * (rel_before_a**2 + rel_eff_a**2) + vb**2 * (rel_before_b**2 + rel_eff_b**2))
    assert est.rel_simulation * est.value == pytest.approx(sim)
    assert est.uncertainty == pytest.approx(math.sqrt(sim**2 + est.value**2 / (50 + 40)))
    assert est.efficiency == pytest.approx(est.value / (0.1 * 90))


def test_total_regions_and_fail_regions_are_exclusive_and_looser_needs_per_dataset():
    with pytest.raises(ValueError, match="one of 'fail_regions' or 'total_regions'"):
        FactorisedEfficiency(before_regions=["SR_presel"], pass_regions=["SR"], fail_regions=["x"], total_regions=["y"])
    with pytest.raises(ValueError, match="one of 'fail_regions' or 'total_regions'"):
        FactorisedEfficiency(before_regions=["SR_presel"], pass_regions=["SR"])
    looser = {"histogram": "m_de", "regions": ["presel"], "pass_regions": ["BDT"], "window_share": {"ephi": 0.1}}
    with pytest.raises(ValueError, match="'looser' needs 'per_dataset: true'"):
        FactorisedEfficiency(before_regions=["SR_presel"], pass_regions=["SR"], total_regions=["SR_presel"], looser=looser)
