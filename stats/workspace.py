"""Build pyhf workspaces from the processors' histograms and a stats-model description.

One builder serves every use: a single channel or all of them, one signal or several (one
measurement per signal, the other signals' POIs fixed to 0), the nominal signal or one
hypothesis of a scan. Modifiers:

* ``normsys`` -- efficiency / cross-section uncertainties, given in the YAML;
* ``lumi`` -- pyhf's luminosity modifier, sized by ``luminosity_uncertainty``;
* ``staterror`` -- simulation statistics from the ``Weight()`` variances;
* ``histosys`` -- "<syst>Up" / "<syst>Down" slices of the ``variation`` axis (histograms
  without one give none);
* data-driven samples -- sideband count x transfer factor, with a Poisson (``shapesys``)
  constraint of the sideband statistics and a ``normsys`` for the transfer-factor uncertainty;
* the Monte Carlo statistical bound (:mod:`stats.mc_bound`) -- in a counting channel, every
  dataset that could populate a region and has no event there contributes its weight per event
  with 100 % uncertainty (a ``<sample>_mc_bound`` sample with a ``shapesys``, or folded into the
  sideband count and transfer factor of a data-driven estimate): an empty region is never b = 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from belle_rare.core.histograms import VARIATION_AXIS
from belle_rare.stats import histograms as H
from belle_rare.stats.errors import NoSignalError, StatsError
from belle_rare.core.histograms import physics_axes
from belle_rare.processors import registry  # the search config: the sideband fit's ellipse and sidebands
from belle_rare.stats.model_config import (BoundEfficiency, Channel, DataDriven, FactorisedEfficiency, HistoSys, Lumi, NormFactor, NormSys, Sample,
                                          SidebandFit, StatError, StatsConfig, TailFit)
from belle_rare.stats.histograms import RunOutput, Yields, fit_shape
from belle_rare.stats.sideband_fit import Plane, PlaneGeometry, SidebandEstimate, estimate_background
from belle_rare.stats.factorised import factorised_estimate, summed_estimate
from belle_rare.stats.tail_fit import fit_exponential_tail
from belle_rare.stats.mc_bound import BoundedCount, McBound, bounded_count, fill_empty_fraction, mc_bound

LUMI_PARAMETER = "lumi"


def poi_name(signal: str) -> str:
    return f"mu_{signal}"


@dataclass(frozen=True)
class Hypothesis:
    """The signal datasets that make one hypothesis (all of them for a search without a scan)."""

    signal: str
    datasets: tuple[str, ...]
    parameters: tuple[tuple[str, float], ...] = ()

    @property
    def label(self) -> str:
        if not self.parameters:
            return self.signal
        return self.signal + "_" + "_".join(f"{k}{v:g}" for k, v in self.parameters)

    def as_dict(self) -> dict:
        return dict(self.parameters)


@dataclass
class BuiltWorkspace:
    """A workspace spec and what went into it."""

    spec: dict
    signal_events: dict[str, dict[str, float]]  # signal -> channel -> expected events at POI = 1
    background_events: dict[str, float]  # channel -> expected background
    observed_events: dict[str, float]  # channel -> observed (or Asimov) total
    asimov: bool
    notes: list[str] = field(default_factory=list)
    # channel -> the MC statistical bounds its background rests on (sample, what, McBound.as_dict())
    mc_bounds: dict[str, list[dict]] = field(default_factory=dict)
    # channel -> the data-driven estimates computed (the one used and its cross-check), see stats.factorised
    background_estimates: dict[str, list[dict]] = field(default_factory=dict)
    # channel -> {sample: (sideband fit, geometry)} of the backgrounds the limit takes from a sideband fit
    sideband_fits: dict[str, dict] = field(default_factory=dict)


def hypotheses(config: StatsConfig, run: RunOutput, signal: str) -> list[Hypothesis]:
    """The hypotheses of ``signal``: one per distinct ``hypothesis`` in the metadata if it is scanned."""
    selected: set[str] = set()
    for channel in config.channels_with(signal):
        for sample in channel.samples:
            if sample.signal == signal:
                selected.update(sample.datasets.select(run.datasets))
    if not selected:
        raise StatsError(f"signal '{signal}': no dataset of the run matches its samples")
    keys = config.signals[signal].scan
    if not keys:
        return [Hypothesis(signal, tuple(sorted(selected)))]
    groups: dict[tuple, list[str]] = {}
    for name in sorted(selected):
        # the runner writes a sample's generator parameters as "parameters"
        params = run.datasets[name].get("hypothesis") or run.datasets[name].get("parameters") or {}
        missing = [k for k in keys if k not in params]
        if missing:
            raise StatsError(f"dataset '{name}': metadata hypothesis lacks {', '.join(missing)} (needed for the scan)")
        groups.setdefault(tuple((k, float(params[k])) for k in keys), []).append(name)
    return [Hypothesis(signal, tuple(names), params) for params, names in sorted(groups.items())]


class _ChannelBuilder:
    """Yields of one channel, reduced to one bin for counting channels."""

    def __init__(self, config: StatsConfig, run: RunOutput, channel: Channel, hypotheses: dict[str, Hypothesis]):
        self.config, self.run, self.channel = config, run, channel
        self.name = channel.histogram
        self.h = run.histogram(self.name)  # axes of the histogram in every dataset
        self.mask = self._window_mask(hypotheses)
        self.estimates: list[dict] = []  # data-driven estimates of this channel (used and cross-checks)
        self.sideband_fits: dict[str, tuple[SidebandEstimate, PlaneGeometry]] = {}  # sample -> the used sideband fit

    def _window_mask(self, hyps: dict[str, Hypothesis]) -> np.ndarray | None:
        win = self.channel.window
        if win is None:
            return None
        params = {}
        for hyp in hyps.values():
            params.update(hyp.as_dict())
        if win.centre not in params:
            raise StatsError(f"channel '{self.channel.name}': window centre '{win.centre}' is not a hypothesis parameter")
        if win.half_width is not None:
            half = win.half_width
        elif win.half_width_parameter in params:
            half = win.n_sigma * params[win.half_width_parameter]
        else:
            raise StatsError(f"channel '{self.channel.name}': no hypothesis parameter '{win.half_width_parameter}'")
        centre = params[win.centre]
        return H.window_mask(self.h, win.axis, centre - half, centre + half)

    def reduce(self, y: Yields) -> Yields:
        if self.mask is not None:
            return y.masked(self.mask)
        return y.summed() if self.channel.counting else y

    def nominal(self, datasets: list[str], region: str | None = None, histogram: str | None = None) -> Yields:
        name = histogram or self.name
        return self.reduce(H.summed_yields(self.run, name, datasets, self.channel.channel_values, region or self.channel.region))

    def per_dataset(self, datasets: list[str], region: str | None = None, histogram: str | None = None) -> dict[str, tuple[float, float]]:
        """dataset -> (count, variance) of a counting channel's one bin, for the MC bound."""
        out = {}
        for d in datasets:
            y = self.nominal([d], region, histogram)
            out[d] = (float(y.values.sum()), float(y.variances.sum()))
        return out

    @property
    def one_bin(self) -> bool:
        return self.channel.counting or self.mask is not None

    def varied(self, datasets: list[str], syst: str) -> tuple[Yields, Yields]:
        up, down = H.varied_yields(self.run, self.name, datasets, self.channel.channel_values, self.channel.region, syst)
        return self.reduce(up), self.reduce(down)


