"""The inspection notebook runs headless on a real run output, so it never rots."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from analyses.cli import main
from simulation.production import Request, produce

NOTEBOOK = Path(__file__).parents[1] / "analyses" / "notebooks" / "inspect_taulgamma.ipynb"


def test_inspect_taulgamma_notebook_executes(tmp_path, monkeypatch):
    samples = tmp_path / "samples"
    for process, events in (("sig_taumugamma", 1500), ("tautau", 500)):
        produce(Request("belle", process, events, 5, samples, events_per_file=1500), progress=False)
    assert main(["run", "taulgamma", "--experiment", "belle", "--samples", str(samples), "--out", str(tmp_path / "out"),
                 "--executor", "iterative"]) == 0
    monkeypatch.setenv("BELLE_RARE_RUN", str(tmp_path / "out" / "taulgamma"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "mbc_de" in text and "sig_taumugamma" in text
