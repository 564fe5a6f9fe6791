"""CLs upper limits with pyhf, with the pyhf 0.7.6 pitfalls worked around.

* ``pyhf.infer.intervals.upper_limits.upper_limit(scan=None)`` drops ``level`` (a 90 % request
  returns the 95 % limit, scikit-hep/pyhf#2563). We never call it: the CLs level is used
  directly in our own root finding.
* ``toms748_scan`` evaluates CLs at the lower POI bound (NaN at mu = 0) and doubles the upper
  bracket past the POI bounds, where pyhf refuses to fit (#2228). Here every hypothesis test
  stays inside the bounds and away from mu = 0. An observed or median limit beyond the
  bounds is a :class:`LimitOutOfBounds` error, a +-1/2 sigma band beyond them is NaN (null in
  JSON) with a warning -- never a crash inside pyhf.
* Toys are seeded (numpy's global generator, which pyhf samples from, is saved and restored),
  evaluated on a POI grid with common random numbers, and the crossing is interpolated; a
  root finder on a noisy function is not reliable. Grid points can run in parallel processes.

The calculator is chosen automatically from the model: ``toybased`` when the total expected
background in the signal bins is below :data:`TOY_BACKGROUND_THRESHOLD` events (where the
asymptotic formulae are 10-30 % too tight and their bands cross the n = 0 floor), else
``asymptotics``. It can always be forced.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal, get_args

import numpy as np
import pyhf
from scipy.optimize import toms748

from belle_rare.core.blas_threads import one_blas_thread
from belle_rare.core.parallel import parallel_map
from belle_rare.stats.errors import FitError, LimitOutOfBounds, StatsError, WorkspaceError

Calculator = Literal["auto", "asymptotics", "toybased"]
CALCULATORS: tuple[str, ...] = get_args(Calculator)
# who makes the asymptotic fits: pyhf itself, or the same likelihood with its exact gradient
# (stats/binned_likelihood.py: the same CLs to 1e-6, 20-40 times faster on models of 50+ parameters)
FitEngine = Literal["pyhf", "analytic"]
# Below this many expected background events in the signal bins toys are used (see module doc).
TOY_BACKGROUND_THRESHOLD = 10.0
# A bin is a "signal bin" if it holds at least this fraction of the largest per-bin signal.
SIGNAL_BIN_FRACTION = 0.01
DEFAULT_NTOYS = 1000
DEFAULT_SEED = 20261122
TOY_GRID_POINTS = 12


@dataclass(frozen=True)
class CLsPoint:
    """CLs at one POI value: observed and expected (-2, -1, 0, +1, +2 sigma)."""

    poi: float
    cls_obs: float
    cls_exp: tuple[float, float, float, float, float]


@dataclass
class LimitResult:
    """An upper limit on the POI at confidence level ``cl``; expected from -2 to +2 sigma."""

    poi: str
    cl: float
    calculator: str
    observed: float
    expected: list[float]
    poi_bounds: tuple[float, float]
    calculator_reason: str
    ntoys: int | None = None
    seed: int | None = None
    points: list[CLsPoint] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The JSON form of the file contract (plus provenance keys)."""
        return {
            "poi": self.poi,
            "cl": self.cl,
            "calculator": self.calculator,
            "observed": self.observed,
            "expected": list(self.expected),
            "calculator_reason": self.calculator_reason,
            "poi_bounds": list(self.poi_bounds),
            "ntoys": self.ntoys,
            "seed": self.seed,
            "warnings": list(self.warnings),
        }

    def points_dict(self) -> list[dict]:
        return [asdict(p) for p in self.points]


# ---------------------------------------------------------------------------------------------
# workspaces and models
# ---------------------------------------------------------------------------------------------


def load_workspace(path: str | Path) -> pyhf.Workspace:
    """Read and validate a pyhf workspace JSON file; every failure is a one-line WorkspaceError."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise WorkspaceError(f"{path}: cannot read workspace ({err.strerror or err})") from None
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as err:
        raise WorkspaceError(f"{path}: not JSON ({err.msg} at line {err.lineno})") from None
    return workspace_from_spec(spec, source=str(path))


def workspace_from_spec(spec: object, source: str = "workspace") -> pyhf.Workspace:
    """Validate a workspace spec against pyhf's schema."""
    if not isinstance(spec, dict):
        raise WorkspaceError(f"{source}: a pyhf workspace is a JSON object, got {type(spec).__name__}")
    try:
        return pyhf.Workspace(spec)
    except pyhf.exceptions.InvalidSpecification as err:
        first = str(err).splitlines()[0]
        raise WorkspaceError(f"{source}: fails pyhf's workspace schema: {first}") from None
    except (pyhf.exceptions.InvalidWorkspaceOperation, pyhf.exceptions.InvalidModel) as err:
        raise WorkspaceError(f"{source}: invalid workspace: {err}") from None


def model_and_data(
    workspace: pyhf.Workspace, poi: str | None = None, measurement: str | None = None
) -> tuple[pyhf.pdf.Model, list[float]]:
    """The model (with ``poi`` if given) and observed data (main + auxiliary) of a workspace."""
    kwargs: dict = {}
    if measurement is not None:
        names = [m["name"] for m in workspace.get("measurements", [])]
        if measurement not in names:
            raise WorkspaceError(f"unknown measurement '{measurement}' (the workspace has: {', '.join(names)})")
        kwargs["measurement_name"] = measurement
    if poi is not None:
        kwargs["poi_name"] = poi
    try:
        model = workspace.model(**kwargs)
    except (pyhf.exceptions.InvalidModel, pyhf.exceptions.InvalidSpecification) as err:
        if poi is not None:
            free = [name for name in _unconstrained_parameters_of_spec(workspace)]
            raise WorkspaceError(
                f"unknown POI '{poi}': {str(err).splitlines()[0]} (normfactors in the workspace: {', '.join(free)})"
            ) from None
        raise WorkspaceError(f"cannot build the model: {str(err).splitlines()[0]}") from None
    if model.config.poi_name is None:
        raise WorkspaceError("the measurement defines no POI; name one with --poi")
    if model.config.param_set(model.config.poi_name).constrained:
        raise WorkspaceError(
            f"POI '{model.config.poi_name}' is a constrained nuisance parameter; choose a normfactor"
        )
    return model, list(workspace.data(model))


def _unconstrained_parameters_of_spec(workspace: pyhf.Workspace) -> list[str]:
    names = {
        mod["name"]
        for channel in workspace["channels"]
        for sample in channel["samples"]
        for mod in sample["modifiers"]
        if mod["type"] == "normfactor"
    }
    return sorted(names)


def poi_bounds(model: pyhf.pdf.Model) -> tuple[float, float]:
    """The POI range used for limits: the model's bounds with the lower end raised to 0 (qtilde)."""
    lo, hi = model.config.suggested_bounds()[model.config.poi_index]
    lo = max(float(lo), 0.0)
    if not hi > lo:
        raise WorkspaceError(f"POI '{model.config.poi_name}' has an empty range [{lo}, {hi}] above 0")
    return lo, float(hi)


def _par_bounds(model: pyhf.pdf.Model) -> list[tuple[float, float]]:
    bounds = [tuple(map(float, b)) for b in model.config.suggested_bounds()]
    bounds[model.config.poi_index] = poi_bounds(model)
    return bounds


def _init_pars(model: pyhf.pdf.Model) -> list[float]:
    """Suggested initial values moved inside the bounds (pyhf refuses to fit from outside them)."""
    bounds = _par_bounds(model)
    return [min(max(float(v), lo), hi) for v, (lo, hi) in zip(model.config.suggested_init(), bounds)]


# ---------------------------------------------------------------------------------------------
# calculator choice
# ---------------------------------------------------------------------------------------------


def expected_background_in_signal_bins(model: pyhf.pdf.Model) -> float:
    """Expected background (POI = 0, nuisances nominal) summed over the bins the signal populates."""
    pars = np.asarray(model.config.suggested_init(), dtype=float)
    lo, hi = poi_bounds(model)
    pars[model.config.poi_index] = 0.0
    background = np.asarray(model.expected_actualdata(pars))
    pars[model.config.poi_index] = min(max(1.0, lo), hi)
    signal = np.abs(np.asarray(model.expected_actualdata(pars)) - background)
    if not np.any(signal > 0):
        raise WorkspaceError(f"the POI '{model.config.poi_name}' does not change the expected yields")
    in_signal = signal >= SIGNAL_BIN_FRACTION * signal.max()
    return float(background[in_signal].sum())


