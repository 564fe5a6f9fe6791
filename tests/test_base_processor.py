"""The base processor's machinery on a toy search and synthetic events: calibrations and weight
variations, which histograms get a variation axis, the cutflow from the PackedSelection, data,
and nothing kept on the processor."""

from __future__ import annotations

import numpy as np
import pytest
from coffea.analysis_tools import Weights

from belle_rare import corrections
from belle_rare.core.histograms import new_hist, regular
from belle_rare.processors.base import Calibration, SearchProcessor, Selection, add_varied, calibrations, packed
from synthetic_events import Event, Track, from_angles, make_events

PION_MASS = 0.13957


class ToyProcessor(SearchProcessor):
    """Tracks above a momentum cut; the total momentum with its calibration."""

    name = "toy"
    experiments = ("belle2",)
    channels = ("a", "b")
    branches = ("nTrack", "Track_px", "Track_py", "Track_pz", "__weight__")

    def book(self):
        return {"yields": new_hist(regular(1, 0, 1, "x"), systematics=True), "p": new_hist(regular(100, 0, 20, "p"))}

    def objects(self, events, calibration: Calibration):
        p = np.sqrt(events.Track.px**2 + events.Track.py**2 + events.Track.pz**2) * calibration.momentum_scale
        return {"p_sum": np.asarray(np.sum(p, axis=1)), "n": np.asarray(np.count_nonzero(p > 1.0, axis=1))}

    def select(self, events, objects, channel):
        cuts = packed({"one track": objects["n"] >= 1, "two tracks": objects["n"] >= 2})
        return Selection(cuts=cuts, values=dict(objects), regions={"SR": cuts.all("one track", "two tracks")})

    def add_weights(self, weights: Weights, selection, channel):
        n = len(selection.values["n"])
        cset = corrections.load(self.experiment)
        add_varied(weights, "tracking", lambda s: corrections.tracking_weight(cset, 2, s), n)

    def fill(self, hists, selection, channel, variation, weight):
        m = selection.regions["SR"]
        hists["yields"].fill(channel=channel, region="SR", variation=variation, x=np.full(m.sum(), 0.5), weight=weight[m])

    def fill_nominal(self, hists, selection, channel, weight):
        m = selection.regions["SR"]
        hists["p"].fill(channel=channel, region="SR", p=selection.values["p_sum"][m], weight=weight[m])


def _events(tmp_path, is_data=False):
    track = Track(from_angles(3.0, 0.3, 0.0, PION_MASS), charge=1, pdg=211)
    other = Track(from_angles(2.0, -0.3, 3.0, PION_MASS), charge=-1, pdg=211)
    slow = Track(from_angles(0.5, 0.1, 1.0, PION_MASS), charge=-1, pdg=211)
    sample = [Event((track, other), weight=2.0), Event((track, slow)), Event((slow,)), Event((track, other))]
    return make_events("belle2", sample, tmp_path, is_data=is_data, mode="eager")


def test_variations_cutflow_and_layout(tmp_path):
    out = ToyProcessor("belle2", None).process(_events(tmp_path))
    hists = out["histograms"]["synthetic"]
    # the yields carry nominal, the calibration shifts and the one weight source this search applies
    assert set(hists["yields"].axes["variation"]) == {"nominal", "trackingUp", "trackingDown", "momentumScaleUp",
                                                      "momentumScaleDown", "photonEnergyUp", "photonEnergyDown"}
    assert "variation" not in hists["p"].axes.name
    cset = corrections.load("belle2")
    nominal_w = corrections.tracking_weight(cset, 2, "nominal")
    y = hists["yields"][{"channel": "a", "region": "SR", "x": sum}]
    assert y[{"variation": "nominal"}].value == pytest.approx(3.0 * nominal_w)  # events 1 (w = 2) and 4
    assert y[{"variation": "trackingUp"}].value == pytest.approx(3.0 * corrections.tracking_weight(cset, 2, "up"))
    assert y[{"variation": "trackingUp"}].value > y[{"variation": "nominal"}].value > y[{"variation": "trackingDown"}].value
    cutflow = out["cutflow"]["synthetic"]["b"]
    assert cutflow["raw"] == {"all events": 4.0, "one track": 3.0, "two tracks": 2.0}
    assert cutflow["weighted"]["all events"] == pytest.approx(5.0)  # generator weights only
    assert cutflow["weighted"]["two tracks"] == pytest.approx(3.0 * nominal_w)
    assert out["processed"]["synthetic"] == {str(tmp_path / "synthetic.root"): 4}


