"""The machinery every search processor shares, so that a search module is only its physics.

A search subclasses ``SearchProcessor`` and writes four steps:

* ``objects(events, calibration)`` -- channel-independent objects (frames, calibrated tracks and
  photons, thrust, hemispheres, composite candidates), computed once per chunk and calibration
  (what all calibrations share can come from ``chunk_objects(events)``, once per chunk);
* ``select(events, objects, channel)`` -- a ``Selection``: a coffea ``PackedSelection`` of named
  cuts in cutflow order, per-event values, region masks (full-length, one entry per event);
* ``add_weights(weights, selection, channel)`` -- correction weights with their up/down
  variations, on a coffea ``Weights`` that already holds the generator weight;
* ``fill(hists, selection, channel, variation, weight)`` for the histograms the stats model reads
  (once per systematic variation) and ``fill_nominal(...)`` for the rest (nominal only).

The base class loops over calibrations (momentum and photon-energy scale: the selection is re-run)
and weight variations, builds the cutflow from the ``PackedSelection`` and returns everything:
``{"histograms": {dataset: {name: Hist}}, "cutflow": {dataset: {channel: {"raw", "weighted"}}},
"processed": {dataset: {file: events}}, "columns": {kind: {dataset: {channel: {name: column}}}}}``
-- plain dicts, hists and ``column_accumulator``s that coffea merges across chunks. Nothing is
stored on ``self`` while processing.
"""

from __future__ import annotations

import gc
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar

import awkward as ak
import hist
import numpy as np
import pydantic
from coffea import processor
from coffea.analysis_tools import PackedSelection, WeightStatistics, Weights
from coffea.processor import column_accumulator

from belle_rare import corrections
from belle_rare.core.errors import UserError
from belle_rare.core.histograms import NOMINAL
from belle_rare.corrections.variations import SOURCES, Syst
from belle_rare.processors import pid_weighting
from belle_rare.simulation.detector.trigger import branch_name as trigger_branch

# sources that shift reconstructed quantities (the selection is re-run), not weights
CALIBRATION_SOURCES = ("momentumScale", "photonEnergy")
WEIGHT_SOURCES = tuple(s for s in SOURCES if s not in CALIBRATION_SOURCES)
ALL_EVENTS = "all events"
#: the first cut of every search whose config names trigger lines: the OR of those lines
TRIGGER_CUT = "trigger"
#: ``Selection.values`` key of the per-event PID weight a search sets in PID-weighted mode
PID_WEIGHT_VALUE = "pid_weight"
#: ``Selection.values`` key of a per-event probability the simulation carries as a weight rather than a
#: thrown die (the B-tag candidate's ``Btag_weight``): applied to every event, data included (pseudo-data
#: carries it too), and part of the largest event weight (the MC statistical bound)
CANDIDATE_WEIGHT_VALUE = "candidate_weight"


@dataclass(frozen=True)
class Calibration:
    """One calibration of the reconstructed objects: momentum and photon-energy scale settings."""

    momentum: Syst = "nominal"
    photon_energy: Syst = "nominal"
    momentum_scale: float = 1.0
    photon_energy_scale: float = 1.0

    @property
    def is_nominal(self) -> bool:
        return self.momentum == "nominal" and self.photon_energy == "nominal"

    def variations(self, is_data: bool) -> list[str]:
        """The variations filled with this calibration: nominal and every weight variation for the
        nominal calibration (simulation), the calibration's own name otherwise."""
        if not self.is_nominal:
            source, syst = ("momentumScale", self.momentum) if self.momentum != "nominal" else ("photonEnergy", self.photon_energy)
            return [f"{source}{syst.capitalize()}"]
        if is_data:
            return [NOMINAL]
        return [NOMINAL] + [f"{s}{d}" for s in WEIGHT_SOURCES for d in ("Up", "Down")]


def calibrations(experiment: str, nominal_only: bool) -> list[Calibration]:
    """Nominal first, then momentum scale up/down and photon-energy scale up/down (simulation)."""
    cset = corrections.load(experiment)
    settings = [("nominal", "nominal")]
    if not nominal_only:
        settings += [("up", "nominal"), ("down", "nominal"), ("nominal", "up"), ("nominal", "down")]
    return [Calibration(m, g, corrections.momentum_scale(cset, m), corrections.photon_energy_scale(cset, g)) for m, g in settings]


