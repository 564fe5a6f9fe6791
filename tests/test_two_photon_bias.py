"""The tag-enhanced two-photon production (``eemumu_tagged``, issue 11): weights of mean 1 that give back the plain
generator's distributions, steered Q^2 proposals that keep the true density, and the catalogue entry."""

from __future__ import annotations

import numpy as np
import pytest

from belle_rare.configs.processes import Catalogue, load_catalogue
from belle_rare.simulation.generators import two_photon as tp

W_MIN = 0.5
BIAS = (0.97, 50.0, 1000.0)  # as configs/processes.yaml eemumu_tagged


@pytest.fixture(scope="module")
def samples() -> dict[str, tuple]:
    """40,000 plain and 40,000 tag-enhanced e e mu mu events at sqrt(s) spread as ISR would (7.6-10.6 GeV)."""
    sqrt_s = np.random.default_rng(1).uniform(7.6, 10.6, 40_000)
    plain = tp.sample_events(sqrt_s, 13, W_MIN, np.random.default_rng(2))
    biased, weight = tp.sample_tag_enhanced_events(sqrt_s, 13, W_MIN, np.random.default_rng(3), BIAS)
    return {"plain": (plain, np.ones(len(sqrt_s))), "biased": (biased, weight), "sqrt_s": sqrt_s}


def test_weights_average_to_one_and_enrich_the_tags(samples):
    (momenta, weight) = samples["biased"]
    assert weight.mean() == pytest.approx(1.0, abs=4 * weight.std() / np.sqrt(weight.size))
    assert abs(weight.mean() - 1.0) < 0.02
    n_tag = tp.tagged_leptons(momenta[0], momenta[1], BIAS[0])
    # weight x bias is the normalisation N(sqrt s), between 2 and 4 over this range (N = 1 without a bias)
    norm = tp.tag_normalisation(samples["sqrt_s"], W_MIN, 13, BIAS)
    np.testing.assert_allclose(weight * np.array([1.0, BIAS[1], BIAS[2]])[n_tag], norm, rtol=1e-12)
    assert 2.0 < norm.min() and norm.max() < 4.0
    plain_tags = tp.tagged_leptons(*samples["plain"][0][:2], BIAS[0])
    # the plain generator has ~2 % single and ~0.1 % double tags here; the enhanced one ~30 % and ~25 %
    assert np.mean(plain_tags == 2) < 0.005 and np.mean(n_tag == 2) > 0.15
    assert np.mean(n_tag == 1) > 10 * np.mean(plain_tags == 1)


def _pull_chi2(plain: tuple, biased: tuple, value, edges: np.ndarray) -> tuple[float, int, np.ndarray]:
    """chi^2 of the weighted per-event rates in ``edges`` bins of ``value(momenta)``, plain against biased."""
    rates = []
    for momenta, weight in (plain, biased):
        h, _ = np.histogram(value(momenta), edges, weights=weight)
        h2, _ = np.histogram(value(momenta), edges, weights=weight**2)
        rates.append((h / weight.size, np.sqrt(h2) / weight.size))
    (a, ea), (b, eb) = rates
    ok = (ea > 0) & (eb > 0)
    pulls = (a[ok] - b[ok]) / np.hypot(ea[ok], eb[ok])
    return float(np.sum(pulls**2)), int(ok.sum()), pulls


def _cos(p: np.ndarray) -> np.ndarray:
    return p[:, 2] / np.linalg.norm(p[:, :3], axis=1)


