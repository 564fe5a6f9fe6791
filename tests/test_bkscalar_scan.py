"""bkscalar limits (analyses/bkscalar_scan.py) on a synthetic run output and a synthetic signal grid, the
signal-grid artefact (analyses/bkscalar_grid.py) on a tiny generated grid, and the Higgs-mixed scalar model."""

from __future__ import annotations

import json
import math

import hist
import numpy as np
import pytest

from belle_rare.analyses import bkscalar_grid, bkscalar_scan
from belle_rare.analyses.bkscalar_grid import SCHEMA_VERSION, SignalGrid
from belle_rare.configs.experiment import load_experiment
from belle_rare.processors.registry import get_search
from belle_rare.simulation.generators import higgs_scalar
from belle_rare.stats.scan_table import read_scan_table
from belle_rare.stats.search_limits import Settings
from belle_rare.stats.synthetic import book, set_bins, write_run_output

EFF = 0.2
EDGES = np.linspace(0.0, 4.8, 2401)
CENTRES = 0.5 * (EDGES[1:] + EDGES[:-1])


def sigma_of(m):
    return 0.002 + 0.002 * np.asarray(m)


def synthetic_grid(channels=("K_mumu",), lifetimes=(1.0, 10.0)) -> SignalGrid:
    masses = [0.3, 1.0, 2.0, 3.0, 4.0]
    curve = {"mass": masses, "efficiency": [EFF] * 5, "resolution": list(sigma_of(np.array(masses))),
             "effective_entries": [100.0] * 5}
    doc = {"schema_version": SCHEMA_VERSION, "command": "synthetic (test)",
           "channels": {c: {f"{lt:g}": curve for lt in lifetimes} for c in channels}}
    return SignalGrid(doc, "synthetic")


def run_output(tmp_path, inject_mass: float = 2.0, signal_events: float = 400.0, seed: int = 3):
    """Background exp(-m) x 200 per 2 MeV bin; data = Poisson(background + a Gaussian peak at M_red(inject))."""
    rng = np.random.default_rng(seed)
    background = 200.0 * np.exp(-CENTRES / 1.5) + 5.0
    m_red = math.sqrt(inject_mass**2 - 4 * 0.1056583755**2)
    width = float(sigma_of(inject_mass))
    cdf = 0.5 * (1 + np.vectorize(math.erf)((EDGES - m_red) / (math.sqrt(2) * width)))
    peak = signal_events * np.diff(cdf)
    hists = {}
    h = book(hists, "m_reduced", hist.axis.Regular(2400, 0.0, 4.8, name="m_reduced"), systematics=False)
    set_bins(h, "bkg", "K_mumu", "SR", background)
    set_bins(h, "data", "K_mumu", "SR", rng.poisson(background + peak).astype(float))
    datasets = {"bkg": {"kind": "background"}, "data": {"kind": "data"}}
    write_run_output(tmp_path, "bkscalar", "belle2", 189.0, datasets, hists)
    return background


def config(toys: int = 20):
    cfg = bkscalar_scan.load_scan_config()
    return cfg.model_copy(update={
        "scan": cfg.scan.model_copy(update={"channels": ["K_mumu"], "lifetimes_cm": [1.0, 10.0]}),
        "look_elsewhere": cfg.look_elsewhere.model_copy(update={"toys": toys})})


def test_search_registers_the_scan_hook_and_its_yaml():
    search = get_search("bkscalar")
    assert search.scan_function() is bkscalar_scan.limit
    cfg = bkscalar_scan.load_scan_config()
    assert cfg.cl == 0.95 and cfg.scan.step_over_sigma == 0.5 and cfg.normalisation.n_bb_key == "bkscalar"