def test_a_calibration_reruns_the_selection(tmp_path):
    events = _events(tmp_path)
    proc = ToyProcessor("belle2", None)
    by_momentum = {c.momentum: proc.objects(events, c)["p_sum"] for c in calibrations("belle2", False) if c.photon_energy == "nominal"}
    assert np.all(by_momentum["up"] > by_momentum["nominal"]) and np.all(by_momentum["nominal"] > by_momentum["down"])


def test_data_get_the_nominal_pass_without_corrections(tmp_path):
    proc = ToyProcessor("belle2", None)
    out = proc.process(_events(tmp_path, is_data=True))
    y = out["histograms"]["synthetic"]["yields"]
    assert list(y.axes["variation"]) == ["nominal"]
    assert y[{"channel": "a", "region": "SR", "variation": "nominal", "x": sum}].value == pytest.approx(3.0)
    assert vars(proc).keys() == {"experiment", "config", "model_dir", "training", "pid_weighting"}  # nothing kept from processing


def test_unknown_experiment_is_refused():
    with pytest.raises(ValueError, match="defined for belle2"):
        ToyProcessor("belle", None)


def test_flat_packed_selection_packs_as_coffea():
    """``FlatPackedSelection.add`` (numpy masks without coffea's type checks) gives coffea's packed
    words; awkward / option-type masks still go through coffea; a repeated name is refused."""
    import awkward as ak
    from coffea.analysis_tools import PackedSelection

    from belle_rare.processors.base import FlatPackedSelection

    rng = np.random.default_rng(5)
    masks = {f"cut{i}": rng.random(257) < 0.7 for i in range(40)}
    fast, ref = FlatPackedSelection(dtype="uint64"), PackedSelection(dtype="uint64")
    for name, mask in masks.items():
        fast.add(name, mask)
        ref.add(name, mask)
    optional = ak.Array([True, None, False] * 85 + [True, None])
    fast.add("optional", optional)
    ref.add("optional", optional)
    assert fast.names == ref.names
    assert np.array_equal(fast._data, ref._data)
    assert np.array_equal(fast.all(*fast.names), ref.all(*ref.names)) and fast.all("cut3", "optional").sum() > 0
    with pytest.raises(ValueError, match="already exists"):
        fast.add("cut0", masks["cut0"])
    with pytest.raises(ValueError, match="different shape"):
        fast.add("short", masks["cut0"][:10])
    assert isinstance(packed({"a": masks["cut0"]}), FlatPackedSelection)


def test_flat_weights_weigh_as_coffea():
    """``FlatWeights.add`` (numpy arrays without coffea's type checks) gives coffea's weights and
    modifiers bit for bit: zeros in the nominal, up only, relative shifts, an awkward weight."""
    import awkward as ak

    from belle_rare.processors.base import FlatWeights

    rng = np.random.default_rng(6)
    n = 301
    fast, ref = FlatWeights(n), Weights(n)
    for k in range(6):
        nominal = rng.uniform(0.5, 1.5, n)
        nominal[rng.random(n) < 0.1] = 0.0
        up, down = nominal * rng.uniform(1.0, 1.1, n), nominal * rng.uniform(0.9, 1.0, n)
        args = [(nominal,), (nominal, up), (nominal, up, down), (nominal, up - nominal, nominal - down)][k % 4]
        shift = k == 3
        fast.add(f"w{k}", *[a.copy() for a in args], shift=shift)
        ref.add(f"w{k}", *[a.copy() for a in args], shift=shift)
    fast.add("jagged_free", ak.Array(np.full(n, 0.5)))
    ref.add("jagged_free", ak.Array(np.full(n, 0.5)))
    assert fast.variations == ref.variations and len(ref.variations) == 8
    assert np.array_equal(fast.weight(), ref.weight())
    for modifier in ref.variations:
        assert np.array_equal(fast.weight(modifier), ref.weight(modifier), equal_nan=True), modifier  # 0 / 0 in Down
    assert {k: tuple(v.__dict__.values()) for k, v in fast.weightStatistics.items()} == \
        {k: tuple(v.__dict__.values()) for k, v in ref.weightStatistics.items()}
    with pytest.raises(ValueError, match="already exists"):
        fast.add("w0", np.ones(n))


def test_long_lived_objects_are_frozen_once_per_process(monkeypatch):
    """``process`` freezes the objects alive at a process's first chunk (``gc.freeze``), once."""
    import gc

    from belle_rare.processors import base

    calls = []
    monkeypatch.setattr(base, "_FROZEN_IN", None)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append(1))
    base.freeze_long_lived_objects()
    base.freeze_long_lived_objects()
    assert calls == [1]


