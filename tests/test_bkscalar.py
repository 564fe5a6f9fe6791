"""bkscalar (issue 13): one signal sample per S decay, lifetime reweighting, the two-track vertex fit."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from belle_rare.configs.processes import forced_sub_branching_fraction, load_catalogue
from belle_rare.processors.lifetime import SCALAR_PDG, effective_fraction, lifetime_weight, proper_decay_length
from belle_rare.simulation.generators.pythia import scalar_settings
from tests.conftest import truth_sample

SCALAR_VARIANTS = {"sig_bkscalar_ee": 11, "sig_bkscalar_mumu": 13, "sig_bkscalar_pipi": 211, "sig_bkscalar_kk": 321}


def _mc_particles(truth: ak.Array) -> ak.Array:
    """The truth record under the ntuple's MCParticle names (what the processor reads)."""
    mc = truth.mc
    return ak.zip({"PDG": mc.pdg, "motherIndex": mc.mother, "px": mc.px, "py": mc.py, "pz": mc.pz, "mass": mc.mass,
                   "prodVertexX": mc.x, "prodVertexY": mc.y, "prodVertexZ": mc.z})


def _scalar_daughters(truth: ak.Array) -> ak.Array:
    mc = truth.mc
    mother = ak.where(mc.mother >= 0, mc.mother, 0)
    return mc[(mc.mother >= 0) & (mc.pdg[mother] == SCALAR_PDG)]


# ------------------------------------------------------------------ 1. one sample per S decay
@pytest.mark.parametrize("process, daughter", sorted(SCALAR_VARIANTS.items()))
def test_each_scalar_decay_has_its_own_sample_with_branching_fraction_one(process, daughter):
    proc = load_catalogue().get(process)
    lines = scalar_settings(proc, 2.5, 10.0)
    channels = [line for line in lines if "Channel" in line]
    assert channels == [f"{SCALAR_PDG}:oneChannel = 1 1.0 0 {daughter} -{daughter}"]
    # nothing to divide out of the limit: the sample is the S decay itself
    assert forced_sub_branching_fraction(process) == 1.0


def test_a_scalar_variant_only_decays_into_its_channel():
    truth = truth_sample("sig_bkscalar_pipi", events=300, mass=1.2, ctau=1.0)
    pdg = np.abs(ak.to_numpy(ak.flatten(_scalar_daughters(truth).pdg)))
    assert len(pdg) == 2 * 300 and set(np.unique(pdg)) == {211}


def test_a_closed_channel_is_a_clear_error():
    with pytest.raises(ValueError, match="no decay of S"):
        scalar_settings(load_catalogue().get("sig_bkscalar_kk"), 0.9, 1.0)


# ------------------------------------------------------------------ 2. lifetime reweighting
def test_proper_decay_length_follows_the_generated_lifetime():
    truth = truth_sample("sig_bkscalar_mumu", events=3000, mass=1.0, ctau=4.0)
    ct = proper_decay_length(_mc_particles(truth))
    assert not np.isnan(ct).any()
    # exponential: mean = c tau, its standard error c tau / sqrt(n)
    assert np.mean(ct) == pytest.approx(4.0, abs=3 * 4.0 / np.sqrt(len(ct)))


def test_weights_turn_one_exponential_into_another():
    rng = np.random.default_rng(3)
    ct = rng.exponential(20.0, 200_000)
    w = lifetime_weight(ct, 20.0, 5.0)
    assert np.mean(w) == pytest.approx(1.0, abs=0.01)  # normalised: sum w = N
    assert np.average(ct, weights=w) == pytest.approx(5.0, rel=0.01)
    assert np.average(ct > 10.0, weights=w) == pytest.approx(np.exp(-2.0), rel=0.03)
    # reweighting to tau1 > 2 tau0 has infinite variance: the effective sample collapses
    assert effective_fraction(lifetime_weight(ct, 20.0, 5.0)) > 0.3
    assert np.isnan(lifetime_weight(np.array([np.nan]), 20.0, 5.0)).sum() == 0
    with pytest.raises(ValueError):
        lifetime_weight(ct, 0.0, 5.0)


