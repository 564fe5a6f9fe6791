"""Beam four-momenta and the interaction point, from the experiment configuration."""

from __future__ import annotations

import math

import numpy as np

from belle_rare.configs.experiment import Experiment


def beam_directions(exp: Experiment) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors (x, y, z) of the e- and e+ beam momenta in the laboratory."""
    her = np.array([math.sin(exp.her.angle), 0.0, math.cos(exp.her.angle)])
    ler = np.array([-math.sin(exp.ler.angle), 0.0, -math.cos(exp.ler.angle)])
    return her, ler


def sample_beams(exp: Experiment, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-event e- and e+ four-momenta ``(n, 4)`` as (px, py, pz, E), with the beam-energy spread."""
    her_dir, ler_dir = beam_directions(exp)
    e_her = exp.her.energy + exp.her.energy_spread * rng.standard_normal(n)
    e_ler = exp.ler.energy + exp.ler.energy_spread * rng.standard_normal(n)
    her = np.column_stack([e_her[:, None] * her_dir, e_her])
    ler = np.column_stack([e_ler[:, None] * ler_dir, e_ler])
    return her, ler


def nominal_beam(exp: Experiment, n: int) -> np.ndarray:
    """The nominal total beam four-momentum ``(n, 4)`` as (E, px, py, pz): what an analysis knows."""
    return np.tile(exp.total_four_momentum, (n, 1))


def sample_interaction_points(exp: Experiment, n: int, rng: np.random.Generator) -> np.ndarray:
    """Primary-vertex positions ``(n, 3)`` in cm, Gaussian with the beam-spot sizes."""
    sigma = np.array([exp.beam_spot.sigma_x, exp.beam_spot.sigma_y, exp.beam_spot.sigma_z])
    return rng.standard_normal((n, 3)) * sigma


def boost_to_lab(p4: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Boost CM-frame four-vectors ``(..., 4)`` (px, py, pz, E) into the frame where the CM system
    has four-momentum ``total`` (broadcastable, (px, py, pz, E))."""
    m = np.sqrt(total[..., 3] ** 2 - np.sum(total[..., :3] ** 2, axis=-1))
    beta = total[..., :3] / total[..., 3:4]
    gamma = total[..., 3] / m
    bp = np.sum(beta * p4[..., :3], axis=-1)
    b2 = np.sum(beta * beta, axis=-1)
    coef = np.where(b2 > 0, (gamma - 1.0) / np.where(b2 > 0, b2, 1.0), 0.0)
    p3 = p4[..., :3] + (coef * bp + gamma * p4[..., 3])[..., None] * beta
    e = gamma * (p4[..., 3] + bp)
    return np.concatenate([p3, e[..., None]], axis=-1)
