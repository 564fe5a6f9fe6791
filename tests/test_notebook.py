"""The inspection notebooks run headless on real run outputs, so they never rot."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from analyses.cli import main
from simulation.production import Request, produce

NOTEBOOKS = Path(__file__).parents[1] / "analyses" / "notebooks"
NOTEBOOK = NOTEBOOKS / "inspect_taulgamma.ipynb"


def _execute(notebook: Path) -> str:
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    return "".join(o.get("text", "") for o in outputs)


def test_inspect_taulgamma_notebook_executes(tmp_path, monkeypatch):
    samples = tmp_path / "samples"
    for process, events in (("sig_taumugamma", 1500), ("tautau", 500)):
        produce(Request("belle", process, events, 5, samples, events_per_file=1500), progress=False)
    assert main(["run", "taulgamma", "--experiment", "belle", "--samples", str(samples), "--out", str(tmp_path / "out"),
                 "--executor", "iterative"]) == 0
    monkeypatch.setenv("BELLE_RARE_RUN", str(tmp_path / "out" / "taulgamma"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    text = _execute(NOTEBOOK)
    assert "mbc_de" in text and "sig_taumugamma" in text


def test_inspect_tau3mu_notebook_executes(tmp_path, monkeypatch):
    samples = tmp_path / "samples"
    for process, events in (("sig_tau3mu", 1500), ("tautau", 500)):
        produce(Request("belle2", process, events, 5, samples, events_per_file=1500), progress=False)
    assert main(["run", "tau3mu", "--experiment", "belle2", "--samples", str(samples), "--out", str(tmp_path / "out"),
                 "--executor", "iterative"]) == 0
    assert main(["limit", "tau3mu", "--results", str(tmp_path / "out")]) == 0
    monkeypatch.setenv("BELLE_RARE_RUN", str(tmp_path / "out" / "tau3mu"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    text = _execute(NOTEBOOKS / "inspect_tau3mu.ipynb")
    assert "SR_pass" in text and "sig_tau3mu" in text and "BR <" in text
