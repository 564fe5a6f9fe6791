"""Batch clusters through dask-jobqueue: the job scripts the profiles of configs/clusters.yaml generate
(``cluster.job_script()``: no batch system needed, only the in-process scheduler) and how ``belle-rare
run`` picks the executor from ``--cluster`` / ``--scheduler``."""

from __future__ import annotations

import argparse
import re
import sys

import pytest

from belle_rare.analyses.executors import jobqueue_cluster, load_profiles
from belle_rare.core.errors import UserError

pytest.importorskip("dask_jobqueue")


@pytest.fixture
def script():
    clusters = []

    def make(name: str) -> tuple[str, int]:
        cluster, jobs = jobqueue_cluster(name)
        clusters.append(cluster)
        return cluster.job_script(), jobs

    yield make
    for cluster in clusters:
        cluster.close()


def _worker_command(text: str) -> str:
    line = next(line for line in text.splitlines() if "distributed.cli.dask_worker" in line)
    # each job runs one single-threaded worker of this interpreter, connecting back to our scheduler
    assert f"{sys.executable} -m distributed.cli.dask_worker tcp://" in line
    assert "--nthreads 1" in line and "--nanny" in line
    return line


def test_slurm_job_script(script):
    text, jobs = script("slurm")
    assert jobs == 4
    directives = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    for expected in ("-p normal", "-n 1", "--cpus-per-task=1", "--mem=4G", "-t 02:00:00"):
        assert f"#SBATCH {expected}" in directives, (expected, directives)
    line = _worker_command(text)
    # the worker's memory limit is the job's 4 GB (3.73 GiB), not the machine's
    assert re.search(r"--memory-limit 3\.73GiB", line)


def test_htcondor_job_script(script):
    text, jobs = script("htcondor")
    assert jobs == 4
    assert "MY.DaskWorkerCores = 1" in text
    assert "MY.DaskWorkerMemory = 4000000000" in text and "MY.DaskWorkerDisk = 2000000000" in text
    assert "RequestMemory = floor(MY.DaskWorkerMemory / 1048576)" in text
    _worker_command(text)


def test_every_profile_builds(script):
    for name in load_profiles().profiles:
        text, jobs = script(name)
        assert jobs >= 1 and "dask_worker" in text


def test_unknown_profile_is_a_user_error():
    with pytest.raises(UserError, match="unknown profile 'pbs'.*slurm"):
        jobqueue_cluster("pbs")


def _args(**kw) -> argparse.Namespace:
    return argparse.Namespace(**{"executor": None, "scheduler": None, "cluster": None, **kw})


def test_cluster_and_scheduler_imply_dask():
    from belle_rare.analyses.run_command import _executor

    assert _executor(_args()) == "futures"
    assert _executor(_args(executor="iterative")) == "iterative"
    assert _executor(_args(cluster="slurm")) == "dask"
    assert _executor(_args(scheduler="tcp://host:8786", executor="dask")) == "dask"
    with pytest.raises(UserError, match="--cluster: runs on dask"):
        _executor(_args(cluster="slurm", executor="futures"))
