"""processors/jagged_kernels.py and the flat brems recovery / thrust: the numba / numpy versions give
the awkward expressions they replace, bit for bit and in the same dtype, on random jagged input with
empty lists and on an empty chunk."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from belle_rare.processors import jagged_kernels as jk
from belle_rare.processors.brems_recovery import BremsRecovery, recover_brems, recover_brems_flat
from belle_rare.processors.event_shape import hemisphere, hemisphere_flat, thrust_axis, thrust_axis_flat
from belle_rare.processors.kinematics import P4, Vec3


def _jagged(rng: np.random.Generator, n_lists: int, mean: float, dtype=np.float32) -> ak.Array:
    """Random lists (about a quarter empty) of float32 values."""
    counts = np.where(rng.random(n_lists) < 0.25, 0, rng.poisson(mean, n_lists))
    return ak.unflatten(rng.normal(size=int(counts.sum())).astype(dtype), counts)


def _flat(x: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    return jk.offsets_of(ak.to_numpy(ak.num(x))), ak.to_numpy(ak.flatten(x))


@pytest.mark.parametrize("n_lists", [0, 1, 500])
def test_list_reductions_match_awkward(n_lists):
    rng = np.random.default_rng(n_lists)
    x = _jagged(rng, n_lists, 3.0)
    mask = x > 0.2
    offsets, flat = _flat(x)
    flat_mask = ak.to_numpy(ak.flatten(mask))
    assert np.array_equal(jk.list_index(offsets), np.repeat(np.arange(n_lists), ak.to_numpy(ak.num(x))))

    first = jk.first_index(offsets, flat_mask)
    expected = ak.to_numpy(ak.fill_none(ak.firsts(x[mask]), np.nan))
    got = jk.take(flat, first, np.nan)
    assert got.dtype == expected.dtype == np.float64  # a float fill widens float32, as ak.fill_none
    assert np.array_equal(got, expected, equal_nan=True)
    assert np.array_equal(jk.take(flat_mask, first, False), ak.to_numpy(ak.fill_none(ak.firsts(mask[mask]), False)))

    assert np.array_equal(jk.segment_count(offsets, flat_mask), ak.to_numpy(ak.sum(mask, axis=1)))
    summed, expected_sum = jk.segment_sum(offsets, flat, flat_mask), ak.to_numpy(ak.sum(x[mask], axis=1))
    assert summed.dtype == expected_sum.dtype == np.float32 and np.array_equal(summed, expected_sum)
    assert np.array_equal(jk.segment_sum(offsets, flat), ak.to_numpy(ak.sum(x, axis=1)))


@pytest.mark.parametrize("n_rows", [0, 300])
def test_first_in_row_matches_awkward(n_rows):
    rng = np.random.default_rng(7)
    values = rng.normal(size=(n_rows, 2)).astype(np.float32)
    mask = rng.random((n_rows, 2)) < 0.4  # rows with none, one and two matches
    column = jk.first_in_row(mask)
    lists = ak.unflatten(values.ravel(), np.full(n_rows, 2))
    expected = ak.to_numpy(ak.fill_none(ak.firsts(lists[ak.unflatten(mask.ravel(), np.full(n_rows, 2))]), -1.5))
    got = jk.take_in_row(values, column, -1.5)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    assert np.array_equal(column >= 0, mask.any(axis=1))


def _random_event_lists(rng: np.random.Generator, n_events: int) -> tuple[ak.Array, ak.Array, P4, P4, ak.Array]:
    """Tracks (some electrons) and photons of random events, a third of the photons in a 0.08 rad
    cone around a track (so that cones overlap and compete), the rest isotropic."""
    n_t = rng.integers(0, 4, n_events)
    n_g = rng.integers(0, 6, n_events)
    t = rng.normal(size=(int(n_t.sum()), 3)) * 2
    g = rng.normal(size=(int(n_g.sum()), 3))
    g_event = np.repeat(np.arange(n_events), n_g)
    has_track = n_t[g_event] > 0
    near = has_track & (rng.random(len(g)) < 0.5)
    t_first = np.concatenate([[0], np.cumsum(n_t)])[:-1]
    pick = t_first[g_event] + rng.integers(0, 4, len(g)) % np.maximum(n_t[g_event], 1)
    g[near] = t[pick[near]] / np.linalg.norm(t[pick[near]], axis=1)[:, None] * 0.3 + rng.normal(size=(near.sum(), 3)) * 0.012
    g = g.astype(np.float32)
    t = t.astype(np.float32)
    e_t = np.sqrt((t.astype(np.float64) ** 2).sum(axis=1) + 0.000511**2).astype(np.float32)
    e_g = np.sqrt((g.astype(np.float64) ** 2).sum(axis=1)).astype(np.float32)
    tracks = P4(*(ak.unflatten(c, n_t) for c in (t[:, 0], t[:, 1], t[:, 2], e_t)))
    photons = P4(*(ak.unflatten(c, n_g) for c in (g[:, 0], g[:, 1], g[:, 2], e_g)))
    electron = ak.unflatten(rng.random(len(t)) < 0.6, n_t)
    return n_t, n_g, tracks, photons, electron


@pytest.mark.parametrize("method", ["belle", "belle2"])
@pytest.mark.parametrize("n_events", [0, 400])
def test_flat_brems_recovery_is_the_awkward_one(method, n_events):
    rng = np.random.default_rng(n_events + (method == "belle2"))
    n_t, n_g, tracks, photons, electron = _random_event_lists(rng, n_events)
    cfg = BremsRecovery(method=method, max_angle=0.05, photon_e_min=0.05)
    ref = recover_brems(tracks, electron, photons, cfg)
    out = recover_brems_flat(jk.offsets_of(np.asarray(n_t)), P4(*(ak.to_numpy(ak.flatten(c)) for c in tracks)),
                             ak.to_numpy(ak.flatten(electron)), jk.offsets_of(np.asarray(n_g)),
                             P4(*(ak.to_numpy(ak.flatten(c)) for c in photons)), cfg)
    for got, expected in zip(out.tracks, ref.tracks):
        expected = ak.to_numpy(ak.flatten(expected))
        assert got.dtype == expected.dtype and np.array_equal(got, expected)
    assert np.array_equal(out.n_photons, ak.to_numpy(ak.flatten(ref.n_photons)))
    assert np.array_equal(out.photon_free, ak.to_numpy(ak.flatten(ref.photon_free)))
    if n_events:
        assert out.n_photons.sum() > 20 and (~out.photon_free).sum() > 20  # the cones did take photons


def test_flat_thrust_and_hemispheres_are_the_awkward_ones():
    rng = np.random.default_rng(3)
    counts = ak.num(_jagged(rng, 300, 6.0))  # a quarter of the events empty: NaN axis, hemisphere 0
    px, py, pz = (ak.unflatten(rng.normal(size=int(ak.sum(counts))), counts) for _ in range(3))
    axis, thrust = thrust_axis(px, py, pz)
    offsets = jk.offsets_of(ak.to_numpy(counts))
    flat = [ak.to_numpy(ak.flatten(c)) for c in (px, py, pz)]
    axis_f, thrust_f = thrust_axis_flat(offsets, *flat)
    assert np.array_equal(thrust_f, ak.to_numpy(thrust), equal_nan=True)
    assert all(np.array_equal(a, ak.to_numpy(b), equal_nan=True) for a, b in zip(axis_f, axis))
    event = jk.list_index(offsets)
    hemi = hemisphere_flat(*flat, Vec3(*(a[event] for a in axis_f)))
    assert hemi.dtype == np.int8 and np.array_equal(hemi, ak.to_numpy(ak.flatten(hemisphere(px, py, pz, axis))))


@pytest.mark.parametrize("n_lists", [0, 1, 400])
def test_triplets_and_argmax_match_awkward(n_lists):
    """Triplet combinatorics (tau3mu) and the best candidate, as ak.combinations / ak.argmax, with
    lists of fewer than three masked entries, empty lists and NaN values."""
    rng = np.random.default_rng(100 + n_lists)
    x = _jagged(rng, n_lists, 4.0)
    mask = x > -0.6
    offsets, flat = _flat(x)
    flat_mask = ak.to_numpy(ak.flatten(mask))
    tri_offsets, a, b, c = jk.triplets(offsets, flat_mask)
    tri = ak.combinations(ak.local_index(x)[mask], 3, fields=["a", "b", "c"])
    assert np.array_equal(np.diff(tri_offsets), ak.to_numpy(ak.num(tri)))
    starts = offsets[:-1][jk.list_index(tri_offsets)]
    for mine, theirs in ((a, tri.a), (b, tri.b), (c, tri.c)):
        assert mine.dtype == np.int64 and np.array_equal(mine - starts, ak.to_numpy(ak.flatten(theirs)))

    score = flat[a] + flat[b] + flat[c]
    score[::7] = np.nan  # NaN first / inside a list
    score[1::5] = score[::5][: len(score[1::5])]  # ties
    jagged_score = ak.unflatten(score, np.diff(tri_offsets))
    expected = ak.to_numpy(ak.fill_none(ak.argmax(jagged_score, axis=1), -1))
    assert np.array_equal(jk.segment_argmax(tri_offsets, score), expected)


@pytest.mark.parametrize("n_lists", [0, 1, 500])
def test_max_prod_concat_match_awkward(n_lists):
    rng = np.random.default_rng(200 + n_lists)
    x = _jagged(rng, n_lists, 3.0, dtype=np.float64)
    x = ak.where(ak.unflatten(rng.random(len(ak.flatten(x))) < 0.05, ak.num(x)), np.nan, x)
    y = _jagged(rng, n_lists, 2.0)
    mask = x > -0.3
    offsets, flat = _flat(x)
    flat_mask = ak.to_numpy(ak.flatten(mask))
    got, expected = jk.segment_max(offsets, flat, flat_mask, -1.0), ak.to_numpy(ak.fill_none(ak.max(x[mask], axis=1), -1.0))
    assert got.dtype == expected.dtype and np.array_equal(got, expected, equal_nan=True)
    p = np.abs(flat) / 4
    jagged_p = ak.unflatten(p, ak.num(x))
    got = jk.segment_prod(offsets, 1.0 - p, flat_mask)
    expected = ak.to_numpy(ak.prod(ak.where(mask, 1.0 - jagged_p, 1.0), axis=1))
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    offsets_y, flat_y = _flat(y)
    cat_offsets, cat = jk.concat_lists(offsets, flat, offsets_y, flat_y)
    expected_cat = ak.concatenate([x, y], axis=1)
    assert np.array_equal(np.diff(cat_offsets), ak.to_numpy(ak.num(expected_cat)))
    flat_cat = ak.to_numpy(ak.flatten(expected_cat))
    assert cat.dtype == flat_cat.dtype and np.array_equal(cat, flat_cat, equal_nan=True)


@pytest.mark.parametrize("n_lists", [0, 1, 400])
def test_cartesian_matches_awkward(n_lists):
    """(phi candidate, lepton) pairs of taulphi, as ak.cartesian of two masked jagged arrays."""
    rng = np.random.default_rng(300 + n_lists)
    x = _jagged(rng, n_lists, 3.0)
    y = ak.unflatten(rng.normal(size=int(ak.sum(ak.num(x) + 1))).astype(np.float32), ak.num(x) + 1)
    mask_x, mask_y = x > -0.2, y > 0.1
    (off_x, _), (off_y, _) = _flat(x), _flat(y)
    off, ix, iy = jk.cartesian(off_x, ak.to_numpy(ak.flatten(mask_x)), off_y, ak.to_numpy(ak.flatten(mask_y)))
    pairs = ak.cartesian({"p": ak.local_index(x)[mask_x], "l": ak.local_index(y)[mask_y]}, axis=1)
    assert np.array_equal(np.diff(off), ak.to_numpy(ak.num(pairs)))
    lists = jk.list_index(off)
    assert np.array_equal(ix - off_x[:-1][lists], ak.to_numpy(ak.flatten(pairs.p)))
    assert np.array_equal(iy - off_y[:-1][lists], ak.to_numpy(ak.flatten(pairs.l)))


@pytest.mark.parametrize("n_lists", [0, 1, 400])
def test_pairs_and_fox_wolfram_match_awkward(n_lists):
    """Kaon pairs of taulphi (ak.combinations of 2) and Fox-Wolfram R2 on float32 momenta with
    empty lists and zero momenta."""
    from belle_rare.processors.event_shape import fox_wolfram_r2, fox_wolfram_r2_flat

    rng = np.random.default_rng(400 + n_lists)
    x = _jagged(rng, n_lists, 3.0)
    mask = x > -0.5
    offsets, flat = _flat(x)
    pair_offsets, a, b = jk.pairs(offsets, ak.to_numpy(ak.flatten(mask)))
    expected = ak.combinations(ak.local_index(x)[mask], 2, fields=["a", "b"])
    assert np.array_equal(np.diff(pair_offsets), ak.to_numpy(ak.num(expected)))
    starts = offsets[:-1][jk.list_index(pair_offsets)]
    assert np.array_equal(a - starts, ak.to_numpy(ak.flatten(expected.a)))
    assert np.array_equal(b - starts, ak.to_numpy(ak.flatten(expected.b)))

    py, pz = (_flat(ak.unflatten(rng.normal(size=len(flat)).astype(np.float32), ak.num(x)))[1] for _ in range(2))
    px = flat.copy()
    px[::9], py[::9], pz[::9] = 0.0, 0.0, 0.0  # zero momenta carry no weight
    jagged = [ak.unflatten(c, np.diff(offsets)) for c in (px, py, pz)]
    got, want = fox_wolfram_r2_flat(offsets, px, py, pz), ak.to_numpy(fox_wolfram_r2(*jagged))
    assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True)


def _fox_wolfram_r2_numpy(offsets: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """``fox_wolfram_r2_flat`` before stop 33, verbatim (numpy with segment sums): the reference."""
    from belle_rare.processors.kinematics import momentum

    mag = momentum(px, py, pz)
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = np.where(mag > 0.0, 1.0 / mag, 0.0).astype(np.float64)
    comps = (px, py, pz)
    frob2 = 0.0
    for a in range(3):
        for b in range(a, 3):
            m_ab = jk.segment_sum(offsets, comps[a] * comps[b] * inv)
            frob2 = frob2 + (1.0 if a == b else 2.0) * m_ab * m_ab
    h0 = jk.segment_sum(offsets, mag) ** 2
    h2 = 1.5 * frob2 - 0.5 * h0
    with np.errstate(invalid="ignore", divide="ignore"):
        return h2 / h0


@pytest.mark.parametrize("dtypes", [(np.float32, np.float32), (np.float64, np.float64), (np.float32, np.float64)])
def test_fox_wolfram_of_two_lists_has_the_bits_of_the_concatenated_lists(dtypes):
    """bkscalar's and taulphi's R2 of tracks then photons without building their concatenation (and
    ``fox_wolfram_r2_flat``, the same kernel with one list): the bits of the numpy code they replaced on
    ``concat_lists``, empty events and zero momenta included."""
    from belle_rare.processors.event_shape import fox_wolfram_r2_flat, fox_wolfram_r2_two_lists

    rng = np.random.default_rng(7)
    counts_a, counts_b = rng.integers(0, 8, 3000), rng.integers(0, 6, 3000)
    offsets_a, offsets_b = jk.offsets_of(counts_a), jk.offsets_of(counts_b)
    a = tuple(rng.normal(0, 1, offsets_a[-1]).astype(dtypes[0]) for _ in range(3))
    b = tuple(rng.normal(0, 0.3, offsets_b[-1]).astype(dtypes[1]) for _ in range(3))
    for c in a:
        c[::7] = 0.0
    both = [jk.concat_lists(offsets_a, a[k], offsets_b, b[k]) for k in range(3)]
    want = np.asarray(_fox_wolfram_r2_numpy(both[0][0], *(content for _, content in both)), dtype=np.float64)
    got = fox_wolfram_r2_two_lists(offsets_a, a, offsets_b, b)
    assert np.isnan(want).sum() > 10 and got.tobytes() == want.tobytes()
    flat = fox_wolfram_r2_flat(both[0][0], *(content for _, content in both))
    assert flat.dtype == np.float64 and flat.tobytes() == want.tobytes()
