"""A run's nominal pass with and without the process's input-check cache, over the uproot read.

Run: ``.venv/bin/python benchmarks/bench_input_check_cache.py DIR [--repeats R] [--only SEARCH_EXP ...]``
(``DIR`` a ``benchmarks/suite.py --work DIR``: its ``selected/SEARCH_EXP`` sample directories, files of
one chunk each).

Per search, after one warm-up run (imports, numba, models: ``max_chunks=1``), ``R`` pairs of whole nominal
runs in this process, alternating: *cold* clears ``datasets._CHECKED`` first, so every file's tree is parsed
by the input check and again by its chunk (a first run in a process); *warm* keeps it (a re-run, as the
suite's measured passes after their warm-up). CPU seconds (``time.process_time``), medians, and their
ratio to the suite's uproot read of the search's declared branches.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import suite  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="a benchmarks/suite.py --work directory")
    parser.add_argument("--repeats", type=int, default=5, help="cold / warm pairs per search (default 5)")
    parser.add_argument("--chunksize", type=int, default=10_000)
    parser.add_argument("--only", nargs="*", metavar="SEARCH_EXP", help="only these (default: every selected/ directory)")
    args = parser.parse_args()

    from belle_rare.analyses import datasets
    from belle_rare.processors.registry import get_search

    names = args.only or sorted(p.name for p in (args.work / "selected").iterdir() if p.is_dir())
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            search, experiment = name.rsplit("_", 1)
            samples, runs = args.work / "selected" / name, Path(tmp) / name
            suite.timed_run(search, experiment, samples, runs / "warm-up", args.chunksize, max_chunks=1)
            cold, warm = [], []
            with suite.nominal_pass():
                for i in range(args.repeats):
                    datasets._CHECKED.clear()
                    cold.append(suite.timed_run(search, experiment, samples, runs / f"cold{i}", args.chunksize)[0])
                    warm.append(suite.timed_run(search, experiment, samples, runs / f"warm{i}", args.chunksize)[0])
            read = suite.uproot_read_cpu(get_search(search), experiment, samples)
            c, w = statistics.median(cold), statistics.median(warm)
            print(f"{name}: uproot read {read:.3f} CPU s; nominal run cold {c:.3f} s ({c / read:.2f} x the read), "
                  f"warm {w:.3f} s ({w / read:.2f} x)", flush=True)


if __name__ == "__main__":
    main()
