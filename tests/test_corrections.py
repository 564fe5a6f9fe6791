"""correctionlib payloads: schema, reproducibility from the build script, variation directions,
clamping, and the loader / helper API."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
from correctionlib import schemav2

from belle_rare import corrections
from belle_rare.configs.experiment import EXPERIMENTS, load_experiment
from belle_rare.corrections import build_payloads

# one point per bin plus out-of-range values on both sides, for every binned table
P_PROBE = np.array([0.0, 0.5, 0.8, 1.2, 1.8, 2.5, 4.0, 50.0])
COS_PROBE = np.array([-1.0, -0.7, 0.0, 0.8, 0.9, 1.0])


@pytest.fixture(params=EXPERIMENTS)
def experiment(request):
    return request.param


def test_payloads_validate_against_schema_v2(experiment):
    data = json.loads(corrections.payload_path(experiment).read_text())
    cset = schemav2.CorrectionSet.model_validate(data)
    names = {c.name for c in cset.corrections}
    assert names == set(corrections.SOURCES.values())
    for c in cset.corrections:
        assert c.inputs[-1].name == "syst" and c.inputs[-1].type == "string"
        assert c.data.nodetype == "category" and c.data.input == "syst"
        assert [item.key for item in c.data.content] == list(corrections.SYSTS)


def test_payload_files_are_reproducible_from_the_build_script(tmp_path):
    written = build_payloads.write_payloads(tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{e}.json" for e in EXPERIMENTS)
    for path in written:
        shipped = corrections.payload_path(path.stem)
        assert path.read_text() == shipped.read_text(), (
            f"{shipped} is stale: run `python -m corrections.build_payloads`"
        )


def test_variation_names():
    assert corrections.VARIATIONS[0] == "nominal"
    expected = [
        "leptonID", "fakeRate", "tracking", "photonEnergy", "photonEff", "momentumScale", "trigger", "luminosity"
    ]
    assert list(corrections.SOURCES) == expected
    assert set(corrections.VARIATIONS[1:]) == {f"{s}{d}" for s in expected for d in ("Up", "Down")}
    assert corrections.syst_for("trackingUp", "tracking") == "up"
    assert corrections.syst_for("trackingDown", "tracking") == "down"
    assert corrections.syst_for("trackingUp", "trigger") == "nominal"
    assert corrections.syst_for("nominal", "leptonID") == "nominal"
    with pytest.raises(ValueError, match="trackingSideways"):
        corrections.syst_for("trackingSideways", "tracking")
    with pytest.raises(ValueError, match="pileup"):
        corrections.syst_for("nominal", "pileup")


def _by_syst(fn):
    return {s: np.asarray(fn(s), dtype=float) for s in corrections.SYSTS}


def test_up_moves_up_and_down_moves_down(experiment):
    cset = corrections.load(experiment)
    p, c = np.meshgrid(P_PROBE, COS_PROBE)
    checks = {}
    for species in corrections.weights.SPECIES:
        checks[f"lepton_id {species}"] = _by_syst(lambda s: corrections.lepton_id_weight(cset, species, p, c, s))
        checks[f"fake {species}"] = _by_syst(lambda s: corrections.fake_rate_weight(cset, species, p, c, s))
    checks["tracking"] = _by_syst(lambda s: corrections.tracking_weight(cset, 2, s))
    checks["photon eff"] = _by_syst(lambda s: corrections.photon_efficiency_weight(cset, 1, s))
    checks["photon energy"] = _by_syst(lambda s: corrections.photon_energy_scale(cset, s))
    checks["momentum"] = _by_syst(lambda s: corrections.momentum_scale(cset, s))
    for channel in build_payloads.TABLE[experiment]["trigger"]:
        checks[f"trigger {channel}"] = _by_syst(lambda s: corrections.trigger_weight(cset, channel, s))
    for dataset in build_payloads.TABLE[experiment]["luminosity"]:
        checks[f"lumi {dataset}"] = _by_syst(lambda s: corrections.luminosity_weight(cset, dataset, s))
    for name, v in checks.items():
        assert np.all(v["up"] > v["nominal"]), name
        assert np.all(v["down"] < v["nominal"]), name
        assert np.all(v["down"] > 0.0), name


def test_out_of_range_inputs_are_clamped(experiment):
    cset = corrections.load(experiment)
    for species, table in build_payloads.TABLE[experiment]["lepton_id"].items():
        p_lo, p_hi = table["p_edges"][0], table["p_edges"][-1]
        c_lo, c_hi = table["cos_edges"][0], table["cos_edges"][-1]
        for syst in corrections.SYSTS:
            w = corrections.lepton_id_weight
            assert w(cset, species, p_lo - 0.3, c_lo - 0.1, syst) == w(cset, species, p_lo + 1e-6, c_lo + 1e-6, syst)
            assert w(cset, species, 100.0, 1.0, syst) == w(cset, species, p_hi - 1e-6, c_hi - 1e-6, syst)
        # first and last bin contents are the table's corner values
        assert corrections.lepton_id_weight(cset, species, 0.0, -1.0) == table["ratio"][0][0]
        assert corrections.lepton_id_weight(cset, species, 99.0, 1.0) == table["ratio"][-1][-1]


def test_binned_layout_rows_are_momentum_columns_cos_theta(experiment):
    cset = corrections.load(experiment)
    table = build_payloads.TABLE[experiment]["fake_rate"]["mu"]
    p_mid = 0.5 * (np.array(table["p_edges"][1:]) + np.array(table["p_edges"][:-1]))
    c_mid = 0.5 * (np.array(table["cos_edges"][1:]) + np.array(table["cos_edges"][:-1]))
    got = corrections.fake_rate_weight(cset, "mu", p_mid[:, None], c_mid[None, :])
    np.testing.assert_array_equal(got, np.array(table["ratio"]))
    up = corrections.fake_rate_weight(cset, "mu", p_mid[:, None], c_mid[None, :], "up")
    np.testing.assert_allclose(up - got, np.array(table["unc"]), atol=1e-12)


def test_helpers_evaluate_jagged_awkward_arrays_with_empty_events():
    cset = corrections.load("belle2")
    p = ak.Array([[1.5, 0.45], [], [3.5]])
    cos = ak.Array([[0.0, -0.8], [], [0.9]])
    w = corrections.lepton_id_weight(cset, "mu", p, cos)
    assert ak.num(w).tolist() == [2, 0, 1]
    flat = corrections.lepton_id_weight(cset, "mu", ak.to_numpy(ak.flatten(p)), ak.to_numpy(ak.flatten(cos)))
    np.testing.assert_array_equal(ak.flatten(w), flat)
    per_event = ak.prod(w, axis=1)
    assert per_event[1] == 1.0
    n_tracks = ak.num(p)
    np.testing.assert_allclose(corrections.tracking_weight(cset, n_tracks, "up"), 1.003 ** np.array([2, 0, 1]))


def test_published_numbers_reach_the_payloads():
    belle, belle2 = corrections.load("belle"), corrections.load("belle2")
    assert corrections.tracking_weight(belle, 2, "up") == pytest.approx(1.0035**2)
    assert corrections.trigger_weight(belle, "taulgamma_mugamma", "up") == pytest.approx(1.021)
    assert corrections.trigger_weight(belle, "taulgamma_egamma", "down") == pytest.approx(0.966)
    assert corrections.trigger_weight(belle2, "tau3mu", "up") == pytest.approx(1.009)
    assert corrections.momentum_scale(belle2) == 0.99987
    assert corrections.photon_efficiency_weight(belle, 1, "up") == pytest.approx(1.02)
    assert corrections.luminosity_uncertainty(belle, "all") == pytest.approx(0.014)
    assert corrections.luminosity_uncertainty(belle2, "tau3mu") == pytest.approx(0.006)
    assert corrections.luminosity_uncertainty(belle2, "zprime") == pytest.approx(0.01)


def test_every_configured_data_set_has_a_luminosity_uncertainty(experiment):
    cset = corrections.load(experiment)
    for dataset in load_experiment(experiment).luminosity_fb:
        assert 0.0 < corrections.luminosity_uncertainty(cset, dataset) < 0.05


def test_load_is_cached_and_unknown_names_are_clear_errors():
    assert corrections.load("belle") is corrections.load("belle")
    with pytest.raises(ValueError, match="'belle3'"):
        corrections.load("belle3")
    cset = corrections.load("belle")
    with pytest.raises(ValueError, match="'tau'"):
        corrections.lepton_id_weight(cset, "tau", 1.0, 0.0)
    with pytest.raises(ValueError, match="'Up'"):
        corrections.momentum_scale(cset, "Up")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'tau3mu'"):
        corrections.trigger_weight(cset, "tau3mu")  # a Belle II channel, not in the Belle payload
    with pytest.raises(ValueError, match="'zprime'"):
        corrections.luminosity_weight(cset, "zprime")


def test_build_rejects_unknown_experiment_and_bad_tables(monkeypatch):
    with pytest.raises(ValueError, match="'belle3'"):
        build_payloads.build("belle3")
    bad = json.loads(json.dumps(build_payloads.TABLE))
    bad["belle"]["tracking"]["unc"] = 0.0
    monkeypatch.setattr(build_payloads, "TABLE", bad)
    with pytest.raises(ValueError, match="unc > 0"):
        build_payloads.build("belle")
