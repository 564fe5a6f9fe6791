"""Schema of a per-search stats-model description (``configs/stats/<search>.yaml`` for the built-in
searches; any search names its own file as ``Search.stats_file`` in the registry).

The YAML names, for every pyhf channel, the histogram and region that feed it, the samples
(which datasets, or a data-driven sideband estimate) and their modifiers; for every signal
process how a limit on it becomes a branching fraction or cross section, and the published
limits to compare with. See ``configs/stats/taulgamma.yaml`` for a complete example. A search run on
several experiments keeps one such model per experiment under ``experiments:`` and says how they
combine (``combination:``; ``configs/stats/kstartautau.yaml``); a run takes its experiment's part.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, TypeVar, Union

import pydantic

from belle_rare.configs.loader import ConfigError, StrictModel, load_config, read_yaml, validate
from belle_rare.core.errors import UserError
from belle_rare.processors import registry  # the layer below: which searches are installed
from belle_rare.stats.limits import DEFAULT_SEED

DatasetKind = Literal["signal", "background", "data"]


class DatasetSelection(StrictModel):
    """Datasets of the run metadata: by kind, by name (glob patterns), or both."""

    kind: DatasetKind | None = None
    names: list[str] | None = None

    @pydantic.model_validator(mode="after")
    def _not_empty(self) -> "DatasetSelection":
        if self.kind is None and not self.names:
            raise ValueError("select datasets by 'kind' and/or 'names'")
        return self

    def select(self, datasets: dict[str, dict]) -> list[str]:
        """Names in ``datasets`` (metadata name -> info) matching this selection, sorted."""
        out = []
        for name, info in datasets.items():
            if self.kind is not None and info.get("kind") != self.kind:
                continue
            if self.names and not any(fnmatch.fnmatchcase(name, pattern) for pattern in self.names):
                continue
            out.append(name)
        return sorted(out)


class NormSys(StrictModel):
    """Normalisation uncertainty: symmetric ``rel`` or asymmetric ``up`` / ``down`` (relative)."""

    type: Literal["normsys"]
    name: str
    rel: float | None = pydantic.Field(default=None, gt=0, lt=1)
    up: float | None = pydantic.Field(default=None, gt=0)
    down: float | None = pydantic.Field(default=None, gt=0, lt=1)

    @pydantic.model_validator(mode="after")
    def _one_form(self) -> "NormSys":
        if (self.rel is None) == (self.up is None and self.down is None):
            raise ValueError(f"normsys '{self.name}': give either 'rel' or both 'up' and 'down'")
        if self.rel is None and (self.up is None or self.down is None):
            raise ValueError(f"normsys '{self.name}': give both 'up' and 'down'")
        return self

    @property
    def hi_lo(self) -> tuple[float, float]:
        if self.rel is not None:
            return 1.0 + self.rel, 1.0 - self.rel
        return 1.0 + self.up, 1.0 - self.down


class Lumi(StrictModel):
    """Luminosity uncertainty (size: ``luminosity_uncertainty`` at the top level)."""

    type: Literal["lumi"]


class StatError(StrictModel):
    """Simulation statistics, from the Weight() variances (Barlow-Beeston lite, per channel)."""

    type: Literal["staterror"]


class HistoSys(StrictModel):
    """Shape + normalisation systematics from the ``variation`` axis ("<syst>Up" / "<syst>Down")."""

    type: Literal["histosys"]
    systematics: list[str] | Literal["all"] = "all"


class NormFactor(StrictModel):
    """A free normalisation (pyhf ``normfactor``, unconstrained, bounds [0, 10] x the simulated
    yield). Samples that name the same factor float together: their ratio stays as simulated
    (kstartautau: B+B- and B0B0bar share one, as in the Belle paper)."""

    type: Literal["normfactor"]
    name: str


Modifier = Annotated[Union[NormSys, Lumi, StatError, HistoSys, NormFactor], pydantic.Field(discriminator="type")]


class TransferFactor(StrictModel):
    """Sideband -> signal region transfer factor: a number +- uncertainty, or a ratio of yields.

    ``from_mc``: MC(numerator) / MC(denominator) of the selected simulation; ``from_data``: the
    same ratio in the channel's observation (simulated background when there is none), e.g. ABCD
    with b_A = N_B x N_C / N_D. ``regions`` = [numerator, denominator]; default (``from_mc``
    only) [the channel's region, the sideband region].
    """

    value: float | None = pydantic.Field(default=None, gt=0)
    uncertainty: float = pydantic.Field(default=0.0, ge=0)
    from_mc: DatasetSelection | None = None
    from_data: bool = False
    regions: list[str] | None = pydantic.Field(default=None, min_length=2, max_length=2)

    @pydantic.model_validator(mode="after")
    def _one_source(self) -> "TransferFactor":
        if sum([self.value is not None, self.from_mc is not None, self.from_data]) != 1:
            raise ValueError("transfer_factor: give one of 'value', 'from_mc' or 'from_data: true'")
        if self.value is not None and self.regions is not None:
            raise ValueError("transfer_factor: 'regions' needs 'from_mc' or 'from_data'")
        if self.from_data and self.regions is None:
            raise ValueError("transfer_factor: 'from_data' needs 'regions' (two control regions, not the signal region)")
        return self


class LooserRegion(StrictModel):
    """Where a dataset with no event in the window before the cut is counted instead (per dataset):
    ``regions`` / ``pass_regions`` of ``histogram`` (summed over its bins) before / after the cut, spread
    flat: its window count is N_looser x ``window_share[channel]`` (area of the window over the looser
    region's), its efficiency the looser region's; a dataset empty there too carries its bound (the
    weight per event) x ``window_share`` and efficiency 1 (unmeasured)."""

    histogram: str
    regions: list[str] = pydantic.Field(min_length=1)
    pass_regions: list[str] = pydantic.Field(min_length=1)
    window_share: dict[str, Annotated[float, pydantic.Field(gt=0, le=1)]]


class TailFit(StrictModel):
    """Where a dataset with no event in the window before the cut nor in ``looser`` is estimated (per dataset):
    its ``histogram`` (one axis, summed over ``regions``) fitted in ``fit_range`` by an
    exponential and integrated over the window's band ``window[channel]`` on that axis, x
    ``window_over_band[channel]`` (the window's area over the band's: the SR box may stick out of the band),
    with the fit's variance plus the model's (the fit in ``alternative_range``: the difference); its
    efficiency the fit range's ``pass_regions`` over ``regions`` (:mod:`stats.tail_fit`). A dataset with
    fewer than ``min_effective_events`` there falls through to its bound. A dataset whose window
    holds fewer than ``replaces_window_below`` effective events takes the fit too (0: only empty windows)."""

    histogram: str
    regions: list[str] = pydantic.Field(min_length=1)
    pass_regions: list[str] = pydantic.Field(min_length=1)
    fit_range: tuple[float, float]
    alternative_range: tuple[float, float]
    window: dict[str, tuple[float, float]]
    window_over_band: dict[str, Annotated[float, pydantic.Field(ge=1)]]
    min_effective_events: Annotated[float, pydantic.Field(gt=0)] = 10.0
    replaces_window_below: Annotated[float, pydantic.Field(ge=0)] = 0.0
    # the window count's cut efficiency: the fit range's pass fraction, or 1 (``unmeasured``: the cut's pass
    # fraction rises towards the window, so the fit range's is optimistic there; benchmarks/bench_taulphi_bound.py)
    efficiency: Literal["fit_range", "unmeasured"] = "fit_range"

    @pydantic.model_validator(mode="after")
    def _ranges(self) -> "TailFit":
        for name in ("fit_range", "alternative_range"):
            lo, hi = getattr(self, name)
            if not lo < hi:
                raise ValueError(f"tail_fit.{name}: low edge {lo} not below high edge {hi}")
            if any(hi > w[0] for w in self.window.values()):
                raise ValueError(f"tail_fit.{name}: must end below every channel's window (a fit of the window itself is not an extrapolation)")
        if set(self.window) != set(self.window_over_band):
            raise ValueError("tail_fit: 'window' and 'window_over_band' must name the same channels")
        return self


class BoundEfficiency(StrictModel):
    """The cut's pass fraction of a dataset that still carries its bound (no event in the window, in ``looser`` nor
    enough for ``tail_fit``; per dataset): its ``pass_regions`` over ``regions`` of ``histogram`` (one axis) in
    ``range`` on that axis, where it has events, instead of 1. No event passing: the Beta(1, n + 1) mean
    1 / (n + 2) of n effective events (stats/mc_bound.py ``fill_empty_fraction``), +-100 %. Fewer than
    ``min_effective_events`` there: eps stays 1 (unmeasured). b = bound x share x eps: the bound of the count
    before the cut (issue 11: a bound that knows the cut)."""

    histogram: str
    regions: list[str] = pydantic.Field(min_length=1)
    pass_regions: list[str] = pydantic.Field(min_length=1)
    range: tuple[float, float]
    min_effective_events: Annotated[float, pydantic.Field(gt=0)] = 10.0

    @pydantic.model_validator(mode="after")
    def _range(self) -> "BoundEfficiency":
        if not self.range[0] < self.range[1]:
            raise ValueError(f"bound_efficiency.range: low edge {self.range[0]} not below high edge {self.range[1]}")
        return self


class FactorisedEfficiency(StrictModel):
    """b = N(before_regions) x P / (P + F), P / F the counts of ``pass_regions`` / ``fail_regions``
    (:mod:`stats.factorised`), all from the channel's observation (simulation when there is none).

    ``before_from``: ``ellipse`` counts N(before_regions) directly; ``window_area`` counts the
    wider ``window_regions`` and scales by the area of the signal region over the window's (the
    run metadata's ``sr_area_fraction``): a flat background across the window.

    ``total_regions`` instead of ``fail_regions``: regions holding every event before the cut (the
    pass regions' events among them), F = total - P per dataset (taulphi's ``*_presel`` regions).
    ``per_dataset``: b = sum_d N_d x eps_d, each dataset's count times its own efficiency (the cut
    keeps different fractions of different processes, so one pooled eps would weight them by their
    share of the control region, not of the signal region). ``looser`` (per dataset only): where a
    dataset with no event in the window is counted instead (:class:`LooserRegion`); ``bound_efficiency``: the
    pass fraction a dataset that keeps its bound is scaled by (:class:`BoundEfficiency`)."""

    before_regions: list[str] = pydantic.Field(min_length=1)
    pass_regions: list[str] = pydantic.Field(min_length=1)
    fail_regions: list[str] | None = pydantic.Field(default=None, min_length=1)
    total_regions: list[str] | None = pydantic.Field(default=None, min_length=1)
    before_from: Literal["ellipse", "window_area"] = "ellipse"
    window_regions: list[str] | None = pydantic.Field(default=None, min_length=1)
    per_dataset: bool = False
    looser: LooserRegion | None = None
    tail_fit: TailFit | None = None
    bound_efficiency: BoundEfficiency | None = None
    # A background dataset with at least this many effective simulated events (Kish) in the channel's region
    # (the signal region after the cut) takes that plain count instead of being factorised; the others are
    # factorised as configured. The factorisation assumes a flat window and a pass fraction independent of
    # the (M, dE) position; the plain count tests it once it has statistics, and then replaces it
    # (limits.json ``plain_count_datasets`` keeps both and their pull). Simulation only (no pseudo-data).
    plain_min_events: float | None = pydantic.Field(default=None, gt=0)

    @pydantic.model_validator(mode="after")
    def _disjoint(self) -> "FactorisedEfficiency":
        if (self.fail_regions is None) == (self.total_regions is None):
            raise ValueError("factorised: give one of 'fail_regions' or 'total_regions'")
        if self.looser is not None and not self.per_dataset:
            raise ValueError("factorised: 'looser' needs 'per_dataset: true'")
        if self.tail_fit is not None and not self.per_dataset:
            raise ValueError("factorised: 'tail_fit' needs 'per_dataset: true'")
        if self.bound_efficiency is not None and not self.per_dataset:
            raise ValueError("factorised: 'bound_efficiency' needs 'per_dataset: true'")
        if self.fail_regions is not None and set(self.pass_regions) & set(self.fail_regions):
            raise ValueError("factorised: 'pass_regions' and 'fail_regions' must not share a region")
        if self.before_from == "window_area" and self.window_regions is None:
            raise ValueError("factorised: 'before_from: window_area' needs 'window_regions'")
        if self.window_regions is not None and not set(self.before_regions) <= set(self.window_regions):
            raise ValueError("factorised: 'window_regions' must contain the 'before_regions' (the window holds the signal region)")
        return self


class SidebandFit(StrictModel):
    """The expected background in the signal ellipse from a fit to the (M_bc, dE) sidebands of the
    simulated background (:mod:`stats.sideband_fit`; taulgamma, the paper's sec. 3). The ellipse and
    the M_bc sidebands come from the search config (its ``sideband_plane(channel)``).

    ``histogram``: the plane after all cuts but the ellipse, summed over ``regions`` (and over every
    other physics axis, e.g. the tag class); ``shapes``: the dE shape per dataset (``default`` for
    the rest); datasets with fewer than ``min_events`` simulated events in the fit region keep their
    plain count (and the MC bound); with none above it the estimate is the plain count (fallback).
    The plain count of ``datasets`` in the channel's region (``estimate: mc_count``, with the
    sample's histosys / staterror modifiers) is computed beside it as the cross-check."""

    histogram: str
    regions: list[str] = pydantic.Field(min_length=1)
    mbc_axis: str = "mbc"
    de_axis: str = "de"
    datasets: DatasetSelection = DatasetSelection(kind="background")
    shapes: dict[str, Literal["landau_exponential", "landau_gaussian", "exponential"]] = {"default": "landau_exponential"}
    mbc_shape: Literal["flat", "linear"] = "flat"
    min_events: float = pydantic.Field(default=20.0, gt=0)
    # the limit: "shape" = signal + background fit in the fine (M_bc, dE) bins of the ellipse
    # (search_limits; counting as the cross-check), "counting" = the ellipse count only
    limit: Literal["shape", "counting"] = "shape"


BackgroundEstimate = Literal["transfer_factor", "factorised", "sideband_fit", "mc_count"]
BACKGROUND_ESTIMATES: tuple[str, ...] = ("transfer_factor", "factorised", "sideband_fit", "mc_count")


class DataDriven(StrictModel):
    """Background = (observed count in the sideband region) x transfer factor, Poisson-constrained;
    or, with ``estimate: factorised``, N(before a cut) x the cut's efficiency (``factorised``); or,
    with ``estimate: sideband_fit``, the (M_bc, dE) sideband fit (``sideband_fit``; ``mc_count``
    its plain-count cross-check)."""

    sideband_region: str | None = None  # needed by transfer_factor / factorised
    histogram: str | None = None  # default: the channel's histogram
    transfer_factor: TransferFactor | None = None
    estimate: BackgroundEstimate = "transfer_factor"  # the one the limit uses; the other is a cross-check
    factorised: FactorisedEfficiency | None = None
    sideband_fit: SidebandFit | None = None

    def offers(self, estimate: str) -> bool:
        """Whether this background has the block ``estimate`` needs."""
        if estimate == "transfer_factor":
            return self.transfer_factor is not None
        if estimate == "factorised":
            return self.factorised is not None
        return self.sideband_fit is not None

    @pydantic.model_validator(mode="after")
    def _estimate(self) -> "DataDriven":
        if self.transfer_factor is None and self.sideband_fit is None:
            raise ValueError("give a 'transfer_factor' (with 'sideband_region') or a 'sideband_fit' block")
        if self.transfer_factor is not None and self.sideband_region is None:
            raise ValueError("a transfer_factor needs 'sideband_region'")
        if self.estimate == "factorised" and self.factorised is None:
            raise ValueError("estimate: factorised needs a 'factorised' block")
        if not self.offers(self.estimate):
            raise ValueError(f"estimate: {self.estimate} needs a '{'sideband_fit' if self.estimate == 'mc_count' else self.estimate}' block")
        return self


class Sample(StrictModel):
    name: str
    signal: str | None = None  # key in ``signals``: this sample scales with that signal's POI
    datasets: DatasetSelection | None = None
    data_driven: DataDriven | None = None
    modifiers: list[Modifier] = []

    @pydantic.model_validator(mode="after")
    def _source(self) -> "Sample":
        if (self.datasets is None) == (self.data_driven is None):
            raise ValueError(f"sample '{self.name}': give either 'datasets' or 'data_driven'")
        if self.signal is not None and self.data_driven is not None:
            raise ValueError(f"sample '{self.name}': a signal sample cannot be data-driven")
        return self


class Window(StrictModel):
    """For scans: count only bins of ``axis`` within centre +- half width, both from the hypothesis."""

    axis: str
    centre: str  # hypothesis parameter holding the centre, e.g. "mass"
    half_width: float | None = pydantic.Field(default=None, gt=0)
    half_width_parameter: str | None = None  # hypothesis parameter, e.g. "resolution"
    n_sigma: float = pydantic.Field(default=1.0, gt=0)

    @pydantic.model_validator(mode="after")
    def _width(self) -> "Window":
        if (self.half_width is None) == (self.half_width_parameter is None):
            raise ValueError("window: give either 'half_width' or 'half_width_parameter'")
        return self


class Channel(StrictModel):
    name: str
    histogram: str
    # value on the histogram's channel axis (default: ``name``); a list sums those channels' yields
    # (kstartautau Belle: the six tau-pair topologies, "signal modes are combined in the fit")
    channel: str | list[str] | None = None
    region: str
    counting: bool = False  # sum all fit-variable bins into one
    window: Window | None = None
    observation: DatasetSelection = DatasetSelection(kind="data")
    samples: list[Sample]

    @property
    def channel_value(self) -> str:
        """The one channel-axis value (a summed channel: its values joined by '+', for messages)."""
        return "+".join(self.channel_values)

    @property
    def channel_values(self) -> list[str]:
        """The channel-axis values whose yields this channel sums (one unless ``channel`` is a list)."""
        if self.channel is None:
            return [self.name]
        return [self.channel] if isinstance(self.channel, str) else list(self.channel)

    @pydantic.model_validator(mode="after")
    def _checks(self) -> "Channel":
        names = [s.name for s in self.samples]
        if len(set(names)) != len(names):
            raise ValueError(f"channel '{self.name}': sample names must be unique")
        if any(s.data_driven for s in self.samples) and not self.counting:
            raise ValueError(f"channel '{self.name}': data-driven samples need 'counting: true'")
        if self.window is not None and not self.counting:
            raise ValueError(f"channel '{self.name}': a window needs 'counting: true'")
        if isinstance(self.channel, list) and (not self.channel or any(s.data_driven for s in self.samples)):
            raise ValueError(f"channel '{self.name}': a list of channels must be non-empty and holds no data-driven sample")
        return self


class Exposure(StrictModel):
    """A published count for a given luminosity; scaled to the luminosity of the run."""

    value: float = pydantic.Field(gt=0)
    luminosity_fb: float = pydantic.Field(gt=0)


class SignalNormalisation(StrictModel):
    """How the POI (signal strength relative to the simulated reference) maps to physics.

    The signal histograms are normalised to a reference branching fraction / cross section,
    read from the run metadata (``datasets[<name>][reference_key]``) or given here. With
    ``reference_key: cross_section_nb`` (the runner's sigma x BR) the reference is derived from
    the parents' production cross section.
    """

    quantity: Literal["branching_fraction", "cross_section"]
    parents: Literal["tau_pairs", "b_pairs", "none"]
    reference_key: str = "branching_fraction"
    reference_value: float | None = pydantic.Field(default=None, gt=0)
    n_tau_pairs: Exposure | None = None  # default: L x sigma_tautau of the experiment config
    n_bb_key: str | None = None  # key of ``n_bb`` / ``luminosity_fb`` in the experiment config
    # share of the B pairs that are of the signal species: a number, or "neutral" / "charged" for
    # f00 = 1 - f+- / f+- from the experiment config's upsilon4s_charged_fraction
    b_fraction: float | Literal["neutral", "charged"] = 1.0

    def b_fraction_value(self, charged_fraction: float) -> float:
        """``b_fraction`` as a number, given the experiment's f(+-)."""
        if self.b_fraction == "charged":
            return charged_fraction
        if self.b_fraction == "neutral":
            return 1.0 - charged_fraction
        return float(self.b_fraction)

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> "SignalNormalisation":
        if self.quantity == "cross_section" and self.parents != "none":
            raise ValueError("a cross section has parents: none")
        if self.quantity == "branching_fraction" and self.parents == "none":
            raise ValueError("a branching fraction needs parents: tau_pairs or b_pairs")
        if self.parents == "b_pairs" and self.n_bb_key is None:
            raise ValueError("parents: b_pairs needs n_bb_key")
        if isinstance(self.b_fraction, float) and not 0 < self.b_fraction <= 1:
            raise ValueError("b_fraction must be in (0, 1], or 'neutral' / 'charged'")
        return self


class Published(StrictModel):
    observed: float | None = None
    expected: float | None = None
    cl: float = pydantic.Field(gt=0, lt=1)
    source: str
    method: str = ""
    # How the paper defines its expected limit: "median" of the background-only limits (ours), or
    # "background": the limit computed as if the observed count were the expected background b
    # (tau3mu: "assuming an observed number of events equal to 0.7"); the latter is then also
    # computed on our b (limits.json ``expected_paper_convention``) to compare like with like.
    expected_observation: Literal["median", "background"] = "median"
    expected_background: float | None = pydantic.Field(default=None, ge=0)  # the paper's b for it
    # The count the paper observed in its signal region (counting analyses): its observed limit rests on
    # it, so ours is also computed at that count (limits.json ``limit_at_paper_count``), the like-with-like
    # partner of a published observed limit (an expected limit against it mixes in the paper's fluctuation).
    observed_events: int | None = pydantic.Field(default=None, ge=0)


class Signal(StrictModel):
    label: str
    normalisation: SignalNormalisation
    scan: list[str] = []  # hypothesis parameters (metadata datasets[...]["parameters"]) for a scan
    published: dict[str, Published] = {}  # by limit name: a channel name or "combined"


class ScanSettings(StrictModel):
    method: Literal["auto", "fast", "pyhf"] = "auto"
    executor: Literal["local", "dask"] = "local"
    workers: int = pydantic.Field(default=2, ge=1)
    scheduler: str | None = None  # dask scheduler address; default: a LocalCluster


class StatsConfig(StrictModel):
    search: str
    experiment: Literal["belle", "belle2"]
    description: str = ""
    cl: float = pydantic.Field(default=0.90, gt=0, lt=1)
    calculator: Literal["auto", "asymptotics", "toybased"] = "auto"
    ntoys: int = pydantic.Field(default=1000, ge=50)
    seed: int = DEFAULT_SEED
    luminosity_uncertainty: float = pydantic.Field(default=0.0, ge=0, lt=1)
    signals: dict[str, Signal]
    channels: list[Channel]
    scan: ScanSettings = ScanSettings()
    # a limit per channel beside the combined one; false: the combined only (a simultaneous fit of many
    # parameters, where each extra limit costs minutes: kstartautau Belle II's four categories)
    per_channel_limits: bool = True
    # who makes the asymptotic limits' fits: pyhf, or the same likelihood with its exact gradient
    # (stats/binned_likelihood.py; for models of many nuisance parameters, where pyhf's numerical
    # gradients take minutes)
    fit_engine: Literal["pyhf", "analytic"] = "pyhf"

    @pydantic.model_validator(mode="after")
    def _references(self) -> "StatsConfig":
        names = [c.name for c in self.channels]
        if len(set(names)) != len(names):
            raise ValueError("channel names must be unique")
        used = set()
        for channel in self.channels:
            signals = [s.signal for s in channel.samples if s.signal is not None]
            if len(set(signals)) != len(signals):
                raise ValueError(f"channel '{channel.name}': one sample per signal")
            for sig in signals:
                if sig not in self.signals:
                    raise ValueError(f"channel '{channel.name}': unknown signal '{sig}'")
            used.update(signals)
        for sig, spec in self.signals.items():
            if sig not in used:
                raise ValueError(f"signal '{sig}' is in no channel")
            for key in spec.published:
                if key != "combined" and key not in names:
                    raise ValueError(f"signal '{sig}': published limit for unknown channel '{key}'")
        return self

    def channels_with(self, signal: str) -> list[Channel]:
        return [c for c in self.channels if any(s.signal == signal for s in c.samples)]


Experiment = Literal["belle", "belle2"]


class Combination(StrictModel):
    """Experiments fitted together (``belle-rare limit SEARCH --results DIR --combine-with OTHER``):
    each experiment's workspace of a signal (all its channels) with one POI across them, the
    branching fraction (or cross section) itself; every other parameter stays the experiment's own
    (prefixed with its name: the detectors' systematics are uncorrelated)."""

    experiments: list[Experiment] = pydantic.Field(min_length=2)
    calculator: Literal["asymptotics", "toybased"] = "asymptotics"
    fit_engine: Literal["pyhf", "analytic"] = "pyhf"  # as StatsConfig.fit_engine
    published: dict[str, Published] = {}  # by signal

    @pydantic.model_validator(mode="after")
    def _distinct(self) -> "Combination":
        if len(set(self.experiments)) != len(self.experiments):
            raise ValueError("combination: experiments must be distinct")
        return self


class MultiExperimentStats(StrictModel):
    """A stats file with one part per experiment (each a :class:`StatsConfig` without ``search`` /
    ``experiment``, validated as such by :func:`load_stats_file`) and their combination."""

    search: str
    description: str = ""
    experiments: dict[Experiment, dict] = pydantic.Field(min_length=1)
    combination: Combination | None = None

    @pydantic.model_validator(mode="after")
    def _combined_parts(self) -> "MultiExperimentStats":
        if self.combination is not None:
            missing = [e for e in self.combination.experiments if e not in self.experiments]
            if missing:
                raise ValueError(f"combination: no part for experiment(s) {', '.join(missing)} under 'experiments'")
        return self


@dataclass(frozen=True)
class StatsFile:
    """A search's stats file: one validated model per experiment, and the combination if any."""

    path: Path
    parts: dict[str, StatsConfig]
    combination: Combination | None = None
    per_experiment: bool = False  # the file has an ``experiments`` block (else: one StatsConfig)

    def part(self, experiment: str | None) -> StatsConfig:
        """The model of ``experiment``; a single-model file returns its one model whatever is asked
        (callers compare ``config.experiment`` with their run's)."""
        if not self.per_experiment:
            return next(iter(self.parts.values()))
        if experiment is None:
            raise ConfigError(f"{self.path}: experiments: one model per experiment ({', '.join(self.parts)}); say which")
        if experiment not in self.parts:
            raise ConfigError(f"{self.path}: experiments: no model for '{experiment}' (have: {', '.join(self.parts)})")
        return self.parts[experiment]


def read_stats_file(path: Path) -> StatsFile:
    """Validate a stats file: a single :class:`StatsConfig`, or per-experiment parts
    (:class:`MultiExperimentStats`); a ConfigError names the file and the key
    (``experiments.<experiment>.<key>`` in a part)."""
    data = read_yaml(path)
    if not (isinstance(data, dict) and "experiments" in data):
        config = validate(data, StatsConfig, path)
        return StatsFile(path, {config.experiment: config})
    multi = validate(data, MultiExperimentStats, path)
    parts = {}
    for experiment, part in multi.experiments.items():
        if not isinstance(part, dict):
            raise ConfigError(f"{path}: experiments.{experiment}: expected a mapping (a stats model without search / experiment)")
        for key in ("search", "experiment"):
            if key in part:
                raise ConfigError(f"{path}: experiments.{experiment}.{key}: set at the top level / by the part's key, not here")
        parts[experiment] = validate({**part, "search": multi.search, "experiment": experiment}, StatsConfig,
                                     f"{path}: experiments.{experiment}")
    return StatsFile(path, parts, multi.combination, per_experiment=True)


def with_background_estimate(config: StatsConfig, estimate: BackgroundEstimate) -> StatsConfig:
    """``config`` with every data-driven background that offers ``estimate`` switched to it
    (ConfigError if none offers it)."""
    switched = 0

    def switch(sample: Sample) -> Sample:
        nonlocal switched
        dd = sample.data_driven
        if dd is None or not dd.offers(estimate):
            return sample
        switched += 1
        return sample.model_copy(update={"data_driven": dd.model_copy(update={"estimate": estimate})})

    channels = [c.model_copy(update={"samples": [switch(s) for s in c.samples]}) for c in config.channels]
    if not switched:
        raise ConfigError(f"stats model of '{config.search}': no data-driven background offers the estimate '{estimate}'")
    return config.model_copy(update={"channels": channels})


def has_stats_model(search: str) -> bool:
    """Whether the installed search ``search`` names a stats model (UserError: unknown or broken)."""
    return registry.get_search(search).stats_file is not None


def available_searches() -> list[str]:
    """Installed searches (``belle_rare.searches`` entry points, built-in or from other packages)
    that have a stats model; a search that fails to import is left out here (it names itself
    when asked for directly)."""
    out = []
    for name in registry.search_names():
        try:
            if has_stats_model(name):
                out.append(name)
        except UserError:
            continue
    return sorted(out)


def stats_config_path(search: str) -> Path:
    """The stats-model YAML of ``search``: its registered ``Search.stats_file``."""
    path = registry.get_search(search).stats_file  # UserError naming the installed searches
    if path is None:
        have = ", ".join(available_searches()) or "none"
        raise ConfigError(f"search '{search}' has no stats model (its Search.stats_file is None; searches with one: {have})")
    return Path(path)


def load_stats_file(search: str) -> StatsFile:
    """The validated stats file of ``search``, every experiment's part (ConfigError names the file and key)."""
    path = stats_config_path(search)
    if not path.is_file():
        raise ConfigError(f"{path}: missing (the stats model of search '{search}', its Search.stats_file)")
    if registry.get_search(search).scan is not None:
        raise ConfigError(f"{path}: the stats model of search '{search}' is read by its own scan "
                          f"({registry.get_search(search).scan}), not by the generic channels/samples schema")
    stats_file = read_stats_file(path)
    for config in stats_file.parts.values():
        if config.search != search:
            raise ConfigError(f"{path}: search: '{config.search}' differs from the search it belongs to, '{search}'")
    return stats_file


def load_stats_config(search: str, experiment: str | None = None) -> StatsConfig:
    """The validated stats model of ``search`` (ConfigError names the file and key); a file with one
    part per experiment needs ``experiment``."""
    return load_stats_file(search).part(experiment)


ScanModel = TypeVar("ScanModel", bound=pydantic.BaseModel)


def load_scan_config(search: str, model: type[ScanModel], path: Path | None = None) -> ScanModel:
    """A scan search's stats YAML (its ``Search.stats_file``, or ``path``: e.g. a reduced scan) in the
    scan's own schema ``model`` (a ConfigError names the file and key)."""
    path = path if path is not None else registry.get_search(search).stats_file
    if path is None:
        raise UserError(f"search '{search}' has no stats YAML (Search.stats_file)")
    return load_config(path, model)