def build_workspace(
    config: StatsConfig,
    run: RunOutput,
    hypotheses_by_signal: dict[str, Hypothesis],
    channels: list[str] | None = None,
) -> BuiltWorkspace:
    """A pyhf workspace of ``channels`` (default: all with one of the signals) for these signals."""
    signals = list(hypotheses_by_signal)
    chosen = [c for c in config.channels if (channels is None or c.name in channels)]
    chosen = [c for c in chosen if any(s.signal in signals for s in c.samples)]
    if not chosen:
        raise StatsError(f"no channel of {config.search} contains signal(s) {', '.join(signals)}")
    notes: list[str] = []
    spec_channels, observations = [], []
    signal_events: dict[str, dict[str, float]] = {s: {} for s in signals}
    background_events: dict[str, float] = {}
    observed_events: dict[str, float] = {}
    mc_bounds: dict[str, list[dict]] = {}
    background_estimates_: dict[str, list[dict]] = {}
    sideband_fits: dict[str, dict] = {}
    asimov = False
    uses_lumi = False
    for channel in chosen:
        cb = _ChannelBuilder(config, run, channel, hypotheses_by_signal)
        samples, background_total = [], None
        for sample in channel.samples:
            if sample.signal is not None and sample.signal not in signals:
                continue  # another signal's sample: not part of this model
            built, nominal, lumi, bounds = _build_sample(cb, sample, hypotheses_by_signal, notes)
            if bounds:
                mc_bounds.setdefault(channel.name, []).extend(bounds)
            if not built:
                continue
            uses_lumi |= lumi
            samples.extend(built)
            if sample.signal is not None:
                signal_events[sample.signal][channel.name] = float(nominal.sum())
            else:
                background_total = nominal if background_total is None else background_total + nominal
        if cb.estimates:
            background_estimates_[channel.name] = cb.estimates
        if cb.sideband_fits:
            sideband_fits[channel.name] = cb.sideband_fits
        if background_total is None:
            background_total = np.zeros_like(cb.nominal([]).values)
        data_sets = channel.observation.select(run.datasets)
        if data_sets:
            observed = cb.nominal(data_sets).values
        else:
            observed = background_total.copy()
            asimov = True
            notes.append(f"{channel.name}: no pseudo-data dataset: observations are the Asimov background-only sum")
        background_events[channel.name] = float(background_total.sum())
        observed_events[channel.name] = float(observed.sum())
        spec_channels.append({"name": channel.name, "samples": samples})
        observations.append({"name": channel.name, "data": [float(v) for v in observed]})
    for sig in signals:
        if not signal_events[sig] or sum(signal_events[sig].values()) <= 0:
            raise NoSignalError(f"signal '{sig}' ({hypotheses_by_signal[sig].label}): no expected signal in the chosen channels")
    measurements = [
        _measurement(sig, signals, signal_events, background_events, observed_events, config, uses_lumi)
        for sig in signals
    ]
    spec = {"channels": spec_channels, "observations": observations, "measurements": measurements, "version": "1.0.0"}
    return BuiltWorkspace(spec, signal_events, background_events, observed_events, asimov, notes, mc_bounds, background_estimates_,
                          sideband_fits)


def _build_sample(cb: _ChannelBuilder, sample: Sample, hyps: dict[str, Hypothesis], notes: list[str]):
    """(pyhf sample dicts, nominal yields, uses lumi, MC bounds): no sample dict for an empty
    background of unknown weight per event; an extra ``<name>_mc_bound`` sample for the datasets
    of a counting background that selected no event (:mod:`stats.mc_bound`)."""
    if sample.data_driven is not None:
        return _data_driven_sample(cb, sample, notes)
    datasets = sample.datasets.select(cb.run.datasets)
    if sample.signal is not None:
        datasets = [d for d in datasets if d in hyps[sample.signal].datasets]
    nominal = cb.nominal(datasets)
    bound = None
    if sample.signal is None and datasets:
        counts = {d: v for d, (v, _) in cb.per_dataset(datasets).items()}
        bound = mc_bound(cb.channel.region, counts, cb.run.datasets)
    bound_samples, bounds = [], []
    n_bins = len(np.atleast_1d(nominal.values))
    if bound is not None:
        bound_samples = [_mc_bound_sample(cb, sample.name, bound, n_bins)]
        bounds = [_bound_record(sample.name, "region yield" if n_bins == 1 else f"region yield, flat over {n_bins} bins", bound)]
        notes.append(
            f"{cb.channel.name}: background '{sample.name}': no simulated event of {', '.join(sorted(bound.weights))} "
            f"in '{cb.channel.region}': MC statistical bound {bound.mean:.4g} +- {bound.uncertainty:.2g}"
        )
    if sample.signal is None and not nominal.values.any():
        if bound is None:
            notes.append(f"{cb.channel.name}: sample '{sample.name}' is empty and left out (no weight per event known for a bound)")
            return [], None, False, []
        return bound_samples, np.full(n_bins, bound.mean / n_bins), False, bounds
    modifiers: list[dict] = []
    if sample.signal is not None:
        modifiers.append({"name": poi_name(sample.signal), "type": "normfactor", "data": None})
    uses_lumi = False
    for mod in sample.modifiers:
        if isinstance(mod, NormSys):
            hi, lo = mod.hi_lo
            modifiers.append({"name": mod.name, "type": "normsys", "data": {"hi": hi, "lo": lo}})
        elif isinstance(mod, Lumi):
            if cb.config.luminosity_uncertainty > 0:
                modifiers.append({"name": LUMI_PARAMETER, "type": "lumi", "data": None})
                uses_lumi = True
        elif isinstance(mod, StatError):
            sigma = np.sqrt(nominal.variances)
            if np.any(sigma > 0):
                # pyhf takes the absolute uncertainty per bin; bins are combined per channel
                modifiers.append({"name": f"staterror_{cb.channel.name}", "type": "staterror", "data": sigma.tolist()})
        elif isinstance(mod, HistoSys):
            modifiers.extend(_histosys(cb, datasets, mod, nominal))
        elif isinstance(mod, NormFactor):
            modifiers.append({"name": mod.name, "type": "normfactor", "data": None})
    built = [{"name": sample.name, "data": nominal.values.tolist(), "modifiers": modifiers}, *bound_samples]
    total = nominal.values + (bound.mean / n_bins if bound is not None else 0.0)
    return built, total, uses_lumi, bounds


def _mc_bound_sample(cb: _ChannelBuilder, name: str, bound: McBound, n_bins: int = 1) -> dict:
    """The bound as a sample of its own.

    One bin: a Poisson constraint of tau = effective pseudo-events (``shapesys``), the Gamma(n + 1) shape.
    A binned fit (``n_bins`` > 1): the empty datasets' shape is unknown, so the bound is spread flat over
    the bins with one log-normal normalisation of a factor 2 (``normsys`` hi 2, lo 1/2) -- one parameter,
    where a Poisson constraint per bin made fits of 20-50 bins with several backgrounds (kstartautau) too
    slow for pyhf's numerical gradients."""
    if n_bins == 1:
        modifier = {"name": f"mc_bound_{cb.channel.name}_{name}", "type": "shapesys", "data": [bound.uncertainty]}
    else:
        modifier = {"name": f"mc_bound_{cb.channel.name}_{name}", "type": "normsys", "data": {"hi": 2.0, "lo": 0.5}}
    return {"name": f"{name}_mc_bound", "data": [bound.mean / n_bins] * n_bins, "modifiers": [modifier]}


