"""Read a search's run output and cut yields out of its histograms.

Layout (``belle_rare.core.histograms``, what the processors fill and the runner writes):
``DIR/SEARCH/histograms.coffea`` (``coffea.util.save``) holds ``{dataset: {histogram_name:
hist.Hist}}``; each histogram has the StrCategory axes ``channel``, ``region``, then -- only where
the stats model reads systematics -- ``variation`` ("nominal", "<syst>Up", "<syst>Down"), then
one or more physics axes (the fit variable), ``Weight()`` storage, values already normalised to
the luminosity. Categorical physics axes (e.g. the taulgamma processor's ``tag`` class) are bins
like any other: flattened into the fit, summed in a counting channel; a counting histogram has a
one-bin ``count`` axis. A dataset without a histogram, or a category never filled, gives zeros; a
histogram without a ``variation`` axis gives the nominal yields only (no histosys from it).
``DIR/SEARCH/metadata.json`` has at least ``search``, ``experiment``, ``luminosity_fb`` and
``datasets: {name: {"kind": "signal"|"background"|"data", ...}}``; searches with a BDT record
``sr_area_fraction: {channel: area of the signal region / area of the window around it}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import hist
import numpy as np

from belle_rare.core.histograms import NOMINAL, VARIATION_AXIS, RunHistograms, contract_error, has_variations, physics_axes
from belle_rare.stats.errors import StatsError

UP, DOWN = "Up", "Down"
DATASET_KINDS = ("signal", "background", "data")


@dataclass(frozen=True)
class Yields:
    """Bin contents and variances of the fit variable, flattened (C order over the fit axes)."""

    values: np.ndarray
    variances: np.ndarray

    def __add__(self, other: "Yields") -> "Yields":
        return Yields(self.values + other.values, self.variances + other.variances)

    def summed(self) -> "Yields":
        return Yields(np.array([self.values.sum()]), np.array([self.variances.sum()]))

    def masked(self, mask: np.ndarray) -> "Yields":
        return Yields(np.array([self.values[mask].sum()]), np.array([self.variances[mask].sum()]))


@dataclass(frozen=True)
class RunOutput:
    search: str
    experiment: str
    luminosity_fb: float
    datasets: dict[str, dict]
    histograms: RunHistograms  # {dataset: {name: Hist}}
    metadata: dict
    directory: Path
    # per-histogram facts over all datasets (a scan has a dataset per hypothesis: computed once)
    _systematics: dict[str, list[str]] = field(default_factory=dict, compare=False, repr=False)

    def histogram_names(self) -> list[str]:
        """Every histogram name some dataset has, sorted."""
        return sorted({name for hists in self.histograms.values() for name in hists})

    def histogram(self, name: str) -> hist.Hist:
        """The histogram ``name`` of the first dataset that has it: its axes stand for all datasets'."""
        return template(self.histograms, name, where=f"{self.directory}: ")


def _nested(run_or_hists: RunOutput | Mapping[str, Mapping[str, hist.Hist]]) -> Mapping[str, Mapping[str, hist.Hist]]:
    return run_or_hists.histograms if isinstance(run_or_hists, RunOutput) else run_or_hists


def template(run_or_hists, name: str, where: str = "") -> hist.Hist:
    """The histogram ``name`` of the first dataset that has it (StatsError if none has)."""
    for hists in _nested(run_or_hists).values():
        if name in hists:
            return hists[name]
    have = ", ".join(sorted({n for hists in _nested(run_or_hists).values() for n in hists})) or "none"
    raise StatsError(f"{where}no histogram '{name}' in histograms.coffea (have: {have})")


def run_output_dir(results_dir: str | Path, search: str) -> Path:
    return Path(results_dir) / search


def has_run_output(results_dir: str | Path, search: str) -> bool:
    d = run_output_dir(results_dir, search)
    return (d / "histograms.coffea").is_file() and (d / "metadata.json").is_file()


