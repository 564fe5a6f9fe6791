"""tau -> l phi end to end on tiny generated samples: M(K+K-) at m_phi, M_tau at m_tau, regions and
outputs; training mode, a missing model, the typed config."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from coffea import processor
from coffea.util import load

from belle_rare.analyses.cli import main
from belle_rare.analyses.datasets import fileset, load_datasets
from belle_rare.configs.loader import ConfigError, load_config
from belle_rare.core.errors import UserError
from belle_rare.core.units import pdg_mass
from belle_rare.processors import bdt
from belle_rare.processors.schema import BelleSchema
from belle_rare.processors.taulphi import REGIONS, SEARCH, TauLPhiConfig
from belle_rare.simulation.production import Request, produce
from belle_rare.simulation.production import signal_sample_fraction

PHI_MASS = pdg_mass(333)
TAU_MASS = pdg_mass(15)
FEATURE_COLUMNS = {"X", "event", "weight", "in_sr", "in_window", "nominal_pid", "m", "de"}


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    samples = tmp_path_factory.mktemp("taulphi_samples")
    for process, events in (("sig_taumuphi", 1000), ("sig_tauephi", 600), ("uds", 800)):
        produce(Request("belle2", process, events, 41, samples, events_per_file=1000), progress=False)
    return samples


@pytest.fixture(scope="module")
def run(samples, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("taulphi_run")
    code = main(["run", "taulphi", "--experiment", "belle2", "--samples", str(samples), "--out", str(out), "--executor", "iterative"])
    assert code == 0
    return out / "taulphi"


def _mean(h, axis: str) -> float:
    return float(np.average(h.axes[axis].centers, weights=h.values()))


def test_kk_mass_peaks_at_the_phi_mass(run):
    hists = load(run / "histograms.coffea")
    for channel, ds in (("muphi", "sig_taumuphi"), ("ephi", "sig_tauephi")):
        mkk = hists[ds]["m_kk"][{"channel": channel, "region": sum}]
        assert mkk.values().sum() > 0  # luminosity-scaled
        assert _mean(mkk, "m_kk") == pytest.approx(PHI_MASS, abs=0.002)


def test_m_tau_peak_efficiency_and_regions(run):
    hists = load(run / "histograms.coffea")["sig_taumuphi"]
    plane, yields = hists["m_de"], hists["yields"]
    assert "variation" not in plane.axes.name and "variation" in yields.axes.name
    assert set(plane.axes["region"]) <= {"presel", "BDT"}
    m = plane[{"channel": "muphi", "region": "presel"}].project("m")
    window = np.abs(m.axes[0].centers - TAU_MASS) < 0.02
    assert np.average(m.axes[0].centers[window], weights=m.values()[window]) == pytest.approx(TAU_MASS, abs=0.003)
    assert {"SR", "RSB", "SR_presel", "RSB_presel"} & set(yields.axes["region"])
    assert set(yields.axes["region"]) <= set(REGIONS)
    counts = json.loads((run / "cutflow.json").read_text())["sig_taumuphi"]["muphi"]["raw"]
    assert 0.03 < counts["signal region (no BDT)"] / counts["all events"] < 0.4  # paper 6.5 % after the BDT
    # the SR yield after the BDT is the cutflow's last step; the presel SR the step before the BDT
    nominal = {r: yields[{"channel": "muphi", "variation": "nominal", "region": r, "count": sum}].value
               for r in ("SR", "SR_presel") if r in yields.axes["region"]}
    weighted = json.loads((run / "cutflow.json").read_text())["sig_taumuphi"]["muphi"]["weighted"]
    assert nominal.get("SR", 0.0) == pytest.approx(weighted["signal region"], rel=1e-9)
    assert nominal["SR_presel"] == pytest.approx(weighted["signal region (no BDT)"], rel=1e-9)


def test_validation_rows(run):
    rows = json.loads((run / "validation.json").read_text())
    assert all({"quantity", "ours", "paper", "unit", "note"} <= set(r) for r in rows)
    names = [r["quantity"] for r in rows]
    for ch in ("ephi", "muphi"):
        assert f"signal efficiency ({ch})" in names and f"expected background in the signal region ({ch})" in names
    assert (run / "plots" / "muphi_m_de_plane_BDT.png").is_file() and (run / "plots" / "muphi_m_de_plane_BDT.pdf").is_file()


def test_plots_stack_the_backgrounds_and_overlay_the_signal_at_the_stated_branching_fraction(run):
    """The N-1 and plane plots: each background process stacked with its yield at the run's luminosity
    (the histograms' own), the signal scaled to plots.signal_branching_fraction (BR(phi -> KK) kept: the
    histograms are per produced tau -> l phi decay)."""

    contents = json.loads((run / "plots" / "contents.json").read_text())
    meta = json.loads((run / "metadata.json").read_text())
    hists = load(run / "histograms.coffea")
    br_ref = SEARCH.load_config().plots.signal_branching_fraction
    assert contents["pid_weighting"] is True  # the default for taulphi
    rows = {r["quantity"]: r for r in json.loads((run / "validation.json").read_text())}
    assert rows["r_MC = N_SR / N_RSB (muphi)"]["note"].startswith("PID-weighted simulation")
    for channel, ds in (("muphi", "sig_taumuphi"), ("ephi", "sig_tauephi")):
        for name in ("nminus1_thrust", "nminus1_cos_theta_miss", "nminus1_n_tracks", "bdt_score", "m_de_plane_presel"):
            assert (run / "plots" / f"{channel}_{name}.png").is_file()
        drawn = contents["plots"][f"{channel}_nminus1_thrust"]
        h = hists["uds"]["nminus1_thrust"][{"channel": channel, "region": "presel"}]
        assert drawn["backgrounds"]["uds"] == pytest.approx(h.values().sum()) and h.values().sum() > 0
        info = meta["datasets"][ds]
        br_sim = info["cross_section_nb"] / signal_sample_fraction(info["process"], "belle2") / (2 * 0.919)
        sig = hists[ds]["nminus1_thrust"][{"channel": channel, "region": "presel"}].values().sum()
        assert drawn["signal"] == pytest.approx(sig * br_ref / br_sim, rel=1e-3)
        assert contents["plots"][f"{channel}_m_de_plane_presel"]["signal_branching_fraction"] == br_ref


def test_training_mode_returns_the_feature_columns_of_each_channel(samples):
    config = SEARCH.load_config()
    proc = SEARCH.processor("belle2", config, training=True)
    assert proc.model is None and proc.pid_weighting  # training: background PID-weighted, signal nominal ID
    assert bdt.load_model("taulphi", "belle2", config.features).features == config.features  # the shipped model matches
    signal = {k: v for k, v in load_datasets(samples, "belle2").items() if k == "sig_taumuphi"}
    out = processor.Runner(executor=processor.IterativeExecutor(), schema=BelleSchema, chunksize=1000)(
        fileset(signal), proc, treename="tree")
    assert "candidates" not in out["columns"]
    per_channel = out["columns"]["features"]["sig_taumuphi"]
    assert set(per_channel) == {"ephi", "muphi"}
    features = per_channel["muphi"]
    assert set(features) == FEATURE_COLUMNS
    n = len(features["event"].value)
    assert n > 0 and features["X"].value.shape == (n, len(config.features))
    assert (features["X"].value[:, config.features.index("n_tracks")] >= config.selection.n_tracks_min).all()
    assert features["in_window"].value[features["in_sr"].value].all()
    assert features["nominal_pid"].value.all()  # signal: thrown nominal ID


def test_a_missing_model_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError) as err:
        SEARCH.processor("belle2", SEARCH.load_config(), model_dir=tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message
    assert "belle-rare train taulphi --experiment belle2 --samples DIR --out DIR" in message and "--model-dir DIR" in message


def test_a_misspelt_nested_key_fails_at_load_with_the_file_and_key(tmp_path):
    text = SEARCH.config_file.read_text()
    path = tmp_path / "taulphi.yaml"
    path.write_text(text.replace("rsb_n_sigma_de: {ephi: 3.0, muphi: 2.0}", "rsb_n_sigma_de: {ephi: 3.0, mupih: 2.0}"))
    with pytest.raises(ConfigError, match=re.escape(f"{path}: signal_region.rsb_n_sigma_de.mupih: Extra inputs are not permitted")):
        load_config(path, TauLPhiConfig)
    path.write_text(text.replace("  id_branch: kaonID", "  idbranch: kaonID"))
    with pytest.raises(ConfigError, match=re.escape(f"{path}: kaons.idbranch")):
        load_config(path, TauLPhiConfig)


def test_limit_is_on_br_tau_to_l_phi_and_efficiency_in_the_papers_definition(run):
    """End to end: the generated sigma x BR includes BR(phi -> K+ K-) (forced); the limit's reference
    is BR(tau -> l phi) (processes.yaml reference_branching_fraction, not x 0.491) and its efficiency,
    like validation.json's, is selected / produced tau -> l phi decays (x 0.491 per generated event)."""
    from belle_rare.configs.processes import forced_sub_branching_fraction, load_catalogue
    from belle_rare.stats.search_limits import compute_search_limits

    limits = {e["limit"]: e for e in compute_search_limits("taulphi", run.parent).document["limits"]}
    rows = {r["quantity"]: r for r in json.loads((run / "validation.json").read_text())}
    cutflow = json.loads((run / "cutflow.json").read_text())
    for channel, process in (("muphi", "sig_taumuphi"), ("ephi", "sig_tauephi")):
        sub_bf = signal_sample_fraction(process, "belle2")  # phi -> K+ K- x the gamma* slice share
        assert forced_sub_branching_fraction(process) == pytest.approx(0.491)
        assert sub_bf == pytest.approx(0.491 * 0.798, rel=2e-3)
        norm = limits[channel]["normalisation"]
        assert norm["reference_value"] == pytest.approx(load_catalogue().get(process).reference_branching_fraction)
        counts = cutflow[process][channel]["raw"]
        per_event = counts["signal region"] / counts["all events"]
        assert rows[f"signal efficiency ({channel})"]["ours"] == pytest.approx(per_event * sub_bf)
        # the limit's efficiency (weighted: corrections applied) agrees with the paper-definition count
        assert norm["efficiency"] == pytest.approx(per_event * sub_bf, rel=0.15)
        # and is the report's row with the correction weights exactly
        assert rows[f"signal efficiency with the correction weights ({channel})"]["ours"] == pytest.approx(norm["efficiency"], rel=1e-9)
