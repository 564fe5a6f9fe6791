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


# ---------------------------------------------------------------------------------------------------------
# the shipped model: per-mass working points, and the cut the processor applies

MODEL_NAME = "zprime"
MODEL_FEATURES = [*FEATURES, MASS_FEATURE]


def nearest_mass(m2_recoil: np.ndarray, masses: Sequence[float]) -> np.ndarray:
    """Index of the trained mass nearest each event's recoil mass sqrt(max(M2_recoil, 0)).

    The processor classifies an event at that one hypothesis: the trained windows (M^2 +- 2 sigma) are
    centred on the trained masses, so an event inside a window is classified as that window's training
    rows were; an event between windows takes its nearer neighbour."""
    grid = np.asarray(masses, float)
    m = np.sqrt(np.clip(np.asarray(m2_recoil, float), 0.0, None))
    right = np.clip(np.searchsorted(grid, m), 1, len(grid) - 1)
    left = right - 1
    return np.where(np.abs(m - grid[left]) <= np.abs(grid[right] - m), left, right) if len(grid) > 1 else np.zeros(len(m), int)


@dataclass
class ClassifierCut:
    """The shipped k-fold model with its per-mass Punzi working points (``cuts[i]`` at ``masses[i]``)."""

    model: bdt.KFoldModel
    masses: np.ndarray
    cuts: np.ndarray

    @classmethod
    def from_model(cls, model: bdt.KFoldModel) -> "ClassifierCut":
        points = model.meta.get("working_points")
        if not points:
            raise bdt.ModelArtefactError("zprime model metadata has no per-mass working_points")
        masses = sorted(float(m) for m in points)
        return cls(model, np.array(masses), np.array([points[_key(m)]["cut"] for m in masses]))

    def scores(self, columns: Mapping[str, np.ndarray], event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(score, index of the mass hypothesis) of each event, classified at its nearest trained mass."""
        idx = nearest_mass(columns["m2_recoil"], self.masses)
        X = np.column_stack([np.asarray(columns[f], float) for f in FEATURES] + [self.masses[idx]])
        return self.model.score(np.nan_to_num(X, nan=-999.0), event), idx

    def passes_at_every_mass(self, columns: Mapping[str, np.ndarray], event: np.ndarray) -> np.ndarray:
        """(n, J): each event classified at every trained mass j, passing that mass's working point (the
        factorised background's sidebands, classified at the window's own hypothesis)."""
        n, j = len(event), len(self.masses)
        if n == 0:
            return np.zeros((0, j), bool)
        base = np.column_stack([np.asarray(columns[f], float) for f in FEATURES])
        X = np.column_stack([np.tile(base, (j, 1)), np.repeat(self.masses, n)])   # mass-major rows
        score = self.model.score(np.nan_to_num(X, nan=-999.0), np.tile(np.asarray(event), j)).reshape(j, n).T
        return score > self.cuts[None, :]

    def passes(self, columns: Mapping[str, np.ndarray], event: np.ndarray) -> np.ndarray:
        """True for events whose score passes the working point of their mass hypothesis."""
        if len(event) == 0:
            return np.zeros(0, bool)
        score, idx = self.scores(columns, event)
        return score > self.cuts[idx]

    def passes_with_every_mass(self, columns: Mapping[str, np.ndarray], event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(passes, passes_at_every_mass)`` from one classification per event and mass: ``passes`` is the
        column of each event's nearest trained mass (a row's score does not depend on the other rows)."""
        every = self.passes_at_every_mass(columns, event)
        return every[np.arange(len(event)), nearest_mass(columns["m2_recoil"], self.masses)], every


def _key(mass: float) -> str:
    """The metadata key of a trained mass (JSON keys are strings)."""
    return f"{float(mass):g}"