def load_run_output(results_dir: str | Path, search: str) -> RunOutput:
    """Load and check ``DIR/SEARCH/{histograms.coffea, metadata.json}``."""
    import coffea.util  # heavy import, only needed here

    directory = run_output_dir(results_dir, search)
    meta_path, hist_path = directory / "metadata.json", directory / "histograms.coffea"
    for path in (meta_path, hist_path):
        if not path.is_file():
            raise StatsError(f"{path}: missing (run the '{search}' analysis first)")
    try:
        metadata = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise StatsError(f"{meta_path}: not JSON ({err.msg} at line {err.lineno})") from None
    for key in ("search", "experiment", "luminosity_fb", "datasets"):
        if key not in metadata:
            raise StatsError(f"{meta_path}: missing key '{key}'")
    if metadata["search"] != search:
        raise StatsError(f"{meta_path}: search is '{metadata['search']}', expected '{search}'")
    for name, info in metadata["datasets"].items():
        if not isinstance(info, dict) or info.get("kind") not in DATASET_KINDS:
            raise StatsError(f"{meta_path}: datasets.{name}.kind must be one of {', '.join(DATASET_KINDS)}")
    try:
        loaded = coffea.util.load(str(hist_path))
    except Exception as err:  # pickles fail in many ways; the message names the file
        raise StatsError(f"{hist_path}: cannot load ({type(err).__name__}: {err})") from None
    return RunOutput(
        search=search,
        experiment=str(metadata["experiment"]),
        luminosity_fb=float(metadata["luminosity_fb"]),
        datasets=dict(metadata["datasets"]),
        histograms=check_histograms(loaded, str(hist_path)),
        metadata=metadata,
        directory=directory,
    )


def check_histograms(loaded: object, source: str) -> RunHistograms:
    """``{dataset: {name: Hist}}`` of ``loaded`` (other values dropped); StatsError unless every
    histogram keeps the contract and a name has the same physics axes in every dataset."""
    if not isinstance(loaded, Mapping):
        raise StatsError(f"{source}: expected {{dataset: {{histogram: Hist}}}}, got {type(loaded).__name__}")
    out: RunHistograms = {}
    first: dict[str, tuple[str, hist.Hist]] = {}
    for dataset, hists in loaded.items():
        if isinstance(hists, hist.Hist):
            raise StatsError(
                f"{source}: '{dataset}' is a histogram, not a dataset: expected {{dataset: {{histogram: Hist}}}} "
                "(an output of an older belle-rare? run the analysis again)"
            )
        if not isinstance(hists, Mapping):
            raise StatsError(f"{source}: dataset '{dataset}': expected {{histogram: Hist}}, got {type(hists).__name__}")
        out[dataset] = {}
        for name, h in hists.items():
            if not isinstance(h, hist.Hist):
                continue
            problem = contract_error(name, h)
            if problem:
                raise StatsError(f"{source}: dataset '{dataset}': {problem}")
            if name in first:
                other, ref = first[name]
                if physics_axes(h) != physics_axes(ref) or has_variations(h) != has_variations(ref):
                    raise StatsError(f"{source}: histogram '{name}' has different axes in datasets '{other}' and '{dataset}'")
            else:
                first[name] = (dataset, h)
            out[dataset][name] = h
    return out


def _categories(h: hist.Hist, axis: str) -> list[str]:
    return list(h.axes[axis])


def fit_shape(h: hist.Hist) -> tuple[int, ...]:
    return tuple(ax.size for ax in physics_axes(h))


def _zeros(h: hist.Hist) -> Yields:
    zeros = np.zeros(int(np.prod(fit_shape(h))))
    return Yields(zeros, zeros.copy())


