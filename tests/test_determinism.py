"""Determinism: the same histograms (values, variances, category order) whatever the executor,
chunk size or number of workers, and from one run to the next; the same generated files for the
same seed on one and on two workers.

Two runs with the same chunking are bit-identical. A different chunking (or merge order) adds the
same weights in another order, so floating-point sums agree to ~1e-15 relative: compared at 1e-12.
"""

from __future__ import annotations

import time
from pathlib import Path

import hist
import numpy as np
import pytest
import uproot

from belle_rare.analyses.runner import RunOptions, run_search


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    """tau -> mu gamma and tau -> e gamma (both channels fill), 1000 events each in files of 500."""
    from belle_rare.simulation.production import Request, produce

    out = tmp_path_factory.mktemp("determinism_samples")
    produce(Request("belle", "sig_taumugamma", 1000, 21, out, events_per_file=500), progress=False)
    produce(Request("belle", "sig_tauegamma", 1000, 22, out, events_per_file=500), progress=False)
    return out


def _run(samples: Path, out: Path, executor: str = "iterative", workers: int = 1, chunksize: int = 500) -> dict:
    opts = RunOptions(search="taulgamma", experiment="belle", samples=samples, out=out, executor=executor,
                      workers=workers, chunksize=chunksize, progress=False)
    return run_search(opts)["histograms"]


def _categories(h: hist.Hist) -> list[list[str]]:
    return [list(ax) for ax in h.axes if isinstance(ax, hist.axis.StrCategory)]


def _compare(a: dict, b: dict, exact: bool) -> None:
    assert list(a) == list(b) and a
    for dataset in a:
        assert list(a[dataset]) == list(b[dataset])
        for name, h in a[dataset].items():
            other = b[dataset][name]
            assert _categories(h) == _categories(other), (dataset, name)  # the same order, not only the same set
            for got, want in ((h.values(flow=True), other.values(flow=True)), (h.variances(flow=True), other.variances(flow=True))):
                if exact:
                    np.testing.assert_array_equal(got, want, err_msg=f"{dataset} {name}")
                else:
                    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0, err_msg=f"{dataset} {name}")


@pytest.fixture(scope="module")
def reference(samples, tmp_path_factory) -> dict:
    return _run(samples, tmp_path_factory.mktemp("ref"))


def test_two_runs_are_bit_identical(samples, reference, tmp_path):
    _compare(_run(samples, tmp_path), reference, exact=True)


def test_categories_in_canonical_order(reference):
    """Channels in the processor's order, nominal first, the rest sorted: not the order chunks filled them."""
    yields = reference["sig_taumugamma"]["yields"]
    assert list(yields.axes["channel"]) == ["mugamma", "egamma"][: len(yields.axes["channel"])]
    variations = list(yields.axes["variation"])
    assert variations[0] == "nominal" and variations[1:] == sorted(variations[1:])
    assert list(yields.axes["region"]) == sorted(yields.axes["region"])


@pytest.mark.parametrize("chunksize", [250, 1000])
def test_chunk_size_does_not_change_the_histograms(samples, reference, tmp_path, chunksize):
    _compare(_run(samples, tmp_path, chunksize=chunksize), reference, exact=False)


@pytest.mark.parametrize(("executor", "workers"), [("futures", 1), ("futures", 2), ("dask", 2)])
def test_executors_and_worker_counts_agree(samples, reference, tmp_path, executor, workers):
    _compare(_run(samples, tmp_path, executor=executor, workers=workers), reference, exact=False)


def _tree_arrays(directory: Path) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for path in sorted(directory.glob("*.root")):
        with uproot.open(path) as f:
            out[path.name] = {k: v for k, v in f["tree"].arrays(library="np").items()}
    return out


def test_generation_is_the_same_on_one_and_two_workers(tmp_path):
    from belle_rare.simulation.production import Request, produce

    one, two = tmp_path / "one", tmp_path / "two"
    produce(Request("belle2", "tautau", 1200, 8, one, events_per_file=400), workers=1, progress=False)
    produce(Request("belle2", "tautau", 1200, 8, two, events_per_file=400), workers=2, progress=False)
    a, b = _tree_arrays(one), _tree_arrays(two)
    assert list(a) == list(b) and len(a) == 3
    for name in a:
        assert list(a[name]) == list(b[name])
        for branch, values in a[name].items():
            other = b[name][branch]
            if values.dtype == object:  # jagged branches: one array per event
                assert all(np.array_equal(x, y) for x, y in zip(values, other, strict=True)), (name, branch)
            else:
                np.testing.assert_array_equal(values, other, err_msg=f"{name} {branch}")


@pytest.mark.slow
def test_a_killed_dask_worker_changes_nothing(samples, reference, tmp_path):
    """A dask worker killed while it processes a chunk: the nanny restarts it, the chunk is retried,
    and the histograms are those of the reference."""
    import os
    import signal
    import threading

    from distributed import default_client

    killed: list[str] = []

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 300
        while not killed and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                client = default_client()
                busy = [w for w, tasks in client.processing().items() if any("Processor" in str(t) for t in tasks)]
                if busy:
                    pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                    os.kill(pid, signal.SIGKILL)  # the worker process dies mid-chunk (the nanny survives)
                    killed.append(busy[0])
            except Exception:  # no client yet, or it is starting: try again
                continue

    watcher = threading.Thread(target=kill_a_busy_worker, daemon=True)
    watcher.start()
    got = _run(samples, tmp_path, executor="dask", workers=2)
    watcher.join(timeout=5)
    assert killed, "no worker was killed during the run"
    _compare(got, reference, exact=False)
