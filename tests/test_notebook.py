"""The inspection notebooks run headless on real run outputs, so they never rot.

Each opens its run with ``belle_rare.open_run`` in its first code cell (``BELLE_RARE_RUN``: the
results directory for taulgamma, the run's own directory for tau3mu -- both forms work).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from belle_rare.analyses.cli import main
from belle_rare.simulation.production import Request, produce

NOTEBOOKS = Path(__file__).parents[1] / "analyses" / "notebooks"


def _execute(notebook: Path) -> str:
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    return "".join(o.get("text", "") for o in outputs)


def _run_and_execute(tmp_path: Path, monkeypatch, search: str, experiment: str, processes: tuple[str, str],
                     extra: tuple[list[str], ...] = (), results_dir: bool = False) -> str:
    """Generate signal (1500) + background (500), run ``search`` (and the ``extra`` CLI calls), execute its notebook
    with ``BELLE_RARE_RUN`` at the run's directory (or at the results directory)."""
    samples = tmp_path / "samples"
    for process, events in zip(processes, (1500, 500)):
        produce(Request(experiment, process, events, 5, samples, events_per_file=1500), progress=False)
    assert main(["run", search, "--experiment", experiment, "--samples", str(samples), "--out", str(tmp_path / "out"),
                 "--executor", "iterative"]) == 0
    for args in extra:
        assert main(args) == 0
    monkeypatch.setenv("BELLE_RARE_RUN", str(tmp_path / "out" if results_dir else tmp_path / "out" / search))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return _execute(NOTEBOOKS / f"inspect_{search}.ipynb")


def test_inspect_taulgamma_notebook_executes(tmp_path, monkeypatch):
    text = _run_and_execute(tmp_path, monkeypatch, "taulgamma", "belle", ("sig_taumugamma", "tautau"), results_dir=True)
    assert "Run taulgamma on belle" in text and "mbc_de" in text and "sig_taumugamma" in text
    assert "photonEnergyUp" in text and "signal efficiency (mugamma)" in text


def test_inspect_tau3mu_notebook_executes(tmp_path, monkeypatch):
    text = _run_and_execute(tmp_path, monkeypatch, "tau3mu", "belle2", ("sig_tau3mu", "tautau"),
                            extra=(["limit", "tau3mu", "--results", str(tmp_path / "out")],))
    assert "Run tau3mu on belle2" in text and "SR_pass" in text and "sig_tau3mu" in text and "BR <" in text


def test_notebooks_open_the_run_in_their_first_code_cell():
    for notebook in sorted(NOTEBOOKS.glob("inspect_*.ipynb")):
        first = next(c for c in nbformat.read(notebook, as_version=4).cells if c.cell_type == "code")
        assert "run = belle_rare.open_run(" in first.source, notebook.name


def test_inspect_bkscalar_notebook_executes(tmp_path, monkeypatch):
    """A reduced scan (configs/stats/bkscalar_demo.yaml: K_mumu, c tau 10 cm, ~200 masses) browsed by the notebook."""
    from belle_rare.processors.registry import builtin_file

    demo = builtin_file("stats", "bkscalar_demo.yaml")
    text = _run_and_execute(tmp_path, monkeypatch, "bkscalar", "belle2", ("sig_bkscalar_mumu", "mixed"),
                            extra=(["limit", "bkscalar", "--results", str(tmp_path / "out"), "--scan-config", str(demo)],))
    assert "Run bkscalar on belle2" in text and "K_mumu    c tau    10 cm" in text
    assert "largest local excess" in text and "signal efficiency (K_mumu, c tau 10 cm)" in text


def test_inspect_zprime_notebook_executes(tmp_path, monkeypatch):
    """Two signal masses (the scan between them), one of the Gamma = 0.1 M benchmark and a tau-pair background;
    the limit without look-elsewhere toys."""
    samples = tmp_path / "samples"
    for process, mass, events in (("sig_zprime", 2.0, 1200), ("sig_zprime", 3.0, 1200), ("sig_zprime_wide", 3.0, 1200),
                                  ("tautau", None, 500)):
        produce(Request("belle2", process, events, 5, samples, events_per_file=1500,
                        parameters={"mass": mass} if mass else {}), progress=False)
    out = tmp_path / "out"
    assert main(["run", "zprime", "--experiment", "belle2", "--samples", str(samples), "--out", str(out), "--executor", "iterative"]) == 0
    config = tmp_path / "zprime_stats.yaml"
    shipped = (NOTEBOOKS.parents[1] / "configs" / "stats" / "zprime.yaml").read_text()
    config.write_text(shipped.replace("toys: 30", "toys: 0"))   # the look-elsewhere and the minimum-limit toys
    assert main(["limit", "zprime", "--results", str(out), "--scan-config", str(config), "--no-plots"]) == 0
    monkeypatch.setenv("BELLE_RARE_RUN", str(out / "zprime"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    text = _execute(NOTEBOOKS / "inspect_zprime.ipynb")
    assert "Run zprime on belle2" in text and "hypotheses" in text and "sigma x BR <" in text and "largest local excess" in text
    assert "wide_width: Gamma = 0.1 M_Z', fully invisible, 1 hypotheses" in text


def test_inspect_kstartautau_notebook_executes(tmp_path, monkeypatch):
    """A Belle II run (signal + B0 B0bar) with its four-category BDT fit: the yields, the stacked BDT outputs,
    the report's and the limit's plots and the CLs curves."""
    text = _run_and_execute(tmp_path, monkeypatch, "kstartautau", "belle2", ("sig_kstartautau", "mixed"),
                            extra=(["limit", "kstartautau", "--results", str(tmp_path / "out")],))
    assert "Run kstartautau on belle2" in text and "bdt channels: ll, lpi, rhoX, pipi" in text
    assert "bdt_stack.png" in text and "cls_kstartautau_combined.png" in text and "BR <" in text


def test_inspect_taulphi_notebook_executes(tmp_path, monkeypatch):
    """Both tau -> l phi signals and a tau-pair background: the region yields of both channels, the (M, dE) planes
    with the SR box, the stacked K+K- mass and BDT score, and the limit."""
    samples, out = tmp_path / "samples", tmp_path / "out"
    for process, events in (("sig_tauephi", 1000), ("sig_taumuphi", 1000), ("tautau", 500)):
        produce(Request("belle2", process, events, 5, samples, events_per_file=1500), progress=False)
    assert main(["run", "taulphi", "--experiment", "belle2", "--samples", str(samples), "--out", str(out), "--executor", "iterative"]) == 0
    assert main(["limit", "taulphi", "--results", str(out)]) == 0
    monkeypatch.setenv("BELLE_RARE_RUN", str(out / "taulphi"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    text = _execute(NOTEBOOKS / "inspect_taulphi.ipynb")
    assert "Run taulphi on belle2" in text and "--- muphi" in text and "SR_presel" in text and "sig_taumuphi" in text
    assert "plotted: m_kk, bdt_score for ephi, muphi" in text and "BR <" in text
