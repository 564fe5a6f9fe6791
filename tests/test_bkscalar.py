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


# ------------------------------------------------------------------ 4. the bkscalar processor on synthetic events
B_MASS = 5.27966
DAUGHTER_PDG = {"ee": 11, "mumu": 13, "pipi": 211, "KK": 321}


def _signal_event(decay: str = "mumu", m_s: float = 1.0, mode: str = "K", radius: float = 5.0, cos_s: float = 0.0,
                  pointing_offset: float = 0.0, kaon_scale: float = 1.0):
    """B -> K(*) S, S -> x x decaying at transverse ``radius`` (cm, lab) along the S flight direction
    (azimuth turned by ``pointing_offset`` rad); the other B -> 4 pions. CM frame, synthetic_events."""
    import synthetic_events as se

    b = se.beams("belle2")
    sig_b = se.tau_p4(b.sqrt_s, 0.2, 0.4, mass=B_MASS)
    tag_b = se.opposite(sig_b)
    m_x = se.MASS_BY_PDG[DAUGHTER_PDG[decay]]
    if mode == "K":
        k, s = se.two_body(sig_b, se.KAON_MASS, m_s, 0.3, 0.2)
        prompt = [se.Track(se.scaled(k, kaon_scale), +1, 321)]
        s = se.rotate_towards(s, se.P4(0.0, 0.0, 1.0, 1.0), np.arccos(cos_s) - np.arccos(s.pz / se.momentum_of(s))) if cos_s else s
    else:
        kst, s = se.two_body(sig_b, 0.8955, m_s, 0.3, 0.2)
        k, pi = se.two_body(kst, se.KAON_MASS, se.PION_MASS, 0.2, 1.0)
        prompt = [se.Track(k, +1, 321), se.Track(pi, -1, 211)]
    x1, x2 = se.two_body(s, m_x, m_x, 0.3, 2.0)
    lab = b.to_lab(s)
    phi = np.arctan2(lab.py, lab.px) + pointing_offset
    pt = np.hypot(lab.px, lab.py)
    vertex = (radius * np.cos(phi), radius * np.sin(phi), radius * lab.pz / pt)
    pdg = DAUGHTER_PDG[decay]
    # leptons: the negative one has the positive code (signed_pdg handles it); charge + first
    daughters = [se.Track(x1, +1, pdg, vertex=vertex), se.Track(x2, -1, pdg, vertex=vertex)]
    t1, t2 = se.two_body(tag_b, 1.4, 1.6, 0.5, 0.7)
    tag = [*se.two_body(t1, se.PION_MASS, se.PION_MASS, 0.1, 0.3), *se.two_body(t2, se.PION_MASS, se.PION_MASS, -0.4, 2.0)]
    tag_tracks = [se.Track(p, c, 211) for p, c in zip(tag, (+1, -1, +1, -1))]
    return se.Event([*prompt, *daughters, *tag_tracks])


@pytest.fixture(scope="module")
def bkscalar_processor():
    from belle_rare.processors.registry import get_search

    s = get_search("bkscalar")
    return s.processor("belle2", s.load_config())


def _run(processor, events, tmp_path, name):
    import synthetic_events as se

    nano = se.make_events("belle2", events, tmp_path, dataset="synthetic", name=name, is_data=True)
    return processor.process(nano)


def _stop(raw: dict[str, float]) -> str | None:
    """First cutflow step the (single) event fails, None if it passes everything."""
    for step, count in raw.items():
        if count == 0:
            return step
    return None


