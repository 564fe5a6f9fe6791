"""Small synthetic truth records (particle guns, two-body decays, Upsilon(4S) -> B Bbar) in the
layout of ``simulation/truth.py``, for tests and benchmarks of the detector response without a
generator. All columnar; masses from ``particle``. Four-vectors are ``(n, 4)`` arrays in the
``belle_rare.core.fourvector`` order (px, py, pz, E); only the beams keep the truth record's
(E, px, py, pz) (``configs`` ``total_four_momentum``, ``simulation/truth.py`` ``BEAM_FIELDS``).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from belle_rare.configs.experiment import load_experiment
from belle_rare.core.fourvector import cm_boost, sqrt_s as beam_sqrt_s, to_lab
from belle_rare.simulation.detector import pdg as pdgtab
from belle_rare.simulation.detector.kinematics import direction
from belle_rare.simulation.truth import MC_FIELDS, make_truth

FINAL, DECAYED = 1, -2  # status codes of dedicated generators (simulation/truth.py)


def nominal_beams(experiment: str, n: int) -> np.ndarray:
    """(n, 4) copies of the nominal total beam four-momentum, (E, px, py, pz) as the truth record has it."""
    return np.tile(load_experiment(experiment).total_four_momentum, (n, 1))


def spread_beams(experiment: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 4) total beam four-momenta (E, px, py, pz) with each beam's Gaussian energy spread."""
    exp = load_experiment(experiment)
    her, ler = exp.beam_four_momenta
    e_her = exp.her.energy + exp.her.energy_spread * rng.standard_normal(n)
    e_ler = exp.ler.energy + exp.ler.energy_spread * rng.standard_normal(n)
    return (e_her / exp.her.energy)[:, None] * her + (e_ler / exp.ler.energy)[:, None] * ler


def _truth(columns: dict[str, np.ndarray], per_event: int, beam: np.ndarray, signal_index=None) -> ak.Array:
    """Truth from flat columns holding ``per_event`` particles per event, event-major."""
    n = len(beam)
    counts = np.full(n, per_event)
    mc = {f: ak.unflatten(np.asarray(columns[f]), counts) for f in MC_FIELDS}
    return make_truth(mc, beam, signal_index)


def _interleave(*parts: np.ndarray) -> np.ndarray:
    """Event-major flat array from per-slot arrays of equal length n: [p0[0], p1[0], ..., p0[1], ...]."""
    return np.stack(parts, axis=1).reshape(-1)


def particle_gun(
    pdg: int | np.ndarray,
    momentum: np.ndarray,
    theta: np.ndarray,
    phi: np.ndarray,
    vertex: np.ndarray | None = None,
    experiment: str = "belle2",
) -> ak.Array:
    """One final-state particle per event with the given |p| (GeV), polar and azimuthal angles."""
    momentum = np.asarray(momentum, dtype=np.float64)
    n = len(momentum)
    pdg = np.broadcast_to(np.asarray(pdg), (n,)).astype(np.int64)
    mass, _ = pdgtab.lookup(pdg)
    ux, uy, uz = direction(np.broadcast_to(theta, (n,)), np.broadcast_to(phi, (n,)))
    vertex = np.zeros((n, 3)) if vertex is None else np.asarray(vertex, dtype=np.float64)
    columns = {
        "pdg": pdg,
        "status": np.full(n, FINAL),
        "mother": np.full(n, -1),
        "px": momentum * ux,
        "py": momentum * uy,
        "pz": momentum * uz,
        "E": np.sqrt(momentum**2 + mass**2),
        "mass": mass,
        "x": vertex[:, 0],
        "y": vertex[:, 1],
        "z": vertex[:, 2],
        "t": np.zeros(n),
    }
    return _truth(columns, 1, nominal_beams(experiment, n))


