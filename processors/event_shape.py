"""Event-shape variables of e+e- events: thrust axis and value, hemispheres, Fox-Wolfram R2.

Inputs are jagged awkward arrays of CM-frame momenta (one list per event, all charged and
neutral candidates), ``px, py, pz`` in GeV. Outputs are flat per-event arrays (jagged per
particle for ``hemisphere``). Events with no particles, or only zero momenta, give NaN for
axis, thrust and R2 (NaN fails every cut, which is the wanted behaviour) and hemisphere 0.

Thrust: T = max_n sum_i |p_i . n| / sum_i |p_i|. The maximising axis is parallel to
sum_i s_i p_i with s_i = sign(p_i . n): one side of a plane through the origin counted +, the
other -. Two steps per event, in a numba kernel over the flattened content and offsets:
(1) iterate s -> sum_i sign(p_i . s) p_i (each step cannot lower T) from several seeds, all sign
combinations of the ``n_seed`` hardest momenta and each of the ``n_single`` hardest alone, and
keep the best; (2) for events with at most ``exact_max`` particles (all tau-pair events) also
enumerate the planes through every pair of momenta, which makes the result exact (O(n^3)); those
events take (1) from the hardest momentum alone (the seeds were 2/3 of their time).
Inputs must be concrete (eager or virtual) awkward arrays, not dask collections.
"""

from __future__ import annotations

import awkward as ak
import numba
import numpy as np

from belle_rare.processors.jagged_kernels import offsets_of
from belle_rare.processors.kinematics import Array, Vec3, cos_angle, momentum

# 2**(5-1) = 16 sign-combination seeds: cheap at B-factory multiplicities (30-40 particles)
DEFAULT_SEED_PARTICLES = 5
# seeds along each of the hardest momenta alone catch most of the rest
DEFAULT_SINGLE_SEEDS = 8
# events up to this size also get the exact O(n^3) plane enumeration (tau pairs: all of them)
DEFAULT_EXACT_MAX = 20
# each iteration changes the hemisphere assignment and raises T; a handful suffice in practice
DEFAULT_MAX_ITERATIONS = 50


@numba.njit(cache=True)
def _orient(x: float, y: float, z: float) -> tuple[float, float, float]:
    """Fix the arbitrary sign of an axis: z > 0, then y > 0, then x > 0 (and no -0.0)."""
    if z < 0.0 or (z == 0.0 and (y < 0.0 or (y == 0.0 and x < 0.0))):
        x, y, z = -x, -y, -z
    return x + 0.0, y + 0.0, z + 0.0


@numba.njit(cache=True)
def _projection(lo, hi, px, py, pz, ux, uy, uz):
    """sum_i |p_i . u| over one event."""
    total = 0.0
    for j in range(lo, hi):
        total += abs(px[j] * ux + py[j] * uy + pz[j] * uz)
    return total


@numba.njit(cache=True)
def _iterate(lo, hi, px, py, pz, sx, sy, sz, max_iter):
    """Iterate s -> sum_i sign(p_i . s) p_i from a seed until the sign pattern is stable."""
    for _ in range(max_iter):
        nx = 0.0
        ny = 0.0
        nz = 0.0
        for j in range(lo, hi):
            if px[j] * sx + py[j] * sy + pz[j] * sz >= 0.0:
                nx += px[j]
                ny += py[j]
                nz += pz[j]
            else:
                nx -= px[j]
                ny -= py[j]
                nz -= pz[j]
        if nx * nx + ny * ny + nz * nz == 0.0:
            break
        # same sign pattern -> bit-identical sum: converged
        converged = nx == sx and ny == sy and nz == sz
        sx = nx
        sy = ny
        sz = nz
        if converged:
            break
    return sx, sy, sz


