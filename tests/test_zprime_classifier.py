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
