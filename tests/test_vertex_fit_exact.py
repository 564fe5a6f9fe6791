"""The bks-perf2 round's rewrites of the pair fit (issue 15) give the same bits as the code they replaced:
the sparse J^T W / J^T W J of ``_fit_pairs_kernel`` against the dense 4-term loops (kept here, compiled
by numba as before), the inversion of only the paired tracks' covariances, ``closest_approach_pairs``
against ``closest_approach`` on copied tracks, and the numba midpoint kernel against the stacked numpy expression
it replaced."""

from __future__ import annotations

import numba
import numpy as np

from belle_rare.processors.vertex_fit import (
    FIXED_STEPS, TrackParameters, _midpoint_pairs_kernel, _solve_normal_equations, closest_approach, closest_approach_pairs,
    fit_pairs, inverse_covariances, measured_lines,
)
from tests.test_vertex_fit import _random_pairs


@numba.njit
def _dense_kernel(first, second, measured, weight, start, iterations, vertex, covariance, chi2, directions):  # noqa: ANN001
    """``_fit_pairs_kernel`` before the sparse rewrite, verbatim (dense 4 x 5 Jacobian and 4-term sums) but for the
    solve of the normal equations, which is today's (``_solve_normal_equations``; it replaced a 7 x 7 LU, checked
    against LAPACK in ``test_vertex_fit.py``)."""
    normal = np.empty((7, 7))
    vertex_covariance = np.empty((3, 3))
    schur, rhs, track_inverse = np.empty((3, 3)), np.empty(3), np.empty((2, 2, 2))
    gradient = np.empty(7)
    params = np.empty(7)
    jac = np.empty((4, 5))
    columns = np.empty(5, dtype=np.int64)
    jt_w = np.empty((5, 4))
    residual = np.empty(4)
    column = np.empty(7)
    for k in range(len(first)):
        tracks = (first[k], second[k])
        params[0], params[1], params[2] = start[k, 0], start[k, 1], start[k, 2]
        params[3], params[4] = measured[tracks[0], 1], measured[tracks[0], 3]
        params[5], params[6] = measured[tracks[1], 1], measured[tracks[1], 3]
        total = 0.0
        for _ in range(iterations + 1):
            normal[:, :] = 0.0
            gradient[:] = 0.0
            total = 0.0
            for side in range(2):
                t = tracks[side]
                columns[0], columns[1], columns[2], columns[3], columns[4] = 0, 1, 2, 3 + 2 * side, 4 + 2 * side
                phi, tl = params[3 + 2 * side], params[4 + 2 * side]
                c, s = np.cos(phi), np.sin(phi)
                vx, vy, vz = params[0], params[1], params[2]
                d0 = vx * s - vy * c
                path = vx * c + vy * s
                residual[0] = measured[t, 0] - d0
                wrapped = measured[t, 1] - phi
                residual[1] = np.arctan2(np.sin(wrapped), np.cos(wrapped))
                residual[2] = measured[t, 2] - (vz - path * tl)
                residual[3] = measured[t, 3] - tl
                jac[:, :] = 0.0
                jac[0, 0], jac[0, 1], jac[0, 3] = s, -c, path
                jac[1, 3] = 1.0
                jac[2, 0], jac[2, 1], jac[2, 2], jac[2, 3], jac[2, 4] = -tl * c, -tl * s, 1.0, tl * d0, -path
                jac[3, 4] = 1.0
                for a in range(5):
                    for b in range(4):
                        acc = 0.0
                        for q in range(4):
                            acc += jac[q, a] * weight[t, q, b]
                        jt_w[a, b] = acc
                for a in range(5):
                    acc_g = 0.0
                    for q in range(4):
                        acc_g += jt_w[a, q] * residual[q]
                    gradient[columns[a]] += acc_g
                    for b in range(5):
                        acc = 0.0
                        for q in range(4):
                            acc += jt_w[a, q] * jac[q, b]
                        normal[columns[a], columns[b]] += acc
                for a in range(4):
                    for b in range(4):
                        total += residual[a] * weight[t, a, b] * residual[b]
            _solve_normal_equations(normal, gradient, column, vertex_covariance, schur, rhs, track_inverse)
            for a in range(7):
                params[a] += column[a]
        chi2[k] = total
        covariance[k, :, :] = vertex_covariance
        for a in range(3):
            vertex[k, a] = params[a]
        for a in range(4):
            directions[k, a] = params[3 + a]


def _tracks_and_pairs(n: int, seed: int) -> tuple[TrackParameters, np.ndarray, np.ndarray]:
    """2 n tracks (unrelated pairs, a fifth nearly parallel) and 3 n pairs among them, each track in
    several pairs and a few tracks in none (so the subset inversion has something to leave out)."""
    t1, t2 = _random_pairs(n, seed)
    tracks = TrackParameters.concatenate(t1, t2)
    rng = np.random.default_rng(seed)
    first = np.r_[np.arange(n), rng.integers(0, n, 2 * n)]
    second = np.r_[n + np.arange(n), n + rng.integers(0, n, 2 * n)]
    unused = rng.random(3 * n) < 0.1
    return tracks, first[~unused], second[~unused]