def vary(correction: Callable[[Syst], Any], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(nominal, up, down) per-event arrays of a correction evaluated at the three systs."""
    return tuple(np.broadcast_to(np.asarray(correction(s), dtype=float), (size,)).copy() for s in ("nominal", "up", "down"))


def add_varied(weights: Weights, name: str, correction: Callable[[Syst], Any], size: int) -> None:
    """``weights.add(name, nominal, up, down)`` of ``correction`` at the three systs; the nominal alone where
    the weights serve a pass that fills no weight variation (``FlatWeights.nominal_only``: the shifted
    calibrations), so up and down are not evaluated there."""
    if getattr(weights, "nominal_only", False):
        weights.add(name, np.broadcast_to(np.asarray(correction("nominal"), dtype=float), (size,)).copy())
    else:
        weights.add(name, *vary(correction, size))


@dataclass
class Selection:
    """What a search's ``select`` returns for one channel (every array has one entry per event).

    ``cuts``: named boolean cuts in cutflow order. ``cutflow``: optional explicit steps
    ``(label, (cut names...))`` when the cutflow is not the running AND of ``cuts`` in order.
    ``values``: per-event quantities for weights and fills; ``regions``: named masks.
    """

    cuts: PackedSelection
    values: dict[str, np.ndarray] = field(default_factory=dict)
    regions: dict[str, np.ndarray] = field(default_factory=dict)
    cutflow: list[tuple[str, tuple[str, ...]]] | None = None

    def steps(self) -> list[tuple[str, tuple[str, ...]]]:
        if self.cutflow is not None:
            return self.cutflow
        names = list(self.cuts.names)
        return [(name, tuple(names[: i + 1])) for i, name in enumerate(names)]

    def passing(self, *names: str) -> np.ndarray:
        """Events passing every cut named (all of them if none is named), and the trigger if there is one."""
        names = names or tuple(self.cuts.names)
        if TRIGGER_CUT in self.cuts.names and TRIGGER_CUT not in names:
            names = (TRIGGER_CUT, *names)
        return self.cuts.all(*names)


def with_trigger(selection: Selection, fired: np.ndarray) -> Selection:
    """``selection`` with the trigger as its first cut: in the cutflow, in every region and in ``passing``."""
    old = selection.cuts
    if isinstance(old, FlatPackedSelection) and isinstance(old._data, np.ndarray) and len(old.names) < 64:
        # the packed words shifted by one, the trigger in bit 0: what re-adding every cut gives
        cuts = FlatPackedSelection(dtype="uint64")
        cuts._names = [TRIGGER_CUT, *old.names]
        cuts._data = (old._data.astype(np.uint64) << np.uint64(1)) | np.asarray(fired, dtype=bool).astype(np.uint64)
    else:
        cuts = packed({TRIGGER_CUT: fired, **{name: old.all(name) for name in old.names}})
    steps = None
    if selection.cutflow is not None:
        steps = [(TRIGGER_CUT, (TRIGGER_CUT,))] + [(label, (TRIGGER_CUT, *names)) for label, names in selection.cutflow]
    regions = {name: np.asarray(mask, dtype=bool) & fired for name, mask in selection.regions.items()}
    return Selection(cuts, selection.values, regions, steps)


def trigger_lines_type() -> Any:
    """Type of a search config's ``trigger``: the L1 lines the paper used (their OR is required), e.g.
    ``[hie, c4, ff]``; stored in the ntuples as ``L1PSNM__bo<line>__bc`` (simulation/detector/trigger.py)."""

    def check(value: list[str]) -> list[str]:
        bad = [line for line in value if not line.isidentifier()]
        if bad:
            raise ValueError(f"trigger line names must be identifiers, got {bad}")
        return value

    return Annotated[list[str], pydantic.Field(min_length=1), pydantic.AfterValidator(check)]


TriggerLines = trigger_lines_type()


class FlatPackedSelection(PackedSelection):
    """coffea's ``PackedSelection`` whose ``add`` takes a flat numpy boolean mask directly.

    coffea checks every added mask with two ``ak.type`` calls (~0.25 ms per cut); the searches add
    30-50 cuts per channel and calibration, and repack them with the trigger: after the selections
    went to numpy this was the largest fixed cost per chunk (taulgamma: 0.47 of 1.55 CPU s on three
    1,000-event chunks). Other inputs (awkward, option type, dask) go through coffea's ``add``;
    ``tests/test_base_processor.py`` checks both give the same packed words."""

    def add(self, name: str, selection: Any, fill_value: bool = False) -> None:
        flat_numpy = isinstance(selection, np.ndarray) and selection.dtype == bool and selection.ndim == 1
        if not flat_numpy or (self._names and not isinstance(self._data, np.ndarray)):  # dask: coffea's path
            super().add(name, selection, fill_value)
            return
        if name in self._names:
            raise ValueError(f"Selection '{name}' already exists")
        if not self._names:
            self._data = np.zeros(len(selection), dtype=self._dtype)
        elif len(self._names) == self.maxitems:
            raise RuntimeError(f"Exhausted all slots in PackedSelection: {self}, consider a larger dtype or fewer selections")
        elif self._data.shape != selection.shape:
            raise ValueError(f"New selection '{name}' has a different shape than existing selections "
                             f"({selection.shape} vs. {self._data.shape})")
        # the bit as a full word per event (0 or 1 << k): 5 x cheaper than bitwise_or(..., where=selection)
        np.bitwise_or(self._data, selection.astype(self._dtype) << self._dtype.type(len(self._names)), out=self._data)
        self._names.append(name)


def _flat_numpy(array: Any) -> bool:
    return type(array) is np.ndarray and array.ndim == 1


class FlatWeights(Weights):
    """coffea's ``Weights`` whose ``add`` takes flat numpy arrays directly.

    coffea checks the nominal, up and down arrays of every added weight with ``ak.type`` (like
    ``PackedSelection.add``, ~0.25 ms per array): 0.5 of 2.9 CPU s of taulgamma's ``process`` with
    every variation (7 weights per channel and calibration). For flat numpy arrays this does coffea's
    eager arithmetic itself (the same operations in the same order: the same weights bit for bit,
    ``tests/test_base_processor.py``); anything else goes through coffea's ``add``."""

    #: set for a pass that fills the nominal weight only (a shifted calibration): ``add_varied`` then adds no variations
    nominal_only: bool = False

    def add(self, name: str, weight: Any, weightUp: Any = None, weightDown: Any = None, shift: bool = False) -> None:
        flat = (_flat_numpy(weight) and isinstance(self._weight, np.ndarray)
                and all(w is None or _flat_numpy(w) for w in (weightUp, weightDown)))
        if not flat:
            super().add(name, weight, weightUp, weightDown, shift)
            return
        if name in self._names:
            raise ValueError(f"Weight '{name}' already exists")
        if name.endswith("Up") or name.endswith("Down"):
            raise ValueError("Avoid using 'Up' and 'Down' in weight names, instead pass appropriate shifts to add() call")
        self._weight = self._weight * weight
        if self._storeIndividual:
            self._weights[name] = weight
        nonzero = weight != 0.0
        for suffix, varied in (("Up", weightUp), ("Down", weightDown)):
            if varied is None:
                continue
            if shift:
                varied = varied + weight if suffix == "Up" else weight - varied
            varied[nonzero] /= weight[nonzero]
            self._modifiers[name + suffix] = varied
        empty = weight.size == 0
        self._weightStats[name] = WeightStatistics(
            weight.sum(), (weight**2).sum(), np.inf if empty else weight.min(), -np.inf if empty else weight.max(), weight.size)
        self._names.append(name)


def packed(cuts: Mapping[str, Any]) -> PackedSelection:
    """A PackedSelection of ``cuts`` (name -> boolean array; None entries count as failing), in order."""
    selection = FlatPackedSelection(dtype="uint64")
    for name, mask in cuts.items():
        selection.add(name, np.asarray(ak.to_numpy(ak.fill_none(mask, False)) if isinstance(mask, ak.Array) else mask, dtype=bool))
    return selection


def signal_datasets_of(channels: tuple[str, ...]) -> Any:
    """Type of a search config's ``signal_datasets``: exactly one signal dataset per channel."""

    def check(value: dict[str, str]) -> dict[str, str]:
        if set(value) != set(channels):
            raise ValueError(f"one signal dataset per channel ({', '.join(channels)}), got {', '.join(value) or 'none'}")
        return value

    return Annotated[dict[str, str], pydantic.AfterValidator(check)]


class SearchProcessor(processor.ProcessorABC):
    """Base of every search's coffea processor (see the module docstring for the four steps)."""

    #: search name, as in ``belle-rare run SEARCH``
    name: ClassVar[str] = ""
    #: experiments the search is defined for
    experiments: ClassVar[tuple[str, ...]] = ()
    #: channels; ``select``/``fill`` run once per channel
    channels: ClassVar[tuple[str, ...]] = ()
    #: branches every input file must have (checked by the runner before processing)
    branches: ClassVar[tuple[str, ...]] = ()
    #: pydantic model of the search YAML; it must have ``luminosity``: a key of ``luminosity_fb`` in
    #: ``configs/experiments/<experiment>.yaml`` or a number in /fb (what simulation is scaled to)
    config_model: ClassVar[type] = object
    #: PID weighting of background when the caller does not choose (``pid_weighting=None``): searches
    #: whose background estimate rests on PID-weighted simulation set it, so that a
    #: plain ``belle-rare run`` gives the estimate the model was trained and quoted with
    pid_weighting_default: ClassVar[bool] = False
    #: the weights of a calibration variation (momentum / photon-energy scale) are only read in the
    #: selection's regions; a search whose ``Selection.values`` all have one entry per event can have
    #: them computed on those events only (``add_weights`` gets the region events; every correction is
    #: per event, so each event's weight is the same): most of the per-chunk correction cost goes
    region_weights_only: ClassVar[bool] = False
    #: the search reads no branch but those ``required_branches`` names and the other fields of the
    #: collections they belong to (``Track_mcPDG`` when it reads ``Track_px``): a chunk's events are
    #: then built from those branches only (``read_filter``; the rest of the tree -- V0, Btag,
    #: MCParticle, ... -- cost ~20 ms of form building per chunk)
    reads_declared_branches_only: ClassVar[bool] = False

    def __init__(self, experiment: str, config: Any, *, model_dir: Path | None = None, training: bool = False,
                 pid_weighting: bool | None = None) -> None:
        if self.experiments and experiment not in self.experiments:
            raise ValueError(f"search '{self.name}' is defined for {', '.join(self.experiments)}, not '{experiment}'")
        self.experiment = experiment
        self.config = config
        self.model_dir = model_dir
        #: training mode: nominal pass only, ``features`` columns collected, no stored model needed
        self.training = training
        #: PID weighting of background datasets (processors/pid_weighting.py): the search drops its PID
        #: cuts and weights each candidate by its pass probability; always on for training; None: the
        #: search's ``pid_weighting_default``
        self.pid_weighting = training or (self.pid_weighting_default if pid_weighting is None else pid_weighting)
        self.setup()

    # ------------------------------------------------------------------ what a search writes
    def setup(self) -> None:
        """Load what processing needs once (models, lookup tables). Default: nothing."""

    def book(self) -> dict[str, hist.Hist]:
        """Fresh, empty histograms for one chunk (``belle_rare.core.histograms.new_hist``)."""
        raise NotImplementedError

    def objects(self, events: ak.Array, calibration: Calibration) -> Any:
        """Channel-independent objects under one calibration. Default: none."""
        return None

    def chunk_objects(self, events: ak.Array) -> Any:
        """What every calibration of a chunk shares (flattened inputs, calibration-independent
        candidates, a per-chunk cache), computed once per chunk and passed to ``objects`` as a third
        argument. Default: None, and ``objects`` is called with two (as by the tests)."""
        return None

    def select(self, events: ak.Array, objects: Any, channel: str) -> Selection:
        raise NotImplementedError

    def add_weights(self, weights: Weights, selection: Selection, channel: str) -> None:
        """Add correction weights (``weights.add(source, nominal, up, down)``, sources as in
        ``corrections.SOURCES``). Not called for data. Default: none."""

    def add_common_weights(self, weights: Weights, n_events: int, n_tracks: int, trigger: str | None = None) -> None:
        """The corrections every search applies, each with up / down: tracking for ``n_tracks``
        tracks, the trigger efficiency of payload key ``trigger`` (default: the search's name) and
        the luminosity of the search's data set."""
        cset, key = self.corrections, trigger or self.name
        add_varied(weights, "tracking", lambda s: corrections.tracking_weight(cset, n_tracks, s), n_events)
        add_varied(weights, "trigger", lambda s: corrections.trigger_weight(cset, key, s), n_events)
        add_varied(weights, "luminosity", lambda s: corrections.luminosity_weight(cset, self.config.luminosity, s), n_events)

    def add_lepton_id_weights(self, weights: Weights, species: str | np.ndarray, p: np.ndarray, cos_theta: np.ndarray,
                              is_lepton: np.ndarray, tracks_per_event: int = 1) -> None:
        """``leptonID`` (data / MC efficiency ratio) on the tracks that are their ``species`` and
        ``fakeRate`` (pion fake-rate ratio) on the others, multiplied over each event's
        ``tracks_per_event`` candidate tracks (flat arrays, event after event). ``species`` is one
        lepton ("e", "mu") for every track, or one per track ("" for a track identified as neither:
        no correction). A NaN momentum or angle is no track (an event without a candidate): weight 1,
        not a correction read at made-up kinematics."""
        cset = self.corrections
        n = len(p) // tracks_per_event
        p, cos_theta, is_lepton = np.asarray(p, float), np.asarray(cos_theta, float), np.asarray(is_lepton, dtype=bool)
        track = np.isfinite(p) & np.isfinite(cos_theta)
        per_track = np.broadcast_to(np.asarray(species, dtype=object), p.shape)
        # correctionlib is per element: evaluated on the tracks each correction applies to only
        by_species = {s: track & (per_track == s) for s in ("e", "mu")}

        def per_event(correction: Callable[..., Any], lepton: bool) -> Callable[[Syst], np.ndarray]:
            applies = {name: mask & (is_lepton == lepton) for name, mask in by_species.items()}

            def weight(s: Syst) -> np.ndarray:
                w = np.ones(len(p))
                for name, mask in applies.items():
                    if mask.any():
                        w[mask] = np.asarray(correction(cset, name, p[mask], cos_theta[mask], s), float)
                return np.prod(w.reshape(n, tracks_per_event), axis=1)
            return weight

        add_varied(weights, "leptonID", per_event(corrections.lepton_id_weight, True), n)
        add_varied(weights, "fakeRate", per_event(corrections.fake_rate_weight, False), n)

    def fill(self, hists: dict[str, hist.Hist], selection: Selection, channel: str, variation: str, weight: np.ndarray) -> None:
        """Fill the histograms with a ``variation`` axis (called once per variation)."""

    def fill_variations(self, hists: dict[str, hist.Hist], selection: Selection, channel: str,
                        weights: Mapping[str, np.ndarray]) -> None:
        """``fill`` for every variation of one calibration (``weights``: variation -> event weight, in
        order). Default: ``fill`` once per variation; a search may fill them in one call per
        histogram (``fill_counts_of_variations``)."""
        for variation, weight in weights.items():
            self.fill(hists, selection, channel, variation, weight)

    def fill_nominal(self, hists: dict[str, hist.Hist], selection: Selection, channel: str, weight: np.ndarray) -> None:
        """Fill the nominal-only histograms (called once, nominal calibration and weights)."""

    def columns(self, events: ak.Array, selection: Selection, channel: str, weight: np.ndarray, dataset: str) -> dict[str, dict[str, np.ndarray]]:
        """Unbinned columns to return (kind -> name -> per-event array), nominal pass only. Default: none."""
        return {}

    # ------------------------------------------------------------------ machinery
    @property
    def corrections(self) -> Any:
        return corrections.load(self.experiment)

    @property
    def trigger_lines(self) -> tuple[str, ...]:
        """The trigger lines the search config names (none: no trigger cut)."""
        return tuple(getattr(self.config, "trigger", None) or ())

    def pid_requirements(self) -> list[tuple[str, float]]:
        """The (PID variable, cut) pairs the search requires, from its YAML: their pass-probability
        branches are read in PID-weighted mode. Default: none."""
        return []

    def required_branches(self) -> list[str]:
        extra = list(pid_weighting.branches(self.pid_requirements())) if self.pid_weighting else []
        return list(self.branches) + [trigger_branch(line) for line in self.trigger_lines] + extra

    def read_filter(self) -> str | None:
        """uproot ``filter_name`` (a ``/regex/``) of the branches a chunk's events are built from:
        the required branches, every branch of their collections (``X_*`` and the counter ``nX``)
        and ``__weight__``; None (every branch) unless ``reads_declared_branches_only``."""
        if not self.reads_declared_branches_only:
            return None
        names = {*self.required_branches(), "__weight__"}
        collections = {name.split("_", 1)[0] for name in names if not name.startswith("_") and "_" in name}
        alternatives = sorted(re.escape(n) for n in names) + [f"n{re.escape(c)}|{re.escape(c)}_.*" for c in sorted(collections)]
        return f"/^({'|'.join(alternatives)})$/"

    def trigger_fired(self, events: ak.Array) -> np.ndarray | None:
        """OR of the configured trigger bits per event (None without trigger lines)."""
        if not self.trigger_lines:
            return None
        fired = np.zeros(len(events), dtype=bool)
        for line in self.trigger_lines:
            branch = trigger_branch(line)
            if branch not in events.fields:
                raise UserError(f"search '{self.name}': input has no trigger branch '{branch}' (line '{line}' in its config)")
            fired |= np.asarray(ak.to_numpy(events[branch]), dtype=float) > 0.5
        return fired

    def dataset_kind(self, events: ak.Array) -> str:
        """"data", "signal" or "background": the fileset metadata's ``kind`` when it names one; without it,
        "data" for ``is_data``, else "signal" for one of the config's ``signal_datasets``, else background."""
        meta = events.metadata
        if meta.get("kind") is not None:
            return str(meta["kind"])
        if meta.get("is_data", False):
            return "data"
        signals = set((getattr(self.config, "signal_datasets", None) or {}).values())
        return "signal" if meta.get("dataset") in signals else "background"

    def pid_weighted(self, events: ak.Array) -> bool:
        """Whether this chunk's PID requirements are replaced by weights: a background dataset
        (``dataset_kind``) with PID weighting on. Signal and data keep the thrown PID."""
        meta = events.metadata
        return self.pid_weighting and not meta.get("is_data", False) and self.dataset_kind(events) == "background"

    def event_weights(self, events: ak.Array | None, selection: Selection, channel: str, is_data: bool,
                      generator_weight: np.ndarray | None = None, nominal_only: bool = False) -> Weights:
        """The event weights (generator weight, PID / candidate weights, the search's corrections with
        their variations, or without them if ``nominal_only``); ``generator_weight``: the events'
        ``__weight__`` if already read (then ``events`` is not used)."""
        if generator_weight is None:
            generator_weight = np.asarray(ak.to_numpy(events["__weight__"]), dtype=float)
        weights = FlatWeights(len(generator_weight), storeIndividual=False)
        weights.nominal_only = nominal_only
        weights.add("generator", generator_weight)
        if PID_WEIGHT_VALUE in selection.values:
            # PID-weighted candidates (processors/pid_weighting.py): P(the candidate passes the PID cuts)
            weights.add("pidWeight", np.nan_to_num(np.asarray(selection.values[PID_WEIGHT_VALUE], dtype=float), nan=0.0))
        if CANDIDATE_WEIGHT_VALUE in selection.values:
            weights.add("candidateWeight", np.nan_to_num(np.asarray(selection.values[CANDIDATE_WEIGHT_VALUE], dtype=float), nan=0.0))
        if not is_data:
            self.add_weights(weights, selection, channel)
        return weights

    def _passes(self, events: ak.Array, is_data: bool) -> Iterator[tuple[Calibration, str, Selection, Weights]]:
        fired = self.trigger_fired(events)
        generator_weight = np.asarray(ak.to_numpy(events["__weight__"]), dtype=float)
        shared = self.chunk_objects(events)
        for calibration in calibrations(self.experiment, nominal_only=is_data or self.training):
            objects = self.objects(events, calibration) if shared is None else self.objects(events, calibration, shared)
            for channel in self.channels:
                selection = self.select(events, objects, channel)
                if fired is not None:
                    selection = with_trigger(selection, fired)
                if self.region_weights_only and not calibration.is_nominal:
                    yield calibration, channel, selection, self._region_weights(generator_weight, selection, channel, is_data)
                else:
                    # a shifted calibration fills its nominal weight only (``process``)
                    yield calibration, channel, selection, self.event_weights(events, selection, channel, is_data, generator_weight,
                                                                              nominal_only=not calibration.is_nominal)

    def _region_weights(self, generator_weight: np.ndarray, selection: Selection, channel: str, is_data: bool) -> "RegionWeights":
        """``event_weights`` of the events in any region only (``region_weights_only``), 0 elsewhere."""
        used = np.zeros(len(generator_weight), dtype=bool)
        for mask in selection.regions.values():
            used |= np.asarray(mask, dtype=bool)
        inside = Selection(selection.cuts, {k: np.asarray(v)[used] for k, v in selection.values.items()})
        nominal = np.zeros(len(used))
        nominal[used] = self.event_weights(None, inside, channel, is_data, generator_weight[used], nominal_only=True).weight()
        return RegionWeights(nominal)

    def process(self, events: ak.Array) -> dict[str, Any]:
        cpu_start = time.process_time()
        freeze_long_lived_objects()
        dataset = events.metadata["dataset"]
        is_data = bool(events.metadata.get("is_data", False))
        hists = self.book()
        cutflows: dict[str, dict[str, dict[str, float]]] = {}
        columns: dict[str, dict[str, dict[str, Any]]] = {}
        generator_weight = np.asarray(ak.to_numpy(events["__weight__"]), dtype=float)
        largest = 0.0
        for calibration, channel, selection, weights in self._passes(events, is_data):
            weighted = weights.variations if calibration.is_nominal else set()
            per_variation = {}
            for variation in calibration.variations(is_data):
                if calibration.is_nominal and variation != NOMINAL:
                    if variation not in weighted:
                        continue  # a source this search does not weight: the stats layer reads nominal
                    per_variation[variation] = weights.weight(variation)
                else:
                    per_variation[variation] = weights.weight()
            self.fill_variations(hists, selection, channel, per_variation)
            if not calibration.is_nominal:
                continue
            nominal = weights.weight()
            self.fill_nominal(hists, selection, channel, nominal)
            cutflows[channel] = cutflow(selection, nominal, generator_weight)
            largest = max(largest, largest_event_weight(selection, generator_weight))
            for kind, cols in self.columns(events, selection, channel, nominal, dataset).items():
                columns.setdefault(kind, {}).setdefault(dataset, {})[channel] = {
                    name: column_accumulator(np.asarray(col)) for name, col in cols.items()
                }
        return {
            "histograms": {dataset: hists},
            "cutflow": {dataset: cutflows},
            "processed": {dataset: {events.metadata["filename"]: len(events)}},
            "columns": columns,
            # CPU time of this chunk on its worker (the run's core-seconds, whatever the executor)
            "cpu_seconds": {dataset: time.process_time() - cpu_start},
            "largest_event_weight": {dataset: Maximum(largest)},
        }

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator

    def __reduce__(self) -> tuple[Callable[[str, bytes], "SearchProcessor"], tuple[str, bytes]]:
        """Pickled as the bytes of its class and attributes with their digest, so that a process
        unpickles a processor once (``restored_processor``) instead of once per chunk: coffea ships
        the processor with every chunk (lz4 cloudpickle, unpickled in its ``_work_function``, by the
        iterative executor too), which with BDT models cost 22-90 CPU ms per chunk (tau3mu, taulphi,
        zprime, kstartautau on Belle II)."""
        import cloudpickle

        state = cloudpickle.dumps((type(self), self.__dict__))
        return restored_processor, (hashlib.blake2b(state, digest_size=16).hexdigest(), state)


def fill_counts_of_variations(h: hist.Hist, channel: str, weights: Mapping[str, np.ndarray],
                              regions: Mapping[str, np.ndarray]) -> None:
    """``core.histograms.fill_counts`` of every variation of ``weights`` (variation -> event weight),
    one fill per region instead of one per region and variation (a search fills ~17 variations of the
    nominal calibration): the same bins, each summed over the same entries in the same order."""
    names = list(weights)
    for region, mask in regions.items():
        n = int(np.count_nonzero(mask))
        h.fill(channel=channel, region=region, variation=np.repeat(names, n), count=np.zeros(n * len(names), dtype=int),
               weight=np.concatenate([w[mask] for w in weights.values()]))


#: the processor this process unpickled last, by the digest of its pickled state (``SearchProcessor.__reduce__``)
_RESTORED: dict[str, SearchProcessor] = {}


def restored_processor(digest: str, state: bytes) -> SearchProcessor:
    """The processor pickled as ``state``, unpickled at its first chunk in this process and reused by
    the next ones (the same state: the same digest). Processors keep no per-chunk state (coffea's
    contract), so one instance serves every chunk, as with the iterative executor before pickling."""
    proc = _RESTORED.get(digest)
    if proc is None:
        import cloudpickle

        cls, attributes = cloudpickle.loads(state)
        proc = cls.__new__(cls)
        proc.__dict__.update(attributes)
        _RESTORED.clear()  # one run's processor at a time
        _RESTORED[digest] = proc
    return proc


_FROZEN_IN: int | None = None  # the process whose long-lived objects were frozen


def freeze_long_lived_objects() -> None:
    """``gc.freeze()`` once per process, at its first chunk: what exists then (modules, models,
    the processor) lives as long as the process, and each full collection no longer scans it.

    Reading a chunk (uproot's tree metadata, awkward forms) allocates enough container objects to
    trigger several full collections per chunk, each walking every object of numpy, awkward,
    coffea, numba, xgboost...: 10-15 % of a taulgamma run's CPU before (1.58 -> 1.43 s on 60,000
    events, 1.34 with no collector). Reference counting still frees frozen objects; only reference
    cycles among them (at most those of the first chunk) stay until the process ends."""
    global _FROZEN_IN
    if _FROZEN_IN != os.getpid():
        _FROZEN_IN = os.getpid()
        gc.freeze()


@dataclass(frozen=True)
class RegionWeights:
    """The nominal weight of a calibration variation where a region can read it (0 elsewhere): all
    ``process`` asks of a calibration variation's ``Weights``."""

    nominal: np.ndarray

    def weight(self, modifier: str | None = None) -> np.ndarray:
        if modifier is not None:
            raise ValueError("a calibration variation has only its nominal weight")
        return self.nominal


@dataclass(frozen=True)
class Maximum:
    """An accumulator that keeps the largest value (coffea adds accumulators with ``+``)."""

    value: float

    def __add__(self, other: "Maximum") -> "Maximum":
        return Maximum(max(self.value, other.value))


def largest_event_weight(selection: Selection, generator_weight: np.ndarray) -> float:
    """The largest weight (before the luminosity scale and the O(1) corrections) an event of this
    chunk can carry in any region: the generator weight, times the candidate weight where the search
    has one (``CANDIDATE_WEIGHT_VALUE``), times the PID weight where the search
    replaced its PID cuts by pass probabilities -- then only over the events that formed a candidate
    (a PID weight), since only those can reach a region. It scales the MC statistical bound
    (stats/mc_bound.py) of a region no event of the dataset reached."""
    candidate = selection.values.get(CANDIDATE_WEIGHT_VALUE)
    if candidate is not None:
        generator_weight = generator_weight * np.nan_to_num(np.asarray(candidate, dtype=float), nan=0.0)
    pid = selection.values.get(PID_WEIGHT_VALUE)
    if pid is None:
        return float(np.max(generator_weight, initial=0.0))
    pid = np.nan_to_num(np.asarray(pid, dtype=float), nan=0.0)
    return float(np.max(generator_weight * pid, initial=0.0))


def cutflow(selection: Selection, weight: np.ndarray, generator_weight: np.ndarray) -> dict[str, dict[str, float]]:
    """Raw and weighted counts after each step; "all events" carries the generator weight only
    (the normalisation of an efficiency), the steps the full nominal weight."""
    raw = {ALL_EVENTS: float(len(generator_weight))}
    weighted = {ALL_EVENTS: float(np.sum(generator_weight))}
    for label, names in selection.steps():
        mask = selection.passing(*names)
        raw[label] = float(mask.sum())
        weighted[label] = float(np.sum(np.where(mask, weight, 0.0)))
    return {"raw": raw, "weighted": weighted}