def choose_calculator(model: pyhf.pdf.Model, requested: Calculator = "auto") -> tuple[str, str]:
    """(calculator, reason): ``toybased`` if the background in the signal bins is below the threshold."""
    if requested not in CALCULATORS:
        raise StatsError(f"unknown calculator '{requested}' (choose from {', '.join(CALCULATORS)})")
    b = expected_background_in_signal_bins(model)
    rule = f"expected background in the signal bins {b:.3g} {'<' if b < TOY_BACKGROUND_THRESHOLD else '>='} {TOY_BACKGROUND_THRESHOLD:g}"
    if requested != "auto":
        return requested, f"forced ({rule})"
    return ("toybased" if b < TOY_BACKGROUND_THRESHOLD else "asymptotics"), f"auto: {rule}"


# ---------------------------------------------------------------------------------------------
# hypothesis tests
# ---------------------------------------------------------------------------------------------


def hypotest_point(
    model: pyhf.pdf.Model,
    data: list[float],
    poi_value: float,
    calculator: str = "asymptotics",
    ntoys: int = DEFAULT_NTOYS,
    seed: int | None = DEFAULT_SEED,
) -> CLsPoint:
    """CLs (observed and expected band) at one POI value, with failures turned into FitError."""
    kwargs: dict = {"test_stat": "qtilde", "calctype": calculator, "return_expected_set": True}
    if calculator == "toybased":
        kwargs.update(ntoys=int(ntoys), track_progress=False)
    state = np.random.get_state()
    try:
        if seed is not None:
            np.random.seed(seed)  # pyhf's numpy backend samples toys from the global generator
        with one_blas_thread():
            obs, exp = pyhf.infer.hypotest(
                float(poi_value), data, model, init_pars=_init_pars(model), par_bounds=_par_bounds(model), **kwargs
            )
    except pyhf.exceptions.FailedMinimization as err:
        raise FitError(f"fit did not converge at {model.config.poi_name} = {poi_value:.6g}: {err}") from None
    finally:
        np.random.set_state(state)
    return CLsPoint(float(poi_value), float(obs), tuple(float(v) for v in exp))


def _hypotest_task(args: tuple) -> CLsPoint:
    return hypotest_point(*args)


def cls_scan(
    model: pyhf.pdf.Model,
    data: list[float],
    poi_values: list[float] | np.ndarray,
    calculator: str = "asymptotics",
    ntoys: int = DEFAULT_NTOYS,
    seed: int | None = DEFAULT_SEED,
    workers: int = 1,
) -> list[CLsPoint]:
    """CLs at several POI values, optionally in ``workers`` local processes (same seed: common toys)."""
    tasks = [(model, data, float(v), calculator, ntoys, seed) for v in poi_values]
    return parallel_map(_hypotest_task, tasks, "local", workers)


# ---------------------------------------------------------------------------------------------
# upper limits
# ---------------------------------------------------------------------------------------------

_CURVES = ("observed", "expected -2 sigma", "expected -1 sigma", "expected median", "expected +1 sigma", "expected +2 sigma")


def _curve_values(point: CLsPoint) -> np.ndarray:
    return np.array((point.cls_obs, *point.cls_exp))


def upper_limit(
    model: pyhf.pdf.Model,
    data: list[float],
    cl: float = 0.95,
    calculator: Calculator = "auto",
    ntoys: int = DEFAULT_NTOYS,
    seed: int | None = DEFAULT_SEED,
    workers: int = 1,
    rtol: float = 1e-4,
    engine: FitEngine = "pyhf",
) -> LimitResult:
    """Observed and expected CLs upper limits on the model's POI at confidence level ``cl``.

    ``engine="analytic"``: asymptotic CLs from :mod:`stats.binned_likelihood` (pyhf's likelihood and
    test statistic with exact gradients) where the model's modifiers allow; toys are always pyhf's."""
    if not 0.0 < cl < 1.0:
        raise StatsError(f"confidence level must be between 0 and 1, got {cl}")
    calc, reason = choose_calculator(model, calculator)
    alpha = 1.0 - cl
    bounds = poi_bounds(model)
    if calc == "asymptotics":
        hypotest = _analytic_hypotest(model, data) if engine == "analytic" else None
        if hypotest is not None:
            reason += "; fits: analytic-gradient likelihood (stats/binned_likelihood.py)"
        observed, expected, points = _asymptotic_limit(model, data, alpha, bounds, rtol, hypotest)
        toys = None
        seed = None
    else:
        observed, expected, points = _toy_limit(model, data, alpha, bounds, ntoys, seed, workers)
        toys = int(ntoys)
    return LimitResult(
        poi=model.config.poi_name,
        cl=cl,
        calculator=calc,
        observed=observed,
        expected=expected,
        poi_bounds=bounds,
        calculator_reason=reason,
        ntoys=toys,
        seed=seed,
        points=sorted(points, key=lambda p: p.poi),
        warnings=_band_warnings([observed, *expected], bounds),
    )


