"""Before / after of the chunk machinery in one process: coffea's ``Runner`` with uproot's default
(fsspec) source against ``runner.ChunkRunner`` with ``CHUNK_UPROOT_OPTIONS`` (memory-mapped files).

Run: ``.venv/bin/python benchmarks/bench_chunk_runner.py SEARCH EXPERIMENT SAMPLES [--chunksize C] [--repeats R]``

Whole runs (``suite.timed_run``: the input check, the chunks, the merge), nominal pass and all
variations, the two versions alternating ``R`` times after a warm-up chunk; the median CPU seconds
of each. Both versions give the same histograms (``tests/test_chunk_runner.py``). With files of
several chunks (``--chunksize`` below the files' events) the reuse of the open file and its parsed
tree shows; with one chunk per file (the suite, the runner's defaults) only the type names and
the memory-mapped reads do.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import suite  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("search")
    parser.add_argument("experiment")
    parser.add_argument("samples", type=Path)
    parser.add_argument("--chunksize", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from coffea import processor

    import belle_rare.analyses.runner as runner

    after = (runner.ChunkRunner, runner.CHUNK_UPROOT_OPTIONS)
    before = (processor.Runner, {k: v for k, v in runner.CHUNK_UPROOT_OPTIONS.items() if k != "handler"})
    cpu: dict[tuple[str, str], list[float]] = {}
    events = 0
    with tempfile.TemporaryDirectory() as tmp:
        suite.timed_run(args.search, args.experiment, args.samples, Path(tmp) / "warm", args.chunksize, max_chunks=1)
        try:
            for rep in range(args.repeats):
                for label, (runner_class, options) in (("before", before), ("after", after)):
                    runner.ChunkRunner, runner.CHUNK_UPROOT_OPTIONS = runner_class, options
                    for mode in ("nominal", "all"):
                        with suite.nominal_pass() if mode == "nominal" else contextlib.nullcontext():
                            seconds, _, events = suite.timed_run(args.search, args.experiment, args.samples,
                                                                 Path(tmp) / f"{rep}{label}{mode}", args.chunksize)
                        cpu.setdefault((label, mode), []).append(seconds)
        finally:
            runner.ChunkRunner, runner.CHUNK_UPROOT_OPTIONS = after
    for (label, mode), seconds in cpu.items():
        median = statistics.median(seconds)
        print(f"{args.search} chunks of {args.chunksize}: {label:6s} {mode:7s} {median:.3f} CPU s, "
              f"{events / median:,.0f} events/s/core (median of {args.repeats})")


if __name__ == "__main__":
    main()