def _bound_record(sample: str, what: str, bound: McBound) -> dict:
    return {"sample": sample, "estimate": what, **bound.as_dict()}


def _histosys(cb: _ChannelBuilder, datasets: list[str], mod: HistoSys, nominal: Yields) -> list[dict]:
    available = H.systematics(cb.run, cb.name)
    wanted = available if mod.systematics == "all" else mod.systematics
    missing = [s for s in wanted if s not in available]
    if missing:
        why = "" if H.has_variation_axis(cb.run, cb.name) else f" (it has no '{VARIATION_AXIS}' axis: nominal only)"
        raise StatsError(f"histogram '{cb.name}': no variation(s) {', '.join(s + 'Up/Down' for s in missing)}{why}")
    out = []
    for syst in wanted:
        up, down = cb.varied(datasets, syst)
        if np.allclose(up.values, nominal.values) and np.allclose(down.values, nominal.values):
            continue  # this systematic does not touch these datasets
        out.append({"name": syst, "type": "histosys", "data": {"hi_data": up.values.tolist(), "lo_data": down.values.tolist()}})
    return out


def _data_driven_sample(cb: _ChannelBuilder, sample: Sample, notes: list[str]):
    """The estimate the YAML selects (``estimate``) builds the sample; every other one the sample
    offers is computed beside it as a cross-check and recorded in ``cb.estimates``."""
    dd: DataDriven = sample.data_driven
    offered = [m for m in _ESTIMATORS if dd.offers(m)]
    result = None
    for method in offered:
        used = method == dd.estimate
        try:
            *built, record = _ESTIMATORS[method](cb, sample, notes if used else [])
        except StatsError as err:
            if used:
                raise
            record = {"error": str(err)}
        fit = record.pop("_fit", None)  # a sideband fit the limit may take its shape from (search_limits)
        if used and fit is not None:
            cb.sideband_fits[sample.name] = fit
        cb.estimates.append({"sample": sample.name, "estimate": method, "used": used, **record})
        if used:
            result = tuple(built)
    return result


def _estimate_record(b: float, rel: float, bounds: list[dict], **extra) -> dict:
    return {"value": b, "uncertainty": b * rel, "from_mc_bound": bool(bounds), **extra}


def _sample_normsys(cb: _ChannelBuilder, sample: Sample) -> list[dict]:
    out = []
    for mod in sample.modifiers:
        if isinstance(mod, NormSys):
            hi, lo = mod.hi_lo
            out.append({"name": mod.name, "type": "normsys", "data": {"hi": hi, "lo": lo}})
        else:
            raise StatsError(f"{cb.channel.name}: data-driven sample '{sample.name}' takes only normsys modifiers")
    return out


def _factorised_sample(cb: _ChannelBuilder, sample: Sample, notes: list[str]):
    """b = N(SR before the cut) x eps, eps = P / (P + F) in the control regions (stats.factorised)."""
    fz = sample.data_driven.factorised
    channel = cb.channel
    h_sb = sample.data_driven.histogram or cb.name
    cb.run.histogram(h_sb)
    data_sets = channel.observation.select(cb.run.datasets)
    mc = [n for n, i in cb.run.datasets.items() if i.get("kind") == "background"]
    sets, what = (data_sets, "data") if data_sets else (mc, "MC, Asimov")
    bounds: list[dict] = []

    def per_dataset(regions: list[str]) -> dict[str, tuple[float, float]]:
        per: dict[str, tuple[float, float]] = {}
        for region in regions:
            for d, (v, var) in cb.per_dataset(sets, region, h_sb).items():
                v0, var0 = per.get(d, (0.0, 0.0))
                per[d] = (v0 + v, var0 + var)
        return per

    def count(regions: list[str], label: str, per: dict[str, tuple[float, float]] | None = None) -> BoundedCount:
        """Summed over ``regions`` per dataset: a dataset gets the bound only if empty in all of them."""
        per = per_dataset(regions) if per is None else per
        c = bounded_count("+".join(regions), per, cb.run.datasets)
        if c.bound is not None:
            bounds.append(_bound_record(sample.name, f"{label} ({what})", c.bound))
            notes.append(f"{channel.name}: {label} '{'+'.join(regions)}': no event of {', '.join(sorted(c.bound.weights))}: "
                         f"statistical bound {c.bound.mean:.4g} +- {c.bound.uncertainty:.2g}")
        return c

    before_from = fz.before_from
    fractions = cb.run.metadata.get("sr_area_fraction") or {}
    if before_from == "window_area" and channel.channel_value not in fractions:
        # a run output written before the runner recorded the area: count the ellipse, and say so
        notes.append(f"{channel.name}: background '{sample.name}' (factorised): no sr_area_fraction of channel "
                     f"'{channel.channel_value}' in the run metadata (re-run the search): N before the cut counted in "
                     f"{'+'.join(fz.before_regions)} instead of the window area")
        before_from = "ellipse"
    if before_from == "window_area":
        # N_before = N(window) x A_SR / A_window: a flat background across the window (stats.factorised)
        scale, before_regions, label = float(fractions[channel.channel_value]), fz.window_regions, "window count before the cut"
    else:
        scale, before_regions, label = 1.0, fz.before_regions, "count before the cut"
    pass_yields = per_dataset(fz.pass_regions)
    if fz.fail_regions is not None:
        fail_regions, fail_yields = fz.fail_regions, per_dataset(fz.fail_regions)
    else:  # F = total - P per dataset (the pass events are a subset of the total: variances subtract too)
        total = per_dataset(fz.total_regions)
        fail_regions = [f"({'+'.join(fz.total_regions)})-({'+'.join(fz.pass_regions)})"]
        fail_yields = {d: (max(v - pass_yields.get(d, (0.0, 0.0))[0], 0.0), max(var - pass_yields.get(d, (0.0, 0.0))[1], 0.0))
                       for d, (v, var) in total.items()}
    pass_yields, fail_yields, filled = fill_empty_fraction(pass_yields, fail_yields)
    if filled:
        notes.append(f"{channel.name}: efficiency of the cut: {', '.join(sorted(set(filled)))} empty on one side of it: that side "
                     "is the other's yield / (n + 1), the Beta posterior mean of n events all on one side (stats/mc_bound.py)")
    plain = _plain_counts(cb, fz, [] if data_sets else sets, h_sb)
    if fz.per_dataset:
        looser = None
        if fz.looser is not None:
            lz = fz.looser
            if channel.channel_value not in lz.window_share:
                raise StatsError(f"{channel.name}: factorised.looser.window_share has no channel '{channel.channel_value}'")

            def looser_yields(regions: list[str]) -> dict[str, tuple[float, float]]:
                per: dict[str, tuple[float, float]] = {}
                for region in regions:
                    for d, (v, var) in cb.per_dataset(sets, region, lz.histogram).items():
                        v0, var0 = per.get(d, (0.0, 0.0))
                        per[d] = (v0 + v, var0 + var)
                return per

            looser = (looser_yields(lz.regions), looser_yields(lz.pass_regions), lz.window_share[channel.channel_value])
        tails = _tail_fits(cb, fz.tail_fit, sets, notes) if fz.tail_fit is not None else {}
        bound_eps = _bound_efficiencies(cb, fz.bound_efficiency, sets, notes) if fz.bound_efficiency is not None else {}
        return _per_dataset_factorised(cb, sample, notes, bounds, what, before_from, before_regions, scale,
                                       per_dataset(before_regions), pass_yields, fail_yields, looser, poisson_before=not data_sets,
                                       tails=tails, sparse_below=fz.tail_fit.replaces_window_below if fz.tail_fit else 0.0,
                                       bound_efficiencies=bound_eps, plain=plain)
    if plain:
        return _pooled_with_plain(cb, sample, notes, bounds, before_from, before_regions, scale, per_dataset(before_regions),
                                  pass_yields, fail_yields, plain, poisson_before=not data_sets)
    before = count(before_regions, label)
    passed = count(fz.pass_regions, "efficiency numerator", pass_yields)
    failed = count(fail_regions, "efficiency complement", fail_yields)
    if before.value <= 0 or passed.value <= 0:  # as an empty sideband: zero, only where no weight per event is known
        empty = "the signal region before the cut" if before.value <= 0 else "the control regions after the cut"
        notes.append(f"{channel.name}: {empty} empty: background '{sample.name}' (factorised) is zero and left out (no weight per event known for a bound)")
        return [], None, False, bounds, _estimate_record(0.0, 0.0, bounds)
    est = factorised_estimate(before, passed, failed, poisson_before=not data_sets, before_scale=scale)
    b = est.value
    area = f" x area fraction {scale:.4g}" if before_from == "window_area" else ""
    notes.append(
        f"{channel.name}: background '{sample.name}' (factorised) = N({'+'.join(before_regions)}) {before.value:.4g}{area} x eps "
        f"{est.efficiency:.4g} +- {est.rel_efficiency * est.efficiency:.2g} [eps = N({'+'.join(fz.pass_regions)}) / "
        f"(that + N({'+'.join(fail_regions)})), {what}] = {b:.4g} +- {est.uncertainty:.2g}"
    )
    modifiers: list[dict] = [{"name": f"before_cut_{channel.name}", "type": "shapesys", "data": [b * est.rel_before]}]
    if est.rel_efficiency > 0:
        rel = est.rel_efficiency
        modifiers.append({"name": f"cut_efficiency_{channel.name}", "type": "normsys", "data": {"hi": 1 + rel, "lo": max(1 - rel, 1e-3)}})
    modifiers += _sample_normsys(cb, sample)
    record = {**est.as_dict(), "from_mc_bound": bool(bounds), "before_from": before_from,
              "before_regions": before_regions, "n_before_counted": before.value, "area_fraction": scale}
    return [{"name": sample.name, "data": [b], "modifiers": modifiers}], np.array([b]), False, bounds, record


