"""PID weighting: stored pass probabilities reproduce the thrown PID, and the weighted yield closes.

* ``Track_<var>_passProb_<cut>`` is P(PID > cut) of the distribution the PID value is drawn from, so
  summed over tracks it equals the number of tracks passing the cut within binomial errors, for
  every stored working point (and, at the standard cut, the configured table).
* ``at_least_tight`` agrees with a brute-force count over thrown nested outcomes.
* Closure on synthetic "events" of three tracks: the weighted yield of "all three pass the loose
  cut and >= 2 pass the tight one" equals the thrown count within errors, with a smaller error.
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
from scipy.special import expit

from belle_rare.core.errors import UserError
from belle_rare.processors import pid_weighting
from belle_rare.simulation.detector import load_detector, simulate_detector, toy_truth
from belle_rare.simulation.detector.params import Pid
from belle_rare.simulation.detector.pid import latent_means, pass_probabilities, pass_probability_branch, species_index

N = 20000


def _gun_tracks(experiment: str, pdg: int, seed: int) -> ak.Array:
    rng = np.random.default_rng(seed)
    sign = np.where(rng.random(N) < 0.5, 1, -1)
    truth = toy_truth.particle_gun(pdg * sign, rng.uniform(0.3, 3.0, N), np.arccos(rng.uniform(-0.5, 0.8, N)),
                                   rng.uniform(-np.pi, np.pi, N), experiment=experiment)
    tracks = simulate_detector(truth, load_detector(experiment), rng)["Track"]
    return ak.flatten(tracks[tracks.mcIndex == 0])


def test_branch_names():
    assert pass_probability_branch("muonID", 0.9) == "muonID_passProb_0p9"
    assert pass_probability_branch("muIDBelle", 0.95) == "muIDBelle_passProb_0p95"


@pytest.mark.parametrize("experiment,pdg", [("belle2", 13), ("belle2", 211), ("belle2", 321), ("belle", 211), ("belle", 11)])
def test_pass_probabilities_match_thrown_pid(experiment: str, pdg: int):
    cfg = load_detector(experiment).pid
    tracks = _gun_tracks(experiment, pdg, seed=1000 + pdg)
    checked = 0
    for variable in cfg.variables:
        for cut in cfg.cuts_of(variable):
            prob = ak.to_numpy(tracks[pass_probability_branch(variable, cut)]).astype(float)
            passed = ak.to_numpy(tracks[variable]) > cut
            sigma = np.sqrt(max(np.sum(prob * (1 - prob)), 4.0))
            assert abs(passed.sum() - prob.sum()) < 4 * sigma, (variable, cut, passed.sum(), prob.sum())
            checked += 1
    assert checked >= len(cfg.variables) + 3  # the extra working points are stored


def test_pass_probability_at_standard_cut_is_the_table():
    cfg = load_detector("belle2").pid
    momentum = np.array([0.8, 1.2, 2.0])
    pdg = np.array([13, 211, 321])
    probs = pass_probabilities(pdg, momentum, cfg)
    table = cfg.variables["muonID"].efficiency
    expected = [table.mu(momentum[:1])[0], table.pi(momentum[1:2])[0], table.K(momentum[2:])[0]]
    cut = cfg.variables["muonID"].cut
    np.testing.assert_allclose(probs[pass_probability_branch("muonID", cut)], expected, rtol=1e-9)


def test_unknown_working_point_variable_is_a_config_error():
    cfg = load_detector("belle2").pid.model_dump()
    cfg["working_points"] = {"muID": [0.5]}
    with pytest.raises(ValueError, match="working_points"):
        Pid.model_validate(cfg)


def test_missing_branch_names_the_yaml_key():
    tracks = ak.Array([[{"muonID": 0.3}]])
    with pytest.raises(UserError, match="pid.working_points.muonID"):
        pid_weighting.pass_probability(tracks, "muonID", 0.7)


def _nested_tracks(n_events: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Three tracks per event, mixed muons and pions: their thrown muonID, P(>0.5) and P(>0.9)."""
    cfg = load_detector("belle2").pid
    var = cfg.variables["muonID"]
    pdg = np.where(rng.random(3 * n_events) < 0.3, 13, 211)
    momentum = rng.uniform(0.5, 3.0, 3 * n_events)
    mu = latent_means(var, species_index(pdg), momentum, cfg.latent_width)
    thrown = expit(mu + cfg.latent_width * rng.standard_normal(len(mu)))
    probs = pass_probabilities(pdg, momentum, cfg)
    shape = (n_events, 3)
    return (thrown.reshape(shape), probs[pass_probability_branch("muonID", 0.5)].reshape(shape),
            probs[pass_probability_branch("muonID", 0.9)].reshape(shape), pdg.reshape(shape))


