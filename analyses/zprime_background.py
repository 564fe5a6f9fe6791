"""zprime's background after the classifier, factorised where the cut empties the simulation (issue 14).

At 79.7 /fb one simulated background event weighs 10^2-10^4 events, and after the classifier's Punzi
working point most mass windows hold 0-20 simulated events of a process: the plain after-cut template
measures such a window's yield to a factor of several, or not at all. The standard remedy (tau3mu's
N_window x eps_BDT) factorises it, per background process and window:

    B_after(window) = B_before(window) x eps(sidebands),
    eps = C / S summed over M2_recoil sidebands around the window (the window itself excluded),

with S the process's pre-classifier (``selected``) yield and C its after-classifier (``classified``)
yield, from the run's histograms. The sidebands are the narrowest of ``widths`` (GeV^2 on each side of
the window) expected to hold ``min_events`` effective simulated events after the cut, so eps is measured where the
classifier's working points (those of the neighbouring trained masses) are close to the window's. The
pre-classifier template keeps its own (M2, theta_recoil) shape. A window where the plain after-cut
count already has ``min_events`` effective events keeps the plain count.

Uncertainties: C is a subset of S, so Var(eps) = [sum_pass w^2 (1 - eps)^2 + sum_fail w^2 eps^2] / S^2 from
the histograms' sums of squared weights; per bin Var(B) = eps^2 Var(B_before) + B_before^2 Var(eps). The
sidebands exclude the window, so the factorised and plain estimates of one window share only the window's
pre-classifier events (``closure_pulls`` accounts for that).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PassFraction:
    """Per window (H,): the classifier pass fraction eps in the sidebands, its variance, the sidebands'
    expected effective after-cut events (pre-cut effective events x the whole range's pass fraction) and
    their half-width outside the window (GeV^2; inf: the whole range)."""

    eps: np.ndarray
    var: np.ndarray
    events_after: np.ndarray
    sideband_width: np.ndarray


def effective_events(total: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """(sum w)^2 / sum w^2: the simulated events a weighted sum is worth (0 where empty)."""
    total, variance = np.asarray(total, float), np.asarray(variance, float)
    return np.where(variance > 0, total**2 / np.where(variance > 0, variance, 1.0), 0.0)


def _window_sums(cumulative: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sum of bins [lo, hi) from a cumulative array with a leading zero."""
    return cumulative[hi] - cumulative[lo]


def sideband_pass_fraction(before: np.ndarray, before_var: np.ndarray, after: np.ndarray, after_var: np.ndarray,
                           m2_edges: np.ndarray, first: np.ndarray, width: np.ndarray, widths: Sequence[float],
                           min_events: float, one_event_weight: float = 0.0, exclude: tuple[float, float] | None = None,
                           relative_systematic: float = 0.0) -> PassFraction:
    """eps = after / before over the sidebands of each window (bins [first, first + width) excluded).

    ``before`` / ``after``: one process's M2_recoil spectra (n_m2,) before and after the classifier (after a
    subset of before), with their sums of squared weights. Per window, the first of ``widths`` (GeV^2 each
    side, increasing) whose sidebands are expected to hold >= ``min_events`` effective after-cut events; else
    the widest.
    Sidebands with no event after the cut get the one-event bound eps = ``one_event_weight`` / S +- 100 %.
    ``exclude``: an M2 range (GeV^2) never used as sideband (a population of its own, e.g. the mu mu peak);
    ``relative_systematic``: added to eps in quadrature (the closure's measured non-closure)."""
    n = len(m2_edges) - 1
    bw = m2_edges[1] - m2_edges[0]
    centres = 0.5 * (m2_edges[1:] + m2_edges[:-1])
    keep = np.ones(n, bool) if exclude is None else ~((centres > exclude[0]) & (centres < exclude[1]))
    cum = {k: np.concatenate([[0.0], np.cumsum(np.where(keep, np.asarray(v, float), 0.0))])
           for k, v in (("S", before), ("SV", before_var), ("C", after), ("CV", after_var))}
    lo_w, hi_w = np.asarray(first), np.asarray(first) + np.asarray(width)
    # the width is chosen on the after-cut events *expected* from the pre-cut ones (x the pass fraction of the
    # whole range): stopping where the after-cut count itself first reaches min_events would bias eps upwards
    # (an upward fluctuation stops the widening early; ~ +1 / min_events, tests/test_zprime_factorised.py)
    whole = {k: c[-1] - _window_sums(c, lo_w, hi_w) for k, c in cum.items()}
    eps_whole = np.where(whole["S"] > 0, whole["C"] / np.where(whole["S"] > 0, whole["S"], 1.0), 0.0)
    chosen = None
    for extra in widths:   # a loop over a few candidate widths, each vectorised over the windows
        step = int(np.ceil(extra / bw)) if np.isfinite(extra) else n
        lo, hi = np.clip(lo_w - step, 0, n), np.clip(hi_w + step, 0, n)
        sums = {k: _window_sums(c, lo, hi) - _window_sums(c, lo_w, hi_w) for k, c in cum.items()}
        events = effective_events(sums["S"], sums["SV"]) * eps_whole
        row = (sums, events, np.full(len(lo_w), float(extra)))
        if chosen is None:
            chosen = row
        else:
            take = chosen[1] < min_events   # still short of statistics: take the wider sidebands
            chosen = ({k: np.where(take, row[0][k], chosen[0][k]) for k in sums}, np.where(take, events, chosen[1]),
                      np.where(take, row[2], chosen[2]))
    sums, events, used = chosen
    S = sums["S"]
    ok = S > 0
    eps = np.where(ok, sums["C"] / np.where(ok, S, 1.0), 0.0)
    # C is a subset of S: the failing events carry SV - CV
    var = np.where(ok, (sums["CV"] * (1 - eps) ** 2 + np.clip(sums["SV"] - sums["CV"], 0, None) * eps**2)
                   / np.where(ok, S, 1.0) ** 2, 0.0)
    none = ok & (sums["C"] <= 0) & (one_event_weight > 0)
    eps = np.where(none, np.minimum(one_event_weight / np.where(ok, S, 1.0), 1.0), eps)
    var = np.where(none, eps**2, var) + (relative_systematic * eps) ** 2
    return PassFraction(eps, var, events, used)


@dataclass(frozen=True)
class WindowEstimate:
    """One process in every window (H, k, n_theta): the after-cut yields and variances used, and per window
    (H,) whether they are factorised, the pass fraction and the plain count's effective events."""

    values: np.ndarray
    variances: np.ndarray
    factorised: np.ndarray
    pass_fraction: PassFraction
    plain_events: np.ndarray


def factorised_window(before_win: np.ndarray, before_var_win: np.ndarray, after_win: np.ndarray,
                      after_var_win: np.ndarray, plain_events: np.ndarray, pf: PassFraction,
                      min_events: float, force_plain: np.ndarray | None = None) -> WindowEstimate:
    """The plain after-cut window (H, k, n_theta) where it has >= ``min_events`` effective events (or
    ``force_plain``), else the pre-cut window x the sidebands' pass fraction."""
    use = plain_events < min_events
    if force_plain is not None:
        use &= ~force_plain
    eps, var_eps = pf.eps[:, None, None], pf.var[:, None, None]
    fact = before_win * eps
    fact_var = before_var_win * eps**2 + before_win**2 * var_eps
    u = use[:, None, None]
    return WindowEstimate(np.where(u, fact, after_win), np.where(u, fact_var, after_var_win), use, pf, plain_events)


def closure_pulls(before_w: np.ndarray, before_var_w: np.ndarray, after_w: np.ndarray, after_var_w: np.ndarray,
                  pf: PassFraction) -> np.ndarray:
    """(factorised - plain) / sigma per window from the windows' total yields (H,): eps from the sidebands is
    independent of the window; the window's pre- and after-cut yields share events (after a subset), so
    Var(eps S - C) = S^2 Var(eps) + sum_pass w^2 (1 - eps)^2 + sum_fail w^2 eps^2."""
    eps = pf.eps
    var = before_w**2 * pf.var + after_var_w * (1 - eps) ** 2 + np.clip(before_var_w - after_var_w, 0, None) * eps**2
    return (eps * before_w - after_w) / np.sqrt(np.where(var > 0, var, np.nan))