def test_hypotheses_step_half_the_resolution_and_skip_vetoes():
    grid = synthetic_grid()
    hyp = bkscalar_scan.hypotheses("K_mumu", 1.0, grid, config())
    step = np.diff(hyp["m_reduced"])
    sigma = hyp["sigma"][:-1]
    inside = step < 0.01  # away from the veto gaps
    assert np.allclose(step[inside] / sigma[inside], 0.5, rtol=0.02)
    for lo, hi in bkscalar_scan.vetoed_ranges("K_mumu"):  # D0, J/psi, psi(2S) windows on m_S
        assert not np.any((hyp["m_s"] > lo) & (hyp["m_s"] < hi))
    # int dM_red / (sigma / 2) hypotheses over 2 m_mu .. m_B - m_K, outside the vetoes
    m_red = np.linspace(1e-4, bkscalar_scan.reduced_mass(4.79, "mumu"), 200000)
    m_s = bkscalar_scan.scalar_mass(m_red, "mumu")
    kept = np.ones(len(m_s), dtype=bool)
    for lo, hi in bkscalar_scan.vetoed_ranges("K_mumu"):
        kept &= ~((m_s > lo) & (m_s < hi))
    expected = np.trapezoid(np.where(kept, 2.0 / sigma_of(m_s), 0.0), m_red)
    assert len(hyp["m_s"]) == pytest.approx(expected, rel=0.02)
    assert hyp["m_s"].max() < 4.79


def test_scan_finds_an_injected_peak_and_normalises_to_branching_fractions(tmp_path):
    run_output(tmp_path)
    grid = synthetic_grid()
    table, doc = bkscalar_scan.compute(tmp_path, Settings(), config(), grid)
    excess = doc["largest_excess"]
    assert excess["hypothesis"]["channel"] == "K_mumu"
    assert excess["hypothesis"]["mass"] == pytest.approx(2.0, abs=0.01)
    assert excess["local_significance"] > 4.0
    assert 0.0 < excess["global_significance"] < excess["local_significance"]
    # BR = s / (eff x 2 N_BB f), N_BB = 198e6 at 189 /fb, f = 0.514
    exp = load_experiment("belle2")
    n_b = 2 * exp.n_bb["bkscalar"] * exp.upsilon4s_charged_fraction
    f = table.frame
    np.testing.assert_allclose(f["observed"] * f["efficiency"] * n_b, f["signal_events_observed"], rtol=1e-9)
    np.testing.assert_allclose(f["efficiency"][f["mass"] < 4.0], EFF)  # falls to 0 at m_B - m_K above
    # away from the peak: observed limits scatter around the expected ones (median ratio ~ 1)
    far = np.abs(f["mass"] - 2.0) > 0.1
    ratio = np.median(f["observed"][far] / f["expected"][far])
    assert 0.85 < ratio < 1.25
    # at the peak the observed limit sits far above the expected one
    at = f.loc[(f["mass"] - 2.0).abs().idxmin()]
    assert at["observed"] > 2.0 * at["expected"]
    # two curves (lifetimes), one entry each in limits.json
    assert doc["curves"] == 2 and doc["hypotheses"] == len(table)
    assert doc["look_elsewhere"]["per_channel"]["K_mumu"]["n0"] > 0


def test_limit_hook_writes_table_plots_hepdata_and_limits_json(tmp_path):
    run_output(tmp_path, signal_events=0.0)
    result = bkscalar_scan.limit("bkscalar", tmp_path, Settings(), make_plots=True, cfg=config(toys=0), grid=synthetic_grid())
    base = tmp_path / "bkscalar"
    doc = json.loads((base / "limits.json").read_text())
    assert doc == json.loads(json.dumps(result.document, default=str)) or doc["hypotheses"] == result.document["hypotheses"]
    for name in ("scan.parquet", "scan.csv", "hepdata/submission.yaml", "hepdata/submission.tar.gz",
                 "plots/limits_fig2.png", "plots/limit_K_mumu_ctau1.png", "plots/sin_theta.png"):
        assert (base / name).is_file(), name
    table = read_scan_table(base / "scan.parquet")
    assert len(table) == doc["hypotheses"]
    assert abs(doc["largest_excess"]["local_significance"]) < 5.0  # no signal injected
    assert doc["largest_excess"]["global_significance"] < 2.5


