"""tau -> 3 mu end to end on tiny generated samples: M_3mu peak and width, preselection
efficiency, ABCD regions, the stored model, the runner's outputs, and `belle-rare train`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import particle
import hist
import pytest
from coffea.util import load

from belle_rare.analyses.cli import main
from belle_rare.analyses.resolution import fit_bifurcated_gaussian
from belle_rare.processors import bdt
from belle_rare.processors.registry import load_search
from belle_rare.processors.tau3mu import REGIONS
from belle_rare.simulation.production import Request, produce

TAU_MASS = particle.Particle.from_pdgid(15).mass / 1000.0


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tau3mu_samples")
    for process, events in (("sig_tau3mu", 2500), ("tautau", 1500), ("mumu", 500)):
        produce(Request("belle2", process, events, 31, out, events_per_file=2500), progress=False)
    return out


@pytest.fixture(scope="module")
def run(samples, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tau3mu_run")
    code = main(["run", "tau3mu", "--experiment", "belle2", "--samples", str(samples), "--out", str(out), "--executor", "iterative"])
    assert code == 0
    return out / "tau3mu"


def test_m3mu_peaks_at_the_tau_mass_with_a_few_mev_width(run):
    h = load(run / "histograms.coffea")["m_de"]
    m = h[{"dataset": "sig_tau3mu", "channel": "3mu", "variation": "nominal", "region": sum}].project("m")
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


def test_regions_variations_and_validation(run):
    h = load(run / "histograms.coffea")["m_de"]
    assert set(REGIONS.values()) <= set(h.axes["region"])
    sig = lambda v: h[{"dataset": "sig_tau3mu", "channel": "3mu", "variation": v, "region": sum, "m": sum, "de": sum}].value  # noqa: E731
    for source in ("leptonID", "tracking", "trigger", "luminosity"):
        assert sig(f"{source}Up") > sig("nominal") > sig(f"{source}Down"), source
    rows = json.loads((run / "validation.json").read_text())
    assert all({"quantity", "ours", "paper", "unit", "note"} <= set(r) for r in rows)
    names = [r["quantity"] for r in rows]
    assert "signal efficiency" in names and "expected background in the signal region" in names
    angle = next(r for r in rows if r["quantity"] == "signal ellipse rotation angle")
    assert angle["ours"] is not None and abs(angle["ours"]) < 1.2  # the fit ran on the run's signal candidates
    assert (run / "plots" / "m_de_plane.png").is_file() and (run / "plots" / "m_de_plane.pdf").is_file()


def test_without_a_model_the_score_is_minus_one():
    search = load_search("tau3mu")
    proc = search.processor_class("belle2", search.config, use_model=False)
    assert proc.model is None
    np.testing.assert_array_equal(proc.score(np.zeros((4, len(search.config.features))), np.arange(4)), -1.0)
    stored = bdt.load_model("tau3mu", "belle2", search.config.features)  # the shipped model matches the YAML
    assert stored is None or stored.features == search.config.features


def test_train_command_writes_a_model_with_metadata(samples, tmp_path):
    code = main(["train", "tau3mu", "--experiment", "belle2", "--samples", str(samples), "--out", str(tmp_path)])
    assert code == 0
    meta = json.loads((tmp_path / "tau3mu_belle2_meta.json").read_text())
    assert meta["features"] == load_search("tau3mu").config.features
    assert meta["folds"] == 3 and {"cut", "fom", "efficiency", "background"} <= set(meta["working_point"])
    assert bdt.load_model("tau3mu", "belle2", meta["features"], tmp_path).folds == 3
    fitted = meta["signal_region_fit"]["fitted"]
    assert fitted["m_mean"] == pytest.approx(TAU_MASS, abs=0.005) and 0.002 < fitted["sigma_m_low"] < 0.010


def test_stored_model_scores_the_same_on_workers(samples, tmp_path):
    """The BDT is applied inside the processor, per chunk: local processes give the iterative result."""
    from belle_rare.analyses.runner import RunOptions, run_search
    from tests.test_taulgamma import _assert_same_histograms

    signal = next(samples.glob("*sig_tau3mu.json"))

    def run(executor: str, workers: int, chunksize: int):
        return run_search(RunOptions("tau3mu", "belle2", signal, tmp_path / executor, executor=executor, workers=workers,
                                     chunksize=chunksize, progress=False))

    iterative, futures = run("iterative", 1, 2500), run("futures", 2, 700)
    _assert_same_histograms(iterative["histograms"], futures["histograms"])
    scores = iterative["histograms"]["bdt_score"][{"dataset": "sig_tau3mu", "channel": "3mu", "variation": "nominal", "region": sum}]
    assert bdt.load_model("tau3mu", "belle2", load_search("tau3mu").config.features) is not None  # shipped in models/
    assert scores[hist.loc(0.0):].sum().value > 0  # scored by the model, not the -1 placeholder
