"""zprime's factorised after-classifier background (analyses/zprime_background.py) on synthetic events:
unbiased with honest errors against the truth, closure against the plain count where that has statistics,
the plain fallback, and the scan's wiring (background_estimate: factorised, limits.json's record)."""

from __future__ import annotations

import numpy as np
import pytest

from belle_rare.analyses import zprime_background as zb
from belle_rare.analyses import zprime_scan as zs

EDGES = np.linspace(-0.5, 81.0, 1631)
MID = 0.5 * (EDGES[1:] + EDGES[:-1])
WEIGHT = 40.0
FIRST = np.array([200, 500, 800, 1100, 1400])     # windows of 20 bins (1 GeV^2)
WIDTH = np.full(5, 20)
LADDER = [1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, np.inf]   # GeV^2 each side, as configs/stats/zprime.yaml


def _density() -> np.ndarray:
    """Expected pre-cut simulated events per bin (falling spectrum) and the true pass probability per bin."""
    events = 2.0 * np.exp(-MID / 40.0)
    eps = 0.02 + 0.002 * MID      # the classifier keeps more at high recoil mass, smoothly
    return events, eps


def _toy(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """One simulated sample: pre-cut counts per bin (Poisson) and the binomial after-cut subset, weight WEIGHT."""
    events, eps = _density()
    pre = rng.poisson(events)
    post = rng.binomial(pre, eps)
    return WEIGHT * pre, WEIGHT**2 * pre, WEIGHT * post, WEIGHT**2 * post


def _window(x: np.ndarray) -> np.ndarray:
    return np.array([x[f:f + w].sum() for f, w in zip(FIRST, WIDTH)])


def test_factorised_estimate_is_unbiased_and_its_errors_cover_the_truth():
    """200 toys where the plain after-cut window holds ~0.5-3 simulated events (often none): the estimate's
    mean is the truth within 8 % in every window and +-1 sigma covers the truth in ~68 % of the toys."""
    events, eps = _density()
    truth = WEIGHT * _window(events * eps)
    rng = np.random.default_rng(7)
    ratio, covered, plain_empty = [], [], 0
    for _ in range(200):   # a loop over toys, each vectorised over windows
        s, sv, c, cv = _toy(rng)
        pf = zb.sideband_pass_fraction(s, sv, c, cv, EDGES, FIRST, WIDTH, LADDER, 10.0, one_event_weight=WEIGHT)
        est, var = _window(s) * pf.eps, _window(sv) * pf.eps**2 + _window(s) ** 2 * pf.var
        ratio.append(est / truth)
        covered.append(np.abs(est - truth) < np.sqrt(var))
        plain_empty += int(np.sum(_window(c) == 0))
    assert plain_empty > 50                              # the plain count is often empty: the point of factorising
    assert np.all(np.abs(np.mean(ratio, axis=0) - 1.0) < 0.08)
    coverage = np.mean(covered, axis=0)
    assert np.all((coverage > 0.58) & (coverage < 0.80)), coverage


def test_closure_pulls_against_a_plain_count_with_statistics():
    """With 50x the statistics the plain after-cut windows hold 50-250 events: factorised and plain agree,
    the closure pulls (shared window events accounted for) are N(0, 1)."""
    events, eps = _density()
    rng = np.random.default_rng(11)
    pulls = []
    for _ in range(200):
        pre = rng.poisson(50 * events)
        post = rng.binomial(pre, eps)
        s, sv, c, cv = WEIGHT * pre, WEIGHT**2 * pre, WEIGHT * post, WEIGHT**2 * post
        pf = zb.sideband_pass_fraction(s, sv, c, cv, EDGES, FIRST, WIDTH, [1.0, 2.0, np.inf], 10.0)
        assert np.all(pf.sideband_width == 1.0)           # the narrowest sidebands suffice
        pulls.append(zb.closure_pulls(_window(s), _window(sv), _window(c), _window(cv), pf))
    pulls = np.array(pulls)
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.25) and np.all(np.abs(pulls.std(axis=0) - 1.0) < 0.2)


