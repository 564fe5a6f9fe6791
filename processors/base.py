"""What every search processor shares: dataset bookkeeping, cutflows and the output layout.

A search subclasses ``SearchProcessor`` and implements ``analyse(events, dataset)``, returning
its histograms; the base class adds the cutflow and the per-file event count the runner uses to
account for every input event. Physics lives in the search module; this file holds none.
"""

from __future__ import annotations

from abc import abstractmethod
from collections import defaultdict
from typing import Any

import awkward as ak
import numpy as np
from coffea import processor


class Cutflow:
    """Ordered event counts (raw and weighted) after each named selection step, per channel."""

    def __init__(self) -> None:
        self.raw: dict[str, float] = {}
        self.weighted: dict[str, float] = {}

    def add(self, step: str, mask: np.ndarray | ak.Array, weight: np.ndarray | None = None) -> None:
        mask = ak.to_numpy(mask).astype(bool)
        self.raw[step] = self.raw.get(step, 0.0) + float(mask.sum())
        w = mask if weight is None else np.where(mask, weight, 0.0)
        self.weighted[step] = self.weighted.get(step, 0.0) + float(np.sum(w))

    def as_dict(self) -> dict[str, dict[str, float]]:
        return {"raw": dict(self.raw), "weighted": dict(self.weighted)}


class SearchProcessor(processor.ProcessorABC):
    """Base of every search's coffea processor.

    Output of ``process``: ``{"histograms": {name: Hist}, "cutflow": {dataset: {channel: {"raw":
    {...}, "weighted": {...}}}}, "processed": {dataset: {filename: events}}}`` — plain dicts and
    hist objects, which coffea merges across chunks by addition.
    """

    #: search name, as in ``belle-rare run SEARCH``
    name: str = ""
    #: experiments the search is defined for
    experiments: tuple[str, ...] = ()
    #: branches every input file must have (checked by the runner before processing)
    branches: tuple[str, ...] = ()

    def __init__(self, experiment: str, config: Any, corrections: Any = None) -> None:
        if self.experiments and experiment not in self.experiments:
            raise ValueError(f"search '{self.name}' is defined for {', '.join(self.experiments)}, not '{experiment}'")
        self.experiment = experiment
        self.config = config
        self.corrections = corrections

    def required_branches(self) -> list[str]:
        return list(self.branches)

    @abstractmethod
    def analyse(self, events: ak.Array, dataset: str) -> tuple[dict[str, Any], dict[str, Cutflow]]:
        """Select and fill; return ``(histograms, {channel: Cutflow})``."""

    def process(self, events: ak.Array) -> dict[str, Any]:
        dataset = events.metadata["dataset"]
        histograms, cutflows = self.analyse(events, dataset)
        processed: dict[str, dict[str, int]] = defaultdict(dict)
        processed[dataset][events.metadata["filename"]] = len(events)
        return {
            "histograms": histograms,
            "cutflow": {dataset: {channel: cf.as_dict() for channel, cf in cutflows.items()}},
            "processed": dict(processed),
        }

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator
