"""Two-track vertex fit on stored perigee parameters, one numba loop over all pairs (bkscalar, issue 13).

basf2 stores each track's fit result (helix parameters at the perigee with their covariance) and the
analysis fits vertices from them (KFit / TreeFitter; the V0Finder does the same for K_S, Lambda and
conversion hypotheses inside fixed mass windows, which an S of any mass is not). This module is that
analysis-side fit for the response's track model: straight lines (``simulation/detector/tracking.py``
neglects the curvature), each given by (d0, phi0, z0, tanLambda) and the 4 x 4 covariance the detector
response stores (``Track_cov_*``). The fit is a linearised least-squares (Gauss-Newton) fit of the common
vertex V and each track's direction (phi, tanLambda) at it:

    d0 = Vx sin(phi) - Vy cos(phi),  phi0 = phi,  z0 = Vz - s tanLambda,  s = Vx cos(phi) + Vy sin(phi)

8 measurements, 7 parameters: chi^2 with one degree of freedom. Outputs: the vertex and its covariance,
the chi^2, the refitted directions, and the two displacement variables of the paper: d_v, the transverse
distance of the vertex from the interaction point (the conversion vetoes are at the layer radii), and
cos(alpha), the transverse pointing angle between the IP -> vertex vector and the pair momentum.

Speed (issue 15): the fit was stacked numpy ((n, 7, 7) solves, (n, 4, 7) Jacobians, ~1 s per
10,000-event chunk and momentum scale); ``fit_pairs`` inverts each track's covariance once and runs the
same Gauss-Newton steps per pair in ``_fit_pairs_kernel``, ~3 x faster per pair. Converged fits agree with
the stacked version to ~1e-12 relative; a fit whose 5 steps have not converged (nearly parallel tracks)
differs by the stacked fit's own rounding sensitivity (``tests/test_vertex_fit.py`` keeps the stacked fit as
the reference). The kernel now skips the Jacobian's zero and unit products and inverts only the paired tracks'
covariances, with the same bits as before (``tests/test_vertex_fit_exact.py`` keeps the dense kernel as the reference); what remains
(~0.12 s per 10,000-event bkscalar chunk, ~25 % of its all-variation CPU; 53,723 pairs) is ~22 ms per
Gauss-Newton step (kernel with 1 / 2 / 5 steps: 41 / 63 / 128 ms) and ~18 ms per-pair setup and covariance
solves; caching each track's first-step cos / sin (and skipping the exact-zero first phi residual's
atan2) gained nothing measurable, so the transcendental calls are not what the steps cost. The start points (the
lines' closest approach) are a numba loop over the pairs too, with the stacked numpy expression's bits (bkscalar's
nominal pass x0.91, ``benchmarks/bench_midpoint_ab.py``). Stop 33: each step solves the normal equations through
their block-arrow shape (``_solve_normal_equations``: two 2 x 2 track blocks and the 3 x 3 Schur complement, whose
inverse is the vertex covariance) instead of a 7 x 7 LU with partial pivoting; the weights are Cholesky inverses
in numba (``inverse_covariances``; ``np.linalg.inv`` per 4 x 4 matrix cost ~0.4 s per 100,000-event chunk); the
linearisation and the solve are inlined into the kernel. The kernel on a 100,000-event B+ B- chunk (541k pairs)
2.3 -> 0.66 CPU s; with R2 without concatenated lists, bkscalar's nominal pass x0.61 (README "Scale").

Convergence: the fit had 5 fixed steps, after which 0.33 % of the pairs with chi^2 < 20 of real bkscalar chunks
were still > 100 um from the minimum (nearly parallel tracks zig-zag towards it). It now steps until two steps
in a row move the vertex by < ``TOLERANCE`` (at most ``MAX_STEPS``) and says whether it got there (``converged``):
0.13 % > 100 um, 91 % of all pairs converged, the kernel ~10 % faster (~3 % of bkscalar's nominal pass) (66 % of the pairs stop after 3 steps, 75 %
after at most 4; the unconverged take all 10).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numba
import numpy as np

from belle_rare.simulation.detector.tracking import covariance_branches

#: a pair's fit stops when two Gauss-Newton steps in a row move its vertex by less than this (cm: 1 um, 1 % of
#: the displaced vertices' ~100 um resolution)
TOLERANCE = 1e-4
#: at most this many steps per pair; a pair still moving then is ``converged = False``
MAX_STEPS = 10
#: the plain steps of the fit before the convergence test (the tests' reference: ``tolerance=0``)
FIXED_STEPS = 5


class StoredCovariance:
    """The (n, 4, 4) covariances of stored tracks, built from their ``cov_*`` columns only for the rows indexed
    (``self[index]``): a chunk's vertex fits use ~60 % of its tracks, and the full stack was ~7 % of bkscalar's
    nominal pass and 128 MB per 10^6 tracks. The same values as the full stack's rows."""

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        self.columns = {(i, j): columns[name] for name, i, j in covariance_branches()}

    def __len__(self) -> int:
        return len(next(iter(self.columns.values())))

    def rows(self, index: np.ndarray | slice) -> np.ndarray:
        """The (len(index), 4, 4) covariances of the tracks at ``index``."""
        first = next(iter(self.columns.values()))[index]
        cov = np.zeros((len(first), 4, 4))
        for (i, j), column in self.columns.items():
            cov[:, i, j] = cov[:, j, i] = np.asarray(column[index], dtype=np.float64)
        return cov

    def __getitem__(self, index: Any) -> np.ndarray:
        # an index array selects tracks (``take``); anything else (``cov[:, 0, 0]``) indexes the full stack
        if isinstance(index, np.ndarray) and index.ndim == 1:
            return self.rows(index)
        return self.rows(slice(None))[index]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        full = self.rows(slice(None))
        return full if dtype is None else full.astype(dtype)


