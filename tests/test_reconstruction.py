"""Reconstructed mass peaks from Pythia events through the detector response, against PDG masses."""

from __future__ import annotations

import functools

import awkward as ak
import numpy as np
import particle
import pytest

from belle_rare.simulation.detector import load_detector, simulate_detector
from tests.conftest import truth_sample


def pdg_mass(pdg: int) -> float:
    return particle.Particle.from_pdgid(pdg).mass / 1000.0


@functools.lru_cache(maxsize=None)
def reco_sample(process: str, experiment: str = "belle2", events: int = 3000):
    truth = truth_sample(process, experiment, events=events)
    return truth, simulate_detector(truth, load_detector(experiment), np.random.default_rng(7))


def peak(values: np.ndarray, window: tuple[float, float]) -> tuple[float, float]:
    """Median and half the 16-84 % interval inside ``window`` (robust Gaussian-core estimates)."""
    v = values[(values > window[0]) & (values < window[1])]
    lo, med, hi = np.percentile(v, [16, 50, 84])
    return med, (hi - lo) / 2


def track_pairs_from(truth, reco, mother_pdg: int, daughters: tuple[int, int], masses: tuple[float, float]) -> np.ndarray:
    """Invariant mass of reconstructed track pairs whose true mothers are one ``mother_pdg``."""
    mc = truth.mc
    trk = reco["Track"]
    matched = trk[trk.mcIndex >= 0]
    mother = mc.mother[matched.mcIndex]
    mother_pdg_of = mc.pdg[ak.where(mother >= 0, mother, 0)]
    pairs = ak.combinations(ak.zip({"t": matched, "mother": mother, "mpdg": mother_pdg_of}), 2)
    a, b = pairs["0"], pairs["1"]
    same = (a.mother == b.mother) & (abs(a.mpdg) == mother_pdg)
    same = same & (
        ((abs(a.t.mcPDG) == daughters[0]) & (abs(b.t.mcPDG) == daughters[1]))
        | ((abs(a.t.mcPDG) == daughters[1]) & (abs(b.t.mcPDG) == daughters[0]))
    )
    a, b = a[same].t, b[same].t
    mass_of = {daughters[0]: masses[0], daughters[1]: masses[1]}
    ma = np.where(abs(ak.to_numpy(ak.flatten(a.mcPDG))) == daughters[0], mass_of[daughters[0]], mass_of[daughters[1]])
    mb = np.where(abs(ak.to_numpy(ak.flatten(b.mcPDG))) == daughters[0], mass_of[daughters[0]], mass_of[daughters[1]])
    comps = [ak.to_numpy(ak.flatten(x)).astype(float) for x in (a.px, a.py, a.pz, b.px, b.py, b.pz)]
    ea = np.sqrt(comps[0] ** 2 + comps[1] ** 2 + comps[2] ** 2 + ma**2)
    eb = np.sqrt(comps[3] ** 2 + comps[4] ** 2 + comps[5] ** 2 + mb**2)
    p2 = (comps[0] + comps[3]) ** 2 + (comps[1] + comps[4]) ** 2 + (comps[2] + comps[5]) ** 2
    return np.sqrt(np.clip((ea + eb) ** 2 - p2, 0, None))


def test_tau_peak_from_three_muons():
    truth, reco = reco_sample("sig_tau3mu")
    trk = reco["Track"]
    from_signal = truth.mc.mother[ak.where(trk.mcIndex >= 0, trk.mcIndex, 0)] == truth.signal_index
    sig = trk[(trk.mcIndex >= 0) & from_signal & (abs(trk.mcPDG) == 13)]
    full = ak.num(sig) == 3
    sig = sig[full]
    m_mu = pdg_mass(13)
    e = np.sqrt(sig.px**2 + sig.py**2 + sig.pz**2 + m_mu**2)
    m = np.sqrt(ak.to_numpy(ak.sum(e, axis=1) ** 2 - ak.sum(sig.px, axis=1) ** 2 - ak.sum(sig.py, axis=1) ** 2 - ak.sum(sig.pz, axis=1) ** 2))
    med, width = peak(m, (1.6, 1.95))
    assert med == pytest.approx(pdg_mass(15), abs=3e-3)
    assert 2e-3 < width < 12e-3  # tau3mu paper: sigma_M 4.4-4.8 MeV
    assert ak.mean(full) > 0.5  # three muon tracks reconstructed in most events


def test_ks_peak_from_v0():
    _, reco = reco_sample("mixed")
    v0 = reco["V0"]
    m = ak.to_numpy(ak.flatten(v0.M[v0.mcPDG == 310])).astype(float)
    med, width = peak(m, (0.45, 0.55))
    assert med == pytest.approx(pdg_mass(310), abs=2e-3)
    assert 1e-3 < width < 8e-3


def test_pi0_peak():
    _, reco = reco_sample("uds")
    pi0 = reco["Pi0"]
    m = ak.to_numpy(ak.flatten(pi0.M[pi0.mcIsPi0 == 1])).astype(float)
    med, width = peak(m, (0.10, 0.16))
    assert med == pytest.approx(pdg_mass(111), abs=5e-3)
    assert 3e-3 < width < 10e-3


def test_phi_peak_from_kaon_pairs():
    truth, reco = reco_sample("sig_taumuphi")
    m = track_pairs_from(truth, reco, 333, (321, 321), (pdg_mass(321), pdg_mass(321)))
    med, width = peak(m, (0.99, 1.05))
    assert med == pytest.approx(pdg_mass(333), abs=2e-3)
    assert width < 8e-3  # natural width 4.2 MeV plus resolution


def test_kstar_peak():
    truth, reco = reco_sample("sig_kstartautau")
    m = track_pairs_from(truth, reco, 313, (321, 211), (pdg_mass(321), pdg_mass(211)))
    med, width = peak(m, (0.7, 1.1))
    assert med == pytest.approx(pdg_mass(313), abs=0.015)
    assert 0.02 < width < 0.08  # natural width 47 MeV


def test_d0_peak():
    truth, reco = reco_sample("charm")
    m = track_pairs_from(truth, reco, 421, (321, 211), (pdg_mass(321), pdg_mass(211)))
    med, width = peak(m, (1.80, 1.93))
    assert med == pytest.approx(pdg_mass(421), abs=3e-3)
    assert 2e-3 < width < 15e-3


@pytest.mark.parametrize("experiment", ["belle", "belle2"])
def test_tag_mbc_peaks_at_the_b_mass(experiment):
    _, reco = reco_sample("charged", experiment)
    tag = reco["Btag"]
    good = ak.to_numpy(ak.flatten(tag.Mbc[tag.isSignal == 1])).astype(float)
    med, width = peak(good, (5.2, 5.3))
    assert med == pytest.approx(pdg_mass(521), abs=2e-3)
    assert 1e-3 < width < 6e-3