@numba.njit(cache=True)
def _thrust_kernel(offsets, px, py, pz, n_seed, n_single, exact_max, max_iter, axis_out, thrust_out):
    for iev in range(len(offsets) - 1):
        lo = offsets[iev]
        hi = offsets[iev + 1]
        n = hi - lo
        axis_out[iev, :] = np.nan
        thrust_out[iev] = np.nan
        if n == 0:
            continue
        mags = np.empty(n)
        for i in range(n):
            j = lo + i
            mags[i] = np.sqrt(px[j] * px[j] + py[j] * py[j] + pz[j] * pz[j])
        sum_p = mags.sum()
        if sum_p <= 0.0:
            continue
        order = np.argsort(-mags)
        # candidate axes are compared through |sum_i s_i p_i|, which is <= sum_i |p_i . n| and
        # equal to it for the optimal partition, so the maximum over candidates is T * sum|p|
        best = -1.0
        bx = 0.0
        by = 0.0
        bz = 0.0
        # (1) iterative: seeds from all sign combinations of the m hardest momenta (the hardest
        # keeps sign +, n and -n being the same axis) and from each of the hardest momenta alone.
        # An event that (2) enumerates exactly needs the hardest momentum alone, for what (2) cannot
        # see (every pair collinear): the other seeds cost 2/3 of the time on tau-pair events
        exact = n <= exact_max
        m = 1 if exact else min(n, n_seed)
        n_combo = 1 << (m - 1)
        for iseed in range(n_combo + (0 if exact else min(n, n_single))):
            sx = 0.0
            sy = 0.0
            sz = 0.0
            if iseed < n_combo:
                for k in range(m):
                    j = lo + order[k]
                    sign = -1.0 if (k > 0 and (iseed >> (k - 1)) & 1) else 1.0
                    sx += sign * px[j]
                    sy += sign * py[j]
                    sz += sign * pz[j]
            else:
                j = lo + order[iseed - n_combo]
                sx = px[j]
                sy = py[j]
                sz = pz[j]
            if sx * sx + sy * sy + sz * sz == 0.0:
                continue
            sx, sy, sz = _iterate(lo, hi, px, py, pz, sx, sy, sz, max_iter)
            norm2 = sx * sx + sy * sy + sz * sz
            if norm2 > best:
                best = norm2
                bx = sx
                by = sy
                bz = sz
        # (2) exact for small events: every plane partition can be rotated until the plane
        # holds two momenta i, j; enumerate those planes and the 4 sides for i and j (O(n^3))
        if n <= exact_max:
            for a in range(lo, hi):
                for b in range(a + 1, hi):
                    cx = py[a] * pz[b] - pz[a] * py[b]
                    cy = pz[a] * px[b] - px[a] * pz[b]
                    cz = px[a] * py[b] - py[a] * px[b]
                    if cx * cx + cy * cy + cz * cz == 0.0:
                        continue  # collinear pair: no plane; covered by (1)
                    sx = 0.0
                    sy = 0.0
                    sz = 0.0
                    for k in range(lo, hi):
                        if k == a or k == b:
                            continue
                        sign = 1.0 if px[k] * cx + py[k] * cy + pz[k] * cz >= 0.0 else -1.0
                        sx += sign * px[k]
                        sy += sign * py[k]
                        sz += sign * pz[k]
                    for sa in (1.0, -1.0):
                        for sb in (1.0, -1.0):
                            tx = sx + sa * px[a] + sb * px[b]
                            ty = sy + sa * py[a] + sb * py[b]
                            tz = sz + sa * pz[a] + sb * pz[b]
                            norm2 = tx * tx + ty * ty + tz * tz
                            if norm2 > best:
                                best = norm2
                                bx = tx
                                by = ty
                                bz = tz
        if best <= 0.0:
            continue
        norm = np.sqrt(best)
        ux, uy, uz = _orient(bx / norm, by / norm, bz / norm)
        axis_out[iev, 0] = ux
        axis_out[iev, 1] = uy
        axis_out[iev, 2] = uz
        thrust_out[iev] = _projection(lo, hi, px, py, pz, ux, uy, uz) / sum_p


def _flat_float64(a: ak.Array) -> np.ndarray:
    return np.ascontiguousarray(ak.to_numpy(ak.flatten(a, axis=1)), dtype=np.float64)


