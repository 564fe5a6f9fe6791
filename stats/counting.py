"""pyhf workspaces for counting experiments given as numbers.

Input per channel: observed count, expected background +- uncertainty, and the expected
signal per unit POI +- a relative uncertainty (efficiency, luminosity, ...). The POI is the
number of signal events (``signal = 1``) or any scale the caller chooses.

Background uncertainty models:
* ``shapesys`` -- Poisson-constrained scale (the "on/off" sideband problem, tau = (b / db)^2);
  matches :mod:`stats.fast_scan` exactly and is right for a sideband x transfer-factor estimate;
* ``normsys`` -- log-normal-like (pyhf's exponential interpolation), for a relative systematic.
The signal uncertainty is a ``normsys`` named ``signal_unc_<channel>``.

The other direction, :func:`one_bin_summary`, reduces a one-bin workspace to these numbers,
and :func:`exact_counting_limit` computes its toy-based limit exactly (infinite toys).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal

import numpy as np

from belle_rare.stats import fast_scan
from belle_rare.stats.limits import CLsPoint, LimitResult

BackgroundModel = Literal["shapesys", "normsys"]


@dataclass(frozen=True)
class CountingChannel:
    """One counting channel: n observed, b +- db expected background, signal events per unit POI."""

    name: str
    observed: float
    background: float
    background_uncertainty: float = 0.0
    signal: float = 1.0
    signal_uncertainty: float = 0.0  # relative
    background_model: BackgroundModel = "shapesys"

    def __post_init__(self) -> None:
        if self.observed < 0 or self.background < 0 or self.background_uncertainty < 0:
            raise ValueError(f"channel {self.name}: counts and uncertainties must be non-negative")
        if not self.signal > 0:
            raise ValueError(f"channel {self.name}: the signal per unit POI must be positive")
        if not 0 <= self.signal_uncertainty < 1:
            raise ValueError(f"channel {self.name}: relative signal uncertainty must be in [0, 1)")


def default_poi_upper_bound(channels: list[CountingChannel]) -> float:
    """A POI range wide enough for any CLs limit of these counts: several times n + b in signal units."""
    return max(10.0 * (c.observed + c.background + 5.0) / c.signal for c in channels)


def counting_workspace(
    channels: list[CountingChannel],
    poi: str = "mu",
    poi_upper_bound: float | None = None,
    measurement: str = "counting",
) -> dict:
    """A pyhf workspace spec (JSON-serialisable dict) with one one-bin channel per counting channel."""
    if not channels:
        raise ValueError("a counting workspace needs at least one channel")
    spec_channels, observations = [], []
    for ch in channels:
        signal_mods: list[dict] = [{"name": poi, "type": "normfactor", "data": None}]
        if ch.signal_uncertainty > 0:
            u = ch.signal_uncertainty
            signal_mods.append({"name": f"signal_unc_{ch.name}", "type": "normsys", "data": {"hi": 1 + u, "lo": 1 - u}})
        background_mods: list[dict] = []
        if ch.background_uncertainty > 0 and ch.background > 0:
            if ch.background_model == "shapesys":
                background_mods.append(
                    {"name": f"bkg_unc_{ch.name}", "type": "shapesys", "data": [ch.background_uncertainty]}
                )
            else:
                u = ch.background_uncertainty / ch.background
                background_mods.append(
                    {"name": f"bkg_unc_{ch.name}", "type": "normsys", "data": {"hi": 1 + u, "lo": max(1 - u, 1e-3)}}
                )
        spec_channels.append(
            {
                "name": ch.name,
                "samples": [
                    {"name": "signal", "data": [ch.signal], "modifiers": signal_mods},
                    {"name": "background", "data": [ch.background], "modifiers": background_mods},
                ],
            }
        )
        observations.append({"name": ch.name, "data": [ch.observed]})
    upper = poi_upper_bound if poi_upper_bound is not None else default_poi_upper_bound(channels)
    return {
        "channels": spec_channels,
        "observations": observations,
        "measurements": [
            {
                "name": measurement,
                "config": {"poi": poi, "parameters": [{"name": poi, "bounds": [[0.0, upper]], "inits": [1.0]}]},
            }
        ],
        "version": "1.0.0",
    }


@dataclass(frozen=True)
class OneBin:
    """A one-bin model reduced to numbers: counts, absolute background and relative signal uncertainty."""

    n: float
    b: float
    b_unc: float
    s: float  # expected signal events at POI = 1
    s_rel_unc: float


def one_bin_summary(spec: dict, measurement: str) -> OneBin | None:
    """(n, b, db, s, ds/s) of a one-channel, one-bin workspace, or None if it is not one."""
    if len(spec["channels"]) != 1:
        return None
    channel = spec["channels"][0]
    meas = next(m for m in spec["measurements"] if m["name"] == measurement)
    poi = meas["config"]["poi"]
    params = {p["name"]: p for p in meas["config"].get("parameters", [])}
    lumi_sigma = params.get("lumi", {}).get("sigmas", [0.0])[0]
    fixed_zero = {name for name, p in params.items() if p.get("fixed") and p.get("inits") == [0.0]}
    signal, background = 0.0, 0.0
    s_terms: dict[str, float] = {}
    b_terms: dict[str, float] = {}  # absolute shifts, added linearly per modifier name (correlated)
    b_stat = 0.0
    for sample in channel["samples"]:
        if len(sample["data"]) != 1:
            return None
        y = float(sample["data"][0])
        names = {m["name"] for m in sample["modifiers"] if m["type"] in ("normfactor", "shapefactor")}
        if names & fixed_zero:
            continue  # another signal, fixed to zero in this measurement
        if names - {poi}:
            return None  # a free normalisation other than the POI: needs a real fit
        is_signal = poi in names
        signal += y if is_signal else 0.0
        background += 0.0 if is_signal else y
        for mod in sample["modifiers"]:
            t = mod["type"]
            if t == "normsys":
                shift = y * (mod["data"]["hi"] - mod["data"]["lo"]) / 2.0
            elif t == "histosys":
                shift = (mod["data"]["hi_data"][0] - mod["data"]["lo_data"][0]) / 2.0
            elif t == "lumi":
                shift = y * lumi_sigma
            elif t in ("staterror", "shapesys"):
                if is_signal:
                    s_terms[mod["name"] + "_s"] = float(mod["data"][0])
                else:
                    b_stat += float(mod["data"][0]) ** 2
                continue
            elif t in ("normfactor", "shapefactor"):
                continue
            else:
                return None
            terms = s_terms if is_signal else b_terms
            terms[mod["name"]] = terms.get(mod["name"], 0.0) + shift
    if signal <= 0:
        return None
    obs = next(o for o in spec["observations"] if o["name"] == channel["name"])["data"][0]
    b_unc = math.sqrt(b_stat + sum(v * v for v in b_terms.values()))
    s_rel = math.sqrt(sum(v * v for v in s_terms.values())) / signal
    return OneBin(float(obs), background, b_unc, signal, s_rel)


def exact_counting_limit(
    item: OneBin, cl: float, poi: str, poi_bounds: tuple[float, float], reason: str, curve_points: int = 25
) -> LimitResult:
    """The toy-based CLs limit of a one-bin model with infinitely many toys.

    The count is the test statistic (for one bin qtilde orders outcomes the same way), the
    signal and background uncertainties are averaged over (Cousins-Highland); CLs versus the
    POI is tabulated for the plot.
    """
    n, b = item.n, item.b
    rel_b = item.b_unc / b if b > 0 else 0.0
    res = fast_scan.poisson_limits([n], [b], rel_b, item.s_rel_unc, cl=cl).scaled(item.s)
    return _one_bin_result(
        res, lambda mu: fast_scan.poisson_cls_curve(mu, n, b, rel_b, item.s_rel_unc), item, cl, poi, poi_bounds,
        "toybased", f"{reason}; one bin: exact Poisson CLs (infinitely many toys, count as test statistic, "
        "nuisances averaged)", curve_points,
    )


def asymptotic_counting_limit(
    item: OneBin, cl: float, poi: str, poi_bounds: tuple[float, float], reason: str, curve_points: int = 25
) -> LimitResult:
    """The asymptotic qtilde CLs limit of a one-bin model in closed form (:func:`fast_scan.asymptotic_limits`).

    The background uncertainty is one Poisson (``shapesys``) constraint of tau = (b / db)^2; the
    signal uncertainty is left out (a one-bin model whose background is large and uncertain enough
    to need this -- an MC statistical bound of many events -- is limited by the background alone).
    It stays finite where pyhf's minimiser does not, at backgrounds of 10^8 events.
    """
    b_unc = item.b_unc if item.b_unc > 0 else None
    res = fast_scan.asymptotic_limits([item.n], [item.b], None if b_unc is None else [b_unc], cl=cl).scaled(item.s)
    return _one_bin_result(
        res, lambda mu: fast_scan.asymptotic_cls(mu, item.n, item.b, b_unc), item, cl, poi, poi_bounds,
        "asymptotics", f"{reason}; one bin: closed-form asymptotic qtilde CLs (background Poisson-constrained, "
        "signal uncertainty neglected)", curve_points,
    )


def _one_bin_result(
    res: Any, cls_curve: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]], item: OneBin, cl: float,
    poi: str, poi_bounds: tuple[float, float], calculator: str, calculator_reason: str, curve_points: int,
) -> LimitResult:
    """A one-bin limit (``res``, in POI units) with its CLs curve ``cls_curve(signal events)`` tabulated
    around the observed and expected limits for the plot."""
    observed, expected = float(res.observed[0]), [float(v) for v in res.expected[:, 0]]
    grid = np.geomspace(0.3 * min(observed, expected[0]), 1.5 * max(observed, expected[4]), curve_points)
    obs_curve, exp_curve = cls_curve(grid * item.s)
    points = [CLsPoint(float(x), float(o), tuple(float(v) for v in e)) for x, o, e in zip(grid, obs_curve, exp_curve.T)]
    return LimitResult(
        poi=poi,
        cl=cl,
        calculator=calculator,
        observed=observed,
        expected=expected,
        poi_bounds=poi_bounds,
        calculator_reason=calculator_reason,
        points=points,
    )