def _displaced_acceptance(truth: ak.Array) -> np.ndarray:
    """A truth-level displaced-vertex selection: S decay radius 0.5-30 cm, both daughters 32-150 deg."""
    daughters = _scalar_daughters(truth)
    rho = np.hypot(ak.to_numpy(ak.firsts(daughters.x)), ak.to_numpy(ak.firsts(daughters.y)))
    theta = np.degrees(np.arctan2(np.hypot(daughters.px, daughters.py), daughters.pz))
    inside = ak.to_numpy(ak.all((theta > 32.0) & (theta < 150.0), axis=1))
    return (rho > 0.5) & (rho < 30.0) & inside


def test_reweighted_sample_reproduces_a_directly_generated_lifetime():
    """One sample at c tau = 30 cm reweighted to 10 cm against one generated at 10 cm: the efficiency
    of a displaced-vertex selection agrees within statistics (the pull is below 3)."""
    n = 6000
    generated = truth_sample("sig_bkscalar_mumu", events=n, mass=1.0, ctau=30.0, seed=21)
    direct = truth_sample("sig_bkscalar_mumu", events=n, mass=1.0, ctau=10.0, seed=22)
    w = lifetime_weight(proper_decay_length(_mc_particles(generated)), 30.0, 10.0)
    passed = _displaced_acceptance(generated)
    eff_rw = np.sum(w * passed) / np.sum(w)
    err_rw = np.sqrt(np.sum((w * (passed - eff_rw)) ** 2)) / np.sum(w)
    direct_pass = _displaced_acceptance(direct)
    eff_direct = direct_pass.mean()
    err_direct = np.sqrt(eff_direct * (1 - eff_direct) / n)
    pull = (eff_rw - eff_direct) / np.hypot(err_rw, err_direct)
    assert abs(pull) < 3.0, (eff_rw, err_rw, eff_direct, err_direct)
    # and the selection does depend on the lifetime (the test can fail)
    assert abs(passed.mean() - eff_direct) > 5 * err_direct


# ------------------------------------------------------------------ 3. two-track vertex fit
def _synthetic_pairs(n: int, seed: int):
    """Pairs of straight tracks from known vertices, measured at the vertex (first layer) with the
    response's error model and extrapolated to the perigee: (true vertices, track parameters 1, 2)."""
    from belle_rare.processors.vertex_fit import TrackParameters, _model

    rng = np.random.default_rng(seed)
    rho, phi_v = rng.uniform(0.5, 40.0, n), rng.uniform(-np.pi, np.pi, n)
    vertex = np.stack([rho * np.cos(phi_v), rho * np.sin(phi_v), rng.uniform(-10, 10, n)], axis=1)
    tracks = []
    for _ in range(2):
        phi, tl, pt = phi_v + rng.uniform(-0.6, 0.6, n), rng.uniform(-1.0, 1.5, n), rng.uniform(0.2, 2.0, n)
        h, _ = _model(vertex, phi, tl)
        s_ref = vertex[:, 0] * np.cos(phi) + vertex[:, 1] * np.sin(phi)
        sig = np.stack([np.full(n, 30e-4), np.full(n, 40e-4), 2e-3 / pt, 3e-3 / pt], axis=1)  # a, b, phi, tanLambda
        jac = np.zeros((n, 4, 4))
        jac[:, 0, 0] = jac[:, 1, 2] = jac[:, 2, 1] = jac[:, 3, 3] = 1.0
        jac[:, 0, 2], jac[:, 2, 2], jac[:, 2, 3] = s_ref, tl * h[:, 0], -s_ref
        cov = jac @ (sig[:, :, None] ** 2 * np.eye(4)) @ np.transpose(jac, (0, 2, 1))
        noise = np.einsum("nij,nj->ni", np.linalg.cholesky(cov), rng.standard_normal((n, 4)))
        m = h + noise
        tracks.append(TrackParameters(m[:, 0], m[:, 1], m[:, 2], m[:, 3], cov, pt))
    return vertex, tracks[0], tracks[1]


