"""zprime's per-mass 2D fit: the vectorised template fit (stats/template_scan.py) against pyhf and closed
forms, and the scan's pieces (analyses/zprime_scan.py) on synthetic inputs."""

from __future__ import annotations

import numpy as np
import pyhf
import pytest

from belle_rare.analyses import zprime_scan as zs
from belle_rare.processors.registry import get_search
from belle_rare.simulation.generators import lmu_ltau
from belle_rare.stats import fast_scan
from belle_rare.stats import template_scan as ts
from belle_rare.stats.scan_table import read_scan_table

# pyhf's published validation case 1bin_shapesys: s = 10, b = 50 +- 7, n = 55, mu = 1
SHAPESYS_CLS_OBS = 0.4541865
SHAPESYS_CLS_EXP = [0.063718, 0.150965, 0.327961, 0.604609, 0.866263]


def _one_bin(n, b, db, kappa=0.0) -> ts.Windows:
    n, b, db = (np.atleast_1d(np.asarray(v, float))[:, None] for v in (n, b, db))
    ones = np.ones_like(n)
    return ts.Windows(n, ones, ones, ones, b, db, np.full(len(n), kappa), ones.astype(bool))


def _cls_at(w: ts.Windows, x: np.ndarray) -> np.ndarray:
    """CLs (6, H): observed, expected -2..+2 sigma (pyhf's order)."""
    fits = ts.fit_all(w)
    starts = {k: fits.background.copy() for k in ("obs", "obs_a", 1, 2, 3, 4, 5)}
    return np.exp(ts._curves(np.tile(x, (6, 1)), w, fits, starts, 40))


def test_one_bin_shapesys_reproduces_pyhf_validation_case():
    cls = _cls_at(_one_bin(55.0, 50.0, 7.0), np.array([10.0]))
    assert cls[0, 0] == pytest.approx(SHAPESYS_CLS_OBS, abs=2e-5)
    assert np.allclose(cls[1:, 0], SHAPESYS_CLS_EXP, atol=2e-5)


def test_one_bin_limits_match_the_closed_form_for_many_hypotheses():
    rng = np.random.default_rng(4)
    b = rng.uniform(0.5, 500.0, 40)
    db = 0.2 * b
    n = rng.poisson(b).astype(float)
    fast, _ = ts.upper_limits(_one_bin(n, b, db), cl=0.90)
    closed = fast_scan.asymptotic_limits(n, b, db, cl=0.90)
    assert np.allclose(fast.observed, closed.observed, rtol=5e-3)
    assert np.allclose(fast.expected, closed.expected, rtol=5e-3)


def _window(seed: int = 3, k: int = 12) -> ts.Windows:
    rng = np.random.default_rng(seed)
    x = np.linspace(-1.5, 1.5, k)
    shape = lambda width: np.exp(-0.5 * (x / width) ** 2)  # noqa: E731
    s, up, down = shape(0.5), shape(0.55), shape(0.45)
    total = s.sum()
    b = 30.0 * (1.0 + 0.3 * x) * rng.uniform(0.8, 1.2, k)
    n = rng.poisson(b + 5.0 * s / total).astype(float)
    return ts.Windows(n[None], (s / total)[None], (up / total)[None], (down / total)[None], b[None],
                      np.hypot(0.086 * b, np.sqrt(0.1 * b))[None], np.array([0.066]), np.ones((1, k), bool))


def test_full_model_cls_agrees_with_pyhf_hypotest():
    """Signal normsys + resolution histosys + per-bin shapesys: the vectorised fits against pyhf's."""
    w = _window()
    x = 12.0
    cls = _cls_at(w, np.array([x]))[:, 0]
    spec = ts.pyhf_spec(w, 0)
    workspace = pyhf.Workspace(spec)
    model = workspace.model()
    obs, exp = pyhf.infer.hypotest(x, workspace.data(model), model, test_stat="qtilde", return_expected_set=True)
    assert cls[0] == pytest.approx(float(obs), rel=2e-3)
    assert np.allclose(cls[1:], np.array(exp, float), rtol=5e-3)


