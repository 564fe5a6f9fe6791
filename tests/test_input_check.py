"""analyses/datasets.py ``check_file``: a file checked once in a process is not parsed again while it is
unchanged on disk; a changed file is checked again, and a failure is never remembered."""

from __future__ import annotations

import os

import numpy as np
import pytest

import belle_rare.analyses.datasets as datasets
from belle_rare.core.errors import UserError
from belle_rare.simulation.ntuple import write_ntuple


@pytest.fixture
def counted(monkeypatch):
    """The number of times the file's contents were read."""
    calls = []
    read = datasets._check_contents

    def counting(*args):
        calls.append(args[0])
        return read(*args)

    monkeypatch.setattr(datasets, "_check_contents", counting)
    monkeypatch.setattr(datasets, "_CHECKED", {})
    return calls


def test_an_unchanged_file_is_read_once(tmp_path, counted):
    path = tmp_path / "a.root"
    write_ntuple(path, {"x": np.arange(10.0)}, {}, tree="tree")
    first = datasets.check_file(str(path), "tree", ["x"], 10)
    assert datasets.check_file(str(path), "tree", ["x"], 10) == first
    assert counted == [str(path)]
    # another request (branches, entries) on the same file is its own check
    with pytest.raises(UserError, match="manifest says 11"):
        datasets.check_file(str(path), "tree", ["x"], 11)
    assert len(counted) == 2


def test_a_changed_file_is_read_again_and_a_failure_is_not_kept(tmp_path, counted):
    path = tmp_path / "a.root"
    write_ntuple(path, {"x": np.arange(10.0)}, {}, tree="tree")
    datasets.check_file(str(path), "tree", ["x"], 10)
    write_ntuple(path, {"y": np.arange(10.0)}, {}, tree="tree")  # rewritten in place: new size / mtime / content
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    for _ in range(2):
        with pytest.raises(UserError, match="missing branch 'x'"):
            datasets.check_file(str(path), "tree", ["x"], 10)
    assert len(counted) == 3
