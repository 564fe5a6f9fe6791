"""The zprime selection (processors/zprime.py) on hand-built events, as tests/test_selections.py does
for the other searches, and its recoil variables against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from belle_rare.processors.base import TRIGGER_CUT
from belle_rare.processors.zprime import STEPS, recoil_kinematics
from belle_rare.processors.kinematics import P4
from synthetic_events import MUON_MASS, PION_MASS, Event, Photon, Track, beams, from_angles, make_events, scaled, two_body
from test_selections import ALL, PASS, Case, check_cases, make_processor

ZP_STEPS = [ALL, TRIGGER_CUT, *STEPS]


def mumu_zprime(mass: float = 3.0, cos_pair: float = 0.1, m12: float = 4.0, cos_1: float = 0.3, phi_1: float = 0.7,
                charges=(-1, +1)) -> Event:
    """e+e- -> (mu mu)(m12) Z'(mass) in the CM: the pair at cos_pair back to back with the Z', then mu mu."""
    roots = beams("belle2").sqrt_s
    pair, _ = two_body(P4(0.0, 0.0, 0.0, roots), m12, mass, cos_pair, 0.4)
    mu1, mu2 = two_body(pair, MUON_MASS, MUON_MASS, cos_1, phi_1)
    return Event([Track(mu1, charges[0], 13), Track(mu2, charges[1], 13)])


def zprime_cases() -> dict[str, Case]:
    base = mumu_zprime()
    mu1, mu2 = base.tracks
    light = mumu_zprime(0.5, cos_pair=-0.3, m12=8.0)

    def case(stop):
        return {"mumu": stop}

    return {
        "Z' 3 GeV": Case(base, case(PASS)),
        "Z' 0.5 GeV, recoil forward in the barrel": Case(light, case(PASS)),
        "Z' 7 GeV": Case(mumu_zprime(7.0, cos_pair=0.2, m12=2.5, cos_1=-0.2), case(PASS)),
        "with a soft photon (0.2 GeV, below the veto)": Case(base.adding(Photon(from_angles(0.2, 0.1, 1.0, 0.0))), case(PASS)),
        "with a displaced third track (beam background)": Case(
            base.adding(Track(from_angles(0.3, 0.2, 2.0, PION_MASS), -1, 211, dr=1.5, dz=8.0)), case(PASS)),
        # broken
        "a third IP track": Case(base.adding(Track(from_angles(0.4, 0.2, 2.0, PION_MASS), -1, 211)), case(STEPS[0])),
        "same-sign muons": Case(base.with_track(1, mu2.replace(charge=-1)), case(STEPS[0])),
        "one muon displaced in z": Case(base.with_track(0, mu1.replace(dz=3.0)), case(STEPS[0])),
        "a muonID below 0.5": Case(base.with_track(1, mu2.with_pid(muonID=0.3)), case("muon ID")),
        "a 0.6 GeV photon": Case(base.adding(Photon(from_angles(0.6, -0.2, 2.0, 0.0))), case("photon veto")),
        "recoil along the beam (cos 0.95)": Case(mumu_zprime(cos_pair=-0.95), case("recoil in the ECL barrel")),
        # muons measured 5 % too hard: more visible energy than sqrt(s) leaves, M2_recoil ~ -8 GeV^2
        "mis-measured muons (M2_recoil below -0.5 GeV^2)": Case(
            Event([t.replace(p4=scaled(t.p4, 1.05, MUON_MASS)) for t in light.tracks]), case("M2_recoil range")),
    }


@pytest.fixture(scope="module")
def zprime_processor():
    return make_processor("zprime", "belle2")


def test_zprime_cutflow(zprime_processor, tmp_path):
    check_cases(zprime_processor, "belle2", zprime_cases(), tmp_path, ZP_STEPS, ZP_STEPS)


def test_zprime_recoil_of_clean_signal_is_the_zprime_mass(zprime_processor, tmp_path):
    """Without radiation or smearing the recoil mass squared is M_Z'^2, at the Z' polar angle (CM)."""
    events = [mumu_zprime(m, cos_pair=c, m12=m12) for m, c, m12 in ((0.5, 0.1, 8.0), (3.0, -0.3, 4.0), (7.0, 0.4, 2.5))]
    nano = make_events("belle2", events, tmp_path, dataset="sig", is_data=True)
    objects = zprime_processor.objects(nano, _nominal())
    v = recoil_kinematics(objects.cm, objects.sqrt_s)
    assert v["m2_recoil"] == pytest.approx([0.25, 9.0, 49.0], abs=2e-3)
    # the Z' flies opposite to the pair: cos(theta_Z') = -cos_pair
    assert np.cos(np.radians(v["theta_recoil"])) == pytest.approx([-0.1, 0.3, -0.4], abs=1e-3)


def test_punzi_net_inputs_follow_their_definitions():
    """Two muons with known CM momenta: dimuon pT, the harder muon's momentum along / across the softer
    one, and the transverse momentum to the two-muon thrust axis."""
    roots = 10.58
    p_hard = np.array([3.0, 0.0, 1.0])
    p_soft = np.array([-1.0, 1.0, 0.0])
    cm = np.array([[[*p, math.sqrt(p @ p + MUON_MASS**2)] for p in (p_soft, p_hard)]])
    v = recoil_kinematics(cm, np.array([roots]))
    assert v["Z0_pt_CMS"][0] == pytest.approx(math.hypot(2.0, 1.0))
    u = p_soft / np.linalg.norm(p_soft)
    assert v["pl_max_wrt_min_CMS"][0] == pytest.approx(p_hard @ u)
    assert v["pt_max_wrt_min_CMS"][0] == pytest.approx(math.sqrt(p_hard @ p_hard - (p_hard @ u) ** 2))
    axis = (p_hard - p_soft) / np.linalg.norm(p_hard - p_soft)  # |p1 - p2| > |p1 + p2| here
    pts = [math.sqrt(p @ p - (p @ axis) ** 2) for p in (p_hard, p_soft)]
    assert v["pt_thrustFrame_max"][0] == pytest.approx(max(pts))
    energy = roots - cm[0, :, 3].sum()
    assert v["m2_recoil"][0] == pytest.approx(energy**2 - 2.0**2 - 1.0**2 - 1.0**2)


def _nominal():
    from belle_rare.processors.base import Calibration

    return Calibration()


@pytest.mark.parametrize("mass", [1.0, pytest.param(6.0, marks=pytest.mark.slow)])
def test_generated_signal_peaks_at_the_zprime_mass_squared(zprime_processor, tmp_path, mass):
    """Generated signal (matrix element, ISR, FSR, detector): the selected M2_recoil peaks at M_Z'^2 within
    0.1 GeV^2 (FSR pushes it up by ~0.05) with a core width within a factor 2 of the Punzi-net example's
    sigma(M2_recoil) (feichtip/punzinet examples/width.txt: 0.287 / 0.196 GeV^2 at 1 / 6 GeV; we measure
    0.21 / 0.22 on 6,000 events, README), and the selection keeps 20-45 % of the events (ours: 31-33 %)."""
    import json

    from belle_rare.simulation.production import Request, produce
    from belle_rare.processors.resolution import gaussian_core
    from synthetic_events import read_events

    req = Request(experiment="belle2", process="sig_zprime", events=1500, seed=31, out=tmp_path, parameters={"mass": mass})
    produce(req, progress=False)
    meta = json.loads((tmp_path / f"belle2_{req.dataset}.json").read_text())
    events = read_events(tmp_path / meta["files"][0]["path"], req.dataset, is_data=True)
    out = zprime_processor.process(events)
    raw = out["cutflow"][req.dataset]["mumu"]["raw"]
    assert 0.20 < raw[STEPS[-1]] / raw[ALL] < 0.45
    m2 = out["columns"]["classifier_inputs"][req.dataset]["mumu"]["m2_recoil"].value
    paper = zprime_processor.config.paper_m2_resolution[mass]
    peak, sigma, _ = gaussian_core(m2, mass**2, paper)
    assert peak == pytest.approx(mass**2, abs=0.1)
    assert paper / 2 < sigma < 2 * paper  # ~400 selected events: the core fit alone scatters by ~15 %
    # the Punzi-net's window M^2 +- 2 sigma(paper) holds most of the selected signal (ours: 0.69-0.73 on 6,000 events)
    assert np.mean(np.abs(m2 - mass**2) < 2 * paper) > 0.55
    # region `classified` (the shipped classifier at the Punzi working point of the nearest trained mass): a subset
    # of `selected` keeping, inside the trained window, the fraction the training quoted on its independent half
    h = out["histograms"][req.dataset]["m2_theta"]
    selected = h[{"channel": "mumu", "region": "selected"}].values().sum(axis=1)
    classified = h[{"channel": "mumu", "region": "classified"}].values().sum(axis=1)
    assert np.all(classified <= selected + 1e-9)
    from belle_rare.processors import zprime_classifier as zc

    wp = zprime_processor.classifier.model.meta["working_points"][f"{mass:g}"]
    edges = h.axes["m2"].edges
    centre = 0.5 * (edges[1:] + edges[:-1])
    lo, hi = zc.m2_windows([mass], zprime_processor.config.paper_m2_resolution)[0]
    window = (centre > lo) & (centre < hi)
    kept = classified[window].sum() / selected[window].sum()
    assert kept == pytest.approx(wp["quoted_efficiency"] / wp["efficiency_before"], abs=0.12)
    # m2_pass: every selected event classified at every trained mass; at this mass, inside its window (where the
    # nearest trained mass is this one) it is exactly region `classified`
    at_mass = out["histograms"][req.dataset]["m2_pass"][{"channel": "mumu", "region": "selected", "trained": f"{mass:g}"}].values()
    here = zc.nearest_mass(centre, zprime_processor.classifier.masses) == list(zprime_processor.classifier.masses).index(mass)
    assert here[window].sum() > 5 and at_mass[here] == pytest.approx(classified[here])
    assert np.all(at_mass <= selected + 1e-9) and at_mass.sum() > classified[window].sum()
    # a signal dataset (the fileset's kind) skips m2_pass, which only the background's sidebands use; the rest is unchanged
    events.metadata["kind"] = "signal"
    as_signal = zprime_processor.process(events)["histograms"][req.dataset]
    assert as_signal["m2_pass"].values().sum() == 0
    assert np.array_equal(as_signal["m2_theta"].values(), h.values())


def test_m2_pass_books_every_trained_mass_whatever_the_dataset_selects(zprime_processor):
    # a dataset with no selected event must book the same axes as one with many (the stats layer refuses
    # a histogram whose axes differ between datasets)
    trained = list(zprime_processor.book()["m2_pass"].axes["trained"])
    assert trained == [f"{m:g}" for m in zprime_processor.classifier.masses]
    assert len(trained) >= 2


@pytest.mark.parametrize("cuts", [
    {"thresholds": {"forward": 0.10, "barrel": 0.09, "backward": 0.16}, "max_timing_significance": 1.0},
    {"thresholds": {"forward": 0.10, "barrel": 0.05, "backward": 0.15, "gap": 0.2}, "max_abs_timing": 30.0},
])
def test_flat_extra_energy_is_the_jagged_one(cuts):
    """``FlatPhotons.extra_energy`` (once-per-chunk photons, numba sum) equals ``extra_energy`` on the
    jagged collection bit for bit, with and without a photon-energy scale, empty events included."""
    import awkward as ak
    import numpy as np

    from belle_rare.processors.extra_energy import ExtraEnergyCuts, extra_energy
    from belle_rare.processors.zprime import FlatPhotons

    rng = np.random.default_rng(3)
    counts = rng.integers(0, 6, 500)
    counts[:5] = 0
    n = int(counts.sum())
    flat = {"E": rng.exponential(0.15, n).astype(np.float32), "clusterReg": rng.choice([0, 1, 2, 3, 11, 13], n).astype(np.int32),
            "clusterTiming": rng.normal(0, 40, n).astype(np.float32), "clusterErrorTiming": rng.uniform(5, 80, n).astype(np.float32)}
    photons = ak.unflatten(ak.zip(flat), counts)
    model = ExtraEnergyCuts.model_validate(cuts)
    flat_photons = FlatPhotons.of(photons, model)
    for scale in (1.0, 1.0 + 1e-2, 1.0 - 1e-2):
        scaled = photons if scale == 1.0 else ak.with_field(photons, photons.E * scale, "E")
        reference = ak.to_numpy(extra_energy(scaled, None, model))
        got = flat_photons.extra_energy(scale)
        assert got.dtype == reference.dtype and np.array_equal(got, reference), scale
        assert np.count_nonzero(reference) > 100