def _tail_fits(cb: _ChannelBuilder, tf: TailFit, datasets: list[str], notes: list[str]) -> dict[str, dict]:
    """dataset -> its tail-fit window count (``tf``; stats.tail_fit): ``before`` (BoundedCount: the fit's
    variance plus the squared difference to the alternative range's), ``pass`` / ``fail`` (count, variance)
    in the fit range, and a record for limits.json; datasets below ``min_effective_events`` or whose fit
    fails are left out (they fall through to the looser region / the bound)."""
    channel = cb.channel.channel_value
    if channel not in tf.window:
        raise StatsError(f"{cb.channel.name}: factorised.tail_fit.window has no channel '{channel}'")
    try:
        h = H.template(cb.run, tf.histogram)
    except StatsError:  # a run output written before the processor filled it: no tail fit, and say so
        notes.append(f"{cb.channel.name}: no histogram '{tf.histogram}' in the run (re-run the search): no tail fit")
        return {}
    edges = np.asarray(physics_axes(h)[0].edges, float)
    lo, hi = tf.window[channel]
    ratio = tf.window_over_band[channel]

    def bins_in(start: float, stop: float) -> np.ndarray:
        return (edges[:-1] >= start - 1e-9) & (edges[1:] <= stop + 1e-9)

    # both fit ranges together (where the effective events are counted), and the nominal one
    span, in_fit = bins_in(min(tf.fit_range[0], tf.alternative_range[0]), tf.fit_range[1]), bins_in(*tf.fit_range)

    def summed(d: str, regions: list[str]) -> Yields:
        ys = [H.yields(cb.run, tf.histogram, d, channel, r) for r in regions]
        return Yields(sum(y.values for y in ys), sum(y.variances for y in ys))

    out: dict[str, dict] = {}
    for d in datasets:
        total, passed = summed(d, tf.regions), summed(d, tf.pass_regions)
        w, w2 = total.values[span].sum(), total.variances[span].sum()
        if w <= 0 or w**2 / w2 < tf.min_effective_events:
            continue
        try:
            fits = [fit_exponential_tail(edges, total.values, total.variances, r) for r in (tf.fit_range, tf.alternative_range)]
        except StatsError:
            continue
        (v, var), (v_alt, _) = (f.integral(lo, hi) for f in fits)
        if not (math.isfinite(v) and math.isfinite(var) and math.isfinite(v_alt)):
            continue
        t, p = (float(total.values[in_fit].sum()), float(total.variances[in_fit].sum())), \
            (float(passed.values[in_fit].sum()), float(passed.variances[in_fit].sum()))
        if tf.efficiency == "unmeasured":  # no pass / fail counts: the estimate takes eps 1 (efficiency_taken_as_one)
            t = p = (0.0, 0.0)
        out[d] = {
            "before": BoundedCount(v * ratio, (var + (v - v_alt) ** 2) * ratio**2, None),
            "pass": p, "fail": (max(t[0] - p[0], 0.0), max(t[1] - p[1], 0.0)),
            "record": {**fits[0].as_dict(), "window_count": v * ratio, "fit_uncertainty": math.sqrt(var) * ratio,
                       "alternative_range": list(tf.alternative_range), "alternative_window_count": v_alt * ratio,
                       "slope_alternative_per_gev": fits[1].b, "efficiency": tf.efficiency},
        }
    return out