@dataclass
class TrackParameters:
    """Perigee parameters (n,) each and their (n, 4, 4) covariance, in the order (d0, phi0, z0, tanLambda)
    (an array, or ``StoredCovariance``: built for the tracks ``take`` selects)."""

    d0: np.ndarray
    phi0: np.ndarray
    z0: np.ndarray
    tan_lambda: np.ndarray
    covariance: np.ndarray | StoredCovariance
    pt: np.ndarray

    @classmethod
    def from_columns(cls, columns: dict[str, np.ndarray]) -> "TrackParameters":
        """From flat track columns named as the ntuple's (``dr``, ``dz``, ``px``, ``py``, ``pz``, ``cov_*``)."""
        px, py, pz = (np.asarray(columns[k], dtype=np.float64) for k in ("px", "py", "pz"))
        pt = np.hypot(px, py)
        return cls(np.asarray(columns["dr"], dtype=np.float64), np.arctan2(py, px), np.asarray(columns["dz"], dtype=np.float64),
                   pz / np.maximum(pt, np.finfo(float).tiny), StoredCovariance(columns), pt)

    def vector(self) -> np.ndarray:
        return np.stack([self.d0, self.phi0, self.z0, self.tan_lambda], axis=1)

    def take(self, index: np.ndarray) -> "TrackParameters":
        """The tracks at ``index``."""
        return TrackParameters(self.d0[index], self.phi0[index], self.z0[index], self.tan_lambda[index],
                               self.covariance[index], self.pt[index])

    @classmethod
    def concatenate(cls, *parts: "TrackParameters") -> "TrackParameters":
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("d0", "phi0", "z0", "tan_lambda", "covariance", "pt")))


