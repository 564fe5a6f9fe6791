"""The histogram contract every layer shares (processors fill it, outputs write it, stats read it).

A run's histograms are ``{dataset: {name: hist.Hist}}``: datasets are kept apart, never a dense
axis, so memory grows with what a chunk touched and a mass scan (every hypothesis a dataset) does
not multiply every histogram. Each histogram has the categorical axes ``channel`` and ``region``,
then -- only where the stats model reads systematic variations -- ``variation`` (``nominal``,
``<source>Up``, ``<source>Down``), then the physics axes; ``Weight()`` storage. Histograms without
a ``variation`` axis hold the nominal pass only (fine planes, N-1 plots, control distributions).
Processors fill unnormalised weights; ``scale_datasets`` normalises each dataset afterwards.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import hist
import numpy as np

CATEGORY_AXES = ("channel", "region")
VARIATION_AXIS = "variation"
NOMINAL = "nominal"

# {dataset: {histogram name: Hist}}
RunHistograms = dict[str, dict[str, hist.Hist]]


def new_hist(*axes: hist.axis.AxesMixin, systematics: bool = False) -> hist.Hist:
    """``channel``, ``region`` (and ``variation`` if ``systematics``), then ``axes``; Weight storage."""
    names = CATEGORY_AXES + ((VARIATION_AXIS,) if systematics else ())
    categories = [hist.axis.StrCategory([], name=n, label=n, growth=True) for n in names]
    return hist.Hist(*categories, *axes, storage=hist.storage.Weight())


def regular(bins: int, start: float, stop: float, name: str, label: str | None = None) -> hist.axis.Regular:
    return hist.axis.Regular(int(bins), start, stop, name=name, label=label or name)


def count_axis() -> hist.axis.Integer:
    """The one-bin axis of a counting histogram (fill with ``count=0``): region yields, nothing else."""
    return hist.axis.Integer(0, 1, name="count", label="events", underflow=False, overflow=False)


def has_variations(h: hist.Hist) -> bool:
    return VARIATION_AXIS in h.axes.name


def physics_axes(h: hist.Hist) -> list[hist.axis.AxesMixin]:
    """The axes after the categorical ones of the contract."""
    skip = len(CATEGORY_AXES) + int(has_variations(h))
    return list(h.axes[skip:])


def contract_error(name: str, h: hist.Hist) -> str | None:
    """Why ``h`` breaks the contract, or None."""
    names = list(h.axes.name)
    expected = list(CATEGORY_AXES)
    if names[: len(expected)] != expected:
        return f"histogram '{name}': axes must start with {', '.join(expected)}; got {', '.join(names)}"
    for ax in h.axes[: len(expected) + int(has_variations(h))]:
        if not isinstance(ax, hist.axis.StrCategory):
            return f"histogram '{name}': axis '{ax.name}' must be a StrCategory"
    if has_variations(h) and names.index(VARIATION_AXIS) != len(expected):
        return f"histogram '{name}': '{VARIATION_AXIS}' must be the axis after {', '.join(expected)}"
    if not physics_axes(h):
        return f"histogram '{name}': no physics axis after the categorical ones"
    if h.storage_type is not hist.storage.Weight:
        return f"histogram '{name}': storage must be Weight(), got {h.storage_type.__name__}"
    return None


def scale_datasets(histograms: RunHistograms, scales: Mapping[str, float]) -> None:
    """Multiply every histogram of each dataset by ``scales[dataset]`` (in place; default 1)."""
    for dataset, hists in histograms.items():
        factor = float(scales.get(dataset, 1.0))
        if factor == 1.0:
            continue
        for h in hists.values():
            view = h.view(flow=True)
            view.value *= factor
            view.variance *= factor * factor


def nbytes(histograms: Mapping[str, hist.Hist] | RunHistograms) -> int:
    """Memory held by the bin contents of (nested) histograms, flow bins included."""
    total = 0
    for value in histograms.values():
        if isinstance(value, hist.Hist):
            total += int(np.asarray(value.view(flow=True)).nbytes)
        elif isinstance(value, Mapping):
            total += nbytes(value)
    return total


def summed(histograms: RunHistograms, name: str, datasets: str | list[str], channel: str, **slices: Any) -> Any:
    """Histogram ``name`` of one channel summed over ``datasets`` and sliced (hist dict semantics);
    None if no dataset has it. A dataset that never filled a category named in ``slices`` (no
    event selected there) contributes nothing."""
    out = None
    for dataset in [datasets] if isinstance(datasets, str) else datasets:
        h = histograms.get(dataset, {}).get(name)
        categories = {"channel": channel, **{k: v for k, v in slices.items() if isinstance(v, str)}}
        if h is None or any(v not in h.axes[k] for k, v in categories.items()):
            continue
        part = h[{"channel": channel, **slices}]
        out = part if out is None else out + part
    return out


def fill_counts(h: hist.Hist, channel: str, variation: str, weight: np.ndarray, regions: Mapping[str, np.ndarray]) -> None:
    """Fill a counting histogram (``count_axis``): the weighted events of each region mask."""
    for region, mask in regions.items():
        h.fill(channel=channel, region=region, variation=variation, count=np.zeros(int(np.sum(mask)), dtype=int), weight=weight[mask])


def canonical_categories(h: hist.Hist, first: Mapping[str, Sequence[str]] | None = None) -> hist.Hist:
    """``h`` with every growing category axis in a fixed order: the values named in ``first[axis]``
    (those present, in that order), then the rest sorted. A growing axis lists its categories in the
    order chunks first filled them, and the futures and dask executors merge chunks in completion
    order: without this the order of ``channel`` / ``region`` / ``variation`` changes between runs."""
    first = first or {}
    order: dict[str, list[str]] = {}
    for ax in h.axes:
        if isinstance(ax, hist.axis.StrCategory) and ax.traits.growth:
            present = list(ax)
            leading = [v for v in first.get(ax.name, ()) if v in present]
            wanted = leading + sorted(v for v in present if v not in leading)
            if wanted != present:
                order[ax.name] = wanted
    if not order:
        return h
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "list indexing is experimental": every category is kept
        return h[order]