@pytest.mark.parametrize("case, channel, stop", [
    ("clean K mumu", "K_mumu", None),
    ("clean K mumu", "K_ee", "S daughter ID"),
    ("clean K mumu", "Kst_mumu", "B candidate"),
    ("clean Kst mumu", "Kst_mumu", None),
    ("clean K pipi", "K_pipi", None),
    ("clean K KK", "K_KK", None),
    ("clean K ee", "K_ee", None),
    ("not pointing", "K_mumu", "pointing cos(alpha)"),
    ("pi pi pointing 0.97", "K_pipi", "pointing cos(alpha)"),
    ("mu mu pointing 0.97", "K_mumu", None),
    ("K_S", "K_pipi", "K_S veto"),
    ("J/psi", "K_mumu", "peaking-background vetoes"),
    ("phi", "K_KK", "peaking-background vetoes"),
    ("conversion at SVD 3", "K_ee", "conversion veto"),
    ("light ee between layers", "K_ee", None),
    ("forward S", "K_mumu", "displaced tracks 32-150 deg"),
    ("wrong kaon momentum", "K_mumu", "M_bc"),
])
def test_bkscalar_selection_stops_where_expected(case, channel, stop, bkscalar_processor, tmp_path):
    cases = {
        "clean K mumu": dict(),
        "clean Kst mumu": dict(mode="Kst"),
        "clean K pipi": dict(decay="pipi", m_s=1.2),
        "clean K KK": dict(decay="KK", m_s=1.5),
        "clean K ee": dict(decay="ee", m_s=0.3),
        "not pointing": dict(pointing_offset=0.5),
        "pi pi pointing 0.97": dict(decay="pipi", m_s=1.2, pointing_offset=np.arccos(0.97)),
        "mu mu pointing 0.97": dict(pointing_offset=np.arccos(0.97)),
        "K_S": dict(decay="pipi", m_s=0.5025),
        "J/psi": dict(m_s=3.097),
        "phi": dict(decay="KK", m_s=1.0195),
        "conversion at SVD 3": dict(decay="ee", m_s=0.03, radius=4.0),
        "light ee between layers": dict(decay="ee", m_s=0.03, radius=5.0),
        "forward S": dict(cos_s=0.93),
        "wrong kaon momentum": dict(kaon_scale=1.5),
    }
    out = _run(bkscalar_processor, [_signal_event(**cases[case])], tmp_path, "case")
    raw = out["cutflow"]["synthetic"][channel]["raw"]
    assert list(raw)[1:] == ["B candidate", "S daughter ID", "vertex fit", "displaced tracks 32-150 deg", "pointing cos(alpha)",
                             "K_S veto", "peaking-background vetoes", "conversion veto", "M_bc", "delta E", "R2"]
    assert _stop(raw) == stop, raw


def test_bkscalar_reduced_mass_vertex_and_best_candidate(bkscalar_processor, tmp_path):
    """The selected candidate: M_red = sqrt(M^2 - 4 m_mu^2), d_v the decay radius, M_bc and dE of the B;
    with a second kaon of wrong momentum in the event, the smaller |dE| (the right one) is kept."""
    import synthetic_events as se

    event = _signal_event(radius=7.0)
    extra = se.Track(se.scaled(event.tracks[0].p4, 1.04), +1, 321)
    out = _run(bkscalar_processor, [event.adding(extra)], tmp_path, "best")
    h = out["histograms"]["synthetic"]
    m_red = h["m_reduced"][{"channel": "K_mumu", "region": "SR"}]
    filled = np.flatnonzero(m_red.values())
    assert len(filled) == 1
    assert m_red.axes[0].centers[filled[0]] == pytest.approx(np.sqrt(1.0 - 4 * se.MUON_MASS**2), abs=0.002)
    dv = h["dv"][{"channel": "K_mumu", "region": "SR"}]
    assert dv.axes[0].centers[np.flatnonzero(dv.values())[0]] == pytest.approx(7.0, abs=0.5)
    mbc_de = h["mbc_de"][{"channel": "K_mumu", "region": "no M_bc, dE cut"}].project("de")
    assert mbc_de.axes[0].centers[np.flatnonzero(mbc_de.values())[0]] == pytest.approx(0.0, abs=0.005)