@dataclass
class VertexFit:
    """Result per candidate (n,): vertex (n, 3) and covariance (n, 3, 3), chi^2 (1 dof), refitted track
    momenta at the vertex (n, 3) each, whether the fit converged (``fit_pairs``), d_v and cos(alpha)."""

    vertex: np.ndarray
    covariance: np.ndarray
    chi2: np.ndarray
    p1: np.ndarray
    p2: np.ndarray
    converged: np.ndarray | None = None

    @cached_property
    def succeeded(self) -> np.ndarray:
        """The fit converged to a vertex with a covariance: a pair whose normal matrix is singular, or numerically
        so (two tracks on one line: a vertex variance <= 0 or not finite), or that did not converge has failed."""
        converged = np.ones(len(self.chi2), dtype=bool) if self.converged is None else self.converged
        variances = np.diagonal(self.covariance, axis1=1, axis2=2)
        return converged & np.isfinite(self.chi2) & np.all(np.isfinite(variances) & (variances > 0.0), axis=1)

    @cached_property
    def dv(self) -> np.ndarray:
        """Transverse distance of the vertex from the interaction point (cm)."""
        return np.hypot(self.vertex[:, 0], self.vertex[:, 1])

    @cached_property
    def cos_alpha(self) -> np.ndarray:
        """cos of the transverse angle between the IP -> vertex vector and the pair momentum."""
        p = self.p1 + self.p2
        dot = self.vertex[:, 0] * p[:, 0] + self.vertex[:, 1] * p[:, 1]
        norm = self.dv * np.hypot(p[:, 0], p[:, 1])
        return dot / np.maximum(norm, np.finfo(float).tiny)


