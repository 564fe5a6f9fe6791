"""The generator-level event record shared by every generator and the detector response.

Every generator (Pythia 8 or a dedicated one) hands the detector response an awkward Array with
one entry per event, already in the **laboratory frame** (boosted from the CM frame with the
experiment's beams, vertices smeared by the beam spot):

``mc`` — ``var * {...}``, the full truth record, one entry per particle, in generator order:

=========== ======= =========================================================================
field       type    meaning
=========== ======= =========================================================================
pdg         int32   PDG code
status      int32   Pythia status code (> 0: final state); dedicated generators use 1 / -2
mother      int32   index of the first mother in the same list, -1 if none
px py pz E  float64 four-momentum, GeV, lab frame
mass        float64 generated mass, GeV
x y z t     float64 production vertex, cm (t in cm/c), lab frame
=========== ======= =========================================================================

Event-level fields:

=================== ======= ===============================================================
signal_index        int32   index in ``mc`` of the particle forced into the signal decay
                            (the tau, B or S), -1 for background samples
beam_E beam_px ...  float64 total e+e- four-momentum of this event in the lab, GeV
                            (``beam_E``, ``beam_px``, ``beam_py``, ``beam_pz``), with energy spread
weight              float64 generator weight (1 for unweighted generators)
=================== ======= ===============================================================

Final-state particles are those with ``status > 0``. Long-lived particles (K_S, Lambda, the
scalar S) are decayed by the generator, so their daughters carry displaced production vertices.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

MC_FIELDS = ("pdg", "status", "mother", "px", "py", "pz", "E", "mass", "x", "y", "z", "t")
MC_INT_FIELDS = ("pdg", "status", "mother")
BEAM_FIELDS = ("beam_E", "beam_px", "beam_py", "beam_pz")


def make_truth(
    mc: dict[str, ak.Array],
    beam: np.ndarray,
    signal_index: np.ndarray | None = None,
    weight: np.ndarray | None = None,
) -> ak.Array:
    """Assemble a truth Array from jagged ``mc`` columns and per-event beam four-momenta ``(n, 4)``."""
    n = len(beam)
    missing = [f for f in MC_FIELDS if f not in mc]
    if missing:
        raise ValueError(f"truth record lacks fields {missing}")
    columns = {
        f: ak.values_astype(mc[f], np.int32 if f in MC_INT_FIELDS else np.float64) for f in MC_FIELDS
    }
    record = {
        "mc": ak.zip(columns, depth_limit=None),
        "signal_index": np.full(n, -1, np.int32) if signal_index is None else np.asarray(signal_index, np.int32),
        "weight": np.ones(n) if weight is None else np.asarray(weight, np.float64),
    }
    for i, name in enumerate(BEAM_FIELDS):
        record[name] = np.asarray(beam[:, i], np.float64)
    return ak.zip(record, depth_limit=1)


def truth_from_flat(
    offsets: np.ndarray,
    mc: dict[str, np.ndarray],
    beam: np.ndarray,
    signal_index: np.ndarray | None = None,
    weight: np.ndarray | None = None,
) -> ak.Array:
    """``make_truth`` from flat per-particle columns and per-event ``offsets`` (``n + 1``, from 0).

    The same Array as ``make_truth`` (same type, same values), built as a layout directly instead of
    through ``ak.zip``'s broadcasting, for generators that already hold flat columns.
    """
    n = len(beam)
    missing = [f for f in MC_FIELDS if f not in mc]
    if missing:
        raise ValueError(f"truth record lacks fields {missing}")
    offsets = np.asarray(offsets, dtype=np.int64)
    if len(offsets) != n + 1 or offsets[0] != 0 or any(len(mc[f]) != offsets[-1] for f in MC_FIELDS):
        raise ValueError("truth columns must have offsets[-1] rows and offsets n + 1 entries from 0")
    particles = ak.contents.RecordArray(
        [
            ak.contents.NumpyArray(np.asarray(mc[f], dtype=np.int32 if f in MC_INT_FIELDS else np.float64))
            for f in MC_FIELDS
        ],
        list(MC_FIELDS),
        length=int(offsets[-1]),
    )
    event_level = {
        "signal_index": np.full(n, -1, np.int32) if signal_index is None else np.asarray(signal_index, np.int32),
        "weight": np.ones(n) if weight is None else np.asarray(weight, np.float64),
        **{name: np.asarray(beam[:, i], np.float64) for i, name in enumerate(BEAM_FIELDS)},
    }
    contents = [ak.contents.ListOffsetArray(ak.index.Index64(offsets), particles)]
    contents += [ak.contents.NumpyArray(np.ascontiguousarray(v)) for v in event_level.values()]
    return ak.Array(ak.contents.RecordArray(contents, ["mc", *event_level], length=n))


def flat_mc(truth: ak.Array) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Per-event offsets (``n + 1``, from 0) and the ``mc`` fields as flat numpy columns (no copies
    when the record is as ``make_truth`` builds it; a filtered or sliced record goes through awkward)."""
    layout = ak.to_layout(truth.mc)
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.RecordArray):
        layout = layout.to_ListOffsetArray64(True)
        offsets = np.asarray(layout.offsets.data, dtype=np.int64)
        record = layout.content[: int(offsets[-1])]
        if all(isinstance(record.content(f), ak.contents.NumpyArray) for f in MC_FIELDS):
            return offsets, {f: np.asarray(record.content(f).data) for f in MC_FIELDS}
    counts = ak.to_numpy(ak.num(truth.mc, axis=1)).astype(np.int64)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets, {f: ak.to_numpy(ak.flatten(truth.mc[f], axis=1)) for f in MC_FIELDS}


def is_final(mc: ak.Array) -> ak.Array:
    """Mask of final-state particles."""
    return mc.status > 0