def yields(run_or_hists, name: str, dataset: str, channel: str, region: str, variation: str = NOMINAL) -> Yields:
    """Yields of histogram ``name`` of one dataset.

    A dataset without the histogram or a category never filled gives zeros (no events passed);
    a histogram without a ``variation`` axis has the nominal yields only (zeros for any other).
    """
    h = _nested(run_or_hists).get(dataset, {}).get(name)
    if h is None:
        return _zeros(template(run_or_hists, name))
    cut = {"channel": channel, "region": region}
    if has_variations(h):
        cut[VARIATION_AXIS] = variation
    elif variation != NOMINAL:
        return _zeros(h)
    for axis, value in cut.items():
        if value not in _categories(h, axis):
            return _zeros(h)
    view = h[cut]
    return Yields(np.asarray(view.values(), float).ravel(), np.asarray(view.variances(), float).ravel())


def _channel_list(channel: str | Sequence[str]) -> list[str]:
    return [channel] if isinstance(channel, str) else list(channel)


def summed_yields(run_or_hists, name: str, datasets: list[str], channel: str | Sequence[str], region: str,
                  variation: str = NOMINAL) -> Yields:
    """Yields summed over ``datasets`` and over ``channel`` (one channel-axis value or several)."""
    total = _zeros(template(run_or_hists, name))
    for ch in _channel_list(channel):
        for dataset in datasets:
            total = total + yields(run_or_hists, name, dataset, ch, region, variation)
    return total


def has_variation_axis(run_or_hists, name: str) -> bool:
    return has_variations(template(run_or_hists, name))


def systematics(run_or_hists, name: str) -> list[str]:
    """Systematic names with both "<syst>Up" and "<syst>Down" on the variation axis of histogram
    ``name`` (in any dataset); none for a histogram without a variation axis."""
    if isinstance(run_or_hists, RunOutput):
        if name not in run_or_hists._systematics:
            run_or_hists._systematics[name] = _systematics(run_or_hists.histograms, name)
        return list(run_or_hists._systematics[name])
    return _systematics(run_or_hists, name)


def _systematics(run_or_hists, name: str) -> list[str]:
    template(run_or_hists, name)  # exists somewhere
    names: set[str] = set()
    for hists in _nested(run_or_hists).values():
        h = hists.get(name)
        if h is not None and has_variations(h):
            names.update(_categories(h, VARIATION_AXIS))
    return sorted(v[: -len(UP)] for v in names if v.endswith(UP) and v[: -len(UP)] + DOWN in names)


def varied_yields(run_or_hists, name: str, datasets: list[str], channel: str | Sequence[str], region: str,
                  syst: str) -> tuple[Yields, Yields]:
    """Up and down yields summed over datasets (and channels); a dataset without the variation keeps its nominal."""
    out = []
    for suffix in (UP, DOWN):
        total = None
        for ch in _channel_list(channel):
            for dataset in datasets:
                varied = yields(run_or_hists, name, dataset, ch, region, syst + suffix)
                if not varied.values.any() and not varied.variances.any():
                    varied = yields(run_or_hists, name, dataset, ch, region, NOMINAL)  # not filled for this dataset
                total = varied if total is None else total + varied
        out.append(total)
    return out[0], out[1]


def window_mask(h: hist.Hist, axis: str, low: float, high: float) -> np.ndarray:
    """Flattened mask of the fit bins whose centre along ``axis`` lies in [low, high]."""
    fit_axes = physics_axes(h)
    names = [ax.name for ax in fit_axes]
    if axis not in names:
        raise StatsError(f"window axis '{axis}' is not a fit axis of the histogram (have: {', '.join(names)})")
    window_axis = fit_axes[names.index(axis)]
    if isinstance(window_axis, (hist.axis.StrCategory, hist.axis.IntCategory)):
        raise StatsError(f"window axis '{axis}' is categorical; it needs a numeric axis")
    # only the window axis needs coordinates; the others (possibly categorical) just index bins
    coords = [ax.centers if ax is window_axis else np.arange(ax.size) for ax in fit_axes]
    centres = np.meshgrid(*coords, indexing="ij")[names.index(axis)].ravel()
    return (centres >= low) & (centres <= high)