def _model(vertex: np.ndarray, phi: np.ndarray, tl: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted perigee vector (n, 4) of a line through ``vertex`` with direction (phi, tanLambda), and
    its Jacobian (n, 4, 5) with respect to (Vx, Vy, Vz, phi, tanLambda)."""
    c, s_ = np.cos(phi), np.sin(phi)
    vx, vy, vz = vertex[:, 0], vertex[:, 1], vertex[:, 2]
    d0 = vx * s_ - vy * c
    path = vx * c + vy * s_
    h = np.stack([d0, phi, vz - path * tl, tl], axis=1)
    jac = np.zeros((len(phi), 4, 5))
    jac[:, 0, 0], jac[:, 0, 1], jac[:, 0, 3] = s_, -c, path
    jac[:, 1, 3] = 1.0
    jac[:, 2, 0], jac[:, 2, 1], jac[:, 2, 2], jac[:, 2, 3], jac[:, 2, 4] = -tl * c, -tl * s_, 1.0, tl * d0, -path
    jac[:, 3, 4] = 1.0
    return h, jac


def measured_lines(t: TrackParameters) -> tuple[np.ndarray, np.ndarray]:
    """Each measured line's point of closest approach to the z axis (n, 3) and unit direction (n, 3)."""
    origin = np.stack([t.d0 * np.sin(t.phi0), -t.d0 * np.cos(t.phi0), t.z0], axis=1)
    u = np.stack([np.cos(t.phi0), np.sin(t.phi0), t.tan_lambda], axis=1)
    return origin, u / np.linalg.norm(u, axis=1, keepdims=True)


@numba.njit(cache=True)
def _midpoint_pairs_kernel(origin: np.ndarray, u: np.ndarray, first: np.ndarray, second: np.ndarray, out: np.ndarray) -> None:
    """Midpoint of the shortest segment between the lines (origin, u)[first[k]] and [second[k]], into ``out[k]``
    (the stacked numpy expression's operations in its order, so its bits: ``tests/test_vertex_fit_exact.py``)."""
    for k in range(len(first)):
        a, b = first[k], second[k]
        w0x, w0y, w0z = origin[a, 0] - origin[b, 0], origin[a, 1] - origin[b, 1], origin[a, 2] - origin[b, 2]
        cos_ab = u[a, 0] * u[b, 0] + u[a, 1] * u[b, 1] + u[a, 2] * u[b, 2]
        d = u[a, 0] * w0x + u[a, 1] * w0y + u[a, 2] * w0z
        e = u[b, 0] * w0x + u[b, 1] * w0y + u[b, 2] * w0z
        denom = 1.0 - cos_ab * cos_ab
        if denom < 1e-12:  # parallel lines: no unique shortest segment, one of them is taken
            denom = 1.0
        s = (cos_ab * e - d) / denom
        t = (e - cos_ab * d) / denom
        for c in range(3):
            out[k, c] = 0.5 * (origin[a, c] + s * u[a, c] + origin[b, c] + t * u[b, c])


def closest_approach(t1: TrackParameters, t2: TrackParameters) -> np.ndarray:
    """Midpoint of the shortest segment between the two measured lines (the fit's starting point)."""
    n = len(t1.d0)
    origin, u = (np.concatenate(pair) for pair in zip(measured_lines(t1), measured_lines(t2)))
    out = np.empty((n, 3))
    _midpoint_pairs_kernel(origin, u, np.arange(n), n + np.arange(n), out)
    return out


def closest_approach_pairs(tracks: TrackParameters, first: np.ndarray, second: np.ndarray,
                           lines: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """``closest_approach(tracks.take(first), tracks.take(second))`` with each track's line computed once
    (a track is in many pairs; the same operations per row, so the same bits), no covariance and no line copied.
    ``lines``: ``measured_lines(tracks)`` if already computed."""
    origin, u = measured_lines(tracks) if lines is None else lines
    out = np.empty((len(first), 3))
    _midpoint_pairs_kernel(np.ascontiguousarray(origin), np.ascontiguousarray(u), np.asarray(first, dtype=np.int64),
                           np.asarray(second, dtype=np.int64), out)
    return out


@numba.njit(cache=True)
def _invert_covariances(covariance: np.ndarray, out: np.ndarray) -> None:
    """``out[k]`` = ``covariance[k]``^-1 for a stack of symmetric positive-definite matrices, through each one's
    Cholesky factor L (C = L L^T, C^-1 = L^-T L^-1; the lower triangle is read); NaN for a matrix that is not
    positive definite (a fit with it fails instead of the chunk). ``np.linalg.inv`` per 4 x 4 matrix cost more
    than the fit's Gauss-Newton steps (README "Scale")."""
    m = covariance.shape[1]
    low, low_inv = np.empty((m, m)), np.empty((m, m))
    for k in range(covariance.shape[0]):
        positive = True
        for j in range(m):
            pivot = covariance[k, j, j]
            for q in range(j):
                pivot -= low[j, q] * low[j, q]
            if not pivot > 0.0:
                positive = False
                break
            low[j, j] = np.sqrt(pivot)
            for i in range(j + 1, m):
                value = covariance[k, i, j]
                for q in range(j):
                    value -= low[i, q] * low[j, q]
                low[i, j] = value / low[j, j]
        if not positive:
            out[k, :, :] = np.nan
            continue
        for j in range(m):
            low_inv[j, j] = 1.0 / low[j, j]
            for i in range(j + 1, m):
                value = 0.0
                for q in range(j, i):
                    value -= low[i, q] * low_inv[q, j]
                low_inv[i, j] = value / low[i, i]
        for a in range(m):
            for b in range(a, m):
                value = 0.0
                for q in range(b, m):
                    value += low_inv[q, a] * low_inv[q, b]
                out[k, a, b] = out[k, b, a] = value


def inverse_covariances(covariance: np.ndarray) -> np.ndarray:
    """The inverses of a (n, d, d) stack of covariance matrices (``_invert_covariances``)."""
    covariance = np.ascontiguousarray(covariance, dtype=np.float64)
    out = np.empty_like(covariance)
    _invert_covariances(covariance, out)
    return out


@numba.njit(cache=True, inline="always")
def _solve_normal_equations(normal: np.ndarray, gradient: np.ndarray, step: np.ndarray, covariance: np.ndarray,
                            schur: np.ndarray, rhs: np.ndarray, track_inverse: np.ndarray) -> bool:
    """``step`` = N^-1 g and ``covariance`` = the vertex block of N^-1 for the fit's 7 x 7 normal matrix N, through
    its block-arrow shape: the tracks' (phi, tanLambda) blocks C_t couple to the vertex (blocks B_t) but not to each
    other, so N^-1 needs two 2 x 2 inverses and the 3 x 3 Schur complement S = A - sum_t B_t C_t^-1 B_t^T, whose
    inverse is the vertex covariance (a third of a 7 x 7 LU's work; the same solution to ~1e-12 where N is
    well conditioned, ``tests/test_vertex_fit.py``). False if a C_t or S is exactly singular (two tracks on one
    line). ``schur`` (3, 3), ``rhs`` (3,), ``track_inverse`` (2, 2, 2): work space."""
    for r in range(3):
        rhs[r] = gradient[r]
        for c in range(3):
            schur[r, c] = normal[r, c]
    for t in range(2):
        o = 3 + 2 * t
        a, b, c, d = normal[o, o], normal[o, o + 1], normal[o + 1, o], normal[o + 1, o + 1]
        det = a * d - b * c
        if det == 0.0:
            return False
        inv = track_inverse[t]
        inv[0, 0], inv[0, 1], inv[1, 0], inv[1, 1] = d / det, -b / det, -c / det, a / det
        for r in range(3):
            # row r of B_t C_t^-1
            k0 = normal[r, o] * inv[0, 0] + normal[r, o + 1] * inv[1, 0]
            k1 = normal[r, o] * inv[0, 1] + normal[r, o + 1] * inv[1, 1]
            rhs[r] -= k0 * gradient[o] + k1 * gradient[o + 1]
            for c in range(3):
                schur[r, c] -= k0 * normal[o, c] + k1 * normal[o + 1, c]
    # S^-1 by cofactors (adjugate / determinant)
    s = schur
    cof00 = s[1, 1] * s[2, 2] - s[1, 2] * s[2, 1]
    cof01 = s[0, 2] * s[2, 1] - s[0, 1] * s[2, 2]
    cof02 = s[0, 1] * s[1, 2] - s[0, 2] * s[1, 1]
    det = s[0, 0] * cof00 + s[1, 0] * cof01 + s[2, 0] * cof02
    if det == 0.0:
        return False
    covariance[0, 0], covariance[0, 1], covariance[0, 2] = cof00 / det, cof01 / det, cof02 / det
    covariance[1, 0] = (s[1, 2] * s[2, 0] - s[1, 0] * s[2, 2]) / det
    covariance[1, 1] = (s[0, 0] * s[2, 2] - s[0, 2] * s[2, 0]) / det
    covariance[1, 2] = (s[0, 2] * s[1, 0] - s[0, 0] * s[1, 2]) / det
    covariance[2, 0] = (s[1, 0] * s[2, 1] - s[1, 1] * s[2, 0]) / det
    covariance[2, 1] = (s[0, 1] * s[2, 0] - s[0, 0] * s[2, 1]) / det
    covariance[2, 2] = (s[0, 0] * s[1, 1] - s[0, 1] * s[1, 0]) / det
    for r in range(3):
        step[r] = covariance[r, 0] * rhs[0] + covariance[r, 1] * rhs[1] + covariance[r, 2] * rhs[2]
    # each track's step given the vertex's: C_t^-1 (g_t - B_t^T dV)
    for t in range(2):
        o = 3 + 2 * t
        u0 = gradient[o] - (normal[o, 0] * step[0] + normal[o, 1] * step[1] + normal[o, 2] * step[2])
        u1 = gradient[o + 1] - (normal[o + 1, 0] * step[0] + normal[o + 1, 1] * step[1] + normal[o + 1, 2] * step[2])
        step[o] = track_inverse[t, 0, 0] * u0 + track_inverse[t, 0, 1] * u1
        step[o + 1] = track_inverse[t, 1, 0] * u0 + track_inverse[t, 1, 1] * u1
    return True


@numba.njit(cache=True, inline="always")
def _linearise(t: int, side: int, params: np.ndarray, measured: np.ndarray, weight: np.ndarray, normal: np.ndarray,
               gradient: np.ndarray, jt_w: np.ndarray, residual: np.ndarray, total: float) -> float:
    """Add track ``t`` (the pair's ``side`` 0 or 1) to the normal equations at ``params``; ``total`` plus its
    chi^2 (one running sum over both tracks, as the fit has always summed it)."""
    own = 2 * side  # the track's (phi, tanLambda) are parameters 3 + own, 4 + own; the vertex 0-2
    phi, tl = params[3 + own], params[4 + own]
    c, s = np.cos(phi), np.sin(phi)
    vx, vy, vz = params[0], params[1], params[2]
    d0 = vx * s - vy * c
    path = vx * c + vy * s
    # residual m - h(params), the phi residual wrapped into (-pi, pi]
    residual[0] = measured[t, 0] - d0
    wrapped = measured[t, 1] - phi
    residual[1] = np.arctan2(np.sin(wrapped), np.cos(wrapped))
    residual[2] = measured[t, 2] - (vz - path * tl)
    residual[3] = measured[t, 3] - tl
    # d(d0, phi0, z0, tanLambda) / d(Vx, Vy, Vz, phi, tanLambda): rows 1 and 3 are unit
    # vectors and 9 of the 20 entries zero, so J^T W and J^T W J are written out without the
    # products by 0 and 1 (the remaining terms are summed in the order of the full 4-term
    # sums: x + 0 * w and 1 * w are exact, so every result has the same bits as the dense loops)
    j00, j01, j03 = s, -c, path
    j20, j21, j23, j24 = -tl * c, -tl * s, tl * d0, -path
    for b in range(4):
        w0, w1, w2, w3 = weight[t, 0, b], weight[t, 1, b], weight[t, 2, b], weight[t, 3, b]
        jt_w[0, b] = j00 * w0 + j20 * w2
        jt_w[1, b] = j01 * w0 + j21 * w2
        jt_w[2, b] = w2
        jt_w[3, b] = (j03 * w0 + w1) + j23 * w2
        jt_w[4, b] = j24 * w2 + w3
    for a in range(5):
        acc_g = 0.0
        for q in range(4):
            acc_g += jt_w[a, q] * residual[q]
        row = a if a < 3 else a + own
        gradient[row] += acc_g
        r0, r1, r2, r3 = jt_w[a, 0], jt_w[a, 1], jt_w[a, 2], jt_w[a, 3]
        normal[row, 0] += r0 * j00 + r2 * j20
        normal[row, 1] += r0 * j01 + r2 * j21
        normal[row, 2] += r2
        normal[row, 3 + own] += (r0 * j03 + r1) + r2 * j23
        normal[row, 4 + own] += r2 * j24 + r3
    for a in range(4):
        for b in range(4):
            total += residual[a] * weight[t, a, b] * residual[b]
    return total


@numba.njit(cache=True)
def _fit_pairs_kernel(first: np.ndarray, second: np.ndarray, measured: np.ndarray, weight: np.ndarray, start: np.ndarray,
                      max_steps: int, tolerance: float, vertex: np.ndarray, covariance: np.ndarray, chi2: np.ndarray,
                      directions: np.ndarray, converged: np.ndarray) -> None:
    """Gauss-Newton fit of every pair (track ``first[k]``, track ``second[k]``) to a common vertex.

    ``measured`` (n_tracks, 4) perigee vectors, ``weight`` (n_tracks, 4, 4) their inverse covariances,
    ``start`` (n_pairs, 3) the starting vertex. Parameters (Vx, Vy, Vz, phi1, tanLambda1, phi2,
    tanLambda2); each step solves the 7 x 7 normal equations. A pair stops when a step moves the vertex
    by less than ``tolerance`` twice in a row (``converged``), after at most ``max_steps`` steps; ``tolerance`` <= 0:
    exactly ``max_steps`` steps (the fit before the convergence test, the tests' reference). Outputs per
    pair: vertex, the vertex block of the inverse normal matrix, chi^2 and (phi1, tanLambda1, phi2,
    tanLambda2), chi^2 and covariance at the last linearisation point (before the last step); a pair whose
    normal matrix is singular gets NaN everywhere and ``converged`` False.
    """
    normal = np.empty((7, 7))
    vertex_covariance = np.empty((3, 3))
    schur, rhs, track_inverse = np.empty((3, 3)), np.empty(3), np.empty((2, 2, 2))
    gradient = np.empty(7)
    params = np.empty(7)
    # a track's model depends on 5 of the 7 parameters (V, its own phi and tanLambda): the other two Jacobian
    # columns are zero and add nothing to the normal equations (``_linearise`` writes the 5 x 5 block)
    jt_w = np.empty((5, 4))
    residual = np.empty(4)
    step = np.empty(7)
    fixed = tolerance <= 0.0
    for k in range(len(first)):
        params[0], params[1], params[2] = start[k, 0], start[k, 1], start[k, 2]
        params[3], params[4] = measured[first[k], 1], measured[first[k], 3]
        params[5], params[6] = measured[second[k], 1], measured[second[k], 3]
        done, singular, previous = False, False, np.inf
        for _ in range(max_steps):
            normal[:, :] = 0.0
            gradient[:] = 0.0
            total = _linearise(first[k], 0, params, measured, weight, normal, gradient, jt_w, residual, 0.0)
            chi2[k] = _linearise(second[k], 1, params, measured, weight, normal, gradient, jt_w, residual, total)
            if not _solve_normal_equations(normal, gradient, step, vertex_covariance, schur, rhs, track_inverse):
                singular = True
                break
            for a in range(7):
                params[a] += step[a]
            # converged: two steps in a row moved the vertex by < tolerance (nearly parallel tracks zig-zag:
            # a small step there can be followed by a larger one)
            moved = max(abs(step[0]), abs(step[1]), abs(step[2]))
            if not fixed and max(moved, previous) < tolerance:
                done = True
                break
            previous = moved
        converged[k] = done
        if singular:
            # no vertex: the two lines coincide (a track and its duplicate), the normal equations have no solution
            chi2[k] = np.nan
            vertex[k, :] = covariance[k, :, :] = directions[k, :] = np.nan
            continue
        # the last linearisation point's normal matrix: its inverse's vertex block
        covariance[k, :, :] = vertex_covariance
        for a in range(3):
            vertex[k, a] = params[a]
        for a in range(4):
            directions[k, a] = params[3 + a]


def fit_pairs(tracks: TrackParameters, first: np.ndarray, second: np.ndarray, start: np.ndarray | None = None,
              max_steps: int = MAX_STEPS, tolerance: float = TOLERANCE) -> VertexFit:
    """Common vertex of the pairs (``tracks[first[k]]``, ``tracks[second[k]]``) of straight tracks.

    Each track's covariance is inverted once (a track is in many pairs), then one numba loop fits every
    pair (``_fit_pairs_kernel``) until two steps in a row move the vertex by less than ``tolerance`` cm, in at
    most ``max_steps`` steps (``tolerance=0``: exactly ``max_steps`` plain Gauss-Newton steps).
    ``start``: the starting vertices if already computed (default: the lines' closest approach)."""
    first, second = np.asarray(first, dtype=np.int64), np.asarray(second, dtype=np.int64)
    n = len(first)
    if start is None:
        start = closest_approach(tracks.take(first), tracks.take(second))
    # only the tracks in some pair (in bkscalar ~60 %): each matrix is inverted alone, so the subset's inverses
    # have the same bits as the full stack's
    used = np.zeros(len(tracks.d0), dtype=bool)
    used[first] = used[second] = True
    local = np.cumsum(used) - 1
    subset = tracks.take(np.flatnonzero(used))
    weight = inverse_covariances(subset.covariance) if len(subset.d0) else np.zeros((0, 4, 4))
    vertex, covariance, chi2, directions = np.empty((n, 3)), np.empty((n, 3, 3)), np.empty(n), np.empty((n, 4))
    converged = np.empty(n, dtype=bool)
    _fit_pairs_kernel(local[first], local[second], np.ascontiguousarray(subset.vector()), np.ascontiguousarray(weight),
                      np.ascontiguousarray(start, dtype=np.float64), max_steps, tolerance, vertex, covariance, chi2,
                      directions, converged)

    def momentum(phi: np.ndarray, tl: np.ndarray, pt: np.ndarray) -> np.ndarray:
        return np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * tl], axis=1)

    return VertexFit(vertex, covariance, chi2, momentum(directions[:, 0], directions[:, 1], tracks.pt[first]),
                     momentum(directions[:, 2], directions[:, 3], tracks.pt[second]), converged)


def fit_vertex(t1: TrackParameters, t2: TrackParameters, max_steps: int = MAX_STEPS, tolerance: float = TOLERANCE) -> VertexFit:
    """Common vertex of pairs of straight tracks (all arrays aligned: candidate k is t1[k], t2[k])."""
    n = len(t1.d0)
    both = TrackParameters.concatenate(t1, t2)
    return fit_pairs(both, np.arange(n), n + np.arange(n), closest_approach(t1, t2), max_steps, tolerance)
