"""L1 trigger emulation (simulation/detector/trigger.py) on small synthetic reconstructed events, and
the trigger cut of the base processor (processors/base.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import awkward as ak
import numpy as np
import pytest
import yaml

from belle_rare.configs.loader import ConfigError, config_path
from belle_rare.core.errors import UserError
from belle_rare.processors.base import TRIGGER_CUT, SearchProcessor, Selection, packed
from belle_rare.simulation.detector import load_detector
from belle_rare.simulation.detector.trigger import branch_name, emulate_trigger, trigger_inputs
from belle_rare.simulation.ntuple import write_ntuple
from synthetic_events import Event, Track, beams, columns, from_angles, read_events

MIP = 0.19  # GeV, a muon's cluster (configs/detector/belle2.yaml calorimeter.mip)


def reco_events(experiment: str, events: list[dict]) -> tuple[dict[str, ak.Array], np.ndarray]:
    """A ``simulate_detector``-like dict from events given in the CM frame.

    Each event: ``{"tracks": [(p, cos_theta, phi, charge, cluster_E_or_None_for_lab_E, hits, klm)],
    "photons": [(E, cos_theta, phi)]}``; a track's cluster energy ``None`` means its full lab energy.
    """
    b = beams(experiment)
    trk = {k: [] for k in ("px", "py", "pz", "charge", "nCDCHits", "clusterE", "klmLayers")}
    pho = {k: [] for k in ("E", "clusterTheta", "clusterPhi")}
    for ev in events:
        rows = {k: [] for k in trk}
        for p, cos_theta, phi, charge, cluster, hits, klm in ev.get("tracks", []):
            lab = b.to_lab(from_angles(p, cos_theta, phi, 0.0))
            for k, v in zip(("px", "py", "pz"), lab[:3]):
                rows[k].append(v)
            rows["charge"].append(charge)
            rows["nCDCHits"].append(hits)
            rows["clusterE"].append(lab.E if cluster is None else cluster)
            rows["klmLayers"].append(klm)
        for k in trk:
            trk[k].append(rows[k])
        rows = {k: [] for k in pho}
        for e, cos_theta, phi in ev.get("photons", []):
            lab = b.to_lab(from_angles(e, cos_theta, phi, 0.0))
            rows["E"].append(lab.E)
            rows["clusterTheta"].append(math.atan2(math.hypot(lab.px, lab.py), lab.pz))
            rows["clusterPhi"].append(math.atan2(lab.py, lab.px))
        for k in pho:
            pho[k].append(rows[k])
    reco = {"Track": ak.zip({k: ak.Array(v) for k, v in trk.items()}), "Photon": ak.zip({k: ak.Array(v) for k, v in pho.items()})}
    beam = np.tile([b.px, b.py, b.pz, b.E], (len(events), 1))
    return reco, beam


def fire(experiment: str, events: list[dict], seed: int = 1, params=None) -> dict[str, np.ndarray]:
    params = params or load_detector(experiment)
    reco, beam = reco_events(experiment, events)
    bits = emulate_trigger(reco, beam, params, np.random.default_rng(seed))
    return {name[len("L1PSNM__bo"):-len("__bc")]: v for name, v in bits.items()}


def with_efficiencies(experiment: str, **changes):
    """The shipped detector with per-object trigger efficiencies set (e.g. tracks=1.0)."""
    params = load_detector(experiment)
    trigger = params.trigger.model_copy(update={
        name: getattr(params.trigger, name).model_copy(update={"efficiency": eff}) for name, eff in changes.items()})
    return params.model_copy(update={"trigger": trigger})


E_BEAM = 10.58 / 2
BHABHA = {"tracks": [(E_BEAM, 0.0, 0.3, -1, None, 50, 0), (E_BEAM, 0.0, 0.3 + math.pi, +1, None, 50, 0)]}
MU_PAIR = {"tracks": [(E_BEAM, 0.0, 0.3, -1, MIP, 50, 14), (E_BEAM, 0.0, 0.3 + math.pi, +1, MIP, 50, 14)]}


def test_branch_names_follow_basf2_make_root_compatible():
    # basf2: L1PSNM(hie) -> makeROOTCompatible: "(" -> "__bo", ")" -> "__bc"
    assert branch_name("hie") == "L1PSNM__bohie__bc"
    assert branch_name("mu_pair") == "L1PSNM__bomu_pair__bc"
    with pytest.raises(ValueError):
        branch_name("ff(y)")


def test_bhabha_is_vetoed_and_selected_before_prescale():
    exact = with_efficiencies("belle2", tracks=1.0)
    reco, beam = reco_events("belle2", [BHABHA])
    x = trigger_inputs(reco, beam, exact, np.random.default_rng(0))
    assert x.bhabha_veto[0] and x.bhabha_selection[0] and x.n_tracks[0] == 2
    bits = fire("belle2", [BHABHA], params=exact)
    for line in ("ff", "ffo", "ffb", "hie", "c4", "lml0", "lml6", "lml10", "ecltaub2b"):
        assert not bits[line][0], line
    assert bits["lume"][0] and bits["lml1"][0]  # no Bhabha veto in their definitions


def test_muon_pair_fires_track_and_klm_lines_not_hie():
    bits = fire("belle2", [MU_PAIR], params=with_efficiencies("belle2", tracks=1.0, klm=1.0))
    assert bits["ff"][0] and bits["ffo"][0] and bits["ffb"][0] and bits["mu_pair"][0] and bits["lml10"][0]
    assert not bits["fff"][0] and not bits["hie"][0] and not bits["c4"][0]


def test_three_tracks_fire_fff_and_track_thresholds():
    exact = with_efficiencies("belle2", tracks=1.0)
    three = {"tracks": [(1.0, 0.0, 0.0, -1, MIP, 50, 0), (1.0, 0.1, 2.0, +1, MIP, 50, 0), (1.0, -0.1, 4.0, -1, MIP, 50, 0)]}
    soft = {"tracks": [(1.0, 0.0, 0.0, -1, MIP, 50, 0), (1.0, 0.1, 2.0, +1, MIP, 50, 0), (0.2, -0.1, 4.0, -1, MIP, 50, 0)]}
    short = {"tracks": [(1.0, 0.0, 0.0, -1, MIP, 50, 0), (1.0, 0.1, 2.0, +1, MIP, 50, 0), (1.0, -0.1, 4.0, -1, MIP, 30, 0)]}
    bits = fire("belle2", [three, soft, short], params=exact)
    assert bits["fff"].tolist() == [True, False, False]  # pT < 0.3 GeV and too few CDC hits do not count
    assert bits["ff"].tolist() == [True, True, True]


def test_hie_threshold_and_theta_rings():
    # one photon at CM 90 deg; lab energies just below / above 1 GeV; one in the backward endcap (not summed)
    b = beams("belle2")

    def cm_energy_for_lab(e_lab: float, cos_theta: float) -> float:
        lab = b.to_lab(from_angles(1.0, cos_theta, 0.0, 0.0))
        return e_lab / lab.E

    events = [{"photons": [(cm_energy_for_lab(e, 0.0), 0.0, 0.0)]} for e in (0.95, 1.05)]
    events.append({"photons": [(cm_energy_for_lab(1.5, -0.85), -0.85, 0.0)]})  # lab theta ~ 140 deg
    bits = fire("belle2", events)
    assert bits["hie"].tolist() == [False, True, False]
    assert bits["lowe"].tolist() == [True, True, False]


def test_prescale_and_line_efficiency_statistics():
    n = 20_000
    bits = fire("belle2", [BHABHA] * n, seed=3, params=with_efficiencies("belle2", tracks=1.0))
    k = bits["bha3d"].sum()  # prescale 100
    assert abs(k - n / 100) < 5 * math.sqrt(n / 100 * 0.99)
    single = {"tracks": [(2.0, 0.0, 0.0, -1, MIP, 50, 0)]}
    f = fire("belle2", [single] * n, seed=4)["f"].mean()  # per-track efficiency 0.96
    assert abs(f - 0.96) < 5 * math.sqrt(0.96 * 0.04 / n)


def test_belle_lines():
    exact = with_efficiencies("belle", tracks=1.0, short_tracks=1.0, klm=1.0)
    hadronic = {"tracks": [(1.0, 0.2 * i - 0.4, 1.2 * i, (-1) ** i, 0.5, 50, 0) for i in range(5)]}
    bits = fire("belle", [BHABHA, MU_PAIR, hadronic], params=exact)
    assert bits["two_track"].tolist() == [False, True, True]  # Bhabha vetoed
    assert bits["three_track"].tolist() == [False, False, True]
    assert bits["hie"].tolist() == [False, False, True]
    assert bits["icn4"].tolist() == [False, False, True]
    assert bits["klm_mu"].tolist() == [False, True, False]


def test_deterministic_and_own_stream():
    events = [BHABHA, MU_PAIR] * 50
    a, b = fire("belle2", events, seed=9), fire("belle2", events, seed=9)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_unknown_line_is_a_config_error(tmp_path):
    data = yaml.safe_load(config_path("detector", "belle2.yaml").read_text())
    data["trigger"]["lines"]["yyy"] = {}
    path = tmp_path / "belle2.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="yyy"):
        load_detector(path)


# ------------------------------------------------------------------------------ processor cut
class OneCut(SearchProcessor):
    name = "toy_trigger"
    channels = ("a",)
    branches = ("__weight__",)

    def book(self):
        return {}

    def select(self, events, objects, channel):
        n = len(events)
        cuts = packed({"anything": np.ones(n, bool)})
        return Selection(cuts=cuts, regions={"SR": np.ones(n, bool)})


def _sample(tmp_path, hie: list[bool]):
    event_level, collections = columns("belle2", [Event([Track(from_angles(1.0, 0.0, 0.0, 0.14), -1, 211)])] * len(hie))
    event_level[branch_name("hie")] = np.asarray(hie)
    event_level[branch_name("ff")] = np.zeros(len(hie), bool)
    path = tmp_path / "bits.root"
    write_ntuple(path, event_level, collections)
    return read_events(path, "toy", mode="eager")


def test_processor_requires_the_or_of_its_lines_first(tmp_path):
    proc = OneCut("belle2", SimpleNamespace(trigger=["hie", "ff"]))
    assert branch_name("hie") in proc.required_branches()
    events = _sample(tmp_path, [True, False, True])
    raw = proc.process(events)["cutflow"]["toy"]["a"]["raw"]
    assert list(raw) == ["all events", TRIGGER_CUT, "anything"]
    assert raw[TRIGGER_CUT] == raw["anything"] == 2
    selection = next(proc._passes(events, True))[2]
    assert selection.regions["SR"].tolist() == [True, False, True]
    assert selection.passing("anything").tolist() == [True, False, True]


def test_missing_bit_branch_is_a_one_line_error(tmp_path):
    proc = OneCut("belle2", SimpleNamespace(trigger=["hie", "yyy"]))
    with pytest.raises(UserError, match="L1PSNM__boyyy__bc") as err:
        proc.process(_sample(tmp_path, [True]))
    assert "\n" not in str(err.value)


def test_c4_counts_forward_and_barrel_clusters_only():
    # four 0.5 GeV (CM) photons in the backward endcap (lab theta ~ 140 deg) and four in the barrel
    backward = {"photons": [(0.5, -0.85, 1.5 * k) for k in range(4)]}
    barrel = {"photons": [(0.5, 0.0, 1.5 * k) for k in range(4)]}
    bits = fire("belle2", [backward, barrel])
    assert bits["c4"].tolist() == [False, True]  # TrgEclMaster: icn = getICNFwBr()
    assert bits["lml0"].tolist() == [True, True]  # >= 3 clusters anywhere, one above 0.3 GeV


def test_largest_cluster_is_per_event():
    # an event without clusters between two with clusters: ecltaub2b's "every cluster < 1.9 GeV" is per event
    soft = {"tracks": [(E_BEAM, 0.0, 0.3, -1, MIP, 50, 14), (E_BEAM, 0.0, 0.3 + math.pi, +1, MIP, 50, 14)]}
    hard = {"photons": [(3.0, 0.0, 0.0)]}
    reco, beam = reco_events("belle2", [soft, {}, hard])
    x = trigger_inputs(reco, beam, load_detector("belle2"), np.random.default_rng(0))
    assert x.max_cluster_lab[1] == 0.0 and x.max_cluster_lab[0] < 0.3 and x.max_cluster_lab[2] > 2.5