def _bound_efficiencies(cb: _ChannelBuilder, be: BoundEfficiency, datasets: list[str], notes: list[str]) -> dict[str, dict]:
    """dataset -> its cut pass fraction in ``be.range`` of ``be.histogram`` (``pass`` / ``fail``: count, variance,
    the empty side Beta-filled; ``record`` for limits.json), for the datasets with >= ``be.min_effective_events``
    effective events there; the others keep eps 1 (:class:`~belle_rare.stats.model_config.BoundEfficiency`)."""
    channel = cb.channel.channel_value
    try:
        h = H.template(cb.run, be.histogram)
    except StatsError:  # a run output written before the processor filled it: the bound keeps eps 1, and say so
        notes.append(f"{cb.channel.name}: no histogram '{be.histogram}' in the run (re-run the search): bounds not scaled by a pass fraction")
        return {}
    edges = np.asarray(physics_axes(h)[0].edges, float)
    inside = (edges[:-1] >= be.range[0] - 1e-9) & (edges[1:] <= be.range[1] + 1e-9)

    def summed(d: str, regions: list[str]) -> tuple[float, float]:
        ys = [H.yields(cb.run, be.histogram, d, channel, r) for r in regions]
        return float(sum(y.values[inside].sum() for y in ys)), float(sum(y.variances[inside].sum() for y in ys))

    out: dict[str, dict] = {}
    for d in datasets:
        (t, t2), (p, p2) = summed(d, be.regions), summed(d, be.pass_regions)
        if t <= 0 or t2 <= 0 or t**2 / t2 < be.min_effective_events:
            continue
        filled_p, filled_f, _ = fill_empty_fraction({d: (p, p2)}, {d: (max(t - p, 0.0), max(t2 - p2, 0.0))})
        pf, ff = filled_p[d], filled_f[d]
        out[d] = {"pass": pf, "fail": ff,
                  "record": {"histogram": be.histogram, "range": list(be.range), "effective_events": t**2 / t2,
                             "passed_weighted": p, "efficiency": pf[0] / (pf[0] + ff[0]), "beta_filled": p <= 0}}
    return out


def _plain_counts(cb: _ChannelBuilder, fz: FactorisedEfficiency, datasets: list[str], histogram: str) -> dict[str, BoundedCount]:
    """The datasets with >= ``fz.plain_min_events`` effective simulated events (Kish) in the channel's region,
    with their count there (``factorised.plain_min_events``; none when it is not set)."""
    if fz.plain_min_events is None:
        return {}
    return {d: BoundedCount(v, var, None) for d, (v, var) in cb.per_dataset(datasets, None, histogram).items()
            if v > 0 and var > 0 and v * v / var >= fz.plain_min_events}


def _plain_closure(plain: dict[str, BoundedCount], factorised: dict[str, tuple[BoundedCount, BoundedCount, BoundedCount]],
                   scale: float) -> dict[str, dict]:
    """Per plain-counted dataset: its count beside what its own factorisation gives (simulated statistics only)
    and their pull: the closure of the factorisation where the plain count has statistics."""
    out = {}
    for d, c in sorted(plain.items()):
        record = {"plain": c.value, "plain_uncertainty": math.sqrt(c.variance), "effective_events": c.value**2 / c.variance}
        before, passed, failed = factorised.get(d, (None, None, None))
        if before is not None and before.value > 0 and passed.value > 0:
            f = factorised_estimate(before, passed, failed, poisson_before=False, before_scale=scale)
            sigma = math.hypot(f.uncertainty, record["plain_uncertainty"])
            record.update(factorised=f.value, factorised_uncertainty=f.uncertainty,
                          pull=(f.value - c.value) / sigma if sigma > 0 else None)
        out[d] = record
    return out


def _plain_note(channel: str, closure: dict[str, dict], threshold: float) -> str:
    terms = "; ".join(f"{d} {r['plain']:.3g} +- {r['plain_uncertainty']:.2g} ({r['effective_events']:.0f} effective events)"
                      + (f", factorised {r['factorised']:.3g} +- {r['factorised_uncertainty']:.2g}, pull {r['pull']:+.1f}"
                         if r.get("pull") is not None else "") for d, r in closure.items())
    return (f"{channel}: plain simulated count in the signal region for the datasets with >= {threshold:g} effective events "
            f"there (factorised.plain_min_events), the others factorised: {terms}")


def _pooled_with_plain(cb: _ChannelBuilder, sample: Sample, notes: list[str], bounds: list[dict], before_from: str,
                       before_regions: list[str], scale: float, before_yields: dict[str, tuple[float, float]],
                       pass_yields: dict[str, tuple[float, float]], fail_yields: dict[str, tuple[float, float]],
                       plain: dict[str, BoundedCount], poisson_before: bool):
    """The pooled factorisation (one eps) of the datasets without plain statistics in the signal region, plus the
    plain counts of the others (``factorised.plain_min_events``)."""
    channel = cb.channel
    zero = (0.0, 0.0)
    own = {d: tuple(bounded_count(f"{label} {d}", {d: y.get(d, zero)}, cb.run.datasets)
                    for label, y in (("before", before_yields), ("pass", pass_yields), ("fail", fail_yields)))
           for d in plain}
    rest = sorted((set(before_yields) | set(pass_yields) | set(fail_yields)) - set(plain))
    pooled = {}
    if rest:
        counts = tuple(bounded_count(f"{label} ({', '.join(rest)})", {d: y.get(d, zero) for d in rest}, cb.run.datasets)
                       for label, y in (("before", before_yields), ("pass", pass_yields), ("fail", fail_yields)))
        for c, label in zip(counts, ("count before the cut", "efficiency numerator", "efficiency complement")):
            if c.bound is not None:
                bounds.append(_bound_record(sample.name, f"{label}, pooled datasets without plain statistics", c.bound))
        pooled[f"pooled: {', '.join(rest)}"] = counts
    est = summed_estimate(pooled, poisson_before=poisson_before, before_scale=scale, plain=plain)
    b = est.value
    closure = _plain_closure(plain, own, scale)
    notes.append(_plain_note(channel.name, closure, sample.data_driven.factorised.plain_min_events))
    area = f" x area fraction {scale:.4g}" if before_from == "window_area" else ""
    notes.append(f"{channel.name}: background '{sample.name}' = plain counts + N({'+'.join(before_regions)}){area} x eps of the rest "
                 f"= {b:.4g} +- {est.uncertainty:.2g} (simulation alone +- {est.rel_simulation * b:.2g}): "
                 + ", ".join(f"{d} {p.value:.3g}" for d, p in est.parts.items()))
    modifiers: list[dict] = [{"name": f"before_cut_{channel.name}", "type": "shapesys", "data": [b * est.rel_before]}]
    if est.rel_efficiency > 0:
        rel = est.rel_efficiency
        modifiers.append({"name": f"cut_efficiency_{channel.name}", "type": "normsys", "data": {"hi": 1 + rel, "lo": max(1 - rel, 1e-3)}})
    modifiers += _sample_normsys(cb, sample)
    record = {**est.as_dict(), "from_mc_bound": bool(bounds), "before_from": before_from, "before_regions": before_regions,
              "n_before_counted": est.n_before, "area_fraction": scale, "plain_count_datasets": closure}
    return [{"name": sample.name, "data": [b], "modifiers": modifiers}], np.array([b]), False, bounds, record