def test_core_width_of_a_gaussian_histogram():
    edges = np.linspace(-0.5, 10.0, 211)
    rng = np.random.default_rng(1)
    counts, _ = np.histogram(rng.normal(4.0, 0.3, 200_000), edges)
    mean, sigma = zs.core_width(edges, counts, 4.1, 0.25)
    assert mean == pytest.approx(4.0, abs=0.01)
    assert sigma == pytest.approx(0.3, rel=0.03)


def _samples() -> zs.SignalSamples:
    """Two synthetic signal samples: Gaussian M2 peaks, flat in theta (2 bins)."""
    edges = np.linspace(-0.5, 81.0, 1631)
    mid = 0.5 * (edges[1:] + edges[:-1])
    masses = np.array([2.0, 4.0])
    sigmas = np.array([0.3, 0.2])
    shapes = []
    for m, s in zip(masses, sigmas):
        peak = np.exp(-0.5 * ((mid - m**2) / s) ** 2)
        shapes.append(np.repeat((peak / peak.sum() / 2)[:, None], 2, axis=1))
    return zs.SignalSamples(masses, np.array([0.3, 0.2]), masses**2, sigmas, np.stack(shapes), np.array([1e3, 1e3]),
                            np.array([1e-6, 1e-7]), ["sig_zprime_m2", "sig_zprime_m4"]), edges


def test_signal_template_is_shifted_and_stretched_to_the_hypothesis():
    samples, edges = _samples()
    cfg = zs.ScanConfig.model_validate({
        "search": "zprime", "experiment": "belle2", "poi": "sigma", "cl": 0.9,
        "systematics": {"ranges": [{"m2": [-0.5, 81.0], "efficiency": 0.05, "background_shape": 0.1}],
                        "resolution": 0.1, "luminosity": 0.01},
        "scan": {"half_width_sigma": 3.0}})
    masses = zs.hypotheses(samples, cfg)
    # equally spaced in M2 at one sigma, sigma interpolated linearly in M between 0.3 and 0.2 GeV^2
    steps = np.diff(masses**2)
    assert np.all(steps > 0.19) and np.all(steps < 0.31)
    p = zs.plan(np.array([2.9]), samples, edges, cfg)
    assert p.nearest[0] == 0 and p.sigma[0] == pytest.approx(0.255) and p.efficiency[0] == pytest.approx(0.255)
    k = int(p.width.max())
    shape, mask = zs._stretched(samples, p, edges, k, 1.0)
    frac = shape[0].sum(axis=1)
    mid = 0.5 * (edges[p.first[0]:p.first[0] + k] + edges[p.first[0] + 1:p.first[0] + k + 1])
    mean = np.sum(frac * mid) / frac.sum()
    width = np.sqrt(np.sum(frac * (mid - mean) ** 2) / frac.sum())
    assert mean == pytest.approx(2.9**2, abs=0.01)
    assert frac.sum() == pytest.approx(0.9973, abs=0.01)        # +-3 sigma of a Gaussian
    assert width == pytest.approx(0.255 * 0.9733, rel=0.03)       # a Gaussian's sigma within +-3 sigma
    wider, _ = zs._stretched(samples, p, edges, k, 1.1)
    assert wider[0].sum() < frac.sum()                            # the +10 % resolution leaks out of the window


def test_systematics_by_m2_range():
    ranges = [zs.M2Range(m2=(-0.5, 9.0), efficiency=0.027, background_shape=0.032),
              zs.M2Range(m2=(9.0, 36.0), efficiency=0.065, background_shape=0.086),
              zs.M2Range(m2=(36.0, 81.0), efficiency=0.083, background_shape=0.25)]
    m2 = np.array([0.0, 8.9, 20.0, 50.0, 85.0])
    assert list(zs.range_values(m2, ranges, "background_shape")) == [0.032, 0.032, 0.086, 0.25, 0.25]


