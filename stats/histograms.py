"""Read a search's run output and cut yields out of its histograms.

Convention (what the processors write): ``DIR/SEARCH/histograms.coffea`` (``coffea.util.save``)
holds ``{histogram_name: hist.Hist}``; each histogram has the StrCategory axes ``dataset``,
``channel``, ``region``, ``variation`` ("nominal", "<syst>Up", "<syst>Down"), then one or more
axes of the fit variable, ``Weight()`` storage, values already normalised to the luminosity.
Further categorical axes among the fit axes (e.g. the taulgamma processor's ``tag`` class) are
bins like any other: flattened into the fit, summed in a counting channel. ``DIR/SEARCH/metadata.json`` has at least ``search``, ``experiment``,
``luminosity_fb`` and ``datasets: {name: {"kind": "signal"|"background"|"data", ...}}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import hist
import numpy as np

from belle_rare.stats.errors import StatsError

CATEGORY_AXES = ("dataset", "channel", "region", "variation")
NOMINAL = "nominal"
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
    histograms: dict[str, hist.Hist]
    metadata: dict
    directory: Path

    def histogram(self, name: str) -> hist.Hist:
        try:
            return self.histograms[name]
        except KeyError:
            have = ", ".join(sorted(self.histograms)) or "none"
            raise StatsError(f"{self.directory}: no histogram '{name}' in histograms.coffea (have: {have})") from None


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
        histograms = coffea.util.load(str(hist_path))
    except Exception as err:  # pickles fail in many ways; the message names the file
        raise StatsError(f"{hist_path}: cannot load ({type(err).__name__}: {err})") from None
    if not isinstance(histograms, dict):
        raise StatsError(f"{hist_path}: expected a dict of histograms, got {type(histograms).__name__}")
    for name, h in histograms.items():
        if isinstance(h, hist.Hist):
            check_histogram(name, h)
    return RunOutput(
        search=search,
        experiment=str(metadata["experiment"]),
        luminosity_fb=float(metadata["luminosity_fb"]),
        datasets=dict(metadata["datasets"]),
        histograms={k: v for k, v in histograms.items() if isinstance(v, hist.Hist)},
        metadata=metadata,
        directory=directory,
    )


def check_histogram(name: str, h: hist.Hist) -> None:
    """Raise StatsError unless ``h`` follows the histogram convention."""
    names = [ax.name for ax in h.axes]
    if tuple(names[:4]) != CATEGORY_AXES or len(names) < 5:
        raise StatsError(
            f"histogram '{name}': axes must be {', '.join(CATEGORY_AXES)} then the fit variable(s); got {', '.join(names)}"
        )
    for ax in h.axes[:4]:
        if not isinstance(ax, hist.axis.StrCategory):
            raise StatsError(f"histogram '{name}': axis '{ax.name}' must be a StrCategory")
    if h.storage_type is not hist.storage.Weight:
        raise StatsError(f"histogram '{name}': storage must be Weight(), got {h.storage_type.__name__}")


def _categories(h: hist.Hist, axis: str) -> list[str]:
    return list(h.axes[axis])


def fit_shape(h: hist.Hist) -> tuple[int, ...]:
    return tuple(ax.size for ax in h.axes[4:])


def yields(h: hist.Hist, dataset: str, channel: str, region: str, variation: str = NOMINAL) -> Yields:
    """Yields of one dataset; a category that was never filled gives zeros (no events passed)."""
    for axis, value in (("dataset", dataset), ("channel", channel), ("region", region), ("variation", variation)):
        if value not in _categories(h, axis):
            zeros = np.zeros(int(np.prod(fit_shape(h))))
            return Yields(zeros, zeros.copy())
    view = h[{"dataset": dataset, "channel": channel, "region": region, "variation": variation}]
    return Yields(np.asarray(view.values(), float).ravel(), np.asarray(view.variances(), float).ravel())


def summed_yields(h: hist.Hist, datasets: list[str], channel: str, region: str, variation: str = NOMINAL) -> Yields:
    total = yields(h, datasets[0], channel, region, variation) if datasets else None
    if total is None:
        zeros = np.zeros(int(np.prod(fit_shape(h))))
        return Yields(zeros, zeros.copy())
    for name in datasets[1:]:
        total = total + yields(h, name, channel, region, variation)
    return total


def systematics(h: hist.Hist) -> list[str]:
    """Systematic names with both "<syst>Up" and "<syst>Down" on the variation axis."""
    names = set(_categories(h, "variation"))
    return sorted(v[: -len(UP)] for v in names if v.endswith(UP) and v[: -len(UP)] + DOWN in names)


def varied_yields(h: hist.Hist, datasets: list[str], channel: str, region: str, syst: str) -> tuple[Yields, Yields]:
    """Up and down yields summed over datasets; a dataset without the variation keeps its nominal."""
    out = []
    for suffix in (UP, DOWN):
        total = None
        for name in datasets:
            varied = yields(h, name, channel, region, syst + suffix)
            if not varied.values.any() and not varied.variances.any():
                varied = yields(h, name, channel, region, NOMINAL)  # not filled for this dataset
            total = varied if total is None else total + varied
        out.append(total)
    return out[0], out[1]


def window_mask(h: hist.Hist, axis: str, low: float, high: float) -> np.ndarray:
    """Flattened mask of the fit bins whose centre along ``axis`` lies in [low, high]."""
    fit_axes = list(h.axes[4:])
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
