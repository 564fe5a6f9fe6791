"""The three searches' selections on hand-built events (tests/synthetic_events.py), in seconds.

For each search: clean signal events that pass every cut, and copies modified to fail exactly one
cut. All cases of a search go through the processor as one chunk, and the cutflow must count, at
each step, the cases that have not failed yet: a clean case reaches the last step checked, a
broken one stops at the step named for its cut. When the counts differ, every case is run alone
and the assertion message names the cases that stop somewhere else.

The expected stops were checked against the pre-refactor processors (commit 089a7ef): a
difference here is a change of physics, not a reason to edit the expectation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from belle_rare.processors import kinematics as kin
from belle_rare.processors.base import TRIGGER_CUT
from belle_rare.simulation.detector import load_detector
from belle_rare.simulation.detector.pid import pass_probability_branch
from belle_rare.simulation.detector.tracking import covariance_branches
from belle_rare.simulation.detector.trigger import branch_name as trigger_branch
from synthetic_events import (  # tests/ is on sys.path (pytest prepend import mode)
    ELECTRON_MASS,
    KAON_MASS,
    MUON_MASS,
    PHI_MASS,
    PID_HIGH,
    PID_LOW,
    PION_MASS,
    TAU_MASS,
    Event,
    Photon,
    Track,
    beams,
    columns,
    from_angles,
    from_momentum,
    make_events,
    momentum_of,
    opposite,
    p4_sum,
    rotate_towards,
    scaled,
    tau_pair,
    three_body,
    two_body,
    unit,
)

ALL = "all events"
PASS = None  # expected stop of a case that passes every step checked


@dataclass(frozen=True)
class Case:
    event: Event
    stops: dict[str, str | None]  # channel -> first step the event fails (PASS: none)


# ---------------------------------------------------------------------------------------------
# tag-side decays of the other tau (one prong): (tracks, photons)


def pion_tag(tag: kin.P4, cos_star: float = 0.0, phi_star: float = 0.5, invisible_mass: float = 0.0, charge: int = +1):
    """tau -> pi nu; with ``invisible_mass`` the recoil is heavier (tau -> pi pi0 nu, pi0 lost)."""
    pi, _ = two_body(tag, PION_MASS, invisible_mass, cos_star, phi_star)
    return [Track(pi, charge, 211)], []


def rho_tag(tag: kin.P4, cos_star: float = 0.0, phi_star: float = 0.5, cos_rho: float = 0.0, cos_pi0: float = 0.0,
            charge: int = +1):
    """tau -> rho nu, rho -> pi pi0, pi0 -> gamma gamma (both photons reconstructed)."""
    rho, _ = two_body(tag, 0.775, 0.0, cos_star, phi_star)
    pi, pi0 = two_body(rho, PION_MASS, 0.135, cos_rho, 0.0)
    g1, g2 = two_body(pi0, 0.0, 0.0, cos_pi0, 0.0)
    return [Track(pi, charge, 211)], [Photon(g1), Photon(g2)]


def lepton_tag(tag: kin.P4, pdg: int, cos_star: float = 0.0, phi_star: float = 0.5, m_nunu: float = 0.8, charge: int = +1):
    """tau -> l nu nu at the Dalitz point where the two neutrinos have mass ``m_nunu``."""
    lep, _ = two_body(tag, ELECTRON_MASS if pdg == 11 else MUON_MASS, m_nunu, cos_star, phi_star)
    return [Track(lep, charge, pdg)], []


def assemble(signal_tracks, signal_photons, tag) -> Event:
    tag_tracks, tag_photons = tag
    return Event([*signal_tracks, *tag_tracks], [*signal_photons, *tag_photons])


# ---------------------------------------------------------------------------------------------
# running a processor on the cases


def make_processor(search: str, experiment: str, **options):
    from belle_rare.processors.registry import get_search

    s = get_search(search)
    return s.processor(experiment, s.load_config(), **options)


def process(processor, experiment: str, events: list[Event], directory: Path, name: str, is_data: bool = True) -> dict:
    """channel -> {"raw", "weighted"} cutflow of ``events`` processed as one chunk.

    ``is_data`` (the default): the nominal calibration only, no correction weights -- the same
    selection and raw counts as simulation at a fifth of the cost
    (``test_simulation_counts_as_data`` holds the two together)."""
    dataset = "synthetic"
    nano = make_events(experiment, events, directory, dataset=dataset, name=name, is_data=is_data)
    out = processor.process(nano)
    assert set(out["cutflow"]) == {dataset}
    assert out["processed"] == {dataset: {str(directory / f"{name}.root"): len(events)}}
    return out["cutflow"][dataset]


def cutflows(processor, experiment: str, events: list[Event], directory: Path, name: str,
             is_data: bool = True) -> dict[str, dict[str, float]]:
    """channel -> raw cutflow of ``events`` processed as one chunk (nominal selection)."""
    return {ch: cf["raw"] for ch, cf in process(processor, experiment, events, directory, name, is_data).items()}


def stop_of(raw: dict[str, float], steps: list[str]) -> str | None:
    """First step a single event fails (PASS if it passes every step in ``steps``)."""
    for step in steps:
        if raw[step] == 0:
            return step
        assert raw[step] == 1, raw
    return PASS


def expected_counts(stops: list[str | None], steps: list[str]) -> dict[str, int]:
    index = {s: i for i, s in enumerate(steps)}
    return {step: sum(1 for s in stops if s is PASS or index[s] > i) for i, step in enumerate(steps)}


def check_cases(processor, experiment: str, cases: dict[str, Case], directory: Path, labels: list[str],
                checked: list[str], channels: set[str] | None = None, is_data: bool = True) -> dict[str, dict[str, float]]:
    """Run ``cases`` as one chunk; the cutflow labels must be ``labels`` (in order) and the counts
    of the ``checked`` steps those of the expected stops, in every channel of the cases (or in
    ``channels`` only). ``is_data=False``: processed as background simulation. Returns the cutflows."""
    names = list(cases)
    raw = cutflows(processor, experiment, [cases[n].event for n in names], directory, "all_cases", is_data)
    assert set(raw) == set(cases[names[0]].stops)
    channels = set(raw) if channels is None else channels
    problems = []
    for ch in sorted(channels):
        assert list(raw[ch]) == labels, f"{ch}: cutflow steps {list(raw[ch])}, expected {labels}"
        want = expected_counts([cases[n].stops[ch] for n in names], checked)
        got = {s: raw[ch][s] for s in checked}
        if got != want:
            problems.append((ch, want, got))
    if problems:
        # say which cases stop elsewhere: each one alone
        lines = []
        for i, n in enumerate(names):
            alone = cutflows(processor, experiment, [cases[n].event], directory, f"case_{i}", is_data)
            for ch in sorted(channels):
                stop = stop_of(alone[ch], checked)
                if stop != cases[n].stops[ch]:
                    lines.append(f"  {n!r} [{ch}]: expected to stop at {cases[n].stops[ch]!r}, stops at {stop!r}")
        detail = "\n".join(f"  {ch}: expected {w}\n  {ch}:      got {g}" for ch, w, g in problems)
        alone = "\n".join(lines) or "  (each as expected alone: the chunk changes the result)"
        pytest.fail(f"cutflow differs from the expected stops\n{detail}\ncases alone:\n{alone}")
    return raw


# =============================================================================================
# the builder itself


def test_a_tau_built_from_its_products_has_the_tau_mass_and_half_sqrt_s(tmp_path):
    """Read back from the file: lab tracks and photons (tracks in the muon / kaon mass hypothesis)
    boosted to the CM with the stored beams give m_tau and E* = sqrt(s)/2; the stored track energy
    is the pion hypothesis; everything, neutrinos included, adds up to the beams in the lab."""
    for experiment in ("belle", "belle2"):
        b = beams(experiment)
        sig, tag = tau_pair(b.sqrt_s, 0.3, 1.2)
        mu, gamma = two_body(sig, MUON_MASS, 0.0, 0.4, 2.0)
        pi, nu = two_body(tag, PION_MASS, 0.0, -0.2, 0.7)
        mus = three_body(sig, (MUON_MASS,) * 3, 1.1, 0.3, -0.6, 0.5, 2.5)
        k_lep, phi = two_body(sig, MUON_MASS, PHI_MASS, -0.4, 1.0)
        kp, km = two_body(phi, KAON_MASS, KAON_MASS, 0.5, 0.2)
        events = [
            Event([Track(mu, -1, 13), Track(pi, +1, 211)], [Photon(gamma)]),
            Event([*(Track(m, q, 13) for m, q in zip(mus, (-1, +1, -1))), Track(pi, +1, 211)]),
            Event([Track(k_lep, -1, 13), Track(kp, +1, 321), Track(km, -1, 321), Track(pi, +1, 211)]),
        ]
        hypotheses = [(MUON_MASS, None), (MUON_MASS, MUON_MASS, MUON_MASS, None), (MUON_MASS, KAON_MASS, KAON_MASS, None)]
        nano = make_events(experiment, events, tmp_path, dataset="check", name=experiment, mode="eager")
        assert nano.metadata["dataset"] == "check" and nano.metadata["filename"].endswith(f"{experiment}.root")
        beam = (nano.beamE, nano.beamPx, nano.beamPy, nano.beamPz)
        beta = kin.cm_boost(*beam)
        roots = ak.to_numpy(kin.sqrt_s(*beam))
        assert roots == pytest.approx(b.sqrt_s, abs=1e-5)
        assert ak.to_numpy(nano.Ecms) == pytest.approx(b.sqrt_s, abs=1e-5)
        trk = nano.Track
        p = kin.momentum(trk.px, trk.py, trk.pz)
        assert ak.to_numpy(ak.flatten(trk.E)) == pytest.approx(ak.to_numpy(ak.flatten(np.sqrt(p**2 + PION_MASS**2))), rel=1e-6)
        for i, masses in enumerate(hypotheses):
            parts = []
            for j, m in enumerate(masses):
                if m is None:
                    continue
                lab = kin.P4(trk.px[i, j], trk.py[i, j], trk.pz[i, j], np.sqrt(p[i, j] ** 2 + m**2))
                parts.append(kin.to_cm(*lab, beta.x[i], beta.y[i], beta.z[i]))
            if i == 0:
                g = nano.Photon[i, 0]
                parts.append(kin.to_cm(g.px, g.py, g.pz, g.E, beta.x[i], beta.y[i], beta.z[i]))
            tau = kin.p4_add(*parts)
            assert float(kin.mass(*tau)) == pytest.approx(TAU_MASS, abs=2e-5), (experiment, i)
            assert float(tau.E) == pytest.approx(roots[i] / 2, abs=2e-5), (experiment, i)
            assert float(kin.momentum(tau.px, tau.py, tau.pz)) == pytest.approx(momentum_of(sig), abs=2e-5)
        # all four-momenta, the invisible ones too, add up to the beams in the lab
        total = b.to_lab(p4_sum(mu, gamma, pi, nu))
        assert total == pytest.approx(tuple(b.p4), abs=1e-9)
        # CM frame: the tau pair is back to back at sqrt(s)
        assert p4_sum(sig, tag) == pytest.approx((0.0, 0.0, 0.0, b.sqrt_s), abs=1e-12)


def test_files_have_the_ntuple_layout(tmp_path):
    """The branches of a generated ntuple (simulation/ntuple.py: event level, Track, Photon), PID
    per experiment, and BelleSchema collections; defaults: clear PID of the true species."""
    event_level = ["__experiment__", "__run__", "__event__", "__weight__", "Ecms", "beamE", "beamPx", "beamPy",
                   "beamPz", "mcSignalIndex"]
    track = ["px", "py", "pz", "E", "charge", "dr", "dz", "pValue", "nCDCHits", "clusterE", "EoverP", "klmLayers"]
    photon = ["E", "px", "py", "pz", "clusterTheta", "clusterPhi", "clusterE9E21", "clusterReg", "clusterTiming",
              "clusterErrorTiming", "mcIndex", "mcPDG"]
    pid = {"belle": ["eIDBelle", "muIDBelle", "atcPIDBelle"],
           "belle2": ["electronID", "muonID", "pionID", "kaonID", "protonID"]}
    for experiment in ("belle", "belle2"):
        b = beams(experiment)
        sig, tag = tau_pair(b.sqrt_s, 0.0, 0.0)
        mu, gamma = two_body(sig, MUON_MASS, 0.0, 0.0)
        k, _ = two_body(tag, KAON_MASS, 0.0, 0.0)
        pid_branch = pid[experiment][1]
        events = [Event([Track(mu, -1, 13), Track(k, +1, 321, pid={pid_branch: 0.42})], [Photon(gamma)], weight=2.5),
                  Event()]  # an empty event
        path = tmp_path / f"{experiment}.root"
        nano = make_events(experiment, events, tmp_path, name=experiment)
        with uproot.open(path) as f:
            tree = f["tree"]
            names = list(tree.keys())
            cfg = load_detector(experiment).pid
            pass_probs = [pass_probability_branch(v, c) for v in pid[experiment] for c in cfg.cuts_of(v)]
            covariance = [name for name, _, _ in covariance_branches()]  # perigee covariance (vertex fits)
            track_branches = [f"Track_{x}" for x in track + pid[experiment] + pass_probs + ["mcIndex", "mcPDG"] + covariance]
            bits = [trigger_branch(line) for line in load_detector(experiment).trigger.lines]
            assert names == event_level + bits + ["nTrack", *track_branches, "nPhoton"] + [f"Photon_{x}" for x in photon]
            assert str(tree["__event__"].interpretation.from_dtype) == ">i8"
            assert str(tree["Track_px"].interpretation.content.from_dtype) == ">f4"
            assert list(tree["nTrack"].array(library="np")) == [2, 0]
        assert list(nano.__weight__) == [2.5, 1.0]
        assert list(nano.__experiment__) == [{"belle": 55, "belle2": 26}[experiment]] * 2
        assert ak.to_list(nano.Track.charge) == [[-1, 1], []]
        assert ak.to_list(nano.Track.mcPDG) == [[13, 321], []]
        assert ak.to_list(nano.Track[pid_branch]) == [[pytest.approx(PID_HIGH), pytest.approx(0.42)], []]
        other = pid[experiment][0]  # electron ID: low for both
        assert ak.to_list(nano.Track[other]) == [[pytest.approx(PID_LOW)] * 2, []]
        assert float(nano.Photon.mass[0, 0]) == pytest.approx(0.0, abs=1e-3)
    no_truth = columns("belle2", [Event()], truth=False)[1]["Track"]
    assert "mcPDG" not in no_truth.fields


def test_decay_helpers_conserve_four_momentum():
    b = beams("belle2")
    sig, tag = tau_pair(b.sqrt_s, -0.4, 2.0)
    for cos_star in (-1.0, -0.3, 0.0, 0.8, 1.0):
        a, c = two_body(tag, PION_MASS, 0.0, cos_star, 0.3)
        assert p4_sum(a, c) == pytest.approx(tuple(tag), abs=1e-9)
        assert float(kin.mass(*a)) == pytest.approx(PION_MASS, abs=1e-6)
    # cos_star = 1: along the parent's flight direction
    a, _ = two_body(tag, PION_MASS, 0.0, 1.0)
    assert float(kin.cos_angle(a, tag)) == pytest.approx(1.0, abs=1e-12)
    m1, m2, m3 = three_body(sig, (MUON_MASS,) * 3, 0.9, 0.1, 0.2, 0.3, 0.4)
    assert p4_sum(m1, m2, m3) == pytest.approx(tuple(sig), abs=1e-9)
    assert float(kin.invariant_mass(m2, m3)) == pytest.approx(0.9, abs=1e-9)
    r = rotate_towards(m1, m2, 0.2)
    assert momentum_of(r) == pytest.approx(momentum_of(m1)) and r.E == pytest.approx(m1.E)
    assert math.acos(float(kin.cos_angle(r, m1))) == pytest.approx(0.2, abs=1e-9)
    assert momentum_of(scaled(m1, 0.5)) == pytest.approx(0.5 * momentum_of(m1))
    with pytest.raises(ValueError):
        two_body(from_angles(0.1, 0.0, 0.0, 0.2), 0.15, 0.15, 0.0)


# =============================================================================================
# tau -> mu gamma / e gamma (Belle)

TLG_STEPS = [
    ALL, TRIGGER_CUT, "two opposite tracks", "track kinematics", "signal side (1 photon, lepton ID)", "tag-side lepton veto",
    "e_total", "e_sum_rho", "cos_tracks", "cos_lgamma", "p_miss", "cos_theta_miss", "cos_miss_tag", "m_nu2",
    "energy_asymmetry", "xi", "signal region",
]
SIGNAL_SIDE = "signal side (1 photon, lepton ID)"


def lgamma(lepton: int = 13, cos_tau: float = 0.1, phi_tau: float = 0.3, cos_star: float = 0.0, phi_star: float = 1.0,
           mass: float = TAU_MASS):
    """tau- -> l- gamma: (lepton track, photon, tag tau)."""
    sig, tag = tau_pair(beams("belle").sqrt_s, cos_tau, phi_tau, signal_mass=mass)
    lep, gamma = two_body(sig, MUON_MASS if lepton == 13 else ELECTRON_MASS, 0.0, cos_star, phi_star)
    return Track(lep, -1, lepton), Photon(gamma), tag


def lgamma_event(signal, tag_decay=pion_tag, **tag_options) -> Event:
    lep, gamma, tag = signal
    return assemble([lep], [gamma], tag_decay(tag, **tag_options))


def taulgamma_cases() -> dict[str, Case]:
    def mu(stop_mu=PASS, stop_e=SIGNAL_SIDE):
        return {"mugamma": stop_mu, "egamma": stop_e}

    def e(stop_e=PASS, stop_mu=SIGNAL_SIDE):
        return {"mugamma": stop_mu, "egamma": stop_e}

    base = lgamma_event(lgamma())                       # pi tag
    lep, gamma = base.tracks[0], base.photons[0]
    angle = math.acos(float(kin.cos_angle(gamma.p4, lep.p4)))

    def cos_lgamma(c: float) -> Event:  # photon turned in the lepton-photon plane to cos(l, gamma) = c
        return base.with_photon(0, Photon(rotate_towards(gamma.p4, lep.p4, angle - math.acos(c))))

    e_sig = lgamma(11, cos_tau=-0.5, phi_tau=2.0)
    e_base = lgamma_event(e_sig, phi_star=0.785 + math.pi)
    return {
        # clean mu gamma: pi, rho and lepton tags (the three tag classes, their own e_total / m_nu2 windows)
        "mu gamma, pi tag": Case(base, mu()),
        "mu gamma, pi tag, other angles": Case(lgamma_event(lgamma(cos_tau=-0.3, phi_tau=2.0, cos_star=0.3, phi_star=-1.0),
                                                             cos_star=-0.3, phi_star=2.5), mu()),
        "mu gamma, rho tag": Case(lgamma_event(lgamma(), rho_tag, cos_rho=0.5, cos_pi0=-0.5), mu()),
        "mu gamma, rho tag, forward rho": Case(lgamma_event(lgamma(), rho_tag, cos_star=0.3, cos_rho=0.5), mu()),
        "mu gamma, e tag": Case(lgamma_event(lgamma(), lepton_tag, pdg=11, m_nunu=1.2, cos_star=0.5), mu()),
        "mu gamma, pi tag with a high-eID (lepton class)": Case(base.with_track(1, base.tracks[1].with_pid(eIDBelle=0.95)), mu()),
        "mu gamma, tag muID just below the veto": Case(base.with_track(1, base.tracks[1].with_pid(muIDBelle=0.09)), mu()),
        "mu gamma, heavier invisible tag recoil (m 1.0)": Case(lgamma_event(lgamma(), invisible_mass=1.0), mu()),
        # clean e gamma
        "e gamma, pi tag": Case(e_base, e()),
        "e gamma, mu tag": Case(lgamma_event(lgamma(11, cos_tau=0.2, phi_tau=-1.0, cos_star=-0.2), lepton_tag, pdg=13), e()),
        # broken: one cut each
        "a third track": Case(base.adding(Track(from_angles(0.5, 0.2, 2.0, PION_MASS), -1, 211)),
                              mu("two opposite tracks", "two opposite tracks")),
        # beam-background tracks (Belle: 0.3 per event, dr ~ 2 cm, dz ~ 15 cm) do not count: tracks from the IP only
        "a displaced beam-background third track (dr 1.5 cm, dz 8 cm)": Case(
            base.adding(Track(from_angles(0.3, 0.2, 2.0, PION_MASS), -1, 211, dr=1.5, dz=8.0)), mu()),
        "a third track displaced along z only (dz 2.5 cm)": Case(
            base.adding(Track(from_angles(0.3, 0.2, 2.0, PION_MASS), +1, 211, dz=2.5)), mu()),
        "a third track displaced transversely only (dr 0.6 cm)": Case(
            base.adding(Track(from_angles(0.3, 0.2, 2.0, PION_MASS), +1, 211, dr=0.6)), mu()),
        "same-sign tracks": Case(base.with_track(1, base.tracks[1].replace(charge=-1)),
                                 mu("two opposite tracks", "two opposite tracks")),
        "tag pion above 0.43 sqrt(s) in the CM": Case(lgamma_event(lgamma(), cos_star=0.95),
                                                      mu("track kinematics", "track kinematics")),
        "e gamma, tag track in the ECL gap": Case(lgamma_event(e_sig, phi_star=0.785),
                                                  e("track kinematics", SIGNAL_SIDE)),
        "signal photon below 0.5 GeV": Case(base.with_photon(0, Photon(scaled(gamma.p4, 0.3 / gamma.p4.E))), mu(SIGNAL_SIDE)),
        "second photon in the signal hemisphere": Case(
            base.adding(Photon(rotate_towards(scaled(gamma.p4, 0.3 / gamma.p4.E), lep.p4, 0.1))), mu(SIGNAL_SIDE)),
        "muon ID below the cut": Case(base.with_track(0, lep.with_pid(muIDBelle=0.9)), mu(SIGNAL_SIDE)),
        "electron ID below the cut": Case(e_base.with_track(0, e_base.tracks[0].with_pid(eIDBelle=0.85)), e(SIGNAL_SIDE)),
        "tag track identified as a muon": Case(base.with_track(1, base.tracks[1].with_pid(muIDBelle=0.5)),
                                               mu("tag-side lepton veto")),
        "tag track identified as an electron": Case(e_base.with_track(1, e_base.tracks[1].with_pid(eIDBelle=0.5)),
                                                    e("tag-side lepton veto")),
        "pi tag: E_total above 0.86 sqrt(s)": Case(lgamma_event(lgamma(), cos_star=0.6), mu("e_total")),
        "rho tag: E_sum above 0.86 sqrt(s)": Case(lgamma_event(lgamma(), rho_tag, cos_star=0.5, cos_rho=0.95), mu("e_sum_rho")),
        "cos(l, gamma) = 0.9": Case(cos_lgamma(0.9), mu("cos_lgamma")),
        "cos(l, gamma) = 0.3": Case(cos_lgamma(0.3), mu("cos_lgamma")),
        "pi tag: m_nu^2 1.44 GeV^2 (invisible recoil m 1.2)": Case(lgamma_event(lgamma(), invisible_mass=1.2), mu("m_nu2")),
        "signal side of mass 1.74 GeV: M_bc outside the ellipse": Case(lgamma_event(lgamma(mass=1.74)), mu("signal region")),
    }


@pytest.fixture(scope="module")
def taulgamma_processor():
    return make_processor("taulgamma", "belle")


def test_taulgamma_cutflow(taulgamma_processor, tmp_path):
    check_cases(taulgamma_processor, "belle", taulgamma_cases(), tmp_path, TLG_STEPS, TLG_STEPS)


def test_taulgamma_mbc_of_clean_signal_is_the_tau_mass(taulgamma_processor, tmp_path):
    """Clean tau -> mu gamma / e gamma events (true lepton masses): M_bc = m_tau within 0.5 MeV. The
    stored tracks are pions (Track_E); in the pion hypothesis M_bc sits 4 (mu) and 8-11 (e) MeV higher."""
    from belle_rare.processors.base import Calibration

    cases = taulgamma_cases()
    for channel in ("mugamma", "egamma"):
        clean = [c.event for c in cases.values() if c.stops[channel] is PASS]
        nano = make_events("belle", clean, tmp_path, name=f"clean_{channel}", is_data=True)
        selection = taulgamma_processor.select(nano, taulgamma_processor.objects(nano, Calibration()), channel)
        mbc = selection.values["mbc"]
        assert len(clean) >= 2 and np.all(np.isfinite(mbc)), (channel, mbc)
        assert np.max(np.abs(mbc - TAU_MASS)) < 0.5e-3, (channel, mbc - TAU_MASS)


def test_taulgamma_events_are_independent_of_their_neighbours(taulgamma_processor, tmp_path):
    """The same clean event many times, and mixed with events that stop early: counts scale."""
    cases = taulgamma_cases()
    clean, early = cases["mu gamma, rho tag"].event, cases["a third track"].event
    raw = cutflows(taulgamma_processor, "belle", [clean, early] * 5 + [clean], tmp_path, "mixed")["mugamma"]
    assert raw[ALL] == 11 and raw["two opposite tracks"] == 6 and raw["signal region"] == 6


# =============================================================================================
# tau -> mu mu mu (Belle II)

T3M_PRESELECTION = ["three muon candidates (|q| = 1, one hemisphere)", "thrust", "missing-momentum polar angle", "event charge"]
T3M_STEPS = [ALL, TRIGGER_CUT, *T3M_PRESELECTION, "outer region", "signal region (no BDT)", "BDT", "signal region"]
T3M_CHECKED = T3M_STEPS[:-2]  # the BDT steps depend on the stored model
TRIPLET = T3M_PRESELECTION[0]


def three_mu(cos_tau: float = 0.1, phi_tau: float = 0.3, m23: float = 1.0, cos_1: float = 0.0, cos_23: float = 0.0,
             charges=(-1, +1, -1), mass: float = TAU_MASS, energy: float | None = None):
    """tau- -> mu- mu+ mu- through two chained two-body steps: (muon tracks, tag tau)."""
    sig, tag = tau_pair(beams("belle2").sqrt_s, cos_tau, phi_tau, signal_mass=mass, signal_energy=energy)
    mus = three_body(sig, (MUON_MASS,) * 3, m23, cos_1, cos_23, 0.0, 1.0)
    return [Track(m, q, 13) for m, q in zip(mus, charges)], tag


def three_mu_event(signal, tag_decay=pion_tag, photons=(), **tag_options) -> Event:
    mus, tag = signal
    return assemble(mus, list(photons), tag_decay(tag, **tag_options))


def tau3mu_cases() -> dict[str, Case]:
    base = three_mu_event(three_mu())
    mus = base.tracks[:3]
    n = unit(0.1, 0.3)
    # three muons within 0.08 rad of each other, a pion back to back: T ~ 1 (no tau decay)
    pencil = Event([
        Track(from_momentum(2.0, n, MUON_MASS), -1, 13),
        Track(from_momentum(1.5, n + [0.05, 0, 0], MUON_MASS), +1, 13),
        Track(from_momentum(1.0, n + [0, 0.08, 0], MUON_MASS), -1, 13),
        Track(from_momentum(4.0, -n, PION_MASS), +1, 211),
    ])
    extra_pion = Track(from_angles(0.4, -0.3, 2.5, PION_MASS), +1, 211)

    def case(stop):
        return {"3mu": stop}

    cases = {
        f"tau -> 3 mu, m23 {m23}, cos1 {c1}": Case(three_mu_event(three_mu(m23=m23, cos_1=c1, cos_23=c23)), case(PASS))
        for m23, c1, c23 in ((0.5, -0.5, 0.5), (1.0, 0.0, -0.5), (1.4, 0.5, 0.5))
    }
    cases.update({
        "tau+ -> mu+ mu- mu+": Case(three_mu_event(three_mu(charges=(+1, -1, +1)), charge=-1), case(PASS)),
        "with a photon": Case(base.adding(Photon(from_angles(0.5, 0.2, -1.0, 0.0))), case(PASS)),
        "one muon with 0.5 < muonID < 0.9 (two tight left)": Case(base.with_track(1, mus[1].with_pid(muonID=0.7)), case(PASS)),
        "extra track displaced in r (not counted)": Case(base.adding(extra_pion.replace(dr=2.0)), case(PASS)),
        "extra track outside the CDC acceptance": Case(
            base.adding(Track(from_angles(0.4, 0.99, 2.5, PION_MASS), +1, 211)), case(PASS)),
        "signal 3 MeV below the peak in M (inside 5 sigma)": Case(three_mu_event(three_mu(mass=TAU_MASS - 0.003)), case(PASS)),
        # broken
        "total charge 3": Case(three_mu_event(three_mu(charges=(-1, -1, -1))), case(TRIPLET)),
        "muons in opposite hemispheres": Case(base.with_track(1, mus[1].replace(p4=opposite(mus[1].p4))), case(TRIPLET)),
        "a muonID below 0.5": Case(base.with_track(2, mus[2].with_pid(muonID=0.4)), case(TRIPLET)),
        "two muons below the tight 0.9": Case(
            base.with_track(1, mus[1].with_pid(muonID=0.7)).with_track(2, mus[2].with_pid(muonID=0.7)), case(TRIPLET)),
        "a muon displaced in z": Case(base.with_track(0, mus[0].replace(dz=5.0)), case(TRIPLET)),
        "a muon displaced in r": Case(base.with_track(0, mus[0].replace(dr=1.5)), case(TRIPLET)),
        "pencil-like event (thrust ~ 1)": Case(pencil, case("thrust")),
        "missing momentum along the beam": Case(three_mu_event(three_mu(cos_tau=-0.85), cos_star=0.0, phi_star=4.9),
                                                case("missing-momentum polar angle")),
        "extra charged track (event charge +1)": Case(base.adding(extra_pion), case("event charge")),
        "signal at 1.74 GeV (outer region only)": Case(three_mu_event(three_mu(mass=1.74)), case("signal region (no BDT)")),
        "signal at 1.70 GeV (outside the outer region)": Case(three_mu_event(three_mu(mass=1.70)), case("outer region")),
        "signal 0.4 GeV below sqrt(s)/2 in E (outer region only: ISR tail)": Case(
            three_mu_event(three_mu(energy=beams("belle2").sqrt_s / 2 - 0.4)), case("signal region (no BDT)")),
        "signal 0.3 GeV above sqrt(s)/2 in E (outside the outer region)": Case(
            three_mu_event(three_mu(energy=beams("belle2").sqrt_s / 2 + 0.3)), case("outer region")),
    })
    return cases


@pytest.fixture(scope="module")
def tau3mu_processor():
    return make_processor("tau3mu", "belle2")  # nominal: the shipped BDT, nominal muon ID


@pytest.fixture(scope="module")
def tau3mu_training_processor():
    return make_processor("tau3mu", "belle2", training=True)


def test_tau3mu_cutflow(tau3mu_processor, tmp_path):
    raw = check_cases(tau3mu_processor, "belle2", tau3mu_cases(), tmp_path, T3M_STEPS, T3M_CHECKED)["3mu"]
    assert raw["BDT"] <= raw["outer region"]
    assert raw["signal region"] <= min(raw["BDT"], raw["signal region (no BDT)"])


def test_tau3mu_training_mode_loosens_the_muon_id_and_has_no_bdt(tau3mu_training_processor, tmp_path):
    """Training PID-weights the background (synthetic events are background): no muon-ID cut, so the
    PID-broken cases pass (with PID weight 0); the others stop as in nominal mode; no model, so nothing
    passes the BDT."""
    cases = tau3mu_cases()
    for name in ("a muonID below 0.5", "two muons below the tight 0.9"):
        cases[name] = Case(cases[name].event, {"3mu": PASS})
    raw = check_cases(tau3mu_training_processor, "belle2", cases, tmp_path, T3M_STEPS, T3M_CHECKED, is_data=False)["3mu"]
    assert raw["BDT"] == 0 and raw["signal region"] == 0


# =============================================================================================
# tau -> l phi, phi -> K+ K- (Belle II)

TLP_PRESELECTION = ["phi -> K+K- and lepton in one hemisphere", "track multiplicity", "thrust", "missing-momentum polar angle"]
TLP_STEPS = [ALL, TRIGGER_CUT, *TLP_PRESELECTION, "SR or RSB", "signal region (no BDT)", "BDT", "signal region"]
TLP_CHECKED = TLP_STEPS[:-2]
CANDIDATE = TLP_PRESELECTION[0]


def lphi(lepton: int = 13, cos_tau: float = 0.1, phi_tau: float = 0.3, cos_star: float = 0.0, cos_k: float = 0.3,
         m_kk: float = PHI_MASS, mass: float = TAU_MASS, energy: float | None = None):
    """tau- -> l- phi, phi -> K+ K-: ([lepton, K+, K-] tracks, tag tau)."""
    sig, tag = tau_pair(beams("belle2").sqrt_s, cos_tau, phi_tau, signal_mass=mass, signal_energy=energy)
    lep, phi = two_body(sig, MUON_MASS if lepton == 13 else ELECTRON_MASS, m_kk, cos_star, 0.0)
    kp, km = two_body(phi, KAON_MASS, KAON_MASS, cos_k, 1.0)
    return [Track(lep, -1, lepton), Track(kp, +1, 321), Track(km, -1, 321)], tag


def lphi_event(signal, tag_decay=pion_tag, **tag_options) -> Event:
    tracks, tag = signal
    tag_options = {"cos_star": -0.6, **tag_options}
    return assemble(tracks, [], tag_decay(tag, **tag_options))


def taulphi_cases() -> dict[str, Case]:
    base = lphi_event(lphi())
    e_base = lphi_event(lphi(11, cos_tau=-0.2, phi_tau=2.0))

    def mu(stop_mu=PASS, stop_e=CANDIDATE):
        return {"muphi": stop_mu, "ephi": stop_e}

    def e(stop_e=PASS, stop_mu=CANDIDATE):
        return {"muphi": stop_mu, "ephi": stop_e}

    return {
        "mu phi, pi tag": Case(base, mu()),
        "mu phi, other decay angles": Case(lphi_event(lphi(cos_star=-0.5, cos_k=-0.6)), mu()),
        "mu phi, rho tag": Case(lphi_event(lphi(), rho_tag, cos_star=-0.5), mu()),
        "mu phi, M(KK) 1.03 GeV (inside the window)": Case(lphi_event(lphi(m_kk=1.03)), mu()),
        "mu phi, one more track": Case(base.adding(Track(from_angles(0.4, -0.3, 2.5, PION_MASS), -1, 211)), mu()),
        "e phi, pi tag": Case(e_base, e()),
        "e phi, other decay angles": Case(lphi_event(lphi(11, cos_tau=-0.2, phi_tau=2.0, cos_star=0.5, cos_k=0.6)), e()),
        # broken
        "M(KK) 1.05 GeV (outside the phi window)": Case(lphi_event(lphi(m_kk=1.05)), mu(CANDIDATE)),
        "M(KK) 1.00 GeV (outside the phi window)": Case(lphi_event(lphi(m_kk=1.00)), mu(CANDIDATE)),
        "lepton in the other hemisphere": Case(
            base.with_track(0, base.tracks[0].replace(p4=opposite(base.tracks[0].p4))), mu(CANDIDATE)),
        "same-sign kaons": Case(base.with_track(2, base.tracks[2].replace(charge=+1)), mu(CANDIDATE)),
        "a kaonID below 0.5": Case(base.with_track(1, base.tracks[1].with_pid(kaonID=0.4)), mu(CANDIDATE)),
        "muonID below 0.9": Case(base.with_track(0, base.tracks[0].with_pid(muonID=0.85)), mu(CANDIDATE)),
        "electronID below 0.9": Case(e_base.with_track(0, e_base.tracks[0].with_pid(electronID=0.85)), e(CANDIDATE)),
        "no tag track": Case(base.without_track(3), mu("track multiplicity")),
        "tag track displaced (not good)": Case(base.with_track(3, base.tracks[3].replace(dr=1.5)), mu("track multiplicity")),
        "thrust above 0.97 (tag pion along the tau)": Case(lphi_event(lphi(), cos_star=0.3), mu("thrust")),
        "missing momentum along the beam": Case(lphi_event(lphi(cos_tau=-0.85, cos_star=-0.5), cos_star=-0.3, phi_star=4.9),
                                                mu("missing-momentum polar angle")),
        "signal at 1.74 GeV (in the RSB)": Case(lphi_event(lphi(mass=1.74)), mu("signal region (no BDT)")),
        "signal 0.1 GeV below sqrt(s)/2 in E (outside the dE band)": Case(
            lphi_event(lphi(energy=beams("belle2").sqrt_s / 2 - 0.1)), mu("SR or RSB")),
    }


@pytest.fixture(scope="module")
def taulphi_processor():
    return make_processor("taulphi", "belle2")


@pytest.fixture(scope="module")
def taulphi_training_processor():
    return make_processor("taulphi", "belle2", training=True)


def test_taulphi_cutflow(taulphi_processor, tmp_path):
    raws = check_cases(taulphi_processor, "belle2", taulphi_cases(), tmp_path, TLP_STEPS, TLP_CHECKED)
    for raw in raws.values():
        assert raw["BDT"] <= raw["SR or RSB"]
        assert raw["signal region"] <= min(raw["BDT"], raw["signal region (no BDT)"])


def test_taulphi_training_mode_loosens_the_pid_and_has_no_bdt(taulphi_training_processor, tmp_path):
    """Training PID-weights the background (no kaon / lepton ID cut): the PID-broken mu phi cases pass
    (with PID weight 0), the others stop as in nominal mode (mu phi channel, muon events); no model,
    so nothing passes the BDT.
    (Any track is then a lepton candidate of either channel: the e phi channel is not checked.)"""
    cases = {name: c for name, c in taulphi_cases().items() if c.event.tracks[0].pdg == 13}
    for name in ("a kaonID below 0.5", "muonID below 0.9"):
        cases[name] = Case(cases[name].event, {"muphi": PASS, "ephi": CANDIDATE})
    raws = check_cases(taulphi_training_processor, "belle2", cases, tmp_path, TLP_STEPS, TLP_CHECKED, channels={"muphi"},
                       is_data=False)
    assert raws["ephi"]["phi -> K+K- and lepton in one hemisphere"] > 0  # no electron-ID cut in PID-weighted training
    assert all(raw["BDT"] == 0 and raw["signal region"] == 0 for raw in raws.values())


# =============================================================================================
# simulation: every calibration and weight variation on top of the nominal selection

SEARCHES = {
    "taulgamma": ("belle", taulgamma_cases),
    "tau3mu": ("belle2", tau3mu_cases),
    "taulphi": ("belle2", taulphi_cases),
}


# ~1.5 s each (five calibration passes): the shared machinery runs by default with taulgamma,
# the other two searches' weights with -m slow
@pytest.mark.parametrize("search", ["taulgamma", *(pytest.param(s, marks=pytest.mark.slow) for s in ("tau3mu", "taulphi"))])
def test_simulation_counts_as_data(search, request, tmp_path):
    """Processed as simulation (momentum / photon-energy scale passes, correction weights), the
    raw cutflow is the nominal one; "all events" carries the generator weights, every step the
    positive correction weights of the events it counts."""
    experiment, make_cases = SEARCHES[search]
    processor = request.getfixturevalue(f"{search}_processor")
    events = [dataclasses.replace(c.event, weight=0.5 + 0.25 * i) for i, c in enumerate(make_cases().values())]
    data = process(processor, experiment, events, tmp_path, "as_data", is_data=True)
    simulation = process(processor, experiment, events, tmp_path, "as_simulation", is_data=False)
    assert set(simulation) == set(data)
    for ch in data:
        assert simulation[ch]["raw"] == data[ch]["raw"], ch
        assert data[ch]["weighted"][ALL] == simulation[ch]["weighted"][ALL] == pytest.approx(sum(e.weight for e in events))
        for step, n in simulation[ch]["raw"].items():
            w = simulation[ch]["weighted"][step]
            assert (w > 0) == (n > 0) and np.isfinite(w), (ch, step, n, w)


@pytest.mark.parametrize("weighted", [False, True])
def test_taulgamma_empty_chunks(tmp_path, weighted):
    """The flat (numpy) taulgamma selection on an empty chunk and on a chunk where no event has two
    opposite IP tracks: every count zero, no error, in both PID modes."""
    from belle_rare.processors.base import Calibration
    from belle_rare.processors.registry import get_search

    search = get_search("taulgamma")
    proc = search.processor("belle", search.load_config(), pid_weighting=weighted)
    nano = make_events("belle", [c.event for c in taulgamma_cases().values()], tmp_path, name="all")
    no_pair = ~proc.select(nano, proc.objects(nano, Calibration()), "mugamma").cuts.all("two opposite tracks")
    assert 0 < no_pair.sum() < len(nano)
    for chunk in (nano[:0], nano[no_pair]):
        out = proc.process(chunk)
        for channel in ("mugamma", "egamma"):
            raw = out["cutflow"]["synthetic"][channel]["raw"]
            assert raw["all events"] == len(chunk) and raw["two opposite tracks"] == 0 and raw["signal region"] == 0
        assert out["histograms"]["synthetic"]["yields"].values().sum() == 0
