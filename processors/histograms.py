"""Histogram conventions shared by every search.

Every histogram has the categorical axes ``dataset``, ``channel``, ``region`` and ``variation``
(growing string categories), then the physics axes, with ``Weight()`` storage. Processors fill
unnormalised weights (generator weight x corrections); the runner scales each dataset to the
luminosity afterwards (``scale_datasets``), so partial runs (``--max-chunks``) stay normalised.
"""

from __future__ import annotations

from collections.abc import Mapping

import hist
import numpy as np

CATEGORY_AXES = ("dataset", "channel", "region", "variation")


def category_axes() -> list[hist.axis.StrCategory]:
    return [hist.axis.StrCategory([], name=name, label=name, growth=True) for name in CATEGORY_AXES]


def new_hist(*axes: hist.axis.AxesMixin) -> hist.Hist:
    """A histogram with the shared categorical axes followed by ``axes``, Weight storage."""
    return hist.Hist(*category_axes(), *axes, storage=hist.storage.Weight())


def regular(bins: int, start: float, stop: float, name: str, label: str | None = None) -> hist.axis.Regular:
    return hist.axis.Regular(bins, start, stop, name=name, label=label or name)


def scale_datasets(histograms: Mapping[str, hist.Hist], scales: Mapping[str, float]) -> None:
    """Multiply each dataset's slice of every histogram by ``scales[dataset]`` (in place)."""
    for h in histograms.values():
        if not isinstance(h, hist.Hist) or "dataset" not in h.axes.name:
            continue
        axis = h.axes["dataset"]
        view = h.view(flow=True)
        position = h.axes.name.index("dataset")
        for i, name in enumerate(axis):
            factor = scales.get(name, 1.0)
            index = (slice(None),) * position + (i,)
            view.value[index] *= factor
            view.variance[index] *= factor * factor


def fill_variations(
    h: hist.Hist,
    dataset: str,
    channel: str,
    region: str,
    weights: Mapping[str, np.ndarray],
    **values: np.ndarray,
) -> None:
    """Fill one entry per systematic variation (``weights``: variation -> per-event weight)."""
    for variation, weight in weights.items():
        h.fill(dataset=dataset, channel=channel, region=region, variation=variation, weight=weight, **values)
