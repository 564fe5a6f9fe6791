"""taulphi's working point on the background the limit uses (issue 11; benchmarks/taulphi_working_point.py
--limit-background): a dataset with >= min_background_events effective events in the window is counted there,
one without is counted in the (M_tau, dE) plane x the window's share, and the Punzi choice sees that background."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from belle_rare.processors import bdt

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from taulphi_working_point import limit_background, window_share  # noqa: E402

FOLDS = 3


def _part(rng: np.random.Generator) -> dict:
    """Two background datasets in the e phi channel: 'tautau' with 200 window events (low scores), 'charm' with
    none in the window but 400 in the plane, heavy and spread up to score 1; 1000 signal events at high score."""
    n_tt, n_cc = 200, 400
    score = np.concatenate([rng.uniform(0.0, 0.5, n_tt), rng.uniform(0.0, 1.0, n_cc)])
    return {
        "bkg_all": score, "bkg_w_all": np.concatenate([np.full(n_tt, 0.01), np.full(n_cc, 1.0)]),
        "bkg_event": np.arange(n_tt + n_cc), "bkg_group": np.repeat([0, 1], [n_tt, n_cc]),
        "bkg_in_window": np.repeat([True, False], [n_tt, n_cc]), "bkg_in_plane": np.ones(n_tt + n_cc, bool),
        "groups": [("tautau", "ephi"), ("charm", "ephi")],
        "sig": rng.uniform(0.6, 1.0, 1000), "sig_event": np.arange(1000), "n_signal": 1000,
    }


def test_window_share_is_the_stats_config():
    share = window_share()
    assert share["ephi"] == pytest.approx(0.1125) and share["muphi"] == pytest.approx(0.07706)


def test_each_dataset_counted_where_the_limit_takes_it():
    part, share = _part(np.random.default_rng(1)), {"ephi": 0.1, "muphi": 0.1}
    half = limit_background(part, 0, FOLDS, 10, share)
    src = half["source"]
    assert src["tautau/ephi"]["region"] == "window" and src["charm/ephi"]["region"] == "plane x share"
    even = (part["bkg_event"] // FOLDS) % 2 == 0
    # the charm plane x share x 2 (one half), the tau pairs' window x 2
    assert src["charm/ephi"]["weight"] == pytest.approx(2 * 0.1 * (even & (part["bkg_group"] == 1)).sum())
    assert src["tautau/ephi"]["weight"] == pytest.approx(2 * 0.01 * (even & (part["bkg_group"] == 0)).sum())
    assert half["sig_w"].sum() == pytest.approx(2 * ((part["sig_event"] // FOLDS) % 2 == 0).sum())


def test_punzi_cut_moves_once_the_plane_background_is_counted():
    """Window only: B is the tau pairs below 0.5, so no cut is needed; with charm's plane the cut rises above 0.5."""
    part = _part(np.random.default_rng(2))
    half = limit_background(part, 0, FOLDS, 10, {"ephi": 0.1, "muphi": 0.1})
    window = part["bkg_in_window"] & ((part["bkg_event"] // FOLDS) % 2 == 0)
    wp_window = bdt.punzi_working_point(half["sig"], half["sig_w"], 1000, part["bkg_all"][window],
                                        2 * part["bkg_w_all"][window], a=3.0, min_background_events=10)
    wp_limit = bdt.punzi_working_point(half["sig"], half["sig_w"], 1000, half["bkg"], half["bkg_w"], a=3.0,
                                       min_background_events=10)
    assert wp_window["cut"] < 0.5 < wp_limit["cut"]
    assert wp_limit["background_events_above_cut"] >= 10
