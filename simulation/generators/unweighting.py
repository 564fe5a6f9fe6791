"""Unweighting of weighted proposals by hit-or-miss, vectorised over events."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np


def hit_or_miss(
    n: int,
    propose: Callable[[np.ndarray], tuple[np.ndarray, Sequence[np.ndarray]]],
    w_max: float,
    rng: np.random.Generator,
    shapes: Sequence[tuple[int, ...]],
    tries_per_round: int,
) -> list[np.ndarray]:
    """One accepted proposal for each of ``n`` events.

    ``propose(idx)`` draws one candidate per entry of ``idx`` (event indices) and returns its
    weights and arrays (one row per candidate; trailing shapes ``shapes``). Each round tries
    ``tries_per_round`` candidates for every event still pending and keeps the first accepted one
    (weight > uniform x ``w_max``).
    """
    out = [np.zeros((n, *shape)) for shape in shapes]
    pending = np.arange(n)
    while pending.size:
        idx = np.repeat(pending, tries_per_round)
        weight, arrays = propose(idx)
        keep = rng.uniform(size=idx.size) * w_max < weight
        events, first = np.unique(idx[keep], return_index=True)
        rows = np.flatnonzero(keep)[first]
        for target, array in zip(out, arrays):
            target[events] = array[rows]
        pending = np.setdiff1d(pending, events, assume_unique=True)
    return out