# ------------------------------------------------------------------ 5. the vectorised peak scan
def test_peak_scan_limits_match_pyhf_full_fits():
    """Observed and expected 95 % CLs limits of the vectorised scan against pyhf (toms748 scan, asymptotic
    qtilde) on the same binned peak + linear background model, for a deficit and an excess."""
    import pyhf

    from belle_rare.stats import peak_scan

    rng = np.random.default_rng(3)
    edges = np.linspace(0.0, 4.8, 2401)
    centres = 0.5 * (edges[1:] + edges[:-1])
    counts = rng.poisson(40.0 * np.exp(-centres / 1.5) + 2.0).astype(float)
    masses = np.array([2.0, 3.3])
    w = peak_scan.windows(edges, counts, masses, 0.002 + 0.004 * masses)
    fast = peak_scan.upper_limits(w)
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer())
    for h in range(len(masses)):
        ws = pyhf.Workspace(peak_scan.pyhf_spec(w, h))
        model = ws.model()
        obs, exp = pyhf.infer.intervals.upper_limits.toms748_scan(ws.data(model), model, 0.0, 300.0, level=0.05, rtol=1e-5)
        assert fast.observed[h] == pytest.approx(float(obs), rel=2e-3)
        assert fast.expected[:, h] == pytest.approx([float(e) for e in exp], rel=2e-3)


def test_peak_scan_finds_an_injected_peak():
    """A peak injected at one mass raises that hypothesis's observed limit above its expected +2 sigma."""
    from belle_rare.stats import peak_scan

    rng = np.random.default_rng(4)
    edges = np.linspace(0.0, 4.8, 2401)
    centres = 0.5 * (edges[1:] + edges[:-1])
    expected = 20.0 * np.exp(-centres / 2.0) + 1.0
    counts = rng.poisson(expected).astype(float)
    counts += np.histogram(rng.normal(1.5, 0.005, 120), edges)[0]
    masses = np.array([1.0, 1.5, 2.5])
    limits = peak_scan.upper_limits(peak_scan.windows(edges, counts, masses, np.full(3, 0.005)))
    assert limits.observed[1] > limits.expected[4, 1]
    assert limits.observed[1] > 60.0
    assert np.all(limits.observed[[0, 2]] < limits.expected[4, [0, 2]])


def test_processor_fills_reweighted_lifetimes(tmp_path):
    """On a generated sample (c tau 10 cm): ``SR_ctau10`` is ``SR`` itself, shorter lifetimes and up to twice
    the generated one are filled from the truth record, longer ones are not (infinite-variance weights)."""
    from coffea.nanoevents import NanoEventsFactory

    from belle_rare.processors.registry import get_search
    from belle_rare.processors.schema import BelleSchema
    from belle_rare.simulation.production import Request, produce

    manifest = produce(Request(experiment="belle2", process="sig_bkscalar_mumu", events=1500, seed=9, out=tmp_path,
                               parameters={"mass": 1.0, "ctau": 10.0}), progress=False)
    path = str(tmp_path / manifest["files"][0]["path"])
    events = NanoEventsFactory.from_root({path: "tree"}, schemaclass=BelleSchema, mode="eager", metadata={
        "dataset": "sig", "filename": path, "kind": "signal", "parameters": {"ctau": 10.0}}).events()
    search = get_search("bkscalar")
    cfg = search.load_config().model_copy(update={"lifetimes_cm": [1.0, 10.0, 20.0, 50.0]})
    h = search.processor("belle2", cfg).process(events)["histograms"]["sig"]["m_reduced"]
    assert set(h.axes["region"]) == {"SR", "SR_ctau1", "SR_ctau10", "SR_ctau20"}
    total = {r: h[{"channel": "K_mumu", "region": r}].sum().value for r in h.axes["region"]}
    assert total["SR_ctau10"] == pytest.approx(total["SR"], rel=1e-9) and total["SR"] > 0
    # with 1 GeV S at beta gamma ~ 2.5, most 1 cm decays are inside the tracker: the shorter lifetime selects more
    assert total["SR_ctau1"] > total["SR"] > total["SR_ctau20"]
