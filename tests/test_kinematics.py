"""Columnar kinematics (processors.kinematics, its four-vector primitives from core.fourvector) and
event shapes (processors.event_shape) against analytic cases: beams, boosts, M_bc / Delta E, recoil
mass, thrust, Fox-Wolfram R2."""

from __future__ import annotations

import itertools
import math

import awkward as ak
import numpy as np
import pytest
import vector
from particle import Particle

from belle_rare.configs.experiment import EXPERIMENTS, load_experiment
from belle_rare.core import fourvector as fv
from belle_rare.processors import event_shape as es
from belle_rare.processors import kinematics as kin

M_MU = Particle.from_name("mu-").mass / 1000.0  # MeV -> GeV
M_B0 = Particle.from_name("B0").mass / 1000.0
M_Y4S = Particle.from_name("Upsilon(4S)").mass / 1000.0
TIGHT = 1e-9


def beam_p4(experiment: str, n_events: int) -> kin.P4:
    """The configured total beam four-momentum, repeated per event as flat awkward arrays."""
    E, px, py, pz = load_experiment(experiment).total_four_momentum
    return kin.P4(*(ak.Array(np.full(n_events, c)) for c in (px, py, pz, E)))


def jagged(rows: list[list[float]]) -> ak.Array:
    return ak.Array([[float(x) for x in row] for row in rows])


