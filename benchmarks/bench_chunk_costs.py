"""What one chunk costs besides the processor: CPU milliseconds per step, one chunk per file.

Run: ``.venv/bin/python benchmarks/bench_chunk_costs.py SEARCH EXPERIMENT SAMPLES [--nominal] [--repeats R]``
(``SAMPLES`` e.g. ``benchmarks/suite.py --work DIR``'s ``DIR/selected/SEARCH_EXP``: files of one chunk each).

For every file, each step timed alone (``time.process_time``), the median over files and repeats
(the first pass over the files is a warm-up): the run's input check (``datasets.check_file``: the
file's header and the tree's metadata), opening the file (``runner.CHUNK_UPROOT_OPTIONS``), parsing
the tree's metadata (every branch's TBranch / TLeaf models), building the chunk's events as
``runner.ChunkRunner`` does (``chunk_events``: the base form of the read branches, the schema,
virtual arrays; its base form comes from the process's cache after the first file), the processor's
``process`` with its reads (nominal pass with ``--nominal``), and then the type names of the branches
it did not read (what coffea's ``from_root`` adds and ``ChunkRunner`` skips).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import suite  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("search")
    parser.add_argument("experiment")
    parser.add_argument("samples", type=Path)
    parser.add_argument("--nominal", action="store_true", help="the nominal pass only (suite.nominal_pass)")
    parser.add_argument("--repeats", type=int, default=2, help="measured passes over the files (after one warm-up)")
    args = parser.parse_args()

    import uproot
    from coffea.processor.executor import WorkItem

    from belle_rare.analyses import datasets
    from belle_rare.analyses.datasets import check_file, load_datasets
    from belle_rare.analyses.runner import CHUNK_UPROOT_OPTIONS, chunk_events
    from belle_rare.processors.registry import get_search
    from belle_rare.processors.schema import BelleSchema

    search = get_search(args.search)
    proc = search.processor(args.experiment, search.load_config())
    read = proc.read_filter()
    iteritems = {"filter_name": read} if read else {}
    items = [(ds, path, n) for ds in load_datasets(args.samples, args.experiment).values() for path, n in ds.files.items()]
    steps: dict[str, list[float]] = {}
    with suite.nominal_pass() if args.nominal else contextlib.nullcontext():
        for rep in range(args.repeats + 1):
            for ds, path, n in items:
                times = {}
                cpu = time.process_time()

                def step(name: str) -> None:
                    nonlocal cpu
                    now = time.process_time()
                    times[name], cpu = now - cpu, now

                datasets._CHECKED.clear()  # the check's own cost: not the process's cache of an earlier pass
                cpu = time.process_time()
                check_file(path, ds.tree, proc.required_branches(), n)
                step("input check (datasets.check_file)")
                with uproot.open({path: None}, **{**CHUNK_UPROOT_OPTIONS, "object_cache": {}}) as f:
                    step("open")
                    tree = f[ds.tree]
                    step("tree metadata (parse)")
                    item = WorkItem(ds.name, path, ds.tree, 0, n, b"")
                    metadata = {"dataset": ds.name, "filename": path, "is_data": ds.is_data}
                    events = chunk_events(f, item, BelleSchema, metadata, CHUNK_UPROOT_OPTIONS, iteritems, None)
                    step("events (base form, schema)")
                    proc.process(events)
                    step("process (with its reads)")
                    tree.typenames()
                    step("type names of the other branches")
                if rep:
                    for name, t in times.items():
                        steps.setdefault(name, []).append(t)
    mode = "nominal pass" if args.nominal else "all variations"
    print(f"{args.search} ({args.experiment}, {mode}): CPU ms per chunk, median of {len(next(iter(steps.values())))} "
          f"({len(items)} files of {statistics.median(n for *_, n in items):,.0f} events)")
    for name, t in steps.items():
        print(f"  {name:36s} {statistics.median(t) * 1e3:7.1f}")
    print(f"  {'sum':36s} {sum(statistics.median(t) for t in steps.values()) * 1e3:7.1f}")


if __name__ == "__main__":
    main()
