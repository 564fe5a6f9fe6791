"""Peak RSS of a generating worker against the size of the file it writes (issue 15).

Run::

    .venv/bin/python benchmarks/bench_memory_generation.py --process charged --events 50000 250000 \\
        [--experiment belle2] [--block-events B] [--out DIR]

Each size is one file (``events_per_file`` = ``events``) produced by ``production.produce_chunk`` in a
fresh subprocess (generator, detector response, trigger, ROOT write: what a ``belle-rare generate``
worker runs), its RSS sampled every 20 ms; ``ru_maxrss`` beside it. The file is written block by block
(``production.WRITE_BLOCK_EVENTS``, or ``--block-events``; ``--block-events`` equal to the events is the
whole file at once, as before), so the peak should not grow with the file: the ratio of the largest to
the smallest size's peak is printed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from suite import MB, sampled_peak_rss  # noqa: E402

MARK = "GEN_RSS "


def child(experiment: str, process: str, events: int, block_events: int, out: str) -> None:
    """Produce one file of ``events`` and print (peak sampled RSS, ru_maxrss, CPU s, entries)."""
    from belle_rare.simulation import production

    if block_events:
        production.WRITE_BLOCK_EVENTS = block_events
    req = production.Request(experiment, process, events, 5, Path(out), events_per_file=events)
    chunk = production.plan_chunks(events, events, req.seed)[0]
    with sampled_peak_rss() as peak:
        cpu = time.process_time()
        result = production.produce_chunk(req, chunk)
        cpu = time.process_time() - cpu
    production.chunk_path(req, chunk).unlink()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB
    print(f"{MARK}{peak[0]:.1f} {maxrss:.1f} {cpu:.1f} {result['entries']}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="belle2")
    parser.add_argument("--process", default="charged")
    parser.add_argument("--events", type=int, nargs="+", default=[50_000, 250_000])
    parser.add_argument("--block-events", type=int, default=0, help="events per block (0: production's default)")
    parser.add_argument("--out", type=Path, default=Path("/tmp"), help="scratch directory (the files are removed)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for events in args.events:
        done = subprocess.run([sys.executable, __file__, "--child", args.experiment, args.process, str(events),
                               str(args.block_events), str(args.out)], capture_output=True, text=True, check=True)
        line = next(x for x in done.stdout.splitlines() if x.startswith(MARK))
        peak, maxrss, cpu, entries = (float(x) for x in line[len(MARK):].split())
        rows.append({"events": events, "entries": int(entries), "peak_rss_mb": peak, "maxrss_mb": maxrss, "cpu_s": cpu})
        print(f"{args.experiment} {args.process}: {events:,} events in one file, block {args.block_events or 'default'}: "
              f"peak RSS {peak:.0f} MB (ru_maxrss {maxrss:.0f}), {cpu:.1f} CPU s", flush=True)
    print(f"peak RSS ratio, {max(args.events):,} / {min(args.events):,} events: "
          f"{rows[-1]['peak_rss_mb'] / rows[0]['peak_rss_mb']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
