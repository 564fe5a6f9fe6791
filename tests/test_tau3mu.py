"""tau -> 3 mu end to end on tiny generated samples: M_3mu peak and width, preselection
efficiency, ABCD regions, the stored model, the runner's outputs, training mode and `belle-rare train`."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import hist
import numpy as np
import pytest
from coffea import processor
from coffea.util import load

from belle_rare.analyses.cli import main
from belle_rare.analyses.datasets import fileset, load_datasets
from belle_rare.processors.resolution import fit_bifurcated_gaussian
from belle_rare.configs.loader import ConfigError, load_config
from belle_rare.core.errors import UserError
from belle_rare.core.units import pdg_mass
from belle_rare.processors import bdt
from belle_rare.processors.schema import BelleSchema
from belle_rare.processors.tau3mu import REGIONS, SEARCH, YIELD_REGIONS, Tau3MuConfig

TAU_MASS = pdg_mass(15)
FEATURE_COLUMNS = {"X", "event", "weight", "in_sr", "in_window", "nominal_pid", "m", "de"}


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tau3mu_samples")
    from belle_rare.simulation.production import Request, produce

    for process, events in (("sig_tau3mu", 2500), ("tautau", 1500), ("mumu", 500)):
        produce(Request("belle2", process, events, 31, out, events_per_file=2500), progress=False)
    return out


@pytest.fixture(scope="module")
def config() -> Tau3MuConfig:
    return SEARCH.load_config()


@pytest.fixture(scope="module")
def run(samples, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tau3mu_run")
    code = main(["run", "tau3mu", "--experiment", "belle2", "--samples", str(samples), "--out", str(out), "--executor", "iterative"])
    assert code == 0
    return out / "tau3mu"


def test_m3mu_peaks_at_the_tau_mass_with_a_few_mev_width(run):
    h = load(run / "histograms.coffea")["sig_tau3mu"]["m_de"]
    m = h[{"channel": "3mu", "region": sum}].project("m")
    centres, values = m.axes[0].centers, m.values()
    window = np.abs(centres - TAU_MASS) < 0.03
    fit = fit_bifurcated_gaussian(centres[window], values[window] / values[window].sum() * 1000)
    assert fit.mean == pytest.approx(TAU_MASS, abs=0.005)
    assert 0.002 < fit.sigma < 0.008  # paper 4.4-4.8 MeV


def test_preselection_efficiency_and_cutflow(run):
    counts = json.loads((run / "cutflow.json").read_text())["sig_tau3mu"]["3mu"]["raw"]
    eff_ellipse = counts["signal region (no BDT)"] / counts["all events"]
    assert 0.10 < eff_ellipse < 0.40  # paper 20.4 % after the BDT
    steps = [counts[k] for k in list(counts)[:6]]
    assert all(a >= b for a, b in zip(steps, steps[1:]))
    assert counts["signal region"] <= min(counts["BDT"], counts["signal region (no BDT)"])


def test_regions_variations_and_validation(run):
    hists = load(run / "histograms.coffea")["sig_tau3mu"]
    yields, plane = hists["yields"], hists["m_de"]
    assert set(REGIONS.values()) <= set(yields.axes["region"]) <= set(YIELD_REGIONS)
    assert "variation" in yields.axes.name and "variation" not in plane.axes.name  # the plane is nominal only
    sig = lambda v: yields[{"channel": "3mu", "variation": v, "region": sum, "count": sum}].value  # noqa: E731
    for source in ("leptonID", "tracking", "trigger", "luminosity"):
        assert sig(f"{source}Up") > sig("nominal") > sig(f"{source}Down"), source
    # the counting histogram holds the plane's events (flow bins included), region by region
    for region in yields.axes["region"]:
        assert yields[{"channel": "3mu", "variation": "nominal", "region": region, "count": sum}].value == pytest.approx(
            plane[{"channel": "3mu", "region": region, "m": sum, "de": sum}].value, rel=1e-12)
    rows = json.loads((run / "validation.json").read_text())
    assert all({"quantity", "ours", "paper", "unit", "note"} <= set(r) for r in rows)
    names = [r["quantity"] for r in rows]
    assert "signal efficiency (3mu)" in names and "expected background in the signal region" in names
    angle = next(r for r in rows if r["quantity"] == "signal ellipse rotation angle")
    assert angle["ours"] is not None and abs(angle["ours"]) < 1.2  # the fit ran on the run's signal candidates
    assert (run / "plots" / "m_de_plane_bdt.png").is_file() and (run / "plots" / "m_de_plane_bdt.pdf").is_file()
    contents = json.loads((run / "plots" / "contents.json").read_text())
    assert contents["pid_weighting"] is True  # the default for tau3mu
    for name in ("nminus1_thrust", "nminus1_cos_theta_miss", "nminus1_event_charge", "bdt_score", "m3mu_presel", "m_de_plane_presel"):
        assert (run / "plots" / f"{name}.png").is_file() and name in contents["plots"]
    # the stacked N-1 thrust: every background's drawn yield is its histogram's (PID-weighted tau pairs fill it)
    hists = load(run / "histograms.coffea")
    drawn = contents["plots"]["nminus1_thrust"]["backgrounds"]
    assert drawn and all(v == pytest.approx(hists[d]["nminus1_thrust"][{"channel": "3mu", "region": "outer"}].values().sum())
                         for d, v in drawn.items())


def test_training_mode_needs_no_model_and_returns_the_feature_columns(samples, config):
    proc = SEARCH.processor("belle2", config, training=True)
    assert proc.model is None and proc.pid_weighting  # training: background PID-weighted, signal nominal ID
    np.testing.assert_array_equal(proc.score(np.zeros((4, len(config.features))), np.arange(4)), bdt.NO_MODEL_SCORE)
    stored = bdt.load_model("tau3mu", "belle2", config.features)  # the shipped model matches the YAML
    assert stored.features == config.features
    signal = {k: v for k, v in load_datasets(samples, "belle2").items() if k == "sig_tau3mu"}
    out = processor.Runner(executor=processor.IterativeExecutor(), schema=BelleSchema, chunksize=1000)(
        fileset(signal), proc, treename="tree")
    features = out["columns"]["features"]["sig_tau3mu"]["3mu"]
    assert set(features) == FEATURE_COLUMNS
    X = features["X"].value
    n = len(features["event"].value)
    assert X.shape == (n, len(config.features)) and n > 0
    assert all(len(features[k].value) == n for k in FEATURE_COLUMNS)
    assert features["in_window"].value[features["in_sr"].value].all()
    # the signal keeps its thrown (nominal) muon ID in training: every candidate passes it
    assert features["nominal_pid"].value.all()
    candidates = out["columns"]["candidates"]["sig_tau3mu"]["3mu"]
    assert len(candidates["m"].value) == n
    # the signal candidates sit at the tau mass
    assert np.median(candidates["m"].value[features["nominal_pid"].value]) == pytest.approx(TAU_MASS, abs=0.01)


def test_a_missing_model_is_a_one_line_error_saying_how_to_train(tmp_path, samples, config, capsys):
    with pytest.raises(UserError) as err:
        SEARCH.processor("belle2", config, model_dir=tmp_path)
    message = str(err.value)
    assert "\n" not in message and str(tmp_path) in message
    assert "belle-rare train tau3mu --experiment belle2 --samples DIR --out DIR" in message and "--model-dir DIR" in message
    code = main(["run", "tau3mu", "--experiment", "belle2", "--samples", str(samples), "--out", str(tmp_path / "out"),
                 "--model-dir", str(tmp_path)])
    assert code == 2
    stderr = capsys.readouterr().err.strip()
    assert stderr.count("\n") == 0 and "belle-rare train tau3mu" in stderr and not (tmp_path / "out").exists()


def test_a_misspelt_nested_key_fails_at_load_with_the_file_and_key(tmp_path):
    text = SEARCH.config_file.read_text().replace("  tight_min: 0.9", "  tigth_min: 0.9")
    path = tmp_path / "tau3mu.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(f"{path}: muons.tigth_min: Extra inputs are not permitted")):
        load_config(path, Tau3MuConfig)


def test_train_command_writes_a_model_with_metadata(samples, tmp_path, config):
    code = main(["train", "tau3mu", "--experiment", "belle2", "--samples", str(samples), "--out", str(tmp_path)])
    assert code == 0
    meta = json.loads((tmp_path / "tau3mu_belle2_meta.json").read_text())
    assert meta["features"] == config.features
    assert meta["folds"] == 3 and {"cut", "fom", "efficiency", "background"} <= set(meta["working_point"])
    # the working point is chosen on one half of the events and quoted on the other; B is PID-weighted
    quoted = meta["working_point"]["quoted"]
    assert {"efficiency", "background", "on"} <= set(quoted) and 0 <= quoted["efficiency"] <= 1
    # how stable the choice is: the halves swapped and a bootstrap of the choosing half (16 / 50 / 84 %)
    stability = meta["working_point"]["stability"]
    assert 0 <= stability["swapped_halves"]["efficiency"] <= 1
    assert sorted(stability["bootstrap"]["quoted_efficiency"]) == stability["bootstrap"]["quoted_efficiency"]
    assert "PID-weighted" in meta["punzi"]["background"] and meta["punzi"]["background_events"] > 0
    assert bdt.load_model("tau3mu", "belle2", meta["features"], tmp_path).folds == 3
    fitted = meta["signal_region_fit"]["fitted"]
    assert fitted["m_mean"] == pytest.approx(TAU_MASS, abs=0.005) and 0.002 < fitted["sigma_m_low"] < 0.010
    # `run --model-dir` scores with the model just trained
    proc = SEARCH.processor("belle2", config, model_dir=tmp_path)
    assert proc.model.meta["working_point"] == meta["working_point"] and proc.working_point == meta["working_point"]["cut"]


def _assert_same_histograms(a: dict, b: dict) -> None:
    """Same datasets, histograms, categories (in any order) and bin contents."""
    assert a.keys() == b.keys() and a
    for dataset in a:
        assert a[dataset].keys() == b[dataset].keys()
        for name, ha in a[dataset].items():
            hb = b[dataset][name]
            categorical = [ax.name for ax in ha.axes if isinstance(ax, hist.axis.StrCategory)]
            assert [sorted(ha.axes[c]) for c in categorical] == [sorted(hb.axes[c]) for c in categorical], (dataset, name)
            for values in itertools.product(*(list(ha.axes[c]) for c in categorical)):
                key = dict(zip(categorical, values))
                np.testing.assert_allclose(ha[key].values(flow=True), hb[key].values(flow=True), rtol=1e-9, atol=1e-12)
                np.testing.assert_allclose(ha[key].variances(flow=True), hb[key].variances(flow=True), rtol=1e-9, atol=1e-12)


def test_stored_model_scores_the_same_on_workers(samples, tmp_path):
    """The BDT is applied inside the processor, per chunk: local processes give the iterative result."""
    from belle_rare.analyses.runner import RunOptions, run_search

    signal = next(samples.glob("*sig_tau3mu.json"))

    def run(executor: str, workers: int, chunksize: int):
        return run_search(RunOptions("tau3mu", "belle2", signal, tmp_path / executor, executor=executor, workers=workers,
                                     chunksize=chunksize, progress=False))

    iterative, futures = run("iterative", 1, 2500), run("futures", 2, 700)
    _assert_same_histograms(iterative["histograms"], futures["histograms"])
    a, b = (r["cutflow"]["sig_tau3mu"]["3mu"] for r in (iterative, futures))
    assert a["raw"] == b["raw"] and a["weighted"] == pytest.approx(b["weighted"], rel=1e-9)
    scores = iterative["histograms"]["sig_tau3mu"]["bdt_score"][{"channel": "3mu", "region": sum}]
    assert scores[hist.loc(0.0):].sum().value > 0  # scored by the shipped model, not the -1 placeholder


def test_the_run_metadata_records_the_area_fraction_of_the_ellipse(run, config):
    # the stats layer's window_area background reads it (configs/stats/tau3mu.yaml): (5 / 20)^2
    meta = json.loads((run / "metadata.json").read_text())
    assert meta["sr_area_fraction"] == {"3mu": pytest.approx(config.signal_region.area_ratio())}
    assert meta["sr_area_fraction"]["3mu"] == pytest.approx(1 / 16)


def test_rest_of_event_thrust_on_preselected_events_only_changes_nothing(samples, config, monkeypatch):
    """The rest-of-event thrust (a BDT feature) is computed on preselected events only: the feature
    columns (read on those only) and every histogram equal those of a thrust on every event."""
    import belle_rare.processors.tau3mu as tau3mu

    def run() -> dict:
        proc = SEARCH.processor("belle2", config, training=True)
        return processor.Runner(executor=processor.IterativeExecutor(), schema=BelleSchema, chunksize=1000)(
            fileset(load_datasets(samples, "belle2")), proc, treename="tree")

    restricted = run()
    everywhere_thrust = tau3mu.rest_of_event
    monkeypatch.setattr(tau3mu, "rest_of_event", lambda f, in_roe, thrust_events=None: everywhere_thrust(f, in_roe))
    reference = run()
    columns = restricted["columns"]["features"]
    assert columns.keys() == reference["columns"]["features"].keys() and sum(len(c["3mu"]["X"].value) for c in columns.values()) > 0
    for dataset, channels in columns.items():
        np.testing.assert_array_equal(channels["3mu"]["X"].value, reference["columns"]["features"][dataset]["3mu"]["X"].value)
    for dataset, hists in restricted["histograms"].items():
        for name, h in hists.items():
            np.testing.assert_array_equal(h.values(flow=True), reference["histograms"][dataset][name].values(flow=True), err_msg=name)


def test_the_corrected_efficiency_row_is_the_limits_normalisation(run):
    """The report's efficiency with the data / MC correction weights is the efficiency the limit divides by (the
    raw-count row beside it counts selected events without the weights)."""
    from belle_rare.stats.search_limits import compute_search_limits

    rows = {r["quantity"]: r for r in json.loads((run / "validation.json").read_text())}
    corrected, raw = rows["signal efficiency with the correction weights (3mu)"], rows["signal efficiency (3mu)"]
    entry = compute_search_limits("tau3mu", run.parent).document["limits"][0]
    assert corrected["ours"] == pytest.approx(entry["normalisation"]["efficiency"], rel=1e-9)
    assert corrected["ours"] != pytest.approx(raw["ours"], rel=1e-6)   # the corrections move it
