"""Interrupts and resumption of ``belle-rare run``: Ctrl-C (SIGINT) stops within seconds with no
output and says how to resume; ``--resume`` re-runs only the unfinished chunks and gives the same
histograms; a vanished input file and an unwritable output are one-line errors with nothing
half-written."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from belle_rare.analyses.checkpoints import checkpoint_root, count_checkpoints
from belle_rare.analyses.cli import main
from belle_rare.analyses.runner import RunOptions, run_search
from belle_rare.core.errors import UserError

CHUNK = 500


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> Path:
    """Belle tau pairs (4 files) and tau -> mu gamma (2 files), 500 events per file: 6 chunks."""
    from belle_rare.simulation.production import Request, produce

    out = tmp_path_factory.mktemp("interrupt_samples")
    produce(Request("belle", "tautau", 2000, 5, out, events_per_file=CHUNK), progress=False)
    produce(Request("belle", "sig_taumugamma", 1000, 6, out, events_per_file=CHUNK), progress=False)
    return out


@pytest.fixture(scope="module")
def clean(samples, tmp_path_factory) -> dict:
    """One uninterrupted run (iterative, no checkpoints): the reference of the resumed runs."""
    return run_search(_options(samples, tmp_path_factory.mktemp("clean"), executor="iterative"))


def _options(samples: Path, out: Path, **kw) -> RunOptions:
    return RunOptions(search="taulgamma", experiment="belle", samples=samples, out=out, chunksize=CHUNK,
                      progress=False, **kw)


def _assert_same_histograms(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for dataset in a:
        assert a[dataset].keys() == b[dataset].keys()
        for name, h in a[dataset].items():
            other = b[dataset][name]
            assert [list(ax) for ax in h.axes] == [list(ax) for ax in other.axes], (dataset, name)
            np.testing.assert_allclose(h.values(flow=True), other.values(flow=True), rtol=1e-12, atol=0, err_msg=name)
            np.testing.assert_allclose(h.variances(flow=True), other.variances(flow=True), rtol=1e-12, atol=0, err_msg=name)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "belle_rare.analyses.cli", *args]


@pytest.mark.parametrize("executor", ["futures", pytest.param("dask", marks=pytest.mark.slow)])
def test_sigint_stops_promptly_and_resume_finishes(samples, clean, tmp_path, executor):
    out = tmp_path / "out"
    cmd = _cli("run", "taulgamma", "--experiment", "belle", "--samples", str(samples), "--out", str(out),
               "--executor", executor, "--workers", "2", "--chunksize", str(CHUNK))
    # SIGINT as a terminal's Ctrl-C delivers it (a test runner's worker may have inherited it ignored)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    root = checkpoint_root(out, "taulgamma")
    deadline = time.monotonic() + 300
    while count_checkpoints(root) == 0 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)  # interrupt once a chunk is finished and others are still queued
    assert proc.poll() is None, "the run ended before it could be interrupted"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    stopped = time.monotonic() - sent
    assert proc.returncode == 130, err[-2000:]
    assert stopped < 20, f"took {stopped:.1f} s to stop"
    assert "--resume" in err
    assert not (out / "taulgamma").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    finished = count_checkpoints(root)
    assert 1 <= finished < 6
    # resume on one process: only the unfinished chunks are read, the result is that of one clean run
    assert main(["run", "taulgamma", "--experiment", "belle", "--samples", str(samples), "--out", str(out),
                 "--executor", "iterative", "--chunksize", str(CHUNK), "--resume"]) == 0
    assert not root.exists()  # checkpoints removed once the outputs are written
    from belle_rare import open_run

    resumed = open_run(out, "taulgamma")
    assert resumed.metadata["resumed_chunks"] == finished
    assert sum(d["read"] for d in resumed.metadata["events"].values()) == 3000
    _assert_same_histograms(resumed.histograms, clean["histograms"])


def test_iterative_interrupt_leaves_checkpoints(samples, tmp_path, monkeypatch):
    """KeyboardInterrupt on the third chunk (in-process, iterative): two checkpoints, no output."""
    from belle_rare.processors.taulgamma import TauLGammaProcessor

    original, calls = TauLGammaProcessor.process, []

    def interrupted(self, events):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, events)

    monkeypatch.setattr(TauLGammaProcessor, "process", interrupted)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_search(_options(samples, out, executor="iterative", checkpoint=True))
    assert count_checkpoints(checkpoint_root(out, "taulgamma")) == 2
    assert not (out / "taulgamma").exists()


def test_vanished_file_is_one_line_and_resume_after_it_is_back(samples, clean, tmp_path, monkeypatch):
    """A file deleted after the input check: a one-line error naming it; the chunks done before it
    are checkpointed and ``resume`` reads only the rest."""
    import belle_rare.analyses.runner as runner

    files = sorted(samples.glob("belle_tautau_*.root"))
    victim = files[-1]
    saved = tmp_path / "saved.root"
    saved.write_bytes(victim.read_bytes())
    checked = runner.validate_inputs

    def check_then_delete(*args, **kw):
        result = checked(*args, **kw)
        victim.unlink()
        return result

    out = tmp_path / "out"
    monkeypatch.setattr(runner, "validate_inputs", check_then_delete)
    try:
        with pytest.raises(UserError) as err:
            run_search(_options(samples, out, executor="iterative", checkpoint=True))
    finally:
        os.replace(saved, victim)
    message = str(err.value)
    assert "\n" not in message and str(victim) in message and "disappeared" in message and "--resume" in message
    assert not (out / "taulgamma").exists()
    monkeypatch.setattr(runner, "validate_inputs", checked)
    done = count_checkpoints(checkpoint_root(out, "taulgamma"))
    assert done >= 1
    result = run_search(_options(samples, out, executor="iterative", checkpoint=True, resume=True))
    assert result["metadata"]["resumed_chunks"] == done
    assert sum(d["read"] for d in result["metadata"]["events"].values()) == 3000
    _assert_same_histograms(result["histograms"], clean["histograms"])


def test_resume_refuses_checkpoints_of_another_configuration(samples, tmp_path):
    root = checkpoint_root(tmp_path, "taulgamma")
    (root / "0123456789abcdef").mkdir(parents=True)
    with pytest.raises(UserError, match="another configuration"):
        run_search(_options(samples, tmp_path, executor="iterative", resume=True))


def test_full_disk_on_output_is_one_line_and_keeps_previous(tmp_path, monkeypatch):
    import belle_rare.analyses.outputs as outputs
    from test_run_output import _cutflow, _histograms, _metadata

    outputs.write_run_outputs(tmp_path, "taulgamma", _histograms(), _cutflow(), _metadata())
    before = (tmp_path / "taulgamma" / "metadata.json").read_bytes()

    def full(path, histograms):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(outputs, "write_root", full)
    with pytest.raises(UserError) as err:
        outputs.write_run_outputs(tmp_path, "taulgamma", _histograms(), _cutflow(), _metadata())
    assert "\n" not in str(err.value) and "No space left on device" in str(err.value)
    assert "previous output is kept" in str(err.value)
    assert (tmp_path / "taulgamma" / "metadata.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taulgamma"]  # no temporary or backup directory left


def test_files_are_not_opened_again_for_coffea_metadata(samples, clean, tmp_path, monkeypatch):
    """The input check hands each file's entries and UUID to coffea (``runner.checked_metadata``):
    coffea's own metadata pass (another open of every file) does not run, and the histograms are
    the same as the reference run's."""
    from coffea.processor import executor

    def no_second_open(*args, **kw):
        raise AssertionError("coffea opened a file for its metadata")

    monkeypatch.setattr(executor.Runner, "metadata_fetcher_root", staticmethod(no_second_open))
    result = run_search(_options(samples, tmp_path / "out", executor="iterative"))
    _assert_same_histograms(result["histograms"], clean["histograms"])
    assert result["metadata"]["events"] == clean["metadata"]["events"]