def test_vertex_fit_chi2_and_pulls_are_standard():
    """chi^2 of the two-track fit has one degree of freedom (mean 1, 5 % above 3.84) and the vertex pulls
    have unit width: the fit uses the stored covariance correctly."""
    from belle_rare.processors.vertex_fit import fit_vertex

    vertex, t1, t2 = _synthetic_pairs(4000, seed=5)
    fit = fit_vertex(t1, t2)
    assert np.mean(fit.chi2) == pytest.approx(1.0, abs=0.1)
    assert np.mean(fit.chi2 > 3.84) == pytest.approx(0.05, abs=0.015)
    pulls = (fit.vertex - vertex) / np.sqrt(np.diagonal(fit.covariance, axis1=1, axis2=2))
    assert np.abs(np.mean(pulls, axis=0)).max() < 0.06
    assert np.std(pulls, axis=0) == pytest.approx([1.0, 1.0, 1.0], abs=0.06)
    # the displacement variables: d_v is the transverse radius, true pairs point back to the IP
    assert np.median(np.abs(fit.dv - np.hypot(vertex[:, 0], vertex[:, 1]))) < 0.05


def test_vertex_fit_rejects_tracks_that_do_not_meet():
    from belle_rare.processors.vertex_fit import TrackParameters, fit_vertex

    _, t1, t2 = _synthetic_pairs(500, seed=6)
    shifted = TrackParameters(t2.d0 + 0.5, t2.phi0, t2.z0 + 0.5, t2.tan_lambda, t2.covariance, t2.pt)  # 5 mm apart
    assert np.median(fit_vertex(t1, shifted).chi2) > 100 * np.median(fit_vertex(t1, t2).chi2)


@pytest.mark.parametrize("vertex", [(0.05, 0.02, 0.3), (3.0, 4.0, 2.0), (12.0, -9.0, 5.0)])
def test_stored_perigee_covariance_describes_the_track_errors(vertex):
    """Detector response: the perigee parameters of tracks born at ``vertex`` (prompt; between SVD layers;
    CDC only) scatter around the true straight line as the stored covariance says (chi^2 / 4 dof = 1),
    and displaced tracks' d0 errors grow with the extrapolation to the perigee."""
    from belle_rare.processors.vertex_fit import TrackParameters
    from belle_rare.simulation.detector import load_detector, simulate_detector, toy_truth

    rng = np.random.default_rng(8)
    n = 4000
    phi = rng.uniform(-np.pi, np.pi, n)
    truth = toy_truth.particle_gun(211, np.full(n, 1.0), np.full(n, np.radians(70.0)), phi, vertex=np.tile(vertex, (n, 1)))
    per_event = simulate_detector(truth, load_detector("belle2"), rng)["Track"]
    per_event = per_event[per_event.mcIndex == 0]
    found = ak.to_numpy(ak.num(per_event)) == 1
    tracks = ak.flatten(per_event[found])
    t = TrackParameters.from_columns({f: ak.to_numpy(tracks[f]) for f in ak.fields(tracks)})
    x, y, z = vertex
    true_phi, true_tl = phi[found], 1.0 / np.tan(np.radians(70.0))
    r = np.stack([t.d0 - (x * np.sin(true_phi) - y * np.cos(true_phi)), np.angle(np.exp(1j * (t.phi0 - true_phi))),
                  t.z0 - (z - (x * np.cos(true_phi) + y * np.sin(true_phi)) * true_tl), t.tan_lambda - true_tl], axis=1)
    chi2 = np.einsum("ni,nij,nj->n", r, np.linalg.inv(t.covariance), r)
    assert found.sum() > 0.5 * n
    assert np.mean(chi2) == pytest.approx(4.0, rel=0.06)
    d0_err = np.sqrt(t.covariance[:, 0, 0])
    if np.hypot(x, y) < 1.0:
        assert np.allclose(t.covariance[:, 0, 1], 0.0) and np.median(d0_err) < 0.005
    else:
        assert np.median(d0_err) > 0.01 and np.all(t.covariance[:, 0, 1] != 0.0)
