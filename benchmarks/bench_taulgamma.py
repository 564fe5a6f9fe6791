"""taulgamma throughput: events/s/core, run time over plain uproot read time, dask 1 -> 2 workers.

Run: ``.venv/bin/python benchmarks/bench_taulgamma.py [--samples DIR] [--events N]``

Without ``--samples`` it generates Belle tau pairs and tau -> mu gamma signal (N events each) in
a temporary directory. All three figures are measured in one run, since the machines are shared.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import uproot
from rich.console import Console

from belle_rare.analyses.datasets import load_datasets
from belle_rare.analyses.runner import RunOptions, run_search
from belle_rare.processors.registry import get_search
from belle_rare.simulation.production import Request, produce


def timed_run(samples: Path, out: Path, executor: str, workers: int) -> tuple[float, int]:
    opts = RunOptions(search="taulgamma", experiment="belle", samples=samples, out=out,
                      executor=executor, workers=workers, chunksize=100_000, progress=False)
    start = time.perf_counter()
    result = run_search(opts)
    elapsed = time.perf_counter() - start
    return elapsed, sum(d["read"] for d in result["metadata"]["events"].values())


def uproot_read_time(samples: Path) -> float:
    """Read and decompress exactly the branches the processor declares."""
    branches = list(get_search("taulgamma").processor.branches)
    start = time.perf_counter()
    for ds in load_datasets(samples, "belle").values():
        for path in ds.files:
            with uproot.open(path) as f:
                f["tree"].arrays(branches, library="ak")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=Path)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        samples = args.samples
        if samples is None:
            samples = Path(tmp) / "samples"
            for process in ("tautau", "sig_taumugamma"):
                produce(Request("belle", process, args.events, 1, samples, events_per_file=args.events // 2), workers=2, progress=False)
        # warm-up: numba compilation cache, imports
        timed_run(samples, Path(tmp) / "warm", "iterative", 1)
        t_iter, n = timed_run(samples, Path(tmp) / "iter", "iterative", 1)
        t_read = uproot_read_time(samples)
        t_dask1, _ = timed_run(samples, Path(tmp) / "d1", "dask", 1)
        t_dask2, _ = timed_run(samples, Path(tmp) / "d2", "dask", 2)
    console.print(f"events processed:                     {n}")
    console.print(f"events/s/core (iterative, one core):  {n / t_iter:,.0f}")
    console.print(f"run time / uproot read time:          {t_iter / t_read:.1f}  ({t_iter:.2f} s / {t_read:.2f} s)")
    console.print(f"dask speed-up 1 -> 2 workers:         {t_dask1 / t_dask2:.2f}  ({t_dask1:.2f} s / {t_dask2:.2f} s)")


if __name__ == "__main__":
    main()