def choosing_half(event: np.ndarray, folds: int) -> np.ndarray:
    """The events the working points are chosen on, ``(__event__ // folds) % 2 == 0`` (as belle-rare train):
    independent of the fold key, so the other half quotes efficiency and background without the choice's bias."""
    return (np.asarray(event, np.int64) // folds) % 2 == 0


def chosen_and_quoted(table: TrainingTable, scores: np.ndarray, signal_totals: Mapping[float, float], folds: int,
                      a: float = 3.0, min_background_events: int = 0) -> dict[str, dict[str, float]]:
    """Per mass: the Punzi working point chosen on one half of the out-of-fold scores (sums x 2) and its
    efficiency / background quoted on the other half; also the efficiency and background without the cut."""
    choose = choosing_half(table.event, folds)
    out: dict[str, dict[str, float]] = {}
    for mass, total in sorted(signal_totals.items()):
        sig = (table.y == 1) & (table.mass == mass)
        bkg = (table.y == 0) & (table.mass == mass)
        wp = bdt.punzi_working_point(scores[sig & choose], 2 * table.weight[sig & choose], total, scores[bkg & choose],
                                     2 * table.weight[bkg & choose], a=a, min_background_events=min_background_events // 2)
        other_s, other_b = sig & ~choose, bkg & ~choose
        above = scores > wp["cut"]
        out[_key(mass)] = {**wp,
                           "quoted_efficiency": float(2 * table.weight[other_s & above].sum() / total),
                           "quoted_background": float(2 * table.weight[other_b & above].sum()),
                           "quoted_background_events": int((other_b & above).sum()),
                           "efficiency_before": float(table.weight[sig].sum() / total),
                           "background_before": float(table.weight[bkg].sum()),
                           "background_events_before": int(bkg.sum())}
    return out


# ---------------------------------------------------------------------------------------------------------
# working points on a factorised background (the window count before the cut x the pass fraction in sidebands)


@dataclass(frozen=True)
class BackgroundEvents:
    """Every selected background event once (not once per window, as in ``TrainingTable``): the classifier
    inputs, M2_recoil, weight at the search luminosity, event number (folds) and its process."""

    X: np.ndarray         # (n, len(FEATURES))
    m2: np.ndarray
    weight: np.ndarray
    event: np.ndarray
    process: np.ndarray   # (n,) process name of each event

    @classmethod
    def of(cls, parts: Mapping[str, Mapping[str, np.ndarray]]) -> "BackgroundEvents":
        """From ``classifier_inputs`` columns per process (weights already at the search luminosity)."""
        names = list(parts)
        cols = [parts[n] for n in names]
        X = np.concatenate([np.column_stack([np.asarray(c[f], float) for f in FEATURES]) for c in cols]) if cols else np.zeros((0, len(FEATURES)))
        cat = lambda key, dtype: np.concatenate([np.asarray(c[key], dtype) for c in cols]) if cols else np.zeros(0, dtype)  # noqa: E731
        process = np.concatenate([np.full(len(np.asarray(c["m2_recoil"])), n, dtype=object) for n, c in zip(names, cols)]) if cols else np.zeros(0, object)
        return cls(X.reshape(-1, len(FEATURES)), cat("m2_recoil", float), cat("weight", float), cat("event", np.int64), process)


def factorised_background(score: np.ndarray, bkg: BackgroundEvents, window: tuple[float, float], cuts: np.ndarray,
                          half_width: float, use: np.ndarray, exclude: Mapping[str, tuple[float, float]] | None = None
                          ) -> np.ndarray:
    """B(cut) in ``window``: per process, its window yield before the cut x its pass fraction eps(cut) among the
    ``use`` events within ``half_width`` GeV^2 of the window centre (window included; a process's ``exclude`` M2
    range left out, unless the window overlaps it: then the window alone), summed over processes.

    A window holding 50-150 simulated events cannot measure a cut that keeps 1 % of them: the sidebands hold
    8 x more at 4 GeV^2 and the pass fraction of a smooth background (tau pairs, e e mu mu) varies slowly with M2
    (the scan's own factorised estimate, analyses/zprime_background.py). eps is never below one sideband event's
    weight over the sideband total (no cut is credited with more rejection than the sample can show);
    a process without sideband events keeps its whole window (eps = 1). ``score``: each event's score at the
    window's mass hypothesis."""
    lo, hi = window
    centre = 0.5 * (lo + hi)
    inside = (bkg.m2 > lo) & (bkg.m2 < hi)
    near = np.abs(bkg.m2 - centre) < half_width
    total = np.zeros(len(cuts))
    for process in np.unique(bkg.process):   # a loop over the few background processes
        mine = bkg.process == process
        n_window = bkg.weight[mine & inside].sum()
        if n_window <= 0:
            continue
        side = mine & use & near
        ex = (exclude or {}).get(str(process))
        if ex is not None:
            if ex[0] < hi and lo < ex[1]:
                side = mine & use & inside
            else:
                side = side & ~((bkg.m2 > ex[0]) & (bkg.m2 < ex[1]))
        w_side = bkg.weight[side]
        if w_side.sum() <= 0:
            total += n_window
            continue
        passed = bdt._weight_above(score[side], w_side, cuts)
        total += n_window * np.maximum(passed, w_side.mean()) / w_side.sum()
    return total


def factorised_working_points(model: bdt.KFoldModel, table: TrainingTable, scores: np.ndarray, bkg: BackgroundEvents,
                              windows: np.ndarray, signal_totals: Mapping[float, float], folds: int, a: float = 3.0,
                              half_width: float = 4.0, exclude: Mapping[str, tuple[float, float]] | None = None
                              ) -> dict[str, dict[str, float]]:
    """Per trained mass: the Punzi working point (eps_sig / (a/2 + sqrt(B))) with B the factorised background
    (``factorised_background``), chosen on the half ``choosing_half`` and quoted on the other (signal efficiency,
    factorised background, and the plain window count with its simulated events); also the values before the cut.

    The plain-count choice (``chosen_and_quoted``) needs >= 10 simulated background events above the cut in the
    window itself, so at 1e2 simulated events per window it never cuts harder than ~10 % of the background, however
    well the classifier separates: every working point sat on that floor (README zprime limits). Here the sidebands
    measure the tail. Background events are scored at each mass by the boosters that did not train on them."""
    choose_sig = choosing_half(table.event, folds)
    choose_bkg = choosing_half(bkg.event, folds)
    out: dict[str, dict[str, float]] = {}
    for (mass, total), (lo, hi) in zip(sorted(signal_totals.items()), windows):
        sig = (table.y == 1) & (table.mass == mass)
        centre = 0.5 * (lo + hi)
        near = (np.abs(bkg.m2 - centre) < half_width) | ((bkg.m2 > lo) & (bkg.m2 < hi))
        sub = BackgroundEvents(bkg.X[near], bkg.m2[near], bkg.weight[near], bkg.event[near], bkg.process[near])
        score = model.score(np.column_stack([sub.X, np.full(len(sub.m2), mass)]), sub.event) if len(sub.m2) else np.zeros(0)
        cuts = np.unique(np.concatenate([[0.0], scores[sig & choose_sig]]))
        cuts = cuts[np.isfinite(cuts)] - 1e-12
        eps = bdt._weight_above(scores[sig & choose_sig], 2 * table.weight[sig & choose_sig], cuts) / total
        half = choose_bkg[near]
        b = factorised_background(score, sub, (lo, hi), cuts, half_width, half, exclude)
        fom = eps / (a / 2.0 + np.sqrt(b))
        best = int(np.argmax(fom))
        cut = float(cuts[best])
        inside = (sub.m2 > lo) & (sub.m2 < hi)
        above = score > cut
        quoted_b = factorised_background(score, sub, (lo, hi), np.array([cut]), half_width, ~half, exclude)[0]
        other = sig & ~choose_sig
        out[_key(mass)] = {
            "cut": cut, "fom": float(fom[best]), "efficiency": float(eps[best]), "background": float(b[best]), "a": a,
            "background_events_above_cut": int((inside & above & half).sum()),
            "quoted_efficiency": float(2 * table.weight[other & (scores > cut)].sum() / total),
            "quoted_background": float(quoted_b),
            "quoted_background_plain": float(2 * sub.weight[inside & above & ~half].sum()),
            "quoted_background_events": int((inside & above & ~half).sum()),
            "efficiency_before": float(table.weight[sig].sum() / total),
            "background_before": float(sub.weight[inside].sum()),
            "background_events_before": int(inside.sum()),
            "sideband_events": int((np.abs(sub.m2 - centre) < half_width).sum()),
        }
    return out
