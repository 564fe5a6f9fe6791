"""zprime limits: the per-mass 2D fit of (M2_recoil, theta_recoil CM) at every M_Z' hypothesis (issue 14).

``belle-rare limit zprime --results DIR`` (and ``make run``'s limits) call ``limit`` here through the search's
``Search.scan`` hook; the stats model is ``configs/stats/zprime.yaml`` (schema ``ScanConfig``).

1. Signal: every ``sig_zprime*`` dataset (``sig_zprime_m<M>``; make run's ``sig_zprime``, the mass in its parameters) of the run with at least ``min_signal_events`` effective
   events gives, from its ``m2_theta`` histogram, the efficiency (selected yield / sigma L), the M2_recoil
   peak position and its Gaussian core width sigma(M2) (iterated +-2 sigma fit of the M2 projection).
2. Hypotheses: M_Z' from the lightest to the heaviest usable sample, equally spaced in M2 at
   ``step_over_sigma`` x sigma(M2), sigma interpolated linearly in M_Z' between the samples.
3. Windows: the M2 bins within +-``half_width_sigma`` sigma of the hypothesis's peak (the Punzi-net's
   windows, M^2 +- 2 sigma), times the theta_recoil bins (merged ``theta_rebin`` at a time).
4. Signal template: the nearest sample's 2D histogram shifted to the hypothesis's peak and stretched to its
   width (its cumulative M2 distribution per theta bin read at the mapped bin edges), scaled to the
   efficiency interpolated linearly in M_Z'; the +-10 % recoil-resolution variations stretch it further.
5. Background: the background datasets' sum fixed to simulation, per bin a Poisson-constrained gamma
   with the paper's shape uncertainty of the window's M2 range and the bin's MC statistics in quadrature.
   A background dataset with fewer than two simulated events in a window but able to reach it (``reach``)
   adds its MC statistical bound (one event's weight, +-100 % per bin, stats/mc_bound.py), flat over the window.
   Processes listed under ``smoothing`` (slowly varying in M2: tau pairs, e e mu mu, hard-ISR mu mu) are
   smoothed along M2 first and factorised (smoothed M2 spectrum x the process's theta_recoil shape over all
   M2), so that a few heavy weighted events give a template rather than spikes.
6. Fit and limits: ``stats.template_scan`` (vectorised over all hypotheses; pyhf spot checks in
   ``benchmarks/bench_zprime_scan.py``), 90 % CL CLs on sigma(e+e- -> mu mu Z') x BR(Z' -> inv) = x /
   (sum of the template over the window) in fb, with expected bands and the local significance; with
   ``background_toys.bands`` also the bands as the paper draws them, quantiles of background-only toys.
7. g' for the vanilla and fully invisible L_mu - L_tau models (``lmu_ltau.coupling_limit``): the samples'
   sigma x BR at their g', turned into sigma at g' = 1 without the BR and interpolated in log between
   masses, times each model's BR(inv).
8. Largest local excess and its global significance (``stats.scan_table.largest_excess``, toys of the fast
   scan around the background for the look-elsewhere calibration); outputs under DIR/zprime/: scan.parquet
   and scan.csv, limits.json, plots/ (sigma x BR and both g' curves, local significance), hepdata/.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic
from scipy.special import ndtr

from belle_rare.analyses import zprime_background as zb
from belle_rare.analyses.datasets import of_process
from belle_rare.analyses.hepdata_record import plot_limit_curve, write_hepdata
from belle_rare.configs.loader import StrictModel
from belle_rare.configs.processes import ZprimeCoupling, load_catalogue
from belle_rare.core.atomic import save_figure, write_json
from belle_rare.core.errors import UserError
from belle_rare.processors.registry import get_search
from belle_rare.processors.zprime_classifier import nearest_mass
from belle_rare.simulation.generators import lmu_ltau
from belle_rare.stats import model_config
from belle_rare.stats import template_scan as ts
from belle_rare.stats.errors import StatsError
from belle_rare.stats.fast_scan import BAND_SIGMAS
from belle_rare.stats.histograms import RunOutput, load_run_output, run_output_dir
from belle_rare.stats.look_elsewhere import calibrate
from belle_rare.stats.scan_table import EXPECTED_COLUMNS, TOY_EXPECTED_COLUMNS, ScanTable, largest_excess, scan_calibration
from belle_rare.stats.search_limits import SearchLimits, Settings

SIGNAL = "zprime"
CHANNEL = "mumu"
QUANTITY = "sigma(e+e- -> mu+ mu- Z') x BR(Z' -> invisible)"
FB_PER_NB = 1e6
MODELS = ("vanilla", "fully_invisible")
#: the paper's smallest observed limit (fb): "We set upper limits as small as 0.2 fb"
PUBLISHED = {"observed": 0.2, "source": "Belle II, PRL 130 231801 (79.7 /fb): 'upper limits as small as 0.2 fb'", "cl": 0.90}


# ---------------------------------------------------------------------------------------------- config
class M2Range(StrictModel):
    """Paper systematics in one M2_recoil range (GeV^2): signal efficiency and background shape, relative."""

    m2: tuple[float, float]
    efficiency: float = pydantic.Field(ge=0, lt=1)
    background_shape: float = pydantic.Field(ge=0)


class PhotonVeto(StrictModel):
    """The background-shape uncertainty from the photon-veto inefficiency, relative, per fit bin by the bin's own
    M2_recoil: ``below`` under ``m2_below`` GeV^2, ``above`` over it."""

    m2_below: float
    below: float = pydantic.Field(ge=0)
    above: float = pydantic.Field(ge=0)

    def at(self, m2: np.ndarray) -> np.ndarray:
        return np.where(m2 < self.m2_below, self.below, self.above)


class Systematics(StrictModel):
    ranges: list[M2Range] = pydantic.Field(min_length=1)
    resolution: float = pydantic.Field(ge=0, lt=1)
    luminosity: float = pydantic.Field(ge=0, lt=1)
    photon_veto: PhotonVeto | None = None      # None: not applied


class ScanSettings(StrictModel):
    histogram: str = "m2_theta"
    region: str = "selected"
    step_over_sigma: float = pydantic.Field(1.0, gt=0)
    half_width_sigma: float = pydantic.Field(2.0, gt=0)
    theta_rebin: int = pydantic.Field(4, ge=1)
    min_signal_events: float = pydantic.Field(100.0, gt=0)
    mass_range: tuple[float, float] | None = None   # GeV; default: the usable samples' span


class MCBound(StrictModel):
    enabled: bool = True
    # M2_recoil (GeV^2) a background process can reach; a process not listed reaches the whole range
    reach: dict[str, tuple[float, float]] = {}


class Smoothing(StrictModel):
    # Gaussian width in M2_recoil (GeV^2) per background process: templates of slowly varying processes made
    # of few heavy weighted events, smoothed along M2 (theta kept); a process not listed is used as simulated
    m2_sigma: dict[str, float] = {}


class LookElsewhere(StrictModel):
    toys: int = pydantic.Field(30, ge=0)
    level: float = 1.0
    seed: int = 1


class BackgroundToys(StrictModel):
    """Background-only Poisson toys of the observed curve: of the whole spectrum (the look-elsewhere toys'
    recipe, own seed) for the smallest observed limit over the scan (``minimum_observed_limit``) and, with
    ``bands``, of each window on its own for the expected bands as the paper draws them ("the median limits
    from background-only simulated samples", PRL 130 231801)."""

    toys: int = pydantic.Field(0, ge=0)
    seed: int = 2
    # also the expected bands from as many toys of each window on its own (the scan table's toy_expected_* columns)
    bands: bool = False
    # the minimum over the hypotheses whose median expected (Asimov) limit is within this factor of the best one:
    # where the minimum of an observed curve falls (the others can only lower it, rarely)
    minimum_within: float = pydantic.Field(1.5, ge=1.0)


class Factorised(StrictModel):
    """The factorised after-classifier background (analyses/zprime_background.py)."""

    before_region: str = "selected"            # the pre-classifier region of the same histogram
    min_events: float = pydantic.Field(10.0, gt=0)   # effective simulated events for a plain count / a pass fraction
    # sideband half-widths tried (GeV^2 each side of the window, increasing; inf: the whole range)
    sideband_widths: list[float] = pydantic.Field([1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, float("inf")], min_length=1)
    # per process: an M2_recoil range (GeV^2) whose pass fraction is not the neighbours' (never a sideband; a
    # window overlapping it keeps the plain count)
    exclude_m2: dict[str, tuple[float, float]] = {}
    closure_systematic: float = pydantic.Field(0.0, ge=0)   # relative, on every pass fraction
    closure_systematic_nearest: float = pydantic.Field(0.0, ge=0)   # the same, for runs without m2_pass
    # sideband events classified at the window's own hypothesis (the processor's m2_pass, when the run has it), not
    # each at its nearest trained mass (region classified)
    sidebands_at_hypothesis: bool = True


class Benchmark(StrictModel):
    """Another signal model scanned like the main one, on the same background (the paper's Gamma = 0.1 M_Z'):
    its catalogue process and the subdirectory of the scan's outputs it writes to."""

    process: str
    output: str = pydantic.Field(pattern=r"^[A-Za-z0-9_]+$")


class ScanConfig(StrictModel):
    search: str
    experiment: str
    poi: str
    cl: float = pydantic.Field(gt=0, lt=1)
    signal_process: str = "sig_zprime"
    # scanned after the main model when the run has their samples (Asimov bands; no toys)
    benchmarks: list[Benchmark] = []
    systematics: Systematics
    scan: ScanSettings = ScanSettings()
    mc_bound: MCBound = MCBound()
    smoothing: Smoothing = Smoothing()
    look_elsewhere: LookElsewhere = LookElsewhere()
    background_toys: BackgroundToys = BackgroundToys()
    # plain: each background dataset's after-cut template as simulated; factorised: where a window holds fewer
    # than factorised.min_events simulated events after the cut, the pre-cut window x the sidebands' pass fraction
    background_estimate: Literal["plain", "factorised"] = "plain"
    factorised: Factorised = Factorised()

    @pydantic.model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        """Scan YAMLs written before the toy bands and the benchmarks keep working: ``minimum_limit: {toys,
        within, seed}`` is ``background_toys`` with ``minimum_within`` (no bands), ``signal_prefix`` is
        ``signal_process`` (datasets are now matched on their catalogue process, not a name prefix)."""
        if isinstance(data, dict) and "signal_prefix" in data:
            if "signal_process" in data:
                raise ValueError("signal_prefix and signal_process: give signal_process only (signal_prefix is its old name)")
            data = {k: v for k, v in data.items() if k != "signal_prefix"} | {"signal_process": data["signal_prefix"]}
        if isinstance(data, dict) and "minimum_limit" in data:
            if "background_toys" in data:
                raise ValueError("minimum_limit and background_toys: give background_toys only (minimum_limit is its old name)")
            old = dict(data["minimum_limit"] or {})
            if "within" in old:
                old["minimum_within"] = old.pop("within")
            data = {k: v for k, v in data.items() if k != "minimum_limit"} | {"background_toys": old}
        return data


def load_scan_config(path: Path | None = None) -> ScanConfig:
    """The shipped stats YAML of this scan, or ``path`` (a reduced scan)."""
    return model_config.load_scan_config(SIGNAL, ScanConfig, path)


# ---------------------------------------------------------------------------------------------- inputs
@dataclass(frozen=True)
class Spectra:
    """The run's (M2, theta) histograms summed per role: edges, (n_m2, n_theta) arrays."""

    m2_edges: np.ndarray
    theta_edges: np.ndarray
    background: np.ndarray
    background_var: np.ndarray
    observed: np.ndarray | None
    # per background dataset: (weight of one event, process, its yields) for the MC bound
    background_sets: dict[str, tuple[float, str, np.ndarray]]
    # per background dataset, for the factorised estimate (background_estimate: factorised); else empty
    factor_inputs: dict[str, "FactorInputs"] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class FactorInputs:
    """One background dataset before and after the classifier: the (M2, theta) templates (smoothed like the
    after-cut one) and the raw M2 spectra with their sums of squared weights."""

    after_var: np.ndarray
    before: np.ndarray
    before_var: np.ndarray
    raw_after_m2: np.ndarray
    raw_after_m2_var: np.ndarray
    raw_before_m2: np.ndarray
    raw_before_m2_var: np.ndarray
    # the processor's m2_pass (if the run has it): trained masses (J,) and the M2 spectra (J, n_m2) of the selected
    # events passing each trained mass's working point when classified at that mass
    pass_masses: np.ndarray | None = None
    raw_pass_m2: np.ndarray | None = None
    raw_pass_m2_var: np.ndarray | None = None


@dataclass(frozen=True)
class SignalSamples:
    """Per usable signal sample (sorted by mass): mass, efficiency, peak, core sigma(M2), normalised 2D
    histogram (sums to one), effective events, sigma x BR (nb) and the model it was generated with."""

    mass: np.ndarray
    efficiency: np.ndarray
    peak: np.ndarray
    sigma: np.ndarray
    shape: np.ndarray        # (S, n_m2, n_theta)
    effective_events: np.ndarray
    cross_section_nb: np.ndarray
    datasets: list[str]


def _hist2d(run: RunOutput, dataset: str, cfg: ScanConfig, region: str | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    full = run.histograms[dataset][cfg.scan.histogram]
    m2_axis, theta_axis = (a for a in full.axes if a.name not in ("channel", "region"))
    r = cfg.scan.theta_rebin
    region = region or cfg.scan.region
    if CHANNEL in full.axes["channel"] and region in full.axes["region"]:
        h = full[{"channel": CHANNEL, "region": region}]
        values, variances = h.values(), h.variances()
    else:  # a dataset that selected no event has no category to index (growing axes): an empty plane
        values = variances = np.zeros((len(m2_axis), len(theta_axis)))
    n_m2, n_th = values.shape
    if n_th % r:
        raise StatsError(f"theta_rebin {r} does not divide the {n_th} theta bins of '{cfg.scan.histogram}'")
    values = values.reshape(n_m2, n_th // r, r).sum(axis=2)
    variances = variances.reshape(n_m2, n_th // r, r).sum(axis=2)
    return values, variances, m2_axis.edges, theta_axis.edges[::r]


def core_width(edges: np.ndarray, counts: np.ndarray, centre: float, width: float, iterations: int = 5) -> tuple[float, float]:
    """(mean, sigma) of a peak's Gaussian core from a histogram: a Gaussian fitted to the bins within +-2 sigma,
    iterated from (``centre``, ``width``), as processors/resolution.py gaussian_core does on events."""
    from scipy.optimize import curve_fit

    mid = 0.5 * (edges[1:] + edges[:-1])
    mean, sigma = centre, width
    gauss = lambda t, a, m, s: a * np.exp(-0.5 * ((t - m) / s) ** 2)  # noqa: E731
    for _ in range(iterations):
        inside = np.abs(mid - mean) < 2 * sigma
        if inside.sum() < 4 or counts[inside].sum() <= 0:
            break
        popt, _ = curve_fit(gauss, mid[inside], counts[inside], p0=(counts[inside].max(), mean, sigma),
                            sigma=np.sqrt(np.maximum(counts[inside], counts[inside].max() * 1e-3)), maxfev=20000)
        mean, sigma = float(popt[1]), abs(float(popt[2]))
    return mean, sigma


class NoSignalSamples(StatsError):
    """The run has no usable sample of the scan's signal process (none, or all below ``min_signal_events``)."""


def signal_samples(run: RunOutput, cfg: ScanConfig, paper_sigma: dict[float, float]) -> tuple[SignalSamples, list[str]]:
    """Per usable sample of the scan's signal process: efficiency, M2 peak and width (``SignalSamples``).

    A narrow Z''s peak and core sigma(M2) are fitted (``core_width``, from the paper's resolution). A wide Z''s are
    the model's: M^2 and hypot(resolution, M Gamma), the Breit-Wigner's half width in M2 -- its 700-800 selected
    events of a 5,000-event sample spread over 2 x 3-6 GeV^2 at 0.05 GeV^2 per bin, which a Gaussian core fits as
    noise, and from 7 GeV on the cross section, falling across the Breit-Wigner, leaves no peak at M^2 at all. The
    window catches less of such a signal; its template (the sample's own histogram) says how much."""
    width_over_mass = signal_model(cfg.signal_process).width_over_mass
    rows, notes = [], []
    for name, info in run.datasets.items():
        if info.get("kind") != "signal" or not of_process(name, info.get("process"), cfg.signal_process):
            continue
        values, variances, m2_edges, _ = _hist2d(run, name, cfg)
        total, var = float(values.sum()), float(variances.sum())
        n_eff = float(zb.effective_events(total, var))
        mass = float(info["parameters"]["mass"])
        if n_eff < cfg.scan.min_signal_events:
            notes.append(f"{name}: {n_eff:.0f} effective selected events < {cfg.scan.min_signal_events:g}; not used")
            continue
        resolution = paper_sigma[min(paper_sigma, key=lambda m: abs(m - mass))]
        if width_over_mass > 0:
            peak, sigma = mass**2, float(np.hypot(resolution, width_over_mass * mass**2))
        else:
            peak, sigma = core_width(m2_edges, values.sum(axis=1), mass**2, resolution)
        xs = float(info["cross_section_nb"])
        rows.append((mass, total / (xs * FB_PER_NB * run.luminosity_fb), peak, sigma, values / total, n_eff, xs, name))
    if not rows:
        raise NoSignalSamples(f"zprime: no {cfg.signal_process} signal dataset with >= {cfg.scan.min_signal_events:g} "
                         "effective selected events in the run")
    rows.sort(key=lambda r: r[0])
    cols = list(zip(*rows))
    return SignalSamples(*(np.array(c, float) for c in cols[:4]), np.stack(cols[4]), np.array(cols[5]), np.array(cols[6]),
                         list(cols[7])), notes


def smooth_m2(values: np.ndarray, variances: np.ndarray, m2_edges: np.ndarray, width: float) -> tuple[np.ndarray, np.ndarray]:
    """(n_m2, n_theta) yields smoothed along M2 with a Gaussian of ``width`` GeV^2 (normalised kernel, so the
    total is kept up to the range's ends); variances with the squared kernel (each event spread, not copied)."""
    bw = m2_edges[1] - m2_edges[0]
    half = int(np.ceil(4 * width / bw))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * bw / width) ** 2)
    kernel /= kernel.sum()
    # factorised: the smoothed M2 spectrum times the process's theta_recoil shape over its whole M2 range (a
    # few heavy events smoothed in M2 alone would still leave most theta bins empty)
    theta = values.sum(axis=0) / max(values.sum(), 1e-300)
    theta_var = variances.sum(axis=0) / max(variances.sum(), 1e-300)
    m2 = np.convolve(values.sum(axis=1), kernel, mode="same")
    m2_var = np.convolve(variances.sum(axis=1), kernel**2, mode="same")
    return m2[:, None] * theta[None, :], m2_var[:, None] * theta_var[None, :]


def _pass_by_mass(run: RunOutput, dataset: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | tuple[()]:
    """(trained masses, (J, n_m2) M2 spectra, variances) of the processor's ``m2_pass`` histogram; () if absent."""
    h = run.histograms[dataset].get("m2_pass")
    if h is None or CHANNEL not in h.axes["channel"] or "selected" not in h.axes["region"]:
        return ()
    keys = sorted(h.axes["trained"], key=float)
    if not keys:
        return ()
    cut = [h[{"channel": CHANNEL, "region": "selected", "trained": key}] for key in keys]
    return (np.array([float(key) for key in keys]), np.stack([c.values() for c in cut]), np.stack([c.variances() for c in cut]))


def spectra(run: RunOutput, cfg: ScanConfig) -> Spectra:
    bkg = var = obs = None
    sets = {}
    factor_inputs: dict[str, FactorInputs] = {}
    factorised = cfg.background_estimate == "factorised"
    if factorised and cfg.factorised.before_region == cfg.scan.region:
        raise StatsError(f"zprime: background_estimate factorised needs scan.region ('{cfg.scan.region}') to differ "
                         "from factorised.before_region (the pre-classifier region)")
    edges = None
    for name, info in run.datasets.items():
        kind = info.get("kind")
        if kind not in ("background", "data"):
            continue
        values, variances, m2_edges, theta_edges = _hist2d(run, name, cfg)
        edges = (m2_edges, theta_edges)
        if kind == "data":
            obs = values if obs is None else obs + values
            continue
        process = str(info.get("process", name))
        width = cfg.smoothing.m2_sigma.get(process, 0.0)
        if factorised:
            before, before_var, _, _ = _hist2d(run, name, cfg, cfg.factorised.before_region)
            raw = (values.sum(axis=1), variances.sum(axis=1), before.sum(axis=1), before_var.sum(axis=1))
            if width > 0:
                before, before_var = smooth_m2(before, before_var, m2_edges, width)
        if width > 0:  # a slowly varying process: its sparse weighted events spread over +-several GeV^2
            values, variances = smooth_m2(values, variances, m2_edges, width)
        if factorised:
            factor_inputs[name] = FactorInputs(variances, before, before_var, *raw,
                                               *(_pass_by_mass(run, name) if cfg.factorised.sidebands_at_hypothesis else ()))
        bkg = values if bkg is None else bkg + values
        var = variances if var is None else var + variances
        weight = float(info.get("max_event_weight") or info.get("scale") or 0.0)
        sets[name] = (weight, process, values)
    if bkg is None:
        raise StatsError("zprime: the run has no background dataset")
    return Spectra(edges[0], edges[1], bkg, var, obs, sets, factor_inputs)


# ---------------------------------------------------------------------------------------------- hypotheses
def interpolate(mass: np.ndarray, at: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Linear in M_Z' between samples, constant beyond the ends."""
    return np.interp(mass, at, values)


def hypotheses(samples: SignalSamples, cfg: ScanConfig) -> np.ndarray:
    """Masses equally spaced in M2 at step_over_sigma x sigma(M2): the cumulative of 1 / step on a fine
    M2 grid, read at integer values."""
    lo, hi = cfg.scan.mass_range or (samples.mass[0], samples.mass[-1])
    fine_m = np.sqrt(np.linspace(lo**2, hi**2, 20001))
    step = cfg.scan.step_over_sigma * interpolate(fine_m, samples.mass, samples.sigma)
    fine_m2 = fine_m**2
    cumulative = np.concatenate([[0.0], np.cumsum(np.diff(fine_m2) / (0.5 * (step[1:] + step[:-1])))])
    return np.sqrt(np.interp(np.arange(0.0, cumulative[-1] + 1e-9), cumulative, fine_m2))


@dataclass(frozen=True)
class Plan:
    """Per hypothesis: mass, nearest sample, peak, sigma(M2), efficiency, window (first M2 bin, bins)."""

    mass: np.ndarray
    nearest: np.ndarray
    peak: np.ndarray
    sigma: np.ndarray
    efficiency: np.ndarray
    first: np.ndarray
    width: np.ndarray


def plan(masses: np.ndarray, samples: SignalSamples, m2_edges: np.ndarray, cfg: ScanConfig) -> Plan:
    nearest = np.argmin(np.abs(masses[:, None] - samples.mass[None, :]), axis=1)
    offset = samples.peak - samples.mass**2   # FSR pulls the peak above M^2
    peak = masses**2 + interpolate(masses, samples.mass, offset)
    sigma = interpolate(masses, samples.mass, samples.sigma)
    eff = interpolate(masses, samples.mass, samples.efficiency)
    bw = m2_edges[1] - m2_edges[0]
    n = len(m2_edges) - 1
    half = cfg.scan.half_width_sigma * sigma
    first = np.clip(np.round((peak - half - m2_edges[0]) / bw).astype(int), 0, n - 1)
    last = np.clip(np.round((peak + half - m2_edges[0]) / bw).astype(int), first + 1, n)
    return Plan(masses, nearest, peak, sigma, eff, first, last - first)


def _stretched(samples: SignalSamples, p: Plan, m2_edges: np.ndarray, k: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Signal fractions (H, k, n_theta) in each hypothesis's window bins: the nearest sample's cumulative M2
    distribution (per theta bin) read at the window's edges mapped back to the sample's peak and width
    (width x ``scale``); and the window mask (H, k)."""
    bw = m2_edges[1] - m2_edges[0]
    idx = p.first[:, None] + np.arange(k + 1)[None, :]                   # (H, k + 1) edge indices
    mask = np.arange(k)[None, :] < p.width[:, None]
    edge = m2_edges[0] + bw * np.minimum(idx, p.first[:, None] + p.width[:, None])
    s = p.nearest
    mapped = samples.peak[s][:, None] + (edge - p.peak[:, None]) * (samples.sigma[s] / (p.sigma * scale))[:, None]
    cum = np.concatenate([np.zeros((len(samples.mass), 1, samples.shape.shape[2])), np.cumsum(samples.shape, axis=1)], axis=1)
    pos = np.clip((mapped - m2_edges[0]) / bw, 0.0, cum.shape[1] - 1.0)
    i0 = np.minimum(np.floor(pos).astype(int), cum.shape[1] - 2)
    frac = (pos - i0)[:, :, None]
    c = cum[s[:, None], i0] * (1 - frac) + cum[s[:, None], i0 + 1] * frac   # (H, k + 1, n_theta)
    # rounding in the cumulative differences can leave -1e-18 in empty bins: a negative template would make
    # nu < 0 for any signal
    return np.where(mask[:, :, None], np.maximum(np.diff(c, axis=1), 0.0), 0.0), mask


def _gather(hist2d: np.ndarray, p: Plan, k: int) -> np.ndarray:
    idx = np.minimum(p.first[:, None] + np.arange(k)[None, :], hist2d.shape[0] - 1)
    mask = np.arange(k)[None, :] < p.width[:, None]
    return np.where(mask[:, :, None], hist2d[idx], 0.0)


def window_bin_centres(m2_edges: np.ndarray, p: Plan, k: int) -> np.ndarray:
    """(H, k) M2_recoil centres of each window's bins (bins past a window's width: its last bin's)."""
    index = p.first[:, None] + np.minimum(np.arange(k)[None, :], p.width[:, None] - 1)
    return 0.5 * (m2_edges[index] + m2_edges[index + 1])


def range_values(m2: np.ndarray, ranges: list[M2Range], attr: str) -> np.ndarray:
    """The systematic ``attr`` of the M2_recoil range holding each m2 (the nearest range outside them all)."""
    lo = np.array([r.m2[0] for r in ranges])
    hi = np.array([r.m2[1] for r in ranges])
    dist = np.maximum(lo[None, :] - m2[:, None], 0) + np.maximum(m2[:, None] - hi[None, :], 0)
    return np.array([getattr(r, attr) for r in ranges])[np.argmin(dist, axis=1)]


@dataclass(frozen=True)
class Model:
    windows: ts.Windows
    signal_per_fb: np.ndarray     # (H,) window signal events per fb of sigma x BR
    mc_bound: np.ndarray          # (H,) events of MC statistical bound added
    background: np.ndarray        # (H,) background in the window (with the bound)
    # background_estimate factorised: per background dataset, (H,) True where its window is factorised
    factorised: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    background_plain: np.ndarray | None = None   # (H,) the plain after-cut window background (no bound)
    factorised_at_hypothesis: bool = False        # sideband pass fractions from the processor's m2_pass


def build(samples: SignalSamples, spec: Spectra, p: Plan, cfg: ScanConfig, luminosity_fb: float,
          observed: np.ndarray | None = None) -> Model:
    """The fit windows of every hypothesis; ``observed``: a 2D histogram instead of the run's (toys)."""
    k = int(p.width.max())
    shape, mask = _stretched(samples, p, spec.m2_edges, k, 1.0)
    up, _ = _stretched(samples, p, spec.m2_edges, k, 1.0 + cfg.systematics.resolution)
    down, _ = _stretched(samples, p, spec.m2_edges, k, 1.0 / (1.0 + cfg.systematics.resolution))
    per_fb = p.efficiency * luminosity_fb   # selected signal events per fb of sigma x BR (all bins)
    b = _gather(spec.background, p, k)
    var = _gather(spec.background_var, p, k)
    b_plain = b.sum(axis=(1, 2))
    factorised: dict[str, np.ndarray] = {}
    # per dataset the weight an "empty" window's bound carries: one event, times the pass fraction if factorised
    bound_weight: dict[str, np.ndarray] = {}
    if spec.factor_inputs:
        b, var = np.zeros_like(b), np.zeros_like(var)
        f = cfg.factorised
        for name, fi in spec.factor_inputs.items():  # a loop over background datasets
            weight, process, values = spec.background_sets[name]
            est = _factorised_dataset(fi, values, spec.m2_edges, p, k, f, weight, f.exclude_m2.get(process))
            b, var = b + est.values, var + est.variances
            factorised[name] = est.factorised
            # a factorised window is empty when the pre-cut template is (< two events' weight): one event x eps.
            # A plain window with >= min_events effective events after the cut has measured its yield: no bound;
            # one kept plain below that (over an excluded M2 range) is empty as in the plain estimate
            empty_before = _gather(fi.before, p, k).sum(axis=(1, 2)) < 2.0 * weight
            empty_after = (_gather(values, p, k).sum(axis=(1, 2)) < 2.0 * weight) & (est.plain_events < f.min_events)
            bound_weight[name] = np.where(est.factorised, np.where(empty_before, weight * est.pass_fraction.eps, 0.0),
                                          np.where(empty_after, weight, 0.0))
    shape_unc = range_values(p.peak, cfg.systematics.ranges, "background_shape")
    bound = np.zeros(len(p.mass))
    if cfg.mc_bound.enabled:
        lo_m2 = spec.m2_edges[p.first]
        hi_m2 = spec.m2_edges[p.first + p.width]
        for name, (weight, process, values) in spec.background_sets.items():  # a loop over datasets
            reach = cfg.mc_bound.reach.get(process)
            can = np.ones(len(p.mass), bool) if reach is None else (hi_m2 > reach[0]) & (lo_m2 < reach[1])
            if name in bound_weight:
                bound += np.where(can, bound_weight[name], 0.0)
                continue
            # "empty": less than two simulated events' weight in the window; a window holding one event of a
            # 1e5-weight sample has measured its yield no better than an empty one, and without this the
            # limit would jump down wherever a single heavy event sits (all other bins background-free)
            # (a smoothed dataset: its events within a few kernel widths count, each spread over the kernel)
            empty = _gather(values, p, k).sum(axis=(1, 2)) < 2.0 * weight
            bound += np.where(can & empty, weight, 0.0)
    n_theta = b.shape[2]
    cells = (mask.sum(axis=1) * n_theta).astype(float)
    flat = np.where(mask[:, :, None], (bound / cells)[:, None, None], 0.0)
    b_all = b + flat
    # per fit bin: the window's background-shape uncertainty and, by the bin's own M2_recoil, the photon veto's
    shape_var = np.broadcast_to(shape_unc[:, None] ** 2, mask.shape)
    if cfg.systematics.photon_veto is not None:
        shape_var = shape_var + cfg.systematics.photon_veto.at(window_bin_centres(spec.m2_edges, p, k)) ** 2
    sigma_b = np.sqrt(shape_var[:, :, None] * b**2 + var + flat**2)
    obs = observed if observed is not None else (spec.observed if spec.observed is not None else None)
    n = _gather(obs, p, k) if obs is not None else b_all
    flat_shape = lambda a: a.reshape(len(p.mass), -1)  # noqa: E731  (H, K x n_theta), as observed_windows
    total = np.maximum(flat_shape(shape).sum(axis=1), 1e-300)
    eff_unc = range_values(p.peak, cfg.systematics.ranges, "efficiency")
    w = ts.Windows(
        n=flat_shape(n), s=flat_shape(shape) / total[:, None], s_up=flat_shape(up) / total[:, None],
        s_down=flat_shape(down) / total[:, None], b=flat_shape(b_all), sigma_b=flat_shape(sigma_b),
        kappa=np.hypot(eff_unc, cfg.systematics.luminosity), mask=np.repeat(mask, n_theta, axis=1))
    at_hypothesis = any(fi.pass_masses is not None for fi in spec.factor_inputs.values())
    return Model(w, per_fb * total, bound, flat_shape(b_all).sum(axis=1), factorised, b_plain, at_hypothesis)


def background_spectrum(w: ts.Windows, p: Plan, plain: np.ndarray) -> np.ndarray:
    """The background the fits expect as one (M2, theta) spectrum, for toys: each M2 bin takes the background of
    the window centred nearest to it (its factorised yields and MC bound included), bins outside every window the
    plain simulated spectrum ``plain``. Poisson toys of it fluctuate each window around the b its fit uses, with
    overlapping windows sharing their counts (toys of the plain after-cut spectrum would sit below the factorised
    windows and bias the toys' limits low)."""
    n_theta = plain.shape[1]
    k = int(p.width.max())
    b = w.b.reshape(len(p.mass), k, n_theta)
    h, i = np.nonzero(np.arange(k)[None, :] < p.width[:, None])          # every (hypothesis, window bin) pair
    bins = p.first[h] + i
    distance = np.abs(i + 0.5 - p.width[h] / 2.0)                        # from the window's centre, in bins
    order = np.lexsort((distance, bins))                                 # per M2 bin, the nearest centre first
    first_of_bin = np.unique(bins[order], return_index=True)[1]
    nearest = order[first_of_bin]
    out = np.array(plain, dtype=float, copy=True)
    out[bins[nearest]] = b[h[nearest], i[nearest]]
    return out


def observed_windows(w: ts.Windows, observed: np.ndarray, p: Plan) -> ts.Windows:
    """``w`` with its counts taken from the 2D histogram ``observed`` (a toy), as ``build`` gathers them: nothing
    else in the windows depends on the observation, so toys need not rebuild the templates."""
    return dataclasses.replace(w, n=_gather(observed, p, int(p.width.max())).reshape(len(p.mass), -1))


def _gather_1d(spectrum: np.ndarray, p: Plan) -> np.ndarray:
    """Sum of a (n_m2,) spectrum over each hypothesis's window bins (H,)."""
    cum = np.concatenate([[0.0], np.cumsum(spectrum)])
    return cum[p.first + p.width] - cum[p.first]


def sideband_pass_fraction(fi: FactorInputs, m2_edges: np.ndarray, p: Plan, f: Factorised, one_event_weight: float = 0.0,
                           exclude: tuple[float, float] | None = None, systematic: float = 0.0) -> zb.PassFraction:
    """The sidebands' pass fraction of every window: with the run's ``m2_pass``, the sideband events classified at the
    trained mass nearest the hypothesis (as the window's events mostly are); else each at its nearest trained mass."""
    args = (m2_edges, f.sideband_widths, f.min_events, one_event_weight, exclude, systematic)
    if fi.pass_masses is None:
        return zb.sideband_pass_fraction(fi.raw_before_m2, fi.raw_before_m2_var, fi.raw_after_m2, fi.raw_after_m2_var,
                                         m2_edges, p.first, p.width, *args[1:])
    trained = nearest_mass(p.mass**2, fi.pass_masses)
    parts = {}
    for j in np.unique(trained):   # a loop over the trained masses, each vectorised over its windows
        rows = trained == j
        parts[j] = (rows, zb.sideband_pass_fraction(fi.raw_before_m2, fi.raw_before_m2_var, fi.raw_pass_m2[j],
                                                    fi.raw_pass_m2_var[j], m2_edges, p.first[rows], p.width[rows],
                                                    *args[1:]))
    out = {k: np.zeros(len(p.mass)) for k in ("eps", "var", "events_after", "sideband_width")}
    for rows, pf in parts.values():
        for k in out:
            out[k][rows] = getattr(pf, k)
    return zb.PassFraction(**out)


def _factorised_dataset(fi: FactorInputs, after: np.ndarray, m2_edges: np.ndarray, p: Plan, k: int,
                        f: Factorised, one_event_weight: float, exclude: tuple[float, float] | None = None
                        ) -> zb.WindowEstimate:
    """One background dataset's after-cut windows: plain where the raw after-cut window has ``f.min_events``
    effective events, else the (smoothed) pre-cut window x the sidebands' pass fraction."""
    systematic = f.closure_systematic if fi.pass_masses is not None else f.closure_systematic_nearest
    pf = sideband_pass_fraction(fi, m2_edges, p, f, one_event_weight, exclude, systematic)
    plain_events = zb.effective_events(_gather_1d(fi.raw_after_m2, p), _gather_1d(fi.raw_after_m2_var, p))
    force = None
    if exclude is not None:
        force = (m2_edges[p.first + p.width] > exclude[0]) & (m2_edges[p.first] < exclude[1])
    return zb.factorised_window(_gather(fi.before, p, k), _gather(fi.before_var, p, k), _gather(after, p, k),
                                _gather(fi.after_var, p, k), plain_events, pf, f.min_events, force)


# ---------------------------------------------------------------------------------------------- couplings
def signal_model(process: str) -> ZprimeCoupling:
    """The L_mu - L_tau model a signal process was generated with (configs/processes.yaml zprime_model)."""
    zm = load_catalogue().get(process).zprime_model
    if zm is None:
        raise StatsError(f"zprime: signal process '{process}' has no zprime_model (configs/processes.yaml)")
    return zm


def coupling_models(zm: ZprimeCoupling) -> tuple[str, ...]:
    """The invisible-BR models whose g' a sample model's limits convert to: both for a negligible width (BR(inv)
    follows from the widths at any g'); only its own for a wide Z' (the width is set apart from g', by alpha_D in
    the fully invisible model: the paper's Gamma = 0.1 M benchmark)."""
    return MODELS if zm.width_over_mass == 0.0 else (zm.invisible,)


def signal_label(process: str, tex: bool = False) -> str:
    """The signal model in words (limits.json) or in TeX (plots): its width, and its invisible model if wide."""
    zm = signal_model(process)
    if zm.width_over_mass == 0.0:
        return "negligible width"
    if tex:
        return rf"$\Gamma_{{Z'}} = {zm.width_over_mass:g}\,M_{{Z'}}$, {zm.invisible.replace('_', ' ')}"
    return f"Gamma = {zm.width_over_mass:g} M_Z', {zm.invisible.replace('_', ' ')}"


def unit_coupling_cross_section(samples: SignalSamples, masses: np.ndarray, model: str,
                                process: str = "sig_zprime") -> np.ndarray:
    """sigma(e+e- -> mu mu Z') x BR(inv) in fb at g' = 1 for ``model``, from the samples' cross sections
    (sigma x BR at the process's g' and model, with ISR): divided by g'^2 and that BR, log-interpolated in M.
    With a fixed width (a wide Z') sigma still scales as g'^2."""
    zm = signal_model(process)
    if model not in coupling_models(zm):
        raise StatsError(f"zprime: {process} (Gamma/M = {zm.width_over_mass:g}, {zm.invisible}) gives no g' in the {model} model")
    br_sample = lmu_ltau.invisible_branching_fraction(samples.mass, zm.invisible)
    sigma_total = samples.cross_section_nb * FB_PER_NB / zm.coupling**2 / br_sample
    log_sigma = np.interp(masses, samples.mass, np.log(sigma_total))
    return np.exp(log_sigma) * lmu_ltau.invisible_branching_fraction(masses, model)


# ---------------------------------------------------------------------------------------------- scan
@dataclass(frozen=True)
class Scan:
    table: ScanTable
    model: Model
    plan: Plan
    samples: SignalSamples
    fits: ts.Fits


def local_z(w: ts.Windows) -> np.ndarray:
    fits = ts.fit_all(w)
    return ts.local_significance(w, fits)


def compute(results_dir: str | Path, settings: Settings | None = None, cfg: ScanConfig | None = None) -> tuple[ScanTable, dict]:
    """The scan table and the limits.json document (nothing written)."""
    s = settings or Settings()
    cfg = cfg or load_scan_config(s.scan_config_of(SIGNAL))
    if s.scan_method == "pyhf":
        raise UserError("zprime: the scan runs the vectorised fits (stats/template_scan.py); their pyhf cross-check "
                        "is benchmarks/bench_zprime_scan.py")
    run = load_run_output(results_dir, SIGNAL)
    if run.experiment != cfg.experiment:
        raise StatsError(f"run output is for experiment '{run.experiment}', the stats model for '{cfg.experiment}'")
    cl = s.cl or cfg.cl
    start = time.perf_counter()
    search_cfg = get_search(SIGNAL).load_config()
    samples, notes = signal_samples(run, cfg, search_cfg.paper_m2_resolution)
    spec = spectra(run, cfg)
    masses = hypotheses(samples, cfg)
    p = plan(masses, samples, spec.m2_edges, cfg)
    model = build(samples, spec, p, cfg, run.luminosity_fb)
    prepared = time.perf_counter()
    limits, fits = ts.upper_limits(model.windows, cl)
    z = ts.local_significance(model.windows, fits)
    scanned = time.perf_counter()
    per_fb = model.signal_per_fb
    expected_fb = limits.expected[2] / per_fb
    # both kinds of toys fluctuate around the background the fits expect
    toy_mean = (np.maximum(background_spectrum(model.windows, p, np.maximum(spec.background, 0.0)), 0.0)
                if cfg.look_elsewhere.toys > 0 or cfg.background_toys.toys > 0 else None)
    minimum_toys = (toy_observed_limits(model.windows, p, toy_mean, cfg.background_toys, expected_fb, per_fb, cl)
                    if cfg.background_toys.toys > 0 else None)
    toy_columns = ({name: band / per_fb for name, band in
                    zip(TOY_EXPECTED_COLUMNS, toy_bands(model.windows, cfg.background_toys.toys, cfg.background_toys.seed, cl))}
                   if cfg.background_toys.toys > 0 and cfg.background_toys.bands else {})
    toys_done = time.perf_counter()
    couplings = {}
    models = coupling_models(signal_model(cfg.signal_process))
    for m in models:
        unit = unit_coupling_cross_section(samples, masses, m, cfg.signal_process)
        couplings[f"coupling_observed_{m}"] = lmu_ltau.coupling_limit(limits.observed / per_fb, unit)
        couplings[f"coupling_expected_{m}"] = lmu_ltau.coupling_limit(expected_fb, unit)
        couplings[f"sigma_unit_coupling_fb_{m}"] = unit
    table = ScanTable.from_arrays(
        CHANNEL, masses, limits.observed / per_fb, limits.expected / per_fb, z, p.sigma / (2 * masses),
        metadata={"search": SIGNAL, "poi": cfg.poi, "unit": "fb", "cl": cl, "experiment": cfg.experiment,
                  "luminosity_fb": run.luminosity_fb},
        m2_sigma=p.sigma, efficiency=p.efficiency, window_signal_per_fb=per_fb, window_background=model.background,
        mc_bound_events=model.mc_bound, window_background_plain=model.background_plain,
        factorised_datasets=np.array([",".join(sorted(d for d, use in model.factorised.items() if use[i]))
                                      for i in range(len(masses))], dtype=object),
        signal_events_observed=limits.observed, signal_events_expected=limits.expected[2],
        signal_yield_fit=fits.free.x, nearest_sample=np.array([samples.datasets[i] for i in p.nearest], dtype=object),
        **toy_columns, **couplings)
    # look-elsewhere: background-only Poisson toys of the whole 2D spectrum through the same fast fits
    calibration = None
    if cfg.look_elsewhere.toys > 0:
        rng = np.random.default_rng(cfg.look_elsewhere.seed)
        toy_z = np.stack([local_z(observed_windows(model.windows, rng.poisson(toy_mean).astype(float), p))
                          for _ in toy_progress(cfg.look_elsewhere.toys, "look-elsewhere toys")])   # each vectorised
        calibration = calibrate(toy_z, cfg.look_elsewhere.level)
    minimum = (minimum_observed_limit(minimum_toys, expected_fb, p.mass, cfg.background_toys)
               if minimum_toys is not None else None)
    excess = largest_excess(table, {CHANNEL: calibration} if calibration else None)
    total_cal = scan_calibration(table, {CHANNEL: calibration} if calibration else None)
    table.metadata["look_elsewhere"] = {"calibration": total_cal.to_dict()}
    finished = time.perf_counter()
    best = table.frame.loc[table.frame["expected"].idxmin()]
    asimov = spec.observed is None
    on_bound = int(np.sum(model.mc_bound > 0))
    if on_bound:
        notes.append(f"{on_bound} of {len(masses)} windows carry an MC statistical bound (a background dataset with no "
                     "simulated event there): their limits say what these sample sizes can exclude")
    entry = {
        "signal": SIGNAL, "label": "e+e- -> mu mu Z', Z' -> invisible", "limit": CHANNEL, "channels": [CHANNEL],
        "hypotheses": int(len(table)), "hypothesis": {"mass": float(best["mass"])},
        "cl": cl, "calculator": "asymptotics",
        "method": "per-mass 2D template fit (M2_recoil x theta_recoil), vectorised (stats/template_scan.py), asymptotic qtilde CLs",
        "poi": cfg.poi,
        "physics": {"quantity": QUANTITY, "unit": "fb", "observed": float(best["observed"]),
                    "expected": [float(best[c]) for c in EXPECTED_COLUMNS]},
        "normalisation": {"efficiency": float(best["efficiency"]), "luminosity_fb": run.luminosity_fb},
        "observed_limit_range": [float(table.frame["observed"].min()), float(table.frame["observed"].max())],
        "largest_local_significance": float(np.nanmax(z)),
        "published": PUBLISHED,
        # the like-with-like partner of the published smallest observed limit
        "minimum_observed_limit": minimum,
        # the paper's expected curve is the toys' median ("the median limits from background-only simulated
        # samples"): its best value, beside the Asimov median of "physics"
        "expected_paper_convention": toy_expected_summary(table) if toy_columns else None,
        "asimov_observation": asimov, "background_from_mc_bound": bool(on_bound),
        "background_events": float(best["window_background"]),   # in the best hypothesis's window (with any bound)
    }
    document = {
        "search": SIGNAL, "experiment": cfg.experiment, "luminosity_fb": run.luminosity_fb, "cl": cl, "poi": cfg.poi,
        "observations": "Asimov: the simulated background (no data dataset); the 'observed' limits are expected ones"
        if asimov else "pseudo-data",
        "notes": notes, "hypotheses": int(len(table)), "curves": 1, "scan_table": "scan.parquet (also scan.csv)",
        "signal_samples": {d: {"mass": float(m), "efficiency": float(e), "m2_peak": float(pk), "m2_sigma": float(sg),
                               "effective_events": float(n)}
                           for d, m, e, pk, sg, n in zip(samples.datasets, samples.mass, samples.efficiency, samples.peak,
                                                         samples.sigma, samples.effective_events)},
        "signal_model": signal_label(cfg.signal_process),
        "couplings": {m: {"best_expected": float(np.nanmin(couplings[f"coupling_expected_{m}"])),
                          "at_mass_max_expected": float(couplings[f"coupling_expected_{m}"][-1])} for m in models},
        "background_estimate": background_estimate_summary(cfg, model, masses),
        "largest_excess": excess.to_dict(), "look_elsewhere": table.metadata["look_elsewhere"],
        "seconds": {"prepare": round(prepared - start, 2), "scan": round(scanned - prepared, 2),
                    "background_toys": round(toys_done - scanned, 2), "look_elsewhere": round(finished - toys_done, 2)},
        "limits": [entry],
    }
    return table, document


def toy_progress(n: int, what: str) -> Iterable[int]:
    """range(n) behind a transient progress bar on a terminal: a paper-mode scan's toys take minutes."""
    from rich.progress import track

    return track(range(n), description=f"zprime: {what}", transient=True)


@dataclass(frozen=True)
class ToyLimits:
    """The observed sigma x BR limits (fb) of background-only toys: ``observed`` (toys, len(rows)) at the
    hypotheses ``rows``."""

    rows: np.ndarray
    observed: np.ndarray
    seed: int


def toy_observed_limits(w: ts.Windows, p: Plan, background: np.ndarray, cfg: BackgroundToys, expected_fb: np.ndarray,
                        per_fb: np.ndarray, cl: float) -> ToyLimits:
    """Poisson toys of the whole spectrum ``background`` (:func:`background_spectrum`: overlapping windows share
    their counts, as the minimum of one observed curve needs), each through the same vectorised fits, observed
    curve only, at the hypotheses the minimum needs (median expected limit within ``minimum_within`` of the best)."""
    rows = np.flatnonzero(expected_fb <= cfg.minimum_within * np.nanmin(expected_fb))
    rng = np.random.default_rng(cfg.seed)
    observed = np.empty((cfg.toys, len(rows)))
    for t in toy_progress(cfg.toys, "toys of the smallest observed limit"):   # each vectorised over the hypotheses
        windows = ts.subset(observed_windows(w, rng.poisson(background).astype(float), p), rows)
        observed[t] = ts.upper_limits(windows, cl, bands=False)[0].observed / per_fb[rows]
    return ToyLimits(rows, observed, cfg.seed)


def toy_bands(w: ts.Windows, toys: int, seed: int, cl: float) -> np.ndarray:
    """(5, H) expected limits in signal events, -2..+2 sigma, as the paper constructs them: the quantiles of
    the observed limit over background-only toys. A hypothesis's band depends on its own window alone, so each
    window draws its own counts from the background its fit expects (``w.b``, factorised yields and MC bounds
    included): neighbouring windows need not agree on one spectrum (their factorised yields differ), and a toy
    of a shared spectrum would fluctuate a window around another window's background."""
    rng = np.random.default_rng([seed, 1])   # a stream of its own, beside the minimum's
    observed = np.stack([ts.upper_limits(dataclasses.replace(w, n=rng.poisson(w.b).astype(float)), cl, bands=False)[0].observed
                         for _ in toy_progress(toys, "toys of the expected bands")])   # each vectorised over the hypotheses
    return np.nanpercentile(observed, 100.0 * ndtr(np.asarray(BAND_SIGMAS, dtype=float)), axis=0)


def toy_expected_summary(table: ScanTable) -> dict:
    """The best (smallest) toy median expected limit of the scan and where, with its band there."""
    f = table.frame
    i = f["toy_expected"].idxmin()
    return {"physics": float(f.loc[i, "toy_expected"]), "mass": float(f.loc[i, "mass"]),
            "band": [float(f.loc[i, c]) for c in TOY_EXPECTED_COLUMNS],
            "asimov_at_mass": float(f.loc[i, "expected"]),
            "definition": "the median observed limit in background-only Poisson toys (the paper's expected curve, "
                          "PRL 130 231801 Fig. 2); scan table toy_expected_* columns"}


def minimum_observed_limit(toys: ToyLimits, expected_fb: np.ndarray, mass: np.ndarray, cfg: BackgroundToys) -> dict:
    """The smallest observed sigma x BR limit over the scan in background-only toys: the like-with-like
    partner of a paper's "upper limits as small as X" (PRL 130 231801: 0.2 fb). The minimum of an observed
    curve over hundreds of overlapping windows sits below the best median expected limit, as the minimum of
    many draws does. Over the hypotheses the toys were fitted at (:func:`toy_observed_limits`: median expected
    limit within ``minimum_within`` of the best)."""
    minima = np.nanmin(toys.observed, axis=1)
    at = mass[toys.rows][np.nanargmin(toys.observed, axis=1)]
    q16, q50, q84 = np.percentile(minima, [16, 50, 84])
    return {"toys": int(len(minima)), "seed": toys.seed, "within": cfg.minimum_within, "hypotheses": int(len(toys.rows)),
            "best_expected": float(np.nanmin(expected_fb)), "median": float(q50), "quantiles_16_84": [float(q16), float(q84)],
            "minima": minima.tolist(), "at_mass": at.tolist(), "published": PUBLISHED["observed"],
            "definition": "the smallest observed limit over the scan (fb) in background-only Poisson toys, beside the "
                          "paper's 'upper limits as small as' (the minimum of its observed curve)"}


def background_estimate_summary(cfg: ScanConfig, model: Model, masses: np.ndarray) -> dict:
    """limits.json's record of which windows used the factorised background, per dataset."""
    out: dict = {"method": cfg.background_estimate}
    if cfg.background_estimate == "factorised":
        f = cfg.factorised
        at_hypothesis = f.sidebands_at_hypothesis and bool(model.factorised_at_hypothesis)
        out["sidebands_classified_at"] = ("the window's hypothesis (nearest trained mass; processor histogram m2_pass)"
                                          if at_hypothesis else "each event's nearest trained mass (region classified)")
        out["settings"] = {"before_region": f.before_region, "min_events": f.min_events,
                           "sideband_widths_gev2": [w if np.isfinite(w) else "all" for w in f.sideband_widths]}
        out["datasets"] = {d: {"factorised_windows": int(use.sum()), "plain_windows": int((~use).sum()),
                               "factorised_masses_gev": [float(m) for m in masses[use]]}
                           for d, use in sorted(model.factorised.items())}
        out["windows_with_any_factorised"] = int(np.any(np.stack(list(model.factorised.values())), axis=0).sum()) \
            if model.factorised else 0
    return out


# ---------------------------------------------------------------------------------------------- outputs
def write_plots(table: ScanTable, base: Path, experiment: str, lumi: float, cl: float, process: str = "sig_zprime",
                benchmarks: dict[str, ScanTable] | None = None) -> list[Path]:
    """limit_sigma (Asimov bands), limit_sigma_toys (toy bands, if computed), coupling, local_significance; with
    ``benchmarks`` (label -> their scan tables) also limit_sigma_benchmarks: their curves over this one's (Fig. 2)."""
    import matplotlib.pyplot as plt
    import mplhep

    f = table.frame.sort_values("mass")
    m = f["mass"].to_numpy()
    exp = f[list(EXPECTED_COLUMNS)].to_numpy().T
    label = signal_label(process, tex=True)
    ylabel = rf"{100 * cl:g}% CL UL on $\sigma(e^+e^-\to\mu^+\mu^-Z')\times\mathcal{{B}}(Z'\to$inv.) [fb]"
    written = plot_limit_curve(m, f["observed"].to_numpy(), exp, base / "limit_sigma", ylabel,
                               rf"$L_\mu - L_\tau$ $Z'$, {label}; expected bands: Asimov", experiment, lumi,
                               xlabel=r"$M_{Z'}$ [GeV/$c^2$]")
    if benchmarks:
        others = {name: (t.frame["mass"].to_numpy(), t.frame["observed"].to_numpy(), t.frame["expected"].to_numpy())
                  for name, t in benchmarks.items()}
        written += plot_limit_curve(m, f["observed"].to_numpy(), exp, base / "limit_sigma_benchmarks", ylabel,
                                    r"$L_\mu - L_\tau$ $Z'$; expected bands: Asimov", experiment, lumi,
                                    xlabel=r"$M_{Z'}$ [GeV/$c^2$]", others=others, label=label)
    if all(c in f.columns for c in TOY_EXPECTED_COLUMNS):   # the paper's construction of the bands
        written += plot_limit_curve(m, f["observed"].to_numpy(), f[list(TOY_EXPECTED_COLUMNS)].to_numpy().T,
                                    base / "limit_sigma_toys", ylabel,
                                    r"$L_\mu - L_\tau$ $Z'$; expected bands: background-only toys", experiment, lumi,
                                    xlabel=r"$M_{Z'}$ [GeV/$c^2$]")
    plt.style.use(mplhep.style.ROOT)
    for name, ylabel in (("coupling", rf"{100 * cl:g}% CL UL on $g'$"), ("local_significance", r"local significance [$\sigma$]")):
        fig, ax = plt.subplots(figsize=(8, 6))
        try:
            if name == "coupling":
                for model, colour in zip((mm for mm in MODELS if f"coupling_observed_{mm}" in f.columns), ("C0", "C3")):
                    ax.plot(m, f[f"coupling_observed_{model}"], "-", color=colour, lw=1.2, label=f"{model.replace('_', ' ')}, observed")
                    ax.plot(m, f[f"coupling_expected_{model}"], "--", color=colour, lw=1.0, label=f"{model.replace('_', ' ')}, expected")
                ax.set_yscale("log")
            else:
                ax.plot(m, f["local_significance"], "-", lw=0.8)
            ax.set_xlabel(r"$M_{Z'}$ [GeV/$c^2$]")
            ax.set_ylabel(ylabel)
            if name == "coupling":
                ax.legend(fontsize=10)
            written += save_figure(fig, base / name)
        finally:
            plt.close(fig)
    return written


def limit(search: str, results_dir: str | Path, settings: Settings | None = None, make_plots: bool = True,
          cfg: ScanConfig | None = None) -> SearchLimits:
    """The ``Search.scan`` hook: compute, then write the scan table, plots, HEPData record and limits.json."""
    if search != SIGNAL:
        raise UserError(f"analyses.zprime_scan.limit is zprime's scan, not '{search}''s")
    s = settings or Settings()
    cfg = cfg or load_scan_config(s.scan_config_of(SIGNAL))
    table, document = compute(results_dir, s, cfg)
    base = run_output_dir(results_dir, search)
    document["benchmarks"], tables = {}, {}
    for b in cfg.benchmarks:
        try:
            b_table, b_doc = compute(results_dir, s, benchmark_config(cfg, b))
        except NoSignalSamples as err:
            document["notes"].append(f"benchmark {b.process} not scanned: {err}")
            continue
        write_outputs(b_table, b_doc, base / b.output, make_plots, b.process)
        tables[signal_label(b.process, tex=True)] = b_table
        document["benchmarks"][b.output] = benchmark_summary(b, b_table, b_doc)
    write_outputs(table, document, base, make_plots, cfg.signal_process, tables)   # last: the main limits.json
    return SearchLimits(search, document)


def benchmark_config(cfg: ScanConfig, b: Benchmark) -> ScanConfig:
    """The scan of a benchmark signal model: the main configuration with its signal process, without toys."""
    return cfg.model_copy(update={"signal_process": b.process, "benchmarks": [],
                                  "look_elsewhere": cfg.look_elsewhere.model_copy(update={"toys": 0}),
                                  "background_toys": cfg.background_toys.model_copy(update={"toys": 0})})


def benchmark_summary(b: Benchmark, table: ScanTable, document: dict) -> dict:
    """The main limits.json's record of a benchmark scan: its best expected limit, where, and its files."""
    f = table.frame
    i = f["expected"].idxmin()
    return {"process": b.process, "signal_model": document["signal_model"], "hypotheses": int(len(f)),
            "best_expected": float(f.loc[i, "expected"]), "observed_there": float(f.loc[i, "observed"]),
            "mass": float(f.loc[i, "mass"]), "couplings": document["couplings"],
            "limits_json": f"{b.output}/limits.json"}


def write_outputs(table: ScanTable, document: dict, base: Path, make_plots: bool, process: str,
                  benchmarks: dict[str, ScanTable] | None = None) -> None:
    """scan.parquet / .csv, plots/, hepdata/ and (last: its presence means the set is complete) limits.json."""
    written = [table.write(base / "scan.parquet"), table.write(base / "scan.csv")]
    if make_plots:
        written += write_plots(table, base / "plots", document["experiment"], document["luminosity_fb"], document["cl"],
                               process, benchmarks)
    written += write_hepdata(table, base / "hepdata", QUANTITY, unit="fb", cl=document["cl"],
                             comment=f"zprime scan (belle-rare), {signal_label(process)}: {document['observations']}")
    document["files"] = [str(q.relative_to(base)) for q in written] + ["limits.json"]
    write_json(base / "limits.json", document)
