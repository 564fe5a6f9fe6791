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