def _per_dataset_factorised(cb: _ChannelBuilder, sample: Sample, notes: list[str], bounds: list[dict], what: str,
                            before_from: str, before_regions: list[str], scale: float,
                            before_yields: dict[str, tuple[float, float]], pass_yields: dict[str, tuple[float, float]],
                            fail_yields: dict[str, tuple[float, float]],
                            looser: tuple[dict[str, tuple[float, float]], dict[str, tuple[float, float]], float] | None,
                            poisson_before: bool, tails: dict[str, dict] | None = None, sparse_below: float = 0.0,
                            bound_efficiencies: dict[str, dict] | None = None, plain: dict[str, BoundedCount] | None = None):
    """b = sum_d N_d x scale x eps_d (``factorised.per_dataset``): each dataset's count before the cut
    times its own pass fraction. A dataset with no event before the cut in the window: with ``looser``
    (total, pass, window share), its looser count x the share and the looser region's efficiency; empty
    there too (or without ``looser``), its bound (x the share) and efficiency 1 (unmeasured). ``tails``
    (:func:`_tail_fits`) comes after ``looser``: a dataset with no event in the window nor in the looser region
    (or with fewer than ``sparse_below`` effective events in the window) takes its extrapolated window count.
    ``bound_efficiencies`` (:func:`_bound_efficiencies`): a dataset that keeps its bound takes the pass fraction
    measured there instead of 1. ``plain`` (:func:`_plain_counts`): datasets taken as their plain count in the
    signal region, their factorisation kept beside it as the closure."""
    channel, parts, no_event, from_looser, eps_one = cb.channel, {}, {}, [], []
    tails, from_tail = tails or {}, []
    bound_efficiencies, bound_scaled = bound_efficiencies or {}, {}
    loose_total, loose_pass, share = looser if looser is not None else ({}, {}, 1.0)
    datasets = sorted(set(before_yields) | set(pass_yields) | set(fail_yields) | set(loose_total))
    for d in datasets:
        zero = (0.0, 0.0)
        window = before_yields.get(d, zero)
        sparse = d in tails and window[0] > 0 and (window[1] <= 0 or window[0] ** 2 / window[1] < sparse_below)
        if window[0] > 0 and not sparse:
            before = bounded_count(f"before {d}", {d: before_yields[d]}, cb.run.datasets)
            p, f = pass_yields.get(d, zero), fail_yields.get(d, zero)
        elif loose_total.get(d, zero)[0] > 0 and not sparse:  # the looser region, spread flat over it
            from_looser.append(d)
            (v, var), p = loose_total[d], loose_pass.get(d, zero)
            before = BoundedCount(v * share, var * share**2, None)
            f = (max(v - p[0], 0.0), max(var - p[1], 0.0))
            (p, f) = (x[d] for x in fill_empty_fraction({d: p}, {d: f})[:2])
        elif d in tails:  # nothing in the plane (or a sparse window): its dE tail below, fitted and extrapolated (stats.tail_fit)
            from_tail.append(d)
            before, p, f = tails[d]["before"], tails[d]["pass"], tails[d]["fail"]
            (p, f) = (x[d] for x in fill_empty_fraction({d: p}, {d: f})[:2])
        else:  # nothing anywhere: the bound of the looser region (or of the window), spread flat
            b0 = bounded_count(f"before {d}", {d: zero}, cb.run.datasets)
            bound = McBound(b0.bound.region, {k: w * share for k, w in b0.bound.weights.items()}) if b0.bound else None
            before, p, f = BoundedCount(0.0, 0.0, bound), zero, zero
            if d in bound_efficiencies and bound is not None:  # the bound of the count before the cut x its pass fraction
                p, f = bound_efficiencies[d]["pass"], bound_efficiencies[d]["fail"]
                bound_scaled[d] = bound_efficiencies[d]["record"]
        if before.value <= 0:
            continue  # no weight per event known: nothing to bound
        if p[0] <= 0 and f[0] <= 0:  # nothing of d on either side of the cut: eps unmeasured, taken as 1
            eps_one.append(d)
            passed, failed = BoundedCount(before.value, 0.0, None), BoundedCount(0.0, 0.0, None)
        else:
            passed, failed = (bounded_count(f"{label} {d}", {d: y}, cb.run.datasets) for label, y in (("pass", p), ("fail", f)))
        parts[d] = (before, passed, failed)
        if before.bound is not None:
            scaled = (f"; x its pass fraction {bound_scaled[d]['efficiency']:.3g} in {bound_scaled[d]['histogram']} "
                      f"{bound_scaled[d]['range']}" if d in bound_scaled else "")
            bounds.append(_bound_record(sample.name, f"count before the cut, {d} ({what}; x window share {share:.4g}{scaled})", before.bound))
    plain = plain or {}
    closure = _plain_closure(plain, parts, scale) if plain else {}
    if plain:
        notes.append(_plain_note(channel.name, closure, sample.data_driven.factorised.plain_min_events))
    est = summed_estimate({d: p for d, p in parts.items() if d not in plain}, poisson_before=poisson_before, before_scale=scale,
                          plain=plain)
    b = est.value
    for d, p in est.parts.items():
        if d in from_looser or (d in from_tail and before_yields.get(d, (0.0, 0.0))[0] <= 0) or p.before.bound is not None:
            no_event[d] = p.value / b
    area = f" x area fraction {scale:.4g}" if before_from == "window_area" else ""
    terms = ", ".join(f"{d} {p.before.value:.3g}{' (bound)' if p.before.bound is not None else ' (looser region)' if d in from_looser else ' (tail fit)' if d in from_tail else ''}"
                      f" x eps {p.efficiency:.3g}" for d, p in est.parts.items())
    notes.append(f"{channel.name}: background '{sample.name}' (factorised per dataset, {what}) = sum_d N_d({'+'.join(before_regions)})"
                 f"{area} x eps_d = {b:.4g} +- {est.uncertainty:.2g} (simulation alone +- {est.rel_simulation * b:.2g}): {terms}")
    if from_looser:
        notes.append(f"{channel.name}: no event before the cut in the window of {', '.join(from_looser)}: their looser-region count "
                     f"x the window's share of its area, {share:.4g}, and the looser region's efficiency")
    if from_tail:
        notes.append(f"{channel.name}: no event (or < {sparse_below:g} effective events) before the cut in the window of {', '.join(from_tail)}: their dE distribution "
                     "below the window fitted (exponential) and extrapolated into it, +- the fit and the fit-range difference")
    if eps_one:
        notes.append(f"{channel.name}: {', '.join(eps_one)}: the cut's efficiency unmeasured near the window (no event on either side "
                     "of the cut, or a tail fit with efficiency: unmeasured): taken as 1")
    for d, r in sorted(bound_scaled.items()):
        notes.append(f"{channel.name}: the bound of {d} (no event near the window) x its pass fraction of the cut in {r['histogram']} "
                     f"{r['range']}: {r['efficiency']:.3g} ({r['effective_events']:.0f} effective events"
                     f"{', none passing: the Beta mean 1 / (n + 2)' if r['beta_filled'] else ''})")
    if no_event:
        notes.append(f"{channel.name}: of it, {sum(no_event.values()):.2%} from datasets with no event before the cut "
                     f"({', '.join(sorted(no_event))})")
    modifiers: list[dict] = [{"name": f"before_cut_{channel.name}", "type": "shapesys", "data": [b * est.rel_before]}]
    if est.rel_efficiency > 0:
        rel = est.rel_efficiency
        modifiers.append({"name": f"cut_efficiency_{channel.name}", "type": "normsys", "data": {"hi": 1 + rel, "lo": max(1 - rel, 1e-3)}})
    modifiers += _sample_normsys(cb, sample)
    record = {**est.as_dict(), "from_mc_bound": bool(bounds), "no_event_share": sum(no_event.values()),
              "from_looser_regions": from_looser, "efficiency_taken_as_one": eps_one,
              "from_tail_fit": {d: tails[d]["record"] for d in from_tail},
              "bound_scaled_by_efficiency": {d: {**r, "scaled_bound": est.parts[d].value} for d, r in sorted(bound_scaled.items())
                                             if d in est.parts},
              "before_from": before_from, "before_regions": before_regions, "n_before_counted": est.n_before, "area_fraction": scale,
              **({"plain_count_datasets": closure} if plain else {})}
    return [{"name": sample.name, "data": [b], "modifiers": modifiers}], np.array([b]), False, bounds, record


