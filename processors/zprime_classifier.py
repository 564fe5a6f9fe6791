"""One classifier for every Z' mass, with a Punzi working point per mass (issue 14, item 3).

The paper trains one network over all masses (the Punzi-net, arXiv:2110.00810: its inputs are
``zprime.FEATURES``, each mass hypothesis seeing the events inside its M2_recoil window of +-2 sigma,
feichtip/punzinet src/punzinet/prepare.py). Here: gradient-boosted trees (xgboost, the k-fold machinery of
``processors/bdt.py``) on the same four inputs plus the mass hypothesis, so that one model serves every
mass (a mass-parametrised classifier): a signal event enters with its own mass, inside its own window;
a background event enters once for every window its M2_recoil falls in, with that window's mass. The
working point of each mass maximises the Punzi figure of merit eps / (a/2 + sqrt(B)) over that mass's
window (``bdt.punzi_working_point``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from belle_rare.processors import bdt
from belle_rare.processors.zprime import FEATURES

MASS_FEATURE = "mass_hypothesis"
WINDOW_SIGMAS = 2.0  # the Punzi-net's windows: M^2 +- 2 sigma(M2_recoil) (punzinet prepare.py, n_sigma=2)


def m2_windows(masses: Sequence[float], resolution: Mapping[float, float], n_sigma: float = WINDOW_SIGMAS) -> np.ndarray:
    """(low, high) M2_recoil windows (GeV^2), ``(k, 2)``: M^2 +- n_sigma sigma(M2), sigma interpolated in M
    from ``resolution`` (M_Z' GeV -> sigma(M2_recoil) GeV^2)."""
    m = np.asarray(masses, dtype=float)
    table = sorted(resolution.items())
    sigma = np.interp(m, [k for k, _ in table], [v for _, v in table])
    return np.column_stack([m**2 - n_sigma * sigma, m**2 + n_sigma * sigma])


@dataclass(frozen=True)
class TrainingTable:
    """Rows of (features, mass hypothesis): label, weight, event number (folds), the row's mass."""

    X: np.ndarray
    y: np.ndarray
    weight: np.ndarray
    event: np.ndarray
    mass: np.ndarray

    @property
    def features(self) -> list[str]:
        return [*FEATURES, MASS_FEATURE]


def _rows(columns: Mapping[str, np.ndarray], keep: np.ndarray, mass: float) -> tuple[np.ndarray, ...]:
    x = np.column_stack([np.asarray(columns[f], float)[keep] for f in FEATURES] + [np.full(int(keep.sum()), mass)])
    return x, np.asarray(columns["weight"], float)[keep], np.asarray(columns["event"])[keep]


def training_table(signals: Mapping[float, Mapping[str, np.ndarray]], background: Mapping[str, np.ndarray],
                   masses: Sequence[float], windows: np.ndarray) -> TrainingTable:
    """Signal (mass -> ``classifier_inputs`` columns) and background columns into one table (see the module docstring)."""
    parts: list[tuple[np.ndarray, ...]] = []
    for mass, (lo, hi) in zip(masses, windows):
        for label, cols in ((1, signals.get(mass)), (0, background)):
            if cols is None:
                continue
            m2 = np.asarray(cols["m2_recoil"], float)
            x, w, ev = _rows(cols, (m2 > lo) & (m2 < hi), mass)
            parts.append((x, np.full(len(w), label), w, ev, np.full(len(w), mass)))
    X, y, w, ev, m = (np.concatenate([p[i] for p in parts]) for i in range(5))
    return TrainingTable(X.reshape(-1, len(FEATURES) + 1), y.astype(int), w, ev.astype(np.int64), m)


def train(table: TrainingTable, settings: bdt.TrainingSettings = bdt.TrainingSettings()) -> tuple[bdt.KFoldModel, np.ndarray]:
    """The k-fold boosters and the out-of-fold scores of every row.

    Signal weights are rescaled so every mass carries the same total (the background keeps its
    physical weights); ``bdt.train_fold`` then balances the two classes."""
    for label, what in ((1, "signal"), (0, "background")):
        if np.sum(table.y == label) < 2 * settings.folds:
            raise ValueError(f"zprime classifier: {np.sum(table.y == label)} {what} events inside the mass windows, "
                             f"too few for {settings.folds} folds (generate larger samples)")
    w = table.weight.copy()
    for mass in np.unique(table.mass):
        sig = (table.y == 1) & (table.mass == mass)
        if w[sig].sum() > 0:
            w[sig] /= w[sig].sum()
    return bdt.train_kfold(table.X, table.y, w, table.event, table.features, settings)


def working_points(table: TrainingTable, scores: np.ndarray, signal_totals: Mapping[float, float],
                   a: float = 3.0, min_background_events: int = 0) -> dict[float, dict[str, float]]:
    """Per mass: the Punzi-optimal cut on the (out-of-fold) score inside that mass's window.

    ``signal_totals``: the weight of all generated signal events of each mass, so that the efficiency
    includes the selection; the background weights are the physical yields at the search luminosity."""
    out = {}
    for mass, total in signal_totals.items():
        sig = (table.y == 1) & (table.mass == mass)
        bkg = (table.y == 0) & (table.mass == mass)
        out[float(mass)] = bdt.punzi_working_point(scores[sig], table.weight[sig], total, scores[bkg], table.weight[bkg],
                                                   a=a, min_background_events=min_background_events)
    return out
