"""Packaging: a search from another package plugs in through the entry point, the wheel ships its data.

* ``tests/external_search`` (the README's example, "Adding a search from your own package") is
  installed on its own and ``belle-rare list/run`` pick its search up;
* the wheel built from the checkout runs ``tau3mu`` in a fresh environment with the configs,
  correction payloads and BDT it ships as package data (nothing read from the checkout);
* ``--model-dir`` pointing at a directory without a model is a one-line error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
from coffea.util import load

from belle_rare.configs.experiment import load_experiment
from belle_rare.simulation.production import Request, produce

REPO = Path(__file__).resolve().parents[1]
EXTERNAL = Path(__file__).resolve().parent / "external_search"
BIN = Path(sys.executable).parent  # the venv the tests run in
SITE_PACKAGES = sysconfig.get_paths()["purelib"]


def run(cmd: list[str | Path], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kwargs)


def check(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, f"{' '.join(proc.args)} exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def generate(out: Path, process: str, events: int, seed: int) -> None:
    produce(Request("belle2", process, events, seed, out, events_per_file=events), progress=False)


def histograms(out: Path, search: str) -> dict:
    """``OUT/SEARCH/histograms.coffea``: ``{dataset: {name: Hist}}``."""
    path = out / search / "histograms.coffea"
    assert path.is_file(), f"{path} not written"
    return load(path)


def projection(hists: dict, name: str, axis: str) -> np.ndarray:
    """Nominal content of histogram ``name`` along ``axis``, summed over datasets and categories."""
    total = None
    for dataset in hists.values():
        h = dataset[name]
        if "variation" in h.axes.name:
            h = h[{"variation": "nominal"}]
        values = h.project(axis).values(flow=True)
        total = values if total is None else total + values
    assert total is not None, f"no histogram '{name}' in any dataset"
    return total


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = tmp_path_factory.mktemp("packaging")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def tau3mu_samples(workdir):
    samples = workdir / "tau3mu_samples"
    generate(samples, "sig_tau3mu", 1500, 1)
    generate(samples, "tautau", 500, 2)
    return samples


# ---------------------------------------------------------------------------- external search
@pytest.fixture(scope="module")
def dimuon_site(workdir):
    """The example package installed into its own directory, put on PYTHONPATH by the tests.

    ``--target`` + PYTHONPATH rather than ``pip install`` into the venv: the venv is shared by
    every test (and pytest-xdist worker) running at the same time, and an extra ``belle_rare.searches``
    entry point there would change what their ``belle-rare list``/registry lookups see (and
    survive a crashed test). PYTHONPATH entries come before site-packages, so
    ``importlib.metadata`` finds the package's entry point in the subprocesses only. The build
    runs in a copy because setuptools writes ``build/`` and ``*.egg-info`` next to the sources.
    """
    source = workdir / "external_search"
    shutil.copytree(EXTERNAL, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    site = workdir / "site"
    check(run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--target", site, source]))
    return site


def test_external_search_is_listed_and_runs(dimuon_site, workdir):
    env = {**os.environ, "PYTHONPATH": str(dimuon_site)}
    listing = check(run([BIN / "belle-rare", "list"], env=env, cwd=workdir))
    assert "dimuon" in listing.stdout, listing.stdout

    samples, out = workdir / "mumu_samples", workdir / "dimuon_out"
    generate(samples, "mumu", 500, 1)
    check(run([BIN / "belle-rare", "run", "dimuon", "--experiment", "belle2", "--samples", samples, "--out", out,
               "--executor", "iterative"], env=env, cwd=workdir))

    hists = histograms(out, "dimuon")
    assert set(hists) == {"mumu"}
    h = hists["mumu"]["mass"]
    assert list(h.axes.name) == ["channel", "region", "mass"]
    assert list(h.axes["channel"]) == ["mumu"] and list(h.axes["region"]) == ["all"]
    raw = json.loads((out / "dimuon" / "cutflow.json").read_text())["mumu"]["mumu"]["raw"]
    assert raw["opposite charge"] > 0.5 * raw["all events"], f"most mu mu events have two identified muons: {raw}"
    mass = h[{"channel": "mumu", "region": "all"}]
    peak = mass.axes[0].centers[np.argmax(mass.values())]
    assert abs(peak - load_experiment("belle2").sqrt_s) < 0.1, f"dimuon mass peaks at {peak:.3f} GeV"


# ---------------------------------------------------------------------------- the wheel
@pytest.fixture(scope="module")
def wheel(workdir):
    """The wheel built from a clean copy of the checkout; returns (wheel path, pip's stderr).

    The copy holds the files git knows (tracked, and untracked ones that are not ignored, so that
    a module not yet committed is packaged as it would be once it is), never ``build/``,
    ``*.egg-info`` or caches lying around in the working tree.
    """
    src = workdir / "src"
    listed = run(["git", "-C", REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
    check(listed)
    for name in filter(None, listed.stdout.split("\0")):
        if (REPO / name).is_file():  # a tracked file deleted in the working tree is not copied
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name)
    built = check(run([sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation",
                       "-w", workdir / "wheel"], cwd=workdir))
    (path,) = (workdir / "wheel").glob("belle_rare-*.whl")
    return path, built.stderr


@pytest.fixture(scope="module")
def wheel_venv(wheel, workdir):
    """A fresh venv outside the checkout with only the wheel installed; dependencies from the main venv.

    Made with this interpreter (not whatever ``python3`` is on PATH) so that the main venv's
    compiled dependencies match it. pip installs the wheel before the dependencies become
    visible, so it never sees (or touches) the main venv's belle-rare. The ``.pth`` line then
    appends the main venv's site-packages to ``sys.path``; the ``.pth`` files in there (the
    editable-install hook) are not executed for a path added this way, so ``belle_rare`` is
    imported from the wheel.
    """
    venv = workdir / "venv"
    check(run([sys.executable, "-m", "venv", venv]))
    python = venv / "bin" / "python"
    check(run([python, "-m", "pip", "install", "--no-deps", wheel[0]], cwd=workdir))
    site = Path(check(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])).stdout.strip())
    (site / "belle_rare_main_venv.pth").write_text(SITE_PACKAGES + "\n")
    return venv


def test_wheel_builds_quietly_and_ships_package_data(wheel):
    path, stderr = wheel
    # this machine's pip config names a find-links location pip may warn about: not setuptools
    warnings = [line for line in stderr.splitlines()
                if "warning" in line.lower() and not (line.startswith("WARNING: Location") and "is ignored" in line)]
    assert not warnings, "\n".join(warnings)
    names = set(zipfile.ZipFile(path).namelist())
    for name in ("configs/processes.yaml", "configs/experiments/belle2.yaml", "configs/detector/belle2.yaml",
                 "configs/searches/tau3mu.yaml", "configs/stats/tau3mu.yaml",
                 "corrections/belle.json", "corrections/belle2.json",
                 "models/tau3mu_belle2.json", "models/tau3mu_belle2_meta.json"):
        assert f"belle_rare/{name}" in names, f"{name} not in {path.name}"
    for folder, pattern in (("configs", "*.yaml"), ("corrections", "*.json"), ("models", "*.json")):
        for file in (REPO / folder).rglob(pattern):
            assert f"belle_rare/{file.relative_to(REPO).as_posix()}" in names, f"{file} not in {path.name}"


def test_wheel_runs_tau3mu_outside_the_checkout(wheel_venv, tau3mu_samples, workdir):
    python = wheel_venv / "bin" / "python"
    where = check(run([python, "-c", "import belle_rare; print(belle_rare.__file__)"], cwd=workdir)).stdout.strip()
    assert Path(where).resolve().is_relative_to(wheel_venv.resolve()), f"belle_rare imported from {where}"

    out = workdir / "wheel_out"
    check(run([wheel_venv / "bin" / "belle-rare", "run", "tau3mu", "--experiment", "belle2", "--samples", tau3mu_samples,
               "--out", out, "--executor", "iterative"], cwd=workdir))
    for name in ("histograms.coffea", "cutflow.json", "metadata.json"):
        assert (out / "tau3mu" / name).is_file(), f"{name} not written"
    scores = histograms(out, "tau3mu")
    h = next(iter(scores.values()))["bdt_score"]
    no_model = h.axes["score"].index(-1.0) + 1  # -1 is filled when no model was found (+1: underflow)
    counts = projection(scores, "bdt_score", "score")
    assert counts.sum() > 0, "no event reached the BDT"
    assert np.delete(counts, no_model).sum() > 0, "every BDT score is -1: the shipped model was not found"


# ---------------------------------------------------------------------------- --model-dir
def test_model_dir_without_a_model_is_a_one_line_error(tau3mu_samples, workdir):
    empty = workdir / "no_models"
    empty.mkdir()
    out = workdir / "model_dir_out"
    proc = run([BIN / "belle-rare", "run", "tau3mu", "--experiment", "belle2", "--samples", tau3mu_samples,
                "--out", out, "--executor", "iterative", "--model-dir", empty], cwd=workdir)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(empty) in lines[0], proc.stderr
    assert not (out / "tau3mu" / "histograms.coffea").exists()