def _transfer_factor_sample(cb: _ChannelBuilder, sample: Sample, notes: list[str]):
    """b = N_SB x transfer factor (tau3mu's plain ABCD: N_B x N_C / N_D)."""
    dd: DataDriven = sample.data_driven
    channel = cb.channel
    h_sb = dd.histogram or cb.name
    cb.run.histogram(h_sb)  # a StatsError naming the histograms there are if it is missing
    data_sets = channel.observation.select(cb.run.datasets)
    tf = dd.transfer_factor
    mc = tf.from_mc.select(cb.run.datasets) if tf.from_mc is not None else [n for n, i in cb.run.datasets.items() if i.get("kind") == "background"]
    bounds: list[dict] = []

    def count(datasets: list[str], region: str, histogram: str | None, what: str,
              per: dict[str, tuple[float, float]] | None = None) -> BoundedCount:
        """A region's count with the MC bound for its empty datasets (w = 1 for data)."""
        per = cb.per_dataset(datasets, region, histogram) if per is None else per
        c = bounded_count(region, per, cb.run.datasets)
        if c.bound is not None:
            bounds.append(_bound_record(sample.name, what, c.bound))
            notes.append(
                f"{channel.name}: {what} '{region}': no event of {', '.join(sorted(c.bound.weights))}: "
                f"statistical bound {c.bound.mean:.4g} +- {c.bound.uncertainty:.2g}"
            )
        return c

    if data_sets:
        sb = count(data_sets, dd.sideband_region, h_sb, "sideband count (data)")
    else:
        sb = count(mc, dd.sideband_region, h_sb, "sideband count (MC, Asimov)")
        notes.append(f"{channel.name}: no pseudo-data: sideband count {sb.value:.3g} taken from simulation (Asimov)")
    n_sb = sb.value
    if n_sb <= 0:  # no transfer factor needed (nor, with small samples, always computable)
        notes.append(f"{channel.name}: empty sideband '{dd.sideband_region}': background '{sample.name}' is zero and left out (no weight per event known for a bound)")
        return [], None, False, bounds, _estimate_record(0.0, 0.0, bounds)
    if tf.from_mc is not None or tf.from_data:
        if tf.from_mc is not None:
            ratio_sets, what = mc, "MC"
        else:
            ratio_sets, what = (data_sets, "data") if data_sets else (mc, "MC")
        if tf.regions is None:
            num_region, den_region, num_histogram = channel.region, dd.sideband_region, None
        else:
            (num_region, den_region), num_histogram = tf.regions, h_sb
        # the ratio of two disjoint regions is a fraction's odds: a dataset in one of them only gets
        # the Beta-posterior share on the other side (stats/mc_bound.py), not a bound
        num_yields, den_yields, filled = fill_empty_fraction(cb.per_dataset(ratio_sets, num_region, num_histogram),
                                                             cb.per_dataset(ratio_sets, den_region, h_sb))
        if filled:
            notes.append(f"{channel.name}: transfer factor: {', '.join(sorted(set(filled)))} in only one of "
                         f"{num_region} / {den_region}: the other is its yield / (n + 1) (Beta posterior mean)")
        num = count(ratio_sets, num_region, num_histogram, f"transfer-factor numerator ({what})", num_yields)
        den = count(ratio_sets, den_region, h_sb, f"transfer-factor denominator ({what})", den_yields)
        num_v, den_v = num.value, den.value
        if den_v <= 0:
            raise StatsError(f"{channel.name}: no {what} yield in region '{den_region}' for the transfer factor")
        r = num_v / den_v
        rel_r = math.sqrt(num.variance / num_v**2 + den.variance / den_v**2) if num_v > 0 else 0.0
        source = f"r_{what} = {what}({num_region}) / {what}({den_region}) = {r:.4g} +- {rel_r * r:.2g}"
    else:
        r, rel_r = tf.value, tf.uncertainty / tf.value
        source = f"transfer factor {r:.4g} +- {tf.uncertainty:.2g}"
    b = r * n_sb
    notes.append(f"{channel.name}: background '{sample.name}' = N_SB {n_sb:.4g} x {source} = {b:.4g}")
    if b <= 0:
        notes.append(f"{channel.name}: background '{sample.name}' is zero and left out")
        return [], None, False, bounds, _estimate_record(0.0, 0.0, bounds)
    # the sideband count is a Poisson measurement of b / r: pyhf's shapesys with tau = N_SB; a
    # bounded count adds its (Gamma) variance: tau = 1 / (1 / N_SB + var_bound / N_SB^2)
    rel_sb = math.sqrt(1.0 / n_sb + (sb.bound.variance / n_sb**2 if sb.bound else 0.0))
    modifiers: list[dict] = [{"name": f"sideband_{channel.name}", "type": "shapesys", "data": [b * rel_sb]}]
    if rel_r > 0:
        modifiers.append({"name": f"transfer_{channel.name}", "type": "normsys", "data": {"hi": 1 + rel_r, "lo": max(1 - rel_r, 1e-3)}})
    modifiers += _sample_normsys(cb, sample)
    record = _estimate_record(b, math.hypot(rel_sb, rel_r), bounds, sideband_count=n_sb, transfer_factor=r,
                              transfer_factor_rel_uncertainty=rel_r)
    return [{"name": sample.name, "data": [b], "modifiers": modifiers}], np.array([b]), False, bounds, record


def _plain_count_sample(sample: Sample) -> Sample:
    """The sample as the plain simulated count of the sideband fit's datasets, with its own modifiers."""
    return Sample(name=sample.name, datasets=sample.data_driven.sideband_fit.datasets, modifiers=sample.modifiers)


def _count_record(cb: _ChannelBuilder, sample: Sample, bounds: list[dict]) -> dict:
    """Value and uncertainty of the plain count in the channel's region (the MC bound where empty)."""
    datasets = sample.data_driven.sideband_fit.datasets.select(cb.run.datasets)
    c = bounded_count(cb.channel.region, cb.per_dataset(datasets), cb.run.datasets)
    return {"value": c.value, "uncertainty": math.sqrt(c.variance), "from_mc_bound": bool(bounds), "region": cb.channel.region}


def _mc_count_sample(cb: _ChannelBuilder, sample: Sample, notes: list[str]):
    """The plain simulated count in the signal region (the MC bound where a dataset is empty): the
    sideband fit's cross-check, built exactly as a ``datasets`` background sample."""
    built, nominal, lumi, bounds = _build_sample(cb, _plain_count_sample(sample), {}, notes)
    return built, nominal, lumi, bounds, _count_record(cb, sample, bounds)