def thrust_axis(
    px: ak.Array,
    py: ak.Array,
    pz: ak.Array,
    n_seed: int = DEFAULT_SEED_PARTICLES,
    n_single: int = DEFAULT_SINGLE_SEEDS,
    exact_max: int = DEFAULT_EXACT_MAX,
    max_iter: int = DEFAULT_MAX_ITERATIONS,
) -> tuple[Vec3, ak.Array]:
    """Thrust axis (unit vector, z >= 0 by convention) and thrust value per event.

    ``px, py, pz``: jagged CM-frame momenta of all particles. Empty events give NaN.
    Exact for events with at most ``max(exact_max, n_seed)`` particles; above that the best of
    the iterated seeds (on isotropic random events, the hardest case, the seeds alone missed the
    brute-force maximum in about 0.2 % of events, by at most about 1 % of T).
    """
    offsets = offsets_of(ak.to_numpy(ak.num(px, axis=1)).astype(np.int64))
    axis, thrust = thrust_axis_flat(offsets, *(_flat_float64(c) for c in (px, py, pz)), n_seed, n_single, exact_max, max_iter)
    return Vec3(ak.Array(axis.x), ak.Array(axis.y), ak.Array(axis.z)), ak.Array(thrust)


def thrust_axis_flat(
    offsets: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    n_seed: int = DEFAULT_SEED_PARTICLES,
    n_single: int = DEFAULT_SINGLE_SEEDS,
    exact_max: int = DEFAULT_EXACT_MAX,
    max_iter: int = DEFAULT_MAX_ITERATIONS,
) -> tuple[Vec3, np.ndarray]:
    """``thrust_axis`` on flat momenta (lists by int64 ``offsets``), numpy in and out."""
    if min(n_seed, max_iter) < 1 or min(n_single, exact_max) < 0:
        raise ValueError(
            f"need n_seed, max_iter >= 1 and n_single, exact_max >= 0 "
            f"(got {n_seed}, {max_iter}, {n_single}, {exact_max})"
        )
    axis = np.empty((len(offsets) - 1, 3), dtype=np.float64)
    thrust = np.empty(len(offsets) - 1, dtype=np.float64)
    flat = [np.ascontiguousarray(c, dtype=np.float64) for c in (px, py, pz)]
    _thrust_kernel(np.asarray(offsets, dtype=np.int64), *flat, n_seed, n_single, exact_max, max_iter, axis, thrust)
    return Vec3(axis[:, 0], axis[:, 1], axis[:, 2]), thrust


def thrust_along(px: ak.Array, py: ak.Array, pz: ak.Array, axis: Vec3) -> Array:
    """sum |p . n| / sum |p| for a given unit axis n per event (T when n is the thrust axis)."""
    proj = abs(px * axis.x + py * axis.y + pz * axis.z)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ak.sum(proj, axis=-1) / ak.sum(momentum(px, py, pz), axis=-1)


def hemisphere(px: ak.Array, py: ak.Array, pz: ak.Array, axis: Vec3) -> ak.Array:
    """+1 / -1 per particle for the side of the plane normal to ``axis`` (p . n >= 0 -> +1).

    0 where the axis is undefined (NaN, e.g. an empty event).
    """
    dot = px * axis.x + py * axis.y + pz * axis.z
    side = ak.where(dot >= 0.0, np.int8(1), np.int8(-1))
    return ak.values_astype(ak.where(np.isnan(dot), np.int8(0), side), np.int8)


def hemisphere_flat(px: np.ndarray, py: np.ndarray, pz: np.ndarray, axis: Vec3) -> np.ndarray:
    """``hemisphere`` on numpy arrays (``axis`` broadcast onto them by the caller), int8."""
    dot = px * axis.x + py * axis.y + pz * axis.z
    return np.where(np.isnan(dot), np.int8(0), np.where(dot >= 0.0, np.int8(1), np.int8(-1))).astype(np.int8)


def fox_wolfram_r2(px: ak.Array, py: ak.Array, pz: ak.Array) -> ak.Array:
    """Fox-Wolfram ratio R2 = H2 / H0 with H_l = sum_ij |p_i||p_j| P_l(cos theta_ij).

    Computed without the O(n^2) pair loop: sum_ij (p_i.p_j)^2 / (|p_i||p_j|) = ||M||_F^2 with
    M = sum_i p_i p_i^T / |p_i|, and sum_ij |p_i||p_j| = (sum_i |p_i|)^2.
    """
    mag = momentum(px, py, pz)
    with np.errstate(invalid="ignore", divide="ignore"):
        inv = ak.where(mag > 0.0, 1.0 / mag, 0.0)  # zero momenta carry no weight in any H_l
    comps = (px, py, pz)
    frob2 = 0.0
    for a in range(3):
        for b in range(a, 3):
            m_ab = ak.sum(comps[a] * comps[b] * inv, axis=-1)
            frob2 = frob2 + (1.0 if a == b else 2.0) * m_ab * m_ab
    h0 = ak.sum(mag, axis=-1) ** 2
    # Legendre P2(c) = (3 c^2 - 1) / 2
    h2 = 1.5 * frob2 - 0.5 * h0
    with np.errstate(invalid="ignore", divide="ignore"):
        return h2 / h0