def test_reading_the_declared_branches_only_changes_nothing(samples, clean, tmp_path, monkeypatch):
    """taulgamma builds its chunks from its declared collections only (``read_filter``): the same
    histograms and cutflows as from every branch of the tree."""
    from belle_rare.processors.taulgamma import TauLGammaProcessor

    assert TauLGammaProcessor.reads_declared_branches_only
    monkeypatch.setattr(TauLGammaProcessor, "reads_declared_branches_only", False)
    every_branch = run_search(_options(samples, tmp_path / "out", executor="iterative"))
    _assert_same_histograms(every_branch["histograms"], clean["histograms"])
    assert every_branch["cutflow"] == clean["cutflow"]


def test_calibration_variations_on_the_events_that_can_reach_a_region_change_nothing(samples, clean, tmp_path, monkeypatch):
    """taulgamma builds a calibration variation's objects only for the events that can reach a region
    (``_variation_inputs``): the same histograms as from every two-track event."""
    from belle_rare.processors.taulgamma import TauLGammaProcessor

    monkeypatch.setattr(TauLGammaProcessor, "_variation_inputs", lambda self, inputs: inputs)
    every_event = run_search(_options(samples, tmp_path / "out", executor="iterative"))
    _assert_same_histograms(every_event["histograms"], clean["histograms"])
    assert any(len(list(h.axes["variation"])) > 1 for hists in clean["histograms"].values() for h in hists.values()
               if "variation" in h.axes.name)