def test_higgs_scalar_widths_match_the_scalar_portal_reference():
    """Gamma(B -> K(*) S) / theta^2 against JLTastet/scalar_portal test_production.py (the authors' Mathematica
    implementation of 1904.10447) with its xi_sb = 3.809123e-4 GeV; K within 0.3 %, K* within 1.5 % (masses)."""
    xi = 3.809123090962853e-4
    m = np.array([0.0, 0.1, 0.3, 1.0, 2.0, 4.0])
    ref_k = np.array([1.8602870e-13, 1.8605807e-13, 1.8629313e-13, 1.8898504e-13, 1.9802186e-13, 2.1948725e-13])
    np.testing.assert_allclose(higgs_scalar.width_b_to_k_s(m, "K", xi=xi), ref_k, rtol=3e-3)
    m = np.array([0.0, 1.0, 2.0, 4.0])
    ref_kst = np.array([2.2496125e-13, 2.2495656e-13, 2.2291256e-13, 1.0360227e-13])
    np.testing.assert_allclose(higgs_scalar.width_b_to_k_s(m, "Kst", xi=xi), ref_kst, rtol=1.5e-2)
    # xi_sb with on-shell m_t: scalar_portal's 3.809e-4
    assert higgs_scalar.xi_sb() == pytest.approx(xi, rel=1e-3)
    # below 2 m_mu only e+e-: c tau theta^2 = hbar c 8 pi v^2 / (m_e^2 m_S beta^3) = 1.15 cm at 0.1 GeV (NOTES [D])
    assert higgs_scalar.ctau_cm(np.array([0.1]), 1.0)[0] == pytest.approx(1.15, rel=0.01)
    assert higgs_scalar.branching_fraction(np.array([0.1]), "ee")[0] == pytest.approx(1.0)
    # FORESEE's BR(S -> pi+ pi-) = 0.59 at 0.5 GeV (NOTES-darksector.md), from the same Winkler widths
    assert higgs_scalar.branching_fraction(np.array([0.5]), "pipi")[0] == pytest.approx(0.59, abs=0.02)


def test_mixing_limit_solves_for_the_lifetime_theta_implies():
    m, channel = 0.5, "K_mumu"
    lifetimes = np.array([1.0, 10.0, 100.0])
    limits = np.full(3, 1e-9)
    s2 = higgs_scalar.mixing_limit(m, channel, lifetimes, limits)
    assert np.isfinite(s2)
    # at the limit the prediction equals the (flat) BR limit and the implied c tau lies in the grid
    assert higgs_scalar.product_br(np.array([m]), s2, channel)[0] == pytest.approx(1e-9, rel=0.03)
    assert 1.0 <= higgs_scalar.ctau_cm(np.array([m]), s2)[0] <= 100.0
    assert math.isnan(higgs_scalar.mixing_limit(2.5, channel, lifetimes, limits))  # beyond the widths' range


def test_signal_grid_interpolates_and_vanishes_at_the_kinematic_limit():
    grid = synthetic_grid()
    assert grid.efficiency("K_mumu", 1.0, np.array([0.5]))[0] == pytest.approx(EFF)
    assert grid.efficiency("K_mumu", 1.0, np.array([4.8]))[0] == 0.0
    assert grid.resolution("K_mumu", 1.0, np.array([1.5]))[0] == pytest.approx(float(sigma_of(1.5)))
    with pytest.raises(ValueError, match="schema_version"):
        SignalGrid({"schema_version": 0, "channels": {}})


