"""tau -> l phi end to end on tiny generated samples: M(K+K-) at m_phi, M_tau at m_tau, regions and outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import particle
import pytest
from coffea.util import load

from belle_rare.analyses.cli import main
from belle_rare.simulation.production import Request, produce

PHI_MASS = particle.Particle.from_pdgid(333).mass / 1000.0
TAU_MASS = particle.Particle.from_pdgid(15).mass / 1000.0


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    samples = tmp_path_factory.mktemp("taulphi_samples")
    for process, events in (("sig_taumuphi", 1000), ("sig_tauephi", 600), ("uds", 800)):
        produce(Request("belle2", process, events, 41, samples, events_per_file=1000), progress=False)
    out = tmp_path_factory.mktemp("taulphi_run")
    code = main(["run", "taulphi", "--experiment", "belle2", "--samples", str(samples), "--out", str(out), "--executor", "iterative"])
    assert code == 0
    return out / "taulphi"


def _mean(h, axis: str) -> float:
    return float(np.average(h.axes[axis].centers, weights=h.values()))


def test_kk_mass_peaks_at_the_phi_mass(run):
    h = load(run / "histograms.coffea")["m_kk"]
    for channel, ds in (("muphi", "sig_taumuphi"), ("ephi", "sig_tauephi")):
        mkk = h[{"dataset": ds, "channel": channel, "variation": "nominal", "region": sum}]
        assert mkk.values().sum() > 0  # luminosity-scaled
        assert _mean(mkk, "m_kk") == pytest.approx(PHI_MASS, abs=0.002)


def test_m_tau_peak_efficiency_and_regions(run):
    h = load(run / "histograms.coffea")["m_de"]
    m = h[{"dataset": "sig_taumuphi", "channel": "muphi", "variation": "nominal", "region": sum}].project("m")
    window = np.abs(m.axes[0].centers - TAU_MASS) < 0.02
    assert np.average(m.axes[0].centers[window], weights=m.values()[window]) == pytest.approx(TAU_MASS, abs=0.003)
    assert {"SR", "RSB", "SR_presel", "RSB_presel"} & set(h.axes["region"])
    counts = json.loads((run / "cutflow.json").read_text())["sig_taumuphi"]["muphi"]["raw"]
    assert 0.03 < counts["signal region (no BDT)"] / counts["all events"] < 0.4  # paper 6.5 % after the BDT


def test_validation_rows(run):
    rows = json.loads((run / "validation.json").read_text())
    assert all({"quantity", "ours", "paper", "unit", "note"} <= set(r) for r in rows)
    names = [r["quantity"] for r in rows]
    for ch in ("ephi", "muphi"):
        assert f"signal efficiency ({ch})" in names and f"expected background in the signal region ({ch})" in names
    assert (run / "plots" / "muphi_m_de_plane.png").is_file() and (run / "plots" / "muphi_m_de_plane.pdf").is_file()