def test_a_step_in_the_pass_fraction_fails_the_closure():
    """The closure can fail: a pass fraction that jumps x10 at the window's edge biases the sidebands."""
    events, _ = _density()
    eps = np.where(MID < EDGES[500], 0.01, 0.1)
    rng = np.random.default_rng(3)
    pre = rng.poisson(50 * events)
    post = rng.binomial(pre, eps)
    s, sv, c, cv = WEIGHT * pre, WEIGHT**2 * pre, WEIGHT * post, WEIGHT**2 * post
    pf = zb.sideband_pass_fraction(s, sv, c, cv, EDGES, FIRST[1:2], WIDTH[1:2], [4.0], 10.0)
    pull = zb.closure_pulls(_window(s)[1:2], _window(sv)[1:2], _window(c)[1:2], _window(cv)[1:2], pf)
    assert abs(pull[0]) > 5


def test_exclusion_systematic_and_the_one_event_bound():
    s = np.zeros(len(MID)); c = np.zeros(len(MID))
    s[:20] = 1000.0; c[:20] = 1.0          # a peak the classifier nearly removes, never a sideband
    s[100:400] = 10.0; c[100:400] = 5.0    # eps = 0.5 elsewhere
    first, width = np.array([200]), np.array([20])
    pf = zb.sideband_pass_fraction(s, s * 10, c, c * 10, EDGES, first, width, [np.inf], 10.0, exclude=(-0.5, 0.5))
    assert pf.eps[0] == pytest.approx(0.5)
    pf_sys = zb.sideband_pass_fraction(s, s * 10, c, c * 10, EDGES, first, width, [np.inf], 10.0, exclude=(-0.5, 0.5),
                                       relative_systematic=0.25)
    assert pf_sys.var[0] == pytest.approx(pf.var[0] + (0.25 * 0.5) ** 2)
    # no event after the cut in any sideband: eps is the one-event bound, +-100 %
    none = zb.sideband_pass_fraction(s, s * 10, 0 * c, 0 * c, EDGES, first, width, [np.inf], 10.0, one_event_weight=10.0)
    assert none.eps[0] == pytest.approx(10.0 / (s.sum() - s[200:220].sum())) and none.var[0] == pytest.approx(none.eps[0] ** 2)


def test_plain_count_kept_where_it_has_statistics():
    before = np.full((2, 3, 2), 100.0)
    after = np.full((2, 3, 2), 7.0)
    pf = zb.PassFraction(np.array([0.1, 0.1]), np.array([1e-4, 1e-4]), np.array([20.0, 20.0]), np.array([1.0, 1.0]))
    est = zb.factorised_window(before, before, after, after, np.array([42.0, 3.0]), pf, 10.0)
    assert list(est.factorised) == [False, True]
    assert np.allclose(est.values[0], 7.0) and np.allclose(est.values[1], 10.0)
    assert np.allclose(est.variances[1], 100.0 * 0.01 + 100.0**2 * 1e-4)
    forced = zb.factorised_window(before, before, after, after, np.array([42.0, 3.0]), pf, 10.0, np.array([False, True]))
    assert not forced.factorised.any()