def _isotropic(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.stack(direction(np.arccos(rng.uniform(-1, 1, n)), rng.uniform(-np.pi, np.pi, n)), axis=1)


def _two_body(parent: np.ndarray, m_parent: float, m1: float, m2: float, rng: np.random.Generator):
    """Isotropic two-body decay of parents with lab four-momenta (n, 4) (px, py, pz, E); returns the two daughters."""
    n = len(parent)
    p_star = np.sqrt((m_parent**2 - (m1 + m2) ** 2) * (m_parent**2 - (m1 - m2) ** 2)) / (2 * m_parent)
    u = _isotropic(n, rng)
    beta = (parent[:, :3] / parent[:, 3:]).T  # the parent's velocity: its rest frame -> lab is to_lab
    out = []
    for mass, sign in ((m1, 1.0), (m2, -1.0)):
        p = sign * p_star * u
        e = np.full(n, np.sqrt(p_star**2 + mass**2))
        out.append(np.stack(to_lab(p[:, 0], p[:, 1], p[:, 2], e, *beta), axis=1))
    return out


def two_body_decays(
    parent_pdg: int,
    daughters: tuple[int, int],
    momentum: np.ndarray,
    theta: np.ndarray,
    phi: np.ndarray,
    flight: np.ndarray | None,
    rng: np.random.Generator,
    experiment: str = "belle2",
    parent_mass: float | None = None,
) -> ak.Array:
    """Per event a parent born at the origin (status -2) decaying to two final-state daughters.

    ``flight`` (cm, per event) places the decay vertex along the parent direction; ``None`` means
    at the origin (prompt decays such as pi0 -> gamma gamma). ``parent_mass`` (GeV) is needed for
    codes without a PDG table mass (e.g. a dark scalar 9000025).
    """
    momentum = np.asarray(momentum, dtype=np.float64)
    n = len(momentum)
    m_parent = pdgtab.mass(parent_pdg) if parent_mass is None else parent_mass
    m1, m2 = pdgtab.mass(daughters[0]), pdgtab.mass(daughters[1])
    u = np.stack(direction(np.broadcast_to(theta, (n,)), np.broadcast_to(phi, (n,))), axis=1)
    parent = np.concatenate([momentum[:, None] * u, np.sqrt(momentum**2 + m_parent**2)[:, None]], axis=1)
    d1, d2 = _two_body(parent, m_parent, m1, m2, rng)
    vertex = np.zeros((n, 3)) if flight is None else np.asarray(flight)[:, None] * u
    zero = np.zeros(n)
    columns = {
        "pdg": _interleave(np.full(n, parent_pdg), np.full(n, daughters[0]), np.full(n, daughters[1])),
        "status": _interleave(np.full(n, DECAYED), np.full(n, FINAL), np.full(n, FINAL)),
        "mother": _interleave(np.full(n, -1), zero, zero),
        "mass": _interleave(np.full(n, m_parent), np.full(n, m1), np.full(n, m2)),
        "t": _interleave(zero, zero, zero),
    }
    for k, name in enumerate(("px", "py", "pz", "E")):
        columns[name] = _interleave(parent[:, k], d1[:, k], d2[:, k])
    for k, name in enumerate(("x", "y", "z")):
        columns[name] = _interleave(zero, vertex[:, k], vertex[:, k])
    return _truth(columns, 3, nominal_beams(experiment, n))


def upsilon4s_to_bb(
    n: int,
    b_pdg: int,
    rng: np.random.Generator,
    signal: str = "none",
    experiment: str = "belle2",
) -> ak.Array:
    """Upsilon(4S) -> B Bbar events with the experiment's beam-energy spread.

    Record per event: [Upsilon(4S), B (pdg ``b_pdg``), anti-B, pi from the B (final)], the B's
    decaying to a pion stands in for the signal side. ``signal``: ``"none"`` (generic, index -1),
    ``"b"`` (signal_index = the B) or ``"daughter"`` (signal_index = the B's pion).
    """
    beam = spread_beams(experiment, n, rng)
    sqrt_s = beam_sqrt_s(*beam.T)
    m_b = pdgtab.mass(b_pdg)
    m_pi = pdgtab.mass(pdgtab.PION)
    # Upsilon(4S) = the beams; B's back to back in its rest frame
    p_star = np.sqrt(np.maximum((sqrt_s / 2) ** 2 - m_b**2, 0.0))
    u = _isotropic(n, rng)
    beta = cm_boost(*beam.T)
    e_star = np.sqrt(p_star**2 + m_b**2)
    b1 = np.stack(to_lab(*(p_star[:, None] * u).T, e_star, *beta), axis=1)
    b2 = np.stack(to_lab(*(-p_star[:, None] * u).T, e_star, *beta), axis=1)
    pion, _ = _two_body(b1, m_b, m_pi, m_pi, rng)  # one pion kept as the "signal side"
    zero = np.zeros(n)
    charge = int(pdgtab.properties(b_pdg)[1])
    pi_pdg = pdgtab.PION if charge >= 0 else -pdgtab.PION
    columns = {
        "pdg": _interleave(np.full(n, pdgtab.UPSILON_4S), np.full(n, b_pdg), np.full(n, -b_pdg), np.full(n, pi_pdg)),
        "status": _interleave(np.full(n, DECAYED), np.full(n, DECAYED), np.full(n, DECAYED), np.full(n, FINAL)),
        "mother": _interleave(np.full(n, -1), zero, zero, np.ones(n)),
        "mass": _interleave(sqrt_s, np.full(n, m_b), np.full(n, m_b), np.full(n, m_pi)),
        "t": _interleave(zero, zero, zero, zero),
    }
    upsilon = beam[:, [1, 2, 3, 0]]  # beams (E, px, py, pz) -> (px, py, pz, E)
    for k, name in enumerate(("px", "py", "pz", "E")):
        columns[name] = _interleave(upsilon[:, k], b1[:, k], b2[:, k], pion[:, k])
    for name in ("x", "y", "z"):
        columns[name] = _interleave(zero, zero, zero, zero)
    signal_index = {"none": -1, "b": 1, "daughter": 3}[signal]
    return _truth(columns, 4, beam, np.full(n, signal_index))


def random_events(n: int, n_final: int, n_decayed: int, rng: np.random.Generator, experiment: str = "belle2") -> ak.Array:
    """Busy events for benchmarks: ``n_decayed`` intermediate pi0 entries then ``n_final`` final-state
    particles (a mix of pions, kaons, photons, leptons, protons, K_L, neutrons) with random mothers,
    isotropic momenta (exponential, mean 0.6 GeV) from the origin. Not physical; sized like
    hadronic events."""
    codes = np.array([211, -211, 211, -211, 321, -321, 22, 22, 22, 22, 11, -11, 13, -13, 2212, 130, 2112])
    per = n_final + n_decayed
    total = n * per
    local = np.arange(total) % per
    status = np.where(local < n_decayed, DECAYED, FINAL)
    pdg = np.where(status == DECAYED, pdgtab.PI0, rng.choice(codes, total))
    mother = np.where(local > 0, rng.integers(0, np.maximum(local, 1)), -1)
    mass, _ = pdgtab.lookup(pdg)
    momentum = rng.exponential(0.6, total)
    u = _isotropic(total, rng)
    zero = np.zeros(total)
    columns = {
        "pdg": pdg, "status": status, "mother": mother,
        "px": momentum * u[:, 0], "py": momentum * u[:, 1], "pz": momentum * u[:, 2],
        "E": np.sqrt(momentum**2 + mass**2), "mass": mass, "x": zero, "y": zero, "z": zero, "t": zero,
    }
    return _truth(columns, per, nominal_beams(experiment, n))
