"""K_L and muon detector: layers hit by tracks (muon range in iron, hadron punch-through) and
clusters of K_L and neutrons."""

from __future__ import annotations

import numpy as np

from belle_rare.simulation.detector import pdg as pdgtab
from belle_rare.simulation.detector.flat import Particles
from belle_rare.simulation.detector.kinematics import polar_angles
from belle_rare.simulation.detector.params import Klm


def _in_acceptance(theta: np.ndarray, cfg: Klm) -> np.ndarray:
    lo, hi = np.radians(cfg.theta_range_deg.low), np.radians(cfg.theta_range_deg.high)
    return (theta >= lo) & (theta <= hi)


def track_layers(pdg: np.ndarray, momentum: np.ndarray, theta: np.ndarray, cfg: Klm, rng: np.random.Generator) -> np.ndarray:
    """KLM layers hit by each track: muons by range, charged hadrons by punch-through, electrons none."""
    n = len(pdg)
    apdg = np.abs(pdg)
    reach = _in_acceptance(theta, cfg) & (momentum > cfg.muons.min_momentum)
    # muons: one layer per momentum_per_layer of range beyond the KLM entrance
    crossed = np.clip(np.floor((momentum - cfg.muons.min_momentum) / cfg.muons.momentum_per_layer) + 1, 0, cfg.n_layers)
    muon_layers = rng.binomial(crossed.astype(np.int64), cfg.muons.layer_efficiency)
    punch = rng.random(n) < cfg.hadrons.punch_through_probability
    hadron_layers = np.minimum(1 + rng.poisson(cfg.hadrons.mean_layers, n), cfg.n_layers)
    is_hadron = np.isin(apdg, (pdgtab.PION, pdgtab.KAON, pdgtab.PROTON))
    layers = np.select([apdg == pdgtab.MUON, is_hadron & punch], [muon_layers, hadron_layers], 0)
    return np.where(reach, layers, 0).astype(np.int32)


def klm_clusters(p: Particles, cfg: Klm, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Particles rows with a KLM cluster (K_L, neutrons) and the cluster fields."""
    apdg = np.abs(p.pdg)
    candidates = np.flatnonzero((apdg == pdgtab.KLONG) | (apdg == pdgtab.NEUTRON))
    momentum = p.p[candidates]
    theta, phi = polar_angles(p.px[candidates], p.py[candidates], p.pz[candidates])
    c = cfg.clusters
    eff = np.where(apdg[candidates] == pdgtab.KLONG, c.klong_efficiency(momentum), c.neutron_efficiency(momentum))
    found = _in_acceptance(theta, cfg) & (rng.random(len(candidates)) < eff)
    rows, momentum, theta, phi = candidates[found], momentum[found], theta[found], phi[found]
    n = len(rows)

    innermost = np.minimum(rng.geometric(c.innermost_layer_probability, n), cfg.n_layers)
    extra = rng.poisson(c.mean_layers + c.mean_layers_per_gev * momentum, n)
    layers = np.minimum(1 + extra, cfg.n_layers - innermost + 1)
    # smear the direction by a small random rotation (Gaussian in theta, in phi scaled by 1/sin theta)
    theta_meas = np.clip(theta + c.angular_resolution * rng.standard_normal(n), 0.0, np.pi)
    phi_meas = phi + c.angular_resolution / np.maximum(np.sin(theta), 1e-6) * rng.standard_normal(n)
    return rows, {
        "theta": theta_meas.astype(np.float32),
        "phi": np.arctan2(np.sin(phi_meas), np.cos(phi_meas)).astype(np.float32),
        "layers": layers.astype(np.int32),
        "innermostLayer": innermost.astype(np.int32),
        "mcIndex": p.mc_index[rows].astype(np.int32),
        "mcPDG": p.mc_pdg[rows].astype(np.int32),
    }