def _start_value(model: pyhf.pdf.Model, bounds: tuple[float, float]) -> float:
    lo, hi = bounds
    init = float(model.config.suggested_init()[model.config.poi_index])
    if lo < init <= hi and init > 0:
        return init
    return math.sqrt(max(lo, hi * 1e-6) * hi)


# observed and expected median must lie inside the POI bounds; a +-1/2 sigma band beyond them
# is reported as NaN (null in JSON) with a warning rather than failing the whole limit
_REQUIRED = (0, 3)


def _require(ok: np.ndarray, poi: str, where: str, cls_obs: float) -> None:
    missing = [_CURVES[i] for i in _REQUIRED if not ok[i]]
    if missing:
        raise LimitOutOfBounds(
            f"the {' and '.join(missing)} limit lies {where} of {poi} (CLs there = {cls_obs:.3g}); "
            "widen the POI bounds in the workspace or rescale the signal"
        )


def _band_warnings(limits: list[float], bounds: tuple[float, float]) -> list[str]:
    return [
        f"{_CURVES[i]} limit lies outside the POI bounds [{bounds[0]:g}, {bounds[1]:g}]: reported as null"
        for i, v in enumerate(limits)
        if math.isnan(v)
    ]


def _bracket(evaluate, alpha: float, bounds: tuple[float, float], start: float, poi: str) -> None:
    """Evaluate CLs until every curve has points on both sides of alpha, staying within the bounds."""
    lo_bound, hi_bound = bounds
    floor = lo_bound if lo_bound > 0 else start * 1e-8  # never test mu = 0 itself (CLs is NaN there)
    x = start
    while True:
        values = _curve_values(evaluate(x))
        if np.all(values < alpha):
            break
        if x >= hi_bound:
            _require(values < alpha, poi, f"above the upper bound {hi_bound:g}", values[0])
            break
        x = min(2.0 * x, hi_bound)
    x = start
    while True:
        values = _curve_values(evaluate(x))
        if np.all(values >= alpha):
            break
        if x <= floor:
            _require(values >= alpha, poi, f"below {floor:g}", values[0])
            break
        x = max(x / 4.0, floor)


def _analytic_hypotest(model: pyhf.pdf.Model, data: list[float]) -> Callable[[float], CLsPoint] | None:
    """Asymptotic CLs at a POI value from the analytic-gradient likelihood; None if the model has a
    modifier it does not evaluate (pyhf then does the fits)."""
    from belle_rare.stats.binned_likelihood import AsymptoticCLs, BinnedLikelihood, supports

    if not supports(model.spec):
        return None
    cls = AsymptoticCLs(BinnedLikelihood(model.spec, model), data, _init_pars(model), _par_bounds(model),
                        model.config.suggested_fixed())

    def hypotest(poi_value: float) -> CLsPoint:
        obs, exp = cls.cls(float(poi_value))
        return CLsPoint(float(poi_value), obs, exp)

    return hypotest


def _asymptotic_limit(model, data, alpha, bounds, rtol, hypotest: Callable[[float], CLsPoint] | None = None):
    cache: dict[float, CLsPoint] = {}

    def evaluate(x: float) -> CLsPoint:
        if x not in cache:
            cache[x] = hypotest(x) if hypotest is not None else hypotest_point(model, data, x, "asymptotics", seed=None)
        return cache[x]

    _bracket(evaluate, alpha, bounds, _start_value(model, bounds), model.config.poi_name)
    limits = []
    for idx, name in enumerate(_CURVES):
        xs = np.array(sorted(cache))
        vals = np.array([_curve_values(cache[x])[idx] for x in xs])
        above = vals >= alpha  # NaN counts as neither side
        below = vals < alpha
        if not below.any() or not (above & (xs < xs[below].min())).any():
            limits.append(math.nan)  # a band beyond the bounds (_bracket checked the others)
            continue
        hi = xs[below].min()
        lo = xs[above & (xs < hi)].max()

        def f(x: float) -> float:
            return float(_curve_values(evaluate(float(x)))[idx] - alpha)

        try:
            limits.append(float(toms748(f, lo, hi, k=2, xtol=1e-12, rtol=rtol)))
        except ValueError as err:  # NaN or no sign change inside the bracket
            raise FitError(f"CLs root finding for the {name} limit failed between {lo:g} and {hi:g}: {err}") from None
    return limits[0], limits[1:], list(cache.values())


