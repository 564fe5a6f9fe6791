"""Two-track vertex fit on stored perigee parameters, vectorised over candidates (bkscalar, issue 13).

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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from belle_rare.simulation.detector.tracking import covariance_branches

#: Gauss-Newton steps after the first; 99 % of pairs are then within 1e-6 cm of the converged vertex (nearly
#: parallel pairs converge slower: <= 30 um; measured on tests/test_bkscalar.py _synthetic_pairs)
ITERATIONS = 4


@dataclass
class TrackParameters:
    """Perigee parameters (n,) each and their (n, 4, 4) covariance, in the order (d0, phi0, z0, tanLambda)."""

    d0: np.ndarray
    phi0: np.ndarray
    z0: np.ndarray
    tan_lambda: np.ndarray
    covariance: np.ndarray
    pt: np.ndarray

    @classmethod
    def from_columns(cls, columns: dict[str, np.ndarray]) -> "TrackParameters":
        """From flat track columns named as the ntuple's (``dr``, ``dz``, ``px``, ``py``, ``pz``, ``cov_*``)."""
        px, py, pz = (np.asarray(columns[k], dtype=np.float64) for k in ("px", "py", "pz"))
        pt = np.hypot(px, py)
        cov = np.zeros((len(px), 4, 4))
        for name, i, j in covariance_branches():
            cov[:, i, j] = cov[:, j, i] = np.asarray(columns[name], dtype=np.float64)
        return cls(np.asarray(columns["dr"], dtype=np.float64), np.arctan2(py, px), np.asarray(columns["dz"], dtype=np.float64),
                   pz / np.maximum(pt, np.finfo(float).tiny), cov, pt)

    def vector(self) -> np.ndarray:
        return np.stack([self.d0, self.phi0, self.z0, self.tan_lambda], axis=1)


@dataclass
class VertexFit:
    """Result per candidate (n,): vertex (n, 3) and covariance (n, 3, 3), chi^2 (1 dof), refitted track
    momenta at the vertex (n, 3) each, d_v and cos(alpha)."""

    vertex: np.ndarray
    covariance: np.ndarray
    chi2: np.ndarray
    p1: np.ndarray
    p2: np.ndarray

    @property
    def dv(self) -> np.ndarray:
        """Transverse distance of the vertex from the interaction point (cm)."""
        return np.hypot(self.vertex[:, 0], self.vertex[:, 1])

    @property
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


def closest_approach(t1: TrackParameters, t2: TrackParameters) -> np.ndarray:
    """Midpoint of the shortest segment between the two measured lines (the fit's starting point)."""

    def line(t: TrackParameters) -> tuple[np.ndarray, np.ndarray]:
        origin = np.stack([t.d0 * np.sin(t.phi0), -t.d0 * np.cos(t.phi0), t.z0], axis=1)
        u = np.stack([np.cos(t.phi0), np.sin(t.phi0), t.tan_lambda], axis=1)
        return origin, u / np.linalg.norm(u, axis=1, keepdims=True)

    (o1, u1), (o2, u2) = line(t1), line(t2)
    w0 = o1 - o2
    b, d, e = np.sum(u1 * u2, axis=1), np.sum(u1 * w0, axis=1), np.sum(u2 * w0, axis=1)
    denom = np.where(1.0 - b * b < 1e-12, 1.0, 1.0 - b * b)
    s = (b * e - d) / denom
    t = (e - b * d) / denom
    return 0.5 * (o1 + s[:, None] * u1 + o2 + t[:, None] * u2)


def fit_vertex(t1: TrackParameters, t2: TrackParameters, iterations: int = ITERATIONS) -> VertexFit:
    """Common vertex of pairs of straight tracks (all arrays aligned: candidate k is t1[k], t2[k])."""
    n = len(t1.d0)
    m1, m2 = t1.vector(), t2.vector()
    w1, w2 = np.linalg.inv(t1.covariance), np.linalg.inv(t2.covariance)
    # parameters: V (3), phi1, tl1, phi2, tl2
    params = np.concatenate([closest_approach(t1, t2), m1[:, [1, 3]], m2[:, [1, 3]]], axis=1)
    normal = np.tile(np.eye(7), (n, 1, 1))
    chi2 = np.zeros(n)
    for _ in range(iterations + 1):
        normal = np.zeros((n, 7, 7))
        gradient = np.zeros((n, 7))
        chi2 = np.zeros(n)
        for k, (m, w) in enumerate(((m1, w1), (m2, w2))):
            h, jac5 = _model(params[:, :3], params[:, 3 + 2 * k], params[:, 4 + 2 * k])
            jac = np.zeros((n, 4, 7))
            jac[:, :, :3] = jac5[:, :, :3]
            jac[:, :, 3 + 2 * k: 5 + 2 * k] = jac5[:, :, 3:]
            r = m - h
            r[:, 1] = np.angle(np.exp(1j * r[:, 1]))  # phi residual in (-pi, pi]
            jt_w = np.transpose(jac, (0, 2, 1)) @ w
            normal += jt_w @ jac
            gradient += np.einsum("nij,nj->ni", jt_w, r)
            chi2 += np.einsum("ni,nij,nj->n", r, w, r)
        params = params + np.linalg.solve(normal, gradient[:, :, None])[:, :, 0]
    cov = np.linalg.inv(normal)
    # chi2 and covariance belong to the last linearisation point (see ITERATIONS)

    def momentum(phi: np.ndarray, tl: np.ndarray, pt: np.ndarray) -> np.ndarray:
        return np.stack([pt * np.cos(phi), pt * np.sin(phi), pt * tl], axis=1)

    return VertexFit(params[:, :3], cov[:, :3, :3], chi2,
                     momentum(params[:, 3], params[:, 4], t1.pt), momentum(params[:, 5], params[:, 6], t2.pt))
