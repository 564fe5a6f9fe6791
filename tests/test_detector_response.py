"""The public interface: collections and fields, determinism, empty input, ROOT writability, speed."""

from __future__ import annotations


import awkward as ak
import numpy as np
import pytest
import uproot

from belle_rare.simulation.detector import COLLECTIONS, load_detector, simulate_detector
from belle_rare.simulation.detector import toy_truth
from belle_rare.simulation.detector.pid import pass_probability_branch
from belle_rare.simulation.detector.tracking import covariance_branches

COMMON_FIELDS = {
    "Track": ["px", "py", "pz", "E", "charge", "dr", "dz", "pValue", "nCDCHits", "clusterE", "EoverP", "klmLayers"],
    "Photon": ["E", "px", "py", "pz", "clusterTheta", "clusterPhi", "clusterE9E21", "clusterReg", "clusterTiming", "clusterErrorTiming", "mcIndex", "mcPDG", "inTag"],
    "KLMCluster": ["theta", "phi", "layers", "innermostLayer", "mcIndex", "mcPDG"],
    "Pi0": ["px", "py", "pz", "E", "M", "gamma1Index", "gamma2Index", "mcIsPi0"],
    "V0": ["px", "py", "pz", "E", "M", "trackIndex1", "trackIndex2", "x", "y", "z", "flightDistance", "pValue",
           "mcIndex", "mcPDG", "hypothesis"],
    "Btag": ["Mbc", "deltaE", "sigProb", "charge", "flavour", "px", "py", "pz", "E", "isSignal", "mcIndex", "weight",
             "nTracks", "nPhotons"],
}
PID = {"belle": ["eIDBelle", "muIDBelle", "atcPIDBelle"],
       "belle2": ["electronID", "muonID", "pionID", "kaonID", "protonID"]}
INTEGER_FIELDS = {"charge", "nCDCHits", "klmLayers", "mcIndex", "mcPDG", "clusterReg", "layers", "innermostLayer",
                  "gamma1Index", "gamma2Index", "mcIsPi0", "trackIndex1", "trackIndex2", "flavour", "isSignal",
                  "inTag", "nTracks", "nPhotons", "hypothesis"}


def _events(name, n=300, seed=0):
    rng = np.random.default_rng(seed)
    return toy_truth.random_events(n, 15, 5, rng, experiment=name)


@pytest.mark.parametrize("name", ["belle", "belle2"])
def test_collections_and_fields(name):
    reco = simulate_detector(_events(name), load_detector(name), np.random.default_rng(1))
    assert tuple(reco) == COLLECTIONS
    expected = dict(COMMON_FIELDS)
    pid = load_detector(name).pid  # the PID values, then their working points' pass probabilities
    pass_probs = [pass_probability_branch(v, c) for v in PID[name] for c in pid.cuts_of(v)]
    covariance = [branch for branch, _, _ in covariance_branches()]  # perigee covariance, float64 (vertex fits)
    expected["Track"] = COMMON_FIELDS["Track"] + PID[name] + pass_probs + ["mcIndex", "mcPDG"] + covariance + ["inTag"]
    for collection, fields in expected.items():
        array = reco[collection]
        assert len(array) == 300
        assert array.fields == fields, collection
        for field in fields:
            dtype = ak.to_numpy(ak.flatten(array[field])).dtype
            wanted = np.int32 if field in INTEGER_FIELDS else np.float64 if field in covariance else np.float32
            assert dtype == wanted, (collection, field, dtype)


def test_deterministic_for_a_given_generator_state():
    params = load_detector("belle2")
    truth = _events("belle2")
    first = simulate_detector(truth, params, np.random.default_rng(7))
    second = simulate_detector(truth, params, np.random.default_rng(7))
    other = simulate_detector(truth, params, np.random.default_rng(8))
    for name in COLLECTIONS:
        assert ak.to_list(first[name]) == ak.to_list(second[name])
    assert ak.to_list(first["Track"]) != ak.to_list(other["Track"])


def test_indices_point_into_the_event_lists():
    reco = simulate_detector(_events("belle2", 500), load_detector("belle2"), np.random.default_rng(2))
    n_tracks, n_photons = ak.num(reco["Track"]), ak.num(reco["Photon"])
    assert ak.all(reco["V0"].trackIndex1 < n_tracks) and ak.all(reco["V0"].trackIndex2 < n_tracks)
    assert ak.all(reco["Pi0"].gamma1Index < n_photons) and ak.all(reco["Pi0"].gamma2Index < n_photons)
    assert ak.all(reco["Pi0"].gamma1Index != reco["Pi0"].gamma2Index)
    assert ak.all(reco["Track"].mcIndex < 20)


def test_events_without_particles():
    empty = {f: ak.Array([[]] * 5) for f in ("pdg", "status", "mother", "px", "py", "pz", "E", "mass", "x", "y", "z", "t")}
    from belle_rare.simulation.truth import make_truth

    truth = make_truth({f: ak.values_astype(v, np.float64) for f, v in empty.items()}, toy_truth.nominal_beams("belle", 5))
    reco = simulate_detector(truth, load_detector("belle"), np.random.default_rng(3))
    assert all(len(reco[name]) == 5 for name in COLLECTIONS)
    assert ak.sum(ak.num(reco["Btag"])) == 0


def test_collections_write_as_root_branches(tmp_path):
    reco = simulate_detector(_events("belle2", 50), load_detector("belle2"), np.random.default_rng(4))
    path = tmp_path / "reco.root"
    with uproot.recreate(path) as out:
        out.mktree("tree", {name: array.type.content for name, array in reco.items()})
        out["tree"].extend(dict(reco))
    with uproot.open(path) as f:
        tree = f["tree"]
        assert "nTrack" in tree and "Track_px" in tree and "Btag_Mbc" in tree and "V0_flightDistance" in tree
        np.testing.assert_array_equal(tree["nTrack"].array(library="np"), ak.to_numpy(ak.num(reco["Track"])))

