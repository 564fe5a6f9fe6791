"""taulphi's background with the BDT efficiency factorised per process (issue 11; stats/factorised.py
``summed_estimate``, configs/stats/taulphi.yaml ``estimate: factorised``) beside the paper's N_RSB x r_MC.

b = sum_d N_d(SR + RSB before the BDT) x A_SR / A_(SR + RSB) x eps_d, eps_d = N_d(after) / N_d(presel).
Closure against the plain estimate where both have statistics; a dataset empty in the window carries
its bound there x its own eps (far below the bound of the region after the BDT); the uncertainty by
hand; the factorised Punzi background of ``belle-rare train`` against the same sum.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from belle_rare.analyses.train_command import factorised_background_weight
from belle_rare.stats.factorised import summed_estimate
from belle_rare.stats.mc_bound import BoundedCount
from belle_rare.stats.model_config import FactorisedEfficiency, load_stats_config
from belle_rare.stats.search_limits import Settings, compute_search_limits
from belle_rare.stats.synthetic import SIGMA_TAUTAU_NB, book, count_axis, set_bins, write_run_output

CHANNELS = ("ephi", "muphi")
AREA = {"ephi": 0.05, "muphi": 0.08}  # SR / (SR + RSB), the runner's sr_area_fraction
SYSTS = ("leptonID", "tracking", "trigger", "momentumScale", "luminosity")


def _run(tmp_path, backgrounds: dict[str, tuple[float, dict[str, float]]]) -> None:
    """Asimov taulphi output: per background dataset (weight per event w, simulated events per region);
    the same counts in both channels; signal 40 events in SR (and in SR_presel)."""
    histograms = {}
    h = book(histograms, "yields", count_axis())
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
                if n > 0:
                    set_bins(h, name, channel, region, n * w, n * w * w)
    for name, (w, _) in backgrounds.items():
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


def test_the_yaml_uses_the_per_process_factorised_estimate_and_keeps_the_papers_beside_it():
    for channel in load_stats_config("taulphi").channels:
        dd = next(s for s in channel.samples if s.data_driven is not None).data_driven
        assert dd.estimate == "factorised" and dd.transfer_factor is not None
        fz = dd.factorised
        assert fz.per_dataset and fz.before_from == "window_area"
        assert fz.total_regions == ["SR_presel", "RSB_presel", "other_presel"] and fz.pass_regions == ["SR", "RSB", "other"]


def test_closure_with_the_papers_estimate_when_the_bdt_efficiency_is_flat_and_the_window_filled(tmp_path):
    """Two processes with different BDT efficiencies (0.1, 0.01), each flat over the plane and with the
    SR holding the area fraction of its window: the factorised sum equals the plain N_SR after the BDT,
    which is also the paper's N_RSB x r_MC (Asimov)."""
    backgrounds = {}
    for name, w, eps in (("tautau", 0.5, 0.1), ("uds", 20.0, 0.01)):
        n_window = 20000.0
        before = {"SR": n_window * AREA["ephi"], "RSB": n_window * (1 - AREA["ephi"]), "other": 10 * n_window}
        after = {r: v * eps for r, v in before.items()}
        backgrounds[name] = (w, _presel(after, {r: v - after[r] for r, v in before.items()}))
    _run(tmp_path, backgrounds)
    est = _estimates(tmp_path)["ephi"]
    plain = sum(w * counts["SR"] for w, counts in backgrounds.values())
    assert est["factorised"]["used"] and not est["transfer_factor"]["used"]
    assert est["factorised"]["value"] == pytest.approx(plain, rel=1e-9)
    assert est["transfer_factor"]["value"] == pytest.approx(plain, rel=1e-9)
    parts = est["factorised"]["per_dataset"]
    assert parts["tautau"]["efficiency"] == pytest.approx(0.1) and parts["uds"]["efficiency"] == pytest.approx(0.01)


def test_an_empty_window_carries_its_bound_times_its_own_efficiency_far_below_the_plain_bound(tmp_path):
    """B B: 2000 preselected events, 4 pass the BDT, none in SR or RSB: its window count is the bound
    (w) and its share of b is w x A x eps = w x 0.05 x 0.002, against the plain estimate's full w in SR
    and RSB after the BDT. tautau fills the window: its part is measured."""
    w_bb, w_tt = 3000.0, 0.5
    bb = _presel({"other": 4}, {"other": 1996})
    tt = _presel({"SR": 5, "RSB": 95, "other": 900}, {"SR": 45, "RSB": 855, "other": 8100})
    _run(tmp_path, {"mixed": (w_bb, bb), "tautau": (w_tt, tt)})
    est = _estimates(tmp_path)["ephi"]
    f = est["factorised"]
    bb_part = f["per_dataset"]["mixed"]
    assert bb_part["n_before_from_mc_bound"] and bb_part["efficiency"] == pytest.approx(4 / 2000)
    assert bb_part["value"] == pytest.approx(w_bb * AREA["ephi"] * 4 / 2000)
    tt_part = f["per_dataset"]["tautau"]
    assert not tt_part["n_before_from_mc_bound"]
    assert tt_part["value"] == pytest.approx(w_tt * 1000 * AREA["ephi"] * 1000 / 10000)
    assert f["value"] == pytest.approx(bb_part["value"] + tt_part["value"])
    assert f["from_mc_bound"] and f["mc_bound_share"] == pytest.approx(bb_part["value"] / f["value"])
    # the paper's estimate after the BDT: N_RSB carries B B's full bound
    assert est["transfer_factor"]["value"] > 100 * f["value"]


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


def test_total_regions_and_fail_regions_are_exclusive():
    with pytest.raises(ValueError, match="one of 'fail_regions' or 'total_regions'"):
        FactorisedEfficiency(before_regions=["SR_presel"], pass_regions=["SR"], fail_regions=["x"], total_regions=["y"])
    with pytest.raises(ValueError, match="one of 'fail_regions' or 'total_regions'"):
        FactorisedEfficiency(before_regions=["SR_presel"], pass_regions=["SR"])


def test_factorised_punzi_background_is_the_window_count_times_each_datasets_efficiency():
    """Summed over the events above a cut, the weights give sum_d N_d(window) x eps_d(cut), eps_d over
    all of d's events of that half (and channel); a dataset with no window event gives nothing."""
    rng = np.random.default_rng(5)
    n = 6000
    dataset = rng.choice(np.array(["tautau", "uds", "mixed"]), n)
    channel = rng.choice(np.array(["ephi", "muphi"]), n)
    half = rng.random(n) < 0.5
    weight = rng.uniform(0.1, 2.0, n)
    score = rng.random(n)
    in_window = (rng.random(n) < 0.05) & (dataset != "mixed")
    bw = factorised_background_weight(weight, in_window, dataset, channel, half)
    cut = 0.9
    for d in ("tautau", "uds"):
        for c in ("ephi", "muphi"):
            for h in (True, False):
                g = (dataset == d) & (channel == c) & (half == h)
                expected = weight[g & in_window].sum() * weight[g & (score > cut)].sum() / weight[g].sum()
                assert bw[g & (score > cut)].sum() == pytest.approx(expected)
    assert not bw[dataset == "mixed"].any()
