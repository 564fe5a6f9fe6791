"""What grows with the number of events in a run: RSS (and optionally tracemalloc) chunk by chunk.

Run::

    .venv/bin/python benchmarks/bench_memory_growth.py SEARCH EXPERIMENT SAMPLES --chunksize C \\
        [--times 10] [--trim] [--tracemalloc] [--json out.json]

``SAMPLES`` is a sample directory (e.g. ``benchmarks/suite.py --work DIR``'s ``DIR/samples/EXP``);
the first process of ``--process`` (default: every file of the directory) is listed ``--times``
times (hard links, as the suite's 10 x column) in a scratch directory. One iterative run (the
suite's RSS child: imports, models and a one-chunk warm-up first) records, at the start and end of
every chunk's ``process``, the process's RSS and glibc's heap statistics (``mallinfo2``: bytes in
use by malloc vs. held free in its arenas). With ``--trim`` the heap is trimmed (``malloc_trim(0)``)
after every chunk, the fragmentation test of issue 15; ``MALLOC_ARENA_MAX=2`` in the environment is
the other. With ``--tracemalloc`` the Python allocations still alive after the run's last chunk
are compared with those after its second chunk (top 15 lines by growth).

Linear growth of ``in use`` means something of ours (or coffea's) accumulates per chunk; a flat
``in use`` with growing RSS is allocator fragmentation (freed memory glibc does not return).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from suite import current_rss_mb, sampled_peak_rss, tenfold, timed_run  # noqa: E402

MB = 1e6
LIBC = ctypes.CDLL("libc.so.6")


class MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (2.33+): size_t fields."""

    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


LIBC.mallinfo2.restype = MallInfo2


def heap_mb() -> tuple[float, float]:
    """(bytes malloc has handed out and not freed, bytes free inside its heaps), MB; mmapped blocks count as in use."""
    info = LIBC.mallinfo2()
    return (info.uordblks + info.hblkhd) / MB, info.fordblks / MB


def record_chunks(proc_class: type, trim: bool, trace: bool) -> list[dict[str, float]]:
    """Wrap ``proc_class.process`` to record RSS and heap at the start and end of every chunk."""
    rows: list[dict[str, float]] = []
    original = proc_class.process
    snapshots: dict[str, Any] = {}

    def process(self: Any, events: Any) -> Any:
        used, free = heap_mb()
        row = {"start_rss_mb": current_rss_mb(), "start_in_use_mb": used, "start_free_mb": free}
        if trace and len(rows) == 2:
            snapshots["second"] = tracemalloc.take_snapshot()
        out = original(self, events)
        used, free = heap_mb()
        row |= {"end_rss_mb": current_rss_mb(), "end_in_use_mb": used, "end_free_mb": free}
        rows.append(row)
        if trim:
            LIBC.malloc_trim(0)
        return out

    proc_class.process = process
    record_chunks.snapshots = snapshots  # type: ignore[attr-defined]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("search")
    parser.add_argument("experiment")
    parser.add_argument("samples", type=Path)
    parser.add_argument("--process", required=True, help="the process whose files are repeated")
    parser.add_argument("--chunksize", type=int, default=50_000)
    parser.add_argument("--times", type=int, default=10)
    parser.add_argument("--trim", action="store_true", help="malloc_trim(0) after every chunk")
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from belle_rare.processors.registry import get_search

    found = get_search(args.search)
    proc = found.processor(args.experiment, found.load_config())
    with tempfile.TemporaryDirectory(prefix="perf5-growth-") as tmp:
        samples = tenfold(args.samples, args.experiment, args.process, Path(tmp) / "samples", times=args.times)
        timed_run(args.search, args.experiment, samples, Path(tmp) / "warm", args.chunksize, max_chunks=1)
        rows = record_chunks(type(proc), args.trim, args.tracemalloc)
        base = current_rss_mb()
        with sampled_peak_rss() as peak:
            if args.tracemalloc:
                tracemalloc.start(10)
            cpu, _, events = timed_run(args.search, args.experiment, samples, Path(tmp) / "run", args.chunksize)
            after_run = {"rss_mb": current_rss_mb(), "in_use_mb": heap_mb()[0], "free_mb": heap_mb()[1]}
    print(f"{'chunk':>5} {'RSS start':>10} {'RSS end':>8} {'in use s/e':>14} {'free s/e':>14}  (MB)")
    for i, r in enumerate(rows):
        print(f"{i:5d} {r['start_rss_mb']:10.0f} {r['end_rss_mb']:8.0f} {r['start_in_use_mb']:7.0f}/{r['end_in_use_mb']:<6.0f} "
              f"{r['start_free_mb']:7.0f}/{r['end_free_mb']:<6.0f}")
    print(f"after setup {base:.0f} MB, peak (20 ms samples) {peak[0]:.0f} MB, after the run {after_run}; "
          f"{events} events, {cpu:.1f} CPU s")
    if args.tracemalloc and "second" in record_chunks.snapshots:  # type: ignore[attr-defined]
        last = tracemalloc.take_snapshot()
        print("tracemalloc: growth since the second chunk (alive at the end of the run)")
        for stat in last.compare_to(record_chunks.snapshots["second"], "traceback")[:15]:  # type: ignore[attr-defined]
            print(f"  {stat.size_diff / MB:+8.2f} MB {stat.count_diff:+7d} blocks  {stat.traceback.format()[-1].strip()}")
            for line in stat.traceback.format()[-6:-1]:
                print(f"        {line.strip()}")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "base_mb": base,
                                         "peak_mb": peak[0], "chunks": rows, "after_run": after_run}, indent=1))


if __name__ == "__main__":
    main()