def sideband_planes(run: RunOutput, spec: SidebandFit, channel: str, datasets: list[str]) -> dict[str, Plane]:
    """Each dataset's (M_bc, dE) plane of ``spec.histogram``, summed over ``spec.regions`` and the other
    physics axes (datasets without an entry there are left out)."""
    h = run.histogram(spec.histogram)
    axes = physics_axes(h)
    names = [ax.name for ax in axes]
    for axis in (spec.mbc_axis, spec.de_axis):
        if axis not in names:
            raise StatsError(f"sideband fit: histogram '{spec.histogram}' has no axis '{axis}' (have: {', '.join(names)})")
    i_m, i_d = names.index(spec.mbc_axis), names.index(spec.de_axis)
    others = tuple(k for k in range(len(axes)) if k not in (i_m, i_d))
    shape = fit_shape(h)
    out = {}
    for d in datasets:
        total = None
        for region in spec.regions:
            y = H.yields(run, spec.histogram, d, channel, region)
            total = y if total is None else total + y
        if not total.values.any():
            continue

        def plane(flat: np.ndarray) -> np.ndarray:
            grid = flat.reshape(shape).sum(axis=others)
            return grid if i_m < i_d else grid.T

        out[d] = Plane(plane(total.values), plane(total.variances), np.asarray(axes[i_m].edges), np.asarray(axes[i_d].edges))
    return out


def channel_geometry(config: StatsConfig, channel: str) -> PlaneGeometry:
    """The ellipse and M_bc sidebands of ``channel`` from the search config's ``sideband_plane``."""
    search_config = registry.get_search(config.search).load_config()
    if not hasattr(search_config, "sideband_plane"):
        raise StatsError(f"sideband fit: the '{config.search}' search config has no sideband_plane(channel) (ellipse and sidebands)")
    return PlaneGeometry(**search_config.sideband_plane(channel))


def _sideband_fit_sample(cb: _ChannelBuilder, sample: Sample, notes: list[str]):
    """The expected background in the ellipse from the (M_bc, dE) sideband fit of every background
    dataset (stats.sideband_fit) -- or, with pseudo-data in the run, of the data's sidebands, as the
    paper (the default shape; the ellipse's data are not used); the plain simulated count (with the
    MC bound) where nothing has the statistics to fit -- then built exactly as ``mc_count`` and said so."""
    spec = sample.data_driven.sideband_fit
    channel = cb.channel
    data_sets = channel.observation.select(cb.run.datasets)
    datasets = data_sets or spec.datasets.select(cb.run.datasets)
    what = "data" if data_sets else "simulated"
    if spec.histogram not in cb.run.histogram_names():
        why = f"no histogram '{spec.histogram}' in the run output"
        est, geometry = None, None
    else:
        geometry = channel_geometry(cb.config, channel.channel_value)
        planes = sideband_planes(cb.run, spec, channel.channel_value, datasets)
        shapes = {d: spec.shapes.get(d, spec.shapes.get("default", "landau_exponential")) for d in datasets}
        # data: only the fit counts (its ellipse is what the limit tests, and it carries no MC bound)
        counts = {d: (0.0, 0.0) for d in datasets} if data_sets else cb.per_dataset(datasets)
        est = estimate_background(planes, counts, geometry, {} if data_sets else cb.run.datasets, shapes,
                                  mbc_shape=spec.mbc_shape, min_events=spec.min_events)
        notes.extend(f"{channel.name}: sideband fit: {n}" for n in est.notes)
        why = f"no {'data' if data_sets else 'background'} dataset with >= {spec.min_events:g} {what} events in the M_bc sidebands"
    if est is None or est.fallback:
        notes.append(f"{channel.name}: background '{sample.name}' (sideband fit): {why}: falls back to the plain simulated "
                     f"count in '{channel.region}' with the MC statistical bound")
        built, nominal, lumi, bounds = _build_sample(cb, _plain_count_sample(sample), {}, notes)
        record = {**_count_record(cb, sample, bounds), "fallback": True, "fallback_reason": why}
        if est is not None:
            record["sideband_fit"] = est.as_dict()
        return built, nominal, lumi, bounds, record
    bounds = [_bound_record(sample.name, "datasets too small for the sideband fit", est.bound)] if est.bound else []
    fitted = ", ".join(f"{f.dataset} {f.ellipse:.4g} +- {f.ellipse_uncertainty:.2g} ({f.fit_events:.0f} events, {f.shape})" for f in est.fits)
    counted = ", ".join(f"{d} {v:.4g}" for d, (v, _) in est.counted.items()) or "none"
    bound = f" + MC bound {est.bound.mean:.4g} +- {est.bound.uncertainty:.2g} ({', '.join(sorted(est.bound.weights))})" if est.bound else ""
    plain = _count_record(cb, sample, [])
    notes.append(f"{channel.name}: background '{sample.name}' (sideband fit of the {what} events in M_bc {list(geometry.sideband_mbc)}) = "
                 f"fitted [{fitted}] + plain count [{counted}]{bound} = {est.value:.4g} +- {est.uncertainty:.2g}; "
                 f"cross-check, the plain simulated count in '{channel.region}': {plain['value']:.4g} +- {plain['uncertainty']:.2g}")
    b = est.fitted + est.counted_value
    modifiers: list[dict] = [{"name": f"sideband_fit_{channel.name}", "type": "shapesys", "data": [math.sqrt(est.fit_and_count_variance)]}]
    # the plain count's histosys / staterror describe simulated yields, not a fitted one: normsys only
    modifiers += [{"name": m.name, "type": "normsys", "data": {"hi": m.hi_lo[0], "lo": m.hi_lo[1]}}
                  for m in sample.modifiers if isinstance(m, NormSys)]
    built = [{"name": sample.name, "data": [b], "modifiers": modifiers}]
    if est.bound is not None:
        built.append(_mc_bound_sample(cb, sample.name, est.bound))
    record = {"_fit": (est, geometry), **est.as_dict(), "fitted_to": "data" if data_sets else "simulation (Asimov)", "ellipse": {"mbc_mean": geometry.mbc_mean, "de_mean": geometry.de_mean,
                                           "mbc_half_axis": geometry.mbc_half_axis, "de_half_axis": geometry.de_half_axis},
              "sideband_mbc": [list(w) for w in geometry.sideband_mbc]}
    return built, np.array([est.value]), False, bounds, record


_ESTIMATORS = {"transfer_factor": _transfer_factor_sample, "factorised": _factorised_sample,
               "sideband_fit": _sideband_fit_sample, "mc_count": _mc_count_sample}


def _measurement(sig, signals, signal_events, background_events, observed_events, config, uses_lumi) -> dict:
    s = sum(signal_events[sig].values())
    chans = signal_events[sig]
    n_plus_b = sum(observed_events[c] + background_events[c] for c in chans)
    # any CLs limit lies far below 10 x (n + b + 5) signal events: a range that always holds it
    upper = 10.0 * (n_plus_b + 5.0) / s
    parameters: list[dict] = [{"name": poi_name(sig), "bounds": [[0.0, upper]], "inits": [1.0]}]
    parameters += [{"name": poi_name(o), "fixed": True, "inits": [0.0]} for o in signals if o != sig]
    if uses_lumi:
        u = config.luminosity_uncertainty
        parameters.append(
            {"name": LUMI_PARAMETER, "auxdata": [1.0], "sigmas": [u], "bounds": [[max(1 - 5 * u, 1e-3), 1 + 5 * u]], "inits": [1.0]}
        )
    return {"name": sig, "config": {"poi": poi_name(sig), "parameters": parameters}}
