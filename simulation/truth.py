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


def is_final(mc: ak.Array) -> ak.Array:
    """Mask of final-state particles."""
    return mc.status > 0
