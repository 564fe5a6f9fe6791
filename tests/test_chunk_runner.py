"""analyses/runner.py ``ChunkRunner``: the same outputs as coffea's own ``Runner``, one file held per
worker thread (reused by the next chunk of the same file, closed when another file comes)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from coffea import processor

import belle_rare.analyses.runner as runner
from belle_rare.analyses.runner import CHUNK_UPROOT_OPTIONS, RunOptions, chunk_file, release_chunk_file, run_search


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    """Belle tau pairs (2 files of 1,000 events) and tau -> mu gamma (1 file): 300-event chunks, 4 per file."""
    from belle_rare.simulation.production import Request, produce

    out = tmp_path_factory.mktemp("chunk_runner_samples")
    produce(Request("belle", "tautau", 2000, 5, out, events_per_file=1000), progress=False)
    produce(Request("belle", "sig_taumugamma", 1000, 6, out, events_per_file=1000), progress=False)
    return out


def _run(samples: Path, out: Path, runner_class: type, monkeypatch, executor: str = "iterative") -> dict:
    monkeypatch.setattr(runner, "ChunkRunner", runner_class)
    return run_search(RunOptions(search="taulgamma", experiment="belle", samples=samples, out=out, chunksize=300,
                                 progress=False, executor=executor, workers=2 if executor != "iterative" else 1))


@pytest.mark.parametrize("executor", ["iterative", "futures"])
def test_same_outputs_as_coffeas_runner(samples, tmp_path, monkeypatch, executor):
    """Several chunks per file (reused file), partial last chunks: every histogram bin and variance,
    the cutflow and the events read equal coffea's ``Runner`` (iterative: bit for bit; futures merges
    in completion order: to 1e-12)."""
    reference = _run(samples, tmp_path / "coffea", processor.Runner, monkeypatch)
    ours = _run(samples, tmp_path / "ours", runner.ChunkRunner, monkeypatch, executor)
    assert ours["metadata"]["events"] == reference["metadata"]["events"]
    assert sum(d["read"] for d in ours["metadata"]["events"].values()) == 3000
    assert reference["histograms"].keys() == ours["histograms"].keys()
    for dataset, hists in reference["histograms"].items():
        for name, h in hists.items():
            other = ours["histograms"][dataset][name]
            for a, b in ((h.values(flow=True), other.values(flow=True)), (h.variances(flow=True), other.variances(flow=True))):
                if executor == "iterative":
                    assert np.array_equal(a, b), (dataset, name)
                else:
                    np.testing.assert_allclose(a, b, rtol=1e-12, atol=0, err_msg=name)
    if executor == "iterative":
        assert ours["cutflow"] == reference["cutflow"]
    assert getattr(runner._HELD, "file", None) is None  # released at the end of the run


def test_one_file_held_per_thread(samples):
    """The same path gives the same open file (its tree parsed once); another path closes it."""
    first, second = sorted(str(p) for p in samples.glob("belle_tautau_*.root"))
    try:
        f = chunk_file(first, CHUNK_UPROOT_OPTIONS)
        tree = f["tree"]
        assert chunk_file(first, CHUNK_UPROOT_OPTIONS) is f and f["tree"] is tree
        other: list = []
        thread = threading.Thread(target=lambda: other.append(chunk_file(first, CHUNK_UPROOT_OPTIONS)))
        thread.start()
        thread.join()
        assert other[0] is not f  # another thread: its own file
        g = chunk_file(second, CHUNK_UPROOT_OPTIONS)
        assert g is not f and f.file.closed and not g.file.closed
        other[0].close()
    finally:
        release_chunk_file()
    assert g.file.closed


def test_base_form_built_once_per_layout(samples):
    """``base_form_of`` gives coffea's base form for every file, with and without a read filter, from one
    entry per layout, as a fresh copy (the schema edits the form it is given)."""
    import json

    import uproot
    from coffea.nanoevents.mapping.uproot import UprootSourceMapping

    from belle_rare.processors.registry import get_search

    search = get_search("taulgamma")
    read = search.processor("belle", search.load_config()).read_filter()
    runner._BASE_FORMS.clear()
    files = sorted(samples.glob("*.root"))
    for path in files:
        with uproot.open(path) as f:
            tree = f["tree"]
            for options in ({}, {"filter_name": read}):
                form = runner.base_form_of(UprootSourceMapping, tree, options)
                assert json.dumps(form) == json.dumps(UprootSourceMapping._extract_base_form(tree, options)), path
                form["fields"].clear()  # what a schema may do to its copy
    assert len(files) == 3 and len(runner._BASE_FORMS) == 2  # one layout (tau pairs and signal alike), two filters
