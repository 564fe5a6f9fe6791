"""ECL and KLM response: resolution, regions and gaps, threshold, track-cluster matching, K_L, background."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from belle_rare.simulation.detector import load_detector, simulate_detector
from belle_rare.simulation.detector import toy_truth
from belle_rare.simulation.detector.material import pair_cross_section_ratio

N = 20000


def _gun(pdg, momentum, theta_deg, name="belle2", seed=0, n=N):
    rng = np.random.default_rng(seed)
    truth = toy_truth.particle_gun(
        pdg, np.full(n, momentum), np.full(n, np.radians(theta_deg)), rng.uniform(-np.pi, np.pi, n), experiment=name
    )
    return simulate_detector(truth, load_detector(name), rng)


def _signal(collection):
    return ak.flatten(collection[collection.mcIndex == 0])


@pytest.mark.parametrize("name", ["belle", "belle2"])
def test_photon_energy_resolution_in_the_barrel(name):
    photons = _signal(_gun(22, 1.0, 90.0, name, seed=1)["Photon"])
    # photons converted in the material (material.py) leave e+- clusters instead: unconverted ones only
    photons = photons[photons.mcPDG == 22]
    cfg = load_detector(name).calorimeter
    r = cfg.energy_resolution
    expected = np.sqrt(r.noise**2 + r.stochastic**2 + r.constant**2)  # at E = 1 GeV
    if cfg.energy_tail is not None:  # sigma is the Novosibirsk width (FWHM / 2.355): its RMS, analytically
        # (x = sigma (e^(tau u) - 1) / (tau q), u ~ N(tau, 1): e^(tau u) log-normal)
        tau = cfg.energy_tail.tail
        q = np.sinh(tau * np.sqrt(np.log(4))) / (tau * np.sqrt(np.log(4)))
        expected *= np.sqrt(np.expm1(tau**2) * np.exp(3 * tau**2)) / (abs(tau) * q)
    energy = ak.to_numpy(photons.E)
    assert abs(np.std(energy - 1.0) / expected - 1) < 0.05
    unconverted = np.exp(-7.0 / 9.0 * sum(layer.thickness_x0 * pair_cross_section_ratio(np.array(1.0), layer.atomic_number)
                                           for layer in load_detector(name).material.layers))
    assert abs(len(energy) / N - cfg.photon_efficiency * unconverted) < 0.01
    assert np.all(ak.to_numpy(photons.clusterReg) == 2)
    assert abs(np.mean(ak.to_numpy(photons.clusterE9E21)) - 0.95) < 0.02
    # massless, pointing from the IP
    p = np.sqrt(ak.to_numpy(photons.px) ** 2 + ak.to_numpy(photons.py) ** 2 + ak.to_numpy(photons.pz) ** 2)
    np.testing.assert_allclose(p, energy, rtol=1e-5)


def test_regions_gaps_and_acceptance():
    cfg = load_detector("belle2").calorimeter
    for theta, region in ((20.0, 1), (90.0, 2), (140.0, 3), (31.8, 11), (129.7, 13)):
        photons = _signal(_gun(22, 1.0, theta, seed=2, n=4000)["Photon"])
        # photons converted in the material leave e+- / brems clusters that can cross a region boundary
        photons = photons[photons.mcPDG == 22]
        assert np.all(ak.to_numpy(photons.clusterReg) == region), theta
        if region in (11, 13):
            layers = [layer for layer in load_detector("belle2").material.layers
                      if layer.theta_range_deg.low <= theta <= layer.theta_range_deg.high]
            unconverted = np.exp(-7.0 / 9.0 * sum(
                layer.thickness_x0 * pair_cross_section_ratio(np.array(1.0), layer.atomic_number) for layer in layers
            ) / np.sin(np.radians(theta)))
            assert abs(len(photons) / 4000 - cfg.photon_efficiency * cfg.gap.efficiency * unconverted) < 0.03
            assert abs(np.median(ak.to_numpy(photons.E)) - cfg.gap.energy_scale) < 0.02
    for theta in (8.0, 160.0):
        assert len(_signal(_gun(22, 1.0, theta, seed=3, n=2000)["Photon"])) == 0


def test_cluster_threshold():
    cfg = load_detector("belle2").calorimeter
    photons = _signal(_gun(22, 0.5 * cfg.cluster_threshold, 90.0, seed=4, n=4000)["Photon"])
    assert len(photons) == 0


def test_track_clusters_by_species():
    reco = _gun(11, 2.0, 90.0, seed=5)
    electrons = _signal(reco["Track"])
    eop = ak.to_numpy(electrons.EoverP)
    assert 0.95 < np.median(eop) < 1.01
    np.testing.assert_allclose(ak.to_numpy(electrons.clusterE), eop * np.sqrt(
        ak.to_numpy(electrons.px) ** 2 + ak.to_numpy(electrons.py) ** 2 + ak.to_numpy(electrons.pz) ** 2), rtol=1e-4)
    # matched clusters do not appear as photons: the electron's photons are its brems photons (material.py),
    # P(k > k0) = sum t/ln2 (ln(E/k0) - Euler gamma) for the Bethe-Heitler spectrum of thin layers
    t = sum(layer.thickness_x0 for layer in load_detector("belle2").material.layers)
    k0 = load_detector("belle2").calorimeter.cluster_threshold
    brems = N * t / np.log(2.0) * (np.log(2.0 / k0) - np.euler_gamma) * load_detector("belle2").calorimeter.photon_efficiency
    assert abs(len(_signal(reco["Photon"])) / brems - 1) < 0.2
    muons = _signal(_gun(13, 2.0, 90.0, seed=6)["Track"])
    mip = load_detector("belle2").calorimeter.mip
    assert abs(np.median(ak.to_numpy(muons.clusterE)) - mip.mean) < 0.02
    assert np.median(ak.to_numpy(muons.EoverP)) < 0.2
    pions = _signal(_gun(211, 2.0, 90.0, seed=7)["Track"])
    showers = np.mean(ak.to_numpy(pions.clusterE) > 0.4)
    assert 0.3 < showers < 0.6
    # curlers below the barrel's reach leave no cluster
    slow = _signal(_gun(211, 0.2, 90.0, seed=8, n=4000)["Track"])
    assert np.all(ak.to_numpy(slow.clusterE) == 0)


def test_klong_clusters():
    params = load_detector("belle2")
    reco = _gun(130, 2.5, 90.0, seed=9)
    klm = _signal(reco["KLMCluster"])
    expected = params.klm.clusters.klong_efficiency(np.array([2.5]))[0]
    assert abs(len(klm) / N - expected) < 4 * np.sqrt(expected * (1 - expected) / N)
    assert np.all(ak.to_numpy(klm.mcPDG) == 130)
    layers = ak.to_numpy(klm.layers)
    assert np.all((layers >= 1) & (layers <= params.klm.n_layers))
    assert np.all(ak.to_numpy(klm.innermostLayer) + layers - 1 <= params.klm.n_layers)
    assert abs(np.median(ak.to_numpy(klm.theta)) - np.pi / 2) < 0.01
    ecl = _signal(reco["Photon"])
    # the primary K_L cluster (split-offs, with the same truth, come only with it)
    has_cluster = ak.num(reco["Photon"][reco["Photon"].mcIndex == 0]) > 0
    assert abs(np.mean(ak.to_numpy(has_cluster)) - params.calorimeter.klong.probability) < 0.03
    assert np.mean(ak.to_numpy(ecl.clusterE9E21)) < 0.8  # hadronic showers are wide


def test_beam_background_photons():
    """Spectrum, regions and timing of the overlaid clusters: a neutrino gun leaves only background."""
    params = load_detector("belle2")
    cfg, cal = params.beam_background.photons, params.calorimeter
    reco = _gun(12, 1.0, 90.0, seed=10)
    photons = ak.flatten(reco["Photon"])
    assert np.all(ak.to_numpy(photons.mcIndex) == -1) and np.all(ak.to_numpy(photons.mcPDG) == 0)
    energy = ak.to_numpy(photons.E)
    timing = ak.to_numpy(photons.clusterTiming)
    t99 = ak.to_numpy(photons.clusterErrorTiming)
    # above 100 MeV no in-time cut: count = mean * P(E > 0.1) of the power law (smearing ~4 %: small)
    a = 1.0 - cfg.energy_power
    p_above = (0.1**a - cfg.energy_max**a) / (cfg.energy_min**a - cfg.energy_max**a)
    assert abs(np.sum(energy > 0.1) / N / (cfg.mean * p_above) - 1) < 0.05
    # flat in time over the window: mean |t| = window / 2 above the in-time cut energy
    window = cal.timing.background_window
    assert abs(np.mean(np.abs(timing[energy > 0.06])) / (window / 2) - 1) < 0.03
    # the reconstruction's in-time cut: soft clusters survive only inside t99 (ECLFinalizer)
    soft = energy < cal.timing.in_time_below
    assert np.all(np.abs(timing[soft]) < t99[soft])
    assert 0.0 < soft.mean() < 0.5
    # mostly in the endcaps
    region = ak.to_numpy(photons.clusterReg)
    assert np.mean((region == 1) | (region == 3)) > 0.7


def test_power_law_spectrum():
    from belle_rare.simulation.detector.beam_background import power_law_energies

    e = power_law_energies(200000, 0.02, 1.0, 2.5, np.random.default_rng(3))
    assert e.min() >= 0.02 and e.max() <= 1.0
    # median of E^-2.5 on [0.02, inf): 0.02 * 2^(1/1.5); the cap at 1 GeV changes it by < 1e-3
    assert abs(np.median(e) / (0.02 * 2 ** (1 / 1.5)) - 1) < 0.01


def test_belle_has_no_in_time_cut():
    params = load_detector("belle")
    assert params.calorimeter.timing.in_time_below is None
    photons = ak.flatten(_gun(12, 1.0, 90.0, name="belle", seed=11, n=5000)["Photon"])
    energy = ak.to_numpy(photons.E)
    timing = ak.to_numpy(photons.clusterTiming)
    t99 = ak.to_numpy(photons.clusterErrorTiming)
    assert np.any((energy < 0.05) & (np.abs(timing) > t99))


def _pions(n: int, momentum: float, seed: int = 0):
    """A synthetic Particles table: one pi+ per event at 90 deg from the IP."""
    from belle_rare.simulation.detector.flat import Particles

    rng = np.random.default_rng(seed)
    phi = rng.uniform(-np.pi, np.pi, n)
    zero, mass = np.zeros(n), np.full(n, 0.13957)
    px, py = momentum * np.cos(phi), momentum * np.sin(phi)
    return Particles(
        event=np.arange(n), mc_index=np.full(n, 3, np.int32), mc_pdg=np.full(n, 211, np.int32),
        pdg=np.full(n, 211, np.int32), mother=np.full(n, -1, np.int32), charge=np.ones(n), mass=mass,
        px=px, py=py, pz=zero, E=np.sqrt(momentum**2 + mass**2), x=zero, y=zero, z=zero,
        background=np.zeros(n, dtype=bool),
    )


def test_split_off_statistics():
    """Multiplicity, spectrum, distance and energy bookkeeping of split-offs of 2 GeV pions."""
    from belle_rare.simulation.detector.calorimeter import ecl_response, photon_columns, photon_rows

    params = load_detector("belle2")
    cal = params.calorimeter
    so = cal.split_off
    n = 40000
    p = _pions(n, 2.0, seed=4)
    clusters = ecl_response(p, cal, params.tracking.magnetic_field, np.random.default_rng(5))
    split = clusters.split_off
    parent = clusters.row[split]
    # multiplicity: Poisson(mean) per shower, ~1 % lost to the in-time cut below 50 MeV
    expected = so.mean_multiplicity * cal.hadron_shower.probability * n
    assert abs(split.sum() / expected - 0.995) < 4 / np.sqrt(expected) + 0.01
    assert np.all(clusters.exists[parent])  # only showers with a cluster split (MIPs: see the muon test)
    # spectrum: threshold + exponential(energy_mean), where the cap (a share of the shower) cannot act
    taken = np.bincount(parent, clusters.energy[split], n)
    big = (clusters.energy[:n] + taken)[parent] > 1.0
    excess = clusters.energy[split][big] - cal.cluster_threshold
    assert abs(np.mean(excess) / so.energy_mean - 1) < 4 / np.sqrt(big.sum()) + 0.01
    # distance from the parent cluster: min_angle + exponential(angle_scale)
    u = np.stack([np.sin(clusters.theta) * np.cos(clusters.phi), np.sin(clusters.theta) * np.sin(clusters.phi),
                  np.cos(clusters.theta)])
    angle = np.arccos(np.clip(np.sum(u[:, split] * u[:, parent], axis=0), -1, 1))
    assert np.all(angle >= so.min_angle - 1e-9)
    assert abs(np.mean(angle) / (so.min_angle + so.angle_scale) - 1) < 0.05
    # the parent keeps at least 1 - max_energy_fraction of its shower
    with_split = taken > 0
    share = taken[with_split] / (taken[with_split] + clusters.energy[:n][with_split])
    assert np.all(share <= so.max_energy_fraction + 1e-9)
    # in the Photon collection (never matched to the track) with the parent's truth
    entries = photon_rows(clusters, np.arange(n))  # every pion tracked: only split-offs remain
    columns = photon_columns(p, clusters, entries)
    assert len(entries) == split.sum()
    assert np.all(columns["mcIndex"] == 3) and np.all(columns["mcPDG"] == 211)
    assert np.all(np.diff(p.event[clusters.row[entries]]) >= 0)  # grouped by event


def test_no_split_offs_of_photons_or_muons():
    from belle_rare.simulation.detector.calorimeter import ecl_response

    params = load_detector("belle2")
    p = _pions(5000, 2.0, seed=6)
    p.pdg[:] = 13
    clusters = ecl_response(p, params.calorimeter, params.tracking.magnetic_field, np.random.default_rng(7))
    assert not clusters.split_off.any()


# ------------------------------------------------------------------------------ E_ECL^extra
def _cuts(**kwargs):
    from belle_rare.processors.extra_energy import ExtraEnergyCuts

    # Belle goodBelleGamma: forward / barrel / backward > 100 / 50 / 150 MeV (basf2 ECLVariables)
    return ExtraEnergyCuts.model_validate({"thresholds": {"forward": 0.10, "barrel": 0.05, "backward": 0.15}, **kwargs})


def _photons():
    return ak.Array([
        [  # event 0: one cluster per region just above and below its threshold, one gap cluster
            {"E": 0.11, "clusterReg": 1, "clusterTiming": 0.0, "clusterErrorTiming": 10.0},
            {"E": 0.09, "clusterReg": 1, "clusterTiming": 0.0, "clusterErrorTiming": 10.0},
            {"E": 0.06, "clusterReg": 2, "clusterTiming": 0.0, "clusterErrorTiming": 10.0},
            {"E": 0.04, "clusterReg": 2, "clusterTiming": 0.0, "clusterErrorTiming": 10.0},
            {"E": 0.16, "clusterReg": 3, "clusterTiming": 0.0, "clusterErrorTiming": 10.0},
            {"E": 0.14, "clusterReg": 3, "clusterTiming": 0.0, "clusterErrorTiming": 10.0},
            {"E": 0.50, "clusterReg": 11, "clusterTiming": 0.0, "clusterErrorTiming": 10.0},
        ],
        [],  # event 1: nothing
        [  # event 2: a used cluster, an out-of-time one, one 3 t99 away
            {"E": 1.00, "clusterReg": 2, "clusterTiming": 1.0, "clusterErrorTiming": 5.0},
            {"E": 0.30, "clusterReg": 2, "clusterTiming": 500.0, "clusterErrorTiming": 5.0},
            {"E": 0.20, "clusterReg": 2, "clusterTiming": 15.0, "clusterErrorTiming": 5.0},
        ],
    ])


def test_extra_energy_thresholds_and_regions():
    from belle_rare.processors.extra_energy import extra_energy, n_extra_clusters

    e = extra_energy(_photons(), None, _cuts())
    np.testing.assert_allclose(ak.to_numpy(e), [0.11 + 0.06 + 0.16, 0.0, 1.5])
    np.testing.assert_array_equal(ak.to_numpy(n_extra_clusters(_photons(), None, _cuts())), [3, 0, 3])
    # gap clusters count only when a gap threshold is given
    cuts = _cuts(thresholds={"forward": 0.10, "barrel": 0.05, "backward": 0.15, "gap": 0.2})
    assert abs(ak.to_numpy(extra_energy(_photons(), None, cuts))[0] - (0.33 + 0.5)) < 1e-6


def test_extra_energy_used_mask_and_timing():
    from belle_rare.processors.extra_energy import extra_energy

    photons = _photons()
    used = ak.Array([[False] * 7, [], [True, False, False]])
    np.testing.assert_allclose(ak.to_numpy(extra_energy(photons, used, _cuts())), [0.33, 0.0, 0.5])
    timed = _cuts(max_abs_timing=200.0)
    np.testing.assert_allclose(ak.to_numpy(extra_energy(photons, used, timed)), [0.33, 0.0, 0.2])
    significance = _cuts(max_timing_significance=2.0)
    np.testing.assert_allclose(ak.to_numpy(extra_energy(photons, used, significance)), [0.33, 0.0, 0.0])


def test_extra_energy_config_errors():

    with pytest.raises(ValueError):  # pydantic ValidationError; ConfigError when read from a file
        _cuts(thresholds={"forward": 0.1, "barrel": 0.05})
    with pytest.raises(KeyError):
        from belle_rare.processors.extra_energy import extra_energy

        photons = ak.Array([[{"E": 0.2, "clusterReg": 2, "clusterTiming": 0.0}]])
        extra_energy(photons, None, _cuts(max_timing_significance=2.0))


def _power_law_energy_above(threshold: float, cfg) -> float:
    """Mean energy per cluster carried above ``threshold`` by the truncated power law (analytic)."""
    n, lo, hi = cfg.energy_power, cfg.energy_min, cfg.energy_max
    norm = (1 - n) / (hi ** (1 - n) - lo ** (1 - n))
    return norm * (hi ** (2 - n) - threshold ** (2 - n)) / (2 - n)


@pytest.mark.parametrize("name, timing, cuts", [
    ("belle", {}, {"forward": 0.10, "barrel": 0.05, "backward": 0.15}),  # goodBelleGamma, no time at Belle
    ("belle2", {"max_abs_timing": 200.0}, {"forward": 0.10, "barrel": 0.09, "backward": 0.16}),  # goodGamma
])
def test_extra_energy_of_beam_background_is_the_analytic_one(name, timing, cuts):
    """Neutrino gun: E_extra is beam background only; its mean follows from the configured
    multiplicity, region shares, power-law spectrum and (Belle II) the flat timing."""
    from belle_rare.processors.extra_energy import ExtraEnergyCuts, extra_energy

    params = load_detector(name)
    cfg = params.beam_background.photons
    photons = _gun(12, 1.0, 90.0, name=name, seed=12)["Photon"]
    e = ak.to_numpy(extra_energy(photons, None, ExtraEnergyCuts.model_validate({"thresholds": cuts, **timing})))
    shares = dict(zip(("forward", "barrel", "backward"), cfg.region_fractions))
    expected = cfg.mean * sum(share * _power_law_energy_above(cuts[r], cfg) for r, share in shares.items())
    if timing:  # flat in +-window: the fraction inside +-200 ns (all thresholds are above the in-time cut energy)
        expected *= timing["max_abs_timing"] / params.calorimeter.timing.background_window
    assert abs(e.mean() / expected - 1) < 0.06


def test_photon_truth_points_at_the_parent_in_b_events():
    """The convention the tag-side code relies on: every Photon cluster's mcIndex is the truth row
    of the particle that made it (the hadron for split-offs), with mcPDG its PDG code."""
    from belle_rare.simulation.production import Chunk, Request, make_generator

    gen = make_generator(Request("belle2", "mixed", 300, 5, None), Chunk(0, 300, 5, 0))
    truth = gen.generate(300)
    gen.close()
    photons = simulate_detector(truth, load_detector("belle2"), np.random.default_rng(5))["Photon"]
    real = photons[photons.mcIndex >= 0]
    truth_pdg = truth.mc.pdg[real.mcIndex]
    # the one documented exception (simulation/detector/material.py): conversion electrons have no
    # truth row of their own and point at the converted photon with mcPDG +-11
    conversion = (truth_pdg == 22) & (abs(real.mcPDG) == 11)
    assert ak.all((truth_pdg == real.mcPDG) | conversion)
    assert ak.mean(conversion) < 0.05
    hadronic = np.isin(np.abs(ak.to_numpy(ak.flatten(real.mcPDG))), (211, 321, 2212, 130, 2112))
    assert hadronic.mean() > 0.05  # split-offs and untracked hadrons are there