def test_at_least_tight_matches_enumeration():
    loose = [np.array([0.9, 0.5]), np.array([0.8, 0.4]), np.array([0.7, 0.3])]
    tight = [np.array([0.6, 0.2]), np.array([0.5, 0.1]), np.array([0.4, 0.3])]
    # brute force over (fail, loose-only, tight) per track
    expected = np.zeros(2)
    for states in np.ndindex(3, 3, 3):
        if 0 in states or sum(s == 2 for s in states) < 2:
            continue
        term = np.ones(2)
        for k, s in enumerate(states):
            term = term * (tight[k] if s == 2 else loose[k] - tight[k])
        expected += term
    np.testing.assert_allclose(pid_weighting.at_least_tight(loose, tight, 2), expected)
    np.testing.assert_allclose(pid_weighting.at_least_tight(loose, tight, 0), loose[0] * loose[1] * loose[2])


def test_weighted_yield_closes_with_thrown_pid_and_is_more_precise():
    """tau3mu-like requirement on 60000 synthetic 3-track events (30 % muons): weighted = thrown."""
    rng = np.random.default_rng(5)
    thrown, p_loose, p_tight, _ = _nested_tracks(60000, rng)
    passed = np.all(thrown > 0.5, axis=1) & (np.sum(thrown > 0.9, axis=1) >= 2)
    weight = pid_weighting.at_least_tight(list(p_loose.T), list(p_tight.T), 2)
    n_thrown, n_weighted = passed.sum(), weight.sum()
    err_thrown, err_weighted = np.sqrt(n_thrown), np.sqrt(np.sum(weight**2))
    assert n_thrown > 500
    assert abs(n_thrown - n_weighted) < 4 * np.hypot(err_thrown, err_weighted), (n_thrown, n_weighted)
    assert err_weighted < 0.8 * err_thrown


def test_veto_is_one_minus_the_pass_probability():
    p = ak.Array([[0.1, 0.5], [0.2]])
    vetoed = ak.Array([[True, False], [True]])
    np.testing.assert_allclose(pid_weighting.veto(p, vetoed), [0.9, 0.8])


def test_any_candidate_is_exact_without_shared_tracks_and_bounds_with_them():
    # tracks with pass probabilities p; candidate A = tracks (0, 1), B = (2, 3) or (1, 2) (sharing track 1)
    p = np.array([0.3, 0.6, 0.5, 0.2])
    outcomes = np.array(list(np.ndindex(2, 2, 2, 2)), dtype=bool)
    prob = np.prod(np.where(outcomes, p, 1 - p), axis=1)
    for b_tracks in ((2, 3), (1, 2)):
        a_pass, b_pass = outcomes[:, 0] & outcomes[:, 1], outcomes[:, b_tracks[0]] & outcomes[:, b_tracks[1]]
        exact = prob[a_pass | b_pass].sum()
        cand = ak.Array([[p[0] * p[1], p[b_tracks[0]] * p[b_tracks[1]]]])
        weight = pid_weighting.any_candidate(cand, ak.Array([[True, True]]))[0]
        if b_tracks == (2, 3):
            assert weight == pytest.approx(exact)
        else:
            assert max(p[0] * p[1], p[1] * p[2]) <= exact <= weight
    # invalid candidates do not count
    assert pid_weighting.any_candidate(ak.Array([[0.5, 0.5]]), ak.Array([[True, False]]))[0] == pytest.approx(0.5)


def test_only_background_simulation_is_pid_weighted_and_its_branches_are_required():
    from types import SimpleNamespace

    from belle_rare.processors.registry import get_search

    search = get_search("tau3mu")
    proc = search.processor("belle2", search.load_config(), pid_weighting=True)
    chunk = lambda **meta: SimpleNamespace(metadata=meta)  # noqa: E731 (pid_weighted reads only the metadata)
    assert proc.pid_weighted(chunk(dataset="tautau", kind="background", is_data=False))
    assert not proc.pid_weighted(chunk(dataset="sig_tau3mu", kind="signal", is_data=False))
    assert not proc.pid_weighted(chunk(dataset="data", kind="data", is_data=True))
    # without a kind (synthetic chunks): the config's signal datasets are signal, the rest background
    assert not proc.pid_weighted(chunk(dataset="sig_tau3mu")) and proc.pid_weighted(chunk(dataset="anything"))
    assert {"Track_muonID_passProb_0p5", "Track_muonID_passProb_0p9"} <= set(proc.required_branches())
    plain = search.processor("belle2", search.load_config(), pid_weighting=False)
    assert not plain.pid_weighted(chunk(dataset="tautau", kind="background", is_data=False))
    assert not any("passProb" in b for b in plain.required_branches())