def _toy_limit(model, data, alpha, bounds, ntoys, seed, workers):
    lo_bound, hi_bound = bounds
    poi = model.config.poi_name
    try:  # the asymptotic limits locate the region to scan with toys
        obs_a, exp_a, _ = _asymptotic_limit(model, data, alpha, bounds, 1e-2)
        finite = [v for v in (obs_a, *exp_a) if not math.isnan(v)]
        lo = max(0.4 * min(finite), lo_bound)
        hi = min(2.5 * max(finite), hi_bound)
    except StatsError:
        lo, hi = max(lo_bound, hi_bound * 1e-3), hi_bound
    lo = max(lo, hi * 1e-4)
    floor = lo_bound if lo_bound > 0 else lo * 1e-4
    points = cls_scan(model, data, np.geomspace(lo, hi, TOY_GRID_POINTS), "toybased", ntoys, seed, workers)
    for _ in range(8):  # extend the grid while a curve has not crossed alpha inside it
        xs, vals = _grid(points)
        low_ok, high_ok = vals[0] >= alpha, np.nanmin(vals, axis=0) < alpha
        step = (xs[-1] / xs[0]) ** (1.0 / (len(xs) - 1))
        extra = []
        if not high_ok.all() and xs[-1] < hi_bound:
            extra += [min(xs[-1] * step**k, hi_bound) for k in (1, 2, 3)]
        if not low_ok.all() and xs[0] > floor:
            extra += [max(xs[0] / step**k, floor) for k in (1, 2, 3)]
        extra = sorted(set(extra) - set(xs))
        if not extra:
            break
        points += cls_scan(model, data, extra, "toybased", ntoys, seed, workers)
    xs, vals = _grid(points)
    low_ok, high_ok = vals[0] >= alpha, np.nanmin(vals, axis=0) < alpha
    if xs[-1] < hi_bound and not all(high_ok[i] for i in _REQUIRED):
        raise FitError("toy-based CLs did not cross the requested level on the scanned grid")
    _require(high_ok, poi, f"above the upper bound {hi_bound:g}", vals[-1, 0])
    _require(low_ok, poi, f"below {xs[0]:g}", vals[0, 0])
    limits = [
        _interpolated_crossing(xs, vals[:, idx], alpha) if low_ok[idx] and high_ok[idx] else math.nan
        for idx in range(6)
    ]
    return limits[0], limits[1:], points


def _grid(points: list[CLsPoint]) -> tuple[np.ndarray, np.ndarray]:
    points = sorted(points, key=lambda p: p.poi)
    return np.array([p.poi for p in points]), np.array([_curve_values(p) for p in points])


def _interpolated_crossing(xs: np.ndarray, cls: np.ndarray, alpha: float) -> float:
    """Where a noisy toy CLs curve on a grid crosses alpha.

    log CLs is smooth in the POI (linear for n = 0, near-quadratic asymptotically), so a
    least-squares polynomial in the POI through every point with alpha / 5 <= CLs <= 5 alpha
    uses all toys near the crossing; a running minimum + log-linear interpolation between
    neighbours is the fallback when too few points are near it.
    """
    ok = ~np.isnan(cls)
    xs, cls = xs[ok], cls[ok]
    near = (cls >= alpha / 5.0) & (cls <= 5.0 * alpha)
    if near.sum() >= 3:
        deg = 2 if near.sum() >= 5 else 1
        coef = np.polyfit(xs[near], np.log(cls[near]), deg)
        coef[-1] -= math.log(alpha)
        roots = [r.real for r in np.roots(coef) if abs(r.imag) < 1e-12 and xs[near].min() <= r.real <= xs[near].max()]
        slope = np.polyder(coef)
        roots = [r for r in roots if np.polyval(slope, r) < 0]  # CLs falls through alpha
        if len(roots) == 1:
            return float(roots[0])
    mono = np.minimum.accumulate(cls)  # toy CLs fluctuates; the true curve is non-increasing
    j = int(np.argmax(mono < alpha))
    x0, x1, c0, c1 = xs[j - 1], xs[j], mono[j - 1], mono[j]
    if c1 > 0:
        t = (math.log(c0) - math.log(alpha)) / (math.log(c0) - math.log(c1))
    else:
        t = (c0 - alpha) / (c0 - c1)
    return float(x0 + t * (x1 - x0))
