"""Per-event reductions on flattened jagged arrays (``offsets`` + flat ``content``), as numba loops.

Why numba and not awkward: every awkward call pays ~0.1-1 ms of Python dispatch (broadcasting,
layout checks) whatever the array size, and a selection written with them makes thousands of calls
per chunk (taulgamma: ~4,700 per chunk, a fixed ~2.4 CPU s, README "Scale"). A processor flattens
each collection once (``flatten``), then works on numpy arrays; the per-list reductions numpy has
no direct ufunc for (first match, sum / count over lists that may be empty) are these loops.

Conventions: ``offsets`` is int64 of length n_lists + 1 (``offsets[i]:offsets[i+1]`` is list i);
sums accumulate in the content's dtype, in list order, as ``ak.sum`` does (float32 stays float32).
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import numba
import numpy as np


def offsets_of(counts: np.ndarray) -> np.ndarray:
    """int64 offsets (length n + 1) of lists of ``counts`` entries."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


def list_index(offsets: np.ndarray) -> np.ndarray:
    """The list (event) each content entry belongs to."""
    return np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))


def flatten(collection: ak.Array, fields: list[str] | tuple[str, ...]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(offsets, {field: flat numpy content}) of a jagged record collection such as ``events.Track``:
    one awkward call per field, after which everything is numpy."""
    offsets = offsets_of(np.asarray(ak.to_numpy(ak.num(collection, axis=1)), dtype=np.int64))
    return offsets, {f: np.asarray(ak.to_numpy(ak.flatten(collection[f], axis=1))) for f in fields}


@numba.njit(cache=True)
def first_index(offsets: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Index into the content of the first entry of each list where ``mask`` is true, -1 if none
    (``ak.firsts(x[mask])`` is ``x[first_index]`` where it is >= 0)."""
    n = len(offsets) - 1
    out = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        for j in range(offsets[i], offsets[i + 1]):
            if mask[j]:
                out[i] = j
                break
    return out


@numba.njit(cache=True)
def segment_count(offsets: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Number of true entries of ``mask`` in each list (``ak.sum(mask, axis=1)``)."""
    n = len(offsets) - 1
    out = np.zeros(n, dtype=np.int64)
    for i in range(n):
        for j in range(offsets[i], offsets[i + 1]):
            if mask[j]:
                out[i] += 1
    return out


@numba.njit(cache=True)
def _segment_sum(offsets: np.ndarray, values: np.ndarray, mask: np.ndarray, out: np.ndarray) -> None:
    for i in range(len(offsets) - 1):
        for j in range(offsets[i], offsets[i + 1]):
            if mask[j]:
                out[i] += values[j]


def segment_sum(offsets: np.ndarray, values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Sum of ``values`` over each list (0 for an empty list), only where ``mask`` (if given) is
    true: ``ak.sum(x[mask], axis=1)``, same dtype and summation order."""
    out = np.zeros(len(offsets) - 1, dtype=values.dtype)
    _segment_sum(offsets, values, np.ones(len(values), np.bool_) if mask is None else mask, out)
    return out


def filled_dtype(values: np.ndarray, fill: Any) -> np.dtype:
    """The dtype ``ak.fill_none`` gives: the fill is a full-width scalar (a float fill turns float32
    into float64), unlike numpy's weak Python scalars; the selections' float32 / float64 mix depends on it."""
    return np.result_type(values.dtype, np.asarray(fill).dtype)


def take(values: np.ndarray, index: np.ndarray, fill: Any) -> np.ndarray:
    """``values[index]`` where ``index >= 0``, ``fill`` elsewhere: ``ak.fill_none(ak.firsts(...), fill)``
    (its dtype too)."""
    dtype = filled_dtype(values, fill)
    if len(values) == 0:
        return np.full(len(index), fill, dtype=dtype)
    return np.where(index >= 0, values[np.maximum(index, 0)].astype(dtype, copy=False), dtype.type(fill))


def first_in_row(mask: np.ndarray) -> np.ndarray:
    """Column of the first true entry per row of a 2-d ``mask`` (fixed-size lists, e.g. exactly two
    tracks), -1 if none."""
    return np.where(mask.any(axis=1), np.argmax(mask, axis=1), -1) if mask.shape[1] else np.full(len(mask), -1)


def take_in_row(values: np.ndarray, column: np.ndarray, fill: Any) -> np.ndarray:
    """``values[i, column[i]]`` per row where ``column >= 0``, ``fill`` elsewhere (dtype as ``take``)."""
    dtype = filled_dtype(values, fill)
    if values.shape[1] == 0:
        return np.full(len(values), fill, dtype=dtype)
    picked = np.take_along_axis(values, np.maximum(column, 0)[:, None], axis=1)[:, 0]
    return np.where(column >= 0, picked.astype(dtype, copy=False), dtype.type(fill))


@numba.njit(cache=True)
def _count_triplets(offsets: np.ndarray, mask: np.ndarray, tri_offsets: np.ndarray) -> None:
    for i in range(len(offsets) - 1):
        m = 0
        for j in range(offsets[i], offsets[i + 1]):
            if mask[j]:
                m += 1
        tri_offsets[i + 1] = tri_offsets[i] + m * (m - 1) * (m - 2) // 6


@numba.njit(cache=True)
def _fill_triplets(offsets: np.ndarray, mask: np.ndarray, tri_offsets: np.ndarray, a: np.ndarray, b: np.ndarray,
                   c: np.ndarray) -> None:
    for i in range(len(offsets) - 1):
        k = tri_offsets[i]
        for ja in range(offsets[i], offsets[i + 1]):
            if not mask[ja]:
                continue
            for jb in range(ja + 1, offsets[i + 1]):
                if not mask[jb]:
                    continue
                for jc in range(jb + 1, offsets[i + 1]):
                    if mask[jc]:
                        a[k], b[k], c[k] = ja, jb, jc
                        k += 1


def triplets(offsets: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(triplet offsets, a, b, c): every three entries of a list where ``mask`` is true, as content
    indices, in the order of ``ak.combinations(local_index[mask], 3)`` (a < b < c, lexicographic)."""
    tri_offsets = np.zeros(len(offsets), dtype=np.int64)
    _count_triplets(offsets, mask, tri_offsets)
    a, b, c = (np.empty(tri_offsets[-1], dtype=np.int64) for _ in range(3))
    _fill_triplets(offsets, mask, tri_offsets, a, b, c)
    return tri_offsets, a, b, c


@numba.njit(cache=True)
def segment_argmax(offsets: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index within each list of its largest value, -1 for an empty list (``ak.argmax(x, axis=1)``:
    the first of equal maxima; a later value wins only if strictly greater, so NaN never wins
    unless it comes first)."""
    n = len(offsets) - 1
    out = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        for j in range(offsets[i], offsets[i + 1]):
            if out[i] < 0 or values[j] > values[offsets[i] + out[i]]:
                out[i] = j - offsets[i]
    return out


@numba.njit(cache=True)
def _segment_max(offsets: np.ndarray, values: np.ndarray, mask: np.ndarray, out: np.ndarray, found: np.ndarray) -> None:
    for i in range(len(offsets) - 1):
        for j in range(offsets[i], offsets[i + 1]):
            if mask[j]:
                if not found[i] or values[j] > out[i]:
                    out[i] = values[j]
                found[i] = True


def segment_max(offsets: np.ndarray, values: np.ndarray, mask: np.ndarray, fill: Any) -> np.ndarray:
    """Largest of ``values`` over each list where ``mask`` is true, ``fill`` for none:
    ``ak.fill_none(ak.max(x[mask], axis=1), fill)`` (its dtype too)."""
    out = np.zeros(len(offsets) - 1, dtype=values.dtype)
    found = np.zeros(len(offsets) - 1, dtype=np.bool_)
    _segment_max(offsets, values, mask, out, found)
    return np.where(found, out.astype(filled_dtype(values, fill), copy=False), filled_dtype(values, fill).type(fill))


@numba.njit(cache=True)
def _segment_prod(offsets: np.ndarray, values: np.ndarray, mask: np.ndarray, out: np.ndarray) -> None:
    for i in range(len(offsets) - 1):
        for j in range(offsets[i], offsets[i + 1]):
            if mask[j]:
                out[i] *= values[j]


def segment_prod(offsets: np.ndarray, values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Product of ``values`` over each list where ``mask`` is true (1 for none), in list order:
    ``ak.prod(ak.where(mask, x, 1), axis=1)`` (multiplying by 1 is exact)."""
    out = np.ones(len(offsets) - 1, dtype=values.dtype)
    _segment_prod(offsets, values, mask, out)
    return out


def concat_lists(offsets_a: np.ndarray, a: np.ndarray, offsets_b: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, content) of list i of ``a`` followed by list i of ``b``, per list
    (``ak.concatenate([x, y], axis=1)``; the content in their common dtype)."""
    counts_a, counts_b = np.diff(offsets_a), np.diff(offsets_b)
    offsets = offsets_of(counts_a + counts_b)
    out = np.empty(offsets[-1], dtype=np.result_type(a.dtype, b.dtype))
    list_a, list_b = list_index(offsets_a), list_index(offsets_b)
    out[offsets[:-1][list_a] + np.arange(len(a)) - offsets_a[list_a]] = a
    out[offsets[:-1][list_b] + counts_a[list_b] + np.arange(len(b)) - offsets_b[list_b]] = b
    return offsets, out


@numba.njit(cache=True)
def _count_pairs(offsets_a: np.ndarray, mask_a: np.ndarray, offsets_b: np.ndarray, mask_b: np.ndarray,
                 out_offsets: np.ndarray) -> None:
    for i in range(len(offsets_a) - 1):
        n_a = 0
        for j in range(offsets_a[i], offsets_a[i + 1]):
            n_a += mask_a[j]
        n_b = 0
        for j in range(offsets_b[i], offsets_b[i + 1]):
            n_b += mask_b[j]
        out_offsets[i + 1] = out_offsets[i] + n_a * n_b


@numba.njit(cache=True)
def _fill_pairs(offsets_a: np.ndarray, mask_a: np.ndarray, offsets_b: np.ndarray, mask_b: np.ndarray,
                out_offsets: np.ndarray, ia: np.ndarray, ib: np.ndarray) -> None:
    for i in range(len(offsets_a) - 1):
        k = out_offsets[i]
        for ja in range(offsets_a[i], offsets_a[i + 1]):
            if mask_a[ja]:
                for jb in range(offsets_b[i], offsets_b[i + 1]):
                    if mask_b[jb]:
                        ia[k], ib[k] = ja, jb
                        k += 1


def cartesian(offsets_a: np.ndarray, mask_a: np.ndarray, offsets_b: np.ndarray,
              mask_b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pair offsets, ia, ib): every (masked entry of list i of a, masked entry of list i of b), as
    content indices, in the order of ``ak.cartesian([a[mask_a], b[mask_b]], axis=1)`` (a outer)."""
    out_offsets = np.zeros(len(offsets_a), dtype=np.int64)
    _count_pairs(offsets_a, mask_a, offsets_b, mask_b, out_offsets)
    ia, ib = np.empty(out_offsets[-1], dtype=np.int64), np.empty(out_offsets[-1], dtype=np.int64)
    _fill_pairs(offsets_a, mask_a, offsets_b, mask_b, out_offsets, ia, ib)
    return out_offsets, ia, ib


@numba.njit(cache=True)
def _count_pairs_within(offsets: np.ndarray, mask: np.ndarray, pair_offsets: np.ndarray) -> None:
    for i in range(len(offsets) - 1):
        m = 0
        for j in range(offsets[i], offsets[i + 1]):
            m += mask[j]
        pair_offsets[i + 1] = pair_offsets[i] + m * (m - 1) // 2


@numba.njit(cache=True)
def _fill_pairs_within(offsets: np.ndarray, mask: np.ndarray, pair_offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    for i in range(len(offsets) - 1):
        k = pair_offsets[i]
        for ja in range(offsets[i], offsets[i + 1]):
            if mask[ja]:
                for jb in range(ja + 1, offsets[i + 1]):
                    if mask[jb]:
                        a[k], b[k] = ja, jb
                        k += 1


def pairs(offsets: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pair offsets, a, b): every two entries of a list where ``mask`` is true, as content indices,
    in the order of ``ak.combinations(local_index[mask], 2)`` (a < b)."""
    pair_offsets = np.zeros(len(offsets), dtype=np.int64)
    _count_pairs_within(offsets, mask, pair_offsets)
    a, b = np.empty(pair_offsets[-1], dtype=np.int64), np.empty(pair_offsets[-1], dtype=np.int64)
    _fill_pairs_within(offsets, mask, pair_offsets, a, b)
    return pair_offsets, a, b


@numba.njit(cache=True)
def segment_argmin(offsets: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index into the content of the smallest entry of each list (the first of equal ones), -1 for an
    empty list: ``ak.argmin(x, axis=1)`` as a content index (an all-inf list gives its first entry, as there)."""
    n = len(offsets) - 1
    out = np.full(n, -1, dtype=np.int64)
    for i in range(n):
        best = -1
        for j in range(offsets[i], offsets[i + 1]):
            if best < 0 or values[j] < values[best]:
                best = j
        out[i] = best
    return out