def fox_wolfram_r2_flat(offsets: np.ndarray, px: np.ndarray, py: np.ndarray, pz: np.ndarray) -> np.ndarray:
    """``fox_wolfram_r2`` on flat momenta (lists by int64 ``offsets``), the same operations and
    dtypes (``ak.where`` with a float fill gives float64, as here): ``fox_wolfram_r2_two_lists`` with an
    empty second list."""
    empty = np.zeros(0, dtype=np.result_type(px, py, pz))
    return fox_wolfram_r2_two_lists(offsets, (px, py, pz), np.zeros(len(offsets), dtype=np.int64), (empty, empty, empty))


def cos_theta_thrust(axis_a: Vec3, axis_b: Vec3) -> Array:
    """|cos| of the angle between two thrust axes (e.g. basf2 cosTBTO); axes have no sign."""
    return abs(cos_angle(axis_a, axis_b))


@numba.njit(cache=True, error_model="numpy")
def _fox_wolfram_r2_of_two(offsets_a: np.ndarray, a: tuple, offsets_b: np.ndarray, b: tuple, one: np.ndarray,
                           out: np.ndarray) -> None:
    """R2 per event of list i of ``a`` followed by list i of ``b`` (``fox_wolfram_r2_two_lists``): each sum in the
    concatenated list's order and dtypes -- |p| and its sum in the momenta's dtype (``one``: 1 in it), the
    p_a p_b / |p| sums in float64."""
    zero = one[0] - one[0]
    half = one[0] / (one[0] + one[0])  # the flat code's 0.5 * h0 stays in h0's dtype
    m = np.empty(6)
    for i in range(len(offsets_a) - 1):
        m[:] = 0.0
        total = zero
        for px, py, pz, lo, hi in ((a[0], a[1], a[2], offsets_a[i], offsets_a[i + 1]),
                                   (b[0], b[1], b[2], offsets_b[i], offsets_b[i + 1])):
            for j in range(lo, hi):
                x, y, z = px[j], py[j], pz[j]
                mag = np.sqrt(x * x + y * y + z * z)
                inv = np.float64(one[0] / mag) if mag > zero else 0.0
                m[0] += (x * x) * inv
                m[1] += (x * y) * inv
                m[2] += (x * z) * inv
                m[3] += (y * y) * inv
                m[4] += (y * z) * inv
                m[5] += (z * z) * inv
                total += mag
        frob2 = 0.0 + 1.0 * m[0] * m[0]
        frob2 = frob2 + 2.0 * m[1] * m[1]
        frob2 = frob2 + 2.0 * m[2] * m[2]
        frob2 = frob2 + 1.0 * m[3] * m[3]
        frob2 = frob2 + 2.0 * m[4] * m[4]
        frob2 = frob2 + 1.0 * m[5] * m[5]
        h0 = total * total
        h2 = 1.5 * frob2 - np.float64(half * h0)
        out[i] = h2 / np.float64(h0)


def fox_wolfram_r2_two_lists(offsets_a: np.ndarray, a: tuple[np.ndarray, np.ndarray, np.ndarray], offsets_b: np.ndarray,
                             b: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Fox-Wolfram R2 per event of the concatenation of two jagged momentum lists (tracks, then photons), without
    building it: the bits of ``fox_wolfram_r2`` on the concatenated lists (float64 per event; the one
    implementation, ``fox_wolfram_r2_flat`` calls it with an empty second list)."""
    dtype = np.result_type(*a, *b)
    a, b = (tuple(np.ascontiguousarray(c, dtype=dtype) for c in side) for side in (a, b))
    out = np.empty(len(offsets_a) - 1)
    _fox_wolfram_r2_of_two(np.asarray(offsets_a, dtype=np.int64), a, np.asarray(offsets_b, dtype=np.int64), b,
                           np.ones(1, dtype=dtype), out)
    return out