def test_sparse_kernel_and_subset_inversion_give_the_dense_fits_bits():
    tracks, first, second = _tracks_and_pairs(400, 23)
    n = len(first)
    start = closest_approach(tracks.take(first), tracks.take(second))
    out = np.empty((n, 3)), np.empty((n, 3, 3)), np.empty(n), np.empty((n, 4))
    _dense_kernel(first, second, np.ascontiguousarray(tracks.vector()), inverse_covariances(tracks.covariance), start,
                  FIXED_STEPS - 1, *out)
    vertex, covariance, chi2, directions = out
    fit = fit_pairs(tracks, first, second, start, FIXED_STEPS, tolerance=0.0)
    assert fit.vertex.tobytes() == vertex.tobytes()
    assert fit.covariance.tobytes() == covariance.tobytes()
    assert fit.chi2.tobytes() == chi2.tobytes()
    p1 = np.stack([tracks.pt[first] * np.cos(directions[:, 0]), tracks.pt[first] * np.sin(directions[:, 0]),
                   tracks.pt[first] * directions[:, 1]], axis=1)
    assert fit.p1.tobytes() == p1.tobytes()
    assert np.isfinite(fit.chi2).all() and (fit.chi2 > 0).any()


def test_closest_approach_pairs_equals_closest_approach_of_copied_tracks():
    tracks, first, second = _tracks_and_pairs(300, 5)
    expected = closest_approach(tracks.take(first), tracks.take(second))
    assert closest_approach_pairs(tracks, first, second).tobytes() == expected.tobytes()


def _stacked_midpoint(o1: np.ndarray, u1: np.ndarray, o2: np.ndarray, u2: np.ndarray) -> np.ndarray:
    """``vertex_fit._midpoint`` before the numba kernel, verbatim (stacked numpy, row by row)."""
    w0 = o1 - o2
    b, d, e = np.sum(u1 * u2, axis=1), np.sum(u1 * w0, axis=1), np.sum(u2 * w0, axis=1)
    denom = np.where(1.0 - b * b < 1e-12, 1.0, 1.0 - b * b)
    s = (b * e - d) / denom
    t = (e - b * d) / denom
    return 0.5 * (o1 + s[:, None] * u1 + o2 + t[:, None] * u2)


def test_midpoint_kernel_has_the_bits_of_the_stacked_expression():
    """Random lines, some exactly parallel (the denominator's guard): the kernel's start points are the
    stacked expression's, bit for bit, through both public entry points."""
    tracks, first, second = _tracks_and_pairs(300, 5)
    first, second = np.concatenate([first, [0, 3]]), np.concatenate([second, [0, 3]])  # a line with itself
    origin, u = measured_lines(tracks)
    expected = _stacked_midpoint(origin[first], u[first], origin[second], u[second])
    out = np.empty((len(first), 3))
    _midpoint_pairs_kernel(origin, u, first, second, out)
    assert out.tobytes() == expected.tobytes()
    assert closest_approach_pairs(tracks, first, second).tobytes() == expected.tobytes()
    assert closest_approach(tracks.take(first), tracks.take(second)).tobytes() == expected.tobytes()
    # the parallel guard: a line with itself gives its own point nearest the z axis, not NaN
    assert np.array_equal(out[-2:], origin[[0, 3]])


def test_stored_covariance_built_per_row_equals_the_full_stack():
    """``TrackParameters.from_columns`` builds the covariance only for the tracks a fit takes: the same values as
    the full (n, 4, 4) stack's rows (float32 columns, as stored), and the same fits."""
    from belle_rare.simulation.detector.tracking import covariance_branches

    rng = np.random.default_rng(12)
    n = 500
    columns = {k: rng.normal(0.0, 1.0, n).astype(np.float32) for k in ("px", "py", "pz", "dr", "dz")}
    for name, i, j in covariance_branches():
        columns[name] = (rng.uniform(1e-4, 1e-3, n) if i == j else rng.uniform(-1e-6, 1e-6, n)).astype(np.float32)
    full = np.zeros((n, 4, 4))
    for name, i, j in covariance_branches():
        full[:, i, j] = full[:, j, i] = np.asarray(columns[name], dtype=np.float64)
    tracks = TrackParameters.from_columns(columns)
    rows = rng.choice(n, 120, replace=False)
    assert tracks.covariance[rows].tobytes() == full[rows].tobytes()
    assert tracks.take(rows).covariance.tobytes() == full[rows].tobytes()
    first, second = rows[:60], rows[60:]
    eager = TrackParameters(tracks.d0, tracks.phi0, tracks.z0, tracks.tan_lambda, full, tracks.pt)
    a, b = fit_pairs(tracks, first, second), fit_pairs(eager, first, second)
    assert a.vertex.tobytes() == b.vertex.tobytes() and a.covariance.tobytes() == b.covariance.tobytes()