@pytest.mark.parametrize("name, value, edges", [
    # the scattered e-: forward peak (untagged) to the tracker (tagged), the bias's variable
    ("cos theta e-", lambda m: _cos(m[0]), np.array([-1, -0.97, -0.5, 0.0, 0.5, 0.9, 0.97, 0.995, 0.9995, 1.0])),
    ("cos theta e+", lambda m: _cos(m[1]), np.array([-1, -0.9995, -0.995, -0.97, -0.9, -0.5, 0.0, 0.5, 0.97, 1.0])),
    # the pair mass W and the muons' angle (what tau -> 3 mu sees of the pair)
    ("W", lambda m: np.sqrt(np.clip((m[2][:, 3] + m[3][:, 3])**2 - np.sum((m[2][:, :3] + m[3][:, :3])**2, axis=1), 0, None)),
     np.array([0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 11.0])),
    ("cos theta mu-", lambda m: _cos(m[2]), np.linspace(-1, 1, 11)),
    ("tags", lambda m: tp.tagged_leptons(m[0], m[1], BIAS[0]), np.array([-0.5, 0.5, 1.5, 2.5])),
])
def test_weighted_distributions_agree_with_the_plain_generator(samples, name, value, edges):
    chi2, ndf, pulls = _pull_chi2(samples["plain"], samples["biased"], value, edges)
    # chi^2 below its 99.9 % quantile (ndf <= 9: < 28), no single bin beyond 4 sigma
    assert chi2 < 28 and np.all(np.abs(pulls) < 4), (name, chi2, ndf, pulls)


def test_steered_q2_proposals_keep_the_budnev_density():
    """Weighted by r = true / proposal density, the steered Q^2 draws follow photon_density: E[r] = 1 and the
    weighted share above the tag threshold is the analytic one (the plain draws' share)."""
    rng = np.random.default_rng(7)
    x = np.full(200_000, 0.05)
    energy = 5.29
    q2, r = tp.sample_q2_steered(x, energy, BIAS[0], 0.5, rng)
    low = tp.tag_q2(x[:1], energy, BIAS[0])[0]
    assert r.mean() == pytest.approx(1.0, abs=4 * r.std() / np.sqrt(r.size))
    q2_min, q2_max = tp.q2_range(0.05, energy)
    analytic = float(tp._bracket_integral(0.05, low, q2_max) / tp._bracket_integral(0.05, q2_min, q2_max))
    above = q2 >= low
    assert np.mean(above) > 0.45  # half the proposals are steered there
    share = np.sum(r * above) / np.sum(r)
    assert share == pytest.approx(analytic, rel=0.01)
    plain = tp.sample_q2(x, np.full(x.size, q2_max), np.random.default_rng(8))
    assert np.mean(plain >= low) == pytest.approx(analytic, abs=4 * np.sqrt(analytic / plain.size))


def test_hit_or_miss_bound_holds_on_fresh_proposals():
    """The pilot's 1.5 x max of W x r x bias bounds 400,000 proposals of another stream (else hit-or-miss would clip)."""
    sqrt_s = 10.6
    bound = tp._tag_pilot(sqrt_s, W_MIN, 13, BIAS)[1]
    w, (e_minus, e_plus) = tp.sample_photons(np.full(400_000, sqrt_s), W_MIN, tp.LEPTON_MASS[13], np.random.default_rng(99),
                                             steer=(BIAS[0], tp.TAG_PROPOSAL_SHARE))
    assert np.max(w * tp.tag_bias(e_minus, e_plus, BIAS)) < bound / 1.2


def test_catalogue_entry_is_a_biased_eemumu():
    catalogue = load_catalogue()
    proc = catalogue.get("eemumu_tagged")
    assert proc.biased and proc.generator == "two_photon"
    assert catalogue.cross_section_keys("eemumu_tagged") == catalogue.cross_section_keys("eemumu")
    assert proc.parameters == catalogue.get("eemumu").parameters
    enh = proc.two_photon_tag_enhancement
    assert (enh.cos_theta_max, enh.factor, enh.double_factor) == BIAS
    raw = catalogue.model_dump()
    raw["processes"]["ee_tagged"] = {**raw["processes"]["ee"], "two_photon_tag_enhancement": {"cos_theta_max": 0.9, "factor": 2, "double_factor": 3}}
    with pytest.raises(ValueError, match=r"processes\.ee_tagged\.two_photon_tag_enhancement: only for the two_photon generator"):
        Catalogue.model_validate(raw)
