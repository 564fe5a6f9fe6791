"""Columnar helpers the search processors share: windows, candidate picking, prefilter scatter."""

from __future__ import annotations

from typing import Any

import awkward as ak
import numpy as np


def in_range(x: Any, lo_hi: list[float] | tuple[float, float]) -> Any:
    """lo < x < hi (open window, as the papers' cuts are written)."""
    return (x > lo_hi[0]) & (x < lo_hi[1])


def as_float(x: Any, fill: float = np.nan) -> np.ndarray:
    """A flat float numpy array from an awkward / numpy per-event column, None -> ``fill``."""
    return np.asarray(ak.to_numpy(ak.fill_none(x, fill)), dtype=float)


def as_bool(x: Any) -> np.ndarray:
    """A flat boolean numpy array, None -> False."""
    return np.asarray(ak.to_numpy(ak.fill_none(x, False)), dtype=bool)


def only(values: ak.Array, mask: ak.Array) -> ak.Array:
    """The first entry of ``values`` where ``mask`` is true (None where there is none)."""
    return ak.firsts(values[mask])


def best_index(score: ak.Array, valid: ak.Array) -> ak.Array:
    """Index of the highest-score valid candidate per event (None if there is none)."""
    masked = ak.where(valid, score, -np.inf)
    idx = ak.argmax(masked, axis=1, keepdims=True)
    ok = ak.fill_none(ak.firsts(valid[idx]), False)
    return ak.mask(ak.firsts(idx), ok)


def take(values: ak.Array, index: ak.Array) -> ak.Array:
    """values[event][index[event]] (None where the event's list is empty or the index is None)."""
    return ak.firsts(ak.pad_none(values, 1, axis=1)[ak.singletons(index)])


def expand(values: Any, keep: np.ndarray) -> Any:
    """Scatter results computed on prefiltered events back to every event of the chunk.

    Prefilters (e.g. "exactly two tracks") keep the expensive work to the events that can pass;
    the events they drop get False / NaN / 0. Dicts are expanded entry by entry; None stays None.
    """
    if isinstance(values, dict):
        return {k: expand(v, keep) for k, v in values.items()}
    if values is None:
        return None
    values = np.asarray(values)
    fill = False if values.dtype == bool else (np.nan if values.dtype.kind == "f" else 0)
    out = np.full((len(keep),) + values.shape[1:], fill, dtype=values.dtype)
    out[keep] = values
    return out