def test_photon_veto_uncertainty_per_fit_bin_by_its_own_m2(tmp_path):
    """The paper's photon-veto background-shape uncertainty (34 % below M2_recoil = 1 GeV^2, 5 % above) enters each
    fit bin by the bin's own M2, in quadrature with the window's background-shape uncertainty: sigma_b^2 grows by
    exactly veto(M2)^2 b^2 per bin, and windows straddling 1 GeV^2 (signal samples at 0.8 and 1.2 GeV) carry both."""
    from belle_rare.processors.registry import get_search
    from belle_rare.stats.histograms import load_run_output
    from tests.test_zprime_minimum_limit import _config, _run

    _run(tmp_path, background_per_bin=0.3, signals=((0.8, 0.25), (1.2, 0.25)))
    cfg = _config(0, 1.5)
    veto = cfg.systematics.photon_veto
    assert (veto.m2_below, veto.below, veto.above) == (1.0, 0.34, 0.05)   # configs/stats/zprime.yaml, the paper's
    run = load_run_output(tmp_path, "zprime")
    samples, _ = zs.signal_samples(run, cfg, get_search("zprime").load_config().paper_m2_resolution)
    spec = zs.spectra(run, cfg)
    p = zs.plan(zs.hypotheses(samples, cfg), samples, spec.m2_edges, cfg)
    with_veto = zs.build(samples, spec, p, cfg, run.luminosity_fb).windows
    no_veto = cfg.model_copy(update={"systematics": cfg.systematics.model_copy(update={"photon_veto": None})})
    without = zs.build(samples, spec, p, no_veto, run.luminosity_fb).windows
    n_theta = with_veto.b.shape[1] // int(p.width.max())
    m2 = np.repeat(zs.window_bin_centres(spec.m2_edges, p, int(p.width.max())), n_theta, axis=1)
    expected = np.where(m2 < 1.0, 0.34, 0.05)
    mask = with_veto.mask
    np.testing.assert_allclose((with_veto.sigma_b**2 - without.sigma_b**2)[mask], (expected**2 * without.b**2)[mask],
                               rtol=1e-9)
    straddling = np.any(mask & (m2 < 1.0), axis=1) & np.any(mask & (m2 > 1.0), axis=1)
    assert straddling.sum() >= 2 and np.array_equal(with_veto.b, without.b)


def test_coupling_from_the_samples_cross_sections():
    """g'_UL = sqrt(sigma_UL / sigma(g' = 1) x BR): at a sample's mass the sample's own sigma x BR / g'^2."""
    samples, _ = _samples()
    zm = zs.load_catalogue().get("sig_zprime").zprime_model
    unit = zs.unit_coupling_cross_section(samples, samples.mass, zm.invisible)
    assert np.allclose(unit, samples.cross_section_nb * 1e6 / zm.coupling**2, rtol=1e-9)
    fully = zs.unit_coupling_cross_section(samples, samples.mass, "fully_invisible")
    assert np.allclose(fully / unit, 1.0 / lmu_ltau.invisible_branching_fraction(samples.mass, "vanilla"))
    # a limit equal to the sample's sigma x BR is the sample's coupling
    assert np.allclose(lmu_ltau.coupling_limit(samples.cross_section_nb * 1e6, unit), zm.coupling)


