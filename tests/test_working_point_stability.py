"""The stability record of the Punzi working point (analyses/train_command.py ``working_point_stability``):
halves swapped and a bootstrap of the choosing half, on toy scores with a known efficiency."""

from __future__ import annotations

import numpy as np
import pytest

from belle_rare.analyses.train_command import working_point_half, working_point_stability
from belle_rare.processors import bdt


def _toy(n_sig: int, n_bkg: int, bkg_weight: float, seed: int = 1, bkg_beta: float = 8.0) -> dict[str, np.ndarray]:
    """Signal scores ~ Beta(8, 1) (P(score > c) = 1 - c^8), background ~ Beta(1, bkg_beta); one row per event."""
    rng = np.random.default_rng(seed)
    oof = np.concatenate([rng.beta(8, 1, n_sig), rng.beta(1, bkg_beta, n_bkg)])
    sig = np.arange(n_sig + n_bkg) < n_sig
    return {"oof": oof, "sig": sig, "bkg": ~sig, "w": np.where(sig, 1.0, bkg_weight),
            "event": rng.permutation(n_sig + n_bkg), "n_sig": float(n_sig)}


def test_a_well_measured_working_point_is_stable_and_its_quoted_efficiency_unbiased():
    toy = _toy(20000, 20000, 0.05)
    settings = bdt.TrainingSettings(folds=3, seed=11, punzi_a=3.0, min_background_events=10)
    choose = working_point_half(toy["event"], settings.folds)
    out = working_point_stability(toy["oof"], toy["w"], toy["w"], toy["sig"], toy["bkg"], choose, toy["n_sig"], settings,
                                  replicas=40)
    boot = out["bootstrap"]
    lo, mid, hi = boot["cut"]
    assert lo <= mid <= hi and hi - lo < 0.1  # 20k events a side: the optimum moves little
    # the quoted efficiency at the median cut is the toy's 1 - c^8 (each half holds half the signal: x 2 in the sums)
    assert boot["quoted_efficiency"][1] == pytest.approx(1 - mid**8, abs=0.02)
    swap = out["swapped_halves"]
    assert lo - 0.05 <= swap["cut"] <= hi + 0.05
    assert swap["efficiency"] == pytest.approx(1 - swap["cut"] ** 8, abs=0.02)