def test_scan_uses_the_factorised_background_and_says_where(tmp_path):
    """A synthetic run (regions selected / classified, one signal, one background whose after-cut windows are
    nearly empty): the factorised scan's window background follows pre-cut x eps, limits.json lists the
    factorised windows, and the plain setting reproduces the plain count."""
    import hist

    from belle_rare.stats.synthetic import book, write_run_output

    rng = np.random.default_rng(5)
    cfg = zs.load_scan_config()
    n_theta = 36
    hists = {}
    h = book(hists, cfg.scan.histogram, hist.axis.Regular(1630, -0.5, 81.0, name="m2"),
             hist.axis.Regular(n_theta, 0.0, 180.0, name="theta"), systematics=False)
    events, eps = _density()
    pre = rng.poisson(np.repeat((events / n_theta)[:, None], n_theta, axis=1))
    post = rng.binomial(pre, eps[:, None])
    h.set_bins("tautau_mumu", zs.CHANNEL, "selected", WEIGHT * pre, WEIGHT**2 * pre)
    h.set_bins("tautau_mumu", zs.CHANNEL, "classified", WEIGHT * post, WEIGHT**2 * post)
    datasets = {"tautau_mumu": {"kind": "background", "process": "tautau_mumu", "max_event_weight": WEIGHT}}
    for m, s in ((3.0, 0.27), (5.0, 0.24)):
        sig = np.exp(-0.5 * ((MID - m**2) / s) ** 2)
        sig = np.repeat((2000 * sig / sig.sum() / n_theta)[:, None], n_theta, axis=1)
        name = f"sig_zprime_m{m:g}"
        for region in ("selected", "classified"):
            h.set_bins(name, zs.CHANNEL, region, sig, sig * 1e-3)
        datasets[name] = {"kind": "signal", "parameters": {"mass": m}, "cross_section_nb": 1e-6}
    write_run_output(tmp_path, "zprime", "belle2", 79.7, datasets, hists)
    fast = cfg.model_copy(update={"look_elsewhere": cfg.look_elsewhere.model_copy(update={"toys": 0}),
                                  "background_toys": cfg.background_toys.model_copy(update={"toys": 0})})
    table, doc = zs.compute(tmp_path, cfg=fast)
    rec = doc["background_estimate"]
    assert rec["method"] == "factorised"
    assert rec["datasets"]["tautau_mumu"]["factorised_windows"] == len(table)   # 0-25 simulated events after the cut
    f = table.frame
    m2 = f["mass"].to_numpy() ** 2
    # the truth: events x eps x WEIGHT per bin over the window (+-2 sigma)
    half = 2 * f["m2_sigma"].to_numpy()
    truth = np.array([np.sum((WEIGHT * events * eps)[(MID > a - h_) & (MID < a + h_)]) for a, h_ in zip(m2, half)])
    assert np.all(f["mc_bound_events"] == 0)          # ~30 pre-cut events in every window: nothing is empty
    got = f["window_background"].to_numpy()
    # ~30 pre-cut events per window (+-20 %, windows overlap): each within 60 %, on average within 10 %
    assert np.all(np.abs(got / truth - 1) < 0.6) and abs(np.mean(got / truth) - 1) < 0.1, np.mean(got / truth)
    plain_cfg = fast.model_copy(update={"background_estimate": "plain"})
    table_p, doc_p = zs.compute(tmp_path, cfg=plain_cfg)
    assert doc_p["background_estimate"] == {"method": "plain"}
    np.testing.assert_allclose(table_p.frame["window_background_plain"], f["window_background_plain"])


def test_sidebands_classified_at_the_window_hypothesis():
    """With the processor's m2_pass, a window near trained mass j takes its sidebands' pass fraction at j's working
    point (here 0.1 at 2 GeV, 0.3 at 3 GeV for every event), not the nearest-mass mixture of region classified."""
    events, _ = _density()
    s = 1000.0 * events
    after_nearest = np.where(MID < 6.25, 0.1, 0.3) * s        # region classified: steps at the midpoint 2.5 GeV
    passes = np.stack([0.1 * s, 0.3 * s])                      # every event at 2 GeV's and at 3 GeV's working point
    zeros = np.zeros((2, 2))
    fi = zs.FactorInputs(zeros, zeros, zeros, after_nearest, after_nearest, s, s, np.array([2.0, 3.0]), passes, passes)
    masses = np.array([2.0, 2.45, 2.55, 3.0])
    first = np.searchsorted(EDGES, masses**2 - 0.5) - 1
    p = zs.Plan(masses, np.zeros(4, int), masses**2, np.full(4, 0.25), np.full(4, 0.2), first, np.full(4, 20))
    f = zs.Factorised(sideband_widths=[4.0])
    pf = zs.sideband_pass_fraction(fi, EDGES, p, f)
    np.testing.assert_allclose(pf.eps, [0.1, 0.1, 0.3, 0.3])
    plain = zs.sideband_pass_fraction(zs.FactorInputs(zeros, zeros, zeros, after_nearest, after_nearest, s, s), EDGES, p, f)
    assert 0.1 < plain.eps[1] < 0.3 and 0.1 < plain.eps[2] < 0.3   # the mixture across the step
