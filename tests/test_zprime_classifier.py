"""The mass-parametrised zprime classifier (processors/zprime_classifier.py) on a toy: windows, the
training table, separation, and a Punzi working point per mass."""

from __future__ import annotations

import numpy as np
import pytest

from belle_rare.processors import bdt
from belle_rare.processors import zprime_classifier as zc
from belle_rare.processors.zprime import FEATURES

RESOLUTION = {1.0: 0.3, 3.0: 0.27, 6.0: 0.2}
MASSES = (1.0, 3.0, 6.0)


def _columns(rng: np.random.Generator, n: int, m2: np.ndarray, shift: float, first_event: int, weight: float) -> dict:
    """Toy classifier inputs: the four features Gaussian around ``shift`` (signal 1, background 0)."""
    cols = {f: rng.normal(shift, 1.0, n) for f in FEATURES}
    return {**cols, "m2_recoil": m2, "weight": np.full(n, weight), "event": np.arange(first_event, first_event + n)}


def test_windows_are_two_sigma_around_the_mass_squared():
    w = zc.m2_windows([1.0, 2.0, 6.0], RESOLUTION)
    assert w[0] == pytest.approx([1.0 - 0.6, 1.0 + 0.6])
    assert w[1] == pytest.approx([4.0 - 2 * 0.285, 4.0 + 2 * 0.285])  # sigma interpolated in M
    assert w[2] == pytest.approx([35.6, 36.4])


def test_classifier_separates_and_each_mass_gets_a_punzi_working_point():
    rng = np.random.default_rng(3)
    windows = zc.m2_windows(MASSES, RESOLUTION)
    signals = {m: _columns(rng, 1500, rng.normal(m * m, RESOLUTION[m], 1500), 1.0, 100_000 * (i + 1), 0.01)
               for i, m in enumerate(MASSES)}
    n_bkg = 30_000
    background = _columns(rng, n_bkg, rng.uniform(-0.5, 40.0, n_bkg), 0.0, 0, 1.0)
    table = zc.training_table(signals, background, MASSES, windows)
    # background rows: exactly the events inside each window, tagged with that window's mass
    for mass, (lo, hi) in zip(MASSES, windows):
        inside = np.sum((background["m2_recoil"] > lo) & (background["m2_recoil"] < hi))
        assert np.sum((table.y == 0) & (table.mass == mass)) == inside
        rows = (table.mass == mass)
        assert np.all(table.X[rows, -1] == mass)
    assert table.features == [*FEATURES, zc.MASS_FEATURE]
    model, oof = zc.train(table, bdt.TrainingSettings(folds=2, n_estimators=30))
    assert not np.isnan(oof).any()
    # separation: mean out-of-fold score of signal well above background's (shift of 1 sigma in 4 features)
    assert oof[table.y == 1].mean() > oof[table.y == 0].mean() + 0.3
    totals = {m: 1500 * 0.01 for m in MASSES}
    points = zc.working_points(table, oof, totals)
    assert set(points) == set(MASSES)
    for mass, wp in points.items():
        assert 0.0 < wp["efficiency"] <= 1.0 and 0.0 < wp["cut"] < 1.0
        # the chosen cut beats no cut in the figure of merit
        sig = (table.y == 1) & (table.mass == mass)
        bkg = (table.y == 0) & (table.mass == mass)
        fom_none = table.weight[sig].sum() / totals[mass] / (1.5 + np.sqrt(table.weight[bkg].sum()))
        assert wp["fom"] >= fom_none


def test_nearest_mass_picks_the_trained_mass_nearest_the_recoil_mass():
    grid = [0.5, 1.0, 3.0]
    m2 = np.array([-0.3, 0.0, 0.49, 0.5, 0.7**2, 0.8**2, 1.9**2, 2.1**2, 100.0])
    assert zc.nearest_mass(m2, grid).tolist() == [0, 0, 0, 0, 0, 1, 1, 2, 2]


def test_shipped_form_round_trip_and_working_points_on_independent_halves(tmp_path):
    """Working points chosen on one half, quoted on the other; saved, loaded and applied as the processor does."""
    rng = np.random.default_rng(5)
    windows = zc.m2_windows(MASSES, RESOLUTION)
    signals = {m: _columns(rng, 1500, rng.normal(m * m, RESOLUTION[m], 1500), 1.0, 100_000 * (i + 1), 0.01)
               for i, m in enumerate(MASSES)}
    background = _columns(rng, 30_000, rng.uniform(-0.5, 40.0, 30_000), 0.0, 0, 1.0)
    table = zc.training_table(signals, background, MASSES, windows)
    model, oof = zc.train(table, bdt.TrainingSettings(folds=2, n_estimators=30))
    totals = {m: 15.0 for m in MASSES}
    points = zc.chosen_and_quoted(table, oof, totals, folds=2, min_background_events=20)
    assert list(points) == ["1", "3", "6"]
    for mass, wp in zip(MASSES, points.values()):
        # the quoted half is independent: its efficiency agrees with the choosing half's within the statistics
        assert abs(wp["quoted_efficiency"] - wp["efficiency"]) < 0.1
        assert wp["quoted_efficiency"] < wp["efficiency_before"] and wp["quoted_background"] < wp["background_before"]
        assert wp["background_events_above_cut"] >= 10  # min_background_events // 2 on the choosing half
    bdt.save_model(model, zc.MODEL_NAME, "belle2", {"working_points": points}, tmp_path)
    cut = zc.ClassifierCut.from_model(bdt.load_model(zc.MODEL_NAME, "belle2", zc.MODEL_FEATURES, tmp_path))
    assert cut.masses.tolist() == list(MASSES)
    sig = signals[3.0]
    passed = cut.passes(sig, sig["event"])
    # applied event by event at the nearest trained mass, the pass rate of the 3 GeV signal inside its window
    # reproduces the working point's efficiency within its window (same events, same out-of-fold boosters)
    inside = (sig["m2_recoil"] > windows[1][0]) & (sig["m2_recoil"] < windows[1][1])
    eff = passed[inside].sum() * 0.01 / 15.0
    assert eff == pytest.approx(0.5 * (points["3"]["efficiency"] + points["3"]["quoted_efficiency"]), abs=1e-9)
    with pytest.raises(bdt.ModelArtefactError):
        zc.ClassifierCut.from_model(bdt.KFoldModel(zc.MODEL_FEATURES, model.boosters, {}))