def test_a_pickled_processor_is_unpickled_once_per_process():
    """coffea ships the processor with every chunk: its pickle restores the same instance for the same
    state (no per-chunk unpickling of its models) and a new one when the state differs."""
    import pickle

    import cloudpickle

    from belle_rare.processors.registry import get_search

    search = get_search("zprime")
    proc = search.processor("belle2", search.load_config())
    blob = cloudpickle.dumps(proc)
    first, second = pickle.loads(blob), pickle.loads(blob)
    assert first is second and first is not proc and type(first) is type(proc)
    assert set(first.__dict__) == set(proc.__dict__)
    assert first.required_branches() == proc.required_branches()
    other = search.processor("belle2", search.load_config(), pid_weighting=not proc.pid_weighting)
    assert pickle.loads(cloudpickle.dumps(other)) is not first


def test_lepton_id_weights_of_a_missing_candidate_are_one():
    """Candidate tracks with NaN momentum (an event without a candidate) get no lepton-ID or fake-rate correction:
    weight 1, in every variation, not the correction read at placeholder kinematics; real tracks get theirs, each
    event the product over its tracks."""
    from belle_rare.processors.base import FlatWeights

    proc = ToyProcessor("belle2", None)
    cset = corrections.load("belle2")
    p = np.array([1.8, 2.5, np.nan, np.nan, 1.2, np.nan])          # 3 events x 2 tracks
    cos = np.array([0.3, -0.2, np.nan, np.nan, 0.5, np.nan])
    is_mu = np.array([True, False, False, False, True, False])
    weights = FlatWeights(3)
    proc.add_lepton_id_weights(weights, "mu", p, cos, is_mu, tracks_per_event=2)
    lid = lambda i, s="nominal": float(corrections.lepton_id_weight(cset, "mu", p[i:i + 1], cos[i:i + 1], s)[0])  # noqa: E731
    fake = lambda i, s="nominal": float(corrections.fake_rate_weight(cset, "mu", p[i:i + 1], cos[i:i + 1], s)[0])  # noqa: E731
    assert lid(0) != 1.0 and fake(1) != 1.0                          # the corrections do something at real tracks
    np.testing.assert_allclose(weights.weight(), [lid(0) * fake(1), 1.0, lid(4)], rtol=1e-12)
    for variation in ("leptonIDUp", "fakeRateDown"):
        assert weights.weight(variation)[1] == 1.0


def test_lepton_id_weights_with_a_species_per_track():
    """Per-track species (kstartautau's tau tracks: e, mu or neither): each identified track gets its own
    species' correction, a track identified as neither gets none, whatever its truth."""
    from belle_rare.processors.base import FlatWeights

    proc = ToyProcessor("belle2", None)
    cset = corrections.load("belle2")
    p = np.array([1.5, 2.0, 1.1, 0.9, 2.2, 1.7])                     # 3 events x 2 tracks
    cos = np.array([0.1, -0.4, 0.6, 0.2, -0.1, 0.3])
    species = np.array(["e", "mu", "", "mu", "e", ""])
    is_lepton = np.array([True, False, False, True, False, True])
    weights = FlatWeights(3)
    proc.add_lepton_id_weights(weights, species, p, cos, is_lepton, tracks_per_event=2)

    def one(correction, s, i, syst="nominal"):
        return float(correction(cset, s, p[i:i + 1], cos[i:i + 1], syst)[0])
    lid, fake = corrections.lepton_id_weight, corrections.fake_rate_weight
    expected = [one(lid, "e", 0) * one(fake, "mu", 1), one(lid, "mu", 3), one(fake, "e", 4)]
    assert len({round(x, 12) for x in expected}) == 3 and 1.0 not in expected
    np.testing.assert_allclose(weights.weight(), expected, rtol=1e-12)
    np.testing.assert_allclose(weights.weight("leptonIDUp")[1], one(lid, "mu", 3, "up"), rtol=1e-12)


def test_add_varied_evaluates_only_the_nominal_for_a_nominal_only_pass():
    """A shifted calibration fills its nominal weight only: ``add_varied`` evaluates the correction at the
    nominal alone there, with the same nominal weight, bit for bit, as the full (nominal, up, down) add."""
    from belle_rare.processors.base import FlatWeights

    factors = {"nominal": np.array([0.9, 1.1, 1.0]), "up": np.array([1.0, 1.2, 1.1]), "down": np.array([0.8, 1.0, 0.9])}
    asked: list[str] = []

    def correction(syst):
        asked.append(syst)
        return factors[syst]

    full, nominal_only = FlatWeights(3), FlatWeights(3)
    nominal_only.nominal_only = True
    add_varied(full, "tracking", correction, 3)
    assert asked == ["nominal", "up", "down"]
    asked.clear()
    add_varied(nominal_only, "tracking", correction, 3)
    assert asked == ["nominal"]
    assert np.array_equal(full.weight(), nominal_only.weight())
    assert set(full.variations) == {"trackingUp", "trackingDown"} and not nominal_only.variations