def test_pid_weighting_is_the_default_where_the_background_estimate_rests_on_it():
    """tau3mu and taulphi weight background unless told not to (`belle-rare run --no-pid-weights`), so a
    plain run gives the same r_MC / ABCD estimate as the PID-weighted training; taulgamma keeps the thrown PID."""
    import argparse

    from belle_rare.analyses import run_command
    from belle_rare.processors.registry import get_search

    for name, experiment, default in (("tau3mu", "belle2", True), ("taulphi", "belle2", True), ("taulgamma", "belle", False)):
        search = get_search(name)
        assert search.processor(experiment, search.load_config()).pid_weighting is default, name
        assert search.processor(experiment, search.load_config(), pid_weighting=not default).pid_weighting is (not default)
    parser = argparse.ArgumentParser()
    run_command.register(parser.add_subparsers())
    base = ["run", "taulphi", "--experiment", "belle2", "--samples", "s", "--out", "o"]
    assert parser.parse_args(base).pid_weights is None  # the search decides
    assert parser.parse_args(base + ["--pid-weights"]).pid_weights is True
    assert parser.parse_args(base + ["--no-pid-weights"]).pid_weights is False
    with pytest.raises(SystemExit):
        parser.parse_args(base + ["--pid-weights", "--no-pid-weights"])


# ---------------------------------------------------------------------------------------------
# taulgamma: closure of the PID-weighted signal lepton ID and tag-side lepton veto on tau pairs


@pytest.fixture(scope="module")
def belle_tautau(tmp_path_factory):
    from belle_rare.simulation.production import Request, produce

    out = tmp_path_factory.mktemp("lgpid_tautau")
    produce(Request("belle", "tautau", 10000, 3, out, events_per_file=10000), progress=False)
    return sorted(out.glob("belle_tautau_*.root"))


def _taulgamma_stage_weights(proc, paths, weighted: bool, stages: dict[str, tuple[str, ...]]) -> dict[tuple[str, str], np.ndarray]:
    """(channel, stage) -> per-event weight inside the stage (0 outside), thrown or PID-weighted."""
    from coffea.nanoevents import NanoEventsFactory

    from belle_rare.processors.base import Calibration, with_trigger
    from belle_rare.processors.schema import BelleSchema

    proc.pid_weighting = weighted
    out: dict[tuple[str, str], list[np.ndarray]] = {}
    for path in paths:
        meta = {"dataset": "tautau", "filename": str(path), "kind": "background", "is_data": False}
        events = NanoEventsFactory.from_root({str(path): "tree"}, schemaclass=BelleSchema, metadata=meta, mode="eager").events()
        objects, fired = proc.objects(events, Calibration()), proc.trigger_fired(events)
        for channel in proc.channels:
            selection = with_trigger(proc.select(events, objects, channel), fired)
            w = proc.event_weights(events, selection, channel, is_data=False).weight()
            for label, names in stages.items():
                out.setdefault((channel, label), []).append(np.where(selection.passing(*names), w, 0.0))
    return {k: np.concatenate(v) for k, v in out.items()}


def test_taulgamma_weighted_yield_closes_with_thrown_pid_on_tau_pairs(belle_tautau):
    """Loosened selection (muIDBelle > 0.9, every photon a signal-photon candidate) so that the thrown
    PID keeps tens of tau-pair events: the PID-weighted yield (lepton ID pass probability x (1 - the
    tag track's probability to pass the 0.1 veto cut)) agrees within 3 sigma of the per-event
    difference, from many more contributing events. Without the per-candidate brems recovery the
    e gamma preselection was 2 sigma high on 20k events."""
    from belle_rare.processors.registry import get_search
    from belle_rare.processors.taulgamma import STEPS

    search = get_search("taulgamma")
    cfg = search.load_config()
    loose = cfg.model_copy(update={"pid": cfg.pid.model_copy(update={"muon_cut": 0.9}),
                                   "photons": cfg.photons.model_copy(update={"signal_e_min": 0.1, "signal_cos_theta": cfg.photons.cos_theta})})
    proc = search.processor("belle", loose, pid_weighting=True)
    assert {"Track_muIDBelle_passProb_0p9", "Track_eIDBelle_passProb_0p9", "Track_muIDBelle_passProb_0p1",
            "Track_eIDBelle_passProb_0p1"} <= set(proc.required_branches())
    stages = {"preselection": STEPS, "+ E_total, cos_tracks, p_miss": STEPS + ("e_total", "cos_tracks", "p_miss")}
    thrown = _taulgamma_stage_weights(proc, belle_tautau, False, stages)
    weighted = _taulgamma_stage_weights(proc, belle_tautau, True, stages)
    for key, w_t in thrown.items():
        w_w = weighted[key]
        n_t, n_w = w_t.sum(), w_w.sum()
        e_diff = np.sqrt(((w_t - w_w) ** 2).sum())
        assert (w_t > 0).sum() >= 30, key  # the closure has statistics
        assert (w_w > 0).sum() > 5 * (w_t > 0).sum(), key  # every candidate contributes
        assert abs(n_w - n_t) < 3 * e_diff, (key, n_t, n_w, e_diff)