def test_tiny_generated_grid(tmp_path):
    """One S decay, one mass, both generated lifetimes, 400 events each: the artefact's layout, the truth
    counting of produced decays (B+ share ~0.514, K*0 -> K+ pi- ~2/3 of the B0 share) and a sane width."""
    out = tmp_path / "grid.json"
    assert bkscalar_grid.main(["--out", str(out), "--events", "400", "--decays", "mumu", "--masses", "1",
                               "--workdir", str(tmp_path)]) == 0
    doc = json.loads(out.read_text())
    assert doc["schema_version"] == SCHEMA_VERSION and "bkscalar_grid" in doc["command"]
    grid = SignalGrid(doc)
    assert set(grid.channels) == {"K_mumu", "Kst_mumu"}
    assert grid.lifetimes("K_mumu") == [1.0, 10.0, 50.0, 100.0]
    c = grid.curve("K_mumu", 10.0)
    assert c["generated_ctau_cm"][0] == 10.0 and grid.curve("K_mumu", 50.0)["generated_ctau_cm"][0] == 100.0
    assert 0.4 < c["produced"][0] / 400 < 0.62
    assert 0.22 < grid.curve("Kst_mumu", 10.0)["produced"][0] / 400 < 0.43
    assert 0.0 < c["efficiency"][0] < 0.5
    # 1 cm decays closer to the IP than 100 cm: more of them are selected
    assert grid.curve("K_mumu", 1.0)["efficiency"][0] > grid.curve("K_mumu", 100.0)["efficiency"][0]


def test_reduced_scan_config_by_search_name(tmp_path):
    """Settings.scan_config as {search: path} (limit_all over several searches) picks bkscalar's reduced scan."""
    from belle_rare.processors.registry import builtin_file

    run_output(tmp_path, signal_events=0.0)
    settings = Settings(scan_config={"bkscalar": builtin_file("stats", "bkscalar_demo.yaml"), "other": tmp_path / "x.yaml"})
    table, doc = bkscalar_scan.compute(tmp_path, settings, grid=synthetic_grid(lifetimes=(10.0,)))
    assert set(table.frame["channel"]) == {"K_mumu"} and set(table.frame["lifetime_cm"]) == {10.0}
    assert table.frame["mass"].min() >= 1.0 and table.frame["mass"].max() <= 1.35
    assert 150 < len(table) < 300  # "~200 masses" (sigma 4-5 MeV here)


def test_an_empty_background_dataset_carries_its_mc_bound_flat_over_the_spectrum(tmp_path):
    """A background dataset with no event in the channel is not zero background: its largest event weight
    (one event's Gamma(1) bound) is spread over the M_red range, and limits.json says so."""
    hists = {}
    h = book(hists, "m_reduced", hist.axis.Regular(2400, 0.0, 4.8, name="m_reduced"), systematics=False)
    filled = 200.0 * np.exp(-CENTRES / 1.5)
    set_bins(h, "bkg_filled", "K_mumu", "SR", filled)
    set_bins(h, "bkg_empty", "K_mumu", "SR", np.zeros(len(CENTRES)))
    datasets = {"bkg_filled": {"kind": "background", "scale": 0.5},
                "bkg_empty": {"kind": "background", "scale": 10.0, "max_event_weight": 4800.0}}
    write_run_output(tmp_path, "bkscalar", "belle2", 189.0, datasets, hists)
    run = bkscalar_scan.load_run_output(tmp_path, "bkscalar")
    edges, counts, source = bkscalar_scan.spectrum(run, config(), "K_mumu")
    # the bound: the empty dataset's largest weight (4800), 2 per bin of 2400; the filled one adds nothing
    assert counts.sum() == pytest.approx(filled.sum() + 4800.0, rel=1e-3)
    assert "MC statistical bound" in source and "bkg_empty" in source and "bkg_filled" not in source
    table, doc = bkscalar_scan.compute(tmp_path, Settings(), config(toys=0), synthetic_grid())
    assert doc["limits"] and all(e["background_from_mc_bound"] for e in doc["limits"])