def test_a_dataset_that_selected_nothing_is_an_empty_plane(tmp_path):
    """A background dataset with no selected event has no channel / region category to index (growing axes):
    the scan reads it as an empty (M2, theta) plane instead of failing (make run's small samples)."""
    import hist

    from belle_rare.stats.histograms import load_run_output
    from belle_rare.stats.synthetic import book, write_run_output

    cfg = zs.load_scan_config()
    hists = {}
    h = book(hists, cfg.scan.histogram, hist.axis.Regular(40, -0.5, 81.0, name="m2"),
             hist.axis.Regular(36, 0.0, 180.0, name="theta"), systematics=False)
    h.set_bins("tautau", zs.CHANNEL, cfg.scan.region, np.ones((40, 36)))
    # the empty dataset's histogram: same axes, no categories filled
    empty = hist.Hist(*[hist.axis.StrCategory([], name=a.name, growth=True) if a.name in ("channel", "region") else a
                        for a in hists["tautau"][cfg.scan.histogram].axes], storage=hist.storage.Weight())
    hists["eemumu"] = {cfg.scan.histogram: empty}
    write_run_output(tmp_path, "zprime", "belle2", 79.7, {"tautau": {"kind": "background"}, "eemumu": {"kind": "background"}}, hists)
    run = load_run_output(tmp_path, "zprime")
    values, variances, m2_edges, theta_edges = zs._hist2d(run, "eemumu", cfg)
    assert values.shape == (40, 36 // cfg.scan.theta_rebin) and not values.any() and not variances.any()
    np.testing.assert_allclose(m2_edges, np.linspace(-0.5, 81.0, 41))
    full, _, _, _ = zs._hist2d(run, "tautau", cfg)
    assert full.sum() == pytest.approx(40 * 36)


def _benchmark_run(tmp_path, wide: bool = True) -> None:
    """A flat background (0.5 unit-weight events per 0.05 GeV^2 x 5 deg) and signal samples at 3 and 6 GeV of the
    negligible-width model (Gaussian M2 peaks, the recoil resolution) and, with ``wide``, of the Gamma = 0.1 M
    benchmark (the Breit-Wigner in M2, scale M Gamma = 0.1 M^2, folded with the same resolution)."""
    import hist

    from belle_rare.stats.synthetic import book, write_run_output

    cfg = zs.load_scan_config()
    # 0.1 GeV^2 x 15 deg bins (the processor's: 0.05 x 5): a quarter of the fits' cost, peaks still resolved
    edges = np.linspace(-0.5, 81.0, 816)
    mid = 0.5 * (edges[1:] + edges[:-1])
    hists = {}
    h = book(hists, cfg.scan.histogram, hist.axis.Regular(815, -0.5, 81.0, name="m2"),
             hist.axis.Regular(12, 0.0, 180.0, name="theta"), systematics=False)
    for region in ("selected", "classified"):
        h.set_bins("tautau_mumu", zs.CHANNEL, region, np.full((815, 12), 6.0), np.full((815, 12), 6.0))
    datasets = {"tautau_mumu": {"kind": "background", "process": "tautau_mumu", "max_event_weight": 1.0}}
    models = [("sig_zprime", 0.0)] + ([("sig_zprime_wide", 0.1)] if wide else [])
    for process, width in models:
        for m, resolution in ((3.0, 0.27), (6.0, 0.24)):
            gauss = np.exp(-0.5 * (np.arange(-20, 21) * 0.1 / resolution) ** 2)
            peak = np.exp(-0.5 * ((mid - m**2) / resolution) ** 2) if width == 0 else \
                np.convolve(1.0 / (1.0 + ((mid - m**2) / (width * m**2)) ** 2), gauss / gauss.sum(), mode="same")
            sig = np.repeat((4000 * peak / peak.sum() / 12)[:, None], 12, axis=1)
            name = f"{process}_m{m:g}"
            for region in ("selected", "classified"):
                h.set_bins(name, zs.CHANNEL, region, sig, sig * 1e-3)
            datasets[name] = {"kind": "signal", "process": process, "parameters": {"mass": m}, "cross_section_nb": 1e-5}
    write_run_output(tmp_path, "zprime", "belle2", 79.7, datasets, hists)


def _no_toys() -> zs.ScanConfig:
    cfg = zs.load_scan_config()
    return cfg.model_copy(update={"background_estimate": "plain", "scan": cfg.scan.model_copy(update={"theta_rebin": 1}),
                                  "look_elsewhere": cfg.look_elsewhere.model_copy(update={"toys": 0}),
                                  "background_toys": cfg.background_toys.model_copy(update={"toys": 0})})


def test_the_wide_width_benchmark_is_scanned_on_its_own_samples(tmp_path):
    """The paper's Gamma = 0.1 M benchmark: the main scan takes the negligible-width samples only (the wide ones
    share the name prefix), the benchmark scan its own, with wider windows (its core width) and hence weaker
    limits on the same flat background, g' in the fully invisible model only; both overlaid in the main plots."""
    import json

    _benchmark_run(tmp_path)
    zs.limit("zprime", tmp_path, cfg=_no_toys())
    main = json.loads((tmp_path / "zprime" / "limits.json").read_text())
    wide = json.loads((tmp_path / "zprime" / "wide_width" / "limits.json").read_text())
    assert set(main["signal_samples"]) == {"sig_zprime_m3", "sig_zprime_m6"}
    assert set(wide["signal_samples"]) == {"sig_zprime_wide_m3", "sig_zprime_wide_m6"}
    assert main["signal_model"] == "negligible width" and wide["signal_model"].startswith("Gamma = 0.1 M_Z'")
    resolution = get_search("zprime").load_config().paper_m2_resolution
    for m in (3.0, 6.0):
        narrow = main["signal_samples"][f"sig_zprime_m{m:g}"]
        wide_sample = wide["signal_samples"][f"sig_zprime_wide_m{m:g}"]
        # the narrow peak's fitted core; the wide one's from the model: M^2 and hypot(resolution, M Gamma), Gamma = 0.1 M
        assert narrow["m2_sigma"] == pytest.approx(0.27 if m == 3.0 else 0.24, rel=0.05)
        assert wide_sample["m2_peak"] == m**2
        assert wide_sample["m2_sigma"] == pytest.approx(np.hypot(resolution[m], 0.1 * m**2), rel=1e-12)
    assert set(wide["couplings"]) == {"fully_invisible"} and set(main["couplings"]) == {"vanilla", "fully_invisible"}
    narrow_table = read_scan_table(tmp_path / "zprime" / "scan.parquet").frame
    wide_table = read_scan_table(tmp_path / "zprime" / "wide_width" / "scan.parquet").frame
    assert len(wide_table) < len(narrow_table) / 2            # hypotheses one core width apart
    at = np.interp(4.0, wide_table["mass"], wide_table["expected"]), np.interp(4.0, narrow_table["mass"], narrow_table["expected"])
    assert at[0] > 1.5 * at[1]                                 # more background under a wider peak, less signal inside
    summary = main["benchmarks"]["wide_width"]
    assert summary["best_expected"] == pytest.approx(wide_table["expected"].min())
    assert summary["limits_json"] == "wide_width/limits.json"
    assert (tmp_path / "zprime" / "plots" / "limit_sigma_benchmarks.png").is_file()
    assert "coupling_observed_vanilla" not in wide_table.columns


def test_a_run_without_the_benchmark_samples_scans_the_main_model_and_says_so(tmp_path):
    _benchmark_run(tmp_path, wide=False)
    zs.limit("zprime", tmp_path, cfg=_no_toys(), make_plots=False)
    import json

    main = json.loads((tmp_path / "zprime" / "limits.json").read_text())
    assert main["benchmarks"] == {} and not (tmp_path / "zprime" / "wide_width").exists()
    assert any(n.startswith("benchmark sig_zprime_wide not scanned") for n in main["notes"])
    # the old key of the signal process still loads
    old = zs.ScanConfig.model_validate({**_no_toys().model_dump(exclude={"signal_process"}), "signal_prefix": "sig_zprime"})
    assert old.signal_process == "sig_zprime"