def random_directions(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def two_body_momentum(m_parent: float, m1: float, m2: float) -> float:
    """|p| of either daughter in the parent rest frame."""
    return math.sqrt((m_parent**2 - (m1 + m2) ** 2) * (m_parent**2 - (m1 - m2) ** 2)) / (2 * m_parent)


# ---------------------------------------------------------------------------------------------
# beams and frames


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_beam_boosted_to_cm_is_at_rest_with_sqrt_s(experiment):
    exp = load_experiment(experiment)
    beam = beam_p4(experiment, 3)
    beta = kin.cm_boost(beam.E, beam.px, beam.py, beam.pz)
    np.testing.assert_allclose(np.stack([ak.to_numpy(b) for b in beta], axis=1), np.tile(exp.boost_vector, (3, 1)))
    px, py, pz, E = kin.to_cm(*beam, *beta)
    roots = kin.sqrt_s(beam.E, beam.px, beam.py, beam.pz)
    np.testing.assert_allclose(ak.to_numpy(roots), exp.sqrt_s, rtol=TIGHT)
    np.testing.assert_allclose(ak.to_numpy(E), exp.sqrt_s, rtol=TIGHT)
    for c in (px, py, pz):
        np.testing.assert_allclose(ak.to_numpy(c), 0.0, atol=TIGHT)


def test_boost_matches_vector_library():
    rng = np.random.default_rng(3)
    p = rng.normal(size=(50, 3))
    E = np.sqrt((p**2).sum(axis=1) + M_MU**2)
    beta = rng.uniform(-0.5, 0.5, size=(50, 3))
    ours = kin.boost(p[:, 0], p[:, 1], p[:, 2], E, beta[:, 0], beta[:, 1], beta[:, 2])
    # vector's boost_beta3(b) boosts the particle BY b; seen from a frame moving with b means -b
    ref = vector.array({"px": p[:, 0], "py": p[:, 1], "pz": p[:, 2], "E": E}).boost_beta3(
        vector.array({"x": -beta[:, 0], "y": -beta[:, 1], "z": -beta[:, 2]})
    )
    for a, b in zip(ours, (ref.px, ref.py, ref.pz, ref.E)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_to_cm_broadcasts_event_beta_onto_jagged_particles_and_round_trips():
    beam = beam_p4("belle", 4)
    beta = kin.cm_boost(beam.E, beam.px, beam.py, beam.pz)
    px = jagged([[1.0, -0.3], [], [0.2], [0.0, 0.5, -1.0]])
    py = jagged([[0.1, 0.4], [], [-0.7], [0.0, 0.5, 2.0]])
    pz = jagged([[2.0, 0.0], [], [3.1], [0.0, -4.0, 0.3]])
    E = np.sqrt(px**2 + py**2 + pz**2 + M_MU**2)
    cm = kin.to_cm(px, py, pz, E, *beta)
    assert ak.num(cm.E).tolist() == [2, 0, 1, 3]
    np.testing.assert_allclose(ak.flatten(kin.mass(*cm)), M_MU, rtol=1e-9)
    back = kin.to_lab(*cm, *beta)
    for a, b in zip(back, (px, py, pz, E)):
        np.testing.assert_allclose(ak.flatten(a), ak.flatten(b), atol=1e-12)


def test_zero_boost_is_identity():
    out = kin.boost(1.0, 2.0, 3.0, 5.0, 0.0, 0.0, 0.0)
    assert out == (1.0, 2.0, 3.0, 5.0)


def test_processors_kinematics_reexports_the_core_primitives():
    """One implementation: the detector simulation and the processors call the same functions."""
    for name in ("P4", "Vec3", "Array", "sqrt_s", "cm_boost", "boost", "to_cm", "to_lab", "p4_sum", "p4_add",
                 "momentum", "mass2", "mass", "invariant_mass", "cos_theta", "cos_angle", "angle_between"):
        assert getattr(kin, name) is getattr(fv, name), name


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_numpy_columns_with_a_constant_or_per_row_beta(experiment):
    """The simulation's use: numpy rows, the nominal CM velocity (scalars) or one velocity per row."""
    rng = np.random.default_rng(7)
    p = rng.normal(size=(200, 3))
    E = np.sqrt((p**2).sum(axis=1) + M_B0**2)
    beta = load_experiment(experiment).boost_vector
    cm = fv.to_cm(*p.T, E, *beta)
    np.testing.assert_allclose(fv.mass(*cm), M_B0, rtol=1e-12)
    for a, b in zip(fv.to_lab(*cm, *beta), (*p.T, E)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    per_row = rng.uniform(-0.6, 0.6, size=(200, 3))
    moved = np.stack(fv.boost(*p.T, E, *per_row.T), axis=1)
    # (gamma - 1) / beta^2 form of the same boost
    b2 = (per_row**2).sum(axis=1)
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = (per_row * p).sum(axis=1)
    ref_p = p + ((gamma - 1.0) / b2 * bp - gamma * E)[:, None] * per_row
    np.testing.assert_allclose(moved, np.column_stack([ref_p, gamma * (E - bp)]), rtol=1e-12, atol=1e-12)


def test_float32_columns_stay_float32_and_accurate():
    """Stored branches are float32: the boost keeps the dtype and loses no more than float32 rounding."""
    rng = np.random.default_rng(8)
    p = rng.normal(size=(1000, 3))
    E = np.sqrt((p**2).sum(axis=1) + M_MU**2)
    beta = load_experiment("belle2").boost_vector
    exact = fv.to_cm(*p.T, E, *beta)
    single = fv.to_cm(*p.T.astype(np.float32), E.astype(np.float32), *beta.astype(np.float32))
    for a, b in zip(single, exact):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# M_bc, Delta E


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_mbc_of_particle_at_rest_in_cm_is_half_sqrt_s(experiment):
    roots = load_experiment(experiment).sqrt_s
    mbc, de = kin.mbc_deltae(0.0, 0.0, 0.0, M_B0, roots)
    assert mbc == pytest.approx(roots / 2, rel=TIGHT)
    assert de == pytest.approx(M_B0 - roots / 2, rel=TIGHT)


def test_b_from_upsilon4s_has_mbc_mB_and_zero_delta_e():
    """Upsilon(4S) -> B Bbar built in the CM, sent to the lab with the Belle II boost and back."""
    rng = np.random.default_rng(5)
    n = 200
    p_star = two_body_momentum(M_Y4S, M_B0, M_B0)
    d = random_directions(rng, n) * p_star
    e_b = np.full(n, math.hypot(p_star, M_B0))
    bx, by, bz = load_experiment("belle2").boost_vector
    gamma = 1.0 / math.sqrt(1.0 - (bx * bx + by * by + bz * bz))
    beam = kin.P4(*(np.full(n, M_Y4S * gamma * c) for c in (bx, by, bz, 1.0)))
    lab = kin.to_lab(d[:, 0], d[:, 1], d[:, 2], e_b, bx, by, bz)
    beta = kin.cm_boost(beam.E, beam.px, beam.py, beam.pz)
    roots = kin.sqrt_s(*[beam.E, beam.px, beam.py, beam.pz])
    np.testing.assert_allclose(roots, M_Y4S, rtol=TIGHT)
    cm = kin.to_cm(*lab, *beta)
    mbc, de = kin.mbc_deltae(*cm, roots)
    np.testing.assert_allclose(mbc, M_B0, rtol=1e-9)
    np.testing.assert_allclose(de, 0.0, atol=1e-9)


def test_mbc_is_clipped_not_nan_and_delta_e_over_sqrt_s():
    roots = 10.58
    px, py, pz, E = (ak.Array(v) for v in ([6.0, 0.0], [0.0, 0.0], [0.0, 3.0], [6.0, 5.0]))
    mbc, _ = kin.mbc_deltae(px, py, pz, E, roots)
    assert mbc.tolist()[0] == 0.0
    assert mbc.tolist()[1] == pytest.approx(math.sqrt(5.29**2 - 9.0))
    assert kin.delta_e_over_sqrt_s(roots / 2, roots) == 0.0
    assert kin.delta_e_over_sqrt_s(roots / 2 + 0.1058, roots) == pytest.approx(0.01)


def test_mbc_on_jagged_candidates_with_empty_events():
    px = jagged([[0.0, 1.0], [], [2.0]])
    zeros = px * 0.0
    mbc, de = kin.mbc_deltae(px, zeros, zeros, zeros + 5.29, ak.Array([10.58, 10.58, 10.58]))
    assert ak.num(mbc).tolist() == [2, 0, 1]
    assert mbc[0, 0] == pytest.approx(5.29)
    assert de[2, 0] == pytest.approx(0.0)


# ---------------------------------------------------------------------------------------------
# masses, missing and recoil


def test_recoil_mass_of_mu_pair_gives_the_invisible_mass_in_lab_and_cm():
    """e+e- -> mu+ mu- X built by hand in the CM: X recoils against a mu pair of mass M."""
    rng = np.random.default_rng(7)
    n, m_x, m_pair = 100, 3.0, 4.0
    exp = load_experiment("belle2")
    roots = exp.sqrt_s
    # CM -> (mu mu) + X, back to back
    q = two_body_momentum(roots, m_pair, m_x)
    u = random_directions(rng, n)
    pair_p, pair_e = u * q, np.full(n, math.hypot(q, m_pair))
    # (mu mu) rest frame -> mu+ mu-, then into the CM with the pair's velocity
    k = two_body_momentum(m_pair, M_MU, M_MU)
    v = random_directions(rng, n) * k
    e_mu = np.full(n, math.hypot(k, M_MU))
    b = pair_p / pair_e[:, None]
    mu1 = kin.to_lab(v[:, 0], v[:, 1], v[:, 2], e_mu, b[:, 0], b[:, 1], b[:, 2])
    mu2 = kin.to_lab(-v[:, 0], -v[:, 1], -v[:, 2], e_mu, b[:, 0], b[:, 1], b[:, 2])
    np.testing.assert_allclose(kin.invariant_mass(mu1, mu2), m_pair, rtol=1e-9)
    # CM -> lab with the configured beams
    beam = beam_p4("belle2", n)
    beta = kin.cm_boost(beam.E, beam.px, beam.py, beam.pz)
    mu1_lab, mu2_lab = kin.to_lab(*mu1, *beta), kin.to_lab(*mu2, *beta)
    pair_lab = kin.p4_add(mu1_lab, mu2_lab)
    np.testing.assert_allclose(kin.recoil_mass(beam, pair_lab), m_x, rtol=1e-7)
    np.testing.assert_allclose(kin.recoil_mass2(beam, pair_lab), m_x**2, rtol=1e-7)
    # same invariant from CM-frame quantities
    beam_cm = kin.P4(0.0, 0.0, 0.0, roots)
    np.testing.assert_allclose(kin.recoil_mass(beam_cm, kin.p4_add(mu1, mu2)), m_x, rtol=1e-7)
    # the missing four-momentum is the X itself
    miss = kin.missing_four_momentum(beam, pair_lab)
    x_cm = kin.to_cm(*miss, *beta)
    np.testing.assert_allclose(np.stack(x_cm[:3], axis=1), -pair_p, atol=1e-9)


def test_missing_mass_and_sums_on_jagged_collections():
    beam = kin.P4(ak.Array([0.0, 0.0]), ak.Array([0.0, 0.0]), ak.Array([0.0, 0.0]), ak.Array([10.0, 10.0]))
    px = jagged([[3.0, -3.0], []])
    zeros = px * 0.0
    E = abs(px)
    visible = kin.p4_sum(px, zeros, zeros, E)
    assert visible.E.tolist() == [6.0, 0.0]
    assert ak.to_list(kin.missing_mass2(beam, visible)) == [16.0, 100.0]
    # negative missing mass squared stays signed; recoil_mass clips at 0
    assert kin.missing_mass2(kin.P4(0.0, 0.0, 0.0, 1.0), kin.P4(2.0, 0.0, 0.0, 0.0)) == -3.0
    assert kin.recoil_mass(kin.P4(0.0, 0.0, 0.0, 1.0), kin.P4(2.0, 0.0, 0.0, 0.0)) == 0.0


def test_invariant_mass_of_summed_vectors():
    # two photons of 1 GeV at 90 degrees: m^2 = 2 E1 E2 (1 - cos) = 2
    g1, g2 = kin.P4(1.0, 0.0, 0.0, 1.0), kin.P4(0.0, 1.0, 0.0, 1.0)
    assert kin.invariant_mass(g1, g2) == pytest.approx(math.sqrt(2.0))
    with pytest.raises(ValueError):
        kin.p4_add()


def test_angles():
    assert kin.cos_theta(0.0, 0.0, 2.0) == 1.0
    assert kin.cos_theta(1.0, 0.0, 1.0) == pytest.approx(math.sqrt(0.5))
    assert math.isnan(kin.cos_theta(0.0, 0.0, 0.0))
    a, b = kin.Vec3(1.0, 0.0, 0.0), kin.Vec3(1.0, 1.0, 0.0)
    assert kin.cos_angle(a, b) == pytest.approx(math.sqrt(0.5))
    assert kin.angle_between(a, b) == pytest.approx(math.pi / 4)
    # parallel vectors: rounding never pushes |cos| above 1 (arccos would give NaN)
    v = kin.Vec3(0.1, 0.2, 0.3)
    assert kin.angle_between(v, kin.Vec3(0.3, 0.6, 0.9)) == pytest.approx(0.0, abs=1e-7)
    # P4 arguments use their momentum part; jagged against flat broadcasts
    tracks = kin.P4(*(jagged(rows) for rows in ([[1.0, 0.0], []], [[0.0, 1.0], []], [[0.0, 0.0], []], [[1.0, 1.0], []])))
    axis = kin.Vec3(ak.Array([1.0, 1.0]), ak.Array([0.0, 0.0]), ak.Array([0.0, 0.0]))
    assert ak.to_list(kin.cos_angle(tracks, axis)) == [[1.0, 0.0], []]


# ---------------------------------------------------------------------------------------------
# thrust, hemispheres, Fox-Wolfram


def exact_thrust(p: np.ndarray) -> float:
    """Brute force over all sign assignments: T = max |sum s_i p_i| / sum |p_i|."""
    combos = list(itertools.product((1.0, -1.0), repeat=len(p) - 1))
    # the first sign stays +: s and -s give the same |sum|
    signs = np.hstack([np.ones((len(combos), 1)), np.array(combos, dtype=float).reshape(len(combos), len(p) - 1)])
    return float(np.linalg.norm(signs @ p, axis=1).max() / np.linalg.norm(p, axis=1).sum())


def event_arrays(events: list[np.ndarray]) -> tuple[ak.Array, ak.Array, ak.Array]:
    counts = [len(e) for e in events]
    flat = np.concatenate([np.asarray(e, dtype=float).reshape(-1, 3) for e in events])
    return tuple(ak.unflatten(flat[:, i], counts) for i in range(3))  # type: ignore[return-value]


def test_back_to_back_pair_has_thrust_one_along_the_pair():
    d = np.array([0.3, -0.4, 0.866])
    d /= np.linalg.norm(d)
    events = [np.array([2.5 * d, -2.5 * d]), np.array([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]])]
    px, py, pz = event_arrays(events)
    axis, thrust = es.thrust_axis(px, py, pz)
    np.testing.assert_allclose(thrust, 1.0, rtol=1e-12)
    np.testing.assert_allclose([axis.x[0], axis.y[0], axis.z[0]], d, atol=1e-12)  # z > 0 convention
    np.testing.assert_allclose([axis.x[1], axis.y[1], axis.z[1]], [0.0, 0.0, 1.0], atol=1e-12)
    assert ak.to_list(es.hemisphere(px, py, pz, axis)) == [[1, -1], [-1, 1]]
    np.testing.assert_allclose(es.fox_wolfram_r2(px, py, pz), 1.0, rtol=1e-12)


def test_collinear_momenta_have_thrust_one_without_any_plane_to_enumerate():
    """Every pair collinear: the exact step has no plane through two momenta, the hardest-momentum seed finds the axis."""
    d = np.array([0.6, 0.0, 0.8])
    px, py, pz = event_arrays([np.array([1.5 * d, -0.4 * d, -2.0 * d, 0.7 * d])])
    axis, thrust = es.thrust_axis(px, py, pz)
    assert thrust[0] == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose([axis.x[0], axis.y[0], axis.z[0]], d, atol=1e-12)


def test_three_coplanar_momenta_at_120_degrees_have_thrust_two_thirds():
    angles = np.deg2rad([10.0, 130.0, 250.0])
    p = 1.7 * np.stack([np.cos(angles), np.sin(angles), np.zeros(3)], axis=1)
    px, py, pz = event_arrays([p])
    axis, thrust = es.thrust_axis(px, py, pz)
    assert thrust[0] == pytest.approx(2.0 / 3.0, rel=1e-12)
    n = np.array([axis.x[0], axis.y[0], axis.z[0]])
    # the maximum is reached along any of the three momenta
    assert np.max(np.abs(p @ n) / 1.7) == pytest.approx(1.0, rel=1e-12)
    # Fox-Wolfram: sum_ij P2(cos theta_ij) with cos = 1 (x3) and -1/2 (x6) -> H2/H0 = 1/4
    assert es.fox_wolfram_r2(px, py, pz)[0] == pytest.approx(0.25, rel=1e-12)


def test_six_momenta_along_the_axes_are_isotropic():
    """+-x, +-y, +-z: T = max(|n_x|+|n_y|+|n_z|) / 3 = 1/sqrt(3), along a cube diagonal; R2 = 0."""
    p = np.vstack([np.eye(3), -np.eye(3)]) * 0.8
    px, py, pz = event_arrays([p])
    axis, thrust = es.thrust_axis(px, py, pz)
    assert thrust[0] == pytest.approx(1.0 / math.sqrt(3.0), rel=1e-12)
    np.testing.assert_allclose(np.abs([axis.x[0], axis.y[0], axis.z[0]]), 1.0 / math.sqrt(3.0), rtol=1e-12)
    assert es.fox_wolfram_r2(px, py, pz)[0] == pytest.approx(0.0, abs=1e-12)


def test_thrust_matches_brute_force_on_random_events():
    rng = np.random.default_rng(11)
    events = [rng.normal(size=(n, 3)) for n in rng.integers(1, 10, size=300)]
    px, py, pz = event_arrays(events)
    exact = np.array([exact_thrust(p) for p in events])
    axis, thrust = es.thrust_axis(px, py, pz)
    np.testing.assert_allclose(thrust, exact, rtol=1e-12)
    # the returned axis reproduces the returned value, and is a unit vector with z >= 0
    np.testing.assert_allclose(es.thrust_along(px, py, pz, axis), thrust, rtol=1e-12)
    np.testing.assert_allclose(axis.x**2 + axis.y**2 + axis.z**2, 1.0, rtol=1e-12)
    assert ak.all(axis.z >= 0.0)
    # the iterative seeds alone (no exact enumeration) never exceed the maximum and come close
    _, approx = es.thrust_axis(px, py, pz, exact_max=0)
    assert np.all(ak.to_numpy(approx) <= exact + 1e-12)
    assert np.all(ak.to_numpy(approx) >= 0.98 * exact)
    assert np.all((exact >= 0.5 - 1e-12) & (exact <= 1.0 + 1e-12))


def test_thrust_is_rotation_invariant_and_the_axis_rotates():
    rng = np.random.default_rng(13)
    events = [rng.normal(size=(n, 3)) for n in (4, 7, 25, 40)]
    c, s = math.cos(0.7), math.sin(0.7)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    a0, t0 = es.thrust_axis(*event_arrays(events))
    a1, t1 = es.thrust_axis(*event_arrays([p @ rot.T for p in events]))
    np.testing.assert_allclose(t1, t0, rtol=1e-12)
    n0 = np.stack([ak.to_numpy(a) for a in a0], axis=1) @ rot.T
    n1 = np.stack([ak.to_numpy(a) for a in a1], axis=1)
    np.testing.assert_allclose(np.abs(np.sum(n0 * n1, axis=1)), 1.0, rtol=1e-9)


def test_two_jets_split_into_hemispheres():
    rng = np.random.default_rng(17)
    jet = np.array([0.0, 0.6, 0.8])
    a = jet * rng.uniform(0.5, 2.0, size=(5, 1)) + rng.normal(scale=0.05, size=(5, 3))
    b = -jet * rng.uniform(0.5, 2.0, size=(4, 1)) + rng.normal(scale=0.05, size=(4, 3))
    px, py, pz = event_arrays([np.vstack([a, b])])
    axis, thrust = es.thrust_axis(px, py, pz)
    assert thrust[0] > 0.95
    assert ak.to_list(es.hemisphere(px, py, pz, axis)) == [[1] * 5 + [-1] * 4]
    assert es.cos_theta_thrust(axis, kin.Vec3(*jet)).tolist()[0] > 0.99


def test_empty_and_degenerate_events_do_not_crash():
    px = jagged([[], [1.0], [0.0, 0.0], [], [1.0, -1.0]])
    py = jagged([[], [0.0], [0.0, 0.0], [], [0.0, 0.0]])
    pz = jagged([[], [0.0], [0.0, 0.0], [], [0.0, 0.0]])
    axis, thrust = es.thrust_axis(px, py, pz)
    t = ak.to_numpy(thrust)
    assert np.isnan(t[[0, 2, 3]]).all()
    assert t[1] == 1.0 and t[4] == 1.0
    assert np.isnan(ak.to_numpy(axis.x)[[0, 2, 3]]).all()
    assert ak.to_list(es.hemisphere(px, py, pz, axis)) == [[], [1], [0, 0], [], [1, -1]]
    r2 = ak.to_numpy(es.fox_wolfram_r2(px, py, pz))
    assert np.isnan(r2[[0, 2, 3]]).all() and r2[1] == pytest.approx(1.0)
    # no events at all
    none = ak.Array(np.zeros(0)).layout
    empty = ak.unflatten(ak.Array(none), np.zeros(0, dtype=np.int64))
    axis, thrust = es.thrust_axis(empty, empty, empty)
    assert len(thrust) == 0 and len(axis.x) == 0
    assert len(es.fox_wolfram_r2(empty, empty, empty)) == 0


def test_cos_theta_thrust_ignores_the_axis_sign():
    a = kin.Vec3(ak.Array([0.0, 1.0]), ak.Array([0.0, 0.0]), ak.Array([1.0, 0.0]))
    b = kin.Vec3(ak.Array([0.0, 0.0]), ak.Array([0.0, 1.0]), ak.Array([-1.0, 0.0]))
    np.testing.assert_allclose(es.cos_theta_thrust(a, b), [1.0, 0.0], atol=1e-15)


def test_thrust_rejects_bad_settings():
    px = jagged([[1.0]])
    with pytest.raises(ValueError, match="n_seed"):
        es.thrust_axis(px, px, px, n_seed=0)
